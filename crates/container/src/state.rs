//! The state store: one directory per container under `--root`, named by its id, holding
//! state.json (written once by `create`, rewritten by `update`), the exec fifo and the early
//! init record. Its existence is what "id in use" means; an exclusive flock on it is what
//! makes commands on one id run one after the other.
//!
//! Only files and locks live here: what a container is and does with them is
//! [`crate::container`], what a create killed part-way leaves is [`crate::remnant`].

use crate::error::{Context, Error, Result};
use oci_spec::runtime::Spec;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

/// Where [`SavedState`] is kept.
pub(crate) const STATE_FILE: &str = "state.json";
/// The fifo the init blocks on until `start`: present exactly while the container is
/// `created`.
pub(crate) const EXEC_FIFO: &str = "exec.fifo";
/// What `create` records before it makes anything: see [`crate::remnant`].
pub(crate) const INIT_RECORD: &str = "init.json";

/// What state.json holds: written once, by `create`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SavedState {
    pub id: String,
    pub init_pid: i32,
    /// Start time of the init (clock ticks since boot): tells a recycled pid from ours.
    pub init_start_time: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    /// RFC 3339 with nanoseconds, UTC.
    pub created: String,
    #[serde(default)]
    pub annotations: HashMap<String, String>,
    /// The config the container was created with: `exec` joins what it set up and applies
    /// its confinement, whatever has happened to the bundle since.
    pub config: Spec,
    /// `--no-new-keyring` was given at create: exec'd processes keep the caller's keyring too.
    #[serde(default)]
    pub no_new_keyring: bool,
    /// The host's NOTIFY_SOCKET, to which `start` relays the program's readiness.
    #[serde(default)]
    pub notify_socket: Option<PathBuf>,
    /// The container's cgroup directory per hierarchy.
    pub cgroup_paths: Vec<(String, PathBuf)>,
    /// The systemd scope that owns the cgroup (`--systemd-cgroup`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub systemd_unit: Option<String>,
    /// The container has a pid namespace of its own: killing its init ends every process.
    pub own_pid_ns: bool,
    /// Without a mount namespace of its own: the id of the rootfs bind under which its
    /// mounts were made in runr's namespace, detached (with them) on delete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rootfs_bind_mount_id: Option<u64>,
}

impl SavedState {
    /// Read the state.json of state directory `dir`. [`Error::NotExist`] if there is none
    /// (no such container, or its create has not finished); [`Error::Config`] if it does not
    /// parse, which [`crate::remnant`] tells from a missing one.
    pub(crate) fn read(dir: &Path) -> Result<SavedState> {
        let path = dir.join(STATE_FILE);
        let text = std::fs::read(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::NotExist,
            _ => Error::Os {
                what: format!("read {}", path.display()),
                source: e,
            },
        })?;
        serde_json::from_slice(&text)
            .map_err(|e| Error::Config(format!("corrupt state file {}: {e}", path.display())))
    }

    /// Write state.json into state directory `dir`, replacing what was there at once.
    pub(crate) fn write(&self, dir: &Path) -> Result<()> {
        write_atomic(
            &dir.join(STATE_FILE),
            &serde_json::to_vec(self).expect("state serializes"),
        )
    }
}

/// Take an exclusive flock on an open state directory.
pub(crate) fn lock_dir(dir: &Path) -> Result<File> {
    let f = open_dir(dir)?;
    flock(&f, dir, libc::LOCK_EX)?;
    Ok(f)
}

pub(crate) fn open_dir(dir: &Path) -> Result<File> {
    File::open(dir).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::NotExist,
        _ => Error::Os {
            what: format!("open state directory {}", dir.display()),
            source: e,
        },
    })
}

/// flock(2) `op` on `f`; `Ok(false)` if LOCK_NB was given and someone else holds it.
pub(crate) fn flock(f: &File, dir: &Path, op: libc::c_int) -> Result<bool> {
    // SAFETY: flock on a descriptor we own; without LOCK_NB it blocks until the lock is ours.
    if unsafe { libc::flock(f.as_raw_fd(), op) } == 0 {
        return Ok(true);
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        return Ok(false);
    }
    Err(e).ctx(|| format!("lock {}", dir.display()))
}

/// The state directory, created exclusively (its existence is what "id in use" means) and
/// locked. 0711: the init, whatever its user, must reach the exec fifo inside.
pub(crate) fn make_state_dir(root: &Path, dir: &Path) -> Result<File> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(root)
        .ctx(|| format!("create state root {}", root.display()))?;
    match std::fs::DirBuilder::new().mode(0o711).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Err(Error::Exists),
        Err(e) => return Err(e).ctx(|| format!("create state directory {}", dir.display())),
    }
    lock_dir(dir).inspect_err(|_| {
        let _ = std::fs::remove_dir_all(dir);
    })
}

/// Write `data` to a temporary file beside `path` and rename it into place, so readers see
/// the old file or the new one, never half of one. No fsync: state lives on tmpfs.
pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, data).ctx(|| format!("write {}", tmp.display()))?;
    std::fs::rename(&tmp, path)
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })
        .ctx(|| format!("rename {} to {}", tmp.display(), path.display()))
}

/// Ids of every container under `root`: each directory named like an id, complete or not
/// (a half-made one is shown as `creating`, see [`crate::remnant`]).
pub fn list_ids(root: &Path) -> Result<Vec<String>> {
    let entries = match std::fs::read_dir(root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).ctx(|| format!("read {}", root.display())),
    };
    let mut ids: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|name| crate::config::validate_id(name).is_ok())
        .collect();
    ids.sort();
    Ok(ids)
}
