//! Thin wrappers over the few system calls no crate offers in the form we need.

use crate::error::{Context, Error, Result};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::time::Duration;

/// clone3(2)'s argument block (linux/sched.h); libc does not export it.
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// linux/sched.h; libc does not export it.
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// What [`clone_process`] returned in this process.
pub(crate) enum Forked {
    /// We are the new child.
    Child,
    /// We are the parent; the child's pid.
    Parent { pid: i32 },
}

/// Fork with namespace `flags`, like fork(2) but able to create every namespace at once so
/// the child is, for instance, pid 1 of a new pid namespace owned by a new user namespace.
///
/// The child is born non-dumpable (the flag is copied at fork, so the caller becomes
/// non-dumpable too): it may be born into a pid namespace others already live in, and
/// nothing there may open its /proc/<pid>/exe (our binary) or ptrace it before it execs the
/// container's program.
///
/// One exception, `Dumpable::UntilMapped`: an unprivileged parent can write the id maps of
/// the child's new user namespace (or have newuidmap do it) only while /proc/<child> is
/// owned by the user, that is while the child is dumpable. The child is then in no
/// container yet, and turns non-dumpable as soon as its maps are written ([`set_non_dumpable`]).
///
/// The caller must be single-threaded: the child is a copy of this thread only.
pub(crate) fn clone_process(flags: u64, dumpable: Dumpable, what: &str) -> Result<Forked> {
    clone_process_into(flags, None, None, dumpable, what)
}

/// [`clone_process`], the child born in the cgroup2 directory `cgroup` if one is given
/// (CLONE_INTO_CGROUP), its pid written to `record` by the kernel before clone3 returns
/// if that is given (CLONE_PARENT_SETTID).
pub(crate) fn clone_process_into(
    flags: u64,
    cgroup: Option<BorrowedFd>,
    record: Option<&std::sync::atomic::AtomicI32>,
    dumpable: Dumpable,
    what: &str,
) -> Result<Forked> {
    match dumpable {
        Dumpable::Never => set_non_dumpable()?,
        Dumpable::UntilMapped => {
            nix::sys::prctl::set_dumpable(true).ctx(|| "prctl(PR_SET_DUMPABLE, 1)")?
        }
    }
    // With CLONE_PARENT the child gets our own exit signal, and clone3 wants 0 here.
    let exit_signal = match flags & libc::CLONE_PARENT as u64 {
        0 => libc::SIGCHLD as u64,
        _ => 0,
    };
    let mut args = CloneArgs {
        flags,
        exit_signal,
        ..Default::default()
    };
    if let Some(fd) = cgroup {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = fd.as_raw_fd() as u64;
    }
    if let Some(slot) = record {
        args.flags |= libc::CLONE_PARENT_SETTID as u64;
        args.parent_tid = slot.as_ptr() as u64;
    }
    // SAFETY: clone3 without CLONE_VM and without a stack behaves like fork(2): the child gets
    // a copy of the address space and continues on its copy of this stack. `args` lives
    // across the call. The process is single-threaded (documented requirement of the
    // callers), so no lock can be held by another thread at the moment of the copy.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut args as *mut CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match ret {
        -1 => Err(std::io::Error::last_os_error()).ctx(|| format!("clone3 {what}")),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent { pid: pid as i32 }),
    }
}

/// Whether our own executable (runr's binary) can be opened for writing with our effective
/// ids. In doubt (an unexpected error), it counts as writable.
pub(crate) fn own_binary_writable() -> bool {
    use rustix::fs::{Access, AtFlags, CWD};
    let access = rustix::fs::accessat(CWD, "/proc/self/exe", Access::WRITE_OK, AtFlags::EACCESS);
    !matches!(
        access,
        Err(rustix::io::Errno::ACCESS | rustix::io::Errno::ROFS)
    )
}

/// Whether a cloned child starts dumpable (see [`clone_process`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dumpable {
    Never,
    UntilMapped,
}

/// A pidfd for a process we did not create.
pub(crate) fn pidfd_open(pid: i32) -> std::io::Result<OwnedFd> {
    // SAFETY: plain syscall with integer arguments; on success it returns a new fd we own.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` is a freshly returned descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Send `sig` through a pidfd: no risk of hitting a recycled pid.
pub(crate) fn pidfd_send_signal(pidfd: &OwnedFd, sig: i32) -> std::io::Result<()> {
    // SAFETY: plain syscall; a null siginfo means "as kill(2) would send it".
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Wait until the process behind `pidfd` has exited; `false` if `timeout` passed first.
pub(crate) fn pidfd_wait_exit(pidfd: &OwnedFd, timeout: Option<Duration>) -> std::io::Result<bool> {
    let ms = timeout.map_or(-1, |t| t.as_millis().min(i32::MAX as u128) as i32);
    Ok(poll_in(&[pidfd.as_raw_fd()], ms)?[0])
}

/// poll(2) for input on `fds` for up to `timeout_ms` (-1: no limit), retrying on EINTR.
/// Which of them are ready (readable, hung up or in error); all `false` on timeout.
pub(crate) fn poll_in(fds: &[RawFd], timeout_ms: i32) -> std::io::Result<Vec<bool>> {
    let mut pfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    loop {
        // SAFETY: `pfds` is a valid array of pollfds of the given length.
        let r = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, timeout_ms) };
        if r >= 0 {
            return Ok(pfds.iter().map(|p| p.revents != 0).collect());
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}

/// The body of a cloned child: run `f`, which must end the process itself (by exec or
/// `_exit`); a return or a panic ends it with status 1.
pub(crate) fn child_main(f: impl FnOnce()) -> ! {
    // A panic must never unwind into the parent's code (and its undo guards) in this copy.
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    // SAFETY: leave at once without running the parent's destructors or atexit handlers.
    unsafe { libc::_exit(1) }
}

/// Start time (clock ticks since boot, field 22 of /proc/PID/stat) and whether it is a zombie.
/// `None` if there is no such process.
pub(crate) fn process_start(pid: i32) -> Option<(u64, bool)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&stat)
}

fn parse_stat(stat: &str) -> Option<(u64, bool)> {
    // The command name (field 2) may contain spaces and ')': fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split(' ');
    let state = fields.next()?;
    // `rest` starts at field 3 (state); field 22 is 19 further on.
    let start = fields.nth(18)?.parse().ok()?;
    Some((start, state == "Z" || state == "X"))
}

/// Mark every descriptor from `first` up close-on-exec, so that only what the container
/// should get survives the exec (CVE-2024-21626).
pub(crate) fn cloexec_from(first: u32) -> Result<()> {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only sets flags on descriptors.
    let r = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error()).ctx(|| "close_range(CLOEXEC)");
    }
    Ok(())
}

/// Write a whole file with one write(2) (for /proc and /sys files that want exactly that).
pub(crate) fn write_file(path: impl AsRef<Path>, data: &str) -> Result<()> {
    let path = path.as_ref();
    std::fs::write(path, data).ctx(|| format!("write {data:?} to {}", path.display()))
}

/// `prctl(PR_SET_DUMPABLE, 0)`: /proc/PID of a non-dumpable process is owned by root and
/// cannot be ptraced, so nothing in the container can reach the runtime through it.
pub(crate) fn set_non_dumpable() -> Result<()> {
    nix::sys::prctl::set_dumpable(false).ctx(|| "prctl(PR_SET_DUMPABLE, 0)")
}

/// Give back the pages of read-only, never-written file mappings (code and constants of
/// runr and its libraries) while the init waits in the created state: they stay in the page
/// cache and fault back in, unchanged, when the init resumes. RELRO ranges are kept, since
/// the loader wrote relocations there and the file no longer holds their contents.
fn release_clean_pages() {
    // SAFETY: malloc_trim only returns free heap memory to the kernel.
    unsafe { libc::malloc_trim(0) };
    // SAFETY: the callback only reads the program headers it is handed, and the data
    // pointer is a live Ranges we own for the duration of the call.
    let mut ranges = Ranges::default();
    unsafe {
        libc::dl_iterate_phdr(
            Some(collect_readonly),
            &mut ranges as *mut _ as *mut libc::c_void,
        );
    }
    let page = 4096usize;
    for &(start, end) in &ranges.items[..ranges.len] {
        // Only whole pages inside the segment, so no neighbouring data is touched.
        let s = start.div_ceil(page) * page;
        let e = end / page * page;
        if e > s {
            // SAFETY: [s, e) lies inside a read-only PT_LOAD segment outside RELRO: a
            // private file mapping never written to, whose contents the file still holds.
            // (rustix makes the system call itself, so libc's code, dropped here too, is
            // not faulted back in for it.)
            let _ = unsafe {
                rustix::mm::madvise(
                    s as *mut libc::c_void,
                    e - s,
                    rustix::mm::Advice::LinuxDontNeed,
                )
            };
        }
    }
}

/// Release memory (see `release_clean_pages`), then open `path` with `flags` | O_CLOEXEC:
/// for an open that blocks (a fifo), so the wait holds as few pages as possible. Only the
/// open's own code faults back in; errors are formatted by the caller, after the wait.
pub(crate) fn release_memory_then_open(
    path: &std::ffi::CStr,
    flags: rustix::fs::OFlags,
) -> rustix::io::Result<OwnedFd> {
    release_clean_pages();
    rustix::fs::open(
        path,
        flags | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
}

/// Read-only ranges to release, on the stack: freeing a heap buffer after the madvise
/// calls would fault libc's allocator back in.
struct Ranges {
    items: [(usize, usize); 64],
    len: usize,
}

impl Default for Ranges {
    fn default() -> Self {
        Ranges {
            items: [(0, 0); 64],
            len: 0,
        }
    }
}

impl Ranges {
    /// Add a range; beyond capacity the range is simply kept in memory.
    fn push(&mut self, range: (usize, usize)) {
        if let Some(slot) = self.items.get_mut(self.len) {
            *slot = range;
            self.len += 1;
        }
    }
}

/// dl_iterate_phdr callback: push the read-only PT_LOAD ranges of one object, minus RELRO.
unsafe extern "C" fn collect_readonly(
    info: *mut libc::dl_phdr_info,
    _size: usize,
    data: *mut libc::c_void,
) -> libc::c_int {
    // SAFETY: the loader passes a valid info whose dlpi_phdr has dlpi_phnum entries, and
    // `data` is the Ranges passed to dl_iterate_phdr above.
    let (info, ranges) = unsafe { (&*info, &mut *(data as *mut Ranges)) };
    // SAFETY: as above.
    let phdrs = unsafe { std::slice::from_raw_parts(info.dlpi_phdr, info.dlpi_phnum as usize) };
    let base = info.dlpi_addr as usize;
    let relro = phdrs
        .iter()
        .find(|p| p.p_type == libc::PT_GNU_RELRO)
        .map(|p| {
            (
                base + p.p_vaddr as usize,
                base + (p.p_vaddr + p.p_memsz) as usize,
            )
        });
    for p in phdrs {
        if p.p_type != libc::PT_LOAD
            || p.p_flags & libc::PF_W != 0
            || p.p_memsz == 0
            || p.p_filesz < p.p_memsz
        {
            continue;
        }
        let (start, end) = (
            base + p.p_vaddr as usize,
            base + (p.p_vaddr + p.p_memsz) as usize,
        );
        match relro {
            Some((rs, re)) if rs < end && re > start => {
                if start < rs {
                    ranges.push((start, rs));
                }
                if re < end {
                    ranges.push((re, end));
                }
            }
            _ => ranges.push((start, end)),
        }
    }
    0
}

/// At most this many descriptors ride with one datagram (a spawner's answer carries six).
pub(crate) const MAX_PASSED_FDS: usize = 6;

/// Send one datagram on a SOCK_SEQPACKET socket with `fds` attached (SCM_RIGHTS). A peer
/// that has gone is an EPIPE error, never a SIGPIPE.
pub(crate) fn send_datagram(
    socket: std::os::fd::BorrowedFd,
    bytes: &[u8],
    fds: &[RawFd],
) -> std::io::Result<()> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    let rights = [ControlMessage::ScmRights(fds)];
    let cmsgs: &[ControlMessage] = if fds.is_empty() { &[] } else { &rights };
    loop {
        match sendmsg::<()>(
            socket.as_raw_fd(),
            &[std::io::IoSlice::new(bytes)],
            cmsgs,
            MsgFlags::MSG_NOSIGNAL,
            None,
        ) {
            Err(nix::errno::Errno::EINTR) => continue,
            r => return r.map(|_| ()).map_err(Into::into),
        }
    }
}

/// The next datagram on a SOCK_SEQPACKET socket and the descriptors that came with it
/// (close-on-exec); `None` at end-of-file. The length is peeked first so the buffer is just
/// as large (a fixed 64 KiB one, zeroed, was a sixth of the runtime's own heap). A reset
/// (the peer died with a datagram of ours unread) is reported once by the kernel; what the
/// peer sent before it died is still queued, so it is skipped.
pub(crate) fn recv_datagram(
    socket: std::os::fd::BorrowedFd,
    flags: nix::sys::socket::MsgFlags,
) -> std::io::Result<Option<(Vec<u8>, Vec<OwnedFd>)>> {
    use nix::errno::Errno;
    use nix::sys::socket::{recv, recvmsg, ControlMessageOwned, MsgFlags};
    let len = loop {
        match recv(
            socket.as_raw_fd(),
            &mut [],
            MsgFlags::MSG_PEEK | MsgFlags::MSG_TRUNC | flags,
        ) {
            Err(Errno::EINTR | Errno::ECONNRESET) => continue,
            r => break r?,
        }
    };
    let mut buf = vec![0u8; len.max(1)];
    let mut cmsg = nix::cmsg_space!([RawFd; MAX_PASSED_FDS]);
    loop {
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        match recvmsg::<()>(
            socket.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_CMSG_CLOEXEC | flags,
        ) {
            Err(Errno::EINTR | Errno::ECONNRESET) => continue,
            r => {
                let msg = r?;
                let mut fds = Vec::new();
                for c in msg.cmsgs()? {
                    if let ControlMessageOwned::ScmRights(raw) = c {
                        // SAFETY: the kernel just installed these descriptors for us.
                        fds.extend(raw.iter().map(|f| unsafe { OwnedFd::from_raw_fd(*f) }));
                    }
                }
                let n = msg.bytes;
                if n == 0 {
                    return Ok(None);
                }
                buf.truncate(n);
                return Ok(Some((buf, fds)));
            }
        }
    }
}

/// Refuse (naming `what` needs it) unless the calling process has a single thread: a fork
/// or clone copies the calling thread only, and a lock another thread held would stay
/// locked in the child for good.
pub fn require_single_thread(what: &str) -> Result<()> {
    let threads = std::fs::read_dir("/proc/self/task")
        .ctx(|| "read /proc/self/task")?
        .count();
    if threads > 1 {
        return Err(Error::Invalid(format!(
            "{what} needs a single-threaded process; this one has {threads} threads"
        )));
    }
    Ok(())
}

/// An executable file `name` in the directories of PATH (/usr/bin and /bin without one).
pub(crate) fn find_executable(name: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

/// Whether `p` is a file with an execute bit.
pub(crate) fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_odd_command_name() {
        let line = "42 (a) b (c)) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 12345 1000 10";
        assert_eq!(parse_stat(line), Some((12345, false)));
        let zombie = "7 (x) Z 1 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 99 0 0";
        assert_eq!(parse_stat(zombie), Some((99, true)));
    }

    #[test]
    fn own_process_has_a_start_time() {
        let (start, zombie) = process_start(std::process::id() as i32).unwrap();
        assert!(start > 0);
        assert!(!zombie);
    }
}
