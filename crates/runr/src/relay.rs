//! The foreground relay: while `runr run` or `runr exec` (without `--detach`) waits for its
//! process, it forwards the signals it gets, relays a pty between our terminal (raw mode) and
//! the container, passes window size changes on, and reaps orphans as subreaper. This is the
//! CLI's behaviour, as runc's; a program that embeds the library waits its own way.

use anyhow::Context;
use container::notify::NotifyRelay;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, SigmaskHow};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

/// Block every signal this process can forward, returning the mask to give the container's
/// process. Call before creating it, so that no signal that arrives meanwhile is lost.
pub fn block_forwarded_signals() -> anyhow::Result<SigSet> {
    let mut old = SigSet::empty();
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&SigSet::all()), Some(&mut old))
        .context("block signals for forwarding")?;
    Ok(old)
}

/// Wait for `pid` (our child) to exit, forwarding every signal we get to it and reaping any
/// orphan handed to us as subreaper. With a `console` (the pty master of a foreground
/// process), relay it to our stdin/stdout with our terminal in raw mode, and pass window
/// size changes on. With a `notify` relay, pass the program's readiness notifications on
/// meanwhile. Returns the exit code the shell would show: the status, or 128 + the signal
/// number. Signals must have been blocked with [`block_forwarded_signals`].
pub fn wait_forwarding_signals(
    pid: i32,
    console: Option<OwnedFd>,
    mut notify: Option<NotifyRelay>,
) -> anyhow::Result<i32> {
    nix::sys::prctl::set_child_subreaper(true).context("prctl(PR_SET_CHILD_SUBREAPER)")?;
    let signals = SignalFd::with_flags(
        &SigSet::all(),
        SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK,
    )
    .context("signalfd")?;
    let stdin = std::io::stdin();
    let _raw = console.as_ref().and_then(|_| RawTerminal::enter(&stdin));
    if let Some(master) = &console {
        copy_window_size(&stdin, master);
    }
    let mut exit_code = None;
    let mut stdin_open = console.is_some();
    let mut master_open = console.is_some();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if exit_code.is_none() {
            exit_code = reap(pid)?;
        }
        if let (Some(code), false) = (exit_code, master_open) {
            return Ok(code);
        }
        let mut fds: Vec<BorrowedFd> = vec![signals.as_fd()];
        if let Some(m) = console.as_ref().filter(|_| master_open) {
            fds.push(m.as_fd());
        }
        if let Some(relay) = &notify {
            fds.push(relay.as_fd());
        }
        if stdin_open && exit_code.is_none() {
            fds.push(stdin.as_fd());
        }
        // Once the process has exited, only drain what its terminal still holds.
        let timeout = if exit_code.is_some() { 100 } else { -1 };
        let ready = poll_in(&fds, timeout).context("poll while waiting for the container")?;
        if let (false, Some(code)) = (ready.iter().any(|r| *r), exit_code) {
            // The process is gone and its terminal has been quiet: done.
            return Ok(code);
        }
        let ready_fds: Vec<i32> = fds
            .iter()
            .zip(&ready)
            .filter(|(_, r)| **r)
            .map(|(fd, _)| fd.as_raw_fd())
            .collect();
        for fd in ready_fds {
            if fd == signals.as_raw_fd() {
                while let Ok(Some(info)) = signals.read_signal() {
                    match info.ssi_signo as i32 {
                        libc::SIGCHLD => {}
                        libc::SIGWINCH => {
                            if let Some(m) = &console {
                                copy_window_size(&stdin, m);
                            }
                        }
                        sig => {
                            // SAFETY: plain kill(2) of our own child.
                            unsafe { libc::kill(pid, sig) };
                        }
                    }
                }
            } else if notify.as_ref().is_some_and(|r| r.as_fd().as_raw_fd() == fd) {
                // Done once READY=1 has passed; a failed relay must not end the wait for
                // the container either.
                let relayed = notify.as_ref().map_or(Ok(true), |r| r.relay_one());
                if let Err(e) = &relayed {
                    tracing::warn!("{e}");
                }
                if !matches!(relayed, Ok(false)) {
                    notify = None;
                }
            } else if fd == stdin.as_raw_fd() {
                match nix::unistd::read(stdin.as_fd(), &mut buf) {
                    Ok(0) | Err(_) => stdin_open = false,
                    Ok(n) => {
                        if let Some(m) = &console {
                            let _ = write_all(m.as_fd(), &buf[..n]);
                        }
                    }
                }
            } else if let Some(m) = &console {
                match nix::unistd::read(m.as_fd(), &mut buf) {
                    // EIO: every slave descriptor is closed; the container is done with it.
                    Ok(0) | Err(_) => master_open = false,
                    Ok(n) => {
                        let _ = write_all(std::io::stdout().as_fd(), &buf[..n]);
                    }
                }
            }
        }
    }
}

/// Which of `fds` are readable (or hung up), waiting up to `timeout_ms` (-1: forever).
fn poll_in(fds: &[BorrowedFd], timeout_ms: i32) -> nix::Result<Vec<bool>> {
    let mut pfds: Vec<PollFd> = fds
        .iter()
        .map(|fd| PollFd::new(*fd, PollFlags::POLLIN))
        .collect();
    let timeout = if timeout_ms < 0 {
        PollTimeout::NONE
    } else {
        PollTimeout::try_from(timeout_ms).unwrap_or(PollTimeout::MAX)
    };
    loop {
        match poll(&mut pfds, timeout) {
            Ok(_) => {
                return Ok(pfds
                    .iter()
                    .map(|p| p.revents().is_some_and(|r| !r.is_empty()))
                    .collect())
            }
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Reap whatever exited; `pid`'s exit code once it has.
fn reap(pid: i32) -> anyhow::Result<Option<i32>> {
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(p, code)) if p.as_raw() == pid => return Ok(Some(code)),
            Ok(WaitStatus::Signaled(p, sig, _)) if p.as_raw() == pid => {
                return Ok(Some(128 + sig as i32))
            }
            Ok(WaitStatus::StillAlive) | Err(nix::errno::Errno::ECHILD) => return Ok(None),
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e).context("waitpid for the container"),
        }
    }
}

fn write_all(fd: BorrowedFd, mut data: &[u8]) -> nix::Result<()> {
    while !data.is_empty() {
        match nix::unistd::write(fd, data) {
            Ok(n) => data = &data[n..],
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn copy_window_size(from: &impl AsFd, to: &impl AsFd) {
    if let Ok(ws) = rustix::termios::tcgetwinsize(from) {
        let _ = rustix::termios::tcsetwinsize(to, ws);
    }
}

/// Our terminal in raw mode for as long as this lives; restored on drop, also on error.
struct RawTerminal {
    saved: rustix::termios::Termios,
}

impl RawTerminal {
    fn enter(stdin: &std::io::Stdin) -> Option<RawTerminal> {
        if !rustix::termios::isatty(stdin) {
            return None;
        }
        let saved = rustix::termios::tcgetattr(stdin).ok()?;
        let mut raw = saved.clone();
        raw.make_raw();
        rustix::termios::tcsetattr(stdin, rustix::termios::OptionalActions::Now, &raw).ok()?;
        Some(RawTerminal { saved })
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        let _ = rustix::termios::tcsetattr(
            std::io::stdin(),
            rustix::termios::OptionalActions::Now,
            &self.saved,
        );
    }
}
