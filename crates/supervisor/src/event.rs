//! What the supervisor reports as it happens: lifecycle changes, exits and OOM kills.

use std::time::SystemTime;

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitInfo {
    /// Its exit status, or 128 + N if signal N killed it.
    pub status: i32,
    /// The signal that killed it, if one did (`status` cannot tell an `exit 137` from a
    /// SIGKILL; Kata's agent API reports the signal's number).
    pub signal: Option<i32>,
    /// When the supervisor saw it end.
    pub exited_at: SystemTime,
}

/// One thing that happened to a container or one of its processes. A container's events
/// arrive in the order they happened (its `Exit` after its `Started`, `Deleted` last).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The container exists; its init `pid` waits to be started.
    Created { id: String, pid: i32 },
    /// The container's program runs.
    Started { id: String, pid: i32 },
    /// A process `exec_id` was added to the container.
    ExecAdded { id: String, exec_id: String },
    /// That process runs as `pid`.
    ExecStarted {
        id: String,
        exec_id: String,
        pid: i32,
    },
    /// A process ended: the init has `exec_id` equal to `id`.
    Exit {
        id: String,
        exec_id: String,
        pid: i32,
        status: i32,
        exited_at: SystemTime,
    },
    /// The kernel's OOM killer killed a process of the container.
    Oom { id: String },
    /// Every process of the container is frozen.
    Paused { id: String },
    /// The container's processes run again.
    Resumed { id: String },
    /// The container is gone; its init had `pid` and ended as `status`.
    Deleted {
        id: String,
        pid: i32,
        status: i32,
        exited_at: SystemTime,
    },
}
