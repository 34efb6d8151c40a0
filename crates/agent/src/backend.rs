//! What the agent's RPCs ask of the container side, in oci-spec and plain Rust types.
//!
//! The service (service.rs) checks and converts each request, then calls a [`Backend`]; the
//! backend is where containers and processes live: [`crate::containers::Containers`], on
//! runr's supervisor, keyed by container id and exec id, is what the agent serves.
//! [`Unwired`] answers every container call with a clear UNIMPLEMENTED (the protocol
//! layer's tests use it).

use crate::error::AgentError;
use async_trait::async_trait;
use oci_spec::runtime::{LinuxResources, Process, Spec};
use std::time::Duration;

pub type Result<T> = std::result::Result<T, AgentError>;

/// One process of one container. `exec_id` is the container id for its init process (the
/// service turns an empty exec id into that).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessRef {
    pub container_id: String,
    pub exec_id: String,
}

impl ProcessRef {
    pub fn is_init(&self) -> bool {
        self.exec_id == self.container_id
    }
}

impl std::fmt::Display for ProcessRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_init() {
            write!(f, "container {}", self.container_id)
        } else {
            write!(
                f,
                "exec {} of container {}",
                self.exec_id, self.container_id
            )
        }
    }
}

/// A CreateContainer request, checked and converted.
#[derive(Debug, Clone)]
pub struct CreateContainer {
    pub container_id: String,
    /// The init's exec id: Kata sends the container id.
    pub exec_id: String,
    pub spec: Spec,
    /// Join the sandbox's shared PID namespace instead of the spec's.
    pub sandbox_pidns: bool,
}

/// A CreateSandbox request: what of it the agent uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sandbox {
    pub id: String,
    pub hostname: String,
    pub dns: Vec<String>,
    pub sandbox_pidns: bool,
}

/// Which processes a signal goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalTarget {
    /// The one process.
    Process,
    /// Every process of the container (SIGKILL with an empty exec id).
    AllOfContainer,
}

/// The container side of the agent. Every method may be called from several tasks at once.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    async fn create_sandbox(&self, sandbox: Sandbox) -> Result<()>;
    /// Every container is removed.
    async fn destroy_sandbox(&self) -> Result<()>;

    /// Creates the container and its init process, stopped before the user's program
    /// (StartContainer runs it). Stdio: pipes held by the agent, or a pty when
    /// `process.terminal`.
    async fn create_container(&self, req: CreateContainer) -> Result<()>;
    async fn start_container(&self, container_id: &str) -> Result<()>;
    /// Kills what is left, waits for it (at most `timeout`, None: for ever), deletes.
    async fn remove_container(&self, container_id: &str, timeout: Option<Duration>) -> Result<()>;
    /// Creates and starts a process in the container.
    async fn exec_process(&self, process: ProcessRef, spec: Process) -> Result<()>;
    async fn signal_process(
        &self,
        process: ProcessRef,
        signal: i32,
        target: SignalTarget,
    ) -> Result<()>;
    /// Blocks until the process exits; its wait status, then the process is forgotten.
    async fn wait_process(&self, process: ProcessRef) -> Result<i32>;
    async fn update_container(&self, container_id: &str, resources: LinuxResources) -> Result<()>;
    async fn stats_container(&self, container_id: &str) -> Result<cgroups::Stats>;
    async fn pause_container(&self, container_id: &str) -> Result<()>;
    async fn resume_container(&self, container_id: &str) -> Result<()>;

    /// Writes all of `data`; empty data closes stdin. Returns the count written.
    async fn write_stdin(&self, process: ProcessRef, data: Vec<u8>) -> Result<usize>;
    /// Blocks until there is output; at most `max` bytes; empty: end of file.
    async fn read_stdout(&self, process: ProcessRef, max: usize) -> Result<Vec<u8>>;
    async fn read_stderr(&self, process: ProcessRef, max: usize) -> Result<Vec<u8>>;
    async fn close_stdin(&self, process: ProcessRef) -> Result<()>;
    async fn tty_win_resize(&self, process: ProcessRef, rows: u16, columns: u16) -> Result<()>;

    /// Blocks until a container of the sandbox is OOM-killed; its id.
    async fn get_oom_event(&self) -> Result<String>;
}

/// A backend without containers: sandbox calls succeed (there is nothing to set up or tear
/// down), container calls answer UNIMPLEMENTED saying why.
#[derive(Debug, Default)]
pub struct Unwired;

fn unwired<T>(rpc: &str) -> Result<T> {
    Err(AgentError::Unimplemented(format!(
        "{rpc}: runr-agent serves no containers yet (its supervisor is not wired)"
    )))
}

#[async_trait]
impl Backend for Unwired {
    async fn create_sandbox(&self, _: Sandbox) -> Result<()> {
        Ok(())
    }
    async fn destroy_sandbox(&self) -> Result<()> {
        Ok(())
    }
    async fn create_container(&self, _: CreateContainer) -> Result<()> {
        unwired("CreateContainer")
    }
    async fn start_container(&self, _: &str) -> Result<()> {
        unwired("StartContainer")
    }
    async fn remove_container(&self, _: &str, _: Option<Duration>) -> Result<()> {
        unwired("RemoveContainer")
    }
    async fn exec_process(&self, _: ProcessRef, _: Process) -> Result<()> {
        unwired("ExecProcess")
    }
    async fn signal_process(&self, _: ProcessRef, _: i32, _: SignalTarget) -> Result<()> {
        unwired("SignalProcess")
    }
    async fn wait_process(&self, _: ProcessRef) -> Result<i32> {
        unwired("WaitProcess")
    }
    async fn update_container(&self, _: &str, _: LinuxResources) -> Result<()> {
        unwired("UpdateContainer")
    }
    async fn stats_container(&self, _: &str) -> Result<cgroups::Stats> {
        unwired("StatsContainer")
    }
    async fn pause_container(&self, _: &str) -> Result<()> {
        unwired("PauseContainer")
    }
    async fn resume_container(&self, _: &str) -> Result<()> {
        unwired("ResumeContainer")
    }
    async fn write_stdin(&self, _: ProcessRef, _: Vec<u8>) -> Result<usize> {
        unwired("WriteStdin")
    }
    async fn read_stdout(&self, _: ProcessRef, _: usize) -> Result<Vec<u8>> {
        unwired("ReadStdout")
    }
    async fn read_stderr(&self, _: ProcessRef, _: usize) -> Result<Vec<u8>> {
        unwired("ReadStderr")
    }
    async fn close_stdin(&self, _: ProcessRef) -> Result<()> {
        unwired("CloseStdin")
    }
    async fn tty_win_resize(&self, _: ProcessRef, _: u16, _: u16) -> Result<()> {
        unwired("TtyWinResize")
    }
    async fn get_oom_event(&self) -> Result<String> {
        unwired("GetOOMEvent")
    }
}
