//! Loading `config.json` and checking it against the rules of the OCI runtime spec before
//! anything is created, so a bad config leaves nothing behind.

use crate::error::{Error, Result};
use oci_spec::runtime::{LinuxNamespaceType, Spec};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// Check a container id: `[A-Za-z0-9_+.-]+`, and not `.` or `..` (it names a directory).
pub fn validate_id(id: &str) -> Result<()> {
    let ok_chars = id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '-' | '.'));
    if id.is_empty() || !ok_chars || id == "." || id == ".." {
        return Err(Error::InvalidId);
    }
    Ok(())
}

/// Read and parse `<bundle>/config.json`. Syntax errors give line and column; type errors
/// give the path of the field (e.g. `process.user.uid`).
pub fn load(bundle: &Path) -> Result<Spec> {
    let path = bundle.join("config.json");
    let text = std::fs::read(&path).map_err(|e| {
        Error::Config(format!(
            "cannot read the bundle's config {}: {e}",
            path.display()
        ))
    })?;
    parse(&text).map_err(|e| Error::Config(format!("{}: {e}", path.display())))
}

/// Parse JSON text (config.json, a process.json, resources); the error names the field path
/// where serde has one.
pub fn parse<T: serde::de::DeserializeOwned>(text: &[u8]) -> Result<T, String> {
    // The plain parse first: the path-tracking one is only needed to explain an error, and
    // its wrapped deserializers are a second, larger copy of the parsing code to page in.
    if let Ok(v) = serde_json::from_slice(text) {
        return Ok(v);
    }
    let de = &mut serde_json::Deserializer::from_slice(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        if path == "." || path.is_empty() {
            format!("invalid JSON: {}", e.inner())
        } else {
            format!("field {path}: {}", e.inner())
        }
    })
}

/// The container's root filesystem, resolved against the bundle.
pub fn rootfs_path(spec: &Spec, bundle: &Path) -> Result<PathBuf> {
    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| Error::Config("root is missing from config.json".into()))?;
    let path = bundle.join(root.path());
    let canonical = std::fs::canonicalize(&path)
        .map_err(|e| Error::Config(format!("root.path {}: {e}", path.display())))?;
    if !canonical.is_dir() {
        return Err(Error::Config(format!(
            "root.path {} is not a directory",
            canonical.display()
        )));
    }
    Ok(canonical)
}

/// Everything that can be checked before any state exists.
pub fn validate(spec: &Spec) -> Result<()> {
    let bad = |msg: String| Err(Error::Config(msg));
    if spec.version().is_empty() {
        return bad("ociVersion is missing from config.json".into());
    }
    if !spec.version().starts_with("1.") {
        return bad(format!(
            "ociVersion {:?} is not supported (runr implements 1.x)",
            spec.version()
        ));
    }
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| Error::Config("process is missing from config.json".into()))?;
    match process.args() {
        Some(args) if !args.is_empty() && !args[0].is_empty() => {}
        _ => return bad("process.args must name the program to run".into()),
    }
    if !process.cwd().is_absolute() {
        return bad(format!(
            "process.cwd {:?} must be an absolute path",
            process.cwd()
        ));
    }
    for e in process.env().iter().flatten() {
        if !e.contains('=') {
            return bad(format!("process.env entry {e:?} is not NAME=value"));
        }
    }
    let linux = spec
        .linux()
        .as_ref()
        .ok_or_else(|| Error::Config("linux is missing from config.json".into()))?;

    let mut seen = HashSet::new();
    for ns in linux.namespaces().iter().flatten() {
        if !seen.insert(ns.typ()) {
            return bad(format!("namespace {:?} is listed twice", ns.typ()));
        }
    }
    let has = |t: LinuxNamespaceType| seen.contains(&t);
    let new_ns = |t: LinuxNamespaceType| {
        linux
            .namespaces()
            .iter()
            .flatten()
            .any(|n| n.typ() == t && n.path().is_none())
    };
    if (spec.hostname().as_deref().is_some_and(|h| !h.is_empty())
        || spec.domainname().as_deref().is_some_and(|h| !h.is_empty()))
        && !has(LinuxNamespaceType::Uts)
    {
        return bad("hostname and domainname need a UTS namespace of the container's own".into());
    }
    if new_ns(LinuxNamespaceType::User) {
        if linux.uid_mappings().as_ref().is_none_or(|m| m.is_empty())
            || linux.gid_mappings().as_ref().is_none_or(|m| m.is_empty())
        {
            return bad(
                "a new user namespace needs linux.uidMappings and linux.gidMappings".into(),
            );
        }
    } else if linux.uid_mappings().as_ref().is_some_and(|m| !m.is_empty())
        || linux.gid_mappings().as_ref().is_some_and(|m| !m.is_empty())
    {
        return bad("linux.uidMappings and gidMappings need a new user namespace".into());
    }
    if linux.time_offsets().is_some() && !new_ns(LinuxNamespaceType::Time) {
        return bad("linux.timeOffsets needs a new time namespace".into());
    }
    for (clock, _) in linux.time_offsets().iter().flatten() {
        if clock != "monotonic" && clock != "boottime" {
            return bad(format!(
                "linux.timeOffsets: unknown clock {clock:?} (monotonic or boottime)"
            ));
        }
    }
    for key in linux.sysctl().iter().flatten().map(|(k, _)| k) {
        check_sysctl(key, &has, new_ns(LinuxNamespaceType::Network))?;
    }
    if let Some(p) = linux.rootfs_propagation() {
        if !matches!(
            p.as_str(),
            "private"
                | "rprivate"
                | "slave"
                | "rslave"
                | "shared"
                | "rshared"
                | "unbindable"
                | "runbindable"
        ) {
            return bad(format!(
                "linux.rootfsPropagation {p:?} is not a propagation type"
            ));
        }
    }
    for m in spec.mounts().iter().flatten() {
        if m.destination().as_os_str().is_empty() {
            return bad("a mount has an empty destination".into());
        }
    }
    for (field, paths) in [
        ("linux.maskedPaths", linux.masked_paths()),
        ("linux.readonlyPaths", linux.readonly_paths()),
    ] {
        for p in paths.iter().flatten() {
            if !p.starts_with('/') {
                return bad(format!(
                    "{field}: {p:?} is not an absolute path (paths in the container start with /)"
                ));
            }
        }
    }
    check_net_devices(linux, has(LinuxNamespaceType::Network))?;
    for d in linux.devices().iter().flatten() {
        if !d.path().starts_with("/dev/") {
            return bad(format!(
                "linux.devices: {} is not under /dev",
                d.path().display()
            ));
        }
    }
    crate::hooks::validate(spec.hooks().as_ref())?;
    Ok(())
}

/// The longest interface name the kernel takes (IFNAMSIZ less the NUL).
const IFNAME_MAX: usize = 15;

/// Why `name` cannot name a network interface, if it cannot.
fn bad_ifname(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("is empty")
    } else if name.len() > IFNAME_MAX {
        Some("is longer than 15 bytes")
    } else if name == "." || name == ".." {
        Some("is not a name")
    } else if name.contains(['/', ':']) || name.chars().any(|c| c.is_whitespace()) {
        Some("contains '/', ':' or white space")
    } else {
        None
    }
}

/// `linux.netDevices`: host interface name → the name in the container. Each host name must
/// be a valid interface name that exists in runr's own network namespace now (it is looked
/// up in /sys/class/net, which shows the namespace of whoever mounted it: ours on a host),
/// each new name valid and unique, and the container must have a network namespace of its
/// own for them to move into.
fn check_net_devices(linux: &oci_spec::runtime::Linux, has_net: bool) -> Result<()> {
    let Some(devices) = linux.net_devices() else {
        return Ok(());
    };
    if !devices.is_empty() && !has_net {
        return Err(Error::Config(
            "linux.netDevices needs a network namespace of the container's own".into(),
        ));
    }
    let mut names = HashSet::new();
    for (host, dev) in devices {
        if let Some(why) = bad_ifname(host) {
            return Err(Error::Config(format!(
                "linux.netDevices: host interface name {host:?} {why}"
            )));
        }
        if !Path::new("/sys/class/net").join(host).exists() {
            return Err(Error::Config(format!(
                "linux.netDevices: host interface {host:?} does not exist"
            )));
        }
        let name = dev.name().as_deref().unwrap_or(host);
        if let Some(why) = bad_ifname(name) {
            return Err(Error::Config(format!(
                "linux.netDevices[{host:?}].name {name:?} {why}"
            )));
        }
        if !names.insert(name) {
            return Err(Error::Config(format!(
                "linux.netDevices: two devices would be named {name:?} in the container"
            )));
        }
    }
    Ok(())
}

/// Only namespaced sysctls may be set, and only when the container has that namespace.
fn check_sysctl(key: &str, has: &impl Fn(LinuxNamespaceType) -> bool, new_net: bool) -> Result<()> {
    let ipc = [
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    let (needed, what) = if ipc.contains(&key) || key.starts_with("fs.mqueue.") {
        (LinuxNamespaceType::Ipc, "an IPC namespace")
    } else if key.starts_with("net.") {
        if !new_net && !has(LinuxNamespaceType::Network) {
            return Err(Error::Config(format!(
                "sysctl {key:?} needs a network namespace of the container's own"
            )));
        }
        (LinuxNamespaceType::Network, "a network namespace")
    } else if key == "kernel.hostname" || key == "kernel.domainname" {
        (LinuxNamespaceType::Uts, "a UTS namespace")
    } else {
        return Err(Error::Config(format!(
            "sysctl {key:?} is not namespaced: setting it would change the host"
        )));
    };
    if !has(needed) {
        return Err(Error::Config(format!(
            "sysctl {key:?} needs {what} of the container's own"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        for good in ["a", "A-b_c.d+e", "1234", "..a"] {
            assert!(validate_id(good).is_ok(), "{good}");
        }
        for bad in ["", ".", "..", "a/b", "../x", "a b", "é"] {
            assert!(validate_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn syntax_error_gives_line_and_column() {
        let err = parse::<Spec>(b"{\n  \"ociVersion\": \"1.0.2\",\n  oops\n}").unwrap_err();
        assert!(err.contains("line 3"), "{err}");
        assert!(err.contains("column"), "{err}");
    }

    #[test]
    fn type_error_names_the_field() {
        let err = parse::<Spec>(
            br#"{"ociVersion":"1.0.2","process":{"user":{"uid":"root","gid":0},"cwd":"/"}}"#,
        )
        .unwrap_err();
        assert!(err.contains("process.user.uid"), "{err}");
    }

    #[test]
    fn default_spec_is_valid() {
        let spec = Spec::default();
        validate(&spec).unwrap();
    }

    #[test]
    fn rules() {
        let mut spec = Spec::default();
        spec.set_version(String::new());
        assert!(validate(&spec)
            .unwrap_err()
            .to_string()
            .contains("ociVersion"));

        let mut spec = Spec::default();
        spec.process_mut().as_mut().unwrap().set_args(Some(vec![]));
        assert!(validate(&spec)
            .unwrap_err()
            .to_string()
            .contains("process.args"));

        let mut spec = Spec::default();
        let sysctl = [("kernel.panic".to_string(), "1".to_string())].into();
        spec.linux_mut().as_mut().unwrap().set_sysctl(Some(sysctl));
        assert!(validate(&spec)
            .unwrap_err()
            .to_string()
            .contains("not namespaced"));

        let mut spec = Spec::default();
        let sysctl = [("net.ipv4.ip_forward".to_string(), "1".to_string())].into();
        spec.linux_mut().as_mut().unwrap().set_sysctl(Some(sysctl));
        validate(&spec).unwrap();
    }

    #[test]
    fn masked_and_readonly_paths_must_be_absolute() {
        let mut spec = Spec::default();
        let linux = spec.linux_mut().as_mut().unwrap();
        linux.set_masked_paths(Some(vec!["/proc/kcore".into(), "../x".into()]));
        let err = validate(&spec).unwrap_err().to_string();
        assert!(
            err.contains("linux.maskedPaths") && err.contains("\"../x\""),
            "{err}"
        );

        let mut spec = Spec::default();
        let linux = spec.linux_mut().as_mut().unwrap();
        linux.set_readonly_paths(Some(vec!["proc/sys".into()]));
        let err = validate(&spec).unwrap_err().to_string();
        assert!(err.contains("linux.readonlyPaths"), "{err}");
    }

    #[test]
    fn interface_names() {
        assert_eq!(bad_ifname("eth0"), None);
        assert_eq!(bad_ifname("a23456789012345"), None);
        for bad in ["", "a234567890123456", "a/b", ".", "..", "a b", "a:1"] {
            assert!(bad_ifname(bad).is_some(), "{bad:?}");
        }
    }

    #[test]
    fn net_devices() {
        use oci_spec::runtime::LinuxNetDevice;
        let with = |host: &str, name: Option<&str>| {
            let mut spec = Spec::default();
            let mut dev = LinuxNetDevice::default();
            dev.set_name(name.map(String::from));
            let linux = spec.linux_mut().as_mut().unwrap();
            linux.set_net_devices(Some([(host.to_string(), dev)].into()));
            validate(&spec).map_err(|e| e.to_string())
        };
        // The default spec has a new network namespace; "lo" exists in every one.
        with("lo", Some("lo1")).unwrap();
        with("lo", None).unwrap();
        let err = with("", None).unwrap_err();
        assert!(
            err.contains("linux.netDevices") && err.contains("is empty"),
            "{err}"
        );
        let err = with("lo", Some("")).unwrap_err();
        assert!(err.contains("linux.netDevices[\"lo\"].name"), "{err}");
        let err = with("lo", Some("a/b")).unwrap_err();
        assert!(err.contains("'/'"), "{err}");
        let err = with("runr-no-such0", None).unwrap_err();
        assert!(err.contains("does not exist"), "{err}");
    }
}
