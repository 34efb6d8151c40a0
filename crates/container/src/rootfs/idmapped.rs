//! Idmapped bind mounts (`idmap`/`ridmap`, or uidMappings/gidMappings on a mount): the
//! source seen with its file owners translated, without a chown.
//!
//! Setting an idmap takes privileges over the source's filesystem, that is in the initial
//! user namespace, which the init (born in its own) never has. So the parent prepares
//! each one before the clone: a detached copy of the source (open_tree) given the mapping
//! of a user namespace made for it (mount_setattr MOUNT_ATTR_IDMAP). The init inherits the
//! descriptor and only attaches it (move_mount) at the destination.
//!
//! The mapping reads as a user namespace's: on-disk id `containerID + n` is seen as
//! `hostID + n`. Without mappings on the mount, the container's own are used, so files the
//! host's root owns are its root's.

use super::options::MountOptions;
use crate::error::{Context, Error, Result};
use crate::idmap;
use crate::sys::{self, Forked};
use oci_spec::runtime::{LinuxIdMapping, Mount, Spec};
use rustix::mount::{MoveMountFlags, OpenTreeFlags};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;

/// Prepared mounts, by index in the config's `mounts`.
#[derive(Default)]
pub(crate) struct Prepared {
    trees: Vec<Option<OwnedFd>>,
}

impl Prepared {
    /// Parent side: a detached, idmapped copy of the source of every mount that asks.
    pub(crate) fn for_spec(spec: &Spec, bundle: &Path) -> Result<Prepared> {
        let mut trees = Vec::new();
        let mut namespaces: Vec<(Vec<LinuxIdMapping>, Vec<LinuxIdMapping>, OwnedFd)> = Vec::new();
        let linux = spec.linux().as_ref();
        for m in spec.mounts().iter().flatten() {
            let opts = MountOptions::parse(m.options().as_deref().unwrap_or(&[]));
            if !opts.idmap && m.uid_mappings().is_none() && m.gid_mappings().is_none() {
                trees.push(None);
                continue;
            }
            let dest = m.destination().display().to_string();
            let what = |s: &str| format!("mount {dest}: {s}");
            if !(m.typ().as_deref() == Some("bind") || opts.bind) {
                return Err(Error::Config(what(
                    "idmapped mounts are for bind mounts only",
                )));
            }
            if !nix::unistd::geteuid().is_root() {
                return Err(Error::Config(what(
                    "idmapped mounts need privileges over the source's filesystem: run runr as root",
                )));
            }
            let pick = |own: &Option<Vec<LinuxIdMapping>>, container: Option<&Vec<_>>| {
                own.clone()
                    .or_else(|| container.cloned())
                    .unwrap_or_default()
            };
            let uids = pick(
                m.uid_mappings(),
                linux.and_then(|l| l.uid_mappings().as_ref()),
            );
            let gids = pick(
                m.gid_mappings(),
                linux.and_then(|l| l.gid_mappings().as_ref()),
            );
            if uids.is_empty() || gids.is_empty() {
                return Err(Error::Config(what(
                    "an idmapped mount needs uidMappings and gidMappings, on the mount or for \
                     the container's user namespace",
                )));
            }
            idmap::validate(&format!("mount {dest} uidMappings"), &uids)?;
            idmap::validate(&format!("mount {dest} gidMappings"), &gids)?;
            let userns = match namespaces.iter().find(|(u, g, _)| *u == uids && *g == gids) {
                Some((_, _, fd)) => fd,
                None => {
                    let fd = user_namespace(&uids, &gids)?;
                    namespaces.push((uids, gids, fd));
                    &namespaces.last().expect("just pushed").2
                }
            };
            trees.push(Some(idmapped_tree(m, &opts, bundle, userns)?));
        }
        Ok(Prepared { trees })
    }

    /// The prepared tree for mount number `i`, if it has one.
    pub(crate) fn tree(&self, i: usize) -> Option<&OwnedFd> {
        self.trees.get(i).and_then(Option::as_ref)
    }
}

fn idmapped_tree(
    m: &Mount,
    opts: &MountOptions,
    bundle: &Path,
    userns: &OwnedFd,
) -> Result<OwnedFd> {
    let source = super::bind_source(m, bundle)?;
    let mut flags = OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC;
    if opts.flags.contains(nix::mount::MsFlags::MS_REC) {
        flags |= OpenTreeFlags::AT_RECURSIVE;
    }
    let tree = rustix::mount::open_tree(rustix::fs::CWD, &source, flags)
        .ctx(|| format!("open_tree {} (idmapped mount source)", source.display()))?;
    let mut attr = libc::mount_attr {
        attr_set: libc::MOUNT_ATTR_IDMAP,
        attr_clr: 0,
        propagation: 0,
        userns_fd: userns.as_raw_fd() as u64,
    };
    let recursive = if opts.idmap_recursive {
        libc::AT_RECURSIVE
    } else {
        0
    };
    // SAFETY: `attr` is a valid mount_attr whose size we pass; the path is empty, so the
    // kernel acts on the detached tree `tree` itself.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH | recursive,
            &mut attr as *mut libc::mount_attr,
            std::mem::size_of::<libc::mount_attr>(),
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error()).ctx(|| {
            format!(
                "mount_setattr MOUNT_ATTR_IDMAP on {} (does its filesystem support idmapped mounts?)",
                source.display()
            )
        });
    }
    Ok(tree)
}

/// Child side: attach a prepared tree on `target` (an O_PATH descriptor of the destination).
pub(crate) fn attach(tree: &OwnedFd, target: &OwnedFd, dest: &Path) -> Result<()> {
    rustix::mount::move_mount(
        tree.as_fd(),
        c"",
        target.as_fd(),
        c"",
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
    )
    .ctx(|| format!("move_mount the idmapped mount onto {}", dest.display()))
}

/// A user namespace with these maps, held by a descriptor: a child is born into it, the maps
/// are written, the namespace file opened, and the child killed.
fn user_namespace(uids: &[LinuxIdMapping], gids: &[LinuxIdMapping]) -> Result<OwnedFd> {
    let flags = libc::CLONE_NEWUSER as u64;
    let what = "a user namespace for an idmapped mount";
    let pid = match sys::clone_process(flags, sys::Dumpable::Never, what)? {
        Forked::Child => sys::child_main(|| loop {
            // SAFETY: pause(2) only waits for a signal; the parent ends us with SIGKILL.
            unsafe { libc::pause() };
        }),
        Forked::Parent { pid } => pid,
    };
    let fd = idmap::Writer::Root.write(pid, uids, gids).and_then(|()| {
        let path = format!("/proc/{pid}/ns/user");
        rustix::fs::open(
            path.as_str(),
            rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .ctx(|| format!("open {path}"))
    });
    let child = nix::unistd::Pid::from_raw(pid);
    let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
    let _ = nix::sys::wait::waitpid(child, None);
    fd
}
