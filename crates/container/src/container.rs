//! A container as the state store knows it: its saved state under `--root/<id>`, a status
//! derived from the live init, and the operations on an existing container (start, kill,
//! delete, processes).
//!
//! The status is never stored: the init alive (same pid *and* start time) with the exec
//! fifo present is `created`; alive without it, `running` (or `paused` if frozen); otherwise
//! `stopped`. So a container whose init died is `stopped` without anyone writing that down,
//! and only `create` writes state.json.

use crate::error::{Context, Error, Result, WrongStatus};
use crate::hooks::{self, Kind};
use crate::notify::NotifyRelay;
use crate::state::{lock_dir, OciState, SavedState, Status, EXEC_FIFO, OCI_VERSION};
use crate::sys;
use cgroups::{FreezerState, Manager};
use oci_spec::runtime::LinuxResources;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// An existing container, loaded from the state store. While a `Container` is alive its
/// state directory is locked, so commands on one id run one after the other.
pub struct Container {
    dir: PathBuf,
    state: SavedState,
    _lock: Option<File>,
    /// The pty master, for a foreground container with a terminal (just created).
    console: Option<std::os::fd::OwnedFd>,
    /// The caller's ends of the init's piped stdio (just created).
    io: crate::process::stdio::ProcessIo,
}

impl Container {
    /// Load and lock container `id` under `root`.
    pub fn load(root: &Path, id: &str) -> Result<Container> {
        crate::config::validate_id(id)?;
        let dir = root.join(id);
        let lock = lock_dir(&dir)?;
        // Whoever held the lock before us may have deleted the container meanwhile.
        let mut c = Self::read(&dir)?;
        c._lock = Some(lock);
        Ok(c)
    }

    /// Load without locking (for `list`, which must never wait on a busy container).
    pub fn load_unlocked(root: &Path, id: &str) -> Result<Container> {
        crate::config::validate_id(id)?;
        Self::read(&root.join(id))
    }

    pub(crate) fn read(dir: &Path) -> Result<Container> {
        Ok(Container {
            dir: dir.into(),
            state: SavedState::read(dir)?,
            _lock: None,
            console: None,
            io: Default::default(),
        })
    }

    pub(crate) fn with_lock(mut self, lock: File) -> Container {
        self._lock = Some(lock);
        self
    }

    pub(crate) fn new_created(
        dir: PathBuf,
        state: SavedState,
        lock: File,
        console: Option<std::os::fd::OwnedFd>,
        io: crate::process::stdio::ProcessIo,
    ) -> Container {
        Container {
            dir,
            state,
            _lock: Some(lock),
            console,
            io,
        }
    }

    /// The caller's ends of the init's stdio, for a container just created with
    /// [`crate::Stdio::Piped`].
    pub fn take_io(&mut self) -> crate::process::stdio::ProcessIo {
        std::mem::take(&mut self.io)
    }

    /// A handle on the init, for the process that created it (its parent): wait and
    /// signal act on the init alone. `None` once it has gone.
    pub fn init_handle(&mut self) -> Option<crate::ProcessHandle> {
        let pidfd = self.init_pidfd()?;
        Some(crate::ProcessHandle::new(
            self.state.init_pid,
            pidfd,
            self.take_io(),
            self.take_console(),
        ))
    }

    /// The pty master of a container created in the foreground with a terminal.
    pub fn take_console(&mut self) -> Option<std::os::fd::OwnedFd> {
        self.console.take()
    }

    /// The state directory's lock, for a spawner's worker to hand to its caller.
    pub(crate) fn take_lock(&mut self) -> Option<File> {
        self._lock.take()
    }

    /// Let other commands at this container (the foreground `run` does while it waits).
    pub fn unlock(&mut self) {
        self._lock = None;
    }

    pub fn id(&self) -> &str {
        &self.state.id
    }

    pub fn saved(&self) -> &SavedState {
        &self.state
    }

    /// The state directory (`--root/<id>`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn cgroup(&self) -> Box<dyn Manager> {
        cgroups::from_saved(
            self.state.cgroup_paths.clone(),
            self.state.systemd_unit.clone(),
        )
    }

    fn init_alive(&self) -> bool {
        self.state.init_pid > 0
            && matches!(sys::process_start(self.state.init_pid),
                Some((start, false)) if start == self.state.init_start_time)
    }

    pub fn status(&self) -> Status {
        if !self.init_alive() {
            return Status::Stopped;
        }
        // A created container can be paused too; frozen wins.
        if self.cgroup().freezer().ok() == Some(FreezerState::Frozen) {
            return Status::Paused;
        }
        if self.dir.join(EXEC_FIFO).exists() {
            return Status::Created;
        }
        Status::Running
    }

    /// Freeze every process of a created or running container.
    pub fn pause(&self) -> Result<()> {
        match self.status() {
            Status::Created | Status::Running => {
                Ok(self.cgroup().set_freezer(FreezerState::Frozen)?)
            }
            _ => Err(Error::Status(WrongStatus::NotRunning)),
        }
    }

    /// Change the resources of a live container: the fields `update` sets are written to its
    /// cgroup, then recorded in its saved config. If the kernel refuses a value, what was
    /// written before it is set back, so the container is left as it was.
    pub fn update(&mut self, update: &LinuxResources) -> Result<()> {
        if self.status() == Status::Stopped {
            return Err(Error::Status(WrongStatus::NotRunning));
        }
        let update = &cgroups::resources::without_unset_zeros(update);
        let mut linux = self.state.config.linux().clone().unwrap_or_default();
        let old = linux.resources().clone().unwrap_or_default();
        let cgroup = self.cgroup();
        if let Err(e) = cgroup.update(update) {
            let back = cgroups::resources::previous_values(&old, update);
            if let Err(r) = cgroup.update(&back) {
                tracing::warn!("setting the old values back failed too: {r}");
            }
            return Err(e.into());
        }
        let mut new = old;
        cgroups::resources::merge(&mut new, update);
        linux.set_resources(Some(new));
        self.state.config.set_linux(Some(linux));
        self.state.write(&self.dir)
    }

    /// Resource usage of the container's cgroup.
    pub fn stats(&self) -> Result<cgroups::Stats> {
        if self.status() == Status::Stopped {
            return Err(Error::Status(WrongStatus::NotRunningId(
                self.state.id.clone(),
            )));
        }
        Ok(self.cgroup().stats()?)
    }

    /// Report `Stats` every `interval` and each OOM kill as it happens, until the init exits
    /// (or `emit` fails, e.g. because its reader went away).
    pub fn watch_events(
        &self,
        interval: Duration,
        mut emit: impl FnMut(Event) -> Result<()>,
    ) -> Result<()> {
        let pidfd = self
            .init_pidfd()
            .ok_or_else(|| Error::Status(WrongStatus::NotRunningId(self.state.id.clone())))?;
        let cgroup = self.cgroup();
        let mut oom = match cgroup.oom_watch() {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!("no OOM events: {e}");
                None
            }
        };
        let ms = interval.as_millis().clamp(1, i32::MAX as u128) as i32;
        loop {
            let mut fds = vec![pidfd.as_raw_fd()];
            fds.extend(oom.as_ref().map(|w| w.as_raw_fd()));
            let ready = sys::poll_in(&fds, ms).ctx(|| "poll for container events")?;
            if ready[0] {
                return Ok(());
            }
            if let Some(w) = oom.as_mut().filter(|_| ready.get(1) == Some(&true)) {
                for _ in 0..w.take() {
                    emit(Event::Oom)?;
                }
            }
            if !ready.contains(&true) {
                emit(Event::Stats(Box::new(cgroup.stats()?)))?;
            }
        }
    }

    /// Thaw a paused container.
    pub fn resume(&self) -> Result<()> {
        match self.status() {
            Status::Paused => Ok(self.cgroup().set_freezer(FreezerState::Thawed)?),
            _ => Err(Error::Status(WrongStatus::NotPaused)),
        }
    }

    /// The init's host pid while it lives.
    pub fn pid(&self) -> Option<i32> {
        self.init_alive().then_some(self.state.init_pid)
    }

    /// The state `runr state` prints: pid 0 once the init has died.
    pub fn oci_state(&self) -> OciState {
        let status = self.status();
        let pid = match status {
            Status::Stopped => 0,
            _ => self.state.init_pid,
        };
        self.state_as(status, pid)
    }

    /// The state hooks (and seccomp agents) are given at lifecycle point `status`: the
    /// recorded init pid, also after the init has died (poststop).
    pub(crate) fn hook_state(&self, status: Status) -> OciState {
        self.state_as(status, self.state.init_pid)
    }

    fn state_as(&self, status: Status, pid: i32) -> OciState {
        OciState {
            oci_version: OCI_VERSION.into(),
            id: self.state.id.clone(),
            pid,
            status,
            bundle: self.state.bundle.clone(),
            rootfs: self.state.rootfs.clone(),
            created: self.state.created.clone(),
            owner: String::new(),
            annotations: self.state.annotations.clone(),
        }
    }

    /// A pidfd for the init, checked to be our init and not a recycled pid.
    pub(crate) fn init_pidfd(&self) -> Option<std::os::fd::OwnedFd> {
        let fd = sys::pidfd_open(self.state.init_pid).ok()?;
        // The pidfd pins the process: if the start time matches now, it is ours.
        self.init_alive().then_some(fd)
    }

    /// Let the init exec the user's program; returns once it has (or failed to). Poststart
    /// hooks failing are warnings, returned for the caller to show. With a notify socket,
    /// the relay is returned too: the caller waits for readiness ([`Container::wait_ready`])
    /// or relays it while it does other things.
    pub fn start(&self) -> Result<Started> {
        // Pin the init before opening the fifo: the open releases it, and a program like
        // `true` may have exec'd and exited before we could look at it afterwards.
        let pidfd = self
            .init_pidfd()
            .ok_or(Error::Status(WrongStatus::StartStopped))?;
        if self.cgroup().freezer()? == FreezerState::Frozen {
            return Err(Error::Status(WrongStatus::StartPaused));
        }
        // Bound before the program runs, so nothing it sends is lost.
        let notify = match &self.state.notify_socket {
            Some(host) => Some(NotifyRelay::bind(&self.dir, host, self.state.init_pid)?),
            None => None,
        };
        // The fifo exists exactly while the container is `created`.
        let fifo_path = self.dir.join(EXEC_FIFO);
        let fifo = match rustix::fs::open(
            &fifo_path,
            rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::NONBLOCK | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        ) {
            Ok(f) => f,
            Err(rustix::io::Errno::NOENT) => return Err(Error::Status(WrongStatus::StartRunning)),
            Err(e) => return Err(e).ctx(|| format!("open exec fifo {}", fifo_path.display())),
        };
        let report = read_fifo(&fifo, &pidfd)?;
        // Either way the container has left `created`.
        let _ = std::fs::remove_file(&fifo_path);
        match report {
            FifoReport::Execed => {}
            // As with runc: the error is logged, the container has stopped, and the
            // lifecycle goes on (poststart now, poststop at delete).
            FifoReport::Failed(msg) if msg.starts_with(hooks::START_HOOK_FAILED) => {
                tracing::error!("{}", &msg[hooks::START_HOOK_FAILED.len()..]);
                return Ok(self.after_start(notify));
            }
            FifoReport::Failed(msg) => return Err(Error::init(msg)),
            FifoReport::InitDied => {
                return Err(Error::init(
                    self.explain_init_death("before it could start"),
                ));
            }
        }
        // Killed by the OOM killer during its exec, the init looks like it started, and the
        // kill may still be landing: an OOM kill in this (fresh) cgroup plus the init's death
        // within a moment is the sign.
        if self.cgroup().oom_kill_count() > 0
            && sys::pidfd_wait_exit(&pidfd, Some(Duration::from_millis(200))).unwrap_or(false)
        {
            return Err(Error::init(oom_message("while starting")));
        }
        Ok(self.after_start(notify))
    }

    /// The poststart hooks; their failures are warnings.
    fn after_start(&self, notify: Option<NotifyRelay>) -> Started {
        let warnings = hooks::run_all_warn(
            Kind::Poststart,
            self.state.config.hooks().as_ref(),
            &self.hook_state(Status::Running),
        );
        Started { warnings, notify }
    }

    /// Relay the program's notifications until it says READY=1 (or its init exits). The
    /// container is unlocked first: others may look at it while it gets ready.
    pub fn wait_ready(&mut self, relay: &NotifyRelay) -> Result<()> {
        self.unlock();
        match self.init_pidfd() {
            Some(pidfd) => relay.wait_ready(&pidfd),
            None => Ok(()),
        }
    }

    fn explain_init_death(&self, when: &str) -> String {
        if self.cgroup().oom_kill_count() > 0 {
            oom_message(when)
        } else {
            format!("the container's init exited {when}")
        }
    }

    /// Send `signal` to the init, or with `all` to every process in the container's cgroup:
    /// also once the init has exited (stopped), for what it left running without a pid
    /// namespace of its own to end with it.
    pub fn kill(&self, signal: i32, all: bool) -> Result<()> {
        let status = self.status();
        if status == Status::Stopped && !all {
            return Err(Error::Status(WrongStatus::NotRunning));
        }
        if all {
            let cgroup = self.cgroup();
            if status == Status::Stopped {
                // No cgroup (none kept, or removed since): nothing left to find.
                if cgroup.paths().iter().all(|(_, dir)| !dir.exists()) {
                    return Ok(());
                }
                if cgroup.pids()?.is_empty() {
                    return Ok(());
                }
            }
            // Frozen, nothing can fork between the listing and the signal. A container
            // paused by its user stays paused (except for SIGKILL, below).
            let freeze = status != Status::Paused && cgroup.has_freezer();
            if freeze {
                cgroup.set_freezer(FreezerState::Frozen)?;
            }
            let signalled = signal_all(cgroup.as_ref(), signal);
            if freeze {
                cgroup.set_freezer(FreezerState::Thawed)?;
            }
            signalled?;
        } else {
            let pidfd = self
                .init_pidfd()
                .ok_or(Error::Status(WrongStatus::NotRunning))?;
            sys::pidfd_send_signal(&pidfd, signal).ctx(|| {
                format!(
                    "send signal {signal} to the container init (pid {})",
                    self.state.init_pid
                )
            })?;
        }
        // A frozen process only acts on SIGKILL once thawed.
        if status == Status::Paused && signal == libc::SIGKILL {
            self.cgroup().set_freezer(FreezerState::Thawed)?;
        }
        Ok(())
    }

    /// Host pids of every process in the container.
    pub fn processes(&self) -> Result<Vec<i32>> {
        Ok(self.cgroup().pids()?)
    }

    /// Remove the container. A created one is killed first; a running or paused one only
    /// with `force`. Poststop hooks run last; their failures are returned as warnings.
    pub fn delete(self, force: bool) -> Result<Vec<String>> {
        let status = self.status();
        match status {
            Status::Stopped => {}
            Status::Created => self.kill_init_and_wait()?,
            Status::Running | Status::Paused | Status::Creating if force => {
                self.kill_init_and_wait()?
            }
            _ => {
                return Err(Error::Status(WrongStatus::DeleteNotStopped {
                    id: self.state.id.clone(),
                    status,
                }))
            }
        }
        let cgroup = self.cgroup();
        if !self.state.own_pid_ns && !cgroup.paths().is_empty() {
            // Without a pid namespace, the init's death does not end the other processes.
            kill_all_and_wait(cgroup.as_ref())?;
        }
        cgroup.destroy()?;
        if let Some(id) = self.state.rootfs_bind_mount_id {
            crate::rootfs::detach_inherited_ns_bind(&self.state.rootfs, id)?;
        }
        crate::state::remove_state_dir(&self.dir)
            .ctx(|| format!("remove state directory {}", self.dir.display()))?;
        Ok(hooks::run_all_warn(
            Kind::Poststop,
            self.state.config.hooks().as_ref(),
            &self.hook_state(Status::Stopped),
        ))
    }

    fn kill_init_and_wait(&self) -> Result<()> {
        let Some(pidfd) = self.init_pidfd() else {
            return Ok(());
        };
        sys::pidfd_send_signal(&pidfd, libc::SIGKILL).ctx(|| "kill the container init")?;
        // A frozen process only dies once thawed.
        if self.cgroup().freezer().ok() == Some(FreezerState::Frozen) {
            self.cgroup().set_freezer(FreezerState::Thawed)?;
        }
        if !sys::pidfd_wait_exit(&pidfd, Some(Duration::from_secs(10)))
            .ctx(|| "wait for the container init")?
        {
            return Err(Error::Timeout(format!(
                "the container init (pid {}) did not die within 10s of SIGKILL",
                self.state.init_pid
            )));
        }
        Ok(())
    }
}

/// What [`Container::watch_events`] reports.
#[derive(Debug)]
pub enum Event {
    Stats(Box<cgroups::Stats>),
    Oom,
}

/// What [`Container::start`] leaves the caller.
#[derive(Debug)]
pub struct Started {
    /// Poststart hooks that failed.
    pub warnings: Vec<String>,
    /// The readiness relay, if runr was given a NOTIFY_SOCKET at create.
    pub notify: Option<NotifyRelay>,
}

/// Send `signal` to every process in `cgroup`.
fn signal_all(cgroup: &dyn Manager, signal: i32) -> Result<()> {
    for pid in cgroup.pids()? {
        // The raw number: nix's Signal has no real-time signals.
        // SAFETY: kill(2) with integer arguments.
        if unsafe { libc::kill(pid, signal) } != 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::ESRCH) {
                return Err(e).ctx(|| format!("kill pid {pid} with signal {signal}"));
            }
        }
    }
    Ok(())
}

/// SIGKILL every process left in `cgroup` and wait until it is empty.
/// Thaw `cgroup` if it is frozen (a frozen process only dies once thawed).
pub(crate) fn thaw_if_frozen(cgroup: &dyn Manager) -> Result<()> {
    if cgroup.freezer().ok() == Some(FreezerState::Frozen) {
        cgroup.set_freezer(FreezerState::Thawed)?;
    }
    Ok(())
}

pub(crate) fn kill_all_and_wait(cgroup: &dyn Manager) -> Result<()> {
    for _ in 0..200 {
        let pids = cgroup.pids()?;
        if pids.is_empty() {
            return Ok(());
        }
        for pid in pids {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Err(Error::Timeout(
        "processes of the container survived SIGKILL for a second".into(),
    ))
}

pub(crate) fn oom_message(when: &str) -> String {
    format!(
        "the container's init was killed by the OOM killer {when}: its memory limit is too low for it to start"
    )
}

enum FifoReport {
    /// The init exec'd: the fifo closed with nothing written.
    Execed,
    /// The init wrote why it could not exec.
    Failed(String),
    /// The init died before it opened the fifo.
    InitDied,
}

/// Wait for the init's side of the exec fifo: end-of-file (exec), an error text, or the
/// init's death before it ever opened it.
fn read_fifo(fifo: &std::os::fd::OwnedFd, pidfd: &std::os::fd::OwnedFd) -> Result<FifoReport> {
    let mut text = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let ready = sys::poll_in(&[fifo.as_raw_fd(), pidfd.as_raw_fd()], -1)
            .ctx(|| "poll the exec fifo")?;
        if ready[0] {
            match rustix::io::read(fifo, &mut buf) {
                Ok(0) => {
                    return Ok(if text.is_empty() {
                        FifoReport::Execed
                    } else {
                        FifoReport::Failed(String::from_utf8_lossy(&text).into_owned())
                    })
                }
                Ok(n) => text.extend_from_slice(&buf[..n]),
                Err(rustix::io::Errno::AGAIN) | Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(e).ctx(|| "read the exec fifo"),
            }
            continue;
        }
        if ready[1] {
            // The init is gone; anything it wrote is still in the fifo.
            return Ok(match rustix::io::read(fifo, &mut buf) {
                Ok(n) if n > 0 => {
                    text.extend_from_slice(&buf[..n]);
                    FifoReport::Failed(String::from_utf8_lossy(&text).into_owned())
                }
                _ if !text.is_empty() => {
                    FifoReport::Failed(String::from_utf8_lossy(&text).into_owned())
                }
                _ => FifoReport::InitDied,
            });
        }
    }
}
