//! The systemd driver's naming: `--systemd-cgroup` takes cgroupsPath as
//! `slice:prefix:name`, and the container lives in a transient scope `prefix-name.scope`
//! under that slice. Creating the scope over D-Bus is not written yet; where systemd is not
//! running there is nothing to talk to, and the error says so.

use crate::CgroupError;
use std::path::Path;

/// The slice and the scope unit a container gets from its cgroupsPath (or the defaults:
/// `system.slice`, `runr-<id>.scope`).
pub fn unit_names(cgroups_path: Option<&Path>, id: &str) -> Result<(String, String), CgroupError> {
    let Some(path) = cgroups_path
        .and_then(|p| p.to_str())
        .filter(|p| !p.is_empty())
    else {
        return Ok(("system.slice".into(), format!("runr-{id}.scope")));
    };
    let parts: Vec<&str> = path.split(':').collect();
    let [slice, prefix, name] = parts.as_slice() else {
        return Err(CgroupError::Invalid(format!(
            "cgroupsPath {path:?} with --systemd-cgroup must be slice:prefix:name"
        )));
    };
    let slice = if slice.is_empty() {
        "system.slice"
    } else {
        slice
    };
    if !slice.ends_with(".slice") || slice.contains('/') {
        return Err(CgroupError::Invalid(format!(
            "cgroupsPath {path:?}: {slice:?} is not a slice name (NAME.slice)"
        )));
    }
    if name.is_empty() || name.contains('/') {
        return Err(CgroupError::Invalid(format!(
            "cgroupsPath {path:?}: the name part must be non-empty, without '/'"
        )));
    }
    let unit = if name.ends_with(".slice") {
        name.to_string()
    } else if prefix.is_empty() {
        format!("{name}.scope")
    } else {
        format!("{prefix}-{name}.scope")
    };
    Ok((slice.to_string(), unit))
}

/// Why the systemd driver cannot be used on this host.
pub fn unavailable() -> CgroupError {
    if !Path::new("/run/systemd/system").exists() {
        CgroupError::Unsupported(
            "--systemd-cgroup needs systemd as the init system, and systemd is not running on this host (/run/systemd/system is missing); run without --systemd-cgroup".into(),
        )
    } else {
        CgroupError::Unsupported(
            "the systemd cgroup driver (--systemd-cgroup) is not available in this build yet; run without it".into(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroups_path_names_slice_and_scope() {
        let names = |p: Option<&str>| unit_names(p.map(Path::new), "c1");
        assert_eq!(
            names(None).unwrap(),
            ("system.slice".into(), "runr-c1.scope".into())
        );
        assert_eq!(
            names(Some("machine.slice:libpod:abc")).unwrap(),
            ("machine.slice".into(), "libpod-abc.scope".into())
        );
        assert_eq!(
            names(Some(":cri-containerd:xyz")).unwrap(),
            ("system.slice".into(), "cri-containerd-xyz.scope".into())
        );
        assert_eq!(
            names(Some("kubepods.slice::pod.slice")).unwrap().1,
            "pod.slice"
        );
        assert!(names(Some("/abs/path")).is_err());
        assert!(names(Some("a:b:c")).is_err());
        assert!(names(Some("x.slice:p:")).is_err());
    }
}
