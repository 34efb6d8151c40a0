//! A process's stdio as containerd hands it over: paths of fifos it reads and writes, or
//! `file://PATH` and `binary://PATH?K=V` URIs (a logger program), empty for none.
//!
//! Without a terminal, the container writes its stdout and stderr straight into the fifos
//! (no copy through the shim); the shim keeps a reading end of each open, so that a
//! container writing after its client went away blocks on a full fifo rather than dying
//! of SIGPIPE. Its stdin is a pipe the shim fills from the stdin fifo, so that it gets
//! end-of-file when the client closes its end, or calls CloseIO. With a terminal, the shim
//! copies between the fifos and the pty master the supervisor holds.

use std::fs::{File, OpenOptions};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use supervisor::{Output, Supervisor};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::pipe;
use tokio::sync::oneshot;

/// The stdio paths of a Create or Exec call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StdioPaths {
    pub stdin: String,
    pub stdout: String,
    pub stderr: String,
    pub terminal: bool,
}

/// Where an output stream goes.
#[derive(Debug, PartialEq, Eq)]
enum Target {
    Null,
    Fifo(PathBuf),
    File(PathBuf),
    Binary(Logger),
}

/// A `binary://PATH?K=V&...` logger: PATH runs with the arguments `K V ...`, the process's
/// stdout and stderr on its descriptors 3 and 4; it closes its descriptor 5 once ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logger {
    path: PathBuf,
    args: Vec<String>,
}

/// `%XX` escapes decoded, and in a query `+` as a space.
fn unescape(s: &str, query: bool) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b'+', _) if query => {
                out.push(b' ');
                i += 1;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn logger(rest: &str) -> Logger {
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let args = query
        .split('&')
        .filter(|kv| !kv.is_empty())
        .flat_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            [unescape(k, true), unescape(v, true)]
        })
        .filter(|a| !a.is_empty())
        .collect();
    Logger {
        path: unescape(path, false).into(),
        args,
    }
}

fn target(path: &str) -> Result<Target, String> {
    if path.is_empty() {
        return Ok(Target::Null);
    }
    match path.split_once("://") {
        None => Ok(Target::Fifo(path.into())),
        Some(("fifo", p)) => Ok(Target::Fifo(p.into())),
        Some(("file", p)) => Ok(Target::File(p.into())),
        Some(("binary", rest)) => Ok(Target::Binary(logger(rest))),
        Some((scheme, _)) => Err(format!("{path}: unknown stdio scheme {scheme:?}")),
    }
}

/// An error of the shim's stdio set-up, with what failed.
#[derive(Debug, thiserror::Error)]
pub enum IoError {
    #[error("{0}")]
    Invalid(String),
    #[error("{what}: {source}")]
    Os {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

fn os(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> IoError {
    let what = what.into();
    move |source| IoError::Os { what, source }
}

/// What the shim keeps of a process's stdio while the process is in its table.
#[derive(Debug, Default)]
pub struct Attached {
    /// Reading ends of output fifos, held so that the writer never gets EPIPE.
    keep: Vec<OwnedFd>,
    /// Tells the stdin copy to send what is left and close.
    close_stdin: Option<oneshot::Sender<()>>,
}

impl Attached {
    /// CloseIO: stdin reaches end-of-file once what the client wrote is passed on.
    pub fn close_stdin(&mut self) {
        if let Some(tx) = self.close_stdin.take() {
            let _ = tx.send(());
        }
    }
}

impl Drop for Attached {
    fn drop(&mut self) {
        self.close_stdin();
        // The copies (tasks of their own) end by themselves at end-of-file, the stdin copy
        // on the signal above; a logger ends once the process's output is closed.
        self.keep.clear();
    }
}

/// A process's stdio, opened before its create or exec.
pub struct Prepared {
    paths: StdioPaths,
    /// For the supervisor (moved out by [`Prepared::take_stdio`]).
    stdio: Option<supervisor::Stdio>,
    attached: Attached,
    stdin_fifo: Option<pipe::Receiver>,
    /// The shim's end of the process's stdin pipe (without a terminal).
    stdin_pipe: Option<OwnedFd>,
    /// Where a terminal's output goes when a `binary://` logger takes it: the writing end
    /// of the logger's stdout pipe.
    terminal_logger: Option<OwnedFd>,
}

impl Prepared {
    /// Open what `paths` name, for a process of container `id` in `namespace` (a
    /// `binary://` logger is told them). The pipes and fifos the process gets are given to
    /// `owner` (uid, gid: the runtime options' IoUid and IoGid) unless it is root's: a
    /// process of a user namespace can then reopen them (`/dev/stdout`).
    pub async fn open(
        paths: &StdioPaths,
        id: &str,
        namespace: &str,
        owner: (u32, u32),
    ) -> Result<Prepared, IoError> {
        let out = target(&paths.stdout).map_err(IoError::Invalid)?;
        let err = target(&paths.stderr).map_err(IoError::Invalid)?;
        let mut attached = Attached::default();
        let stdin_fifo = if paths.stdin.is_empty() {
            None
        } else {
            // Read-only and non-blocking: the open does not wait for the client, and the
            // fifo reads as end-of-file only once a writer has come and gone (until then
            // the kernel reports it neither readable nor hung up).
            let f = pipe::OpenOptions::new()
                .open_receiver(&paths.stdin)
                .map_err(os(format!("open the stdin fifo {}", paths.stdin)))?;
            Some(f)
        };
        if paths.terminal {
            // A logger takes the terminal's output on its descriptor 3; its descriptor 4 (a
            // terminal has no separate stderr) reads end-of-file at once.
            let terminal_logger = match &out {
                Target::Binary(l) => {
                    let (stdout, _stderr, child) = start_logger(l, id, namespace).await?;
                    tokio::spawn(reap_logger(child));
                    Some(stdout)
                }
                _ => None,
            };
            return Ok(Prepared {
                paths: paths.clone(),
                stdio: Some(supervisor::Stdio::Terminal),
                attached,
                stdin_fifo,
                stdin_pipe: None,
                terminal_logger,
            });
        }
        let (stdin, stdin_pipe) =
            match stdin_fifo {
                Some(_) => {
                    let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
                        .map_err(|e| IoError::Os {
                            what: "pipe2 for the process's stdin".into(),
                            source: e.into(),
                        })?;
                    chown(&r, owner, "the process's stdin pipe")?;
                    (r, Some(w))
                }
                None => (dev_null(false)?, None),
            };
        let (stdout, stderr) = match (&out, &err) {
            (Target::Binary(l), _) | (_, Target::Binary(l)) => {
                if paths.stderr != paths.stdout {
                    return Err(IoError::Invalid(format!(
                        "a binary:// logger takes both stdout and stderr: {} and {} differ",
                        paths.stdout, paths.stderr
                    )));
                }
                let (stdout, stderr, child) = start_logger(l, id, namespace).await?;
                tokio::spawn(reap_logger(child));
                chown(&stdout, owner, "the logger's stdout pipe")?;
                chown(&stderr, owner, "the logger's stderr pipe")?;
                (stdout, stderr)
            }
            _ => {
                let stdout = open_output(&out, &mut attached.keep, "stdout")?;
                if matches!(out, Target::Fifo(_)) {
                    chown(&stdout, owner, "the stdout fifo")?;
                }
                let stderr = if paths.stderr == paths.stdout && out != Target::Null {
                    stdout
                        .try_clone()
                        .map_err(os("dup the stdout descriptor for stderr"))?
                } else {
                    let stderr = open_output(&err, &mut attached.keep, "stderr")?;
                    if matches!(err, Target::Fifo(_)) {
                        chown(&stderr, owner, "the stderr fifo")?;
                    }
                    stderr
                };
                (stdout, stderr)
            }
        };
        Ok(Prepared {
            paths: paths.clone(),
            stdio: Some(supervisor::Stdio::Fds {
                stdin,
                stdout,
                stderr,
            }),
            attached,
            stdin_fifo,
            stdin_pipe,
            terminal_logger: None,
        })
    }

    /// What the supervisor's create or exec takes.
    pub fn take_stdio(&mut self) -> supervisor::Stdio {
        self.stdio.take().unwrap_or(supervisor::Stdio::Piped)
    }

    /// Once the process exists: start the copies; what the shim keeps of its stdio.
    pub fn attach(
        mut self,
        sup: &Supervisor,
        id: &str,
        exec_id: &str,
    ) -> Result<Attached, IoError> {
        let mut attached = std::mem::take(&mut self.attached);
        if let Some(fifo) = self.stdin_fifo.take() {
            let (tx, rx) = oneshot::channel();
            let sink = match self.stdin_pipe.take() {
                Some(w) => {
                    let w = pipe::Sender::from_owned_fd(w)
                        .map_err(os("register the stdin pipe with the reactor"))?;
                    Sink::Pipe(w)
                }
                None => Sink::Terminal {
                    sup: sup.clone(),
                    id: id.to_string(),
                    exec_id: exec_id.to_string(),
                },
            };
            attached.close_stdin = Some(tx);
            tokio::spawn(copy_stdin(fifo, sink, rx));
        }
        if self.paths.terminal && !self.paths.stdout.is_empty() {
            let (writer, keep) = match self.terminal_logger.take() {
                Some(fd) => {
                    let w = pipe::Sender::from_owned_fd(fd)
                        .map_err(os("register the logger's pipe with the reactor"))?;
                    (Box::new(w) as Writer, None)
                }
                None => terminal_output(&self.paths.stdout)?,
            };
            let reader = sup
                .take_output(id, exec_id, Output::Stdout)
                .map_err(|e| IoError::Invalid(format!("the terminal's output: {e}")))?;
            tokio::spawn(copy_terminal(reader, writer, keep));
        }
        Ok(attached)
    }
}

/// Where the stdin copy writes.
enum Sink {
    Pipe(pipe::Sender),
    Terminal {
        sup: Supervisor,
        id: String,
        exec_id: String,
    },
}

impl Sink {
    async fn write(&mut self, data: &[u8]) -> bool {
        match self {
            Sink::Pipe(p) => p.write_all(data).await.is_ok(),
            Sink::Terminal { sup, id, exec_id } => sup.write_stdin(id, exec_id, data).await.is_ok(),
        }
    }

    async fn close(self) {
        if let Sink::Terminal { sup, id, exec_id } = self {
            // The terminal's end-of-file character: what a user's ^D would send.
            let _ = sup.close_stdin(&id, &exec_id).await;
        }
        // A pipe closes as it is dropped.
    }
}

/// Copy the stdin fifo into the process until the client closes it, or calls CloseIO (then
/// what is buffered in the fifo goes too), or the process cannot take more.
async fn copy_stdin(mut fifo: pipe::Receiver, mut sink: Sink, mut close: oneshot::Receiver<()>) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        tokio::select! {
            n = fifo.read(&mut buf) => match n {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if !sink.write(&buf[..n]).await {
                        return;
                    }
                }
            },
            _ = &mut close => {
                // The client closed its end before asking: all it wrote is in the fifo.
                while let Ok(n) = fifo.try_read(&mut buf) {
                    if n == 0 || !sink.write(&buf[..n]).await {
                        break;
                    }
                }
                break;
            }
        }
    }
    sink.close().await;
}

type Writer = Box<dyn tokio::io::AsyncWrite + Unpin + Send>;

/// Where a terminal's output is copied: the stdout fifo (with a reading end of it kept
/// open), or a `file://` path (a `binary://` logger is started by [`Prepared::open`]).
fn terminal_output(stdout: &str) -> Result<(Writer, Option<File>), IoError> {
    match target(stdout).map_err(IoError::Invalid)? {
        Target::Fifo(path) => {
            let keep = OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(&path)
                .map_err(os(format!("open the stdout fifo {}", path.display())))?;
            let writer = pipe::OpenOptions::new()
                .open_sender(&path)
                .map_err(os(format!(
                    "open the stdout fifo {} for writing",
                    path.display()
                )))?;
            Ok((Box::new(writer), Some(keep)))
        }
        Target::File(path) => {
            let mut keep = Vec::new();
            let fd = open_output(&Target::File(path), &mut keep, "stdout")?;
            Ok((Box::new(FileWriter(File::from(fd))), None))
        }
        Target::Binary(_) => Err(IoError::Invalid(format!(
            "{stdout}: a binary:// logger is started when the stdio is opened"
        ))),
        Target::Null => Err(IoError::Invalid("no stdout for the terminal".into())),
    }
}

/// A regular file, written in place: a write to a file waits on no one, and tokio's File
/// would write on its blocking pool, threads this single-threaded shim does not start.
struct FileWriter(File);

impl tokio::io::AsyncWrite for FileWriter {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::task::Poll::Ready(std::io::Write::write(&mut self.0, buf))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

/// Copy the terminal's output into the stdout fifo until the terminal's end-of-file (every
/// holder of the pty's slave has gone).
async fn copy_terminal(
    mut reader: supervisor::OutputReader,
    mut writer: Writer,
    keep: Option<File>,
) {
    if let Err(e) = tokio::io::copy(&mut reader, &mut writer).await {
        tracing::debug!("terminal output copy ended: {e}");
    }
    let _ = writer.flush().await;
    drop(writer);
    drop(keep);
}

/// How long a logger may take to say it is ready.
const LOGGER_READY: std::time::Duration = std::time::Duration::from_secs(10);

/// Start a `binary://` logger: the process's stdout and stderr (the writing ends returned)
/// go to its descriptors 3 and 4; it is ready once it has closed its descriptor 5.
async fn start_logger(
    l: &Logger,
    id: &str,
    namespace: &str,
) -> Result<(OwnedFd, OwnedFd, tokio::process::Child), IoError> {
    let pipe = |what: &str| {
        rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(|e| IoError::Os {
            what: format!("pipe2 for the logger's {what}"),
            source: e.into(),
        })
    };
    let (out_r, out_w) = pipe("stdout")?;
    let (err_r, err_w) = pipe("stderr")?;
    let (ready_r, ready_w) = pipe("readiness")?;
    let mut cmd = tokio::process::Command::new(&l.path);
    cmd.args(&l.args)
        .env("CONTAINER_ID", id)
        .env("CONTAINER_NAMESPACE", namespace)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let fds = [out_r.as_raw_fd(), err_r.as_raw_fd(), ready_w.as_raw_fd()];
    // SAFETY: the closure runs in the child between fork and exec and calls only fcntl and
    // dup2, which are async-signal-safe; it allocates nothing.
    unsafe {
        cmd.pre_exec(move || place_logger_fds(&fds));
    }
    let mut child = cmd
        .spawn()
        .map_err(os(format!("start the logger {}", l.path.display())))?;
    drop((out_r, err_r, ready_w));
    let mut ready = pipe::Receiver::from_owned_fd(ready_r)
        .map_err(os("register the logger's readiness pipe"))?;
    let mut sink = Vec::new();
    let failed = match tokio::time::timeout(LOGGER_READY, ready.read_to_end(&mut sink)).await {
        Ok(Ok(_)) => return Ok((out_w, err_w, child)),
        Ok(Err(e)) => IoError::Os {
            what: format!("wait for the logger {} to be ready", l.path.display()),
            source: e,
        },
        Err(_) => IoError::Invalid(format!(
            "the logger {} did not close its descriptor 5 within {LOGGER_READY:?}",
            l.path.display()
        )),
    };
    // A logger that never got ready is not left running.
    let _ = child.kill().await;
    Err(failed)
}

/// In the logger's child: `fds` onto 3, 4 and 5 (first moved above 9, since one of them
/// may sit where another goes).
fn place_logger_fds(fds: &[RawFd; 3]) -> std::io::Result<()> {
    let mut high = [0; 3];
    for (h, fd) in high.iter_mut().zip(fds) {
        // SAFETY: fcntl on a descriptor this process holds.
        *h = unsafe { libc::fcntl(*fd, libc::F_DUPFD_CLOEXEC, 10) };
        if *h < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    for (target, fd) in (3..).zip(high) {
        // SAFETY: dup2 between descriptors this process holds; the target loses
        // close-on-exec, the source (close-on-exec) goes at exec.
        if unsafe { libc::dup2(fd, target) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// A logger ends once the process's stdout and stderr are closed; it is reaped then.
async fn reap_logger(mut child: tokio::process::Child) {
    match child.wait().await {
        Ok(status) if !status.success() => tracing::warn!("the logger ended with {status}"),
        Ok(_) => {}
        Err(e) => tracing::warn!("wait for the logger: {e}"),
    }
}

/// Give a pipe or fifo to `owner`, unless that is root (who owns them already).
fn chown(fd: &OwnedFd, owner: (u32, u32), what: &str) -> Result<(), IoError> {
    if owner == (0, 0) {
        return Ok(());
    }
    let (uid, gid) = owner;
    rustix::fs::fchown(
        fd,
        Some(rustix::fs::Uid::from_raw(uid)),
        Some(rustix::fs::Gid::from_raw(gid)),
    )
    .map_err(|e| IoError::Os {
        what: format!("give {what} to {uid}:{gid}"),
        source: e.into(),
    })
}

fn dev_null(write: bool) -> Result<OwnedFd, IoError> {
    OpenOptions::new()
        .read(!write)
        .write(write)
        .open("/dev/null")
        .map(Into::into)
        .map_err(os("open /dev/null"))
}

/// The descriptor the process writes `which` to; a fifo's reading end goes to `keep`.
fn open_output(t: &Target, keep: &mut Vec<OwnedFd>, which: &str) -> Result<OwnedFd, IoError> {
    match t {
        Target::Null => dev_null(true),
        Target::Binary(_) => Err(IoError::Invalid(
            "a binary:// logger is started with its process, not opened".into(),
        )),
        Target::File(p) => {
            if let Some(dir) = p.parent() {
                std::fs::create_dir_all(dir).map_err(os(format!("create {}", dir.display())))?;
            }
            OpenOptions::new()
                .append(true)
                .create(true)
                .open(p)
                .map(Into::into)
                .map_err(os(format!("open the {which} file {}", p.display())))
        }
        Target::Fifo(p) => {
            // The reading end first, without waiting for a writer: then the writing open
            // cannot block either.
            let r = OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(p)
                .map_err(os(format!("open the {which} fifo {}", p.display())))?;
            let w = OpenOptions::new().write(true).open(p).map_err(os(format!(
                "open the {which} fifo {} for writing",
                p.display()
            )))?;
            keep.push(r.into());
            Ok(w.into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stdio_paths_name_their_kind() {
        assert_eq!(target(""), Ok(Target::Null));
        assert_eq!(
            target("/run/f/1-stdout"),
            Ok(Target::Fifo("/run/f/1-stdout".into()))
        );
        assert_eq!(
            target("file:///var/log/c.log"),
            Ok(Target::File("/var/log/c.log".into()))
        );
        let logger = Logger {
            path: "/usr/bin/log it".into(),
            args: ["path", "/var/log", "tag", "a b", "flag"]
                .map(String::from)
                .to_vec(),
        };
        assert_eq!(
            target("binary:///usr/bin/log%20it?path=%2Fvar%2Flog&tag=a+b&flag"),
            Ok(Target::Binary(logger))
        );
        assert!(target("tcp://x").is_err());
        // Only two hex digits make an escape.
        assert_eq!(unescape("a%2Bb%+1%zz%4", false), "a+b%+1%zz%4");
    }

    #[tokio::test]
    async fn output_fifos_are_written_directly_and_kept_open() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("out");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let paths = StdioPaths {
            stdout: fifo.to_str().unwrap().into(),
            ..Default::default()
        };
        let mut p = Prepared::open(&paths, "c", "ns", (0, 0)).await.unwrap();
        let supervisor::Stdio::Fds { stdout, .. } = p.take_stdio() else {
            panic!("no descriptors")
        };
        // With the shim's reading end open, a write succeeds with no client reading.
        let mut f = File::from(stdout);
        std::io::Write::write_all(&mut f, b"hello").unwrap();
        assert_eq!(p.attached.keep.len(), 1);
    }

    #[tokio::test]
    async fn stdio_is_given_to_the_io_owner() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let (stdin, stdout) = (dir.path().join("in"), dir.path().join("out"));
        for f in [&stdin, &stdout] {
            nix::unistd::mkfifo(f, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        }
        let paths = StdioPaths {
            stdin: stdin.to_str().unwrap().into(),
            stdout: stdout.to_str().unwrap().into(),
            ..Default::default()
        };
        let mut p = Prepared::open(&paths, "c", "ns", (1234, 5678))
            .await
            .unwrap();
        let supervisor::Stdio::Fds { stdin, stdout, .. } = p.take_stdio() else {
            panic!("no descriptors")
        };
        for fd in [&stdin, &stdout] {
            let st = rustix::fs::fstat(fd).unwrap();
            assert_eq!((st.st_uid, st.st_gid), (1234, 5678));
        }
    }

    #[tokio::test]
    async fn a_terminals_output_can_go_to_a_logger() {
        let dir = tempfile::tempdir().unwrap();
        let (logger, out) = (dir.path().join("logger"), dir.path().join("logged"));
        std::fs::write(
            &logger,
            "#!/bin/sh\nexec 5>&-\ncat <&4 >/dev/null\ncat <&3 >\"$2\"\n",
        )
        .unwrap();
        std::fs::set_permissions(&logger, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let uri = format!("binary://{}?file={}", logger.display(), out.display());
        let paths = StdioPaths {
            stdout: uri.clone(),
            stderr: uri,
            terminal: true,
            ..Default::default()
        };
        let mut p = Prepared::open(&paths, "c", "ns", (0, 0)).await.unwrap();
        assert!(matches!(p.take_stdio(), supervisor::Stdio::Terminal));
        // What attach copies the terminal's output into.
        let fd = p.terminal_logger.take().expect("the logger's pipe");
        let mut w = File::from(fd);
        std::io::Write::write_all(&mut w, b"from the tty").unwrap();
        drop(w);
        let until = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while std::fs::read_to_string(&out).unwrap_or_default() != "from the tty" {
            assert!(std::time::Instant::now() < until, "nothing logged");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}
