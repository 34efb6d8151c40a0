//! The typed messages the parent and the container init exchange over a SOCK_SEQPACKET
//! socketpair. One message is one datagram, so no framing is needed.

use crate::error::{Context, InitFailure, Result};
use crate::sys;
use serde::{Deserialize, Serialize};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub(crate) enum Message {
    /// Parent → init: go on; here is your pid on the host. With a user namespace or a new
    /// cgroup namespace this comes after `Joined`'s work is done (the init needs its id maps
    /// and its cgroup before its first step); otherwise before, so that the init prepares
    /// its rootfs while the parent puts it in its cgroup (the first write to a cgroup.procs
    /// waits for an RCU grace period, several milliseconds on an idle host).
    Proceed { host_pid: i32 },
    /// Parent → init: you are in your cgroups, your id maps are written and the network
    /// devices moved; hooks, forks and exec may follow.
    Joined,
    /// Init → parent: mounts are done; run the prestart and createRuntime hooks now.
    RunHooks,
    /// Parent → init: those hooks have run.
    HooksDone,
    /// Init → parent: here is the pty master (passed along with this message).
    Console,
    /// Init → parent: the seccomp notify descriptor (attached), for the agent.
    SeccompFd,
    /// Parent → init: the agent has the descriptor.
    SeccompDone,
    /// Init → parent: everything is set up; next it waits for `Committed`.
    Ready,
    /// Parent → init: the container is recorded (state.json written); wait on the exec fifo.
    /// An init whose runtime dies before this sees end-of-file instead, and exits.
    Committed,
    /// Init → parent: something the runtime should log (never the container's stderr).
    Warning(String),
    /// Either way: this step failed; which, with what errno, and the whole message.
    Error(InitFailure),
}

pub(crate) struct SyncSocket(OwnedFd);

/// A connected pair: (parent's end, init's end). Both close on exec.
pub(crate) fn pair() -> Result<(SyncSocket, SyncSocket)> {
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
    let (a, b) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .ctx(|| "socketpair for the init sync channel")?;
    Ok((SyncSocket(a), SyncSocket(b)))
}

impl SyncSocket {
    pub(crate) fn send(&self, msg: &Message) -> Result<()> {
        let bytes = serde_json::to_vec(msg).expect("sync messages always serialize");
        sys::send_datagram(self.0.as_fd(), &bytes, &[]).ctx(|| "send on the init sync channel")
    }

    /// Send a message with a descriptor attached (SCM_RIGHTS).
    pub(crate) fn send_fd(&self, msg: &Message, fd: &OwnedFd) -> Result<()> {
        let bytes = serde_json::to_vec(msg).expect("sync messages always serialize");
        sys::send_datagram(self.0.as_fd(), &bytes, &[fd.as_raw_fd()])
            .ctx(|| "send a descriptor on the init sync channel")
    }

    /// The next message, or `None` once the other end has closed.
    pub(crate) fn recv(&self) -> Result<Option<Message>> {
        Ok(self.recv_fd()?.map(|(m, _)| m))
    }

    /// The next message and the descriptor that came with it, if any.
    pub(crate) fn recv_fd(&self) -> Result<Option<(Message, Option<OwnedFd>)>> {
        self.recv_with(nix::sys::socket::MsgFlags::empty())
    }

    /// The error the other end already sent, if one is waiting: when a step of ours failed
    /// because the other side had failed first, its reason is the one to report.
    pub(crate) fn pending_error(&self) -> Option<InitFailure> {
        loop {
            match self.recv_with(nix::sys::socket::MsgFlags::MSG_DONTWAIT) {
                Ok(Some((Message::Error(e), _))) => return Some(e),
                // A warning sent before the error: look further.
                Ok(Some((Message::Warning(w), _))) => tracing::warn!("{w}"),
                _ => return None,
            }
        }
    }

    fn recv_with(
        &self,
        flags: nix::sys::socket::MsgFlags,
    ) -> Result<Option<(Message, Option<OwnedFd>)>> {
        let Some((bytes, fds)) =
            sys::recv_datagram(self.0.as_fd(), flags).ctx(|| "receive on the init sync channel")?
        else {
            return Ok(None);
        };
        let msg = serde_json::from_slice(&bytes).map_err(|e| {
            crate::Error::init(format!("malformed message on the init sync channel: {e}"))
        })?;
        Ok(Some((msg, fds.into_iter().next())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eperm() -> InitFailure {
        InitFailure {
            step: Some("mount /proc".into()),
            errno: Some(libc::EPERM),
            message: "mount /proc: Operation not permitted (os error 1)".into(),
        }
    }

    #[test]
    fn messages_cross_the_pair_in_order() {
        let (a, b) = pair().unwrap();
        a.send(&Message::Proceed { host_pid: 7 }).unwrap();
        b.send(&Message::Error(eperm())).unwrap();
        assert_eq!(b.recv().unwrap(), Some(Message::Proceed { host_pid: 7 }));
        assert_eq!(a.recv().unwrap(), Some(Message::Error(eperm())));
        drop(b);
        assert_eq!(a.recv().unwrap(), None);
    }

    #[test]
    fn a_pending_error_is_found_past_warnings_without_blocking() {
        let (a, b) = pair().unwrap();
        assert_eq!(a.pending_error(), None);
        b.send(&Message::Warning("w".into())).unwrap();
        b.send(&Message::Error(eperm())).unwrap();
        assert_eq!(a.pending_error(), Some(eperm()));
        assert_eq!(a.pending_error(), None);
    }

    #[test]
    fn what_a_dead_peer_sent_is_read_although_it_left_ours_unread() {
        let (a, b) = pair().unwrap();
        a.send(&Message::Joined).unwrap();
        b.send(&Message::Error(eperm())).unwrap();
        // b goes away with Joined unread: a first hears of a reset, then b's error.
        drop(b);
        assert_eq!(a.recv().unwrap(), Some(Message::Error(eperm())));
        assert_eq!(a.recv().unwrap(), None);
    }
}
