//! The ttrpc services: `grpc.Health` and `grpc.AgentService`.
//!
//! Each AgentService method checks its request (ids present, numbers in range), converts the
//! protobuf types (convert.rs), calls the [`Backend`] and maps its error to a status
//! (error.rs). Every method the proto declares is implemented here: the generated trait's
//! defaults would answer NOT_FOUND, which Kata's clients read as "no such container".

use crate::backend::{Backend, CreateContainer, ProcessRef, Sandbox, SignalTarget};
use crate::convert;
use crate::error::{to_ttrpc, AgentError};
use crate::net;
use crate::protocols::{agent as pb, agent_ttrpc, health, health_ttrpc};
use async_trait::async_trait;
use protobuf::well_known_types::empty::Empty;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use ttrpc::r#async::TtrpcContext;

/// The agent's version, as Version answers it.
pub const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The version of the API served, as Version answers it (`grpc_version`).
pub const API_VERSION: &str = "0.0.1";

/// How much ReadStdout and ReadStderr return at most when the request's len is 0, and the
/// most they return whatever it asks.
const DEFAULT_READ: usize = 32 * 1024;
const MAX_READ: usize = 1024 * 1024;

/// SIGRTMAX on Linux.
const MAX_SIGNAL: u32 = 64;

/// `grpc.Health`: the agent is up whenever it answers.
#[derive(Debug, Default)]
pub struct HealthService;

#[async_trait]
impl health_ttrpc::Health for HealthService {
    async fn check(
        &self,
        _ctx: &TtrpcContext,
        _req: health::CheckRequest,
    ) -> ttrpc::Result<health::HealthCheckResponse> {
        Ok(health::HealthCheckResponse {
            status: health::health_check_response::ServingStatus::SERVING.into(),
            ..Default::default()
        })
    }

    async fn version(
        &self,
        _ctx: &TtrpcContext,
        _req: health::CheckRequest,
    ) -> ttrpc::Result<health::VersionCheckResponse> {
        Ok(health::VersionCheckResponse {
            grpc_version: API_VERSION.to_string(),
            agent_version: AGENT_VERSION.to_string(),
            ..Default::default()
        })
    }
}

/// `grpc.AgentService` over a backend.
pub struct AgentService<B: Backend> {
    backend: Arc<B>,
    /// The sandbox CreateSandbox made (one per agent), until DestroySandbox.
    sandbox: Mutex<Option<Sandbox>>,
}

impl<B: Backend> AgentService<B> {
    pub fn new(backend: Arc<B>) -> Self {
        AgentService {
            backend,
            sandbox: Mutex::new(None),
        }
    }

    fn sandbox(&self) -> std::sync::MutexGuard<'_, Option<Sandbox>> {
        // A panic elsewhere while holding it leaves a plain value: keep using it.
        self.sandbox.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Logs a failed request and turns its error into the status the client gets.
fn answer<T>(rpc: &str, r: Result<T, AgentError>) -> ttrpc::Result<T> {
    r.map_err(|e| {
        tracing::warn!(rpc, code = ?e.code(), "{e}");
        to_ttrpc(e)
    })
}

fn container_id(rpc: &str, id: &str) -> Result<String, AgentError> {
    if id.is_empty() {
        return Err(AgentError::invalid(format!("{rpc}: container_id is empty")));
    }
    Ok(id.to_string())
}

/// The process an exec id names: empty is the container's init, as Kata's clients send it
/// for the init of some calls.
fn process_ref(rpc: &str, container: &str, exec: &str) -> Result<ProcessRef, AgentError> {
    let container_id = container_id(rpc, container)?;
    let exec_id = if exec.is_empty() {
        container_id.clone()
    } else {
        exec.to_string()
    };
    Ok(ProcessRef {
        container_id,
        exec_id,
    })
}

/// Stdio over streams the host opened (runtime-rs's passfd) is not served: the client must
/// use WriteStdin and ReadStdout/ReadStderr.
fn no_passfd(rpc: &str, what: &dyn std::fmt::Display, ports: [u32; 3]) -> Result<(), AgentError> {
    if ports.iter().any(|p| *p != 0) {
        return Err(AgentError::Unimplemented(format!(
            "{rpc} {what}: stdio over host vsock ports (stdin_port, stdout_port, stderr_port \
             {ports:?}) is not supported; use WriteStdin, ReadStdout and ReadStderr"
        )));
    }
    Ok(())
}

fn empty() -> Empty {
    Empty::new()
}

impl<B: Backend> AgentService<B> {
    async fn do_create_container(&self, req: pb::CreateContainerRequest) -> Result<(), AgentError> {
        const RPC: &str = "CreateContainer";
        let id = container_id(RPC, &req.container_id)?;
        no_passfd(RPC, &id, [req.stdin_port, req.stdout_port, req.stderr_port])?;
        let oci = req
            .OCI
            .as_ref()
            .ok_or_else(|| AgentError::invalid(format!("{RPC} {id}: no OCI spec")))?;
        let spec =
            convert::spec(oci).map_err(|e| AgentError::from(e).context(format!("{RPC} {id}")))?;
        if spec.process().is_none() {
            return Err(AgentError::invalid(format!(
                "{RPC} {id}: invalid OCI.Process: missing"
            )));
        }
        // Guest storage and device hotplug are the VM's business: runr takes the rootfs and
        // devices the spec names as they are.
        if !req.storages.is_empty() || !req.devices.is_empty() || !req.shared_mounts.is_empty() {
            tracing::warn!(
                container = id,
                storages = req.storages.len(),
                devices = req.devices.len(),
                shared_mounts = req.shared_mounts.len(),
                "CreateContainer: storages, devices and shared mounts are not handled; ignored"
            );
        }
        let exec_id = if req.exec_id.is_empty() {
            id.clone()
        } else {
            req.exec_id.clone()
        };
        self.backend
            .create_container(CreateContainer {
                container_id: id,
                exec_id,
                spec,
                sandbox_pidns: req.sandbox_pidns,
            })
            .await
    }

    async fn do_exec_process(&self, req: pb::ExecProcessRequest) -> Result<(), AgentError> {
        const RPC: &str = "ExecProcess";
        let p = process_ref(RPC, &req.container_id, &req.exec_id)?;
        if req.exec_id.is_empty() {
            return Err(AgentError::invalid(format!(
                "{RPC}: exec_id is empty (container {})",
                p.container_id
            )));
        }
        no_passfd(RPC, &p, [req.stdin_port, req.stdout_port, req.stderr_port])?;
        let process = req
            .process
            .as_ref()
            .ok_or_else(|| AgentError::invalid(format!("{RPC} {p}: no process")))?;
        let process = convert::process(process)
            .map_err(|e| AgentError::from(e).context(format!("{RPC} {p}")))?;
        self.backend.exec_process(p, process).await
    }

    async fn do_signal_process(&self, req: pb::SignalProcessRequest) -> Result<(), AgentError> {
        const RPC: &str = "SignalProcess";
        let p = process_ref(RPC, &req.container_id, &req.exec_id)?;
        if req.signal == 0 || req.signal > MAX_SIGNAL {
            return Err(AgentError::invalid(format!(
                "{RPC} {p}: signal {} is not between 1 and {MAX_SIGNAL}",
                req.signal
            )));
        }
        let target = if req.exec_id.is_empty() && req.signal == libc::SIGKILL as u32 {
            SignalTarget::AllOfContainer
        } else {
            SignalTarget::Process
        };
        self.backend
            .signal_process(p, req.signal as i32, target)
            .await
    }

    async fn do_update_container(&self, req: pb::UpdateContainerRequest) -> Result<(), AgentError> {
        const RPC: &str = "UpdateContainer";
        let id = container_id(RPC, &req.container_id)?;
        let r = req
            .resources
            .as_ref()
            .ok_or_else(|| AgentError::invalid(format!("{RPC} {id}: no resources")))?;
        let r = convert::resources(r)
            .map_err(|e| AgentError::from(e).context(format!("{RPC} {id}")))?;
        self.backend.update_container(&id, r).await
    }

    async fn do_read(
        &self,
        rpc: &str,
        req: pb::ReadStreamRequest,
        stderr: bool,
    ) -> Result<pb::ReadStreamResponse, AgentError> {
        let p = process_ref(rpc, &req.container_id, &req.exec_id)?;
        let max = match req.len as usize {
            0 => DEFAULT_READ,
            n => n.min(MAX_READ),
        };
        let data = if stderr {
            self.backend.read_stderr(p, max).await?
        } else {
            self.backend.read_stdout(p, max).await?
        };
        Ok(pb::ReadStreamResponse {
            data,
            ..Default::default()
        })
    }

    async fn do_create_sandbox(&self, req: pb::CreateSandboxRequest) -> Result<(), AgentError> {
        if let Some(s) = self.sandbox().as_ref() {
            return Err(AgentError::invalid(format!(
                "CreateSandbox: the agent has a sandbox already ({:?}); DestroySandbox first",
                s.id
            )));
        }
        let sandbox = Sandbox {
            id: req.sandbox_id,
            hostname: req.hostname,
            dns: req.dns,
            sandbox_pidns: req.sandbox_pidns,
        };
        self.backend.create_sandbox(sandbox.clone()).await?;
        tracing::info!(sandbox = sandbox.id, "sandbox created");
        *self.sandbox() = Some(sandbox);
        Ok(())
    }

    async fn do_destroy_sandbox(&self) -> Result<(), AgentError> {
        self.backend.destroy_sandbox().await?;
        if let Some(s) = self.sandbox().take() {
            tracing::info!(sandbox = s.id, "sandbox destroyed");
        }
        Ok(())
    }
}

#[async_trait]
impl<B: Backend> agent_ttrpc::AgentService for AgentService<B> {
    async fn create_container(
        &self,
        _ctx: &TtrpcContext,
        req: pb::CreateContainerRequest,
    ) -> ttrpc::Result<Empty> {
        answer(
            "CreateContainer",
            self.do_create_container(req).await.map(|_| empty()),
        )
    }

    async fn start_container(
        &self,
        _ctx: &TtrpcContext,
        req: pb::StartContainerRequest,
    ) -> ttrpc::Result<Empty> {
        let r = async {
            let id = container_id("StartContainer", &req.container_id)?;
            self.backend.start_container(&id).await
        };
        answer("StartContainer", r.await.map(|_| empty()))
    }

    async fn remove_container(
        &self,
        _ctx: &TtrpcContext,
        req: pb::RemoveContainerRequest,
    ) -> ttrpc::Result<Empty> {
        let r = async {
            let id = container_id("RemoveContainer", &req.container_id)?;
            let timeout = (req.timeout != 0).then(|| Duration::from_secs(req.timeout.into()));
            self.backend.remove_container(&id, timeout).await
        };
        answer("RemoveContainer", r.await.map(|_| empty()))
    }

    async fn exec_process(
        &self,
        _ctx: &TtrpcContext,
        req: pb::ExecProcessRequest,
    ) -> ttrpc::Result<Empty> {
        answer(
            "ExecProcess",
            self.do_exec_process(req).await.map(|_| empty()),
        )
    }

    async fn signal_process(
        &self,
        _ctx: &TtrpcContext,
        req: pb::SignalProcessRequest,
    ) -> ttrpc::Result<Empty> {
        answer(
            "SignalProcess",
            self.do_signal_process(req).await.map(|_| empty()),
        )
    }

    async fn wait_process(
        &self,
        _ctx: &TtrpcContext,
        req: pb::WaitProcessRequest,
    ) -> ttrpc::Result<pb::WaitProcessResponse> {
        let r = async {
            let p = process_ref("WaitProcess", &req.container_id, &req.exec_id)?;
            let status = self.backend.wait_process(p).await?;
            Ok(pb::WaitProcessResponse {
                status,
                ..Default::default()
            })
        };
        answer("WaitProcess", r.await)
    }

    async fn update_container(
        &self,
        _ctx: &TtrpcContext,
        req: pb::UpdateContainerRequest,
    ) -> ttrpc::Result<Empty> {
        answer(
            "UpdateContainer",
            self.do_update_container(req).await.map(|_| empty()),
        )
    }

    async fn stats_container(
        &self,
        _ctx: &TtrpcContext,
        req: pb::StatsContainerRequest,
    ) -> ttrpc::Result<pb::StatsContainerResponse> {
        let r = async {
            let id = container_id("StatsContainer", &req.container_id)?;
            let stats = self.backend.stats_container(&id).await?;
            Ok(convert::stats(&stats))
        };
        answer("StatsContainer", r.await)
    }

    async fn pause_container(
        &self,
        _ctx: &TtrpcContext,
        req: pb::PauseContainerRequest,
    ) -> ttrpc::Result<Empty> {
        let r = async {
            let id = container_id("PauseContainer", &req.container_id)?;
            self.backend.pause_container(&id).await
        };
        answer("PauseContainer", r.await.map(|_| empty()))
    }

    async fn resume_container(
        &self,
        _ctx: &TtrpcContext,
        req: pb::ResumeContainerRequest,
    ) -> ttrpc::Result<Empty> {
        let r = async {
            let id = container_id("ResumeContainer", &req.container_id)?;
            self.backend.resume_container(&id).await
        };
        answer("ResumeContainer", r.await.map(|_| empty()))
    }

    async fn write_stdin(
        &self,
        _ctx: &TtrpcContext,
        req: pb::WriteStreamRequest,
    ) -> ttrpc::Result<pb::WriteStreamResponse> {
        let r = async {
            let p = process_ref("WriteStdin", &req.container_id, &req.exec_id)?;
            let n = self.backend.write_stdin(p, req.data).await?;
            Ok(pb::WriteStreamResponse {
                len: u32::try_from(n).unwrap_or(u32::MAX),
                ..Default::default()
            })
        };
        answer("WriteStdin", r.await)
    }

    async fn read_stdout(
        &self,
        _ctx: &TtrpcContext,
        req: pb::ReadStreamRequest,
    ) -> ttrpc::Result<pb::ReadStreamResponse> {
        answer("ReadStdout", self.do_read("ReadStdout", req, false).await)
    }

    async fn read_stderr(
        &self,
        _ctx: &TtrpcContext,
        req: pb::ReadStreamRequest,
    ) -> ttrpc::Result<pb::ReadStreamResponse> {
        answer("ReadStderr", self.do_read("ReadStderr", req, true).await)
    }

    async fn close_stdin(
        &self,
        _ctx: &TtrpcContext,
        req: pb::CloseStdinRequest,
    ) -> ttrpc::Result<Empty> {
        let r = async {
            let p = process_ref("CloseStdin", &req.container_id, &req.exec_id)?;
            self.backend.close_stdin(p).await
        };
        answer("CloseStdin", r.await.map(|_| empty()))
    }

    async fn tty_win_resize(
        &self,
        _ctx: &TtrpcContext,
        req: pb::TtyWinResizeRequest,
    ) -> ttrpc::Result<Empty> {
        let r = async {
            const RPC: &str = "TtyWinResize";
            let p = process_ref(RPC, &req.container_id, &req.exec_id)?;
            let dim = |n: u32, what: &str| {
                u16::try_from(n).map_err(|_| {
                    AgentError::invalid(format!("{RPC} {p}: {what} {n} is over {}", u16::MAX))
                })
            };
            let (rows, columns) = (dim(req.row, "row")?, dim(req.column, "column")?);
            self.backend.tty_win_resize(p, rows, columns).await
        };
        answer("TtyWinResize", r.await.map(|_| empty()))
    }

    async fn list_interfaces(
        &self,
        _ctx: &TtrpcContext,
        _req: pb::ListInterfacesRequest,
    ) -> ttrpc::Result<pb::Interfaces> {
        let r = net::interfaces().map(|l| pb::Interfaces {
            Interfaces: l,
            ..Default::default()
        });
        answer("ListInterfaces", r)
    }

    async fn list_routes(
        &self,
        _ctx: &TtrpcContext,
        _req: pb::ListRoutesRequest,
    ) -> ttrpc::Result<pb::Routes> {
        let r = net::routes().map(|l| pb::Routes {
            Routes: l,
            ..Default::default()
        });
        answer("ListRoutes", r)
    }

    async fn create_sandbox(
        &self,
        _ctx: &TtrpcContext,
        req: pb::CreateSandboxRequest,
    ) -> ttrpc::Result<Empty> {
        answer(
            "CreateSandbox",
            self.do_create_sandbox(req).await.map(|_| empty()),
        )
    }

    async fn destroy_sandbox(
        &self,
        _ctx: &TtrpcContext,
        _req: pb::DestroySandboxRequest,
    ) -> ttrpc::Result<Empty> {
        answer(
            "DestroySandbox",
            self.do_destroy_sandbox().await.map(|_| empty()),
        )
    }

    async fn get_oom_event(
        &self,
        _ctx: &TtrpcContext,
        _req: pb::GetOOMEventRequest,
    ) -> ttrpc::Result<pb::OOMEvent> {
        let r = self
            .backend
            .get_oom_event()
            .await
            .map(|container_id| pb::OOMEvent {
                container_id,
                ..Default::default()
            });
        answer("GetOOMEvent", r)
    }
}
