//! The spawner: how a multi-threaded program (a server on an async runtime, such as an agent
//! or a shim) creates containers and execs processes.
//!
//! The library clones a container's processes with raw clone3, which copies only the calling
//! thread and skips libc's fork handlers: in a multi-threaded program a lock another thread
//! held (the allocator's, a logger's) stays locked in the child for good. So the clone must
//! happen in a single-threaded process. [`Spawner::start`], called while the program is still
//! single-threaded, forks a small helper that only waits for requests. For each request it
//! forks a worker, which runs [`crate::create`] or [`Container::exec`] as the CLI would, sends
//! back what the caller keeps (the state directory's lock, the pty master, the caller's ends
//! of pipes, a pidfd) and exits.
//!
//! Both the worker and the container processes it clones are born with CLONE_PARENT, so
//! they are children of the calling program, not of the helper: [`crate::ProcessHandle::wait`]
//! works, and nothing else needs to reap them. Whatever the worker changes in itself for a
//! container's sake (non-dumpable, oom_score_adj, a rootless exec joining the container's
//! user namespace) ends with it; the calling program is left as it was. Each request has its
//! own worker, so a slow hook in one create does not hold up the others.
//!
//! A program that stays single-threaded needs no helper: [`Spawner::in_process`] creates
//! and execs in the calling thread.

use crate::container::Container;
use crate::error::{Context, Error, Result, WireError};
use crate::process::exec::ExecOptions;
use crate::process::ledger::Ledger;
use crate::process::stdio::{ProcessIo, Stdio};
use crate::process::CreateOptions;
use crate::process::ProcessHandle;
use crate::state::SavedState;
use nix::sys::socket::{self, MsgFlags};
use serde::{Deserialize, Serialize};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::PathBuf;

/// A handle on the spawner helper. Send and Sync: any thread may call it, and calls from
/// several threads run at once. Or, made by [`Spawner::in_process`], no helper at all.
#[derive(Debug)]
pub struct Spawner {
    /// `None`: create and exec run in the calling thread.
    helper: Option<Helper>,
}

#[derive(Debug)]
struct Helper {
    control: OwnedFd,
    pid: i32,
}

/// Caller → helper (the worker acts on it). Descriptors attached: the socket for the
/// answers, the [`Ledger`], then the three of [`Stdio::Fds`] if `stdio` says so.
#[derive(Serialize, Deserialize)]
enum Request {
    Create {
        options: Box<CreateOptions>,
        stdio: StdioKind,
    },
    Exec {
        root: PathBuf,
        id: String,
        options: Box<ExecOptions>,
        stdio: StdioKind,
    },
}

#[derive(Serialize, Deserialize, PartialEq, Debug)]
enum StdioKind {
    Inherit,
    Piped,
    Fds,
}

/// Helper or worker → caller, on the request's own socket.
#[derive(Serialize, Deserialize, Debug)]
enum Answer {
    /// From the helper: the worker that handles the request (the caller reaps it).
    Worker { pid: i32 },
    /// From the worker: the outcome, and the container processes it killed, which the caller
    /// reaps. The descriptors attached are those `passed` names, in that order.
    Done {
        outcome: std::result::Result<Outcome, WireError>,
        passed: Vec<Passed>,
        reap: Vec<i32>,
    },
}

#[derive(Serialize, Deserialize, Debug)]
enum Outcome {
    /// The new container's state directory and the state just written there (sent, so the
    /// caller need not read it back).
    Created {
        dir: PathBuf,
        state: Box<SavedState>,
    },
    Execed {
        pid: i32,
    },
}

/// Which descriptor rides with an answer.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq)]
enum Passed {
    Lock,
    Pidfd,
    Console,
    Stdin,
    Stdout,
    Stderr,
}

impl Spawner {
    /// Fork the helper. Call it while the program is single-threaded: first thing in `main`,
    /// before an async runtime or any thread starts (and after logging is set up, which the
    /// helper inherits).
    pub fn start() -> Result<Spawner> {
        crate::sys::require_single_thread("Spawner::start (call it first thing in main)")?;
        let (control, helper_end) = seqpacket_pair("the spawner's control socket")?;
        let parent = std::process::id() as i32;
        // SAFETY: the process is single-threaded (checked above), so the child is a complete
        // copy in which every lock is as this thread left it.
        match unsafe { nix::unistd::fork() }.ctx(|| "fork the spawner")? {
            nix::unistd::ForkResult::Child => {
                drop(control);
                crate::sys::child_main(|| {
                    serve(helper_end, parent);
                    // SAFETY: leave at once, without the caller's atexit handlers.
                    unsafe { libc::_exit(0) }
                })
            }
            nix::unistd::ForkResult::Parent { child } => Ok(Spawner {
                helper: Some(Helper {
                    control,
                    pid: child.as_raw(),
                }),
            }),
        }
    }

    /// A spawner without a helper, for a program that stays single-threaded (a server on a
    /// current-thread async runtime that never starts a thread): create and exec run in
    /// the calling thread, as the CLI runs them, and fail if the process has more than one
    /// thread at that moment. The container's processes are the caller's children. What a
    /// clone changes in the cloning process (it turns non-dumpable, so that the child is
    /// born so) is undone once the call returns; a container that may be traced moves the
    /// caller onto a read-only view of its binary for good (see `security::exe_guard`).
    /// Saves the helper process and a worker's fork per call.
    pub fn in_process() -> Spawner {
        Spawner { helper: None }
    }

    /// Whether create and exec run in the calling thread ([`Spawner::in_process`]).
    pub fn is_in_process(&self) -> bool {
        self.helper.is_none()
    }

    /// [`crate::create`], run in a worker. The options' `preserve_fds` and `listen_fds` name
    /// descriptors of the CLI's own table and are refused here.
    pub fn create(&self, mut o: CreateOptions) -> Result<Container> {
        refuse_own_fds(o.preserve_fds, o.listen_fds)?;
        if self.helper.is_none() {
            return in_caller("create", || crate::process::create(&o));
        }
        let stdio = std::mem::take(&mut o.stdio);
        let (kind, fds) = stdio_kind(&stdio);
        let request = Request::Create {
            options: Box::new(o),
            stdio: kind,
        };
        let (outcome, mut passed) = self.call(&request, &fds)?;
        drop(stdio);
        let Outcome::Created { dir, state } = outcome else {
            return Err(Error::Invalid(format!(
                "the spawner answered a create with {outcome:?}"
            )));
        };
        let lock = passed
            .take(Passed::Lock)
            .ok_or_else(|| Error::Invalid("the spawner sent no lock".into()))?;
        let io = passed.io();
        let console = passed.take(Passed::Console);
        Ok(Container::new_created(
            dir,
            *state,
            lock.into(),
            console,
            io,
        ))
    }

    /// [`Container::exec`], run in a worker, which loads and locks `container` anew (this
    /// call lets go of it first).
    pub fn exec(&self, container: Container, mut o: ExecOptions) -> Result<ProcessHandle> {
        refuse_own_fds(o.preserve_fds, o.listen_fds)?;
        if self.helper.is_none() {
            return in_caller("exec", || container.exec(&o));
        }
        let id = container.id().to_string();
        let root = container
            .dir()
            .parent()
            .map(PathBuf::from)
            .unwrap_or_default();
        drop(container);
        let stdio = std::mem::take(&mut o.stdio);
        let (kind, fds) = stdio_kind(&stdio);
        let request = Request::Exec {
            root,
            id,
            options: Box::new(o),
            stdio: kind,
        };
        let (outcome, mut passed) = self.call(&request, &fds)?;
        drop(stdio);
        let Outcome::Execed { pid } = outcome else {
            return Err(Error::Invalid(format!(
                "the spawner answered an exec with {outcome:?}"
            )));
        };
        let pidfd = passed
            .take(Passed::Pidfd)
            .ok_or_else(|| Error::Invalid("the spawner sent no pidfd".into()))?;
        let io = passed.io();
        let console = passed.take(Passed::Console);
        Ok(ProcessHandle::new(pid, pidfd, io, console))
    }

    /// Send `request`, wait for its answers, reap the worker and what it killed.
    fn call(&self, request: &Request, stdio: &[BorrowedFd]) -> Result<(Outcome, PassedFds)> {
        let helper = self
            .helper
            .as_ref()
            .ok_or_else(|| Error::Invalid("an in-process spawner has no helper".into()))?;
        let (ours, theirs) = seqpacket_pair("a spawner request's socket")?;
        let ledger = Ledger::new()?;
        let bytes = serde_json::to_vec(request).expect("requests always serialize");
        let mut fds = vec![theirs.as_raw_fd()];
        fds.extend(ledger.fd().map(|f| f.as_raw_fd()));
        fds.extend(stdio.iter().map(|f| f.as_raw_fd()));
        send(&helper.control, &bytes, &fds).ctx(|| "send a request to the spawner")?;
        drop(theirs);
        let mut worker = None;
        let mut done = None;
        let mut failed = None;
        while worker.is_none() || done.is_none() {
            let (bytes, fds) = match recv(&ours).ctx(|| "read the spawner's answer") {
                Ok(Some(answer)) => answer,
                Ok(None) => break,
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            };
            match serde_json::from_slice(&bytes) {
                Ok(Answer::Worker { pid }) => worker = Some(pid),
                Ok(Answer::Done {
                    outcome,
                    passed,
                    reap,
                }) => {
                    done = Some((
                        outcome,
                        PassedFds(passed.into_iter().zip(fds).collect()),
                        reap,
                    ))
                }
                Err(e) => tracing::warn!("a malformed answer from the spawner: {e}"),
            }
        }
        // Reaped whatever came of the read: a worker left unreaped is a zombie of ours.
        if let Some(pid) = worker {
            reap(pid);
        }
        if done.is_none() {
            clean_after_dead_worker(request, &ledger.pids());
        }
        if let Some(e) = failed {
            return Err(e);
        }
        let Some((outcome, passed, killed)) = done else {
            return Err(Error::Invalid(match worker {
                Some(pid) => format!(
                    "the spawner's worker {pid} died without an answer (what it had made is removed)"
                ),
                None => format!("the spawner (pid {}) is gone", helper.pid),
            }));
        };
        for pid in killed {
            reap(pid);
        }
        match outcome {
            Ok(o) => Ok((o, passed)),
            Err(e) => Err(e.into()),
        }
    }
}

impl Drop for Spawner {
    fn drop(&mut self) {
        if let Some(h) = &self.helper {
            // The helper exits when it reads end-of-file on its control socket.
            let _ = socket::shutdown(h.control.as_raw_fd(), socket::Shutdown::Both);
            reap(h.pid);
        }
    }
}

/// Run `f` (a create or an exec, which clone) in the calling thread: refused unless the
/// process has one thread (the clone copies this one only; a lock another thread held
/// would stay locked in the child for good). The process's dumpable flag, which the clone
/// clears for its child's sake, is restored after.
fn in_caller<T>(what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    crate::sys::require_single_thread(&format!("an in-process spawner's {what}"))?;
    let dumpable = nix::sys::prctl::get_dumpable().ctx(|| "prctl(PR_GET_DUMPABLE)")?;
    let out = f();
    if dumpable {
        nix::sys::prctl::set_dumpable(true).ctx(|| "prctl(PR_SET_DUMPABLE, 1)")?;
    }
    out
}

/// A worker died before it answered (killed, say): end the container processes it made
/// for us (our children, not yet reaped, so their pids are still theirs), and for a create,
/// remove what it left as `delete --force` would: a half-made state directory, or a whole
/// container whose init was ours. Someone else's complete container of that id is left be.
fn clean_after_dead_worker(request: &Request, cloned: &[i32]) {
    for &pid in cloned {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
        reap(pid);
    }
    let Request::Create { options, .. } = request else {
        return;
    };
    use crate::remnant::{load_for_delete, Loaded};
    let removed = match load_for_delete(&options.root, &options.id) {
        Ok(Loaded::Remnant(r)) => r.delete(),
        Ok(Loaded::Container(c)) if cloned.contains(&c.saved().init_pid) => c.delete(true),
        Ok(Loaded::Container(_)) | Err(Error::NotExist) => Ok(vec![]),
        Err(e) => Err(e),
    };
    match removed {
        Ok(warnings) => warnings.iter().for_each(|w| tracing::debug!("{w}")),
        Err(e) => tracing::warn!(
            "container {} left by a dead spawner worker: {e}",
            options.id
        ),
    }
}

/// `preserve_fds` and `listen_fds` name descriptors of the caller's own table, which a
/// worker does not have.
fn refuse_own_fds(preserve_fds: u32, listen_fds: u32) -> Result<()> {
    if preserve_fds > 0 || listen_fds > 0 {
        return Err(Error::Invalid(
            "preserve_fds and listen_fds pass on the calling process's own descriptors 3 and \
             up; through a spawner, hand a process its descriptors as Stdio::Fds"
                .into(),
        ));
    }
    Ok(())
}

/// The descriptors an answer brought, by what they are.
struct PassedFds(Vec<(Passed, OwnedFd)>);

impl PassedFds {
    fn take(&mut self, what: Passed) -> Option<OwnedFd> {
        let i = self.0.iter().position(|(p, _)| *p == what)?;
        Some(self.0.remove(i).1)
    }

    fn io(&mut self) -> ProcessIo {
        ProcessIo {
            stdin: self.take(Passed::Stdin).map(Into::into),
            stdout: self.take(Passed::Stdout).map(Into::into),
            stderr: self.take(Passed::Stderr).map(Into::into),
        }
    }
}

fn stdio_kind(stdio: &Stdio) -> (StdioKind, Vec<BorrowedFd<'_>>) {
    match stdio {
        Stdio::Inherit => (StdioKind::Inherit, vec![]),
        Stdio::Piped => (StdioKind::Piped, vec![]),
        Stdio::Fds {
            stdin,
            stdout,
            stderr,
        } => (
            StdioKind::Fds,
            vec![stdin.as_fd(), stdout.as_fd(), stderr.as_fd()],
        ),
    }
}

/// Wait for our child `pid`, which has ended or is about to.
fn reap(pid: i32) {
    loop {
        match nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => tracing::warn!("reap process {pid}: {e}"),
            Ok(_) => {}
        }
        return;
    }
}

/// The helper's life: for each request, fork a worker and tell the caller its pid; end
/// when the caller closes the control socket (or dies).
fn serve(control: OwnedFd, parent: i32) {
    // SAFETY: prctl with integer arguments, affecting only this process.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        libc::prctl(libc::PR_SET_NAME, c"runr-spawner".as_ptr());
    }
    if nix::unistd::getppid().as_raw() != parent {
        return;
    }
    loop {
        let (bytes, mut fds) = match recv(&control) {
            Ok(Some(r)) => r,
            Ok(None) => return,
            Err(e) => {
                tracing::error!("the spawner's control socket: {e}");
                return;
            }
        };
        if fds.len() < 2 {
            tracing::error!("a request to the spawner came without its answer socket and ledger");
            continue;
        }
        let answer = fds.remove(0);
        let ledger = fds.remove(0);
        match crate::sys::clone_process(
            libc::CLONE_PARENT as u64,
            crate::sys::Dumpable::Never,
            "the spawner's worker",
        ) {
            Ok(crate::sys::Forked::Child) => {
                drop(control);
                work(&bytes, fds, answer, ledger);
                // SAFETY: leave at once, without the caller's atexit handlers.
                unsafe { libc::_exit(0) }
            }
            Ok(crate::sys::Forked::Parent { pid }) => {
                let _ = answer_with(&answer, &Answer::Worker { pid }, &[]);
            }
            Err(e) => {
                let done = Answer::Done {
                    outcome: Err((&e).into()),
                    passed: vec![],
                    reap: vec![],
                };
                let _ = answer_with(&answer, &done, &[]);
            }
        }
    }
}

/// A worker's life: do what was asked, answer, and let `serve`'s caller exit.
fn work(request: &[u8], stdio: Vec<OwnedFd>, answer: OwnedFd, ledger: OwnedFd) {
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // Mapped, the ledger needs no descriptor (one a container process could inherit).
        let ledger = Ledger::open(ledger)?;
        crate::process::children::hand_to_parent(answer.as_raw_fd(), ledger);
        act(request, stdio)
    }))
    .unwrap_or_else(|_| Err(Error::Invalid("the spawner's worker panicked".into())));
    let (outcome, fds) = match outcome {
        Ok((o, fds)) => (Ok(o), fds),
        Err(e) => (Err((&e).into()), vec![]),
    };
    let passed = fds.iter().map(|(p, _)| *p).collect();
    let raw: Vec<RawFd> = fds.iter().map(|(_, f)| f.as_raw_fd()).collect();
    let done = Answer::Done {
        outcome,
        passed,
        reap: crate::process::children::take_to_reap(),
    };
    if let Err(e) = answer_with(&answer, &done, &raw) {
        tracing::error!("the spawner's worker could not answer: {e}");
    }
}

fn act(request: &[u8], stdio: Vec<OwnedFd>) -> Result<(Outcome, Vec<(Passed, OwnedFd)>)> {
    let request: Request = serde_json::from_slice(request)
        .map_err(|e| Error::Invalid(format!("a malformed request to the spawner: {e}")))?;
    let mut passed = Vec::new();
    match request {
        Request::Create {
            mut options,
            stdio: kind,
        } => {
            options.stdio = stdio_from(kind, stdio)?;
            let mut c = crate::process::create(&options)?;
            let dir = c.dir().to_path_buf();
            let state = Box::new(c.saved().clone());
            passed.extend(c.take_lock().map(|l| (Passed::Lock, l.into())));
            passed.extend(c.take_console().map(|f| (Passed::Console, f)));
            push_io(&mut passed, c.take_io());
            Ok((Outcome::Created { dir, state }, passed))
        }
        Request::Exec {
            root,
            id,
            mut options,
            stdio: kind,
        } => {
            options.stdio = stdio_from(kind, stdio)?;
            let c = Container::load(&root, &id)?;
            let handle = c.exec(&options)?;
            let (pid, pidfd, io, console) = handle.into_parts();
            passed.push((Passed::Pidfd, pidfd));
            passed.extend(console.map(|f| (Passed::Console, f)));
            push_io(&mut passed, io);
            Ok((Outcome::Execed { pid }, passed))
        }
    }
}

fn push_io(passed: &mut Vec<(Passed, OwnedFd)>, io: ProcessIo) {
    passed.extend(io.stdin.map(|f| (Passed::Stdin, f.into())));
    passed.extend(io.stdout.map(|f| (Passed::Stdout, f.into())));
    passed.extend(io.stderr.map(|f| (Passed::Stderr, f.into())));
}

fn stdio_from(kind: StdioKind, fds: Vec<OwnedFd>) -> Result<Stdio> {
    match (kind, <[OwnedFd; 3]>::try_from(fds)) {
        (StdioKind::Inherit, _) => Ok(Stdio::Inherit),
        (StdioKind::Piped, _) => Ok(Stdio::Piped),
        (StdioKind::Fds, Ok([stdin, stdout, stderr])) => Ok(Stdio::Fds {
            stdin,
            stdout,
            stderr,
        }),
        (StdioKind::Fds, Err(fds)) => Err(Error::Invalid(format!(
            "a request to the spawner came with {} stdio descriptors, not 3",
            fds.len()
        ))),
    }
}

fn answer_with(socket: &OwnedFd, answer: &Answer, fds: &[RawFd]) -> std::io::Result<()> {
    let bytes = serde_json::to_vec(answer).expect("answers always serialize");
    send(socket, &bytes, fds)
}

fn seqpacket_pair(what: &str) -> Result<(OwnedFd, OwnedFd)> {
    socket::socketpair(
        socket::AddressFamily::Unix,
        socket::SockType::SeqPacket,
        None,
        socket::SockFlag::SOCK_CLOEXEC,
    )
    .ctx(|| format!("socketpair for {what}"))
}

fn send(socket: &OwnedFd, bytes: &[u8], fds: &[RawFd]) -> std::io::Result<()> {
    crate::sys::send_datagram(socket.as_fd(), bytes, fds)
}

fn recv(socket: &OwnedFd) -> std::io::Result<Option<(Vec<u8>, Vec<OwnedFd>)>> {
    crate::sys::recv_datagram(socket.as_fd(), MsgFlags::empty())
}

/// A signal mask on the wire: the signals' numbers.
pub(crate) mod sigmask {
    use nix::sys::signal::{SigSet, Signal};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub(crate) fn serialize<S: Serializer>(mask: &Option<SigSet>, s: S) -> Result<S::Ok, S::Error> {
        let numbers: Option<Vec<i32>> = mask.map(|m| m.iter().map(|sig| sig as i32).collect());
        numbers.serialize(s)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SigSet>, D::Error> {
        let numbers: Option<Vec<i32>> = Option::deserialize(d)?;
        Ok(numbers.map(|n| {
            let mut set = SigSet::empty();
            for sig in n.into_iter().filter_map(|n| Signal::try_from(n).ok()) {
                set.add(sig);
            }
            set
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The test harness runs each test on a thread of its own: the process has several.
    #[test]
    fn an_in_process_spawner_refuses_a_multithreaded_caller() {
        let s = Spawner::in_process();
        assert!(s.is_in_process());
        let o = CreateOptions {
            id: "never-made".into(),
            bundle: "/nonexistent".into(),
            root: "/nonexistent-root".into(),
            ..Default::default()
        };
        let e = s.create(o).err().expect("refused");
        assert!(e.to_string().contains("single-threaded"), "{e}");
        assert!(!std::path::Path::new("/nonexistent-root").exists());
    }
}
