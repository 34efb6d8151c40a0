//! Test helpers: a busybox bundle in a temporary directory, a private state root, and the
//! checks that a test left nothing behind. Every container still under the root when the
//! `Env` is dropped is force-deleted, so a failing test leaves nothing either.
#![allow(dead_code)]

use container::Container;
use oci_spec::runtime::{LinuxDeviceCgroupBuilder, Spec};
use std::path::PathBuf;
use testkit::make_rootfs;

pub struct Env {
    pub dir: tempfile::TempDir,
    pub root: PathBuf,
    rootfs: PathBuf,
}

impl Env {
    pub fn new() -> Env {
        let dir = tempfile::Builder::new()
            .prefix("runr-supervisor-test-")
            .tempdir()
            .unwrap();
        let root = dir.path().join("state");
        let rootfs = dir.path().join("rootfs");
        make_rootfs(&rootfs);
        Env { dir, root, rootfs }
    }

    /// A bundle `name` (sharing one busybox rootfs) running `args`, with the config edited
    /// by `edit`.
    pub fn bundle(&self, name: &str, args: &[&str], edit: impl FnOnce(&mut Spec)) -> PathBuf {
        let bundle = self.dir.path().join(format!("bundle-{name}"));
        std::fs::create_dir_all(&bundle).unwrap();
        let mut spec = default_spec();
        spec.root_mut()
            .as_mut()
            .unwrap()
            .set_path(self.rootfs.clone());
        let process = spec.process_mut().as_mut().unwrap();
        process.set_args(Some(args.iter().map(|a| a.to_string()).collect()));
        process.set_terminal(Some(false));
        edit(&mut spec);
        std::fs::write(
            bundle.join("config.json"),
            serde_json::to_vec_pretty(&spec).unwrap(),
        )
        .unwrap();
        bundle
    }

    /// Containers left in the state root.
    pub fn leftovers(&self) -> Vec<String> {
        container::state::list_ids(&self.root).unwrap_or_default()
    }

    /// Force-delete every container under the root.
    pub fn clean(&self) {
        for id in self.leftovers() {
            if let Err(e) = Container::load(&self.root, &id).and_then(|c| c.delete(true)) {
                eprintln!("cleanup: delete {id}: {e}");
            }
        }
    }

    /// Every cgroup directory of the container.
    pub fn cgroup_dirs(&self, id: &str) -> Vec<PathBuf> {
        let c = Container::load_unlocked(&self.root, id).unwrap();
        c.saved()
            .cgroup_paths
            .iter()
            .map(|(_, d)| d.clone())
            .collect()
    }

    /// The container's cgroup directory in `controller`'s hierarchy.
    pub fn cgroup_dir(&self, id: &str, controller: &str) -> PathBuf {
        let c = Container::load_unlocked(&self.root, id).unwrap();
        c.saved()
            .cgroup_paths
            .iter()
            .find(|(name, _)| name.split(',').any(|n| n == controller))
            .map(|(_, dir)| dir.clone())
            .unwrap_or_else(|| panic!("container {id} has no {controller} cgroup"))
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        self.clean();
    }
}

/// runr's default config: busybox's sh, no terminal, every device denied but the
/// container's own.
fn default_spec() -> Spec {
    let mut spec = Spec::default();
    spec.set_hostname(Some("runr".into()));
    spec.set_annotations(None);
    let linux = spec.linux_mut().as_mut().unwrap();
    let deny_all = LinuxDeviceCgroupBuilder::default()
        .allow(false)
        .access("rwm")
        .build()
        .unwrap();
    let mut resources = linux.resources().clone().unwrap_or_default();
    resources.set_devices(Some(vec![deny_all]));
    linux.set_resources(Some(resources));
    spec
}

/// The program's children, from every thread's list, but the spawner's helper.
pub fn children() -> Vec<i32> {
    let mut out = testkit::children_of("self");
    out.retain(|pid| {
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        comm.trim() != "runr-spawner"
    });
    out
}
