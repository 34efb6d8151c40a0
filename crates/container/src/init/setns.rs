//! The child side of an exec: a process cloned into the container's pid namespace joins its
//! other namespaces, gets its session and terminal, and goes through the same last steps as
//! the init ([`super::confine`]) before it execs the program.

use crate::error::{Context, Error, Result};
use crate::init;
use crate::namespaces;
use crate::process::stdio::ChildStdio;
use crate::process::sync::{Message, SyncSocket};
use nix::sched::CloneFlags;
use nix::sys::signal::SigSet;
use oci_spec::runtime::Process;
use std::os::fd::OwnedFd;

/// What the exec'd child needs, borrowed from the parent's memory (the clone copied it).
pub(crate) struct Args<'a> {
    pub(crate) process: &'a Process,
    pub(crate) sync: &'a SyncSocket,
    pub(crate) init_pidfd: &'a OwnedFd,
    pub(crate) init_pid: i32,
    /// Namespaces to join (all but pid, which the child was born in).
    pub(crate) join: CloneFlags,
    pub(crate) new_keyring: bool,
    pub(crate) confine: init::Confine<'a>,
    pub(crate) sigmask: &'a SigSet,
    pub(crate) stdio: &'a ChildStdio<'a>,
}

/// The exec'd child: never returns.
pub(crate) fn run(a: Args) -> ! {
    let err = match setup(&a) {
        Ok(ready) => ready.exec(),
        Err(e) => e,
    };
    let _ = a.sync.send(&Message::Error((&err).into()));
    // SAFETY: _exit skips the parent's atexit handlers and buffers, which this copy of the
    // process must not run.
    unsafe { libc::_exit(1) }
}

fn setup(a: &Args) -> Result<init::Ready> {
    a.stdio.install()?;
    init::reset_signals(a.sigmask)?;
    let Message::Proceed { .. } = init::expect(a.sync, "the go-ahead")? else {
        return Err(Error::init("unexpected message instead of the go-ahead"));
    };
    namespaces::join_process(a.init_pidfd, a.init_pid, a.join)?;
    if !a.join.contains(CloneFlags::CLONE_NEWNS) {
        // The container shares runr's mount namespace and its init is chrooted into the
        // rootfs: so is every process exec'd into it.
        crate::rootfs::chroot_like(a.init_pid)?;
    }
    if a.join.contains(CloneFlags::CLONE_NEWUSER) {
        namespaces::become_root_in_user_ns()?;
    }
    nix::unistd::setsid().ctx(|| "setsid")?;
    if a.new_keyring {
        init::join_new_session_keyring()?;
    }
    init::wait_joined(a.sync)?;
    if a.process.terminal().unwrap_or(false) {
        let master = crate::console::setup_in_container(a.process, false)?;
        a.sync.send_fd(&Message::Console, &master)?;
    }
    init::confine(a.process, &a.confine, a.sync)
}
