//! The agent's backend on runr's supervisor: containers and their processes, with Kata's
//! semantics on top of what the supervisor keeps.
//!
//! - CreateContainer hands the spec to the library as it is and creates the container with
//!   `<state dir>/bundles/<id>` as its bundle (state under `<state dir>/containers`); the
//!   bundle holds a config.json only when there are hooks to read it. Its stdio pipes
//!   held by the agent, or a pty when `process.terminal`. The init's exec id is the one the
//!   request names (Kata sends the container id); either names the init afterwards.
//! - WaitProcess returns the exit code, or the number of the signal that killed the process
//!   (as Kata's agent answers), then forgets an exec'd process: a later call naming it is
//!   NOT_FOUND. Its output stays readable until end-of-file, so nothing written just before
//!   the exit is lost; once it has been waited for and both streams are drained, the
//!   supervisor forgets it too. The init is kept until RemoveContainer.
//! - SignalProcess: SIGTERM to an init that is PID 1 of its namespace and does not catch
//!   SIGTERM becomes SIGKILL (the kernel would drop it; Kata's agent does the same); SIGKILL
//!   for the whole container reaches every process of it.
//! - GetOOMEvent takes the next container id from a queue that a task fills from the
//!   supervisor's event stream: each OOM kill is answered once.
//! - CreateSandbox sets the hostname and resolv.conf in a guest only; DestroySandbox, like
//!   the agent's stop, removes every container; an agent that starts removes what a crashed
//!   one left under its state dir.
//!
//! Operations that change the table (create, exec, remove) run as tasks of their own, so a
//! client that hangs up mid-call leaves the agent's table and the supervisor's in step.

use crate::backend::{Backend, CreateContainer, ProcessRef, Result, Sandbox, SignalTarget};
use crate::error::AgentError;
use async_trait::async_trait;
use container::CreateOptions;
use oci_spec::runtime::{LinuxNamespaceBuilder, LinuxNamespaceType, LinuxResources, Process};
use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use supervisor::{Event, Output, Stdio, Supervisor};
use tokio::sync::{broadcast, mpsc};

/// OOM events kept for GetOOMEvent; more than this waiting and the newest are dropped.
const OOM_QUEUE: usize = 256;

/// The agent's containers, on a [`Supervisor`]. Cheap to clone.
#[derive(Clone)]
pub struct Containers {
    inner: Arc<Inner>,
}

struct Inner {
    sup: Supervisor,
    /// The library's state root (`<state dir>/containers`).
    root: PathBuf,
    /// Whether the agent runs in a guest (as PID 1's child): CreateSandbox then sets the
    /// guest's hostname and DNS servers.
    guest: bool,
    /// The guest's resolv.conf, in a guest (`<state dir>/resolv.conf`).
    resolv_conf: PathBuf,
    /// Where each container's config.json is written: `<bundles>/<id>/config.json`.
    bundles: PathBuf,
    table: Mutex<Table>,
    oom: tokio::sync::Mutex<mpsc::Receiver<String>>,
}

#[derive(Default)]
struct Table {
    containers: HashMap<String, Ctr>,
    /// Ids whose CreateContainer is under way.
    creating: std::collections::HashSet<String>,
    /// The container whose PID namespace the sandbox's containers share (CreateContainer
    /// with sandbox_pidns), while it lives.
    pidns_holder: Option<String>,
    /// The container being created that will hold it.
    pidns_pending: Option<String>,
}

/// What the agent keeps of a container beside the supervisor's record.
struct Ctr {
    /// The exec id the init was created with (Kata: the container id).
    init_exec_id: String,
    init_pid: i32,
    /// By the supervisor's exec id (the container id for the init).
    procs: HashMap<String, Proc>,
}

/// What the agent keeps of a process: whether it was waited for, whether its output has
/// been read to the end.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Proc {
    terminal: bool,
    waited: bool,
    stdout_eof: bool,
    stderr_eof: bool,
}

impl Proc {
    fn new(terminal: bool) -> Proc {
        Proc {
            terminal,
            ..Default::default()
        }
    }

    /// Both streams read to the end (a pty has only one).
    pub(crate) fn drained(&self) -> bool {
        self.stdout_eof && (self.terminal || self.stderr_eof)
    }

    /// Waited for and drained: nothing anyone can still ask of it.
    pub(crate) fn done(&self) -> bool {
        self.waited && self.drained()
    }
}

/// The supervisor's error, with the RPC and the object in front.
fn sup_err(what: impl std::fmt::Display) -> impl FnOnce(supervisor::Error) -> AgentError {
    move |e| AgentError::from(e).context(what)
}

fn no_container(id: &str) -> AgentError {
    AgentError::not_found(format!("container {id} not found"))
}

/// Run `f` as a task of its own: it completes even if the caller stops waiting.
async fn to_completion<T: Send + 'static>(f: impl Future<Output = T> + Send + 'static) -> T {
    tokio::spawn(f)
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

/// The status WaitProcess answers: the exit code, or the killing signal's number.
pub(crate) fn kata_status(exit: &supervisor::ExitInfo) -> i32 {
    exit.signal.unwrap_or(exit.status)
}

/// What /proc/PID/status says of a process: the signals it catches, and its pid in its
/// own PID namespace (the last of NSpid).
pub(crate) fn parse_status(text: &str) -> (u64, Option<i32>) {
    let mut caught = 0;
    let mut ns_pid = None;
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("SigCgt:") {
            caught = u64::from_str_radix(v.trim(), 16).unwrap_or(0);
        } else if let Some(v) = line.strip_prefix("NSpid:") {
            ns_pid = v.split_whitespace().last().and_then(|p| p.parse().ok());
        }
    }
    (caught, ns_pid)
}

/// SIGTERM to a process that is PID 1 of its namespace and has no handler for it is
/// dropped by the kernel: the signal to send instead (SIGKILL), as Kata's agent does.
pub(crate) fn effective_signal(signal: i32, status: &str) -> i32 {
    if signal != libc::SIGTERM {
        return signal;
    }
    let (caught, ns_pid) = parse_status(status);
    let handles_term = caught & (1 << (libc::SIGTERM - 1)) != 0;
    if ns_pid == Some(1) && !handles_term {
        libc::SIGKILL
    } else {
        signal
    }
}

impl Containers {
    /// The agent's containers, with their state under `state_dir` (`containers/` for the
    /// library's state, `bundles/` for the configs). Call within a tokio runtime: a task
    /// starts that queues OOM events for GetOOMEvent.
    pub fn new(spawner: Arc<container::Spawner>, state_dir: &Path) -> anyhow::Result<Self> {
        use anyhow::Context;
        let root = state_dir.join("containers");
        let bundles = state_dir.join("bundles");
        for dir in [&root, &bundles] {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("create the state directory {}", dir.display()))?;
        }
        let sup = Supervisor::new(spawner, root.clone());
        let (tx, rx) = mpsc::channel(OOM_QUEUE);
        tokio::spawn(queue_oom_events(sup.subscribe(), tx));
        Ok(Containers {
            inner: Arc::new(Inner {
                sup,
                root,
                guest: false,
                resolv_conf: state_dir.join("resolv.conf"),
                bundles,
                table: Mutex::new(Table::default()),
                oom: tokio::sync::Mutex::new(rx),
            }),
        })
    }

    /// The agent runs in a guest: CreateSandbox sets the guest's hostname and DNS servers.
    /// Call before the first clone is made.
    pub fn in_guest(mut self) -> Self {
        Arc::get_mut(&mut self.inner)
            .expect("in_guest before the containers are shared")
            .guest = true;
        self
    }

    /// Force-delete what an agent that did not stop cleanly left under the state dir (its
    /// containers, whose processes no one supervises any more, and their bundles): the
    /// state dir is the agent's own. The ids removed; one that cannot be is logged and left.
    pub async fn remove_leftovers(&self) -> anyhow::Result<Vec<String>> {
        use anyhow::Context;
        let (root, bundles) = (self.inner.root.clone(), self.inner.bundles.clone());
        tokio::task::spawn_blocking(move || {
            let ids = container::state::list_ids(&root)
                .with_context(|| format!("list the containers under {}", root.display()))?;
            let mut removed = Vec::with_capacity(ids.len());
            for id in ids {
                // One that cannot be removed keeps its id taken, and no more: the agent
                // serves the rest.
                // A create cut short leaves a directory without state.json (a remnant):
                // it goes the way `runr delete --force` takes it.
                use container::remnant::{load_for_delete, Loaded};
                let deleted = load_for_delete(&root, &id).and_then(|l| match l {
                    Loaded::Container(c) => c.delete(true),
                    Loaded::Remnant(r) => r.delete(),
                });
                match deleted {
                    Ok(_) => removed.push(id),
                    Err(e) => tracing::error!(
                        "remove the container {id} left under {}: {e}",
                        root.display()
                    ),
                }
            }
            for entry in std::fs::read_dir(&bundles)
                .with_context(|| format!("read {}", bundles.display()))?
                .flatten()
            {
                if !root.join(entry.file_name()).exists() {
                    remove_bundle(&entry.path());
                }
            }
            Ok(removed)
        })
        .await
        .context("the removal of leftovers panicked")?
    }

    /// Remove every container (SIGKILL to what runs): DestroySandbox, and the agent's stop.
    pub async fn remove_all(&self) -> Result<()> {
        let ids: Vec<String> = self.inner.table().containers.keys().cloned().collect();
        let mut first_error = None;
        for id in ids {
            if let Err(e) = self.remove_container(&id, None).await {
                tracing::error!(container = id, "{e}");
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// Forward the supervisor's OOM events to GetOOMEvent's queue.
async fn queue_oom_events(mut events: broadcast::Receiver<Event>, queue: mpsc::Sender<String>) {
    loop {
        match events.recv().await {
            Ok(Event::Oom { id }) => {
                if let Err(e) = queue.try_send(id) {
                    tracing::warn!("OOM event dropped: {e}");
                }
            }
            Ok(_) => {}
            Err(broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!("{n} events of the supervisor missed; OOM events may be lost");
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

impl Inner {
    fn table(&self) -> MutexGuard<'_, Table> {
        // Every change to the table is a single insertion or removal: still whole after a
        // panic elsewhere.
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn check_container(&self, id: &str) -> Result<()> {
        match self.table().containers.contains_key(id) {
            true => Ok(()),
            false => Err(no_container(id)),
        }
    }

    /// The supervisor's exec id for `p`. `forgotten_ok`: also a process WaitProcess has
    /// answered for, whose output may still be read.
    fn resolve(&self, p: &ProcessRef, forgotten_ok: bool) -> Result<(String, Proc)> {
        let table = self.table();
        let ctr = table
            .containers
            .get(&p.container_id)
            .ok_or_else(|| no_container(&p.container_id))?;
        let exec = if p.exec_id == ctr.init_exec_id {
            p.container_id.clone()
        } else {
            p.exec_id.clone()
        };
        match ctr.procs.get(&exec) {
            Some(proc) if forgotten_ok || !proc.waited || exec == p.container_id => {
                Ok((exec, *proc))
            }
            _ => Err(AgentError::not_found(format!(
                "container {}: no process {:?}",
                p.container_id, p.exec_id
            ))),
        }
    }

    /// Change what the agent keeps of a process; once it is waited for and drained, the
    /// supervisor forgets it too (an init stays until its container goes).
    fn update_proc(&self, id: &str, exec: &str, f: impl FnOnce(&mut Proc)) {
        let mut table = self.table();
        let Some(ctr) = table.containers.get_mut(id) else {
            return;
        };
        let Some(proc) = ctr.procs.get_mut(exec) else {
            return;
        };
        f(proc);
        if exec != id && proc.done() {
            ctr.procs.remove(exec);
            drop(table);
            if let Err(e) = self.sup.remove_process(id, exec) {
                tracing::warn!(container = id, exec, "forget the process: {e}");
            }
        }
    }

    async fn create(self: Arc<Self>, req: CreateContainer) -> Result<()> {
        let id = req.container_id.clone();
        let what = format!("CreateContainer {id}");
        container::config::validate_id(&id)
            .map_err(|e| AgentError::invalid(format!("{what}: invalid container id: {e}")))?;
        if req.exec_id.is_empty() {
            return Err(AgentError::invalid(format!("{what}: exec_id is empty")));
        }
        {
            let mut table = self.table();
            if table.containers.contains_key(&id) || table.creating.contains(&id) {
                return Err(AgentError::invalid(format!(
                    "{what}: container {id} already exists"
                )));
            }
            // The first container of the sandbox's PID namespace makes it: the others wait
            // for it to exist (as Kata's shim does, creating the pause container first).
            if req.sandbox_pidns && table.pidns_holder.is_none() {
                if let Some(other) = &table.pidns_pending {
                    return Err(AgentError::invalid(format!(
                        "{what}: the sandbox's PID namespace is still being made by \
                         container {other}; create this one once that one exists"
                    )));
                }
                table.pidns_pending = Some(id.clone());
            }
            table.creating.insert(id.clone());
        }
        let bundle = self.bundles.join(&id);
        let created = self.create_reserved(&req, &bundle).await;
        let mut table = self.table();
        table.creating.remove(&id);
        if table.pidns_pending.as_ref() == Some(&id) {
            table.pidns_pending = None;
        }
        match created {
            Ok((pid, terminal, holds_pidns)) => {
                let mut procs = HashMap::new();
                procs.insert(id.clone(), Proc::new(terminal));
                if holds_pidns {
                    table.pidns_holder = Some(id.clone());
                }
                table.containers.insert(
                    id,
                    Ctr {
                        init_exec_id: req.exec_id,
                        init_pid: pid,
                        procs,
                    },
                );
                Ok(())
            }
            Err(e) => {
                drop(table);
                remove_bundle(&bundle);
                Err(e)
            }
        }
    }

    /// Write the bundle and create the container: its init's pid, whether it has a
    /// terminal, whether its new PID namespace becomes the sandbox's.
    async fn create_reserved(
        &self,
        req: &CreateContainer,
        bundle: &Path,
    ) -> Result<(i32, bool, bool)> {
        let id = &req.container_id;
        let what = format!("CreateContainer {id}");
        let mut spec = req.spec.clone();
        let root = spec
            .root()
            .as_ref()
            .ok_or_else(|| AgentError::invalid(format!("{what}: OCI.Root is missing")))?;
        if !root.path().is_absolute() {
            return Err(AgentError::invalid(format!(
                "{what}: OCI.Root.Path {:?} must be an absolute path in the guest",
                root.path()
            )));
        }
        let terminal = spec
            .process()
            .as_ref()
            .and_then(|p| p.terminal())
            .unwrap_or(false);
        let holds_pidns = req.sandbox_pidns && self.share_sandbox_pidns(&mut spec, &what).await?;
        std::fs::create_dir_all(bundle).map_err(|e| {
            AgentError::internal(format!("{what}: create {}: {e}", bundle.display()))
        })?;
        // The spec goes to the library as it is; the bundle gets a config.json only for the
        // hooks, which may read it there (as OCI hooks commonly do).
        if has_hooks(&spec) {
            let config = bundle.join("config.json");
            let text = serde_json::to_vec(&spec)
                .map_err(|e| AgentError::internal(format!("{what}: serialize the spec: {e}")))?;
            std::fs::write(&config, text).map_err(|e| {
                AgentError::internal(format!("{what}: write {}: {e}", config.display()))
            })?;
        }
        let stdio = if terminal {
            Stdio::Terminal
        } else {
            Stdio::Piped
        };
        let options = CreateOptions {
            id: id.clone(),
            bundle: bundle.to_path_buf(),
            spec: Some(Box::new(spec)),
            ..Default::default()
        };
        let pid = self
            .sup
            .create_with(options, stdio)
            .await
            .map_err(sup_err(&what))?;
        Ok((pid, terminal, holds_pidns))
    }

    /// A container asking for the sandbox's PID namespace joins that of the first such
    /// container while it lives; without one, its own new namespace becomes the sandbox's
    /// (true). If that container's init has exited, the namespace is gone (and its pid may
    /// be another process's): refused.
    async fn share_sandbox_pidns(
        &self,
        spec: &mut oci_spec::runtime::Spec,
        what: &str,
    ) -> Result<bool> {
        let holder = {
            let table = self.table();
            table
                .pidns_holder
                .as_ref()
                .and_then(|h| table.containers.get(h).map(|c| (h.clone(), c.init_pid)))
        };
        if let Some((id, _)) = &holder {
            let state = self.sup.state(id).await.map_err(sup_err(what))?;
            if state.exit.is_some() {
                return Err(AgentError::invalid(format!(
                    "{what}: the sandbox's PID namespace is gone: the init of {id}, which \
                     held it, has exited"
                )));
            }
        }
        let holder_pid = holder.map(|(_, pid)| pid);
        let linux = spec
            .linux_mut()
            .as_mut()
            .ok_or_else(|| AgentError::invalid(format!("{what}: OCI.Linux is missing")))?;
        let mut namespaces = linux.namespaces().clone().unwrap_or_default();
        namespaces.retain(|n| n.typ() != LinuxNamespaceType::Pid);
        let mut pid_ns = LinuxNamespaceBuilder::default().typ(LinuxNamespaceType::Pid);
        if let Some(pid) = holder_pid {
            pid_ns = pid_ns.path(format!("/proc/{pid}/ns/pid"));
        }
        namespaces.push(
            pid_ns
                .build()
                .map_err(|e| AgentError::internal(format!("{what}: PID namespace: {e}")))?,
        );
        linux.set_namespaces(Some(namespaces));
        Ok(holder_pid.is_none())
    }

    async fn exec(self: Arc<Self>, p: ProcessRef, process: Process) -> Result<()> {
        let what = format!("ExecProcess {p}");
        self.check_container(&p.container_id)?;
        if self.resolve(&p, true).is_ok() {
            return Err(AgentError::invalid(format!(
                "{what}: exec id {:?} is taken",
                p.exec_id
            )));
        }
        let terminal = process.terminal().unwrap_or(false);
        let stdio = if terminal {
            Stdio::Terminal
        } else {
            Stdio::Piped
        };
        self.sup
            .exec(&p.container_id, &p.exec_id, process, stdio)
            .await
            .map_err(sup_err(&what))?;
        let mut table = self.table();
        match table.containers.get_mut(&p.container_id) {
            Some(ctr) => {
                ctr.procs.insert(p.exec_id.clone(), Proc::new(terminal));
                Ok(())
            }
            // Removed meanwhile: the supervisor killed the process with it.
            None => Err(no_container(&p.container_id).context(what)),
        }
    }

    async fn remove(self: Arc<Self>, id: String) -> Result<()> {
        let what = format!("RemoveContainer {id}");
        self.check_container(&id)?;
        self.sup.delete(&id, true).await.map_err(sup_err(&what))?;
        let mut table = self.table();
        table.containers.remove(&id);
        if table.pidns_holder.as_deref() == Some(id.as_str()) {
            table.pidns_holder = None;
        }
        drop(table);
        remove_bundle(&self.bundles.join(&id));
        Ok(())
    }
}

fn remove_bundle(bundle: &Path) {
    if let Err(e) = std::fs::remove_dir_all(bundle) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!("remove the bundle {}: {e}", bundle.display());
        }
    }
}

#[async_trait]
impl Backend for Containers {
    async fn create_sandbox(&self, sandbox: Sandbox) -> Result<()> {
        // A standalone agent leaves its host's hostname and resolver alone; in a guest they
        // are the pod's.
        if self.inner.guest && !sandbox.hostname.is_empty() {
            nix::unistd::sethostname(&sandbox.hostname).map_err(|e| {
                AgentError::internal(format!(
                    "CreateSandbox {}: sethostname {:?}: {e}",
                    sandbox.id, sandbox.hostname
                ))
            })?;
        }
        if self.inner.guest && !sandbox.dns.is_empty() {
            crate::guest::set_dns(&self.inner.resolv_conf, &sandbox.dns).map_err(|e| {
                AgentError::internal(format!("CreateSandbox {}: DNS: {e:#}", sandbox.id))
            })?;
        }
        Ok(())
    }

    async fn destroy_sandbox(&self) -> Result<()> {
        self.remove_all().await
    }

    async fn create_container(&self, req: CreateContainer) -> Result<()> {
        let inner = self.inner.clone();
        to_completion(inner.create(req)).await
    }

    async fn start_container(&self, id: &str) -> Result<()> {
        self.inner.check_container(id)?;
        self.inner
            .sup
            .start(id)
            .await
            .map(|_| ())
            .map_err(sup_err(format!("StartContainer {id}")))
    }

    async fn remove_container(&self, id: &str, timeout: Option<Duration>) -> Result<()> {
        let removal = to_completion(self.inner.clone().remove(id.to_string()));
        match timeout {
            None => removal.await,
            Some(t) => tokio::time::timeout(t, removal).await.unwrap_or_else(|_| {
                Err(AgentError::internal(format!(
                    "RemoveContainer {id}: not removed within {t:?} (the removal goes on)"
                )))
            }),
        }
    }

    async fn exec_process(&self, process: ProcessRef, spec: Process) -> Result<()> {
        let inner = self.inner.clone();
        to_completion(inner.exec(process, spec)).await
    }

    async fn signal_process(
        &self,
        process: ProcessRef,
        signal: i32,
        target: SignalTarget,
    ) -> Result<()> {
        let what = format!("SignalProcess {process}");
        let (exec, _) = self.inner.resolve(&process, false)?;
        let id = &process.container_id;
        let sup = &self.inner.sup;
        if exec != *id {
            return sup
                .signal(id, &exec, signal, false)
                .await
                .map_err(sup_err(what));
        }
        let all = target == SignalTarget::AllOfContainer;
        let pid = self.inner.table().containers.get(id).map(|c| c.init_pid);
        // Only a SIGTERM to the init alone may need changing (see `effective_signal`).
        let status = match pid {
            Some(p) if signal == libc::SIGTERM && !all => {
                std::fs::read_to_string(format!("/proc/{p}/status")).ok()
            }
            _ => None,
        };
        let signal = status.map_or(signal, |s| effective_signal(signal, &s));
        // With `all`, also after the init has exited: what it left running is signalled.
        sup.signal(id, id, signal, all).await.map_err(sup_err(what))
    }

    async fn wait_process(&self, process: ProcessRef) -> Result<i32> {
        let what = format!("WaitProcess {process}");
        let (exec, _) = self.inner.resolve(&process, false)?;
        let id = &process.container_id;
        let exit = self
            .inner
            .sup
            .wait(id, &exec)
            .await
            .map_err(sup_err(what))?;
        self.inner.update_proc(id, &exec, |p| p.waited = true);
        Ok(kata_status(&exit))
    }

    async fn update_container(&self, id: &str, resources: LinuxResources) -> Result<()> {
        self.inner.check_container(id)?;
        self.inner
            .sup
            .update(id, resources)
            .await
            .map_err(sup_err(format!("UpdateContainer {id}")))
    }

    async fn stats_container(&self, id: &str) -> Result<cgroups::Stats> {
        self.inner.check_container(id)?;
        self.inner
            .sup
            .stats(id)
            .await
            .map_err(sup_err(format!("StatsContainer {id}")))
    }

    async fn pause_container(&self, id: &str) -> Result<()> {
        self.inner.check_container(id)?;
        self.inner
            .sup
            .pause(id)
            .await
            .map_err(sup_err(format!("PauseContainer {id}")))
    }

    async fn resume_container(&self, id: &str) -> Result<()> {
        self.inner.check_container(id)?;
        self.inner
            .sup
            .resume(id)
            .await
            .map_err(sup_err(format!("ResumeContainer {id}")))
    }

    async fn write_stdin(&self, process: ProcessRef, data: Vec<u8>) -> Result<usize> {
        if data.is_empty() {
            self.close_stdin(process).await?;
            return Ok(0);
        }
        let (exec, _) = self.inner.resolve(&process, false)?;
        self.inner
            .sup
            .write_stdin(&process.container_id, &exec, &data)
            .await
            .map_err(sup_err(format!("WriteStdin {process}")))?;
        Ok(data.len())
    }

    async fn read_stdout(&self, process: ProcessRef, max: usize) -> Result<Vec<u8>> {
        self.read(process, Output::Stdout, max).await
    }

    async fn read_stderr(&self, process: ProcessRef, max: usize) -> Result<Vec<u8>> {
        self.read(process, Output::Stderr, max).await
    }

    async fn close_stdin(&self, process: ProcessRef) -> Result<()> {
        let (exec, _) = self.inner.resolve(&process, false)?;
        self.inner
            .sup
            .close_stdin(&process.container_id, &exec)
            .await
            .map_err(sup_err(format!("CloseStdin {process}")))
    }

    async fn tty_win_resize(&self, process: ProcessRef, rows: u16, columns: u16) -> Result<()> {
        let (exec, _) = self.inner.resolve(&process, false)?;
        self.inner
            .sup
            .resize_pty(&process.container_id, &exec, rows, columns)
            .map_err(sup_err(format!("TtyWinResize {process}")))
    }

    async fn get_oom_event(&self) -> Result<String> {
        // Cancel-safe: a client that hangs up loses no event.
        let mut queue = self.inner.oom.lock().await;
        queue
            .recv()
            .await
            .ok_or_else(|| AgentError::internal("GetOOMEvent: the supervisor's events ended"))
    }
}

impl Containers {
    async fn read(&self, process: ProcessRef, which: Output, max: usize) -> Result<Vec<u8>> {
        let rpc = match which {
            Output::Stdout => "ReadStdout",
            Output::Stderr => "ReadStderr",
        };
        let (exec, proc) = self.inner.resolve(&process, true)?;
        let id = &process.container_id;
        // A pty has one stream, read as stdout: its stderr is at its end at once.
        if which == Output::Stderr && proc.terminal {
            return Ok(Vec::new());
        }
        let data = self
            .inner
            .sup
            .read_output(id, &exec, which, max)
            .await
            .map_err(sup_err(format!("{rpc} {process}")))?;
        if data.is_empty() {
            self.inner.update_proc(id, &exec, |p| match which {
                Output::Stdout => p.stdout_eof = true,
                Output::Stderr => p.stderr_eof = true,
            });
        }
        Ok(data)
    }
}

/// Whether the spec names any hook (Kata's shim sends an empty Hooks message for none).
fn has_hooks(spec: &oci_spec::runtime::Spec) -> bool {
    spec.hooks().as_ref().is_some_and(|h| {
        [
            h.prestart(),
            h.create_runtime(),
            h.create_container(),
            h.start_container(),
            h.poststart(),
            h.poststop(),
        ]
        .iter()
        .any(|l| l.as_ref().is_some_and(|l| !l.is_empty()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    #[test]
    fn wait_status_is_the_code_or_the_signal() {
        let exit = |status, signal| supervisor::ExitInfo {
            status,
            signal,
            exited_at: SystemTime::now(),
        };
        assert_eq!(kata_status(&exit(0, None)), 0);
        assert_eq!(kata_status(&exit(137, None)), 137, "exit 137 is a code");
        assert_eq!(kata_status(&exit(137, Some(9))), 9);
        assert_eq!(kata_status(&exit(143, Some(15))), 15);
    }

    const STATUS: &str = "Name:\tsleep\nState:\tS (sleeping)\nNSpid:\t4242\t1\n\
        SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\nSigCgt:\t0000000000004002\n";

    #[test]
    fn proc_status_is_parsed() {
        assert_eq!(parse_status(STATUS), (0x4002, Some(1)));
        assert_eq!(parse_status("NSpid:\t77\n"), (0, Some(77)));
        assert_eq!(parse_status(""), (0, None));
    }

    #[test]
    fn sigterm_to_a_namespace_init_without_a_handler_becomes_sigkill() {
        let no_handler = STATUS.replace("0000000000004002", "0000000000000000");
        assert_eq!(effective_signal(libc::SIGTERM, &no_handler), libc::SIGKILL);
        // 0x4002: SIGINT (2) and SIGTERM (15) caught.
        assert_eq!(effective_signal(libc::SIGTERM, STATUS), libc::SIGTERM);
        // Not PID 1 of its namespace: the kernel delivers it.
        let not_init = no_handler.replace("4242\t1", "4242\t7");
        assert_eq!(effective_signal(libc::SIGTERM, &not_init), libc::SIGTERM);
        assert_eq!(effective_signal(libc::SIGINT, &no_handler), libc::SIGINT);
    }

    #[test]
    fn a_process_is_forgotten_once_waited_for_and_drained() {
        let mut p = Proc::new(false);
        p.waited = true;
        p.stdout_eof = true;
        assert!(!p.done(), "stderr not drained");
        p.stderr_eof = true;
        assert!(p.done());
        let mut tty = Proc::new(true);
        tty.stdout_eof = true;
        assert!(tty.drained() && !tty.done(), "not waited for");
        tty.waited = true;
        assert!(tty.done());
    }
}
