//! Control groups for runr containers.
//!
//! One [`Manager`] trait with an implementation per host layout. The layout is read once per
//! command from `/proc/self/mountinfo` and `/proc/self/cgroup` ([`Layout::detect`]); nothing
//! here scans all of `/proc`.
//!
//! Timing contract with the container library: [`Manager::create`] makes the cgroup and writes
//! every limit while the cgroup is still empty (so no write can fail with EBUSY because of our
//! own usage); the init is in it, in every hierarchy, right after it is cloned: before it can
//! fork, and before it unshares its cgroup namespace, whose root is the cgroup it is in at
//! that moment. It enters by itself with a [`SelfEntry`] the runtime opened for it (much
//! faster, see `entry.rs`), or is moved in by [`Manager::enter`] where a driver has no
//! self entry (systemd) or the runtime is unprivileged. The init's own setup is small (it is no Go runtime):
//! with the exec of a small program it fits in 256-512 KiB (tested under 512 KiB), so a
//! config's tight limits need no headroom for runr.

mod bpf;
pub mod dbus;
mod devrules;
mod entry;
mod error;
mod fsutil;
mod layout;
pub mod none;
pub mod resources;
pub mod stats;
pub mod systemd;
pub mod v1;
pub mod v2;

pub use entry::SelfEntry;
pub use error::CgroupError;
pub use layout::{Hierarchy, Layout};
pub use stats::{OomWatch, Stats};

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
    /// Move a process exec'd into the running container in, in every hierarchy; with `sub`
    /// (`exec --cgroup`), into existing sub-cgroups of the container's.
    fn enter_exec(&self, pid: i32, sub: &SubCgroups) -> Result<(), CgroupError>;
    /// What a process just cloned needs to enter this cgroup by itself, which is faster
    /// than [`Manager::enter`] (see [`SelfEntry`]); for an exec'd process with `sub`, its
    /// sub-cgroups. `None` where this driver moves processes only from outside.
    fn self_entry(&self, _sub: &SubCgroups) -> Result<Option<SelfEntry>, CgroupError> {
        Ok(None)
    }
    /// Write new limits to a live cgroup.
    fn update(&self, resources: &LinuxResources) -> Result<(), CgroupError>;
    /// Freeze or thaw every process in the cgroup.
    fn set_freezer(&self, state: FreezerState) -> Result<(), CgroupError>;
    /// Whether this cgroup can be frozen at all.
    fn has_freezer(&self) -> bool;
    /// Current freezer state (`Thawed` where there is no freezer).
    fn freezer(&self) -> Result<FreezerState, CgroupError>;
    /// Host pids of every process in the cgroup.
    fn pids(&self) -> Result<Vec<i32>, CgroupError>;
    /// Resource usage, as `events --stats` shows it.
    fn stats(&self) -> Result<Stats, CgroupError>;
    /// A descriptor that fires on each OOM kill in the cgroup.
    fn oom_watch(&self) -> Result<OomWatch, CgroupError>;
    /// How many processes the OOM killer has killed in this cgroup.
    fn oom_kill_count(&self) -> u64;
    /// Remove the cgroup; it must be empty of processes.
    fn destroy(&self) -> Result<(), CgroupError>;
    /// The cgroup's directory in each hierarchy, keyed by the hierarchy's name
    /// (`memory`, `cpu,cpuacct`, `name=systemd`, or `""` for the unified one).
    fn paths(&self) -> Vec<(String, PathBuf)>;
    /// The systemd unit that owns the cgroup, for the systemd driver.
    fn systemd_unit(&self) -> Option<String> {
        None
    }
}

/// Sub-cgroups of a container's cgroup for an exec'd process, from `--cgroup` values of the
/// form `[controller[,controller...]:]path`; a value without controllers applies to every
/// hierarchy no other value names.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SubCgroups {
    entries: Vec<(Vec<String>, PathBuf)>,
}

impl SubCgroups {
    pub fn parse(values: &[String]) -> Result<SubCgroups, CgroupError> {
        let mut entries = Vec::new();
        for v in values {
            let (controllers, path) = match v.split_once(':') {
                Some((c, p)) => (c.split(',').map(str::to_string).collect::<Vec<_>>(), p),
                None => (Vec::new(), v.as_str()),
            };
            let path = PathBuf::from(path);
            let escapes = path.components().any(|c| {
                !matches!(
                    c,
                    std::path::Component::Normal(_) | std::path::Component::CurDir
                )
            });
            if path.as_os_str().is_empty() || escapes || controllers.iter().any(|c| c.is_empty()) {
                return Err(CgroupError::Invalid(format!(
                    "--cgroup {v:?}: want [controller,...:]path, the path relative to the container's cgroup and inside it"
                )));
            }
            if entries.iter().any(|(c, _): &(Vec<String>, _)| {
                c.iter().any(|x| controllers.contains(x))
                    || (c.is_empty() && controllers.is_empty())
            }) {
                return Err(CgroupError::Invalid(format!(
                    "--cgroup {v:?}: a controller is given a sub-cgroup twice"
                )));
            }
            entries.push((controllers, path));
        }
        Ok(SubCgroups { entries })
    }

    /// The sub-path for hierarchy `name` (`cpu,cpuacct`, `memory`, `name=systemd`, `""`).
    pub fn for_hierarchy(&self, name: &str) -> Option<&Path> {
        let named = self
            .entries
            .iter()
            .find(|(c, _)| c.iter().any(|x| has_controller(name, x)));
        named
            .or_else(|| self.entries.iter().find(|(c, _)| c.is_empty()))
            .map(|(_, p)| p.as_path())
    }

    /// Controllers named that no hierarchy in `names` has.
    pub fn unknown_controllers<'a>(&'a self, names: &[&str]) -> Vec<&'a str> {
        self.entries
            .iter()
            .flat_map(|(c, _)| c.iter())
            .filter(|x| !names.iter().any(|n| has_controller(n, x)))
            .map(String::as_str)
            .collect()
    }

    /// Move `pid` into the container's cgroup in each of `hierarchies` (name and the
    /// container's directory there), or into the sub-cgroup given for it, which must exist.
    pub(crate) fn enter(
        &self,
        pid: i32,
        hierarchies: &[(String, PathBuf)],
    ) -> Result<(), CgroupError> {
        for (_, dir) in self.targets(hierarchies)? {
            fsutil::add_pid(&dir, pid)?;
        }
        Ok(())
    }

    /// Where an exec'd process goes in each of `hierarchies` (name and the container's
    /// directory there): that directory or the sub-cgroup given for it, which must exist.
    pub(crate) fn targets(
        &self,
        hierarchies: &[(String, PathBuf)],
    ) -> Result<Vec<(String, PathBuf)>, CgroupError> {
        let names: Vec<&str> = hierarchies.iter().map(|(n, _)| n.as_str()).collect();
        if let Some(c) = self.unknown_controllers(&names).first() {
            return Err(CgroupError::Invalid(format!(
                "--cgroup: no cgroup controller {c:?} on this host (on cgroup v2, give a path without controllers)"
            )));
        }
        let mut out = Vec::with_capacity(hierarchies.len());
        for (name, dir) in hierarchies {
            let target = match self.for_hierarchy(name) {
                Some(s) => dir.join(s),
                None => dir.clone(),
            };
            if !target.is_dir() {
                return Err(CgroupError::Invalid(format!(
                    "sub-cgroup {} does not exist",
                    target.display()
                )));
            }
            out.push((name.clone(), target));
        }
        Ok(out)
    }
}

/// Whether hierarchy `name` (`cpu,cpuacct`, `name=systemd`) holds `controller` (`cpu`,
/// `systemd` or `name=systemd`).
fn has_controller(name: &str, controller: &str) -> bool {
    let bare = |s: &'_ str| -> String { s.strip_prefix("name=").unwrap_or(s).to_string() };
    name.split(',').any(|part| bare(part) == bare(controller))
}

/// One line of `rdma.max` (the same on v1 and v2).
pub(crate) fn rdma_line(device: &str, l: &oci_spec::runtime::LinuxRdma) -> String {
    let num = |v: Option<u32>| v.map_or("max".to_string(), |n| n.to_string());
    format!(
        "{device} hca_handle={} hca_object={}",
        num(l.hca_handles()),
        num(l.hca_objects())
    )
}

/// Open the manager for a container on this host.
pub fn manager(layout: &Layout, config: &CgroupConfig) -> Result<Box<dyn Manager>, CgroupError> {
    if config.systemd {
        return Ok(Box::new(systemd::SystemdManager::new(layout, config)?));
    }
    match layout {
        Layout::Legacy { .. } | Layout::Hybrid { .. } => {
            Ok(Box::new(v1::V1Manager::new(layout, config)?))
        }
        Layout::Unified { .. } => Ok(Box::new(v2::V2Manager::new(layout, config)?)),
    }
}

/// The manager for a container from what a previous command saved: the directories
/// ([`Manager::paths`]; none is no cgroup, one unnamed directory is cgroup v2, anything
/// else v1) and the
/// systemd unit, if systemd owns the cgroup.
pub fn from_saved(paths: Vec<(String, PathBuf)>, systemd_unit: Option<String>) -> Box<dyn Manager> {
    let fs: Box<dyn Manager> = match paths.as_slice() {
        [] if systemd_unit.is_none() => Box::new(none::NoCgroup),
        [(name, dir)] if name.is_empty() => Box::new(v2::V2Manager::from_dir(dir.clone())),
        _ => Box::new(v1::V1Manager::from_paths(paths)),
    };
    match systemd_unit {
        Some(unit) => Box::new(systemd::SystemdManager::from_saved(fs, unit)),
        None => fs,
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
    fn sub_cgroups_pick_by_controller_then_default() {
        let sub = SubCgroups::parse(&["cpu,memory:a/b".to_string(), "rest".to_string()]).unwrap();
        assert_eq!(sub.for_hierarchy("cpu,cpuacct"), Some(Path::new("a/b")));
        assert_eq!(sub.for_hierarchy("memory"), Some(Path::new("a/b")));
        assert_eq!(sub.for_hierarchy("pids"), Some(Path::new("rest")));
        assert_eq!(sub.for_hierarchy("name=systemd"), Some(Path::new("rest")));
        let only = SubCgroups::parse(&["pids:p".to_string()]).unwrap();
        assert_eq!(only.for_hierarchy("memory"), None);
        assert_eq!(
            only.unknown_controllers(&["memory", "pids"]),
            Vec::<&str>::new()
        );
        assert_eq!(only.unknown_controllers(&["memory"]), vec!["pids"]);
        for bad in ["../x", "/abs", "cpu:", ":x", "cpu:../../y"] {
            assert!(SubCgroups::parse(&[bad.to_string()]).is_err(), "{bad}");
        }
        assert!(SubCgroups::parse(&["a".to_string(), "b".to_string()]).is_err());
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
