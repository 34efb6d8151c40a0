//! Talking to CRIU: finding the binary and one request over its RPC ("swrk": `criu swrk FD`
//! serves one request on the SOCK_SEQPACKET socket FD, sending NOTIFY messages on the way).
//!
//! The messages are the rust-criu crate's (generated from CRIU's rpc.proto); the exchange is
//! ours. rust-criu 0.6's own `dump`/`restore` do not fit a runtime: `restore` drops the reply
//! (and so the restored pid), there is no way to set `cg_root` (restoring under a new id puts
//! the tasks in the old id's cgroup), its notify callback is a bare `fn` (no state: hooks need
//! the container's), and its `empty_ns` knows only the network namespace.

use crate::error::{Context, Error, Result};
use protobuf::Message;
use rust_criu::rust_criu_protobuf::rpc::{
    self, Criu_features, Criu_opts, Criu_req, Criu_req_type, Criu_resp,
};
use std::io::IoSliceMut;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

/// The oldest CRIU runr drives: 3.16 (the first with the RPC fields runr sets and a working
/// `--root` on restore of a mount namespace); 4.2 is what the tests use.
pub(crate) const MIN_VERSION: u32 = 31600;

/// A CRIU binary.
pub(crate) struct Criu {
    pub(crate) path: PathBuf,
}

/// What runr needs to know of a NOTIFY message.
pub(crate) struct Notify<'a> {
    pub(crate) script: &'a str,
    pub(crate) pid: i32,
    /// A descriptor CRIU sent along (the pty master of "orphan-pts-master").
    pub(crate) fd: Option<OwnedFd>,
}

impl Criu {
    /// `$RUNR_CRIU` if set, else `criu` on PATH. Its version is asked only when a request
    /// fails ([`Criu::explain`]): asking costs a CRIU start (some 40 ms) on every command.
    pub(crate) fn locate() -> Result<Criu> {
        let path = match std::env::var_os("RUNR_CRIU") {
            Some(p) if !p.is_empty() => PathBuf::from(p),
            _ => crate::sys::find_executable("criu").ok_or_else(|| {
                Error::Invalid(
                    "criu is needed for checkpoint and restore and is not on PATH (install \
                     CRIU >= 3.16, or set RUNR_CRIU to its path; scripts/criu.sh builds one)"
                        .into(),
                )
            })?,
        };
        if !crate::sys::is_executable(&path) {
            return Err(Error::Invalid(format!(
                "criu at {} is not an executable file (from RUNR_CRIU or PATH)",
                path.display()
            )));
        }
        Ok(Criu { path })
    }

    /// A failed request's error, or in its place why this CRIU cannot serve runr at all (too
    /// old, or not answering a version request).
    pub(crate) fn explain(&self, e: Error) -> Error {
        match self.version() {
            Ok(v) if v >= MIN_VERSION => e,
            Ok(v) => Error::Invalid(format!(
                "criu at {} is version {}, runr needs {} or later ({e})",
                self.path.display(),
                show_version(v),
                show_version(MIN_VERSION)
            )),
            Err(v) => Error::Invalid(format!(
                "criu at {} does not work: asking its version failed: {v} ({e})",
                self.path.display()
            )),
        }
    }

    /// CRIU's version as major*10000 + minor*100 + sublevel.
    pub(crate) fn version(&self) -> Result<u32> {
        let mut req = Criu_req::new();
        req.set_type(Criu_req_type::VERSION);
        let resp = self.call(req, &[], None, &mut |_| Ok(()))?;
        let v = resp.version.as_ref().ok_or_else(|| {
            Error::Invalid(format!("criu at {} sent no version", self.path.display()))
        })?;
        Ok(v.major_number() as u32 * 10000 + v.minor_number() as u32 * 100 + v.sublevel() as u32)
    }

    /// Which of the features set in `want` this CRIU and kernel offer (a FEATURE_CHECK
    /// request: `mem_track` is `criu check --feature mem_dirty_track`, `lazy_pages` is
    /// userfaultfd with its non-cooperative events, `criu check --feature uffd-noncoop`).
    pub(crate) fn features(&self, want: Criu_features) -> Result<Criu_features> {
        let mut req = Criu_req::new();
        req.set_type(Criu_req_type::FEATURE_CHECK);
        req.features = protobuf::MessageField::some(want);
        let resp = self
            .call(req, &[], None, &mut |_| Ok(()))
            .map_err(|e| self.explain(e))?;
        resp.features.into_option().ok_or_else(|| {
            Error::Invalid(format!(
                "criu at {} answered a feature check without features",
                self.path.display()
            ))
        })
    }

    /// Run one request of `kind` with `opts`; `inherit` are descriptors whose numbers
    /// `opts` names (they stay open in CRIU); CRIU is moved into cgroup `enter` before it
    /// gets the request; `on_notify` answers each NOTIFY (an error makes CRIU abort). The
    /// final reply, which must say success.
    pub(crate) fn request(
        &self,
        kind: Criu_req_type,
        opts: Criu_opts,
        inherit: &[RawFd],
        enter: Option<&dyn cgroups::Manager>,
        on_notify: &mut dyn FnMut(Notify) -> Result<()>,
    ) -> Result<Criu_resp> {
        let mut req = Criu_req::new();
        req.set_type(kind);
        req.opts = protobuf::MessageField::some(opts);
        self.call(req, inherit, enter, on_notify)
    }

    fn call(
        &self,
        req: Criu_req,
        inherit: &[RawFd],
        enter: Option<&dyn cgroups::Manager>,
        on_notify: &mut dyn FnMut(Notify) -> Result<()>,
    ) -> Result<Criu_resp> {
        let kind = req.type_();
        let (ours, theirs) = nix::sys::socket::socketpair(
            nix::sys::socket::AddressFamily::Unix,
            nix::sys::socket::SockType::SeqPacket,
            None,
            nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        )
        .ctx(|| "socketpair for criu swrk")?;
        let mut keep: Vec<RawFd> = inherit.to_vec();
        keep.push(theirs.as_raw_fd());
        let mut cmd = std::process::Command::new(&self.path);
        cmd.arg("swrk").arg(theirs.as_raw_fd().to_string());
        // CRIU logs to its log file; our stdout may be what an engine reads.
        cmd.stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null());
        // SAFETY: between fork and exec the closure only calls fcntl, which is
        // async-signal-safe, on descriptors the parent keeps open until the child is gone.
        unsafe {
            cmd.pre_exec(move || {
                for fd in &keep {
                    if libc::fcntl(*fd, libc::F_SETFD, 0) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let mut child = cmd
            .spawn()
            .ctx(|| format!("run criu at {}", self.path.display()))?;
        drop(theirs);
        let result = match enter {
            // The cgroup error names the file written.
            Some(cgroup) => cgroup.enter(child.id() as i32).map_err(Error::from),
            None => Ok(()),
        };
        let result = result.and_then(|()| self.converse(&ours, &req, kind, on_notify));
        // On success CRIU exits on its own; on failure it may wait for another request.
        if result.is_err() {
            let _ = child.kill();
        }
        drop(ours);
        let _ = child.wait();
        result
    }

    fn converse(
        &self,
        sock: &OwnedFd,
        req: &Criu_req,
        kind: Criu_req_type,
        on_notify: &mut dyn FnMut(Notify) -> Result<()>,
    ) -> Result<Criu_resp> {
        let bytes = req.write_to_bytes().expect("a criu request serializes");
        send(sock, &bytes).ctx(|| "send the request to criu")?;
        loop {
            let (data, fd) = recv(sock)
                .ctx(|| format!("read criu's reply (criu at {} died?)", self.path.display()))?;
            let resp = Criu_resp::parse_from_bytes(&data)
                .map_err(|e| Error::Invalid(format!("unreadable reply from criu: {e}")))?;
            if !resp.success() {
                let mut msg = format!("criu {kind:?} failed");
                if resp.has_cr_errmsg() {
                    msg.push_str(&format!(": {}", resp.cr_errmsg()));
                }
                if resp.has_cr_errno() && resp.cr_errno() != 0 {
                    msg.push_str(&format!(
                        " ({})",
                        std::io::Error::from_raw_os_error(resp.cr_errno())
                    ));
                }
                return Err(Error::Invalid(msg));
            }
            if resp.type_() != Criu_req_type::NOTIFY {
                if resp.type_() != kind {
                    return Err(Error::Invalid(format!(
                        "criu answered {:?} to a {kind:?} request",
                        resp.type_()
                    )));
                }
                return Ok(resp);
            }
            let n = resp.notify.as_ref();
            let script = n.map(|n| n.script()).unwrap_or_default();
            let pid = n.map(|n| n.pid()).unwrap_or(0);
            let outcome = on_notify(Notify { script, pid, fd });
            let mut ack = Criu_req::new();
            ack.set_type(Criu_req_type::NOTIFY);
            ack.set_notify_success(outcome.is_ok());
            let ack = ack.write_to_bytes().expect("a criu ack serializes");
            send(sock, &ack).ctx(|| "answer criu's notification")?;
            outcome?;
        }
    }
}

fn send(sock: &OwnedFd, data: &[u8]) -> std::io::Result<()> {
    let n = nix::sys::socket::send(
        sock.as_raw_fd(),
        data,
        nix::sys::socket::MsgFlags::MSG_NOSIGNAL,
    )?;
    if n != data.len() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::WriteZero,
            "short write on the criu socket",
        ));
    }
    Ok(())
}

/// One message, and a descriptor if one came with it.
fn recv(sock: &OwnedFd) -> std::io::Result<(Vec<u8>, Option<OwnedFd>)> {
    // CRIU's replies are small; the largest (a dump's stats) is well under this.
    let mut buf = vec![0u8; 1 << 16];
    let mut cmsg = nix::cmsg_space!([RawFd; 1]);
    let mut iov = [IoSliceMut::new(&mut buf)];
    let msg = nix::sys::socket::recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        nix::sys::socket::MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    let n = msg.bytes;
    if n == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    let mut fd = None;
    for c in msg.cmsgs()? {
        if let nix::sys::socket::ControlMessageOwned::ScmRights(fds) = c {
            for f in fds {
                // SAFETY: the descriptor was just received and nothing else owns it.
                let owned = unsafe { OwnedFd::from_raw_fd(f) };
                fd.get_or_insert(owned);
            }
        }
    }
    buf.truncate(n);
    Ok((buf, fd))
}

/// An external mount for CRIU's options: `key` is the mount's name in the images (its path
/// in the container), `val` what stands for it (the same key at a dump; the host's source
/// at a restore).
pub(crate) fn ext_mount(key: String, val: String) -> rpc::Ext_mount_map {
    let mut m = rpc::Ext_mount_map::new();
    m.set_key(key);
    m.set_val(val);
    m
}

/// A descriptor of runr's that CRIU is to give the restored tasks in place of the one the
/// images know by `key`.
pub(crate) fn inherit_fd(key: String, fd: RawFd) -> rpc::Inherit_fd {
    let mut i = rpc::Inherit_fd::new();
    i.set_key(key);
    i.set_fd(fd);
    i
}

fn show_version(v: u32) -> String {
    format!("{}.{}.{}", v / 10000, v / 100 % 100, v % 100)
}

/// The last lines of CRIU's log `path` that say what went wrong, for an error message.
pub(crate) fn log_errors(path: &Path) -> String {
    let Ok(text) = std::fs::read_to_string(path) else {
        return String::new();
    };
    let errors: Vec<&str> = text.lines().filter(|l| l.contains("Error")).collect();
    let tail: Vec<&str> = errors.iter().rev().take(5).rev().copied().collect();
    match tail.is_empty() {
        true => format!(" (log: {})", path.display()),
        false => format!("; {} (log: {})", tail.join("; "), path.display()),
    }
}
