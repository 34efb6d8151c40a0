//! The parent's side of a container's processes, and the handle the caller keeps:
//! - `create`: a new container, its init cloned into new namespaces, in named steps with
//!   their undo;
//! - [`exec`]: another process in an existing container;
//! - `spawn`: what both share: the clone, the hand-over of the child's cgroup and ids, the
//!   conversation over the sync channel until it is ready or has exec'd, its end if that
//!   fails;
//! - `sync`: the messages of that conversation; `children`: cloning, killing and reaping;
//! - [`ProcessHandle`] (`handle`): pid, pidfd, signal and wait of one process;
//!   [`Stdio`] (`stdio`): its standard streams.

pub(crate) mod children;
pub(crate) mod create;
pub mod exec;
mod handle;
pub(crate) mod ledger;
mod spawn;
pub(crate) mod stdio;
pub(crate) mod sync;

pub use create::{create, listen_fds_from_env, CreateOptions};
pub use handle::{ExitStatus, ProcessHandle};
pub use stdio::{ProcessIo, Stdio};
