//! Control groups for runr containers.
//!
//! One [`Manager`] trait with an implementation per host layout. The layout is read once per
//! command from `/proc/self/mountinfo` and `/proc/self/cgroup` ([`Layout::detect`]); nothing
//! here scans all of `/proc`.
//!
//! Timing contract with the container library: [`Manager::create`] makes the cgroup and writes
//! every limit while the cgroup is still empty (so no write can fail with EBUSY because of our
//! own usage); [`Manager::enter`] moves the init in right after it is cloned, before it can
//! fork; [`Manager::enter_late`] finishes what must wait until the init's own setup is done
//! (on v1: joining the memory controller, so runr's setup is never charged to the container).

mod error;
mod fsutil;
mod layout;
pub mod v1;

pub use error::CgroupError;
pub use layout::{Hierarchy, Layout};

use oci_spec::runtime::LinuxResources;
use std::path::{Path, PathBuf};

/// Where a container's cgroup lives, as asked for by the config and the command line.
#[derive(Debug, Clone)]
pub struct CgroupConfig {
    /// `linux.cgroupsPath`; `None` means the default: `<runtime's own cgroup>/<id>`.
    pub path: Option<PathBuf>,
    /// Container id, used for the default path.
    pub id: String,
    /// `--systemd-cgroup`.
    pub systemd: bool,
}

/// Freezer state of a container's cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FreezerState {
    Thawed,
    Frozen,
}

/// What a container cgroup can do, whatever the driver behind it.
pub trait Manager {
    /// Create the cgroup and write `resources` while it is still empty.
    fn create(&self, resources: Option<&LinuxResources>) -> Result<(), CgroupError>;
    /// Move `pid` in, everywhere it must be before it can fork.
    fn enter(&self, pid: i32) -> Result<(), CgroupError>;
    /// Finish joining once the init's own setup is done (see the crate docs).
    fn enter_late(&self, pid: i32) -> Result<(), CgroupError>;
    /// Write new limits to a live cgroup.
    fn update(&self, resources: &LinuxResources) -> Result<(), CgroupError>;
    /// Freeze or thaw every process in the cgroup.
    fn set_freezer(&self, state: FreezerState) -> Result<(), CgroupError>;
    /// Current freezer state (`Thawed` where there is no freezer).
    fn freezer(&self) -> Result<FreezerState, CgroupError>;
    /// Host pids of every process in the cgroup.
    fn pids(&self) -> Result<Vec<i32>, CgroupError>;
    /// How many processes the OOM killer has killed in this cgroup.
    fn oom_kill_count(&self) -> u64;
    /// Remove the cgroup; it must be empty of processes.
    fn destroy(&self) -> Result<(), CgroupError>;
    /// The cgroup's directory in each hierarchy, keyed by the hierarchy's name
    /// (`memory`, `cpu,cpuacct`, `name=systemd`, or `""` for the unified one).
    fn paths(&self) -> Vec<(String, PathBuf)>;
}

/// Open the manager for a container on this host.
pub fn manager(layout: &Layout, config: &CgroupConfig) -> Result<Box<dyn Manager>, CgroupError> {
    if config.systemd {
        return Err(CgroupError::Unsupported(
            "the systemd cgroup driver (--systemd-cgroup) is not available yet; run without it"
                .into(),
        ));
    }
    match layout {
        Layout::Legacy { .. } | Layout::Hybrid { .. } => {
            Ok(Box::new(v1::V1Manager::new(layout, config)?))
        }
        Layout::Unified { .. } => Err(CgroupError::Unsupported(
            "this host uses cgroup v2 only (unified); the v2 driver is not available yet".into(),
        )),
    }
}

/// The path of a container's cgroup relative to a hierarchy's root, following runc:
/// absolute paths are taken as given, relative ones (and the default, the id) are placed
/// under the runtime's own cgroup in that hierarchy.
pub fn container_subpath(own: &Path, config: &CgroupConfig) -> PathBuf {
    let wanted = config
        .path
        .clone()
        .unwrap_or_else(|| PathBuf::from(&config.id));
    let joined = if wanted.is_absolute() {
        wanted
    } else {
        own.join(wanted)
    };
    normalize(&joined)
}

/// Lexically clean an absolute path: drop `.`, resolve `..` without going above `/`.
fn normalize(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::from("/");
    for c in path.components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(path: Option<&str>) -> CgroupConfig {
        CgroupConfig {
            path: path.map(PathBuf::from),
            id: "c1".into(),
            systemd: false,
        }
    }

    #[test]
    fn default_path_is_id_under_own_cgroup() {
        assert_eq!(
            container_subpath(Path::new("/user/a"), &cfg(None)),
            Path::new("/user/a/c1")
        );
    }

    #[test]
    fn absolute_path_ignores_own_cgroup() {
        assert_eq!(
            container_subpath(Path::new("/user/a"), &cfg(Some("/x/y"))),
            Path::new("/x/y")
        );
    }

    #[test]
    fn relative_path_cannot_climb_above_root() {
        assert_eq!(
            container_subpath(Path::new("/a"), &cfg(Some("../../../etc"))),
            Path::new("/etc")
        );
    }
}
