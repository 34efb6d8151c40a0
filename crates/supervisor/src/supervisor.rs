//! The [`Supervisor`]: the operations a front end calls, each an async fn. Blocking
//! library calls run on tokio's blocking pool; the table's lock is only ever held for a
//! look-up or an insertion, never across an await.

use crate::error::{Error, Result};
use crate::event::{Event, ExitInfo};
use crate::io::{Output, OutputReader, Stdio, Streams};
use crate::table::{wait_exit, Entry, Process, Table};
use crate::watch::{self, CgroupRef, OomKills, Reporter};
use cgroups::{OomWatch, Stats};
use container::exec::ExecOptions;
use container::{Container, CreateOptions, ProcessHandle, Spawner, Status};
use oci_spec::runtime::{LinuxResources, Process as OciProcess};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};
use tokio::sync::broadcast;

/// How many events a subscriber may fall behind before it misses some.
const EVENT_BACKLOG: usize = 1024;

/// How long a delete waits for the reapers of the processes it killed.
const REAP_TIMEOUT: Duration = Duration::from_secs(10);

/// Containers and their processes, for a long-lived program on a tokio runtime (an agent,
/// a shim). Cheap to clone: every clone is the same supervisor. Dropping the last clone
/// leaves the containers as they are (like the library's `Container`); their reapers go on
/// until the runtime shuts down.
#[derive(Debug, Clone)]
pub struct Supervisor {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    spawner: Arc<Spawner>,
    root: PathBuf,
    table: Mutex<Table>,
    events: broadcast::Sender<Event>,
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

/// A process just created by the library, before it is in the table.
struct NewProcess {
    handle: ProcessHandle,
    console: Option<std::os::fd::OwnedFd>,
}

/// A container's init as the table records it, and what its OOM watcher needs.
struct RecordedInit {
    process: Arc<Process>,
    oom_kills: Arc<OomKills>,
    oom: Option<OomWatch>,
}

/// What a create leaves besides the init.
struct Created {
    init: NewProcess,
    oom_kills: Arc<OomKills>,
    oom: Option<OomWatch>,
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
            }),
        }
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
    /// container (as `runr kill --all`); for an exec'd process `all` changes nothing.
    pub async fn signal(&self, id: &str, exec_id: &str, signal: i32, all: bool) -> Result<()> {
        let process = self.inner.process(id, exec_id)?;
        if process.exit_info().is_some() {
            return Err(exited(id, exec_id));
        }
        if exec_id != id {
            return process
                .handle
                .signal(signal)
                .map_err(|e| Error::library(id, format!("signal process {exec_id:?}"), e));
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
        state.status = blocking(move || Container::load_unlocked(&root, &cid).map(|c| c.status()))
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
    fn table(&self) -> MutexGuard<'_, Table> {
        // A panic elsewhere while the lock was held leaves a table that is still whole:
        // every change to it is a single insertion or removal.
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn process(&self, id: &str, exec_id: &str) -> Result<Arc<Process>> {
        self.table().process(id, exec_id)
    }

    fn check_exists(&self, id: &str) -> Result<()> {
        self.table().get(id).map(|_| ())
    }

    fn reporter(&self, id: &str) -> Result<Reporter> {
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
    async fn with_container<T: Send + 'static>(
        &self,
        id: &str,
        what: &str,
        f: impl FnOnce(Container) -> container::Result<T> + Send + 'static,
    ) -> Result<T> {
        let (root, cid) = (self.root.clone(), id.to_string());
        blocking(move || Container::load(&root, &cid).and_then(f))
            .await
            .map_err(|e| Error::library(id, what, e))
    }

    async fn create(self: Arc<Self>, options: CreateOptions, stdio: Stdio) -> Result<i32> {
        let (id, bundle) = (options.id.clone(), options.bundle.clone());
        self.table().reserve_container(&id)?;
        let created = self.create_reserved(options, stdio).await;
        let init = match created.and_then(|c| self.record_init(&id, c)) {
            Ok(init) => init,
            Err(e) => {
                self.table().creating.remove(&id);
                return Err(e);
            }
        };
        let pid = init.process.pid();
        let to = Reporter {
            id: id.clone(),
            events: self.events.clone(),
            gate: Default::default(),
            oom: Some(init.oom_kills),
        };
        let mut table = self.table();
        table.creating.remove(&id);
        // Sent with the table locked: nothing of this container can be sent before it.
        to.emit(Event::Created {
            id: id.clone(),
            pid,
        });
        let oom_task = init
            .oom
            .map(|w| tokio::spawn(watch::report_oom_kills(w, to.clone())));
        tokio::spawn(watch::reap(init.process.clone(), to.clone()));
        table.containers.insert(
            id,
            Entry {
                bundle,
                init: init.process,
                execs: Default::default(),
                pending_execs: Default::default(),
                reporter: to,
                oom_task: oom_task.map(|t| t.abort_handle()),
            },
        );
        Ok(pid)
    }

    /// The init of a container just created, as the table keeps it; if its streams cannot
    /// be had, the container is removed again.
    fn record_init(&self, id: &str, created: Created) -> Result<RecordedInit> {
        let Created {
            init,
            oom_kills,
            oom,
        } = created;
        let process = match new_process(id.to_string(), init) {
            Ok(p) => Arc::new(p),
            Err((e, handle)) => {
                let (root, id) = (self.root.clone(), id.to_string());
                tokio::task::spawn_blocking(move || discard_container(&root, &id, handle));
                return Err(e);
            }
        };
        Ok(RecordedInit {
            process,
            oom_kills,
            oom,
        })
    }

    async fn create_reserved(&self, options: CreateOptions, stdio: Stdio) -> Result<Created> {
        let options = CreateOptions {
            root: self.root.clone(),
            detached: true,
            console_in_process: true,
            ..options
        };
        let spawner = self.spawner.clone();
        blocking(move || create_container(&spawner, options, stdio)).await
    }

    async fn start(self: Arc<Self>, id: String) -> Result<i32> {
        let to = self.reporter(&id)?;
        let pid = self.process(&id, &id)?.pid();
        // Held until Started is sent: the init's Exit waits for it.
        let _gate = to.gate.lock().await;
        let started = self.with_container(&id, "start", |c| c.start()).await?;
        for warning in started.warnings {
            tracing::warn!("container {id}: {warning}");
        }
        to.emit(Event::Started { id, pid });
        Ok(pid)
    }

    async fn exec(
        self: Arc<Self>,
        id: String,
        exec_id: String,
        options: ExecOptions,
        stdio: Stdio,
    ) -> Result<i32> {
        if exec_id.is_empty() {
            return Err(Error::InvalidArgument(
                "an exec id must not be empty".into(),
            ));
        }
        stdio.check_terminal(options.process.terminal().unwrap_or(false))?;
        self.table().reserve_exec(&id, &exec_id)?;
        let started = self.exec_reserved(&id, options, stdio).await;
        if let Ok(entry) = self.table().get_mut(&id) {
            entry.pending_execs.remove(&exec_id);
        }
        let process = match new_process(exec_id.clone(), started?) {
            Ok(p) => Arc::new(p),
            Err((e, handle)) => {
                tokio::task::spawn_blocking(move || discard(handle));
                return Err(e);
            }
        };
        let to = self.record_exec(&id, &process)?;
        self.announce_exec(&to, &exec_id, process.pid()).await;
        let pid = process.pid();
        tokio::spawn(watch::reap(process, to));
        Ok(pid)
    }

    /// Put an exec'd process in its container's table. If the container was deleted
    /// meanwhile, the process (killed with it) is reaped and NotFound returned.
    fn record_exec(&self, id: &str, process: &Arc<Process>) -> Result<Reporter> {
        let mut table = self.table();
        let Ok(entry) = table.get_mut(id) else {
            let _ = process.handle.signal(libc::SIGKILL);
            let to = Reporter {
                id: id.to_string(),
                events: self.events.clone(),
                gate: Default::default(),
                oom: None,
            };
            tokio::spawn(watch::reap(process.clone(), to));
            return Err(Error::not_found(id, id));
        };
        entry.execs.insert(process.exec_id.clone(), process.clone());
        Ok(entry.reporter.clone())
    }

    async fn exec_reserved(
        &self,
        id: &str,
        options: ExecOptions,
        stdio: Stdio,
    ) -> Result<NewProcess> {
        let options = ExecOptions {
            detached: true,
            console_in_process: true,
            stdio: stdio.into_library(),
            ..options
        };
        let spawner = self.spawner.clone();
        let handle = self
            .with_container(id, "exec", move |c| spawner.exec(c, options))
            .await?;
        Ok(NewProcess::from_handle(handle))
    }

    /// ExecAdded and ExecStarted, together, before the process's reaper may send its Exit.
    async fn announce_exec(&self, to: &Reporter, exec_id: &str, pid: i32) {
        let _gate = to.gate.lock().await;
        to.emit(Event::ExecAdded {
            id: to.id.clone(),
            exec_id: exec_id.into(),
        });
        to.emit(Event::ExecStarted {
            id: to.id.clone(),
            exec_id: exec_id.into(),
            pid,
        });
    }

    async fn delete(self: Arc<Self>, id: String, force: bool) -> Result<ExitInfo> {
        let (processes, to) = {
            let table = self.table();
            let entry = table.get(&id)?;
            (entry.processes(), entry.reporter.clone())
        };
        match self
            .with_container(&id, "delete", move |c| c.delete(force))
            .await
        {
            Ok(warnings) => {
                for warning in warnings {
                    tracing::warn!("container {id}: {warning}");
                }
            }
            // Removed behind the supervisor's back (`runr delete`): what is left of it goes.
            Err(Error::NotFound { .. }) => {
                tracing::warn!("container {id} was removed by someone else");
                kill_all(&processes);
            }
            Err(e) => return Err(e),
        }
        let exits = reaped(&id, &processes).await;
        let init = processes[0].pid();
        let entry = self.table().containers.remove(&id);
        if let Some(task) = entry.and_then(|e| e.oom_task) {
            task.abort();
        }
        let exit = exits[0];
        let _gate = to.gate.lock().await;
        to.emit(Event::Deleted {
            id,
            pid: init,
            status: exit.status,
            exited_at: exit.exited_at,
        });
        Ok(exit)
    }
}

/// SIGKILL each of `processes` that has not ended.
fn kill_all(processes: &[Arc<Process>]) {
    for p in processes.iter().filter(|p| p.exit_info().is_none()) {
        if let Err(e) = p.handle.signal(libc::SIGKILL) {
            tracing::debug!("kill process {}: {e}", p.pid());
        }
    }
}

/// How each of `processes` ended, once their reapers have seen it (they were killed): a
/// process not reaped within the timeout is reported with the unknown status.
async fn reaped(id: &str, processes: &[Arc<Process>]) -> Vec<ExitInfo> {
    let mut exits = Vec::with_capacity(processes.len());
    for p in processes {
        match tokio::time::timeout(REAP_TIMEOUT, p.exited()).await {
            Ok(Some(exit)) => exits.push(exit),
            _ => {
                tracing::error!(
                    "container {id}: process {:?} (pid {}) was not reaped after its delete",
                    p.exec_id,
                    p.pid()
                );
                exits.push(ExitInfo {
                    status: watch::UNKNOWN_STATUS,
                    exited_at: SystemTime::now(),
                });
            }
        }
    }
    exits
}

impl NewProcess {
    fn from_handle(mut handle: ProcessHandle) -> NewProcess {
        let console = handle.console.take();
        NewProcess { handle, console }
    }
}

/// The table's record of a process just started: its streams registered with the reactor.
/// On failure the handle comes back, for the process to be discarded.
fn new_process(
    exec_id: String,
    started: NewProcess,
) -> std::result::Result<Process, (Error, ProcessHandle)> {
    let NewProcess {
        mut handle,
        console,
    } = started;
    let streams = match console {
        Some(master) => Streams::from_pty(master),
        None if has_pipes(&handle.io) => Streams::from_pipes(std::mem::take(&mut handle.io)),
        None => Ok(Streams::none()),
    };
    match streams {
        Ok(streams) => Ok(Process::new(exec_id, handle, streams)),
        Err(e) => Err((e, handle)),
    }
}

/// Kill and reap a process the table could not take.
fn discard(handle: ProcessHandle) {
    let _ = handle.signal(libc::SIGKILL);
    if let Err(e) = handle.wait() {
        tracing::error!("reap process {}: {e}", handle.pid());
    }
}

/// Remove a container whose init the table could not take, and reap the init.
fn discard_container(root: &Path, id: &str, init: ProcessHandle) {
    if let Err(e) = Container::load(root, id).and_then(|c| c.delete(true)) {
        tracing::error!("container {id}: removing it after a failed create: {e}");
    }
    discard(init);
}

fn has_pipes(io: &container::ProcessIo) -> bool {
    io.stdin.is_some() || io.stdout.is_some() || io.stderr.is_some()
}

/// On the blocking pool: the library's create, then what the supervisor keeps of it. The
/// container is let go of (its lock dropped) before this returns.
fn create_container(
    spawner: &Spawner,
    mut options: CreateOptions,
    stdio: Stdio,
) -> Result<Created> {
    let id = options.id.clone();
    let lib = |what: &str| {
        let id = id.clone();
        let what = what.to_string();
        move |e| Error::library(&id, what, e)
    };
    let spec = container::config::load(&options.bundle).map_err(lib("read the bundle's config"))?;
    let terminal = spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false);
    stdio.check_terminal(terminal)?;
    options.stdio = stdio.into_library();
    let mut c = spawner.create(options).map_err(lib("create"))?;
    let Some(init) = c.init_handle() else {
        let _ = c.delete(true);
        return Err(Error::FailedPrecondition(format!(
            "the init of container {id} died as soon as it was created"
        )));
    };
    let cgroup = CgroupRef {
        paths: c.saved().cgroup_paths.clone(),
        systemd_unit: c.saved().systemd_unit.clone(),
    };
    let oom = c
        .cgroup()
        .oom_watch()
        .inspect_err(|e| tracing::warn!("container {id}: no OOM events: {e}"))
        .ok();
    Ok(Created {
        init: NewProcess::from_handle(init),
        oom_kills: Arc::new(OomKills::new(cgroup)),
        oom,
    })
}

fn exited(id: &str, exec_id: &str) -> Error {
    Error::FailedPrecondition(format!("process {exec_id:?} of {id} has exited"))
}

/// Run `f` on tokio's blocking pool; a panic in it goes on in the caller.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

/// Run `f` as a task of its own, so that it completes (and leaves the table as it should
/// be) even if the caller stops waiting for it.
async fn to_completion<T: Send + 'static>(f: impl Future<Output = T> + Send + 'static) -> T {
    tokio::spawn(f)
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}
