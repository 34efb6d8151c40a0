//! What creating a container's init and exec'ing a process share on the parent's side: the
//! clone, the hand-over (the child's cgroup, id maps and network devices, before it can
//! fork, run a hook or exec), and the conversation over the sync channel that follows until
//! the child is ready (an init) or has exec'd (a process). Until the caller releases it, a
//! child whose create or exec fails part-way is killed and reaped.

use crate::error::{Error, Result};
use crate::namespaces::ParentRestore;
use crate::process::children;
use crate::process::sync::{self, Message, SyncSocket};
use crate::security::seccomp::Filter;
use crate::state::OciState;
use crate::sys::{self, Dumpable, Forked};
use cgroups::SelfEntry;
use nix::sys::wait::WaitStatus;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

/// A container process just cloned, and the parent's end of its sync channel.
pub(crate) struct Child {
    pub(crate) pid: i32,
    pub(crate) sock: SyncSocket,
    /// Killed and reaped on drop until released.
    armed: bool,
}

/// Clone a container process with clone `flags`; `restore` undoes, right after the clone,
/// what the parent did to itself for the child's sake (a pid namespace for children, a
/// user namespace). The child closes `not_for_child` (its copies of the parent's own
/// descriptors), enters its cgroups by itself with `cgroup` if that is given (see
/// [`SelfEntry`]), then runs `body` with its end of the sync channel; `body` ends in an
/// exec or an exit, never a return.
pub(crate) fn spawn(
    flags: u64,
    dumpable: Dumpable,
    what: &str,
    restore: ParentRestore,
    not_for_child: &[BorrowedFd],
    cgroup: Option<&SelfEntry>,
    body: impl FnOnce(&SyncSocket),
) -> Result<Child> {
    let (parent_sock, child_sock) = sync::pair()?;
    let into = cgroup.and_then(SelfEntry::clone_into);
    let mut cloned_into = into.is_some();
    let forked = match children::clone(flags, into, dumpable, what) {
        // The kernel may refuse to make a child in that cgroup (one whose controllers forbid
        // processes there: EBUSY, EOPNOTSUPP; no right to it: EACCES), or not know the flag
        // (EINVAL, before 5.7); the child then writes itself in, and meets the reason. Any
        // other error (EAGAIN from pids.max, ENOMEM, a namespace's EPERM) is the clone's own.
        Err(e)
            if cloned_into
                && matches!(
                    e.errno(),
                    Some(libc::EBUSY | libc::EOPNOTSUPP | libc::EACCES | libc::EINVAL)
                ) =>
        {
            cloned_into = false;
            children::clone(flags, None, dumpable, what)
        }
        r => r,
    };
    match restore.after_clone(forked)? {
        Forked::Child => {
            drop(parent_sock);
            for fd in not_for_child {
                // SAFETY: this copy of the process never returns to the code that owns
                // these descriptors, so nothing closes them twice or uses them after.
                unsafe { libc::close(fd.as_raw_fd()) };
            }
            sys::child_main(|| {
                if let Some(entry) = cgroup {
                    if let Err(e) = entry.join(cloned_into) {
                        let e = Error::Cgroup(e);
                        let _ = child_sock.send(&Message::Error((&e).into()));
                        return;
                    }
                    for fd in entry.fds() {
                        // SAFETY: as above; no container process may hold a way into
                        // the host's cgroups.
                        unsafe { libc::close(fd.as_raw_fd()) };
                    }
                }
                body(&child_sock)
            })
        }
        Forked::Parent { pid } => Ok(Child {
            pid,
            sock: parent_sock,
            armed: true,
        }),
    }
}

/// How a child enters its cgroups: by itself ([`SelfEntry`]) when the runtime is root;
/// unprivileged, the parent moves it in (`None`), as rights over a delegated cgroup are
/// another matter.
pub(crate) fn cgroup_self_entry(
    cgroup: &dyn cgroups::Manager,
    sub: &cgroups::SubCgroups,
) -> Result<Option<SelfEntry>> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(None);
    }
    Ok(cgroup.self_entry(sub)?)
}

/// What the parent does for the child while they talk (see [`Child::converse`]).
pub(crate) struct Serve<'a> {
    /// Where a pty master goes: to this socket (`--console-socket`), or else back to the
    /// caller.
    pub(crate) console_socket: Option<&'a Path>,
    /// The filter whose notify descriptor the child sends, for its agent.
    pub(crate) seccomp: Option<&'a Filter>,
    /// The state the seccomp agent is given.
    pub(crate) state: &'a OciState,
    /// The runtime's hooks the init asks for once its mounts are done (`RunHooks`); an
    /// exec'd process never asks.
    pub(crate) hooks: Option<&'a dyn Fn() -> Result<()>>,
}

/// How the conversation ended.
pub(crate) enum Ended {
    /// The init is set up (`Ready`).
    Ready,
    /// The child closed the channel: an exec'd process has exec'd; an init has died.
    Closed,
}

impl Child {
    /// The hand-over: the parent's `steps` (the child's cgroup, id maps, network devices)
    /// and `Proceed`, then `Joined`, after which the child may fork, run hooks and exec.
    /// `proceed_first`: the child need not wait for the steps before its first one.
    /// If a step failed because the child had failed first, the child's reason is returned.
    pub(crate) fn hand_over(
        &self,
        proceed_first: bool,
        steps: impl FnOnce() -> Result<()>,
    ) -> Result<()> {
        let proceed = || self.sock.send(&Message::Proceed { host_pid: self.pid });
        let handed = (|| {
            if proceed_first {
                proceed()?;
            }
            steps()?;
            if !proceed_first {
                proceed()?;
            }
            self.sock.send(&Message::Joined)
        })();
        handed.map_err(|e| self.sock.pending_error().map_or(e, Error::Init))
    }

    /// Serve the child's requests until it is ready or closes the channel; the pty master
    /// it sent, unless that went to the console socket.
    pub(crate) fn converse(&self, serve: &Serve) -> Result<(Ended, Option<OwnedFd>)> {
        let mut console = None;
        loop {
            let (msg, fd) = match self.sock.recv_fd()? {
                Some(received) => received,
                None => return Ok((Ended::Closed, console)),
            };
            match msg {
                Message::Console => {
                    let master = fd.ok_or_else(|| Error::init("the process sent no pty master"))?;
                    match serve.console_socket {
                        Some(path) => crate::console::send_to_socket(path, &master)?,
                        None => console = Some(master),
                    }
                }
                Message::RunHooks if serve.hooks.is_some() => {
                    let run = serve.hooks.expect("checked");
                    if let Err(e) = run() {
                        let _ = self.sock.send(&Message::Error((&e).into()));
                        return Err(e);
                    }
                    self.sock.send(&Message::HooksDone)?;
                }
                Message::SeccompFd => crate::security::seccomp::relay(
                    serve.seccomp,
                    fd,
                    self.pid,
                    serve.state,
                    &self.sock,
                )?,
                Message::Ready => return Ok((Ended::Ready, console)),
                Message::Warning(w) => tracing::warn!("{w}"),
                Message::Error(f) => return Err(Error::Init(f)),
                other => {
                    return Err(Error::init(format!(
                        "unexpected message from the container process: {other:?}"
                    )))
                }
            }
        }
    }

    /// The child is what the caller wanted: no longer killed on drop.
    pub(crate) fn release(&mut self) {
        self.armed = false;
    }

    /// Wait for a child that closed the channel without a word (it died) and reap it.
    pub(crate) fn wait_dead(mut self) -> Option<WaitStatus> {
        self.armed = false;
        children::wait_exit(self.pid)
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if self.armed {
            // Not yet waited for, so the pid cannot have been recycled.
            children::kill_and_reap(self.pid);
        }
    }
}
