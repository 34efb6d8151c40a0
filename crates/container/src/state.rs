//! The state store: one directory per container under `--root`, named by its id, holding
//! state.json (written once by `create`, rewritten by `update`), the exec fifo and the early
//! init record. Its existence is what "id in use" means; an exclusive flock on it is what
//! makes commands on one id run one after the other.
//!
//! Also here: the OCI "state" object ([`OciState`]) with its [`Status`], in the two forms
//! runr hands out (what `runr state` prints, what hooks read).
//!
//! Only files, locks and these documents live here: what a container is and does with them
//! is [`crate::container`], what a create killed part-way leaves is [`crate::remnant`].

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

/// The OCI runtime spec version runr reports.
pub const OCI_VERSION: &str = "1.2.0";

/// A container's status, as the runtime spec names it. Never stored: derived from the live
/// init (see [`crate::container`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl Status {
    /// The status named as the spec names it.
    pub fn from_name(name: &str) -> Option<Status> {
        [
            Status::Creating,
            Status::Created,
            Status::Running,
            Status::Paused,
            Status::Stopped,
        ]
        .into_iter()
        .find(|s| s.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// As the spec's string ([`Status::as_str`]), the form every state document has.
impl Serialize for Status {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// The runtime spec's "state" object, of which two forms leave runr, each kept as it has
/// always been since engines and hook authors parse them:
/// - serialized as it is: what `runr state` and `runr list` print, field for field as runc
///   prints it (`pid` before `status`, with `rootfs`, `created` and `owner`);
/// - `OciState::for_hooks`: what hooks read on stdin and seccomp agents get, the spec's
///   fields only (`status` before `pid`, no `rootfs`, `created` or `owner`).
///
/// Both leave out `annotations` when there are none.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OciState {
    pub oci_version: String,
    pub id: String,
    pub pid: i32,
    pub status: Status,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub owner: String,
    #[serde(skip_serializing_if = "HashMap::is_empty")]
    pub annotations: HashMap<String, String>,
}

impl OciState {
    /// The form hooks and seccomp agents get (see [`OciState`]).
    pub(crate) fn for_hooks(&self) -> HookForm<'_> {
        HookForm {
            oci_version: &self.oci_version,
            id: &self.id,
            status: self.status,
            pid: self.pid,
            bundle: &self.bundle,
            annotations: &self.annotations,
        }
    }
}

/// [`OciState`] as hooks read it: its fields in this order, and only these.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct HookForm<'a> {
    oci_version: &'a str,
    id: &'a str,
    status: Status,
    pid: i32,
    bundle: &'a Path,
    #[serde(skip_serializing_if = "no_annotations")]
    annotations: &'a HashMap<String, String>,
}

fn no_annotations(a: &&HashMap<String, String>) -> bool {
    a.is_empty()
}

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
    /// The container has a new pid namespace of its own: killing its init ends every process.
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

/// Where a restore binds the container's rootfs for CRIU, in its state directory: the one
/// mount runr ever makes inside a state directory.
pub(crate) const CRIU_ROOT: &str = "criu-root";

/// CRIU's cgroup yard for a restore, in the state directory: the directory where CRIU
/// mounts the cgroup hierarchies it works in (they are detached with the directory).
pub(crate) const CRIU_CGYARD: &str = "criu-cgyard";

/// Remove state directory `dir`, first detaching what a restore killed at any moment may
/// have left mounted there unrecorded: the rootfs bind (`remove_dir_all` must never reach
/// into a container's rootfs through it) and CRIU's cgroup mounts.
pub(crate) fn remove_state_dir(dir: &Path) -> std::io::Result<()> {
    // Not a mount point, or not there: EINVAL or ENOENT, nothing to do.
    let _ = nix::mount::umount2(&dir.join(CRIU_ROOT), nix::mount::MntFlags::MNT_DETACH);
    let _ = remove_cgroup_yard(&dir.join(CRIU_CGYARD));
    std::fs::remove_dir_all(dir)
}

/// Remove a cgroup yard made for CRIU ([`CRIU_CGYARD`]), detaching first whatever CRIU
/// mounted in it (it unmounts nothing in a yard it was given).
pub(crate) fn remove_cgroup_yard(yard: &Path) -> std::io::Result<()> {
    use nix::mount::MntFlags;
    for e in std::fs::read_dir(yard)?.flatten() {
        // Never through a symlink (CRIU makes none; nor should anything else here lead us
        // to a mount of the host's).
        let _ = nix::mount::umount2(&e.path(), MntFlags::MNT_DETACH | MntFlags::UMOUNT_NOFOLLOW);
    }
    std::fs::remove_dir_all(yard)
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
        let _ = remove_state_dir(dir);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn state(annotations: &[(&str, &str)]) -> OciState {
        OciState {
            oci_version: OCI_VERSION.into(),
            id: "ctr".into(),
            pid: 42,
            status: Status::Running,
            bundle: "/b".into(),
            rootfs: "/b/rootfs".into(),
            created: "2026-01-01T00:00:00.000000000Z".into(),
            owner: "root".into(),
            annotations: annotations
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    /// Byte for byte what `runr state` printed before the two state types were one.
    #[test]
    fn state_form_is_unchanged() {
        assert_eq!(
            serde_json::to_string(&state(&[])).unwrap(),
            r#"{"ociVersion":"1.2.0","id":"ctr","pid":42,"status":"running","bundle":"/b","rootfs":"/b/rootfs","created":"2026-01-01T00:00:00.000000000Z","owner":"root"}"#
        );
        assert_eq!(
            serde_json::to_string(&state(&[("a.b", "c")])).unwrap(),
            r#"{"ociVersion":"1.2.0","id":"ctr","pid":42,"status":"running","bundle":"/b","rootfs":"/b/rootfs","created":"2026-01-01T00:00:00.000000000Z","owner":"root","annotations":{"a.b":"c"}}"#
        );
    }

    /// Byte for byte what hooks read (and seccomp agents got) before the two state types
    /// were one.
    #[test]
    fn hook_form_is_unchanged() {
        assert_eq!(
            serde_json::to_string(&state(&[]).for_hooks()).unwrap(),
            r#"{"ociVersion":"1.2.0","id":"ctr","status":"running","pid":42,"bundle":"/b"}"#
        );
        assert_eq!(
            serde_json::to_string(&state(&[("a.b", "c")]).for_hooks()).unwrap(),
            r#"{"ociVersion":"1.2.0","id":"ctr","status":"running","pid":42,"bundle":"/b","annotations":{"a.b":"c"}}"#
        );
        let s = state(&[("a.b", "c")]);
        let agent = serde_json::json!({"ociVersion": s.oci_version, "state": s.for_hooks()});
        assert_eq!(
            serde_json::to_string(&agent).unwrap(),
            r#"{"ociVersion":"1.2.0","state":{"annotations":{"a.b":"c"},"bundle":"/b","id":"ctr","ociVersion":"1.2.0","pid":42,"status":"running"}}"#
        );
    }

    #[test]
    fn status_strings() {
        let all = [
            Status::Creating,
            Status::Created,
            Status::Running,
            Status::Paused,
            Status::Stopped,
        ];
        let json: Vec<String> = all
            .iter()
            .map(|s| serde_json::to_string(s).unwrap())
            .collect();
        assert_eq!(
            json,
            [
                "\"creating\"",
                "\"created\"",
                "\"running\"",
                "\"paused\"",
                "\"stopped\""
            ]
        );
    }
}
