//! The operations that change the table: create, start, exec and delete, each run as a
//! task of its own (see `to_completion`), with what they leave to the reapers and the OOM
//! watcher.

use crate::error::{Error, Result};
use crate::event::{Event, ExitInfo};
use crate::io::{Stdio, Streams};
use crate::supervisor::Inner;
use crate::table::{Entry, Process};
use crate::watch::{self, CgroupRef, OomKills, Reporter};
use cgroups::OomWatch;
use container::exec::ExecOptions;
use container::{Container, CreateOptions, ProcessHandle, Spawner};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// How long a delete waits for the reapers of the processes it killed, in all.
const REAP_TIMEOUT: Duration = Duration::from_secs(10);

/// A process just created by the library, before it is in the table.
pub(crate) struct NewProcess {
    handle: ProcessHandle,
    console: Option<std::os::fd::OwnedFd>,
}

/// A container's init as the table records it, and what its OOM watcher needs.
struct RecordedInit {
    process: Arc<Process>,
    oom_kills: Arc<OomKills>,
    oom: Option<OomWatch>,
    leftovers: Option<CgroupRef>,
}

/// What a create (or a restore) leaves besides the init.
pub(crate) struct Created {
    pub(crate) init: NewProcess,
    pub(crate) oom_kills: Arc<OomKills>,
    pub(crate) oom: Option<OomWatch>,
    /// Without a new pid namespace of its own, what the init leaves in this cgroup runs on
    /// after it: killed as the init exits (as runc's shim does), before its exit is told.
    pub(crate) leftovers: Option<CgroupRef>,
}

impl Inner {
    /// Create the container, put its init in the table, send Created, and set its reaper
    /// and OOM watcher going.
    pub(crate) async fn create(
        self: Arc<Self>,
        options: CreateOptions,
        stdio: Stdio,
    ) -> Result<i32> {
        let (id, bundle) = (options.id.clone(), options.bundle.clone());
        self.table().reserve_container(&id)?;
        let created = self.create_reserved(options, stdio).await;
        self.install(id, bundle, created)
    }

    /// Put a container just made (`created`: by a create, or a restore) in the table under
    /// the id reserved for it, send Created, and set its reaper and OOM watcher going.
    pub(crate) fn install(
        &self,
        id: String,
        bundle: std::path::PathBuf,
        created: Result<Created>,
    ) -> Result<i32> {
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
        let leftovers = init.leftovers.filter(|_| self.kill_leftovers);
        tokio::spawn(watch::reap(init.process.clone(), to.clone(), leftovers));
        table.containers.insert(
            id,
            Entry {
                bundle,
                init: init.process,
                execs: Default::default(),
                pending_execs: Default::default(),
                reporter: to,
                oom_task,
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
            leftovers,
        } = created;
        let process = match new_process(id.to_string(), init) {
            Ok(p) => Arc::new(p),
            Err((e, handle)) => {
                let (root, id) = (self.root.clone(), id.to_string());
                self.background(move || discard_container(&root, &id, handle));
                return Err(e);
            }
        };
        Ok(RecordedInit {
            process,
            oom_kills,
            oom,
            leftovers,
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
        self.blocking(move || create_container(&spawner, options, stdio))
            .await
    }

    /// Start the container and send Started, with its gate held throughout.
    pub(crate) async fn start(self: Arc<Self>, id: String) -> Result<i32> {
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

    /// Start a process in the container, put it in the table, send ExecAdded and
    /// ExecStarted, and set its reaper going.
    pub(crate) async fn exec(
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
                self.background(move || discard(handle));
                return Err(e);
            }
        };
        let to = self.record_exec(&id, &process)?;
        self.announce_exec(&to, &exec_id, process.pid()).await;
        let pid = process.pid();
        tokio::spawn(watch::reap(process, to, None));
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
            tokio::spawn(watch::reap(process.clone(), to, None));
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

    /// Delete the container through the library, wait for its processes' reapers, take it
    /// out of the table and send Deleted.
    pub(crate) async fn delete(self: Arc<Self>, id: String, force: bool) -> Result<ExitInfo> {
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
        drop(processes);
        let entry = self.table().containers.remove(&id);
        if let Some(task) = entry.and_then(|e| e.oom_task) {
            // Awaited, so its descriptor is closed by the time the delete returns.
            task.abort();
            let _ = task.await;
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
    let deadline = tokio::time::Instant::now() + REAP_TIMEOUT;
    let mut exits = Vec::with_capacity(processes.len());
    for p in processes {
        match tokio::time::timeout_at(deadline, p.exited()).await {
            Ok(Some(exit)) => exits.push(exit),
            _ => {
                tracing::error!(
                    "container {id}: process {:?} (pid {}) was not reaped after its delete",
                    p.exec_id,
                    p.pid()
                );
                exits.push(ExitInfo {
                    status: watch::UNKNOWN_STATUS,
                    signal: None,
                    exited_at: SystemTime::now(),
                });
            }
        }
    }
    exits
}

impl NewProcess {
    pub(crate) fn from_handle(mut handle: ProcessHandle) -> NewProcess {
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

/// The spawner brings the library's errors back as text: what the supervisor can tell
/// apart (a bad id, one taken by a container it does not know of) it checks first.
pub(crate) fn check_new_id(root: &Path, id: &str) -> Result<()> {
    container::config::validate_id(id)
        .map_err(|_| Error::InvalidArgument(format!("invalid container id {id:?}")))?;
    if root.join(id).exists() {
        return Err(Error::exists(id, id));
    }
    Ok(())
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
    check_new_id(&options.root, &id)?;
    // Read here at most once: the worker gets it with the options.
    if options.spec.is_none() {
        let spec =
            container::config::load(&options.bundle).map_err(lib("read the bundle's config"))?;
        options.spec = Some(Box::new(spec));
    }
    let terminal = options
        .spec
        .as_ref()
        .and_then(|s| s.process().as_ref())
        .and_then(|p| p.terminal())
        .unwrap_or(false);
    stdio.check_terminal(terminal)?;
    options.stdio = stdio.into_library();
    let c = spawner.create(options).map_err(lib("create"))?;
    keep_created(c, "created")
}

/// What the supervisor keeps of a container just made (`how`: created, restored): its
/// init's handle and an OOM watcher. If the init is gone already, the container is removed.
pub(crate) fn keep_created(mut c: Container, how: &str) -> Result<Created> {
    let id = c.id().to_string();
    let Some(init) = c.init_handle() else {
        let _ = c.delete(true);
        return Err(Error::FailedPrecondition(format!(
            "the init of container {id} died as soon as it was {how}"
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
    let leftovers = (!c.saved().own_pid_ns).then(|| cgroup.clone());
    Ok(Created {
        init: NewProcess::from_handle(init),
        oom_kills: Arc::new(OomKills::new(cgroup)),
        oom,
        leftovers,
    })
}
