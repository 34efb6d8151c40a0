//! seccomp: the config's `linux.seccomp` as a BPF program.
//!
//! The filter is compiled by libseccomp in the parent, before anything is created, so a bad
//! profile leaves nothing behind and the container's own setup never runs libseccomp. The
//! program is then loaded in the container with the raw seccomp(2) call, as late as the
//! kernel allows: right before execve when no_new_privs is set; otherwise, while the process
//! still has CAP_SYS_ADMIN, just before it changes user and drops capabilities. With
//! `SCMP_ACT_NOTIFY` rules the listener descriptor goes back to the parent, which hands it
//! to the agent at `listenerPath`.
//!
//! Why libseccomp rather than our own BPF: its syscall tables for every architecture, its
//! handling of multiplexed calls (socketcall, ipc on x86) and its binary-tree layout are
//! what a profile like Docker's needs. It is slow, though (10-20 ms for an engine's default
//! profile), so compiled programs are cached under the state root (see [`compile`]).

use crate::error::{Context, Error, Result};
use crate::state::OciState;
use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use oci_spec::runtime::{
    LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSeccompOperator,
};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

const SECCOMP_SET_MODE_FILTER: libc::c_ulong = 1;
const FLAG_TSYNC: u32 = 1;
const FLAG_LOG: u32 = 2;
const FLAG_SPEC_ALLOW: u32 = 4;
const FLAG_NEW_LISTENER: u32 = 8;
const FLAG_WAIT_KILLABLE_RECV: u32 = 32;

/// A compiled filter, ready to load.
#[derive(Debug, Clone)]
pub(crate) struct Filter {
    program: Vec<libc::sock_filter>,
    flags: u32,
    /// Where the notify descriptor goes, when the profile has notify rules.
    pub(crate) listener: Option<Listener>,
}

#[derive(Debug, Clone)]
pub(crate) struct Listener {
    pub(crate) path: PathBuf,
    pub(crate) metadata: Option<String>,
}

fn bad(msg: impl Into<String>) -> Error {
    Error::Config(format!("linux.seccomp: {}", msg.into()))
}

fn action(a: LinuxSeccompAction, errno: Option<u32>) -> Result<ScmpAction> {
    let ret = errno.unwrap_or(libc::EPERM as u32);
    // The kernel keeps 16 bits of an action's data.
    let ret16 = || u16::try_from(ret).map_err(|_| bad(format!("errnoRet {ret} is too large")));
    Ok(match a {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            ScmpAction::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
        LinuxSeccompAction::ScmpActErrno => ScmpAction::Errno(ret16()?.into()),
        LinuxSeccompAction::ScmpActTrace => ScmpAction::Trace(ret16()?),
        LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
        LinuxSeccompAction::ScmpActNotify => ScmpAction::Notify,
    })
}

fn compare(op: LinuxSeccompOperator, value: u64, value_two: Option<u64>) -> (ScmpCompareOp, u64) {
    match op {
        LinuxSeccompOperator::ScmpCmpNe => (ScmpCompareOp::NotEqual, value),
        LinuxSeccompOperator::ScmpCmpLt => (ScmpCompareOp::Less, value),
        LinuxSeccompOperator::ScmpCmpLe => (ScmpCompareOp::LessOrEqual, value),
        LinuxSeccompOperator::ScmpCmpEq => (ScmpCompareOp::Equal, value),
        LinuxSeccompOperator::ScmpCmpGe => (ScmpCompareOp::GreaterEqual, value),
        LinuxSeccompOperator::ScmpCmpGt => (ScmpCompareOp::Greater, value),
        // value is the mask, valueTwo what the masked argument must equal.
        LinuxSeccompOperator::ScmpCmpMaskedEq => {
            (ScmpCompareOp::MaskedEqual(value), value_two.unwrap_or(0))
        }
    }
}

fn flag_bits(flags: &[LinuxSeccompFilterFlag]) -> u32 {
    flags
        .iter()
        .map(|f| match f {
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => FLAG_TSYNC,
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => FLAG_LOG,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => FLAG_SPEC_ALLOW,
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => FLAG_WAIT_KILLABLE_RECV,
        })
        .fold(0, |a, b| a | b)
}

/// Compile the config's seccomp section. Syscall names this libseccomp does not know are
/// skipped with a warning, as runc does; everything else wrong is an error.
///
/// With `cache` (the state root), the program is kept there for the next container with
/// the same section: libseccomp takes 10-20 ms over an engine's default profile (three
/// architectures), several times the cost of the rest of a `run`. A cache file holds the
/// exact section it was compiled from and the identity of the runr binary that compiled
/// it; a program is only reused when both match byte for byte, so a hash collision cannot
/// hand a container someone else's filter.
/// The version of libseccomp runr was built with (linked statically), as "2.5.4".
pub fn library_version() -> String {
    match libseccomp::ScmpVersion::current() {
        Ok(v) => format!("{}.{}.{}", v.major, v.minor, v.micro),
        Err(e) => format!("unknown ({e})"),
    }
}

pub(crate) fn compile(s: &LinuxSeccomp, cache: Option<&Path>) -> Result<Filter> {
    let (flags, listener) = settings(s)?;
    let program = match cache {
        None => program(s)?,
        Some(root) => cached_program(s, root)?,
    };
    Ok(Filter {
        program: instructions(&program),
        flags,
        listener,
    })
}

/// The filter of a config's `linux` section, if it has one; see [`compile`].
pub(crate) fn for_config(
    linux: Option<&oci_spec::runtime::Linux>,
    root: &Path,
) -> Result<Option<Filter>> {
    linux
        .and_then(|l| l.seccomp().as_ref())
        .map(|s| compile(s, Some(root)))
        .transpose()
}

/// The program of `s` from the cache under `root`, compiled and stored there on a miss.
fn cached_program(s: &LinuxSeccomp, root: &Path) -> Result<Vec<u8>> {
    let mut key = executable_identity().into_bytes();
    key.extend_from_slice(&serde_json::to_vec(s).expect("the section serializes"));
    let path = cache_path(root, &key);
    if let Some(p) = read_cached(&path, &key) {
        return Ok(p);
    }
    let p = program(s)?;
    if let Err(e) = write_cached(&path, &key, &p) {
        tracing::debug!("seccomp cache {}: {e}", path.display());
    }
    Ok(p)
}

/// The kernel flags and the agent of a section, after the checks libseccomp does not make.
fn settings(s: &LinuxSeccomp) -> Result<(u32, Option<Listener>)> {
    if s.default_action() == LinuxSeccompAction::ScmpActNotify {
        return Err(bad("SCMP_ACT_NOTIFY cannot be the default action"));
    }
    let rules = s.syscalls().as_deref().unwrap_or(&[]);
    for a in rules.iter().flat_map(|r| r.args().iter().flatten()) {
        if a.index() > 5 {
            return Err(bad(format!(
                "argument index {} is out of range (0 to 5)",
                a.index()
            )));
        }
    }
    let notify = rules
        .iter()
        .any(|r| r.action() == LinuxSeccompAction::ScmpActNotify);
    let listener = match (notify, s.listener_path()) {
        (true, Some(path)) => Some(Listener {
            path: path.clone(),
            metadata: s.listener_metadata().clone(),
        }),
        (true, None) => {
            return Err(bad(
                "SCMP_ACT_NOTIFY rules need listenerPath, the seccomp agent's socket",
            ))
        }
        (false, _) => None,
    };
    let mut flags = flag_bits(s.flags().as_deref().unwrap_or(&[]));
    if listener.is_some() {
        flags |= FLAG_NEW_LISTENER;
    }
    Ok((flags, listener))
}

/// The BPF program of a section, from libseccomp, as the kernel's instructions in bytes.
fn program(s: &LinuxSeccomp) -> Result<Vec<u8>> {
    let lib = |what: &str, e: libseccomp::error::SeccompError| bad(format!("{what}: {e}"));
    let default = action(s.default_action(), s.default_errno_ret())?;
    let mut ctx = ScmpFilterContext::new(default).map_err(|e| lib("new filter", e))?;
    // We set no_new_privs ourselves, when the config asks for it.
    ctx.set_ctl_nnp(false).map_err(|e| lib("nnp", e))?;
    // A binary tree of syscall numbers: big profiles cost a few comparisons per call.
    let _ = ctx.set_ctl_optimize(2);
    let arches = architectures(s)?;
    for &a in &arches {
        ctx.add_arch(a)
            .map_err(|e| lib(&format!("architecture {a:?}"), e))?;
    }
    for rule in s.syscalls().iter().flatten() {
        if rule.action() == s.default_action() && rule.errno_ret() == s.default_errno_ret() {
            // The default does it already; libseccomp refuses such rules.
            continue;
        }
        let act = action(rule.action(), rule.errno_ret())?;
        let args = rule.args().as_deref().unwrap_or(&[]);
        let conditions: Vec<ScmpArgCompare> = args
            .iter()
            .map(|a| {
                let (op, datum) = compare(a.op(), a.value(), a.value_two());
                ScmpArgCompare::new(a.index() as u32, op, datum)
            })
            .collect();
        // Conditions on different arguments must all hold (one rule). Several on the same
        // argument could never all hold: each then makes a rule of its own (any may hold).
        let mut indexes: Vec<usize> = args.iter().map(|a| a.index()).collect();
        indexes.sort_unstable();
        indexes.dedup();
        let groups: Vec<Vec<ScmpArgCompare>> = if indexes.len() == args.len() {
            vec![conditions]
        } else {
            conditions.into_iter().map(|c| vec![c]).collect()
        };
        for name in rule.names() {
            let Ok(syscall) = ScmpSyscall::from_name(name) else {
                tracing::warn!("seccomp: unknown syscall {name:?} skipped");
                continue;
            };
            for group in &groups {
                ctx.add_rule_conditional(act, syscall, group)
                    .map_err(|e| lib(&format!("rule for {name}"), e))?;
            }
        }
    }
    let mut bytes = as_bytes(&newer_syscalls_prologue(&newer_syscalls(s, &arches)));
    bytes.extend(export(&ctx)?);
    Ok(bytes)
}

/// The architectures of a filter: the host's (libseccomp always keeps it) and the
/// profile's.
fn architectures(s: &LinuxSeccomp) -> Result<Vec<ScmpArch>> {
    let mut arches = vec![ScmpArch::native()];
    for arch in s.architectures().iter().flatten() {
        let name = serde_json::to_value(arch)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let a: ScmpArch = name
            .parse()
            .map_err(|_| bad(format!("unknown architecture {name}")))?;
        if !arches.contains(&a) {
            arches.push(a);
        }
    }
    Ok(arches)
}

// Newer syscalls get ENOSYS.
//
// A profile that denies by default was written against the kernel of its day: a syscall
// added since is denied because the profile's author never heard of it, not because it is
// dangerous. Programs probe new syscalls and fall back when the kernel says ENOSYS (glibc
// does for clone3, faccessat2, close_range, fchmodat2, 64-bit time on i386, ...), but an
// EPERM stops them. So, per architecture, every syscall numbered above all the ones the
// profile names answers ENOSYS, as on a kernel that predates them. A syscall the profile
// names, and an unnamed one older than the newest it names, keeps the profile's answer.
//
// This is a short BPF prologue in front of libseccomp's program, not libseccomp rules: a
// range compare covers every future number (also those this libseccomp has no name for),
// adds no rule that could conflict with the profile's own, and costs a few instructions per
// syscall. It is part of the cached program.

/// `SECCOMP_RET_ERRNO | ENOSYS`.
const RET_ENOSYS: u32 = 0x0005_0000 | libc::ENOSYS as u32;
/// The x32 ABI shares x86_64's audit token; its syscall numbers carry this bit.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// On `token`, syscall numbers in (`above`, `below`) answer ENOSYS (`below` none: no bound).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct NewerRange {
    token: u32,
    above: u32,
    below: Option<u32>,
}

/// Whether unnamed syscalls are refused by default (an errno other than ENOSYS itself, a
/// kill, a trap). Allow and log let them through anyway; trace hands them to a tracer.
fn denies_by_default(s: &LinuxSeccomp) -> bool {
    match s.default_action() {
        LinuxSeccompAction::ScmpActErrno => {
            s.default_errno_ret().unwrap_or(libc::EPERM as u32) != libc::ENOSYS as u32
        }
        LinuxSeccompAction::ScmpActKill
        | LinuxSeccompAction::ScmpActKillThread
        | LinuxSeccompAction::ScmpActKillProcess
        | LinuxSeccompAction::ScmpActTrap => true,
        _ => false,
    }
}

/// How the kernel tells an architecture's syscalls apart: the audit token in
/// `seccomp_data.arch`, and the block of numbers where the architecture adds new syscalls
/// (numbers outside it are never "newer"): x32 shares x86_64's token and numbers its calls
/// from `X32_SYSCALL_BIT`, with a block of x32-only variants of old calls from 512; 32-bit
/// ARM keeps private calls from 0xf0000. None for an architecture runr has no token for.
fn numbering(arch: ScmpArch) -> Option<(u32, u32, Option<u32>)> {
    // Values of AUDIT_ARCH_* (linux/audit.h): the ELF machine, 64BIT 0x80000000, LE 0x40000000.
    let token = match arch {
        ScmpArch::X86 => 0x4000_0003,
        ScmpArch::X8664 => {
            return Some((0xc000_003e, 0, Some(X32_SYSCALL_BIT)));
        }
        ScmpArch::X32 => {
            return Some((0xc000_003e, X32_SYSCALL_BIT, Some(X32_SYSCALL_BIT + 512)));
        }
        ScmpArch::Arm => return Some((0x4000_0028, 0, Some(0xf_0000))),
        ScmpArch::Aarch64 => 0xc000_00b7,
        ScmpArch::Loongarch64 => 0xc000_0102,
        ScmpArch::M68k => 0x0000_0004,
        ScmpArch::Mips => 0x0000_0008,
        ScmpArch::Mips64 => 0x8000_0008,
        ScmpArch::Mips64N32 => 0xa000_0008,
        ScmpArch::Mipsel => 0x4000_0008,
        ScmpArch::Mipsel64 => 0xc000_0008,
        ScmpArch::Mipsel64N32 => 0xe000_0008,
        ScmpArch::Ppc => 0x0000_0014,
        ScmpArch::Ppc64 => 0x8000_0015,
        ScmpArch::Ppc64Le => 0xc000_0015,
        ScmpArch::S390 => 0x0000_0016,
        ScmpArch::S390X => 0x8000_0016,
        ScmpArch::Parisc => 0x0000_000f,
        ScmpArch::Parisc64 => 0x8000_000f,
        ScmpArch::Riscv64 => 0xc000_00f3,
        ScmpArch::Sheb => 0x0000_002a,
        ScmpArch::Sh => 0x4000_002a,
        _ => return None,
    };
    Some((token, 0, None))
}

/// The ENOSYS ranges of a profile: per architecture of the filter, the numbers above the
/// highest syscall the profile names there (by libseccomp's table for that architecture).
fn newer_syscalls(s: &LinuxSeccomp, arches: &[ScmpArch]) -> Vec<NewerRange> {
    if !denies_by_default(s) {
        return Vec::new();
    }
    let names: std::collections::BTreeSet<&str> = s
        .syscalls()
        .iter()
        .flatten()
        .flat_map(|r| r.names().iter().map(String::as_str))
        .collect();
    let mut ranges = Vec::new();
    for &arch in arches {
        let Some((token, first, end)) = numbering(arch) else {
            continue;
        };
        // Names the architecture lacks fail; multiplexed calls reached only through
        // socketcall or ipc come back as negative pseudo numbers: neither counts.
        let newest = names
            .iter()
            .filter_map(|n| ScmpSyscall::from_name_by_arch(n, arch).ok())
            .filter_map(|nr| u32::try_from(i32::from(nr)).ok())
            .filter(|&nr| nr >= first && end.is_none_or(|end| nr < end))
            .max();
        // A profile naming nothing for an architecture gives nothing to compare with.
        if let Some(newest) = newest {
            ranges.push(NewerRange {
                token,
                above: newest,
                below: end,
            });
        }
    }
    ranges
}

/// The BPF prologue for `ranges`: ENOSYS for a number in one of its architecture's ranges,
/// otherwise on to the program that follows. Empty without ranges.
fn newer_syscalls_prologue(ranges: &[NewerRange]) -> Vec<libc::sock_filter> {
    const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    const JA: u16 = (libc::BPF_JMP | libc::BPF_JA) as u16;
    const JEQ: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    const JGT: u16 = (libc::BPF_JMP | libc::BPF_JGT | libc::BPF_K) as u16;
    const JGE: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
    const RET: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
    // Offsets in struct seccomp_data.
    const NR: u32 = 0;
    const ARCH: u32 = 4;
    let insn = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
    if ranges.is_empty() {
        return Vec::new();
    }
    let mut tokens: Vec<u32> = Vec::new();
    for r in ranges {
        if !tokens.contains(&r.token) {
            tokens.push(r.token);
        }
    }
    let mut out = vec![insn(LD_W_ABS, 0, 0, ARCH)];
    // Jumps to the end of the prologue, patched once its length is known.
    let mut to_end = Vec::new();
    for token in tokens {
        let mine: Vec<&NewerRange> = ranges.iter().filter(|r| r.token == token).collect();
        let checks: Vec<Vec<libc::sock_filter>> = mine
            .iter()
            .map(|r| match r.below {
                // above < nr: ENOSYS; else skip it.
                None => vec![insn(JGT, 0, 1, r.above), insn(RET, 0, 0, RET_ENOSYS)],
                // above < nr < below: ENOSYS; else skip the rest of this check.
                Some(below) => vec![
                    insn(JGT, 0, 2, r.above),
                    insn(JGE, 1, 0, below),
                    insn(RET, 0, 0, RET_ENOSYS),
                ],
            })
            .collect();
        // Not this architecture: jump over its block (load, checks, jump to the end),
        // with the accumulator still holding the token.
        let block = 1 + checks.iter().map(Vec::len).sum::<usize>() + 1;
        out.push(insn(
            JEQ,
            0,
            u8::try_from(block).expect("a few checks per architecture"),
            token,
        ));
        out.push(insn(LD_W_ABS, 0, 0, NR));
        out.extend(checks.into_iter().flatten());
        to_end.push(out.len());
        out.push(insn(JA, 0, 0, 0));
    }
    let end = out.len();
    for at in to_end {
        out[at].k = (end - at - 1) as u32;
    }
    out
}

/// BPF instructions as the bytes the kernel reads (see [`instructions`]).
fn as_bytes(program: &[libc::sock_filter]) -> Vec<u8> {
    program
        .iter()
        .flat_map(|i| {
            let mut b = [0u8; 8];
            b[..2].copy_from_slice(&i.code.to_ne_bytes());
            b[2] = i.jt;
            b[3] = i.jf;
            b[4..].copy_from_slice(&i.k.to_ne_bytes());
            b
        })
        .collect()
}

/// BPF instructions from their bytes (8 each, in the host's byte order).
fn instructions(bytes: &[u8]) -> Vec<libc::sock_filter> {
    bytes
        .chunks_exact(8)
        .map(|c| libc::sock_filter {
            code: u16::from_ne_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect()
}

/// Which runr binary this is: a program compiled by another build is not reused.
fn executable_identity() -> String {
    use std::os::unix::fs::MetadataExt;
    let exe = std::fs::metadata("/proc/self/exe");
    let (dev, ino, size, mtime) = exe.map_or((0, 0, 0, 0), |m| {
        (
            m.dev(),
            m.ino(),
            m.size(),
            m.mtime_nsec() + m.mtime() * 1_000_000_000,
        )
    });
    format!(
        "runr {} {dev}:{ino}:{size}:{mtime}\n",
        env!("CARGO_PKG_VERSION")
    )
}

/// `~` never appears in a container id, so the directory is nobody's state.
const CACHE_DIR: &str = "~seccomp";

fn cache_path(root: &Path, key: &[u8]) -> PathBuf {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut h);
    root.join(CACHE_DIR).join(format!("{:016x}", h.finish()))
}

/// At most this many programs stay in the cache; the least recently used go first.
const CACHE_ENTRIES: usize = 64;

fn read_cached(path: &Path, key: &[u8]) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).ok()?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).ok()?;
    let rest = bytes.strip_prefix(&(key.len() as u64).to_le_bytes()[..])?;
    let program = rest.strip_prefix(key)?;
    if program.is_empty() || program.len() % 8 != 0 {
        return None;
    }
    // The modification time marks the last use, for pruning (atime may not be kept).
    if let Err(e) = file.set_modified(std::time::SystemTime::now()) {
        tracing::debug!("seccomp cache {}: touch: {e}", path.display());
    }
    Some(program.to_vec())
}

/// Remove the least recently used files of the cache `dir` beyond `keep`. Other runr
/// processes may prune at the same time: a file already gone is no error.
fn prune_cache(dir: &Path, keep: usize) -> std::io::Result<()> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        match entry.metadata().and_then(|m| m.modified()) {
            Ok(used) => files.push((used, entry.path())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    for path in least_recently_used(files, keep) {
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

/// The entries beyond the `keep` most recently used.
fn least_recently_used<T>(mut files: Vec<(std::time::SystemTime, T)>, keep: usize) -> Vec<T> {
    files.sort_by_key(|f| std::cmp::Reverse(f.0));
    files.into_iter().skip(keep).map(|(_, p)| p).collect()
}

fn write_cached(path: &Path, key: &[u8], program: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().expect("cache files live in a directory");
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let mut bytes = (key.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(key);
    bytes.extend_from_slice(program);
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, &bytes)?;
    std::fs::rename(&tmp, path)?;
    // Only a new entry can take the cache over its bound: one readdir per compile.
    prune_cache(dir, CACHE_ENTRIES)
}

/// The filter's BPF program, as bytes (libseccomp 2.5 writes it only to a descriptor).
fn export(ctx: &ScmpFilterContext) -> Result<Vec<u8>> {
    use std::io::{Read, Seek};
    let fd = rustix::fs::memfd_create("seccomp-bpf", rustix::fs::MemfdFlags::CLOEXEC)
        .ctx(|| "memfd_create for the seccomp program")?;
    ctx.export_bpf(&fd)
        .map_err(|e| bad(format!("export the filter: {e}")))?;
    let mut file = std::fs::File::from(fd);
    let mut bytes = Vec::new();
    file.rewind()
        .and_then(|()| file.read_to_end(&mut bytes))
        .ctx(|| "read the seccomp program back")?;
    Ok(bytes)
}

impl Filter {
    /// Install the filter on the calling thread; with notify rules, returns the listener.
    pub(crate) fn load(&self) -> Result<Option<OwnedFd>> {
        let prog = libc::sock_fprog {
            len: u16::try_from(self.program.len())
                .map_err(|_| bad("the compiled filter is longer than the kernel's limit"))?,
            filter: self.program.as_ptr().cast_mut(),
        };
        // SAFETY: prog points at our program, which outlives the call; the kernel copies it.
        let r = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                SECCOMP_SET_MODE_FILTER,
                self.flags as libc::c_ulong,
                &prog as *const libc::sock_fprog,
            )
        };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            let hint = match e.raw_os_error() {
                Some(libc::EACCES) => " (needs no_new_privs or CAP_SYS_ADMIN)",
                Some(libc::EINVAL) => " (a flag this kernel does not know?)",
                _ => "",
            };
            return Err(e).ctx(|| format!("load the seccomp filter{hint}"));
        }
        if self.flags & FLAG_NEW_LISTENER == 0 {
            return Ok(None);
        }
        // SAFETY: with NEW_LISTENER the kernel returned a new descriptor that nothing else owns.
        Ok(Some(unsafe { OwnedFd::from_raw_fd(r as i32) }))
    }
}

/// Hand the notify descriptor of process `pid` to the seccomp agent listening at `listener`,
/// with the container's state, as the runtime spec lays it out.
pub(crate) fn send_to_agent(
    listener: &Listener,
    fd: &OwnedFd,
    pid: i32,
    state: &OciState,
) -> Result<()> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    let message = serde_json::json!({
        "ociVersion": state.oci_version,
        "fds": ["seccompFd"],
        "pid": pid,
        "metadata": listener.metadata.clone().unwrap_or_default(),
        "state": state.for_hooks(),
    });
    let path: &Path = &listener.path;
    let sock = std::os::unix::net::UnixStream::connect(path)
        .ctx(|| format!("connect to the seccomp agent at {}", path.display()))?;
    let body = serde_json::to_vec(&message).expect("state serializes");
    let fds = [fd.as_raw_fd()];
    sendmsg::<()>(
        sock.as_raw_fd(),
        &[std::io::IoSlice::new(&body)],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .ctx(|| format!("send the seccomp fd to the agent at {}", path.display()))?;
    Ok(())
}

/// The parent's side of [`Message::SeccompFd`](crate::process::sync::Message): pass the descriptor
/// on to the agent, then let the process go on.
pub(crate) fn relay(
    filter: Option<&Filter>,
    fd: Option<OwnedFd>,
    pid: i32,
    state: &OciState,
    sync: &crate::process::sync::SyncSocket,
) -> Result<()> {
    let listener = filter.and_then(|f| f.listener.as_ref());
    let (Some(listener), Some(fd)) = (listener, fd) else {
        return Err(Error::init(
            "the process sent a seccomp descriptor nobody asked for",
        ));
    };
    send_to_agent(listener, &fd, pid, state)?;
    sync.send(&crate::process::sync::Message::SeccompDone)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seccomp(json: &str) -> LinuxSeccomp {
        serde_json::from_str(json).unwrap()
    }

    fn compile_test(s: &LinuxSeccomp) -> Result<Filter> {
        compile(s, None)
    }

    /// What `program` answers for syscall `nr` of architecture `token` (arguments zero):
    /// a small classic-BPF interpreter for the instructions seccomp filters use.
    fn run_bpf(program: &[libc::sock_filter], token: u32, nr: u32) -> u32 {
        let mut data = [0u8; 64];
        data[..4].copy_from_slice(&nr.to_ne_bytes());
        data[4..8].copy_from_slice(&token.to_ne_bytes());
        let (mut a, mut pc) = (0u32, 0usize);
        loop {
            let i = program[pc];
            pc += 1;
            let k = i.k;
            let jump = |cond: bool| if cond { i.jt as usize } else { i.jf as usize };
            match u32::from(i.code) {
                c if c == libc::BPF_LD | libc::BPF_W | libc::BPF_ABS => {
                    let o = k as usize;
                    a = u32::from_ne_bytes(data[o..o + 4].try_into().unwrap());
                }
                c if c == libc::BPF_ALU | libc::BPF_AND | libc::BPF_K => a &= k,
                c if c == libc::BPF_JMP | libc::BPF_JA => pc += k as usize,
                c if c == libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K => pc += jump(a == k),
                c if c == libc::BPF_JMP | libc::BPF_JGT | libc::BPF_K => pc += jump(a > k),
                c if c == libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K => pc += jump(a >= k),
                c if c == libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K => pc += jump(a & k != 0),
                c if c == libc::BPF_RET | libc::BPF_K => return k,
                c => panic!("BPF instruction {c:#x} at {} not interpreted", pc - 1),
            }
        }
    }

    const ALLOW: u32 = 0x7fff_0000;
    const X86_64: u32 = 0xc000_003e;
    const I386: u32 = 0x4000_0003;
    fn errno(e: i32) -> u32 {
        0x0005_0000 | e as u32
    }
    fn nr(name: &str, arch: ScmpArch) -> u32 {
        i32::from(ScmpSyscall::from_name_by_arch(name, arch).unwrap()) as u32
    }

    /// A profile in the shape of those written before 2020: deny by default, allow a list.
    fn old_style(default: &str, extra: &str) -> LinuxSeccomp {
        seccomp(&format!(
            r#"{{"defaultAction":"{default}",
                "architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86","SCMP_ARCH_X32"],
                "syscalls":[{{"names":["read","write","openat","execve","clone","statx",
                  "chown32","socketcall","arch_prctl"],"action":"SCMP_ACT_ALLOW"}},
                  {{"names":["mkdir"],"action":"SCMP_ACT_ERRNO","errnoRet":18}}{extra}]}}"#
        ))
    }

    #[test]
    fn syscalls_newer_than_an_old_profile_answer_enosys() {
        let p = compile_test(&old_style("SCMP_ACT_ERRNO", ""))
            .unwrap()
            .program;
        let x64 = ScmpArch::X8664;
        for name in [
            "openat2",
            "clone3",
            "faccessat2",
            "close_range",
            "pidfd_open",
            "rseq",
        ] {
            assert_eq!(
                run_bpf(&p, X86_64, nr(name, x64)),
                errno(libc::ENOSYS),
                "{name}"
            );
        }
        // Numbers no libseccomp knows yet, and far beyond.
        assert_eq!(run_bpf(&p, X86_64, 470), errno(libc::ENOSYS));
        assert_eq!(run_bpf(&p, X86_64, 100_000), errno(libc::ENOSYS));
        // What the profile names keeps its action; older unnamed calls the default.
        assert_eq!(run_bpf(&p, X86_64, nr("statx", x64)), ALLOW);
        assert_eq!(run_bpf(&p, X86_64, nr("mkdir", x64)), errno(libc::EXDEV));
        assert_eq!(run_bpf(&p, X86_64, nr("add_key", x64)), errno(libc::EPERM));
        assert_eq!(run_bpf(&p, X86_64, nr("mount", x64)), errno(libc::EPERM));

        // i386 numbers its calls differently: statx is 383 there, 64-bit time calls above.
        let x86 = ScmpArch::X86;
        assert_eq!(run_bpf(&p, I386, nr("statx", x86)), ALLOW);
        assert_eq!(run_bpf(&p, I386, nr("chown32", x86)), ALLOW);
        assert_eq!(
            run_bpf(&p, I386, nr("clock_gettime64", x86)),
            errno(libc::ENOSYS)
        );
        assert_eq!(run_bpf(&p, I386, nr("add_key", x86)), errno(libc::EPERM));

        // x32: new calls follow x86_64's numbers under the x32 bit; the block of x32-only
        // variants of old calls (from 512, execve is one) is never "newer".
        let x32 = ScmpArch::X32;
        assert_eq!(nr("openat2", x32), X32_SYSCALL_BIT | 437);
        assert_eq!(run_bpf(&p, X86_64, nr("openat2", x32)), errno(libc::ENOSYS));
        assert!(nr("execve", x32) >= X32_SYSCALL_BIT + 512);
        assert_eq!(run_bpf(&p, X86_64, nr("execve", x32)), ALLOW);
        assert_eq!(run_bpf(&p, X86_64, nr("add_key", x32)), errno(libc::EPERM));
    }

    #[test]
    fn a_named_syscall_keeps_its_action_and_lowers_the_bar() {
        // Naming openat2 (437) makes close_range (436) an older unnamed call: EPERM.
        let named = r#",{"names":["openat2"],"action":"SCMP_ACT_ERRNO","errnoRet":13}"#;
        let p = compile_test(&old_style("SCMP_ACT_ERRNO", named))
            .unwrap()
            .program;
        let x64 = ScmpArch::X8664;
        assert_eq!(run_bpf(&p, X86_64, nr("openat2", x64)), errno(libc::EACCES));
        assert_eq!(
            run_bpf(&p, X86_64, nr("close_range", x64)),
            errno(libc::EPERM)
        );
        assert_eq!(
            run_bpf(&p, X86_64, nr("faccessat2", x64)),
            errno(libc::ENOSYS)
        );
    }

    #[test]
    fn only_a_denying_default_changes_newer_syscalls() {
        let x64 = ScmpArch::X8664;
        let openat2 = nr("openat2", x64);
        let kill = compile_test(&old_style("SCMP_ACT_KILL_PROCESS", "")).unwrap();
        assert_eq!(run_bpf(&kill.program, X86_64, openat2), errno(libc::ENOSYS));
        assert_eq!(
            run_bpf(&kill.program, X86_64, nr("mount", x64)),
            0x8000_0000
        );
        for default in ["SCMP_ACT_ALLOW", "SCMP_ACT_LOG"] {
            let s = old_style(default, "");
            assert!(newer_syscalls(&s, &architectures(&s).unwrap()).is_empty());
        }
        let s = seccomp(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":38,
                "syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW"}]}"#,
        );
        assert!(newer_syscalls(&s, &architectures(&s).unwrap()).is_empty());
        // Nothing named: nothing to compare with, the default answers everything.
        let s = seccomp(r#"{"defaultAction":"SCMP_ACT_ERRNO"}"#);
        assert!(newer_syscalls(&s, &architectures(&s).unwrap()).is_empty());
    }

    #[test]
    fn audit_tokens_match_libseccomp() {
        // libseccomp's program compares seccomp_data.arch with each architecture's token.
        for arch in [
            ScmpArch::X86,
            ScmpArch::X8664,
            ScmpArch::X32,
            ScmpArch::Arm,
            ScmpArch::Aarch64,
            ScmpArch::Loongarch64,
            ScmpArch::M68k,
            ScmpArch::Mips,
            ScmpArch::Mips64,
            ScmpArch::Mips64N32,
            ScmpArch::Mipsel,
            ScmpArch::Mipsel64,
            ScmpArch::Mipsel64N32,
            ScmpArch::Ppc,
            ScmpArch::Ppc64,
            ScmpArch::Ppc64Le,
            ScmpArch::S390,
            ScmpArch::S390X,
            ScmpArch::Parisc,
            ScmpArch::Parisc64,
            ScmpArch::Riscv64,
            ScmpArch::Sheb,
            ScmpArch::Sh,
        ] {
            let mut ctx = ScmpFilterContext::new(ScmpAction::Allow).unwrap();
            // One filter holds one byte order: the host's architecture goes first.
            ctx.remove_arch(ScmpArch::native()).unwrap();
            if ctx.add_arch(arch).is_err() {
                // Newer than this libseccomp (2.5.4 lacks loongarch64, m68k, sh).
                eprintln!("{arch:?}: not in this libseccomp");
                continue;
            }
            ctx.add_rule(
                ScmpAction::Errno(1),
                ScmpSyscall::from_name("read").unwrap(),
            )
            .unwrap();
            let program = instructions(&export(&ctx).unwrap());
            let (token, _, _) = numbering(arch).unwrap();
            // A big-endian architecture's program comes out in its byte order.
            let found = |i: &libc::sock_filter| i.k == token || i.k.swap_bytes() == token;
            assert!(program.iter().any(found), "{arch:?}: {token:#x}");
        }
    }

    #[test]
    fn the_cache_keeps_the_most_recently_used_programs() {
        let t = |s| std::time::UNIX_EPOCH + std::time::Duration::from_secs(s);
        let files = vec![(t(5), "e"), (t(1), "a"), (t(9), "i"), (t(3), "c")];
        let mut gone = least_recently_used(files.clone(), 2);
        gone.sort();
        assert_eq!(gone, ["a", "c"]);
        assert!(least_recently_used(files, 4).is_empty());

        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join(CACHE_DIR);
        std::fs::create_dir(&cache).unwrap();
        for i in 0..CACHE_ENTRIES + 3 {
            let f = std::fs::File::create(cache.join(format!("old{i:03}"))).unwrap();
            f.set_modified(t(1000 + i as u64)).unwrap();
        }
        let a = seccomp(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO"}]}"#,
        );
        compile(&a, Some(dir.path())).unwrap();
        let mut left: Vec<String> = std::fs::read_dir(&cache)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left.len(), CACHE_ENTRIES);
        // The new program stays; the four oldest files went.
        assert!(!left
            .iter()
            .any(|n| ["old000", "old001", "old002", "old003"].contains(&n.as_str())));
        assert!(left.contains(&"old004".to_string()));
        // A hit marks the entry used: it outlives files touched after it was written.
        let key = {
            let mut k = executable_identity().into_bytes();
            k.extend(serde_json::to_vec(&a).unwrap());
            k
        };
        let mine = cache_path(dir.path(), &key);
        std::fs::File::options()
            .write(true)
            .open(&mine)
            .unwrap()
            .set_modified(t(1))
            .unwrap();
        compile(&a, Some(dir.path())).unwrap();
        let used = std::fs::metadata(&mine).unwrap().modified().unwrap();
        assert!(used > t(1_000_000), "{used:?}");
    }

    #[test]
    fn the_cache_returns_the_same_program_and_only_for_the_same_section() {
        let dir = tempfile::tempdir().unwrap();
        let a = seccomp(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_ERRNO"}]}"#,
        );
        let b = seccomp(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["rmdir"],"action":"SCMP_ACT_ERRNO"}]}"#,
        );
        let fresh = compile(&a, None).unwrap().program;
        let first = compile(&a, Some(dir.path())).unwrap().program;
        let cached = compile(&a, Some(dir.path())).unwrap().program;
        let as_bytes = |p: &[libc::sock_filter]| {
            format!(
                "{:?}",
                p.iter()
                    .map(|i| (i.code, i.jt, i.jf, i.k))
                    .collect::<Vec<_>>()
            )
        };
        assert_eq!(as_bytes(&first), as_bytes(&fresh));
        assert_eq!(as_bytes(&cached), as_bytes(&fresh));
        assert_eq!(
            std::fs::read_dir(dir.path().join(CACHE_DIR))
                .unwrap()
                .count(),
            1
        );
        let other = compile(&b, Some(dir.path())).unwrap().program;
        assert_ne!(as_bytes(&other), as_bytes(&fresh));
        // A file under a's name holding another section is not taken for a's.
        let key_a = {
            let mut k = executable_identity().into_bytes();
            k.extend(serde_json::to_vec(&a).unwrap());
            k
        };
        let key_b = {
            let mut k = executable_identity().into_bytes();
            k.extend(serde_json::to_vec(&b).unwrap());
            k
        };
        std::fs::copy(
            cache_path(dir.path(), &key_b),
            cache_path(dir.path(), &key_a),
        )
        .unwrap();
        assert!(read_cached(&cache_path(dir.path(), &key_a), &key_a).is_none());
    }

    #[test]
    fn a_profile_with_every_action_and_operator_compiles() {
        let f = compile_test(&seccomp(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":38,
                "architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86","SCMP_ARCH_X32"],
                "flags":["SECCOMP_FILTER_FLAG_LOG","SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
                "syscalls":[
                  {"names":["read","write","no_such_call"],"action":"SCMP_ACT_ALLOW"},
                  {"names":["kill"],"action":"SCMP_ACT_KILL"},
                  {"names":["tkill"],"action":"SCMP_ACT_KILL_PROCESS"},
                  {"names":["tgkill"],"action":"SCMP_ACT_KILL_THREAD"},
                  {"names":["getpid"],"action":"SCMP_ACT_TRAP"},
                  {"names":["getppid"],"action":"SCMP_ACT_TRACE"},
                  {"names":["getuid"],"action":"SCMP_ACT_LOG"},
                  {"names":["mkdir"],"action":"SCMP_ACT_ERRNO","errnoRet":1},
                  {"names":["personality"],"action":"SCMP_ACT_ALLOW","args":[
                    {"index":0,"value":0,"op":"SCMP_CMP_EQ"},
                    {"index":0,"value":8,"op":"SCMP_CMP_EQ"}]},
                  {"names":["clone"],"action":"SCMP_ACT_ALLOW","args":[
                    {"index":0,"value":2114060288,"valueTwo":0,"op":"SCMP_CMP_MASKED_EQ"},
                    {"index":1,"value":5,"op":"SCMP_CMP_NE"},
                    {"index":2,"value":5,"op":"SCMP_CMP_LT"},
                    {"index":3,"value":5,"op":"SCMP_CMP_LE"},
                    {"index":4,"value":5,"op":"SCMP_CMP_GE"},
                    {"index":5,"value":5,"op":"SCMP_CMP_GT"}]}
                ]}"#,
        ))
        .unwrap();
        assert!(!f.program.is_empty());
        assert_eq!(f.flags, FLAG_LOG | FLAG_SPEC_ALLOW);
        assert!(f.listener.is_none());
    }

    #[test]
    fn notify_needs_a_listener_and_is_never_the_default() {
        let rule = r#""syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_NOTIFY"}]"#;
        let e = compile_test(&seccomp(&format!(
            r#"{{"defaultAction":"SCMP_ACT_ALLOW",{rule}}}"#
        )))
        .unwrap_err();
        assert!(e.to_string().contains("listenerPath"), "{e}");
        let f = compile_test(&seccomp(&format!(
            r#"{{"defaultAction":"SCMP_ACT_ALLOW","listenerPath":"/run/agent.sock",{rule}}}"#
        )))
        .unwrap();
        assert_eq!(f.flags, FLAG_NEW_LISTENER);
        assert!(compile_test(&seccomp(r#"{"defaultAction":"SCMP_ACT_NOTIFY"}"#)).is_err());
    }

    #[test]
    fn bad_argument_index_is_refused() {
        let e = compile_test(&seccomp(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],
                "action":"SCMP_ACT_ERRNO","args":[{"index":6,"value":0,"op":"SCMP_CMP_EQ"}]}]}"#,
        ))
        .unwrap_err();
        assert!(e.to_string().contains("index 6"), "{e}");
    }
}
