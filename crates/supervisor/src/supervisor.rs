//! The [`Supervisor`]: the operations a front end calls, each an async fn. Blocking
//! library calls run on tokio's blocking pool (with an in-process spawner, in the calling
//! thread: see [`container::Spawner::in_process`]); the table's lock is only ever held for a
//! look-up or an insertion, never across an await.

use crate::error::{Error, Result};
use crate::event::{Event, ExitInfo};
use crate::io::{Output, OutputReader, Stdio};
use crate::table::{wait_exit, Process, Table};
use crate::watch::Reporter;
use cgroups::Stats;
use container::exec::ExecOptions;
use container::{Container, CreateOptions, Spawner, Status};
use oci_spec::runtime::{LinuxResources, Process as OciProcess};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::broadcast;

/// How many events a subscriber may fall behind before it misses some.
const EVENT_BACKLOG: usize = 1024;

/// Containers and their processes, for a long-lived program on a tokio runtime (an agent,
/// a shim). Cheap to clone: every clone is the same supervisor. Dropping the last clone
/// leaves the containers as they are (like the library's `Container`); their reapers go on
/// until the runtime shuts down.
#[derive(Debug, Clone)]
pub struct Supervisor {
    pub(crate) inner: Arc<Inner>,
}

/// What every clone of a [`Supervisor`] shares; its lifecycle operations are in
/// `lifecycle`.
#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) spawner: Arc<Spawner>,
    pub(crate) root: PathBuf,
    table: Mutex<Table>,
    pub(crate) events: broadcast::Sender<Event>,
    /// See [`Supervisor::kill_leftovers_on_exit`].
    pub(crate) kill_leftovers: bool,
}

/// What [`Supervisor::state`] tells of a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerState {
    pub id: String,
    pub bundle: PathBuf,
    /// The init's host pid (also after it has exited).
    pub pid: i32,
    /// As the library derives it from the live init and the cgroup.
    pub status: Status,
    /// How the init ended, once it has.
    pub exit: Option<ExitInfo>,
    /// The exec ids of the container's other processes, sorted.
    pub exec_ids: Vec<String>,
}

impl Supervisor {
    /// A supervisor creating containers through `spawner`, with their state under `root`
    /// (the `--root` of the CLI). Its operations must be called within a tokio runtime.
    pub fn new(spawner: Arc<Spawner>, root: PathBuf) -> Supervisor {
        Supervisor {
            inner: Arc::new(Inner {
                spawner,
                root,
                table: Mutex::new(Table::default()),
                events: broadcast::channel(EVENT_BACKLOG).0,
                kill_leftovers: false,
            }),
        }
    }

    /// As the init of a container without a new pid namespace of its own exits, kill what
    /// it leaves in the container's cgroup, before its exit is reported (as containerd's
    /// shims do; runc itself, and Kata's agent, leave it to `delete`). Set before the first
    /// create.
    pub fn kill_leftovers_on_exit(mut self) -> Supervisor {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.kill_leftovers = true;
        }
        self
    }

    /// Every event from now on. A subscriber that falls more than 1024 events behind gets
    /// `RecvError::Lagged` and misses the oldest.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.inner.events.subscribe()
    }

    /// Create container `id` from `bundle`, its init waiting to be started; its host pid.
    /// `stdio` must fit the config's `process.terminal`.
    pub async fn create(&self, id: &str, bundle: &Path, stdio: Stdio) -> Result<i32> {
        let options = CreateOptions {
            id: id.into(),
            bundle: bundle.into(),
            ..Default::default()
        };
        self.create_with(options, stdio).await
    }

    /// [`Supervisor::create`] with the library's other options (`no_pivot`,
    /// `systemd_cgroup`, `init_sigmask`, ...). Its `root`, `detached`,
    /// `console_in_process` and `stdio` are the supervisor's to set; the descriptors of
    /// `preserve_fds` and `listen_fds` cannot be passed through a spawner.
    pub async fn create_with(&self, options: CreateOptions, stdio: Stdio) -> Result<i32> {
        let inner = self.inner.clone();
        to_completion(async move { inner.create(options, stdio).await }).await
    }

    /// Let the container's program run.
    pub async fn start(&self, id: &str) -> Result<i32> {
        let (inner, id) = (self.inner.clone(), id.to_string());
        to_completion(async move { inner.start(id).await }).await
    }

    /// Start `process` in container `id` as `exec_id` (unique in the container, and not the
    /// container's own id); its host pid. `stdio` must fit `process.terminal`.
    pub async fn exec(
        &self,
        id: &str,
        exec_id: &str,
        process: OciProcess,
        stdio: Stdio,
    ) -> Result<i32> {
        let options = ExecOptions {
            process,
            ..Default::default()
        };
        self.exec_with(id, exec_id, options, stdio).await
    }

    /// [`Supervisor::exec`] with the library's other options (`cgroup`, `ignore_paused`,
    /// `sigmask`, ...). Its `detached`, `console_in_process` and `stdio` are the
    /// supervisor's to set.
    pub async fn exec_with(
        &self,
        id: &str,
        exec_id: &str,
        options: ExecOptions,
        stdio: Stdio,
    ) -> Result<i32> {
        let inner = self.inner.clone();
        let (id, exec_id) = (id.to_string(), exec_id.to_string());
        to_completion(async move { inner.exec(id, exec_id, options, stdio).await }).await
    }

    /// Send `signal` to a process. For the init, `all` sends it to every process of the
    /// container (as `runr kill --all`), also once the init has exited; for an exec'd
    /// process `all` changes nothing.
    pub async fn signal(&self, id: &str, exec_id: &str, signal: i32, all: bool) -> Result<()> {
        let process = self.inner.process(id, exec_id)?;
        // With `all`, an exited init's container still has what it left to signal.
        if process.exit_info().is_some() && !(all && exec_id == id) {
            return Err(exited(id, exec_id));
        }
        if exec_id != id {
            return process
                .handle
                .signal(signal)
                .map_err(|e| Error::library(id, format!("signal process {exec_id:?}"), e));
        }
        if all {
            // The processes exec'd into it, by their pidfds: reached even where the
            // cgroup cannot list them (a host without one), and never a recycled pid.
            let execs: Vec<Arc<Process>> = self
                .inner
                .table()
                .get_mut(id)?
                .execs
                .values()
                .cloned()
                .collect();
            for p in execs.iter().filter(|p| p.exit_info().is_none()) {
                if let Err(e) = p.handle.signal(signal) {
                    tracing::debug!("container {id}: signal process {}: {e}", p.exec_id);
                }
            }
        }
        self.inner
            .with_container(id, "signal the container", move |c| c.kill(signal, all))
            .await
    }

    /// How the process ended: waits until it has. The status is kept, so every waiter, also
    /// a late one, gets it, until [`Supervisor::remove_process`] or [`Supervisor::delete`].
    pub async fn wait(&self, id: &str, exec_id: &str) -> Result<ExitInfo> {
        let exit = self.inner.process(id, exec_id)?.exit.subscribe();
        wait_exit(exit)
            .await
            .ok_or_else(|| Error::not_found(id, exec_id))
    }

    /// Forget an exec'd process that has ended, and its status. (The init goes with
    /// [`Supervisor::delete`].)
    pub fn remove_process(&self, id: &str, exec_id: &str) -> Result<ExitInfo> {
        if exec_id == id {
            return Err(Error::InvalidArgument(
                "a container's init is removed with the container (delete)".into(),
            ));
        }
        let mut table = self.inner.table();
        let entry = table.get_mut(id)?;
        let process = entry.process(id, exec_id)?;
        let exit = process.exit_info().ok_or_else(|| {
            Error::FailedPrecondition(format!("process {exec_id:?} of {id} still runs"))
        })?;
        entry.execs.remove(exec_id);
        Ok(exit)
    }

    /// Write all of `data` to the process's stdin (a pipe, or its pty).
    pub async fn write_stdin(&self, id: &str, exec_id: &str, data: &[u8]) -> Result<()> {
        let process = self.inner.process(id, exec_id)?;
        process.streams.write_stdin(data).await
    }

    /// Close the process's stdin: it reads end-of-file. For a pty, the terminal's
    /// end-of-file character (^D) is written instead.
    pub async fn close_stdin(&self, id: &str, exec_id: &str) -> Result<()> {
        let process = self.inner.process(id, exec_id)?;
        process.streams.close_stdin().await
    }

    /// Up to `max` bytes (at most 1 MiB) of the process's stdout or stderr, as soon as there
    /// are any; empty at end-of-file (every writer gone, everything read).
    pub async fn read_output(
        &self,
        id: &str,
        exec_id: &str,
        which: Output,
        max: usize,
    ) -> Result<Vec<u8>> {
        let process = self.inner.process(id, exec_id)?;
        process.streams.read(which, max).await
    }

    /// The process's stdout or stderr as a tokio reader, to copy elsewhere (a shim's fifo).
    /// Given out once; afterwards `read_output` of it fails.
    pub fn take_output(&self, id: &str, exec_id: &str, which: Output) -> Result<OutputReader> {
        self.inner.process(id, exec_id)?.streams.take(which)
    }

    /// Set the size of the process's terminal.
    pub fn resize_pty(&self, id: &str, exec_id: &str, rows: u16, cols: u16) -> Result<()> {
        let process = self.inner.process(id, exec_id)?;
        let master = process.streams.pty().ok_or_else(|| {
            Error::InvalidArgument(format!("process {exec_id:?} of {id} has no terminal"))
        })?;
        let size = rustix::termios::Winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        rustix::termios::tcsetwinsize(master, size).map_err(|e| {
            Error::io(
                format!("resize the terminal of {exec_id:?} of {id}"),
                e.into(),
            )
        })
    }

    /// Freeze every process of the container.
    pub async fn pause(&self, id: &str) -> Result<()> {
        let event = Event::Paused { id: id.into() };
        self.inner
            .change_and_emit(id, "pause", |c| c.pause(), event)
            .await
    }

    /// Thaw a paused container.
    pub async fn resume(&self, id: &str) -> Result<()> {
        let event = Event::Resumed { id: id.into() };
        self.inner
            .change_and_emit(id, "resume", |c| c.resume(), event)
            .await
    }

    /// Change the container's resources (the fields `resources` sets).
    pub async fn update(&self, id: &str, resources: LinuxResources) -> Result<()> {
        self.inner.check_exists(id)?;
        self.inner
            .with_container(id, "update", move |mut c| c.update(&resources))
            .await
    }

    /// Resource usage of the container's cgroup.
    pub async fn stats(&self, id: &str) -> Result<Stats> {
        self.inner.check_exists(id)?;
        self.inner
            .with_container(id, "read the stats", |c| c.stats())
            .await
    }

    /// Host pids of every process in the container.
    pub async fn pids(&self, id: &str) -> Result<Vec<i32>> {
        self.inner.check_exists(id)?;
        self.inner
            .with_container(id, "list the processes", |c| c.processes())
            .await
    }

    /// Remove the container, as the library's delete does (a created one is killed; a
    /// running or paused one only with `force`), and every process of it from the table;
    /// how its init ended.
    pub async fn delete(&self, id: &str, force: bool) -> Result<ExitInfo> {
        let (inner, id) = (self.inner.clone(), id.to_string());
        to_completion(async move { inner.delete(id, force).await }).await
    }

    /// The container as the library sees it, and what the supervisor knows of it.
    pub async fn state(&self, id: &str) -> Result<ContainerState> {
        let mut state = self.inner.table_state(id)?;
        let (root, cid) = (self.inner.root.clone(), id.to_string());
        // Unlocked: a state never waits for a busy container.
        state.status = self
            .inner
            .blocking(move || Container::load_unlocked(&root, &cid).map(|c| c.status()))
            .await
            .map_err(|e| Error::library(id, "read the container's state", e))?;
        Ok(state)
    }

    /// Every container of this supervisor, by id.
    pub async fn list(&self) -> Result<Vec<ContainerState>> {
        let mut ids: Vec<String> = self.inner.table().containers.keys().cloned().collect();
        ids.sort();
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            match self.state(&id).await {
                Ok(s) => out.push(s),
                // Deleted meanwhile.
                Err(Error::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }
}

impl Inner {
    pub(crate) fn table(&self) -> MutexGuard<'_, Table> {
        // A panic elsewhere while the lock was held leaves a table that is still whole:
        // every change to it is a single insertion or removal.
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn process(&self, id: &str, exec_id: &str) -> Result<Arc<Process>> {
        self.table().process(id, exec_id)
    }

    pub(crate) fn check_exists(&self, id: &str) -> Result<()> {
        self.table().get(id).map(|_| ())
    }

    pub(crate) fn reporter(&self, id: &str) -> Result<Reporter> {
        Ok(self.table().get(id)?.reporter.clone())
    }

    /// Run `f` on container `id`, then send `event`, with its gate held throughout: two
    /// changes' events come in the order of the changes.
    async fn change_and_emit(
        &self,
        id: &str,
        what: &str,
        f: impl FnOnce(Container) -> container::Result<()> + Send + 'static,
        event: Event,
    ) -> Result<()> {
        let to = self.reporter(id)?;
        let _gate = to.gate.lock().await;
        self.with_container(id, what, f).await?;
        to.emit(event);
        Ok(())
    }

    fn table_state(&self, id: &str) -> Result<ContainerState> {
        let table = self.table();
        let entry = table.get(id)?;
        let mut exec_ids: Vec<String> = entry.execs.keys().cloned().collect();
        exec_ids.sort();
        Ok(ContainerState {
            id: id.into(),
            bundle: entry.bundle.clone(),
            pid: entry.init.pid(),
            status: Status::Stopped,
            exit: entry.init.exit_info(),
            exec_ids,
        })
    }

    /// Load (and lock) container `id`, run `f` on it on the blocking pool, and let go of it.
    pub(crate) async fn with_container<T: Send + 'static>(
        &self,
        id: &str,
        what: &str,
        f: impl FnOnce(Container) -> container::Result<T> + Send + 'static,
    ) -> Result<T> {
        let (root, cid) = (self.root.clone(), id.to_string());
        self.blocking(move || Container::load(&root, &cid).and_then(f))
            .await
            .map_err(|e| Error::library(id, what, e))
    }
}

fn exited(id: &str, exec_id: &str) -> Error {
    Error::FailedPrecondition(format!("process {exec_id:?} of {id} has exited"))
}

impl Inner {
    /// Run `f` on tokio's blocking pool (a panic in it goes on in the caller); with an
    /// in-process spawner, in this thread: such a program keeps one thread, and the pool
    /// would start others.
    pub(crate) async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> T {
        if self.spawner.is_in_process() {
            return f();
        }
        tokio::task::spawn_blocking(f)
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
    }

    /// Run `f` in the background: on the blocking pool, or with an in-process spawner in
    /// this thread now.
    pub(crate) fn background(&self, f: impl FnOnce() + Send + 'static) {
        if self.spawner.is_in_process() {
            f();
        } else {
            tokio::task::spawn_blocking(f);
        }
    }
}

/// Run `f` as a task of its own, so that it completes (and leaves the table as it should
/// be) even if the caller stops waiting for it.
pub(crate) async fn to_completion<T: Send + 'static>(
    f: impl Future<Output = T> + Send + 'static,
) -> T {
    tokio::spawn(f)
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}
