//! Device nodes in the container's /dev: the default set every container gets, the config's
//! `linux.devices`, and the usual links (/dev/fd, /dev/std*, /dev/ptmx).

use super::resolve::{fd_path, Kind, Root};
use crate::error::{Context, Error, Result};
use nix::mount::{mount, MsFlags};
use oci_spec::runtime::{LinuxDeviceType, Spec};
use rustix::fs::{AtFlags, FileType, Mode};
use std::path::{Path, PathBuf};

struct Device {
    path: PathBuf,
    kind: FileType,
    major: u32,
    minor: u32,
    mode: u32,
    uid: Option<u32>,
    gid: Option<u32>,
}

/// /dev/null, zero, full, random, urandom and tty, which the OCI spec promises.
const DEFAULTS: &[(&str, u32, u32)] = &[
    ("/dev/null", 1, 3),
    ("/dev/zero", 1, 5),
    ("/dev/full", 1, 7),
    ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9),
    ("/dev/tty", 5, 0),
];

/// Device cgroup allow rules for the default devices and /dev/pts, appended after the
/// config's rules (as runc does) so a container can always use what it was given.
pub(crate) fn default_cgroup_rules() -> Vec<(char, i64, i64)> {
    let mut v: Vec<(char, i64, i64)> = DEFAULTS
        .iter()
        .map(|(_, ma, mi)| ('c', *ma as i64, *mi as i64))
        .collect();
    v.push(('c', 5, 2)); // /dev/ptmx
    v.push(('c', 136, -1)); // /dev/pts/*
    v
}

/// Devices are made unless the config bind-mounts a /dev of its own.
pub(crate) fn needs_setup(spec: &Spec) -> bool {
    !spec.mounts().iter().flatten().any(|m| {
        m.destination() == Path::new("/dev")
            && (m.typ().as_deref() == Some("bind")
                || m.options()
                    .iter()
                    .flatten()
                    .any(|o| o == "bind" || o == "rbind"))
    })
}

/// The device nodes a container in a user namespace has bind-mounted from the host (the
/// same paths there): mounts from outside its mount namespace, which CRIU must be told of.
pub(crate) fn bound_from_host(spec: &Spec) -> Vec<PathBuf> {
    if !needs_setup(spec) {
        return Vec::new();
    }
    let mut out: Vec<PathBuf> = DEFAULTS.iter().map(|(p, _, _)| PathBuf::from(p)).collect();
    for d in spec
        .linux()
        .iter()
        .flat_map(|l| l.devices().iter().flatten())
    {
        if d.typ() != LinuxDeviceType::P && !out.contains(d.path()) {
            out.push(d.path().clone());
        }
    }
    out
}

pub(crate) fn create_all(root: &Root, spec: &Spec, in_user_ns: bool) -> Result<()> {
    let mut devices: Vec<Device> = DEFAULTS
        .iter()
        .map(|(p, major, minor)| Device {
            path: p.into(),
            kind: FileType::CharacterDevice,
            major: *major,
            minor: *minor,
            mode: 0o666,
            uid: None,
            gid: None,
        })
        .collect();
    for d in spec
        .linux()
        .iter()
        .flat_map(|l| l.devices().iter().flatten())
    {
        let kind = match d.typ() {
            LinuxDeviceType::C | LinuxDeviceType::U => FileType::CharacterDevice,
            LinuxDeviceType::B => FileType::BlockDevice,
            LinuxDeviceType::P => FileType::Fifo,
            LinuxDeviceType::A => {
                return Err(Error::Config(format!(
                    "linux.devices {}: type 'a' is not a device type",
                    d.path().display()
                )))
            }
        };
        // A fifo has no device number; whatever the config says is not used.
        let (major, minor) = match kind {
            FileType::Fifo => (0, 0),
            _ => (d.major() as u32, d.minor() as u32),
        };
        devices.retain(|x| x.path != *d.path());
        devices.push(Device {
            path: d.path().clone(),
            kind,
            major,
            minor,
            mode: d.file_mode().unwrap_or(0o666) & 0o7777,
            uid: d.uid(),
            gid: d.gid(),
        });
    }
    for d in &devices {
        // A fifo can be made in a user namespace too, and a host one would be shared.
        if in_user_ns && d.kind != FileType::Fifo {
            bind_device(root, d)?;
        } else {
            make_device(root, d)?;
        }
    }
    links(root)
}

fn make_device(root: &Root, d: &Device) -> Result<()> {
    let (dir, name) = root.parent_dir(&d.path)?;
    let dev = rustix::fs::makedev(d.major, d.minor);
    let mode = Mode::from_raw_mode(d.mode);
    let mk = || rustix::fs::mknodat(&dir, &name, d.kind, mode, dev);
    match mk() {
        Ok(()) => {}
        // An image's /dev may already hold a node of that name: replace it.
        Err(rustix::io::Errno::EXIST) => {
            rustix::fs::unlinkat(&dir, &name, AtFlags::empty())
                .ctx(|| format!("replace existing {}", d.path.display()))?;
            mk().ctx(|| format!("mknod {}", d.path.display()))?;
        }
        Err(e) => return Err(e).ctx(|| format!("mknod {}", d.path.display())),
    }
    if d.uid.is_some() || d.gid.is_some() {
        rustix::fs::chownat(
            &dir,
            &name,
            d.uid.map(rustix::fs::Uid::from_raw),
            d.gid.map(rustix::fs::Gid::from_raw),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .ctx(|| format!("chown {}", d.path.display()))?;
    }
    Ok(())
}

/// Inside a user namespace mknod is not allowed: bind the host's node instead.
fn bind_device(root: &Root, d: &Device) -> Result<()> {
    let target = root.ensure(&d.path, Kind::File, false)?;
    mount(
        Some(&d.path),
        fd_path(&target).as_str(),
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .ctx(|| format!("bind mount host device {}", d.path.display()))
}

fn links(root: &Root) -> Result<()> {
    let mut links = vec![
        ("/dev/fd", "/proc/self/fd"),
        ("/dev/stdin", "/proc/self/fd/0"),
        ("/dev/stdout", "/proc/self/fd/1"),
        ("/dev/stderr", "/proc/self/fd/2"),
    ];
    if Path::new("/proc/kcore").exists() {
        links.push(("/dev/core", "/proc/kcore"));
    }
    for (link, target) in links {
        let (dir, name) = root.parent_dir(Path::new(link))?;
        match rustix::fs::symlinkat(target, &dir, &name) {
            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return Err(e).ctx(|| format!("symlink {link} -> {target}")),
        }
    }
    // /dev/ptmx must be the one of the container's devpts instance.
    let (dir, name) = root.parent_dir(Path::new("/dev/ptmx"))?;
    match rustix::fs::unlinkat(&dir, &name, AtFlags::empty()) {
        Ok(()) | Err(rustix::io::Errno::NOENT) => {}
        Err(e) => return Err(e).ctx(|| "remove /dev/ptmx"),
    }
    rustix::fs::symlinkat("pts/ptmx", &dir, &name).ctx(|| "symlink /dev/ptmx -> pts/ptmx")
}
