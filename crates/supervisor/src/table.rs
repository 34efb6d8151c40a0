//! The supervisor's table: each container it created, and each process of it by exec id
//! (the init's exec id is the container id, as in Kata's API).

use crate::error::{Error, Result};
use crate::event::ExitInfo;
use crate::io::Streams;
use crate::watch::Reporter;
use container::ProcessHandle;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// One process the supervisor started: a container's init or an exec'd process.
#[derive(Debug)]
pub(crate) struct Process {
    pub(crate) exec_id: String,
    pub(crate) handle: ProcessHandle,
    pub(crate) streams: Streams,
    /// `None` while it runs; its status once its reaper has reaped it. Kept until the
    /// process is removed from the table.
    pub(crate) exit: watch::Sender<Option<ExitInfo>>,
}

impl Process {
    pub(crate) fn new(exec_id: String, handle: ProcessHandle, streams: Streams) -> Process {
        Process {
            exec_id,
            handle,
            streams,
            exit: watch::Sender::new(None),
        }
    }

    pub(crate) fn pid(&self) -> i32 {
        self.handle.pid()
    }

    pub(crate) fn exit_info(&self) -> Option<ExitInfo> {
        *self.exit.borrow()
    }

    /// Resolves once the process has ended; `None` if it was removed from the table first.
    pub(crate) async fn exited(&self) -> Option<ExitInfo> {
        wait_exit(self.exit.subscribe()).await
    }
}

/// Resolves with the status `exit` gets, even if that happened long ago.
pub(crate) async fn wait_exit(mut exit: watch::Receiver<Option<ExitInfo>>) -> Option<ExitInfo> {
    exit.wait_for(Option::is_some).await.ok().and_then(|v| *v)
}

/// A container the supervisor created.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) bundle: PathBuf,
    pub(crate) init: Arc<Process>,
    pub(crate) execs: HashMap<String, Arc<Process>>,
    /// Exec ids whose process is being started.
    pub(crate) pending_execs: HashSet<String>,
    /// Where its processes' reapers report; its gate is held while an event of the
    /// container is recorded and sent, and across `start`, so the init's `Exit` never
    /// overtakes its `Started`.
    pub(crate) reporter: Reporter,
    /// The task that reports OOM kills in the container's cgroup.
    pub(crate) oom_task: Option<JoinHandle<()>>,
}

impl Entry {
    pub(crate) fn process(&self, id: &str, exec_id: &str) -> Result<&Arc<Process>> {
        if exec_id == id {
            return Ok(&self.init);
        }
        self.execs
            .get(exec_id)
            .ok_or_else(|| Error::not_found(id, exec_id))
    }

    /// Every process of the container, the init first.
    pub(crate) fn processes(&self) -> Vec<Arc<Process>> {
        std::iter::once(self.init.clone())
            .chain(self.execs.values().cloned())
            .collect()
    }
}

/// Every container, and the ids being created.
#[derive(Debug, Default)]
pub(crate) struct Table {
    pub(crate) containers: HashMap<String, Entry>,
    pub(crate) creating: HashSet<String>,
}

impl Table {
    pub(crate) fn get(&self, id: &str) -> Result<&Entry> {
        self.containers
            .get(id)
            .ok_or_else(|| Error::not_found(id, id))
    }

    pub(crate) fn get_mut(&mut self, id: &str) -> Result<&mut Entry> {
        self.containers
            .get_mut(id)
            .ok_or_else(|| Error::not_found(id, id))
    }

    pub(crate) fn process(&self, id: &str, exec_id: &str) -> Result<Arc<Process>> {
        self.get(id)?.process(id, exec_id).cloned()
    }

    /// Claim `id` for a create, so a second create of it fails at once.
    pub(crate) fn reserve_container(&mut self, id: &str) -> Result<()> {
        if self.containers.contains_key(id) || !self.creating.insert(id.to_string()) {
            return Err(Error::exists(id, id));
        }
        Ok(())
    }

    /// Claim `exec_id` in container `id` for an exec.
    pub(crate) fn reserve_exec(&mut self, id: &str, exec_id: &str) -> Result<()> {
        let entry = self.get_mut(id)?;
        if exec_id == id || entry.execs.contains_key(exec_id) {
            return Err(Error::exists(id, exec_id));
        }
        // The library would refuse it too, but its reason comes back through the spawner
        // as text.
        if entry.init.exit_info().is_some() {
            return Err(Error::FailedPrecondition(format!(
                "cannot exec in container {id}: its init has exited"
            )));
        }
        if !entry.pending_execs.insert(exec_id.to_string()) {
            return Err(Error::exists(id, exec_id));
        }
        Ok(())
    }
}
