//! The options containerd passes: the runtime options of a Create (and of `start`, on its
//! stdin), and a Checkpoint's options, both as containerd's runc shim reads them.

use container::checkpoint::{CgroupsMode, CheckpointOptions, CriuFlags};
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::well_known_types::empty::Empty;
use containerd_shim_protos::protobuf::{Message, UnknownValueRef};
use containerd_shim_protos::shim::oci::{
    CheckpointOptions as RuncCheckpointOptions, Options as RuncOptions,
};
use std::path::PathBuf;

/// What the runtime options containerd passes (CRI's runtime options, ctr's `--no-pivot`)
/// ask of the shim and runr.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RuntimeOptions {
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub systemd_cgroup: bool,
    /// A cgroup (path from the hierarchies' roots) the shim is moved into at `start`.
    pub shim_cgroup: String,
    /// The owner given to the process's stdio pipes and fifos.
    pub io_uid: u32,
    pub io_gid: u32,
    /// The runtime binary the runc shim would run: see [`check_binary_name`].
    pub binary_name: String,
    /// runr's state root (its `--root`), the namespace's directory under it.
    pub root: String,
    /// Where a restore reads the checkpoint (in place of the Create's `checkpoint`), and
    /// where CRIU writes its work files.
    pub criu_image_path: String,
    pub criu_work_path: String,
}

/// A bad option: INVALID_ARGUMENT for containerd.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

/// The runc shim's options (`containerd.runc.v1.Options`), or the older
/// `containerd.linux.runc.CreateOptions` ctr sends to a runtime that is not runc's (with no
/// generated type: its fields are read by number); any other type is ignored.
pub fn runtime_options(options: Option<&Any>) -> Result<RuntimeOptions, Invalid> {
    let Some(any) = options.filter(|a| !a.value.is_empty()) else {
        return Ok(RuntimeOptions::default());
    };
    let bad = |e: containerd_shim_protos::protobuf::Error| {
        Invalid(format!("the runtime options ({}): {e}", any.type_url))
    };
    if any.type_url.ends_with("containerd.runc.v1.Options") {
        let o = RuncOptions::parse_from_bytes(&any.value).map_err(bad)?;
        return Ok(RuntimeOptions {
            no_pivot: o.no_pivot_root,
            no_new_keyring: o.no_new_keyring,
            systemd_cgroup: o.systemd_cgroup,
            shim_cgroup: o.shim_cgroup,
            io_uid: o.io_uid,
            io_gid: o.io_gid,
            binary_name: o.binary_name,
            root: o.root,
            criu_image_path: o.criu_image_path,
            criu_work_path: o.criu_work_path,
        });
    }
    if any
        .type_url
        .ends_with("containerd.linux.runc.CreateOptions")
    {
        let m = Empty::parse_from_bytes(&any.value).map_err(bad)?;
        let fields = m.special_fields.unknown_fields();
        let varint = |n: u32| match fields.get(n) {
            Some(UnknownValueRef::Varint(v)) => v,
            _ => 0,
        };
        let string = |n: u32| match fields.get(n) {
            Some(UnknownValueRef::LengthDelimited(b)) => String::from_utf8_lossy(b).into_owned(),
            _ => String::new(),
        };
        return Ok(RuntimeOptions {
            no_pivot: varint(1) != 0,
            no_new_keyring: varint(8) != 0,
            shim_cgroup: string(9),
            io_uid: varint(10) as u32,
            io_gid: varint(11) as u32,
            criu_work_path: string(12),
            criu_image_path: string(13),
            ..Default::default()
        });
    }
    tracing::warn!("ignoring runtime options of type {}", any.type_url);
    Ok(RuntimeOptions::default())
}

/// `start`'s stdin: containerd writes the runtime options there as a marshalled Any (none,
/// or empty, when it has none).
pub fn from_start_stdin(bytes: &[u8]) -> Result<RuntimeOptions, Invalid> {
    if bytes.is_empty() {
        return Ok(RuntimeOptions::default());
    }
    let any = Any::parse_from_bytes(bytes)
        .map_err(|e| Invalid(format!("the runtime options on stdin: {e}")))?;
    runtime_options(Some(&any))
}

/// `BinaryName` names the runtime binary containerd's runc shim runs. This shim runs no
/// binary: runr's library does the work in-process. A name that is runr's (its file name
/// starts with `runr`) is accepted, and only logged; any other (runc, crun, ...) is refused,
/// since the user asked for another runtime, which this shim would not run.
pub fn check_binary_name(name: &str) -> Result<(), Invalid> {
    if name.is_empty() {
        return Ok(());
    }
    let file = std::path::Path::new(name)
        .file_name()
        .and_then(|f| f.to_str())
        .unwrap_or("");
    if file.starts_with("runr") {
        tracing::info!(
            binary_name = name,
            "BinaryName is not run: runr's library runs in the shim"
        );
        return Ok(());
    }
    Err(Invalid(format!(
        "BinaryName {name:?}: containerd-shim-runr-v2 runs runr's library in-process and no \
         runtime binary; to run {name} use the runtime io.containerd.runc.v2"
    )))
}

/// The state root the options ask for (`ROOT/NAMESPACE`, as the runc shim gives runc), if
/// any.
pub fn state_root(o: &RuntimeOptions, namespace: &str) -> Option<PathBuf> {
    (!o.root.is_empty()).then(|| PathBuf::from(&o.root).join(namespace))
}

/// A Checkpoint's options (`containerd.runc.v1.CheckpointOptions`) for runr's library; the
/// images go to `image_path` if the options name one, else to `path` (the directory
/// containerd made for them).
pub fn checkpoint_options(path: &str, options: Option<&Any>) -> Result<CheckpointOptions, Invalid> {
    let o = match options.filter(|a| !a.value.is_empty()) {
        None => RuncCheckpointOptions::default(),
        Some(any)
            if any
                .type_url
                .ends_with("containerd.runc.v1.CheckpointOptions") =>
        {
            RuncCheckpointOptions::parse_from_bytes(&any.value)
                .map_err(|e| Invalid(format!("the checkpoint options ({}): {e}", any.type_url)))?
        }
        Some(any) => {
            return Err(Invalid(format!(
                "checkpoint options of type {}: expected containerd.runc.v1.CheckpointOptions",
                any.type_url
            )))
        }
    };
    let image_path = if o.image_path.is_empty() {
        path
    } else {
        &o.image_path
    };
    if image_path.is_empty() {
        return Err(Invalid(
            "the checkpoint has no image path (neither the request's path nor the options' \
             image_path)"
                .into(),
        ));
    }
    let manage_cgroups_mode = match o.cgroups_mode.as_str() {
        "" => None,
        name => Some(CgroupsMode::from_name(name).ok_or_else(|| {
            Invalid(format!(
                "cgroups_mode {name:?}: expected soft, full, strict or ignore"
            ))
        })?),
    };
    Ok(CheckpointOptions {
        criu: CriuFlags {
            image_path: image_path.into(),
            work_path: (!o.work_path.is_empty()).then(|| o.work_path.clone().into()),
            tcp_established: o.open_tcp,
            ext_unix_sk: o.external_unix_sockets,
            shell_job: o.terminal,
            file_locks: o.file_locks,
            manage_cgroups_mode,
            empty_ns: o.empty_namespaces.clone(),
            ..Default::default()
        },
        leave_running: !o.exit,
        ..Default::default()
    })
}

/// A restore's CRIU options: the checkpoint at `checkpoint` (the Create's), or where the
/// runtime options' `criu_image_path` says.
pub fn restore_flags(checkpoint: &str, o: &RuntimeOptions) -> CriuFlags {
    let image_path = if o.criu_image_path.is_empty() {
        checkpoint
    } else {
        &o.criu_image_path
    };
    CriuFlags {
        image_path: image_path.into(),
        work_path: (!o.criu_work_path.is_empty()).then(|| o.criu_work_path.clone().into()),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn any(type_url: &str, value: Vec<u8>) -> Any {
        Any {
            type_url: type_url.into(),
            value,
            ..Default::default()
        }
    }

    #[test]
    fn runtime_options_are_read_from_either_type() {
        assert_eq!(runtime_options(None).unwrap(), RuntimeOptions::default());
        let runc = RuncOptions {
            no_pivot_root: true,
            shim_cgroup: "/shims".into(),
            io_uid: 1000,
            io_gid: 1001,
            root: "/run/r".into(),
            ..Default::default()
        };
        let bytes = runc.write_to_bytes().unwrap();
        let o = runtime_options(Some(&any("containerd.runc.v1.Options", bytes))).unwrap();
        assert!(o.no_pivot);
        assert_eq!(
            (o.shim_cgroup.as_str(), o.io_uid, o.io_gid),
            ("/shims", 1000, 1001)
        );
        assert_eq!(
            state_root(&o, "k8s.io"),
            Some(PathBuf::from("/run/r/k8s.io"))
        );
        // containerd.linux.runc.CreateOptions{no_pivot_root: true, no_new_keyring: true,
        // shim_cgroup: "/s", io_uid: 5}.
        let value = vec![0x08, 0x01, 0x40, 0x01, 0x4a, 0x02, b'/', b's', 0x50, 0x05];
        let o = runtime_options(Some(&any("containerd.linux.runc.CreateOptions", value))).unwrap();
        assert!(o.no_pivot && o.no_new_keyring);
        assert_eq!((o.shim_cgroup.as_str(), o.io_uid), ("/s", 5));
        assert_eq!(state_root(&o, "k8s.io"), None);
        let other = any("something.Else", vec![1]);
        assert_eq!(
            runtime_options(Some(&other)).unwrap(),
            RuntimeOptions::default()
        );
    }

    #[test]
    fn start_reads_the_options_containerd_writes_on_its_stdin() {
        assert_eq!(from_start_stdin(&[]).unwrap(), RuntimeOptions::default());
        let runc = RuncOptions {
            shim_cgroup: "/pods/a".into(),
            ..Default::default()
        };
        let a = any("containerd.runc.v1.Options", runc.write_to_bytes().unwrap());
        let o = from_start_stdin(&a.write_to_bytes().unwrap()).unwrap();
        assert_eq!(o.shim_cgroup, "/pods/a");
        assert!(from_start_stdin(b"\xff\xff").is_err());
    }

    #[test]
    fn only_runrs_binary_name_is_accepted() {
        check_binary_name("").unwrap();
        check_binary_name("runr").unwrap();
        check_binary_name("/usr/local/bin/runr").unwrap();
        let e = check_binary_name("/usr/bin/runc").unwrap_err();
        assert!(e.0.contains("io.containerd.runc.v2"), "{e}");
    }

    #[test]
    fn checkpoint_options_map_to_criu_flags() {
        // What ctr sends: the task left running, file locks allowed.
        let copts = RuncCheckpointOptions {
            file_locks: true,
            open_tcp: true,
            empty_namespaces: vec!["network".into()],
            cgroups_mode: "full".into(),
            work_path: "/w".into(),
            ..Default::default()
        };
        let a = any(
            "containerd.runc.v1.CheckpointOptions",
            copts.write_to_bytes().unwrap(),
        );
        let o = checkpoint_options("/tmp/ctrd-checkpoint1", Some(&a)).unwrap();
        assert!(o.leave_running);
        assert_eq!(o.criu.image_path, PathBuf::from("/tmp/ctrd-checkpoint1"));
        assert_eq!(o.criu.work_path, Some(PathBuf::from("/w")));
        assert!(o.criu.file_locks && o.criu.tcp_established && !o.criu.shell_job);
        assert_eq!(o.criu.manage_cgroups_mode, Some(CgroupsMode::Full));
        assert_eq!(o.criu.empty_ns, vec!["network".to_string()]);
        let copts = RuncCheckpointOptions {
            exit: true,
            image_path: "/images".into(),
            ..Default::default()
        };
        let a = any(
            "containerd.runc.v1.CheckpointOptions",
            copts.write_to_bytes().unwrap(),
        );
        let o = checkpoint_options("/tmp/x", Some(&a)).unwrap();
        assert!(!o.leave_running);
        assert_eq!(o.criu.image_path, PathBuf::from("/images"));
        let bad = RuncCheckpointOptions {
            cgroups_mode: "loose".into(),
            ..Default::default()
        };
        let a = any(
            "containerd.runc.v1.CheckpointOptions",
            bad.write_to_bytes().unwrap(),
        );
        assert!(checkpoint_options("/tmp/x", Some(&a)).is_err());
        assert!(checkpoint_options("", None).is_err());
        assert!(checkpoint_options("/p", Some(&any("x.Y", vec![1]))).is_err());
    }

    #[test]
    fn a_restore_reads_the_create_checkpoint_unless_told_otherwise() {
        let o = RuntimeOptions::default();
        assert_eq!(restore_flags("/c", &o).image_path, PathBuf::from("/c"));
        let o = RuntimeOptions {
            criu_image_path: "/i".into(),
            criu_work_path: "/w".into(),
            ..Default::default()
        };
        let f = restore_flags("/c", &o);
        assert_eq!(f.image_path, PathBuf::from("/i"));
        assert_eq!(f.work_path, Some(PathBuf::from("/w")));
    }
}
