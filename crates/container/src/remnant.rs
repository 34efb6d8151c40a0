//! What is left of a container without a usable state.json: a create killed part-way (the
//! state is written only at its end), or a state file someone truncated or garbled.
//!
//! `create` writes a small record, `init.json`, before it makes anything outside the state
//! directory (the cgroup paths), and again right after the clone (the init's pid and start
//! time). With it, `delete` removes what such a container left: the init (by pid, checked
//! against its start time so a recycled pid is never killed), its cgroups, the directory.
//! Without it (the record is unreadable too), the cgroup is derived from the id.

use crate::container::{self, Container};
use crate::error::{Context, Error, Result, WrongStatus};
use crate::state::{self, OciState, Status, INIT_RECORD, OCI_VERSION, STATE_FILE};
use crate::sys;
use cgroups::{CgroupConfig, Layout, Manager};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What `create` records early in `init.json` (kept after create: it is what `delete` falls
/// back on if state.json cannot be read).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct InitRecord {
    /// Without a mount namespace: the rootfs and the mount id of the bind that holds every
    /// mount the container made (see `rootfs::bind_in_inherited_ns`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rootfs_bind: Option<(PathBuf, u64)>,
    pub cgroup_paths: Vec<(String, PathBuf)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub systemd_unit: Option<String>,
    pub own_pid_ns: bool,
    /// Made by a restore: CRIU itself and what it was bringing back are in the cgroup, whose
    /// processes all go, whatever the pid namespace.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub criu_restore: bool,
    /// The image directory a restore lets the container's root search (an ACL) and its
    /// mode before: put back if the restore is killed (see `checkpoint::restore`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_acl: Option<(PathBuf, u32)>,
    /// 0 until the init is cloned.
    pub init_pid: i32,
    pub init_start_time: u64,
}

impl InitRecord {
    pub(crate) fn write(&self, path: &Path) -> Result<()> {
        state::write_atomic(path, &serde_json::to_vec(self).expect("record serializes"))
    }

    fn read(dir: &Path) -> Result<InitRecord, String> {
        let path = dir.join(INIT_RECORD);
        let text = std::fs::read(&path).map_err(|e| format!("read {}: {e}", path.display()))?;
        serde_json::from_slice(&text).map_err(|e| format!("parse {}: {e}", path.display()))
    }

    /// The init's pid while the recorded process lives (same pid and start time).
    fn live_init(&self) -> Option<i32> {
        let alive = self.init_pid > 0
            && matches!(sys::process_start(self.init_pid),
                Some((start, false)) if start == self.init_start_time);
        alive.then_some(self.init_pid)
    }
}

/// A container as `delete` finds it.
pub enum Loaded {
    /// A complete state.json.
    Container(Box<Container>),
    /// A directory without a usable state.json.
    Remnant(Remnant),
}

/// A state directory without a usable state.json (see the module doc).
pub struct Remnant {
    dir: PathBuf,
    id: String,
    /// Why state.json is of no use.
    why: String,
    record: Result<InitRecord, String>,
    _lock: Option<File>,
}

/// Load and lock container `id` for `delete`. A lock held by another command on a complete
/// container is waited for; one held while there is no usable state.json is held by a create
/// still at work, which must not have its directory removed under it. A lock nobody holds on
/// such a directory means its creator is dead: the directory is a [`Remnant`].
pub fn load_for_delete(root: &Path, id: &str) -> Result<Loaded> {
    crate::config::validate_id(id)?;
    let dir = root.join(id);
    let lock = state::open_dir(&dir)?;
    if !state::flock(&lock, &dir, libc::LOCK_EX | libc::LOCK_NB)? {
        if Container::read(&dir).is_err() {
            return Err(Error::Status(WrongStatus::StillCreating(id.into())));
        }
        state::flock(&lock, &dir, libc::LOCK_EX)?;
    }
    match Container::read(&dir) {
        Ok(c) => Ok(Loaded::Container(Box::new(c.with_lock(lock)))),
        // Deleted by whoever held the lock before us.
        Err(Error::NotExist) if !dir.exists() => Err(Error::NotExist),
        Err(Error::NotExist) => Ok(Loaded::Remnant(Remnant::open(
            dir,
            id,
            "it has no state.json (its create did not finish)".into(),
            Some(lock),
        ))),
        Err(e @ (Error::Config(_) | Error::Os { .. })) => Ok(Loaded::Remnant(Remnant::open(
            dir,
            id,
            e.to_string(),
            Some(lock),
        ))),
        Err(e) => Err(e),
    }
}

/// Container `id` if its directory holds no usable state.json, without locking (for `list`).
pub fn load_remnant_unlocked(root: &Path, id: &str) -> Result<Remnant> {
    crate::config::validate_id(id)?;
    let dir = root.join(id);
    if !dir.is_dir() {
        return Err(Error::NotExist);
    }
    let why = match Container::read(&dir) {
        Ok(_) => return Err(Error::Status(WrongStatus::Complete(id.into()))),
        Err(e) => e.to_string(),
    };
    Ok(Remnant::open(dir, id, why, None))
}

impl Remnant {
    fn open(dir: PathBuf, id: &str, why: String, lock: Option<File>) -> Remnant {
        let record = InitRecord::read(&dir);
        Remnant {
            dir,
            id: id.into(),
            why,
            record,
            _lock: lock,
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn status(&self) -> Status {
        Status::Creating
    }

    /// Whether a committed container (state.json there, though unreadable) still has its
    /// init: then it may be running the user's program, and only `delete --force` may end it.
    pub fn has_live_committed_init(&self) -> bool {
        self.dir.join(STATE_FILE).exists()
            && self.record.as_ref().is_ok_and(|r| r.live_init().is_some())
    }

    /// The state as `list` shows it: status `creating`, the init's pid while it lives.
    pub fn oci_state(&self) -> OciState {
        OciState {
            oci_version: OCI_VERSION.into(),
            id: self.id.clone(),
            pid: self
                .record
                .as_ref()
                .ok()
                .and_then(|r| r.live_init())
                .unwrap_or(0),
            status: self.status(),
            bundle: PathBuf::new(),
            rootfs: PathBuf::new(),
            created: String::new(),
            owner: String::new(),
            annotations: Default::default(),
        }
    }

    /// Remove what is left: the init, its cgroups, the directory. Returns warnings that say
    /// what was missing; a cgroup that cannot be removed is an error and keeps the directory,
    /// so a later `delete` can try again.
    pub fn delete(self) -> Result<Vec<String>> {
        let mut warnings = vec![format!(
            "container {}: {}; removing what its init record names",
            self.id, self.why
        )];
        let cgroup = match &self.record {
            Ok(r) => {
                kill_verified(r)?;
                let cg = cgroups::from_saved(r.cgroup_paths.clone(), r.systemd_unit.clone());
                // Without a pid namespace the init's death does not end the others.
                if (!r.own_pid_ns || r.criu_restore) && !cg.paths().is_empty() {
                    container::thaw_if_frozen(cg.as_ref())?;
                    container::kill_all_and_wait(cg.as_ref())?;
                }
                Some(cg)
            }
            Err(e) => {
                warnings.push(format!(
                    "no init record ({e}): the processes of the cgroup derived from the id are killed"
                ));
                let cg = derived_cgroup(&self.id);
                match &cg {
                    Some(cg) => {
                        container::thaw_if_frozen(cg.as_ref())?;
                        container::kill_all_and_wait(cg.as_ref())?
                    }
                    None => warnings.push(format!(
                        "no cgroup of container {} found: nothing to remove there",
                        self.id
                    )),
                }
                cg
            }
        };
        if let Some(cg) = cgroup {
            cg.destroy()?;
        }
        if let Some((dir, mode)) = self.record.as_ref().ok().and_then(|r| r.image_acl.as_ref()) {
            crate::checkpoint::take_back_image_acl(dir, *mode);
        }
        if let Some((rootfs, id)) = self
            .record
            .as_ref()
            .ok()
            .and_then(|r| r.rootfs_bind.as_ref())
        {
            crate::rootfs::detach_inherited_ns_bind(rootfs, *id)?;
        }
        let _ = std::fs::remove_file(self.dir.join(STATE_FILE));
        crate::state::remove_state_dir(&self.dir)
            .ctx(|| format!("remove state directory {}", self.dir.display()))?;
        Ok(warnings)
    }
}

/// SIGKILL the recorded init, if the process with its pid is still the one recorded, and
/// wait for it to die.
fn kill_verified(r: &InitRecord) -> Result<()> {
    if r.init_pid <= 0 {
        // Killed before the clone, or just after it: the init dies of its parent's death.
        return Ok(());
    }
    let Ok(pidfd) = sys::pidfd_open(r.init_pid) else {
        return Ok(());
    };
    // The pidfd pins the process: if the start time matches now, it is the init.
    if r.live_init().is_none() {
        return Ok(());
    }
    sys::pidfd_send_signal(&pidfd, libc::SIGKILL)
        .ctx(|| format!("kill the container init (pid {})", r.init_pid))?;
    container::thaw_if_frozen(
        cgroups::from_saved(r.cgroup_paths.clone(), r.systemd_unit.clone()).as_ref(),
    )?;
    if !sys::pidfd_wait_exit(&pidfd, Some(Duration::from_secs(10)))
        .ctx(|| "wait for the container init")?
    {
        return Err(Error::Timeout(format!(
            "the container init (pid {}) did not die within 10s of SIGKILL",
            r.init_pid
        )));
    }
    Ok(())
}

/// The default cgroup of container `id` on this host (`<runr's cgroup>/<id>`), if any of its
/// directories exists.
fn derived_cgroup(id: &str) -> Option<Box<dyn Manager>> {
    let layout = Layout::detect().ok()?;
    let config = CgroupConfig {
        path: None,
        id: id.into(),
        systemd: false,
    };
    let paths: Vec<_> = cgroups::manager(&layout, &config)
        .ok()?
        .paths()
        .into_iter()
        .filter(|(_, d)| d.is_dir())
        .collect();
    (!paths.is_empty()).then(|| cgroups::from_saved(paths, None))
}
