//! CVE-2019-5736 in containers that can ptrace: keep runr's own binary out of their reach.
//!
//! Every process runr puts into a container (the init until it execs the program, each
//! exec'd process until it does) is a clone of this one, so its `/proc/<pid>/exe` and
//! `/proc/<pid>/map_files/` are handles on the file we run from. Being non-dumpable closes
//! them to any process without CAP_SYS_PTRACE in the user namespace runr was started in; a
//! container with a user namespace of its own never has that. A container in our user
//! namespace that keeps CAP_SYS_PTRACE (every `--privileged` one) can open them, wait until
//! no runr runs any more, and reopen the binary for writing.
//!
//! So before cloning into such a container, this process moves onto a read-only view of its
//! binary, without re-executing itself (an exec of runr costs about a millisecond here):
//! 1. the view: a detached bind mount of the binary, made read-only (open_tree +
//!    mount_setattr); where the kernel lacks those, a sealed memfd copy;
//! 2. every mapping of the binary is replaced, at the same address: code and constants
//!    (never written) by the same pages through the view; data that the loader or we wrote
//!    (the writable segments and RELRO) by an anonymous copy;
//! 3. `PR_SET_MM_MAP` points `/proc/self/exe` at the view. The kernel allows that only once
//!    no mapping of the old file is left, which is why step 2 comes first.
//!
//! Reopening either handle for writing then fails (EROFS). The children inherit all of it.
//! It costs tens of microseconds, and only containers that can ptrace pay it.

use crate::error::{Context, Error, Result};
use oci_spec::runtime::{Capability, Process};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once this process runs from a protected view (it never goes back).
static PROTECTED: AtomicBool = AtomicBool::new(false);

/// Whether `process` may hold CAP_SYS_PTRACE (it is in its bounding set). In our user
/// namespace, such a process can open `/proc/<pid>/exe` of ours although we are
/// non-dumpable.
pub(crate) fn grants_ptrace(process: &Process) -> bool {
    process
        .capabilities()
        .as_ref()
        .and_then(|c| c.bounding().as_ref())
        .is_some_and(|b| b.contains(&Capability::SysPtrace))
}

/// Run from a read-only view of our binary from now on (see the module's text), unless we
/// already do. Must be called from a single-threaded process: the data of the binary is
/// copied while no other thread may write it.
pub(crate) fn protect_own_binary() -> Result<()> {
    if PROTECTED.load(Ordering::Relaxed) || runs_from_read_only_mount() {
        return Ok(());
    }
    let began = std::time::Instant::now();
    let view = read_only_view()?;
    let layout = Layout::read()?;
    for m in &layout.mappings {
        m.move_onto(&view, layout.relro)?;
    }
    point_exe_at(&view, &layout)?;
    PROTECTED.store(true, Ordering::Relaxed);
    tracing::debug!(
        "running from a read-only view of runr's binary (moved in {:?})",
        began.elapsed()
    );
    Ok(())
}

/// Installed on a read-only filesystem (or already moved onto a view): nothing to do.
fn runs_from_read_only_mount() -> bool {
    rustix::fs::statvfs("/proc/self/exe")
        .is_ok_and(|s| s.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY))
}

/// A read-only, readable descriptor of our own binary that no path can make writable.
fn read_only_view() -> Result<OwnedFd> {
    match read_only_mount_of_self() {
        Ok(fd) => Ok(fd),
        Err(e) => {
            tracing::debug!("no read-only bind of runr's binary ({e}); using a sealed copy");
            sealed_copy_of_self()
        }
    }
}

/// A detached bind mount of `/proc/self/exe`, read-only, opened for reading.
fn read_only_mount_of_self() -> Result<OwnedFd> {
    use rustix::mount::{open_tree, OpenTreeFlags};
    let tree = open_tree(
        rustix::fs::CWD,
        "/proc/self/exe",
        OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC,
    )
    .ctx(|| "open_tree /proc/self/exe (a private bind of runr's binary)")?;
    let mut attr = libc::mount_attr {
        attr_set: libc::MOUNT_ATTR_RDONLY | libc::MOUNT_ATTR_NOSUID | libc::MOUNT_ATTR_NODEV,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: `attr` is a valid mount_attr whose size we pass; with an empty path and
    // AT_EMPTY_PATH the kernel acts on the detached mount `tree` itself.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            &mut attr as *mut libc::mount_attr,
            std::mem::size_of::<libc::mount_attr>(),
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error())
            .ctx(|| "mount_setattr MOUNT_ATTR_RDONLY on the bind of runr's binary");
    }
    // open_tree gives an O_PATH descriptor; mmap needs one opened for reading.
    let path = format!("/proc/self/fd/{}", tree.as_raw_fd());
    rustix::fs::open(
        path.as_str(),
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .ctx(|| "open the read-only bind of runr's binary")
}

/// A memfd holding a copy of our binary, sealed against any change.
fn sealed_copy_of_self() -> Result<OwnedFd> {
    use rustix::fs::{MemfdFlags, SealFlags};
    let mut exe = std::fs::File::open("/proc/self/exe").ctx(|| "open /proc/self/exe")?;
    let memfd = rustix::fs::memfd_create("runr", MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)
        .ctx(|| "memfd_create for a sealed copy of runr's binary")?;
    let mut copy = std::fs::File::from(memfd);
    std::io::copy(&mut exe, &mut copy).ctx(|| "copy runr's binary into a memfd")?;
    let seals = SealFlags::SEAL | SealFlags::SHRINK | SealFlags::GROW | SealFlags::WRITE;
    rustix::fs::fcntl_add_seals(&copy, seals).ctx(|| "seal the copy of runr's binary")?;
    Ok(copy.into())
}

/// One mapping of our binary, as /proc/self/maps lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Mapping {
    start: usize,
    end: usize,
    prot: i32,
    offset: u64,
}

/// What [`protect_own_binary`] needs to know of this process's memory.
struct Layout {
    mappings: Vec<Mapping>,
    /// The binary's RELRO range: read-only now, but written by the loader.
    relro: Option<(usize, usize)>,
    /// The fields of /proc/self/stat that `PR_SET_MM_MAP` wants back.
    stat: MmFields,
}

impl Layout {
    fn read() -> Result<Layout> {
        let image = own_image().ok_or_else(|| {
            Error::init("runr's program headers (PT_PHDR) are not where the kernel says")
        })?;
        let maps = std::fs::read_to_string("/proc/self/maps").ctx(|| "read /proc/self/maps")?;
        let mappings = mappings_of(&maps, image.span);
        if mappings.is_empty() {
            return Err(Error::init(
                "/proc/self/maps shows no mapping of runr's own binary",
            ));
        }
        let stat = std::fs::read_to_string("/proc/self/stat").ctx(|| "read /proc/self/stat")?;
        let stat = MmFields::parse(&stat)
            .ok_or_else(|| Error::init(format!("unexpected /proc/self/stat: {stat:?}")))?;
        Ok(Layout {
            mappings,
            relro: image.relro,
            stat,
        })
    }
}

/// The file mappings in `maps` (the text of /proc/PID/maps) inside `span`, the address
/// range the loader reserved for our executable. By address, not by device and inode: on
/// overlayfs, maps names the underlying file, which stat of /proc/self/exe does not.
fn mappings_of(maps: &str, span: (usize, usize)) -> Vec<Mapping> {
    let mut out = Vec::new();
    for line in maps.lines() {
        let mut f = line.split_ascii_whitespace();
        let (Some(range), Some(perms), Some(offset), Some(_dev), Some(inode)) =
            (f.next(), f.next(), f.next(), f.next(), f.next())
        else {
            continue;
        };
        if inode == "0" {
            // Anonymous (the .bss beyond the file, say): nothing of the file.
            continue;
        }
        let Some((s, e)) = range.split_once('-') else {
            continue;
        };
        let (Ok(start), Ok(end), Ok(offset)) = (
            usize::from_str_radix(s, 16),
            usize::from_str_radix(e, 16),
            u64::from_str_radix(offset, 16),
        ) else {
            continue;
        };
        let p = perms.as_bytes();
        let mut prot = libc::PROT_NONE;
        for (i, bit) in [libc::PROT_READ, libc::PROT_WRITE, libc::PROT_EXEC]
            .into_iter()
            .enumerate()
        {
            if p.get(i).is_some_and(|c| *c != b'-') {
                prot |= bit;
            }
        }
        if start >= span.0 && end <= span.1 {
            out.push(Mapping {
                start,
                end,
                prot,
                offset,
            });
        }
    }
    out
}

/// Where our executable lies in memory, from its program headers.
struct Image {
    /// From the lowest to the highest page of its PT_LOAD segments.
    span: (usize, usize),
    /// The RELRO range: read-only now, but written by the loader.
    relro: Option<(usize, usize)>,
}

/// The [`Image`] of our executable; `None` without PT_PHDR, which the load bias is
/// worked out from (every PIE the toolchain links has one).
fn own_image() -> Option<Image> {
    // SAFETY: getauxval only reads the auxiliary vector the kernel gave this process.
    let (phdr, phnum) = unsafe {
        (
            libc::getauxval(libc::AT_PHDR) as usize,
            libc::getauxval(libc::AT_PHNUM) as usize,
        )
    };
    if phdr == 0 || phnum == 0 {
        return None;
    }
    // SAFETY: AT_PHDR points at the executable's program headers, AT_PHNUM of them, mapped
    // for the life of the process.
    let headers = unsafe { std::slice::from_raw_parts(phdr as *const libc::Elf64_Phdr, phnum) };
    // The load bias: where PT_PHDR is, against where it says it is.
    let h = headers.iter().find(|h| h.p_type == libc::PT_PHDR)?;
    let bias = phdr.wrapping_sub(h.p_vaddr as usize);
    let page = 4096usize;
    let loads = headers.iter().filter(|h| h.p_type == libc::PT_LOAD);
    let lo = loads.clone().map(|h| h.p_vaddr as usize).min()?;
    let hi = loads.map(|h| (h.p_vaddr + h.p_memsz) as usize).max()?;
    let span = (
        bias.wrapping_add(lo) / page * page,
        bias.wrapping_add(hi).div_ceil(page) * page,
    );
    let relro = headers
        .iter()
        .find(|h| h.p_type == libc::PT_GNU_RELRO)
        .map(|h| {
            let start = bias.wrapping_add(h.p_vaddr as usize);
            (start, start + h.p_memsz as usize)
        });
    Some(Image { span, relro })
}

impl Mapping {
    fn len(&self) -> usize {
        self.end - self.start
    }

    /// Whether the pages may differ from the file: written (data, or relocations).
    fn written(&self, relro: Option<(usize, usize)>) -> bool {
        self.prot & libc::PROT_WRITE != 0
            || relro.is_some_and(|(s, e)| s < self.end && e > self.start)
    }

    /// Replace this mapping by one that does not refer to the old file (see the module).
    fn move_onto(&self, view: &OwnedFd, relro: Option<(usize, usize)>) -> Result<()> {
        if self.prot == libc::PROT_NONE {
            return self.replace_with_empty();
        }
        if !self.written(relro) {
            return self.remap_from(view);
        }
        self.replace_with_copy()
    }

    /// The same pages of the file, through the view.
    fn remap_from(&self, view: &OwnedFd) -> Result<()> {
        // SAFETY: MAP_FIXED over our own never-written mapping of the same file contents:
        // every byte at these addresses is the same before and after, so code running from
        // them (this very function, possibly) goes on unchanged.
        let p = unsafe {
            libc::mmap(
                self.start as *mut libc::c_void,
                self.len(),
                self.prot,
                libc::MAP_PRIVATE | libc::MAP_FIXED,
                view.as_raw_fd(),
                self.offset as libc::off_t,
            )
        };
        if p == libc::MAP_FAILED || p as usize != self.start {
            return Err(std::io::Error::last_os_error()).ctx(|| {
                format!(
                    "mmap {:#x} of runr's binary from the read-only view",
                    self.start
                )
            });
        }
        Ok(())
    }

    /// A reserved, inaccessible range (an alignment gap): its contents do not matter.
    fn replace_with_empty(&self) -> Result<()> {
        // SAFETY: MAP_FIXED over an inaccessible range of our own binary that nothing can
        // read; it stays inaccessible.
        let p = unsafe {
            libc::mmap(
                self.start as *mut libc::c_void,
                self.len(),
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error())
                .ctx(|| format!("mmap over the gap at {:#x} of runr's binary", self.start));
        }
        Ok(())
    }

    /// An anonymous copy of the pages, moved over the original.
    fn replace_with_copy(&self) -> Result<()> {
        let len = self.len();
        // SAFETY: a new private anonymous mapping at an address of the kernel's choosing.
        let tmp = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if tmp == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error())
                .ctx(|| format!("mmap {len} bytes for a copy of runr's data"));
        }
        // SAFETY: both ranges are mapped and `len` long, the source readable (its prot has
        // PROT_READ: only PROT_NONE gaps lack it and they do not come here) and the target
        // writable; they do not overlap. This process is single-threaded (the caller's
        // promise) and nothing between the copy and the move below writes to the source.
        // The move puts identical bytes at the same addresses, so every pointer into them
        // stays valid.
        let moved = unsafe {
            std::ptr::copy_nonoverlapping(self.start as *const u8, tmp as *mut u8, len);
            libc::mprotect(tmp, len, self.prot) == 0
                && libc::mremap(
                    tmp,
                    len,
                    len,
                    libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED,
                    self.start as *mut libc::c_void,
                ) != libc::MAP_FAILED
        };
        if !moved {
            let e = std::io::Error::last_os_error();
            // SAFETY: `tmp` is our own mapping of `len` bytes, not yet moved anywhere.
            unsafe { libc::munmap(tmp, len) };
            return Err(e).ctx(|| format!("move a copy of runr's data to {:#x}", self.start));
        }
        Ok(())
    }
}

/// The memory-layout fields of /proc/self/stat (proc(5), fields 26-28 and 45-51).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct MmFields {
    start_code: u64,
    end_code: u64,
    start_stack: u64,
    start_data: u64,
    end_data: u64,
    start_brk: u64,
    arg_start: u64,
    arg_end: u64,
    env_start: u64,
    env_end: u64,
}

impl MmFields {
    fn parse(stat: &str) -> Option<MmFields> {
        // Fields after the command name (which may hold anything, parentheses included)
        // start with field 3.
        let rest = &stat[stat.rfind(')')? + 1..];
        let f: Vec<u64> = rest
            .split_ascii_whitespace()
            .skip(1)
            .map(|v| v.parse().unwrap_or(0))
            .collect();
        let at = |field: usize| f.get(field - 4).copied();
        Some(MmFields {
            start_code: at(26)?,
            end_code: at(27)?,
            start_stack: at(28)?,
            start_data: at(45)?,
            end_data: at(46)?,
            start_brk: at(47)?,
            arg_start: at(48)?,
            arg_end: at(49)?,
            env_start: at(50)?,
            env_end: at(51)?,
        })
    }
}

/// `struct prctl_mm_map` (linux/prctl.h).
#[repr(C)]
struct PrctlMmMap {
    start_code: u64,
    end_code: u64,
    start_data: u64,
    end_data: u64,
    start_brk: u64,
    brk: u64,
    start_stack: u64,
    arg_start: u64,
    arg_end: u64,
    env_start: u64,
    env_end: u64,
    auxv: u64,
    auxv_size: u32,
    exe_fd: u32,
}

const PR_SET_MM_MAP: libc::c_ulong = 14;

/// Make `view` our /proc/self/exe. `PR_SET_MM_MAP` (rather than `PR_SET_MM_EXE_FILE`,
/// which wants CAP_SYS_RESOURCE) takes the whole layout; we hand it back unchanged.
fn point_exe_at(view: &OwnedFd, layout: &Layout) -> Result<()> {
    // SAFETY: brk(0) changes nothing and returns the current program break.
    let brk = unsafe { libc::syscall(libc::SYS_brk, 0) } as u64;
    let s = layout.stat;
    let map = PrctlMmMap {
        start_code: s.start_code,
        end_code: s.end_code,
        start_data: s.start_data,
        end_data: s.end_data,
        start_brk: s.start_brk,
        brk,
        start_stack: s.start_stack,
        arg_start: s.arg_start,
        arg_end: s.arg_end,
        env_start: s.env_start,
        env_end: s.env_end,
        auxv: 0,
        auxv_size: 0,
        exe_fd: view.as_raw_fd() as u32,
    };
    // SAFETY: `map` is a valid prctl_mm_map whose size we pass; with auxv_size 0 the kernel
    // keeps the auxiliary vector, and every other field is the value it already has.
    let r = unsafe {
        libc::prctl(
            libc::PR_SET_MM,
            PR_SET_MM_MAP,
            &map as *const PrctlMmMap,
            std::mem::size_of::<PrctlMmMap>(),
            0,
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error())
            .ctx(|| "prctl(PR_SET_MM_MAP) to run from the read-only view of runr's binary");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mappings_of_one_file_are_found() {
        let maps = "\
55d0c0000000-55d0c00ed000 r--p 00000000 fd:01 1234    /usr/bin/runr
55d0c00ee000-55d0c045d000 r-xp 000ed000 fd:01 1234    /usr/bin/runr
55d0c045d000-55d0c048c000 r--p 0045b000 fd:01 1234    /usr/bin/runr
55d0c048c000-55d0c048d000 rw-p 00489000 fd:01 1234    /usr/bin/runr
55d0c048d000-55d0c048e000 rw-p 00000000 00:00 0
7f0000000000-7f0000100000 r-xp 00000000 fd:01 99      /usr/lib/libc.so.6
7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0       [stack]
";
        let m = mappings_of(maps, (0x55d0c0000000, 0x55d0c048e000));
        assert_eq!(m.len(), 4);
        assert_eq!(
            m[1],
            Mapping {
                start: 0x55d0c00ee000,
                end: 0x55d0c045d000,
                prot: libc::PROT_READ | libc::PROT_EXEC,
                offset: 0xed000
            }
        );
        assert_eq!(m[3].prot, libc::PROT_READ | libc::PROT_WRITE);
        // RELRO (read-only now, written by the loader) is copied; code is remapped.
        let relro = Some((0x55d0c045db70, 0x55d0c048c000));
        assert!(m[2].written(relro));
        assert!(!m[1].written(relro));
        assert!(!m[0].written(relro));
        assert!(m[3].written(None));
    }

    #[test]
    fn stat_fields_are_read_past_the_command_name() {
        let mut fields: Vec<String> = (3..=52).map(|n| n.to_string()).collect();
        fields[0] = "S".into();
        let line = format!("42 (a) (b c)) {}", fields.join(" "));
        let f = MmFields::parse(&line).unwrap();
        assert_eq!((f.start_code, f.end_code, f.start_stack), (26, 27, 28));
        assert_eq!((f.start_data, f.env_end), (45, 51));
        assert!(MmFields::parse("42 (a) S 1 2").is_none());
    }

    #[test]
    fn our_own_stat_and_maps_parse() {
        let l = Layout::read().unwrap();
        assert!(l.stat.start_code < l.stat.end_code);
        assert!(l.mappings.iter().any(|m| m.prot & libc::PROT_EXEC != 0));
    }
}
