//! systemd's readiness protocol (sd_notify) through a container.
//!
//! When runr itself runs under systemd with `NOTIFY_SOCKET` set, the container's program
//! must be the one to say `READY=1`. It cannot reach the host's socket, so `create` bind
//! mounts a directory of the state dir at `/run/notify` and points the program's
//! `NOTIFY_SOCKET` there; `start` binds a datagram socket in that directory and relays what
//! the program sends to the host's socket, with `MAINPID` set to the init's host pid, until
//! `READY=1` has passed.

use crate::error::{Context, Error, Result};
use nix::sys::socket::{self, AddressFamily, MsgFlags, SockFlag, SockType, UnixAddr};
use oci_spec::runtime::{MountBuilder, Spec};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

const DIR: &str = "notify";
const SOCKET: &str = "notify.sock";
const DIR_IN_CONTAINER: &str = "/run/notify";

/// At create, before anything else reads the config: give the container a view of the
/// directory the socket will live in, and the variable that names it.
pub(crate) fn add_to_spec(state_dir: &Path, spec: &mut Spec) -> Result<()> {
    let dir = state_dir.join(DIR);
    let mount = MountBuilder::default()
        .destination(DIR_IN_CONTAINER)
        .typ("bind")
        .source(&dir)
        .options(vec![
            "bind".into(),
            "nosuid".into(),
            "noexec".into(),
            "nodev".into(),
            "ro".into(),
        ])
        .build()
        .map_err(|e| Error::Config(format!("notify socket mount: {e}")))?;
    let mut mounts = spec.mounts().clone().unwrap_or_default();
    mounts.push(mount);
    spec.set_mounts(Some(mounts));
    if let Some(p) = spec.process_mut() {
        let mut env = p.env().clone().unwrap_or_default();
        env.push(format!("NOTIFY_SOCKET={DIR_IN_CONTAINER}/{SOCKET}"));
        p.set_env(Some(env));
    }
    Ok(())
}

/// At create, once the state directory exists: the directory [`add_to_spec`] mounts.
pub(crate) fn make_dir(state_dir: &Path) -> Result<()> {
    let dir = state_dir.join(DIR);
    std::fs::DirBuilder::new()
        .mode(0o755)
        .create(&dir)
        .ctx(|| format!("create {}", dir.display()))
}

/// The container's end of the relay, bound at start.
#[derive(Debug)]
pub struct NotifyRelay {
    sock: OwnedFd,
    /// Where to pass messages on (the host's NOTIFY_SOCKET), and a socket to send from.
    host: PathBuf,
    host_addr: UnixAddr,
    sender: OwnedFd,
    pid: i32,
}

impl NotifyRelay {
    /// Bind the socket the container's program will send to (before it can run).
    pub(crate) fn bind(state_dir: &Path, host: &Path, pid: i32) -> Result<NotifyRelay> {
        let path = state_dir.join(DIR).join(SOCKET);
        let _ = std::fs::remove_file(&path);
        let sock = socket::socket(
            AddressFamily::Unix,
            SockType::Datagram,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .ctx(|| "create the notify socket")?;
        let addr = UnixAddr::new(&path).ctx(|| format!("notify socket {}", path.display()))?;
        socket::bind(sock.as_raw_fd(), &addr).ctx(|| format!("bind {}", path.display()))?;
        // Whatever user the program runs as must be able to send.
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o777))
            .ctx(|| format!("chmod {}", path.display()))?;
        // A bad NOTIFY_SOCKET is reported now, before the program runs.
        let bytes = host.as_os_str().as_bytes();
        // A leading '@' names a socket in the abstract namespace.
        let host_addr = match bytes.strip_prefix(b"@") {
            Some(name) => UnixAddr::new_abstract(name),
            None => UnixAddr::new(host),
        }
        .ctx(|| format!("NOTIFY_SOCKET {}", host.display()))?;
        let sender = socket::socket(
            AddressFamily::Unix,
            SockType::Datagram,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .ctx(|| "create a socket for NOTIFY_SOCKET")?;
        Ok(NotifyRelay {
            sock,
            host: host.to_path_buf(),
            host_addr,
            sender,
            pid,
        })
    }

    pub fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }

    /// Read one message from the container and pass it on. Returns whether it said
    /// `READY=1`, after which the relay has done its job.
    pub fn relay_one(&self) -> Result<bool> {
        let mut buf = vec![0u8; 4096];
        let n = loop {
            match socket::recv(self.sock.as_raw_fd(), &mut buf, MsgFlags::MSG_DONTWAIT) {
                Err(nix::errno::Errno::EINTR) => continue,
                Err(nix::errno::Errno::EAGAIN) => return Ok(false),
                r => break r.ctx(|| "receive on the notify socket")?,
            }
        };
        let text = String::from_utf8_lossy(&buf[..n]);
        let (out, ready) = translate(&text, self.pid);
        if !out.is_empty() {
            self.send_to_host(&out)?;
        }
        Ok(ready)
    }

    /// Relay until `READY=1` or until the process behind `pidfd` (the init) exits.
    pub(crate) fn wait_ready(&self, pidfd: &OwnedFd) -> Result<()> {
        loop {
            let ready = crate::sys::poll_in(&[self.sock.as_raw_fd(), pidfd.as_raw_fd()], -1)
                .ctx(|| "poll the notify socket")?;
            if ready[0] && self.relay_one()? {
                return Ok(());
            }
            if ready[1] {
                tracing::warn!("the container exited before it notified readiness (READY=1)");
                return Ok(());
            }
        }
    }

    fn send_to_host(&self, msg: &str) -> Result<()> {
        socket::sendto(
            self.sender.as_raw_fd(),
            msg.as_bytes(),
            &self.host_addr,
            MsgFlags::empty(),
        )
        .ctx(|| format!("send to NOTIFY_SOCKET {}", self.host.display()))?;
        Ok(())
    }
}

/// What to send on for one message from the container: every assignment but MAINPID (a pid
/// of the container's namespace means nothing to systemd), and with READY=1 the init's host
/// pid as MAINPID. Also whether READY=1 was in it.
fn translate(msg: &str, pid: i32) -> (String, bool) {
    let mut out = String::new();
    let mut ready = false;
    for line in msg.lines().filter(|l| !l.is_empty()) {
        if line.starts_with("MAINPID=") {
            continue;
        }
        ready |= line == "READY=1";
        out.push_str(line);
        out.push('\n');
    }
    if ready {
        out.push_str(&format!("MAINPID={pid}\n"));
    }
    (out, ready)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_gets_the_host_mainpid() {
        assert_eq!(
            translate("STATUS=up\nREADY=1\nMAINPID=1", 4242),
            ("STATUS=up\nREADY=1\nMAINPID=4242\n".to_string(), true)
        );
        assert_eq!(
            translate("STATUS=starting", 1),
            ("STATUS=starting\n".to_string(), false)
        );
        assert!(!translate("READY=10", 1).1);
    }
}
