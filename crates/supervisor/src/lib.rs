//! The supervisor core of runr's long-lived front ends (an agent behind Kata's API, a shim
//! behind containerd's): a table of containers and their processes keyed by (container id,
//! exec id), their stdio (pipes or a pty master), exit statuses kept until asked for, and
//! an event stream.
//!
//! Containers are created through the library's [`container::Spawner`], which the program
//! starts while it is still single-threaded (first thing in `main`, before the tokio
//! runtime); every container process is then the program's child, and the supervisor reaps
//! each one through its own pidfd, never with `waitpid(-1)`. A program that keeps one
//! thread (a current-thread runtime, as containerd-shim-runr-v2) may use an in-process
//! spawner ([`container::Spawner::in_process`]) instead: the supervisor then calls the
//! library in that thread, not on tokio's blocking pool.
//!
//! What a front end can count on:
//! - A container's events come in the order things happened: `Created` first, the init's
//!   `Exit` after its `Started`, an exec'd process's `Exit` after its `ExecStarted`, an
//!   `Oom` before the `Exit` of the process it killed, `Deleted` last.
//! - An exit status is kept until the process is removed ([`Supervisor::remove_process`],
//!   [`Supervisor::delete`]): every waiter, however late, gets the same [`ExitInfo`].
//! - Output is never cut short: a reader gets end-of-file after everything the process
//!   (and whatever inherited its stdout) wrote, whenever it reads.
//! - Once `delete` returns, nothing of the container is left: no state, no cgroup, no
//!   process to reap, no descriptor.
//! - An operation whose caller stops waiting (a cancelled RPC) still completes, so the table
//!   always matches the state root.
//!
//! ```no_run
//! use std::sync::Arc;
//! use supervisor::{Output, Stdio, Supervisor};
//!
//! fn main() {
//!     // First, while the program has one thread.
//!     let spawner = Arc::new(container::Spawner::start().expect("start the spawner"));
//!     let runtime = tokio::runtime::Builder::new_multi_thread()
//!         .enable_all()
//!         .build()
//!         .unwrap();
//!     runtime.block_on(async {
//!         let sup = Supervisor::new(spawner, "/run/runr".into());
//!         let mut events = sup.subscribe();
//!         sup.create("web", "/bundles/web".as_ref(), Stdio::Piped).await.unwrap();
//!         sup.start("web").await.unwrap();
//!         let out = sup.read_output("web", "web", Output::Stdout, 4096).await.unwrap();
//!         println!("{}", String::from_utf8_lossy(&out));
//!         let exit = sup.wait("web", "web").await.unwrap();
//!         println!("exited with {}", exit.status);
//!         sup.delete("web", false).await.unwrap();
//!         while let Ok(event) = events.try_recv() {
//!             println!("{event:?}");
//!         }
//!     });
//! }
//! ```
//!
//! - [`Supervisor`] (`supervisor`): the operations; `lifecycle`: those that change the
//!   table (create, start, exec, delete).
//! - `checkpoint`: checkpoint and restore (CRIU).
//! - `table`: the table of containers and processes.
//! - `watch`: the reaper of each process and the OOM watcher of each container.
//! - [`Stdio`], [`OutputReader`] (`io`): a process's streams.
//! - [`Event`], [`ExitInfo`] (`event`), [`Error`] (`error`).

mod checkpoint;
mod error;
mod event;
mod io;
mod lifecycle;
mod supervisor;
mod table;
mod watch;

pub use error::{Error, Result};
pub use event::{Event, ExitInfo};
pub use io::{Output, OutputReader, Stdio};
pub use supervisor::{ContainerState, Supervisor};
pub use watch::UNKNOWN_STATUS;
