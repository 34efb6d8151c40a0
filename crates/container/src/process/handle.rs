//! A handle on a process the library started (a container's init or an exec'd process):
//! its pid, a pidfd (so a recycled pid is never mistaken for it), the caller's ends of its
//! stdio, and `signal` / `wait` that act on this process only: nothing else is reaped.

use crate::error::{Context, Result};
use crate::process::stdio::ProcessIo;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

/// How a process ended, as waitid tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// It exited with this code.
    Exited(i32),
    /// This signal ended it.
    Signaled(i32),
}

impl ExitStatus {
    /// As a shell reports it: the exit code, or 128 + N if signal N ended it.
    pub fn code(self) -> i32 {
        match self {
            ExitStatus::Exited(code) => code,
            ExitStatus::Signaled(signal) => 128 + signal,
        }
    }

    /// The signal that ended it, if one did.
    pub fn signal(self) -> Option<i32> {
        match self {
            ExitStatus::Exited(_) => None,
            ExitStatus::Signaled(signal) => Some(signal),
        }
    }
}

#[derive(Debug)]
pub struct ProcessHandle {
    pid: i32,
    pidfd: OwnedFd,
    /// The caller's ends of piped stdio.
    pub io: ProcessIo,
    /// The pty master, for a process with a terminal and no console socket.
    pub console: Option<OwnedFd>,
}

impl ProcessHandle {
    pub(crate) fn new(pid: i32, pidfd: OwnedFd, io: ProcessIo, console: Option<OwnedFd>) -> Self {
        ProcessHandle {
            pid,
            pidfd,
            io,
            console,
        }
    }

    /// What a spawner's worker sends to its caller.
    pub(crate) fn into_parts(self) -> (i32, OwnedFd, ProcessIo, Option<OwnedFd>) {
        (self.pid, self.pidfd, self.io, self.console)
    }

    /// Host pid.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Readable once the process has exited: for an event loop (e.g. tokio's `AsyncFd`)
    /// that then calls [`ProcessHandle::try_wait`].
    pub fn pidfd(&self) -> BorrowedFd<'_> {
        self.pidfd.as_fd()
    }

    /// Send `signal` to this process (pidfd_send_signal: never to another that took its pid).
    pub fn signal(&self, signal: i32) -> Result<()> {
        crate::sys::pidfd_send_signal(&self.pidfd, signal)
            .ctx(|| format!("send signal {signal} to process {}", self.pid))
    }

    /// Wait for the process to exit and reap it: its exit status, or 128 + N if signal N
    /// ended it. The caller must be its parent (the library's caller is, for the processes
    /// it starts).
    pub fn wait(&self) -> Result<i32> {
        Ok(self
            .wait_with(libc::WEXITED)?
            .expect("a blocking waitid returns a status")
            .code())
    }

    /// The exit status if the process has exited (and reaps it), or `None` if it runs.
    pub fn try_wait(&self) -> Result<Option<i32>> {
        Ok(self.try_wait_status()?.map(ExitStatus::code))
    }

    /// [`ProcessHandle::try_wait`], telling an exit code from a signal (a front end whose
    /// API reports them apart, as Kata's agent API does).
    pub fn try_wait_status(&self) -> Result<Option<ExitStatus>> {
        self.wait_with(libc::WEXITED | libc::WNOHANG)
    }

    fn wait_with(&self, flags: libc::c_int) -> Result<Option<ExitStatus>> {
        loop {
            // SAFETY: an all-zero siginfo_t is valid; waitid fills it in.
            let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
            // SAFETY: waitid on our own pidfd with a valid siginfo_t to fill.
            let r = unsafe {
                libc::waitid(
                    libc::P_PIDFD,
                    self.pidfd.as_raw_fd() as libc::id_t,
                    &mut info,
                    flags,
                )
            };
            if r < 0 {
                let e = std::io::Error::last_os_error();
                if e.raw_os_error() == Some(libc::EINTR) {
                    continue;
                }
                return Err(e).ctx(|| format!("waitid for process {}", self.pid));
            }
            // SAFETY: waitid succeeded, so si_pid and si_status are the child's (si_pid 0
            // with WNOHANG: it has not exited).
            let (pid, status) = unsafe { (info.si_pid(), info.si_status()) };
            if pid == 0 {
                return Ok(None);
            }
            return Ok(Some(match info.si_code {
                libc::CLD_EXITED => ExitStatus::Exited(status),
                _ => ExitStatus::Signaled(status),
            }));
        }
    }
}
