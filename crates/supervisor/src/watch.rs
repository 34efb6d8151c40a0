//! The tasks that watch the kernel for a container: one reaper per process (its pidfd turns
//! readable at exit, then that one process is reaped: never `waitpid(-1)`, so no other
//! child of the program is touched), and one OOM watcher per container.

use crate::event::{Event, ExitInfo};
use crate::table::Process;
use cgroups::OomWatch;
use container::ExitStatus;
use std::os::fd::{AsRawFd, RawFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::sync::broadcast;

/// The status recorded when a process's real one cannot be had (someone else reaped it).
pub const UNKNOWN_STATUS: i32 = 255;

/// How often a process whose pidfd cannot be watched is checked on.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Where a reaper reports to.
#[derive(Debug, Clone)]
pub(crate) struct Reporter {
    pub(crate) id: String,
    pub(crate) events: broadcast::Sender<Event>,
    pub(crate) gate: Arc<tokio::sync::Mutex<()>>,
    /// The container's OOM kills; `None` for a process whose container is gone.
    pub(crate) oom: Option<Arc<OomKills>>,
}

impl Reporter {
    /// Send `event`, ignoring whether anyone listens.
    pub(crate) fn emit(&self, event: Event) {
        let _ = self.events.send(event);
    }

    /// Send an `Oom` for each OOM kill in the container not reported yet; how many. Call
    /// it with the gate held.
    fn report_oom_kills(&self) -> u64 {
        let Some(oom) = &self.oom else { return 0 };
        let new = oom.take_new();
        for _ in 0..new {
            self.emit(Event::Oom {
                id: self.id.clone(),
            });
        }
        new
    }
}

/// The OOM kills in a container's cgroup, and how many of them were reported.
#[derive(Debug)]
pub(crate) struct OomKills {
    cgroup: CgroupRef,
    reported: std::sync::Mutex<u64>,
}

impl OomKills {
    /// Those of now are not reported (a fresh cgroup has none).
    pub(crate) fn new(cgroup: CgroupRef) -> OomKills {
        let reported = std::sync::Mutex::new(cgroup.oom_kills());
        OomKills { cgroup, reported }
    }

    /// How many kills happened since the last call (none once the cgroup is gone).
    fn take_new(&self) -> u64 {
        let now = self.cgroup.oom_kills();
        let mut reported = self.reported.lock().unwrap_or_else(|e| e.into_inner());
        let new = now.saturating_sub(*reported);
        *reported = (*reported).max(now);
        new
    }
}

/// Wait for `process` to end, reap it, record its status and send its `Exit`.
pub(crate) async fn reap(process: Arc<Process>, to: Reporter, leftovers: Option<CgroupRef>) {
    let ended = exit_status(&process).await;
    if let Some(cgroup) = leftovers {
        cgroup.kill_all(&to.id);
    }
    let status = ended.map_or(UNKNOWN_STATUS, ExitStatus::code);
    let info = ExitInfo {
        status,
        signal: ended.and_then(ExitStatus::signal),
        exited_at: SystemTime::now(),
    };
    let _gate = to.gate.lock().await;
    // The kernel counts an OOM kill before its victim dies: the kill that ended this
    // process is reported before its exit.
    to.report_oom_kills();
    // The event first: whoever the recorded status wakes (a delete) sends its own events
    // after this one.
    to.emit(Event::Exit {
        id: to.id.clone(),
        exec_id: process.exec_id.clone(),
        pid: process.pid(),
        status,
        exited_at: info.exited_at,
    });
    process.exit.send_replace(Some(info));
    // Let go of the process (its pidfd, its streams) before the gate: once a delete has
    // the gate after this, the table holds the last reference.
    drop(process);
    drop(_gate);
}

/// How the process ended, once it has; it is reaped. `None`: its status cannot be had.
async fn exit_status(process: &Process) -> Option<ExitStatus> {
    let pid = process.pid();
    if let Err(e) = pidfd_readable(process).await {
        tracing::warn!("process {pid}: cannot watch its pidfd ({e}); polling it instead");
    }
    loop {
        match process.handle.try_wait_status() {
            Ok(Some(status)) => return Some(status),
            Ok(None) => tokio::time::sleep(POLL_INTERVAL).await,
            Err(e) => {
                tracing::error!("process {pid} ended with no status to be had: {e}");
                return None;
            }
        }
    }
}

/// Resolves once the process's pidfd is readable, that is once it has exited.
async fn pidfd_readable(process: &Process) -> std::io::Result<()> {
    let pidfd = process.handle.pidfd().try_clone_to_owned()?;
    // SAFETY: the AsyncFd owns this duplicate, so the descriptor stays open and refers to
    // the same pidfd for as long as the AsyncFd lives.
    let fd = unsafe { AsyncFd::register_with_interest(pidfd, Interest::READABLE) }
        .map_err(|e| e.into_parts().1)?;
    let _ready = fd.readable().await?;
    Ok(())
}

/// A container's cgroup, as its saved state names it.
#[derive(Debug, Clone)]
pub(crate) struct CgroupRef {
    pub(crate) paths: Vec<(String, PathBuf)>,
    pub(crate) systemd_unit: Option<String>,
}

impl CgroupRef {
    /// SIGKILL every process in it (one pass: they die on their own time).
    fn kill_all(&self, id: &str) {
        let cgroup = cgroups::from_saved(self.paths.clone(), self.systemd_unit.clone());
        match cgroup.pids() {
            Ok(pids) => {
                for pid in pids {
                    // SAFETY: kill(2) with integer arguments.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
            Err(e) => tracing::warn!("container {id}: kill what its init left: {e}"),
        }
    }

    /// How many processes the OOM killer has killed in it (0 once it is gone).
    fn oom_kills(&self) -> u64 {
        cgroups::from_saved(self.paths.clone(), self.systemd_unit.clone()).oom_kill_count()
    }
}

/// An [`OomWatch`] as tokio's reactor wants it.
struct OomFd(OomWatch);

impl AsRawFd for OomFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

/// Send an `Oom` for each OOM kill in the container's cgroup as it happens, until aborted.
/// The watch's descriptor also turns readable for things that are not kills (cgroup v1
/// signals an OOM condition, and the cgroup's removal): the cgroup's kill count decides.
pub(crate) async fn report_oom_kills(watch: OomWatch, to: Reporter) {
    // SAFETY: the AsyncFd owns the OomWatch, which owns the descriptor: it stays open and
    // the same for as long as the AsyncFd lives.
    let fd = unsafe { AsyncFd::register_with_interest(OomFd(watch), Interest::READABLE) };
    let mut fd = match fd {
        Ok(fd) => fd,
        Err(e) => {
            tracing::warn!("container {}: no OOM events: {}", to.id, e.into_parts().1);
            return;
        }
    };
    loop {
        let mut ready = match fd.readable_mut().await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!("container {}: OOM events end: {e}", to.id);
                return;
            }
        };
        ready.get_inner_mut().0.take();
        ready.clear_ready();
        report_coming_kill(&to).await;
    }
}

/// After an OOM notification: report the kill, which cgroup v1 counts only after it has
/// notified (as the OOM begins), so the count is looked at again for a moment.
async fn report_coming_kill(to: &Reporter) {
    for delay_ms in [0, 5, 20, 100, 400] {
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        let _gate = to.gate.lock().await;
        if to.report_oom_kills() > 0 {
            return;
        }
    }
}
