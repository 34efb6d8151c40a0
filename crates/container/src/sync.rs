//! The typed messages the parent and the container init exchange over a SOCK_SEQPACKET
//! socketpair. One message is one datagram, so no framing is needed.

use crate::error::{Context, Result};
use serde::{Deserialize, Serialize};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub(crate) enum Message {
    /// Parent → init: cgroups joined and id maps written; here is your pid on the host.
    Proceed { host_pid: i32 },
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
    /// Either way: this step failed; the text says which and why.
    Error(String),
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
        nix::unistd::write(self.0.as_fd(), &bytes).ctx(|| "send on the init sync channel")?;
        Ok(())
    }

    /// Send a message with a descriptor attached (SCM_RIGHTS).
    pub(crate) fn send_fd(&self, msg: &Message, fd: &OwnedFd) -> Result<()> {
        use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
        let bytes = serde_json::to_vec(msg).expect("sync messages always serialize");
        let fds = [fd.as_raw_fd()];
        sendmsg::<()>(
            self.0.as_raw_fd(),
            &[std::io::IoSlice::new(&bytes)],
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::empty(),
            None,
        )
        .ctx(|| "send a descriptor on the init sync channel")?;
        Ok(())
    }

    /// The next message, or `None` once the other end has closed.
    pub(crate) fn recv(&self) -> Result<Option<Message>> {
        Ok(self.recv_fd()?.map(|(m, _)| m))
    }

    /// The next message and the descriptor that came with it, if any.
    pub(crate) fn recv_fd(&self) -> Result<Option<(Message, Option<OwnedFd>)>> {
        use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
        let mut buf = vec![0u8; 64 * 1024];
        let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 1]);
        let (n, fd) = loop {
            let mut iov = [std::io::IoSliceMut::new(&mut buf)];
            match recvmsg::<()>(
                self.0.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg),
                MsgFlags::MSG_CMSG_CLOEXEC,
            ) {
                Err(nix::errno::Errno::EINTR) => continue,
                // The other end died with our last message unread: gone, as at end-of-file.
                Err(nix::errno::Errno::ECONNRESET) => return Ok(None),
                r => {
                    let msg = r.ctx(|| "receive on the init sync channel")?;
                    let mut fd = None;
                    for c in msg.cmsgs().ctx(|| "read control messages")? {
                        if let ControlMessageOwned::ScmRights(fds) = c {
                            // SAFETY: the kernel just installed these descriptors for us.
                            fd = fds.first().map(|f| unsafe { OwnedFd::from_raw_fd(*f) });
                        }
                    }
                    break (msg.bytes, fd);
                }
            }
        };
        if n == 0 {
            return Ok(None);
        }
        let msg = serde_json::from_slice(&buf[..n]).map_err(|e| {
            crate::Error::Init(format!("malformed message on the init sync channel: {e}"))
        })?;
        Ok(Some((msg, fd)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_cross_the_pair_in_order() {
        let (a, b) = pair().unwrap();
        a.send(&Message::Proceed { host_pid: 7 }).unwrap();
        b.send(&Message::Error("mount /proc: EPERM".into()))
            .unwrap();
        assert_eq!(b.recv().unwrap(), Some(Message::Proceed { host_pid: 7 }));
        assert_eq!(
            a.recv().unwrap(),
            Some(Message::Error("mount /proc: EPERM".into()))
        );
        drop(b);
        assert_eq!(a.recv().unwrap(), None);
    }
}
