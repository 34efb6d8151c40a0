//! containerd's Task service on the supervisor. containerd names a process by (container
//! id, exec id), the init with an empty exec id; the supervisor names the init by the
//! container id. An exec'd process is registered by Exec and started by Start, as
//! containerd splits it; the supervisor starts it in one step, at Start.

use crate::events::{self, CreateInfo, Publisher};
use crate::io::{Attached, IoError, Prepared, StdioPaths};
use crate::options::{self, RuntimeOptions};
use crate::{metrics, rootfs};
use async_trait::async_trait;
use container::checkpoint::RestoreOptions;
use container::exec::ExecOptions;
use container::{CreateOptions, Status};
use containerd_shim_protos::api;
use containerd_shim_protos::events::task::{TaskCreate, TaskIO};
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::well_known_types::empty::Empty;
use containerd_shim_protos::protobuf::Message;
use containerd_shim_protos::shim::oci::ProcessDetails;
use containerd_shim_protos::shim_async::Task;
use containerd_shim_protos::ttrpc::r#async::TtrpcContext;
use containerd_shim_protos::ttrpc::{self, Code};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use supervisor::{Error as SupError, ExitInfo, Supervisor};
use tokio::sync::{watch, Notify};

type Result<T> = ttrpc::Result<T>;

fn status(code: Code, msg: impl Into<String>) -> ttrpc::Error {
    ttrpc::Error::RpcStatus(ttrpc::get_status(code, msg.into()))
}

/// A supervisor error as the gRPC code containerd turns back into its own error kinds.
fn sup_error(e: SupError) -> ttrpc::Error {
    let code = match &e {
        SupError::NotFound { .. } => Code::NOT_FOUND,
        SupError::AlreadyExists { .. } => Code::ALREADY_EXISTS,
        SupError::InvalidArgument(_) => Code::INVALID_ARGUMENT,
        SupError::FailedPrecondition(_) => Code::FAILED_PRECONDITION,
        // As the Go shim's "OCI runtime create failed: runr: ...": the user learns who failed.
        SupError::Library { .. } => return status(Code::UNKNOWN, format!("runr: {e}")),
        SupError::Io { .. } => Code::INTERNAL,
    };
    status(code, e.to_string())
}

fn io_error(e: IoError) -> ttrpc::Error {
    match e {
        IoError::Invalid(m) => status(Code::INVALID_ARGUMENT, m),
        e => status(Code::INTERNAL, e.to_string()),
    }
}

fn invalid(e: options::Invalid) -> ttrpc::Error {
    status(Code::INVALID_ARGUMENT, e.0)
}

fn internal(e: impl std::fmt::Display) -> ttrpc::Error {
    status(Code::INTERNAL, e.to_string())
}

/// An exec'd process as the shim knows it.
struct Exec {
    process: oci_spec::runtime::Process,
    paths: StdioPaths,
    /// `None` until started; then its pid.
    started: watch::Sender<Option<i32>>,
    io: Option<Attached>,
}

/// A container as the shim knows it, beside the supervisor's record.
struct TaskRecord {
    bundle: PathBuf,
    /// Whether the shim mounted `bundle/rootfs` (and so unmounts it).
    mounted_rootfs: bool,
    /// Restored from a checkpoint: its init runs already, Start only reports it.
    restored: bool,
    /// The container is deleted but its rootfs could not be unmounted: how its init ended,
    /// for the Delete that tries again.
    unmount_failed: Option<ExitInfo>,
    paths: StdioPaths,
    /// The owner (IoUid, IoGid) of its processes' stdio pipes and fifos.
    io_owner: (u32, u32),
    pid: i32,
    io: Option<Attached>,
    execs: HashMap<String, Exec>,
}

/// The Task service.
pub struct Service {
    sup: Supervisor,
    /// runr's state root, the supervisor's.
    root: PathBuf,
    namespace: String,
    publisher: Publisher,
    create_info: CreateInfo,
    tasks: Mutex<HashMap<String, TaskRecord>>,
    /// Ids whose Create is under way: taken at once, so that a second Create of one neither
    /// mounts over the first's rootfs nor unmounts it, and a Shutdown meanwhile does not
    /// end the shim.
    creating: Mutex<std::collections::HashSet<String>>,
    /// Notified when the shim should exit (Shutdown with no task left).
    pub exit: Arc<Notify>,
}

/// An id taken for a Create under way; let go of when it ends (made or not).
struct Reserved<'a>(&'a Service, String);

impl Drop for Reserved<'_> {
    fn drop(&mut self) {
        let mut creating = self.0.creating.lock().unwrap_or_else(|e| e.into_inner());
        creating.remove(&self.1);
    }
}

impl Service {
    /// Take `id` for a Create, unless a task or another Create has it.
    fn reserve(&self, id: &str) -> Result<Reserved<'_>> {
        let mut creating = self.creating.lock().unwrap_or_else(|e| e.into_inner());
        if self.tasks().contains_key(id) || !creating.insert(id.to_string()) {
            return Err(status(
                Code::ALREADY_EXISTS,
                format!("container {id} already exists"),
            ));
        }
        Ok(Reserved(self, id.to_string()))
    }

    pub fn new(
        sup: Supervisor,
        root: PathBuf,
        namespace: String,
        publisher: Publisher,
        create_info: CreateInfo,
    ) -> Service {
        Service {
            sup,
            root,
            namespace,
            publisher,
            create_info,
            tasks: Mutex::default(),
            creating: Mutex::default(),
            exit: Arc::new(Notify::new()),
        }
    }

    fn tasks(&self) -> MutexGuard<'_, HashMap<String, TaskRecord>> {
        self.tasks.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every pid the supervisor waits for (inits and started execs).
    pub fn known_pids(&self) -> Vec<i32> {
        let tasks = self.tasks();
        tasks
            .values()
            .flat_map(|t| {
                std::iter::once(t.pid).chain(t.execs.values().filter_map(|e| *e.started.borrow()))
            })
            .collect()
    }

    pub fn publisher(&self) -> &Publisher {
        &self.publisher
    }

    /// The supervisor's name for a process: the container id for the init.
    fn process_id<'a>(id: &'a str, exec_id: &'a str) -> &'a str {
        if exec_id.is_empty() {
            id
        } else {
            exec_id
        }
    }

    /// How the process ended, if it has (without waiting).
    async fn exit_of(&self, id: &str, exec_id: &str) -> Option<ExitInfo> {
        let wait = self.sup.wait(id, Self::process_id(id, exec_id));
        match tokio::time::timeout(Duration::ZERO, wait).await {
            Ok(Ok(exit)) => Some(exit),
            _ => None,
        }
    }

    fn exec_started(&self, id: &str, exec_id: &str) -> Result<watch::Receiver<Option<i32>>> {
        let tasks = self.tasks();
        let task = tasks
            .get(id)
            .ok_or_else(|| status(Code::NOT_FOUND, format!("container {id} not found")))?;
        let exec = task.execs.get(exec_id).ok_or_else(|| {
            status(
                Code::NOT_FOUND,
                format!("process {exec_id} of {id} not found"),
            )
        })?;
        Ok(exec.started.subscribe())
    }

    async fn create_task(&self, req: api::CreateTaskRequest) -> Result<api::CreateTaskResponse> {
        if !req.parent_checkpoint.is_empty() {
            return Err(status(
                Code::UNIMPLEMENTED,
                "restoring from a parent checkpoint (an incremental one) is not supported by \
                 runr yet",
            ));
        }
        let id = req.id.clone();
        // Before anything is mounted on the bundle's rootfs, which is the existing one's.
        let _reserved = self.reserve(&id)?;
        let bundle = PathBuf::from(&req.bundle);
        let runc = options::runtime_options(req.options.as_ref()).map_err(invalid)?;
        self.check_options(&runc)?;
        tracing::info!(
            id = req.id,
            no_pivot = runc.no_pivot,
            restore = !req.checkpoint.is_empty(),
            "create"
        );
        let mounts: Vec<rootfs::MountSpec> = req
            .rootfs
            .iter()
            .map(|m| rootfs::MountSpec {
                kind: m.type_.clone(),
                source: m.source.clone(),
                options: m.options.clone(),
            })
            .collect();
        let target = bundle.join("rootfs");
        let mounted = !mounts.is_empty();
        // In this thread, as every library call of this single-threaded shim.
        rootfs::mount_all(&mounts, &target).map_err(|e| internal(format!("{e:#}")))?;
        let paths = StdioPaths {
            stdin: req.stdin.clone(),
            stdout: req.stdout.clone(),
            stderr: req.stderr.clone(),
            terminal: req.terminal,
        };
        let outcome = self.create_process(&id, &bundle, &paths, &runc, &req).await;
        let (pid, io) = match outcome {
            Ok(r) => r,
            Err(e) => {
                self.create_info
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&id);
                if mounted {
                    if let Err(u) = rootfs::unmount(&target) {
                        tracing::error!("after a failed create of {id}: {u:#}");
                    }
                }
                return Err(e);
            }
        };
        self.tasks().insert(
            id,
            TaskRecord {
                bundle,
                mounted_rootfs: mounted,
                restored: !req.checkpoint.is_empty(),
                unmount_failed: None,
                paths,
                io_owner: (runc.io_uid, runc.io_gid),
                pid,
                io: Some(io),
                execs: HashMap::new(),
            },
        );
        Ok(api::CreateTaskResponse {
            pid: pid as u32,
            ..Default::default()
        })
    }

    async fn create_process(
        &self,
        id: &str,
        bundle: &std::path::Path,
        paths: &StdioPaths,
        runc: &RuntimeOptions,
        req: &api::CreateTaskRequest,
    ) -> Result<(i32, Attached)> {
        let owner = (runc.io_uid, runc.io_gid);
        let mut prepared = Prepared::open(paths, id, &self.namespace, owner)
            .await
            .map_err(io_error)?;
        // For /tasks/create, which the supervisor's Created event turns into.
        let event = TaskCreate {
            container_id: id.to_string(),
            bundle: req.bundle.clone(),
            rootfs: req.rootfs.clone(),
            io: Some(TaskIO {
                stdin: paths.stdin.clone(),
                stdout: paths.stdout.clone(),
                stderr: paths.stderr.clone(),
                terminal: paths.terminal,
                ..Default::default()
            })
            .into(),
            ..Default::default()
        };
        self.create_info
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.to_string(), event);
        let options = CreateOptions {
            id: id.to_string(),
            bundle: bundle.to_path_buf(),
            no_pivot: runc.no_pivot,
            no_new_keyring: runc.no_new_keyring,
            systemd_cgroup: runc.systemd_cgroup,
            ..Default::default()
        };
        let pid = if req.checkpoint.is_empty() {
            self.sup.create_with(options, prepared.take_stdio()).await
        } else {
            if paths.terminal {
                return Err(status(
                    Code::UNIMPLEMENTED,
                    "restoring a container with a terminal is not supported by the runr shim \
                     yet",
                ));
            }
            let restore = RestoreOptions {
                create: options,
                criu: options::restore_flags(&req.checkpoint, runc),
            };
            self.sup.restore_with(restore, prepared.take_stdio()).await
        }
        .map_err(sup_error)?;
        match prepared.attach(&self.sup, id, id) {
            Ok(io) => Ok((pid, io)),
            Err(e) => {
                if let Err(d) = self.sup.delete(id, true).await {
                    tracing::error!("container {id}: removing it after its stdio failed: {d}");
                }
                Err(io_error(e))
            }
        }
    }

    /// Refuse what this shim cannot honour: another runtime binary, another state root.
    fn check_options(&self, runc: &RuntimeOptions) -> Result<()> {
        options::check_binary_name(&runc.binary_name).map_err(invalid)?;
        match options::state_root(runc, &self.namespace) {
            Some(root) if root != self.root => Err(status(
                Code::INVALID_ARGUMENT,
                format!(
                    "Root {}: this shim keeps runr's state in {} (a shim's root is set by the \
                     options of its first container, at start)",
                    runc.root,
                    self.root.display()
                ),
            )),
            _ => Ok(()),
        }
    }

    /// Every process of container `id` with its exec id ("" for the init and what the
    /// shim did not start).
    fn exec_ids_by_pid(&self, id: &str) -> HashMap<i32, String> {
        let tasks = self.tasks();
        let Some(task) = tasks.get(id) else {
            return HashMap::new();
        };
        task.execs
            .iter()
            .filter_map(|(exec_id, e)| e.started.borrow().map(|pid| (pid, exec_id.clone())))
            .collect()
    }

    async fn start_exec(&self, id: &str, exec_id: &str) -> Result<i32> {
        let (process, paths) = {
            let tasks = self.tasks();
            let exec = tasks
                .get(id)
                .and_then(|t| t.execs.get(exec_id))
                .ok_or_else(|| {
                    status(
                        Code::NOT_FOUND,
                        format!("process {exec_id} of {id} not found"),
                    )
                })?;
            if exec.started.borrow().is_some() {
                return Err(status(
                    Code::FAILED_PRECONDITION,
                    format!("process {exec_id} of {id} was started already"),
                ));
            }
            (exec.process.clone(), exec.paths.clone())
        };
        let owner = self.tasks().get(id).map_or((0, 0), |t| t.io_owner);
        let mut prepared = Prepared::open(&paths, id, &self.namespace, owner)
            .await
            .map_err(io_error)?;
        let options = ExecOptions {
            process,
            ..Default::default()
        };
        let pid = self
            .sup
            .exec_with(id, exec_id, options, prepared.take_stdio())
            .await
            .map_err(sup_error)?;
        let io = prepared.attach(&self.sup, id, exec_id);
        let recorded = {
            let mut tasks = self.tasks();
            match (tasks.get_mut(id).and_then(|t| t.execs.get_mut(exec_id)), io) {
                (Some(exec), Ok(io)) => {
                    exec.started.send_replace(Some(pid));
                    exec.io = Some(io);
                    Ok(())
                }
                (Some(exec), Err(e)) => {
                    exec.started.send_replace(Some(pid));
                    Err(io_error(e))
                }
                (None, _) => Err(status(
                    Code::NOT_FOUND,
                    format!("process {exec_id} of {id} was deleted while it started"),
                )),
            }
        };
        if let Err(e) = recorded {
            // It cannot be used: it goes.
            let _ = self.sup.signal(id, exec_id, libc::SIGKILL, false).await;
            return Err(e);
        }
        Ok(pid)
    }

    async fn delete_exec(&self, id: &str, exec_id: &str) -> Result<api::DeleteResponse> {
        let started = *self.exec_started(id, exec_id)?.borrow();
        let response = match started {
            None => api::DeleteResponse::default(),
            Some(pid) => {
                let exit = self.sup.remove_process(id, exec_id).map_err(sup_error)?;
                delete_response(pid, exit)
            }
        };
        let exec = self
            .tasks()
            .get_mut(id)
            .and_then(|t| t.execs.remove(exec_id));
        drop(exec);
        Ok(response)
    }

    async fn delete_init(&self, id: &str) -> Result<api::DeleteResponse> {
        // Without a new pid namespace of its own, what the init left is killed by the
        // library's delete before its cgroup goes.
        let exit = match self.sup.delete(id, false).await {
            Ok(exit) => exit,
            // An earlier Delete removed the container but could not unmount its rootfs:
            // the record stayed for this retry.
            Err(e) => match self.tasks().get(id).and_then(|t| t.unmount_failed) {
                Some(exit) => exit,
                None => return Err(sup_error(e)),
            },
        };
        let (pid, mounted) = match self.tasks().get(id) {
            Some(t) => (t.pid, t.mounted_rootfs.then(|| t.bundle.join("rootfs"))),
            None => return Err(status(Code::NOT_FOUND, format!("container {id} not found"))),
        };
        if let Some(target) = mounted {
            if let Err(e) = rootfs::unmount(&target) {
                if let Some(t) = self.tasks().get_mut(id) {
                    t.unmount_failed = Some(exit);
                }
                return Err(internal(format!("{e:#}")));
            }
        }
        self.tasks().remove(id);
        Ok(delete_response(pid, exit))
    }
}

const PROCESS_DETAILS_TYPE: &str = "containerd.runc.v1.ProcessDetails";

/// A process of a Pids answer: an exec'd one carries its exec id, as containerd's
/// `ProcessDetails` (which `ctr task ps` shows).
fn process_info(pid: i32, exec_id: Option<&String>) -> Result<api::ProcessInfo> {
    let mut info = api::ProcessInfo {
        pid: pid as u32,
        ..Default::default()
    };
    if let Some(exec_id) = exec_id {
        let details = ProcessDetails {
            exec_id: exec_id.clone(),
            ..Default::default()
        };
        let value = details
            .write_to_bytes()
            .map_err(|e| internal(format!("encode the details of process {pid}: {e}")))?;
        // The type's name alone, as containerd's own Any values are named.
        let any = Any {
            type_url: PROCESS_DETAILS_TYPE.to_string(),
            value,
            ..Default::default()
        };
        info.info = Some(any).into();
    }
    Ok(info)
}

fn delete_response(pid: i32, exit: ExitInfo) -> api::DeleteResponse {
    api::DeleteResponse {
        pid: pid as u32,
        exit_status: exit.status as u32,
        exited_at: Some(exit.exited_at.into()).into(),
        ..Default::default()
    }
}

/// A JSON-encoded OCI type in an Any, as containerd marshals Go structs
/// (`types.containerd.io/opencontainers/runtime-spec/1/...`).
fn from_json_any<T: serde::de::DeserializeOwned>(any: &Any, what: &str) -> Result<T> {
    serde_json::from_slice(&any.value).map_err(|e| {
        status(
            Code::INVALID_ARGUMENT,
            format!("{what} ({}): {e}", any.type_url),
        )
    })
}

fn task_status(s: Status) -> api::Status {
    match s {
        Status::Creating => api::Status::UNKNOWN,
        Status::Created => api::Status::CREATED,
        Status::Running => api::Status::RUNNING,
        Status::Paused => api::Status::PAUSED,
        Status::Stopped => api::Status::STOPPED,
    }
}

fn empty() -> Result<Empty> {
    Ok(Empty::new())
}

#[async_trait]
impl Task for Service {
    async fn state(&self, _: &TtrpcContext, req: api::StateRequest) -> Result<api::StateResponse> {
        let (id, exec_id) = (req.id.as_str(), req.exec_id.as_str());
        let mut resp = api::StateResponse {
            id: id.to_string(),
            exec_id: exec_id.to_string(),
            ..Default::default()
        };
        if exec_id.is_empty() {
            let st = self.sup.state(id).await.map_err(sup_error)?;
            resp.bundle = st.bundle.display().to_string();
            resp.pid = st.pid as u32;
            resp.status = task_status(st.status).into();
            if let Some(exit) = st.exit {
                resp.status = api::Status::STOPPED.into();
                resp.exit_status = exit.status as u32;
                resp.exited_at = Some(exit.exited_at.into()).into();
            }
            if let Some(t) = self.tasks().get(id) {
                resp.stdin = t.paths.stdin.clone();
                resp.stdout = t.paths.stdout.clone();
                resp.stderr = t.paths.stderr.clone();
                resp.terminal = t.paths.terminal;
            }
            return Ok(resp);
        }
        let started = *self.exec_started(id, exec_id)?.borrow();
        if let Some(t) = self.tasks().get(id) {
            resp.bundle = t.bundle.display().to_string();
            if let Some(e) = t.execs.get(exec_id) {
                resp.stdin = e.paths.stdin.clone();
                resp.stdout = e.paths.stdout.clone();
                resp.stderr = e.paths.stderr.clone();
                resp.terminal = e.paths.terminal;
            }
        }
        resp.status = api::Status::CREATED.into();
        if let Some(pid) = started {
            resp.pid = pid as u32;
            resp.status = api::Status::RUNNING.into();
            if let Some(exit) = self.exit_of(id, exec_id).await {
                resp.status = api::Status::STOPPED.into();
                resp.exit_status = exit.status as u32;
                resp.exited_at = Some(exit.exited_at.into()).into();
            }
        }
        Ok(resp)
    }

    async fn create(
        &self,
        _: &TtrpcContext,
        req: api::CreateTaskRequest,
    ) -> Result<api::CreateTaskResponse> {
        let id = req.id.clone();
        let r = self.create_task(req).await;
        tracing::debug!(id, ok = r.is_ok(), "create done");
        r
    }

    async fn start(&self, _: &TtrpcContext, req: api::StartRequest) -> Result<api::StartResponse> {
        tracing::debug!(id = req.id, exec_id = req.exec_id, "start");
        let restored = self.tasks().get(&req.id).is_some_and(|t| t.restored);
        let pid = if req.exec_id.is_empty() && restored {
            self.sup
                .restored_started(&req.id)
                .await
                .map_err(sup_error)?
        } else if req.exec_id.is_empty() {
            self.sup.start(&req.id).await.map_err(sup_error)?
        } else {
            self.start_exec(&req.id, &req.exec_id).await?
        };
        Ok(api::StartResponse {
            pid: pid as u32,
            ..Default::default()
        })
    }

    async fn delete(
        &self,
        _: &TtrpcContext,
        req: api::DeleteRequest,
    ) -> Result<api::DeleteResponse> {
        tracing::debug!(id = req.id, exec_id = req.exec_id, "delete");
        let r = if req.exec_id.is_empty() {
            self.delete_init(&req.id).await
        } else {
            self.delete_exec(&req.id, &req.exec_id).await
        };
        tracing::debug!(
            id = req.id,
            exec_id = req.exec_id,
            ok = r.is_ok(),
            "delete done"
        );
        r
    }

    async fn pids(&self, _: &TtrpcContext, req: api::PidsRequest) -> Result<api::PidsResponse> {
        let pids = self.sup.pids(&req.id).await.map_err(sup_error)?;
        let exec_ids = self.exec_ids_by_pid(&req.id);
        let mut processes = Vec::with_capacity(pids.len());
        for pid in pids {
            processes.push(process_info(pid, exec_ids.get(&pid))?);
        }
        Ok(api::PidsResponse {
            processes,
            ..Default::default()
        })
    }

    async fn pause(&self, _: &TtrpcContext, req: api::PauseRequest) -> Result<Empty> {
        self.sup.pause(&req.id).await.map_err(sup_error)?;
        empty()
    }

    async fn resume(&self, _: &TtrpcContext, req: api::ResumeRequest) -> Result<Empty> {
        self.sup.resume(&req.id).await.map_err(sup_error)?;
        empty()
    }

    async fn checkpoint(&self, _: &TtrpcContext, req: api::CheckpointTaskRequest) -> Result<Empty> {
        let o = options::checkpoint_options(&req.path, req.options.as_ref()).map_err(invalid)?;
        tracing::info!(
            id = req.id,
            image = %o.criu.image_path.display(),
            exit = !o.leave_running,
            "checkpoint"
        );
        let warnings = self.sup.checkpoint(&req.id, o).await.map_err(sup_error)?;
        for w in warnings {
            tracing::warn!("container {}: {w}", req.id);
        }
        empty()
    }

    async fn kill(&self, _: &TtrpcContext, req: api::KillRequest) -> Result<Empty> {
        let (id, exec_id) = (req.id.as_str(), req.exec_id.as_str());
        if !exec_id.is_empty() && self.exec_started(id, exec_id)?.borrow().is_none() {
            return Err(status(
                Code::FAILED_PRECONDITION,
                format!("process {exec_id} of {id} has not been started"),
            ));
        }
        // containerd's clean-up kills what may have ended: NotFound is what it expects then.
        if self.exit_of(id, exec_id).await.is_some() {
            return Err(status(Code::NOT_FOUND, "process already finished"));
        }
        let signal = i32::try_from(req.signal)
            .map_err(|_| status(Code::INVALID_ARGUMENT, format!("signal {}", req.signal)))?;
        match self
            .sup
            .signal(id, Self::process_id(id, exec_id), signal, req.all)
            .await
        {
            Ok(()) => empty(),
            // It ended between the check and the signal.
            Err(SupError::FailedPrecondition(_)) if self.exit_of(id, exec_id).await.is_some() => {
                Err(status(Code::NOT_FOUND, "process already finished"))
            }
            Err(e) => Err(sup_error(e)),
        }
    }

    async fn exec(&self, _: &TtrpcContext, req: api::ExecProcessRequest) -> Result<Empty> {
        let (id, exec_id) = (req.id.as_str(), req.exec_id.as_str());
        if exec_id.is_empty() || exec_id == id {
            return Err(status(
                Code::INVALID_ARGUMENT,
                format!("exec id {exec_id:?}: must be set and differ from the container's"),
            ));
        }
        let spec = req
            .spec
            .as_ref()
            .ok_or_else(|| status(Code::INVALID_ARGUMENT, "the exec has no process spec"))?;
        let process: oci_spec::runtime::Process = from_json_any(spec, "the exec's process spec")?;
        {
            let mut tasks = self.tasks();
            let task = tasks
                .get_mut(id)
                .ok_or_else(|| status(Code::NOT_FOUND, format!("container {id} not found")))?;
            if task.execs.contains_key(exec_id) {
                return Err(status(
                    Code::ALREADY_EXISTS,
                    format!("process {exec_id} of {id} already exists"),
                ));
            }
            task.execs.insert(
                exec_id.to_string(),
                Exec {
                    process,
                    paths: StdioPaths {
                        stdin: req.stdin.clone(),
                        stdout: req.stdout.clone(),
                        stderr: req.stderr.clone(),
                        terminal: req.terminal,
                    },
                    started: watch::Sender::new(None),
                    io: None,
                },
            );
        }
        self.publisher.send(events::exec_added(id, exec_id));
        empty()
    }

    async fn resize_pty(&self, _: &TtrpcContext, req: api::ResizePtyRequest) -> Result<Empty> {
        let rows = u16::try_from(req.height).unwrap_or(u16::MAX);
        let cols = u16::try_from(req.width).unwrap_or(u16::MAX);
        self.sup
            .resize_pty(&req.id, Self::process_id(&req.id, &req.exec_id), rows, cols)
            .map_err(sup_error)?;
        empty()
    }

    async fn close_io(&self, _: &TtrpcContext, req: api::CloseIORequest) -> Result<Empty> {
        if !req.stdin {
            return empty();
        }
        let mut tasks = self.tasks();
        let task = tasks
            .get_mut(&req.id)
            .ok_or_else(|| status(Code::NOT_FOUND, format!("container {} not found", req.id)))?;
        let io = if req.exec_id.is_empty() {
            task.io.as_mut()
        } else {
            task.execs.get_mut(&req.exec_id).and_then(|e| e.io.as_mut())
        };
        if let Some(io) = io {
            io.close_stdin();
        }
        empty()
    }

    async fn update(&self, _: &TtrpcContext, req: api::UpdateTaskRequest) -> Result<Empty> {
        let any = req
            .resources
            .as_ref()
            .ok_or_else(|| status(Code::INVALID_ARGUMENT, "the update has no resources"))?;
        let resources: oci_spec::runtime::LinuxResources = from_json_any(any, "the resources")?;
        self.sup
            .update(&req.id, resources)
            .await
            .map_err(sup_error)?;
        empty()
    }

    async fn wait(&self, _: &TtrpcContext, req: api::WaitRequest) -> Result<api::WaitResponse> {
        let (id, exec_id) = (req.id.as_str(), req.exec_id.as_str());
        if !exec_id.is_empty() {
            // containerd waits before it starts the process.
            let mut started = self.exec_started(id, exec_id)?;
            if started.wait_for(Option::is_some).await.is_err() {
                return Err(status(
                    Code::NOT_FOUND,
                    format!("process {exec_id} of {id} was deleted before it started"),
                ));
            }
        }
        let exit = self
            .sup
            .wait(id, Self::process_id(id, exec_id))
            .await
            .map_err(sup_error)?;
        tracing::debug!(id, exec_id, status = exit.status, "wait done");
        Ok(api::WaitResponse {
            exit_status: exit.status as u32,
            exited_at: Some(exit.exited_at.into()).into(),
            ..Default::default()
        })
    }

    async fn stats(&self, _: &TtrpcContext, req: api::StatsRequest) -> Result<api::StatsResponse> {
        let stats = self.sup.stats(&req.id).await.map_err(sup_error)?;
        let any =
            metrics::to_any(&stats).map_err(|e| internal(format!("encode the metrics: {e}")))?;
        Ok(api::StatsResponse {
            stats: Some(any).into(),
            ..Default::default()
        })
    }

    async fn connect(
        &self,
        _: &TtrpcContext,
        req: api::ConnectRequest,
    ) -> Result<api::ConnectResponse> {
        let task_pid = self.tasks().get(&req.id).map(|t| t.pid).unwrap_or(0);
        Ok(api::ConnectResponse {
            shim_pid: std::process::id(),
            task_pid: task_pid as u32,
            version: env!("CARGO_PKG_VERSION").to_string(),
            ..Default::default()
        })
    }

    async fn shutdown(&self, _: &TtrpcContext, req: api::ShutdownRequest) -> Result<Empty> {
        tracing::debug!(now = req.now, "shutdown");
        // A pod's shim serves its other containers on, and those being created.
        let creating = !self
            .creating
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty();
        if !req.now && (creating || !self.tasks().is_empty()) {
            return empty();
        }
        self.exit.notify_one();
        empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn library_errors_say_runr_failed() {
        let e = SupError::Library {
            what: "start".into(),
            source: container::Error::Invalid("exec /no/such/program: not found".into()),
        };
        let ttrpc::Error::RpcStatus(s) = sup_error(e) else {
            panic!("not a status")
        };
        assert_eq!(s.message, "runr: start: exec /no/such/program: not found");
        assert_eq!(s.code(), Code::UNKNOWN);
    }
}
