//! A supervised process's standard streams: what the caller asks for at create or exec,
//! and the supervisor's ends of them (pipes, or the pty master) as tokio readers and writers.

use crate::error::{Error, Result};
use std::io::ErrorKind;
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWriteExt, Interest, ReadBuf};
use tokio::net::unix::pipe;
use tokio::sync::{watch, Mutex};

/// Where a new process's stdin, stdout and stderr go.
#[derive(Debug)]
pub enum Stdio {
    /// New pipes: write its stdin with [`crate::Supervisor::write_stdin`], read its output
    /// with [`crate::Supervisor::read_output`] or [`crate::Supervisor::take_output`].
    Piped,
    /// A pty, for a process whose config says `terminal: true`: stdin writes to the master,
    /// stdout reads from it (there is no separate stderr), and it can be resized.
    Terminal,
    /// These descriptors become the process's 0, 1 and 2 (a shim's fifos, /dev/null); the
    /// supervisor keeps no end of them.
    Fds {
        stdin: OwnedFd,
        stdout: OwnedFd,
        stderr: OwnedFd,
    },
}

impl Stdio {
    /// Refuse a choice that does not fit the process's `terminal` flag.
    pub(crate) fn check_terminal(&self, terminal: bool) -> Result<()> {
        match (self, terminal) {
            (Stdio::Terminal, false) => Err(Error::InvalidArgument(
                "a pty was asked for, but the process's config says terminal: false".into(),
            )),
            (Stdio::Piped | Stdio::Fds { .. }, true) => Err(Error::InvalidArgument(
                "the process's config says terminal: true: its stdio is a pty, ask for \
                 Stdio::Terminal"
                    .into(),
            )),
            _ => Ok(()),
        }
    }

    /// What the library is asked for: a terminal process takes its pty in-process and
    /// inherits nothing of ours.
    pub(crate) fn into_library(self) -> container::Stdio {
        match self {
            Stdio::Piped => container::Stdio::Piped,
            Stdio::Terminal => container::Stdio::Inherit,
            Stdio::Fds {
                stdin,
                stdout,
                stderr,
            } => container::Stdio::Fds {
                stdin,
                stdout,
                stderr,
            },
        }
    }
}

/// The most one read of a process's output returns.
const MAX_READ: usize = 1 << 20;

/// Which output stream of a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Stdout,
    Stderr,
}

/// A process's stdout or stderr: a pipe, or the pty master. Reading gives end-of-file once
/// every writer has gone (the process and whatever inherited the stream), after all they
/// wrote.
#[derive(Debug)]
pub struct OutputReader(Reader);

#[derive(Debug)]
enum Reader {
    Pipe(pipe::Receiver),
    Pty(PtyFile),
}

impl AsyncRead for OutputReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match &mut self.0 {
            Reader::Pipe(p) => Pin::new(p).poll_read(cx, buf),
            Reader::Pty(p) => p.poll_read(cx, buf),
        }
    }
}

/// The writing end of a process's stdin.
#[derive(Debug)]
enum Writer {
    Pipe(pipe::Sender),
    Pty(PtyFile),
}

impl Writer {
    async fn write_all(&mut self, data: &[u8]) -> std::io::Result<()> {
        match self {
            Writer::Pipe(p) => p.write_all(data).await,
            Writer::Pty(p) => {
                let mut rest = data;
                while !rest.is_empty() {
                    let n = std::future::poll_fn(|cx| p.poll_write(cx, rest)).await?;
                    rest = &rest[n..];
                }
                Ok(())
            }
        }
    }
}

/// The supervisor's ends of one process's streams.
#[derive(Debug)]
pub(crate) struct Streams {
    stdin: Mutex<Option<Writer>>,
    /// Set once stdin is closed, so that a write stuck on a full pipe gives up.
    stdin_closed: watch::Sender<bool>,
    stdout: Mutex<Option<OutputReader>>,
    stderr: Mutex<Option<OutputReader>>,
    /// The pty master, for resizing.
    pty: Option<Arc<OwnedFd>>,
}

impl Streams {
    /// From the library's pipes: call within the tokio runtime (the pipes are registered
    /// with its reactor).
    pub(crate) fn from_pipes(io: container::ProcessIo) -> Result<Streams> {
        let stdin = io
            .stdin
            .map(pipe::Sender::from_file)
            .transpose()
            .map_err(|e| Error::io("register the stdin pipe", e))?;
        let reader = |f: Option<std::fs::File>, what: &str| {
            f.map(|f| pipe::Receiver::from_file(f).map(|p| OutputReader(Reader::Pipe(p))))
                .transpose()
                .map_err(|e| Error::io(format!("register the {what} pipe"), e))
        };
        Ok(Streams::new(
            stdin.map(Writer::Pipe),
            reader(io.stdout, "stdout")?,
            reader(io.stderr, "stderr")?,
            None,
        ))
    }

    /// From a pty master: stdin and stdout are two duplicates of it.
    pub(crate) fn from_pty(master: OwnedFd) -> Result<Streams> {
        set_nonblocking(&master).map_err(|e| Error::io("make the pty master non-blocking", e))?;
        let dup = |what: &str| {
            master
                .try_clone()
                .and_then(PtyFile::new)
                .map_err(|e| Error::io(format!("register the pty master for {what}"), e))
        };
        let (input, output) = (dup("stdin")?, dup("stdout")?);
        Ok(Streams::new(
            Some(Writer::Pty(input)),
            Some(OutputReader(Reader::Pty(output))),
            None,
            Some(Arc::new(master)),
        ))
    }

    /// None at all (the process was given descriptors of the caller's).
    pub(crate) fn none() -> Streams {
        Streams::new(None, None, None, None)
    }

    fn new(
        stdin: Option<Writer>,
        stdout: Option<OutputReader>,
        stderr: Option<OutputReader>,
        pty: Option<Arc<OwnedFd>>,
    ) -> Streams {
        Streams {
            stdin: Mutex::new(stdin),
            stdin_closed: watch::Sender::new(false),
            stdout: Mutex::new(stdout),
            stderr: Mutex::new(stderr),
            pty,
        }
    }

    pub(crate) fn pty(&self) -> Option<&OwnedFd> {
        self.pty.as_deref()
    }

    /// Write all of `data` to stdin; fails if stdin is closed meanwhile.
    pub(crate) async fn write_stdin(&self, data: &[u8]) -> Result<()> {
        let mut closed = self.stdin_closed.subscribe();
        let mut stdin = self.stdin.lock().await;
        let Some(writer) = stdin.as_mut() else {
            return Err(no_stdin());
        };
        tokio::select! {
            r = writer.write_all(data) => r.map_err(|e| Error::io("write to the process's stdin", e)),
            _ = closed.wait_for(|c| *c) => Err(no_stdin()),
        }
    }

    /// Close stdin: the process reads end-of-file. A pty is not closed (that would hang
    /// up the terminal): the terminal's end-of-file character is written instead.
    pub(crate) async fn close_stdin(&self) -> Result<()> {
        self.stdin_closed.send_replace(true);
        let writer = self.stdin.lock().await.take();
        match writer {
            Some(mut w @ Writer::Pty(_)) => {
                let eof = self.pty.as_deref().map(eof_char).unwrap_or(4);
                w.write_all(&[eof])
                    .await
                    .map_err(|e| Error::io("write end-of-file to the pty", e))
            }
            Some(Writer::Pipe(_)) | None => Ok(()),
        }
    }

    /// Read at most `max` bytes of `which`; empty at end-of-file.
    pub(crate) async fn read(&self, which: Output, max: usize) -> Result<Vec<u8>> {
        use tokio::io::AsyncReadExt;
        let mut reader = self.output(which).lock().await;
        let Some(r) = reader.as_mut() else {
            return Err(Error::FailedPrecondition(format!(
                "the process has no {which:?} to read (not piped, or taken)"
            )));
        };
        let mut buf = vec![0u8; max.min(MAX_READ)];
        let n = r
            .read(&mut buf)
            .await
            .map_err(|e| Error::io(format!("read the process's {which:?}"), e))?;
        buf.truncate(n);
        Ok(buf)
    }

    /// Hand `which` to the caller, once.
    pub(crate) fn take(&self, which: Output) -> Result<OutputReader> {
        let mut reader = self.output(which).try_lock().map_err(|_| {
            Error::FailedPrecondition(format!("the process's {which:?} is being read"))
        })?;
        reader.take().ok_or_else(|| {
            Error::FailedPrecondition(format!(
                "the process has no {which:?} to take (not piped, or taken)"
            ))
        })
    }

    fn output(&self, which: Output) -> &Mutex<Option<OutputReader>> {
        match which {
            Output::Stdout => &self.stdout,
            Output::Stderr => &self.stderr,
        }
    }
}

fn no_stdin() -> Error {
    Error::FailedPrecondition("the process's stdin is closed (or was never piped)".into())
}

/// The terminal's end-of-file character (^D unless changed).
fn eof_char(master: &OwnedFd) -> u8 {
    rustix::termios::tcgetattr(master)
        .map(|t| t.special_codes[rustix::termios::SpecialCodeIndex::VEOF])
        .unwrap_or(4)
}

/// Set O_NONBLOCK on the open file description (every duplicate shares it).
fn set_nonblocking(fd: &OwnedFd) -> std::io::Result<()> {
    let flags = rustix::fs::fcntl_getfl(fd)?;
    rustix::fs::fcntl_setfl(fd, flags | rustix::fs::OFlags::NONBLOCK)?;
    Ok(())
}

/// A non-blocking pty master registered with the tokio reactor.
#[derive(Debug)]
struct PtyFile(AsyncFd<OwnedFd>);

impl PtyFile {
    fn new(fd: OwnedFd) -> std::io::Result<PtyFile> {
        // SAFETY: the AsyncFd owns `fd`, so the descriptor stays open and refers to the
        // same file description for as long as the AsyncFd lives.
        let fd =
            unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE | Interest::WRITABLE) }
                .map_err(|e| e.into_parts().1)?;
        Ok(PtyFile(fd))
    }

    fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        loop {
            let mut guard = ready!(self.0.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            match guard.try_io(|fd| Ok(rustix::io::read(fd.get_ref(), &mut *unfilled)?)) {
                Ok(Ok(n)) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                // The last holder of the pty's slave closed it: end-of-file, after the data.
                Ok(Err(e)) if e.raw_os_error() == Some(libc::EIO) => return Poll::Ready(Ok(())),
                Ok(Err(e)) if e.kind() == ErrorKind::Interrupted => continue,
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => continue,
            }
        }
    }

    fn poll_write(&mut self, cx: &mut Context<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        loop {
            let mut guard = ready!(self.0.poll_write_ready(cx))?;
            match guard.try_io(|fd| Ok(rustix::io::write(fd.get_ref(), data)?)) {
                Ok(Err(e)) if e.kind() == ErrorKind::Interrupted => continue,
                Ok(r) => return Poll::Ready(r),
                Err(_would_block) => continue,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stdio_must_fit_the_terminal_flag() {
        assert!(Stdio::Terminal.check_terminal(true).is_ok());
        assert!(Stdio::Piped.check_terminal(false).is_ok());
        assert!(matches!(
            Stdio::Terminal.check_terminal(false),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            Stdio::Piped.check_terminal(true),
            Err(Error::InvalidArgument(_))
        ));
    }

    #[test]
    fn a_terminal_inherits_nothing_but_takes_its_pty() {
        assert!(matches!(
            Stdio::Terminal.into_library(),
            container::Stdio::Inherit
        ));
        assert!(matches!(
            Stdio::Piped.into_library(),
            container::Stdio::Piped
        ));
    }
}
