//! Checkpoint and restore through the library's CRIU support (`container::checkpoint`).
//!
//! Both run in the calling program, not in a spawner's worker: CRIU is a program of its own
//! (started with fork and exec, safe in a multi-threaded caller), and a restore's init is
//! made a child of CRIU's caller (`rst_sibling`), which must be the supervisor's program
//! for the supervisor to reap it through its pidfd.

use crate::error::{Error, Result};
use crate::event::Event;
use crate::io::Stdio;
use crate::lifecycle::{check_new_id, keep_created, Created};
use crate::supervisor::{to_completion, Supervisor};
use container::checkpoint::{CheckpointOptions, RestoreOptions};

impl Supervisor {
    /// Dump container `id` (running or paused) with CRIU into `options.criu.image_path`;
    /// the library's warnings. With `leave_running` the container goes on as it was (a
    /// paused one stays paused). Without it CRIU ends its processes and the library removes
    /// its state and cgroup: the supervisor keeps the container in its table, its init's
    /// exit reported as any exit, until [`Supervisor::delete`].
    pub async fn checkpoint(&self, id: &str, options: CheckpointOptions) -> Result<Vec<String>> {
        self.inner.check_exists(id)?;
        let (inner, id) = (self.inner.clone(), id.to_string());
        to_completion(async move {
            inner
                .with_container(&id, "checkpoint", move |c| {
                    container::checkpoint::checkpoint(c, &options)
                })
                .await
        })
        .await
    }

    /// Restore a container from the checkpoint at `options.criu.image_path`, as
    /// `options.create.id` from `options.create.bundle` (its `root`, `detached`,
    /// `console_in_process` and `stdio` are the supervisor's to set); its init's host pid.
    /// The container is running once this returns, and in the table as a created one is:
    /// Created is sent now, Started by [`Supervisor::restored_started`]. `stdio` must be
    /// [`Stdio::Fds`]: the restored init gets them where its own stdio came from outside at
    /// the dump (a terminal cannot be restored through the supervisor yet).
    pub async fn restore_with(&self, options: RestoreOptions, stdio: Stdio) -> Result<i32> {
        if !matches!(stdio, Stdio::Fds { .. }) {
            return Err(Error::InvalidArgument(
                "a restore takes its stdio as descriptors (Stdio::Fds)".into(),
            ));
        }
        let inner = self.inner.clone();
        to_completion(async move {
            let (id, bundle) = (options.create.id.clone(), options.create.bundle.clone());
            inner.table().reserve_container(&id)?;
            let options = RestoreOptions {
                create: container::CreateOptions {
                    root: inner.root.clone(),
                    detached: true,
                    console_in_process: true,
                    stdio: stdio.into_library(),
                    ..options.create
                },
                criu: options.criu,
            };
            let created = inner.blocking(move || restore_container(&options)).await;
            inner.install(id, bundle, created)
        })
        .await
    }

    /// Send Started for a container [`Supervisor::restore_with`] brought back (it runs
    /// already: there is nothing to start); its init's pid.
    pub async fn restored_started(&self, id: &str) -> Result<i32> {
        let to = self.inner.reporter(id)?;
        let pid = self.inner.process(id, id)?.pid();
        let _gate = to.gate.lock().await;
        to.emit(Event::Started {
            id: id.to_string(),
            pid,
        });
        Ok(pid)
    }
}

/// On the blocking pool: the library's restore, then what the supervisor keeps of it.
fn restore_container(options: &RestoreOptions) -> Result<Created> {
    let id = &options.create.id;
    check_new_id(&options.create.root, id)?;
    let c =
        container::checkpoint::restore(options).map_err(|e| Error::library(id, "restore", e))?;
    keep_created(c, "restored")
}
