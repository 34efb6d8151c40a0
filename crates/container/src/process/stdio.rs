//! The standard streams of a container's process (the init or an exec'd one): the caller's
//! own 0, 1 and 2, new pipes whose other ends the caller keeps, or descriptors the caller
//! hands in. A process with a terminal has its pty instead (see `console`).

use crate::error::{Context, Error, Result};
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

/// Where a process's stdin, stdout and stderr go.
#[derive(Debug, Default)]
pub enum Stdio {
    /// The caller's own 0, 1 and 2, as they are (what the CLI does: engines hand the
    /// runtime pipes or fifos).
    #[default]
    Inherit,
    /// New pipes; [`ProcessIo`] holds the caller's ends.
    Piped,
    /// These become the process's 0, 1 and 2. The caller may close its copies once the
    /// process exists.
    Fds {
        stdin: OwnedFd,
        stdout: OwnedFd,
        stderr: OwnedFd,
    },
}

/// The caller's ends of [`Stdio::Piped`]: write the process's stdin, read its output.
/// Dropping `stdin` closes the process's stdin (it reads end-of-file).
#[derive(Debug, Default)]
pub struct ProcessIo {
    pub stdin: Option<File>,
    pub stdout: Option<File>,
    pub stderr: Option<File>,
}

/// The descriptors the child puts on 0, 1 and 2; the parent drops it right after the clone
/// so that only the child holds the pipes' far ends.
pub(crate) enum ChildStdio<'a> {
    Inherit,
    Owned([OwnedFd; 3]),
    Borrowed([BorrowedFd<'a>; 3]),
}

impl Stdio {
    /// What the child needs and what the caller keeps. Refused for a process with a
    /// terminal: its stdio is the pty.
    pub(crate) fn prepare(&self, terminal: bool) -> Result<(ChildStdio<'_>, ProcessIo)> {
        if terminal && !matches!(self, Stdio::Inherit) {
            return Err(Error::Invalid(
                "a process with a terminal has the pty as its stdio; ask for Stdio::Inherit".into(),
            ));
        }
        match self {
            Stdio::Inherit => Ok((ChildStdio::Inherit, ProcessIo::default())),
            Stdio::Fds {
                stdin,
                stdout,
                stderr,
            } => Ok((
                ChildStdio::Borrowed([stdin.as_fd(), stdout.as_fd(), stderr.as_fd()]),
                ProcessIo::default(),
            )),
            Stdio::Piped => {
                let pipe = |what: &str| {
                    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
                        .ctx(|| format!("pipe for the process's {what}"))
                };
                let (in_r, in_w) = pipe("stdin")?;
                let (out_r, out_w) = pipe("stdout")?;
                let (err_r, err_w) = pipe("stderr")?;
                Ok((
                    ChildStdio::Owned([in_r, out_w, err_w]),
                    ProcessIo {
                        stdin: Some(in_w.into()),
                        stdout: Some(out_r.into()),
                        stderr: Some(err_r.into()),
                    },
                ))
            }
        }
    }
}

impl ChildStdio<'_> {
    /// In the child, first thing: put the descriptors on 0, 1 and 2 (inheritable; every
    /// other descriptor is closed on exec later).
    pub(crate) fn install(&self) -> Result<()> {
        let fds: [RawFd; 3] = match self {
            ChildStdio::Inherit => return Ok(()),
            ChildStdio::Owned(f) => [f[0].as_raw_fd(), f[1].as_raw_fd(), f[2].as_raw_fd()],
            ChildStdio::Borrowed(f) => [f[0].as_raw_fd(), f[1].as_raw_fd(), f[2].as_raw_fd()],
        };
        // First above 2, so that putting one on its place cannot clobber another that sits
        // there (a caller may hand in its own 1 as the process's 2).
        let mut high = Vec::with_capacity(3);
        for fd in fds {
            // SAFETY: fcntl F_DUPFD_CLOEXEC on a descriptor open in this process.
            let d = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
            if d < 0 {
                return Err(std::io::Error::last_os_error())
                    .ctx(|| format!("dup stdio descriptor {fd}"));
            }
            high.push(d);
        }
        for (target, fd) in high.into_iter().enumerate() {
            // SAFETY: dup2 onto 0, 1 or 2, which we mean to replace, then close of our own
            // temporary copy, which nothing else refers to.
            let r = unsafe {
                let r = libc::dup2(fd, target as RawFd);
                libc::close(fd);
                r
            };
            if r < 0 {
                return Err(std::io::Error::last_os_error())
                    .ctx(|| format!("dup2 onto descriptor {target}"));
            }
        }
        Ok(())
    }
}
