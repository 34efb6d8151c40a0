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
use crate::hooks::HookState;
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
    for arch in s.architectures().iter().flatten() {
        let name = serde_json::to_value(arch)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let a: ScmpArch = name
            .parse()
            .map_err(|_| bad(format!("unknown architecture {name}")))?;
        ctx.add_arch(a)
            .map_err(|e| lib(&format!("architecture {name}"), e))?;
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
    export(&ctx)
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

fn read_cached(path: &Path, key: &[u8]) -> Option<Vec<u8>> {
    let bytes = std::fs::read(path).ok()?;
    let rest = bytes.strip_prefix(&(key.len() as u64).to_le_bytes()[..])?;
    let program = rest.strip_prefix(key)?;
    (!program.is_empty() && program.len() % 8 == 0).then(|| program.to_vec())
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
    std::fs::rename(&tmp, path)
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
    state: &HookState,
) -> Result<()> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    let message = serde_json::json!({
        "ociVersion": state.oci_version,
        "fds": ["seccompFd"],
        "pid": pid,
        "metadata": listener.metadata.clone().unwrap_or_default(),
        "state": state,
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

/// The parent's side of [`Message::SeccompFd`](crate::sync::Message): pass the descriptor
/// on to the agent, then let the process go on.
pub(crate) fn relay(
    filter: Option<&Filter>,
    fd: Option<OwnedFd>,
    pid: i32,
    state: &HookState,
    sync: &crate::sync::SyncSocket,
) -> Result<()> {
    let listener = filter.and_then(|f| f.listener.as_ref());
    let (Some(listener), Some(fd)) = (listener, fd) else {
        return Err(Error::Init(
            "the process sent a seccomp descriptor nobody asked for".into(),
        ));
    };
    send_to_agent(listener, &fd, pid, state)?;
    sync.send(&crate::sync::Message::SeccompDone)
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
