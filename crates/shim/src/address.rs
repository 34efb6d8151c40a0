//! Where things live: the shim's socket, runr's state root, and which shim a container
//! belongs to (one per pod).
//!
//! containerd runs the shim with the container's bundle as its working directory, at
//! `STATE/io.containerd.runtime.v2.task/NAMESPACE/ID`: the socket and runr's state go under
//! that containerd's own state dir, so that two containerds (the host's and a private one)
//! never share either.

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// The annotations that name a container's pod (CRI's sandbox id): every container of one
/// pod is served by one shim.
const GROUP_ANNOTATIONS: [&str; 2] = [
    "io.kubernetes.cri.sandbox-id",
    "io.kubernetes.cri-o.SandboxID",
];

/// Where state goes when the bundle is not where containerd puts bundles.
const FALLBACK_STATE: &str = "/run/containerd";

/// A unix socket path must fit in `sun_path` (108 bytes with its NUL).
const MAX_SOCKET_PATH: usize = 107;

/// containerd's state dir, if `bundle` is laid out as containerd lays bundles out.
pub fn state_dir_of(bundle: &Path) -> Option<PathBuf> {
    let tasks = bundle.parent()?.parent()?;
    if tasks.file_name()? != "io.containerd.runtime.v2.task" {
        return None;
    }
    tasks.parent().map(Path::to_path_buf)
}

/// runr's state root for the containers of `namespace`.
pub fn runr_root(bundle: &Path, namespace: &str) -> PathBuf {
    state_dir_of(bundle)
        .unwrap_or_else(|| PathBuf::from(FALLBACK_STATE))
        .join("runr")
        .join(namespace)
}

/// Where the bundle records a state root the runtime options chose (for `delete`, which
/// containerd runs without them).
const ROOT_FILE: &str = "runr-root";

/// Record the options' `Root` in the bundle, if they name one.
pub fn write_root(
    bundle: &Path,
    options: &crate::options::RuntimeOptions,
    namespace: &str,
) -> anyhow::Result<()> {
    use anyhow::Context;
    let Some(root) = crate::options::state_root(options, namespace) else {
        return Ok(());
    };
    let path = bundle.join(ROOT_FILE);
    std::fs::write(&path, root.as_os_str().as_encoded_bytes())
        .with_context(|| format!("write {}", path.display()))
}

/// The state root of the bundle's container: the one recorded by [`write_root`], else
/// [`runr_root`].
pub fn recorded_root(bundle: &Path, namespace: &str) -> PathBuf {
    match std::fs::read_to_string(bundle.join(ROOT_FILE)) {
        Ok(root) if !root.is_empty() => PathBuf::from(root),
        _ => runr_root(bundle, namespace),
    }
}

/// The shim socket's address (`unix://PATH`) for `grouping` (a pod's sandbox id, or the
/// container's id), unique to the containerd at `containerd_address` and `namespace`.
pub fn socket_address(
    bundle: &Path,
    containerd_address: &str,
    namespace: &str,
    grouping: &str,
) -> String {
    let mut hash = Sha256::new();
    hash.update(format!("{containerd_address}/{namespace}/{grouping}"));
    let hex: String = hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
    if let Some(state) = state_dir_of(bundle) {
        // 128 bits of the hash: short enough for a deep state dir, and still unique.
        let path = state.join("s").join(&hex[..32]);
        if path.as_os_str().len() <= MAX_SOCKET_PATH {
            return format!("unix://{}", path.display());
        }
    }
    format!("unix://{FALLBACK_STATE}/s/{hex}")
}

/// The path of a `unix://` address.
pub fn socket_path(address: &str) -> &str {
    address.strip_prefix("unix://").unwrap_or(address)
}

/// Which shim serves the container: its pod's, if its config names one.
pub fn grouping(bundle: &Path, id: &str) -> String {
    let config = bundle.join("config.json");
    let Ok(spec) = oci_spec::runtime::Spec::load(&config) else {
        return id.to_string();
    };
    group_of(spec.annotations().as_ref()).unwrap_or_else(|| id.to_string())
}

fn group_of(annotations: Option<&std::collections::HashMap<String, String>>) -> Option<String> {
    let annotations = annotations?;
    GROUP_ANNOTATIONS
        .iter()
        .find_map(|k| annotations.get(*k))
        .filter(|v| !v.is_empty())
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUNDLE: &str = "/var/lib/cd/state/io.containerd.runtime.v2.task/k8s.io/c1";

    #[test]
    fn the_state_dir_is_found_from_the_bundle() {
        assert_eq!(
            state_dir_of(Path::new(BUNDLE)),
            Some(PathBuf::from("/var/lib/cd/state"))
        );
        assert_eq!(state_dir_of(Path::new("/tmp/bundle")), None);
        assert_eq!(
            runr_root(Path::new(BUNDLE), "k8s.io"),
            PathBuf::from("/var/lib/cd/state/runr/k8s.io")
        );
        assert_eq!(
            runr_root(Path::new("/b"), "default"),
            PathBuf::from("/run/containerd/runr/default")
        );
    }

    #[test]
    fn sockets_live_in_the_state_dir_unless_too_deep() {
        let a = socket_address(Path::new(BUNDLE), "/cd.sock", "k8s.io", "pod");
        assert!(a.starts_with("unix:///var/lib/cd/state/s/"), "{a}");
        assert_eq!(socket_path(&a).len(), "/var/lib/cd/state/s/".len() + 32);
        // Same inputs, same socket; another pod, another.
        assert_eq!(
            a,
            socket_address(Path::new(BUNDLE), "/cd.sock", "k8s.io", "pod")
        );
        assert_ne!(
            a,
            socket_address(Path::new(BUNDLE), "/cd.sock", "k8s.io", "pod2")
        );
        let deep = format!("/{}/io.containerd.runtime.v2.task/ns/id", "d".repeat(90));
        let a = socket_address(Path::new(&deep), "/cd.sock", "ns", "id");
        assert!(a.starts_with("unix:///run/containerd/s/"), "{a}");
    }

    #[test]
    fn a_root_from_the_options_is_recorded_for_delete() {
        let bundle = tempfile::tempdir().unwrap();
        let default = recorded_root(bundle.path(), "ns");
        assert_eq!(default, runr_root(bundle.path(), "ns"));
        // No Root: nothing recorded.
        write_root(bundle.path(), &Default::default(), "ns").unwrap();
        assert_eq!(recorded_root(bundle.path(), "ns"), default);
        let options = crate::options::RuntimeOptions {
            root: "/run/my-runr".into(),
            ..Default::default()
        };
        write_root(bundle.path(), &options, "ns").unwrap();
        assert_eq!(
            recorded_root(bundle.path(), "ns"),
            PathBuf::from("/run/my-runr/ns")
        );
    }

    #[test]
    fn a_pods_containers_share_a_group() {
        let mut a = std::collections::HashMap::new();
        assert_eq!(group_of(Some(&a)), None);
        a.insert(
            "io.kubernetes.cri.sandbox-id".to_string(),
            "sb1".to_string(),
        );
        assert_eq!(group_of(Some(&a)).as_deref(), Some("sb1"));
        assert_eq!(group_of(None), None);
    }
}
