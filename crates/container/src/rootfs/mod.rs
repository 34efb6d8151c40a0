//! The container's filesystem: propagation, every mount of the config, devices, pivot_root
//! (or MS_MOVE + chroot), then masked and read-only paths and a read-only root.
//!
//! Mount targets are always resolved inside the rootfs ([`resolve::Root`]) and mounted through
//! their /proc/self/fd path, so a symlink in the image can never send a mount to the host.

mod devices;
mod idmapped;
mod options;
mod resolve;

use crate::error::{Context, Error, Result};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use oci_spec::runtime::{Mount, Spec};
pub use options::MountOptions;
pub(crate) use resolve::fd_path;
use resolve::{Kind, Root};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

pub(crate) use devices::bound_from_host as devices_bound_from_host;
pub(crate) use devices::default_cgroup_rules as default_device_rules;
pub(crate) use idmapped::Prepared as IdmappedMounts;
pub(crate) use options::{known_options, propagation_option};

/// A cgroup hierarchy as the container should see it under its cgroup mount.
#[derive(Debug, Clone)]
pub(crate) struct CgroupMount {
    /// Directory name under the mount (`memory`, `cpu,cpuacct`, `systemd`, `unified`), or
    /// empty when the host is unified and the hierarchy is the mount itself.
    pub subdir: String,
    /// `cgroup` or `cgroup2`.
    pub fstype: &'static str,
    /// mount(2) data for a fresh mount inside a cgroup namespace (`cpu,cpuacct`, `name=systemd`).
    pub data: String,
    /// The container's cgroup directory on the host, bind-mounted when there is no cgroup
    /// namespace.
    pub host_dir: PathBuf,
}

/// What the rootfs setup needs to know besides the spec.
pub(crate) struct Setup<'a> {
    pub spec: &'a Spec,
    pub rootfs: &'a Path,
    pub bundle: &'a Path,
    pub in_user_ns: bool,
    pub cgroup_ns: bool,
    pub cgroups: &'a [CgroupMount],
    /// Idmapped mounts the parent prepared.
    pub idmapped: &'a IdmappedMounts,
    /// The container has a mount namespace. Without one the parent has bound the rootfs
    /// onto itself ([`bind_in_inherited_ns`]) and the host's propagation is not ours to change.
    pub own_mount_ns: bool,
}

/// What the runtime should warn about in the config's mounts, said by the parent before the
/// clone: the init's own stderr is the container's.
pub(crate) fn warnings(spec: &Spec) -> Vec<String> {
    let mut out = Vec::new();
    for m in spec.mounts().iter().flatten() {
        if MountOptions::parse(m.options().as_deref().unwrap_or(&[])).tmpcopyup {
            out.push(format!(
                "mount option tmpcopyup on {} is not supported; the tmpfs starts empty",
                m.destination().display()
            ));
        }
    }
    out
}

/// Look a mounted target up again: a descriptor taken before a mount still names the
/// directory underneath it.
fn reopen(root: &Root, dest: &Path) -> Result<OwnedFd> {
    root.resolve(dest, false)
        .ctx(|| format!("reopen {}", dest.display()))
}

fn mount_err<T>(r: nix::Result<T>, what: impl FnOnce() -> String) -> Result<T> {
    r.ctx(what)
}

/// Before pivot_root: propagation, the rootfs bind, every mount, and /dev.
pub(crate) fn prepare(s: &Setup) -> Result<()> {
    let linux = s.spec.linux().as_ref();
    let wanted = linux
        .and_then(|l| l.rootfs_propagation().as_deref())
        .and_then(propagation_option);
    // Nothing we mount may propagate back to the host: start from slave (or private, when
    // asked for). The asked-for propagation itself is applied to the root only after
    // pivot_root (finish), as the spec orders it: pivot_root refuses a shared root, and an
    // unbindable one here would make the bind of the rootfs onto itself fail (EINVAL: an
    // unbindable mount cannot be bound).
    let initial = match wanted {
        Some(p) if p.contains(MsFlags::MS_PRIVATE) => MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        _ => MsFlags::MS_SLAVE | MsFlags::MS_REC,
    };
    if s.own_mount_ns {
        mount_err(
            mount(None::<&str>, "/", None::<&str>, initial, None::<&str>),
            || format!("make / {initial:?} before setting up the rootfs"),
        )?;
        // pivot_root needs the new root to be a mount point of its own.
        mount_err(
            mount(
                Some(s.rootfs),
                s.rootfs,
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            ),
            || format!("bind mount the rootfs {} onto itself", s.rootfs.display()),
        )?;
    }
    let root = Root::open(s.rootfs)?;
    for (i, m) in s.spec.mounts().iter().flatten().enumerate() {
        match s.idmapped.tree(i) {
            Some(tree) => mount_idmapped(&root, m, tree, s)?,
            None => mount_one(&root, m, s)?,
        }
    }
    if devices::needs_setup(s.spec) {
        devices::create_all(&root, s.spec, s.in_user_ns)?;
    }
    Ok(())
}

fn mount_one(root: &Root, m: &Mount, s: &Setup) -> Result<()> {
    let opts = MountOptions::parse(m.options().as_deref().unwrap_or(&[]));
    let typ = m.typ().as_deref().unwrap_or("");
    let dest = Path::new("/").join(m.destination());
    let is_bind = typ == "bind" || opts.bind;
    let target = if is_bind {
        bind_mount(root, m, &dest, &opts, s)?
    } else if typ == "cgroup" || typ == "cgroup2" {
        mount_cgroup(root, &dest, &opts, s)?
    } else {
        let label = s
            .spec
            .linux()
            .as_ref()
            .and_then(|l| l.mount_label().as_deref());
        mount_fs(root, m, typ, &dest, &opts, label)?
    };
    set_propagation_and_attrs(&target, &dest, &opts, is_bind)
}

/// The mount's propagation options, then its recursive attributes, on the mount just made
/// on `dest` (`target`, opened after the mount).
fn set_propagation_and_attrs(
    target: &OwnedFd,
    dest: &Path,
    opts: &MountOptions,
    is_bind: bool,
) -> Result<()> {
    let recursive_attrs = opts.attr_set != 0 || opts.attr_clr != 0;
    let target_path = fd_path(target);
    for p in propagation_of(opts, is_bind && recursive_attrs) {
        mount_err(
            mount(
                None::<&str>,
                target_path.as_str(),
                None::<&str>,
                p,
                None::<&str>,
            ),
            || format!("set propagation {p:?} on {}", dest.display()),
        )?;
    }
    if recursive_attrs {
        // Last, once the bind has copied every submount of its source and no later host
        // mount can arrive by propagation (see propagation_of): mount_setattr changes only
        // the mounts that exist when it is called.
        set_recursive_attrs(target, opts.attr_set, opts.attr_clr)
            .ctx(|| format!("mount_setattr on {} (recursive options)", dest.display()))?;
    }
    Ok(())
}

/// The propagation changes to make on a new mount, in order. A bind copies its source's
/// propagation: under our rslave root it is a slave of the host's mount, so a mount the
/// host makes under the source later would arrive in the container without the recursive
/// attributes (`rro`, `rnosymfollow`, ...) that mount_setattr gave the mounts present when
/// it ran. Unless the options ask for a propagation, such a bind is made rprivate first.
fn propagation_of(opts: &MountOptions, bind_with_recursive_attrs: bool) -> Vec<MsFlags> {
    if bind_with_recursive_attrs && opts.propagation.is_empty() {
        vec![MsFlags::MS_PRIVATE | MsFlags::MS_REC]
    } else {
        opts.propagation.clone()
    }
}

/// Attach the idmapped copy of a bind mount's source the parent prepared, then apply the
/// mount's flags as for any bind mount.
fn mount_idmapped(root: &Root, m: &Mount, tree: &OwnedFd, s: &Setup) -> Result<()> {
    let opts = MountOptions::parse(m.options().as_deref().unwrap_or(&[]));
    let dest = Path::new("/").join(m.destination());
    let source = bind_source(m, s.bundle)?;
    let target = bind_target(root, &source, &dest)?;
    idmapped::attach(tree, &target, &dest)?;
    let mounted = remount_bind(root, &dest, opts.flags, opts.cleared)?;
    set_propagation_and_attrs(&mounted, &dest, &opts, true)
}

/// Returns the /proc path of the (re-resolved) mounted target.
fn bind_mount(
    root: &Root,
    m: &Mount,
    dest: &Path,
    opts: &MountOptions,
    s: &Setup,
) -> Result<OwnedFd> {
    let source = bind_source(m, s.bundle)?;
    let target = bind_target(root, &source, dest)?;
    bind_then_remount(root, &source, &target, dest, opts.flags, opts.cleared)
}

/// Where a bind mount's source is: relative paths are relative to the bundle.
pub(crate) fn bind_source(m: &Mount, bundle: &Path) -> Result<PathBuf> {
    let source = m.source().as_ref().ok_or_else(|| {
        Error::Config(format!(
            "bind mount on {} has no source",
            m.destination().display()
        ))
    })?;
    Ok(if source.is_absolute() {
        source.clone()
    } else {
        bundle.join(source)
    })
}

/// The destination of a bind mount of `source`, made in the rootfs if missing: a
/// directory or a file, as the source is.
fn bind_target(root: &Root, source: &Path, dest: &Path) -> Result<OwnedFd> {
    let meta = std::fs::metadata(source).ctx(|| {
        format!(
            "bind mount source {} (for {})",
            source.display(),
            dest.display()
        )
    })?;
    let kind = if meta.is_dir() { Kind::Dir } else { Kind::File };
    root.ensure(dest, kind, false)
}

/// Bind `source` onto `target` (the open destination `dest`), then give the new mount
/// `flags`: a bind mount takes no flags but MS_REC when it is made, so the rest (read-only,
/// nosuid, ...) needs a remount of the mount just made.
fn bind_then_remount(
    root: &Root,
    source: &Path,
    target: &OwnedFd,
    dest: &Path,
    flags: MsFlags,
    cleared: MsFlags,
) -> Result<OwnedFd> {
    let rec = flags & MsFlags::MS_REC;
    mount_err(
        mount(
            Some(source),
            fd_path(target).as_str(),
            None::<&str>,
            MsFlags::MS_BIND | rec,
            None::<&str>,
        ),
        || format!("bind mount {} on {}", source.display(), dest.display()),
    )?;
    remount_bind(root, dest, flags, cleared)
}

/// Give the bind mount just made on `dest` the `flags` a bind mount cannot take when it is
/// made (read-only, nosuid, ...). Returns the mounted target, looked up again: a descriptor
/// opened before still names the directory under the new mount.
fn remount_bind(root: &Root, dest: &Path, flags: MsFlags, cleared: MsFlags) -> Result<OwnedFd> {
    let mounted = reopen(root, dest)?;
    let extra = options::remount_flags(flags);
    if !extra.is_empty() {
        let rec = flags & MsFlags::MS_REC;
        remount(&fd_path(&mounted), extra | MsFlags::MS_BIND | rec, cleared)
            .map_err(|e| add_context(e, || format!("remount {} with {extra:?}", dest.display())))?;
    }
    Ok(mounted)
}

fn mount_fs(
    root: &Root,
    m: &Mount,
    typ: &str,
    dest: &Path,
    opts: &MountOptions,
    mount_label: Option<&str>,
) -> Result<OwnedFd> {
    // procfs or sysfs over a symlink is how CVE-2019-16884 escaped: refuse symlinks there.
    let strict = matches!(typ, "proc" | "sysfs");
    let target = root.ensure(dest, Kind::Dir, strict).map_err(|e| {
        if strict && e.errno() == Some(libc::ELOOP) {
            Error::Config(format!(
                "mount {typ} on {}: {} must be mounted on ordinary directory \
                 (the destination is a symlink; refused)",
                dest.display(),
                dest.display()
            ))
        } else {
            e
        }
    })?;
    let source = m
        .source()
        .as_ref()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|| typ.to_string());
    let flags = opts.flags - MsFlags::MS_REMOUNT;
    let mut data = opts.data_string();
    if let Some(context) = crate::security::lsm::mount_label_option(mount_label, typ) {
        data = if data.is_empty() {
            context
        } else {
            format!("{data},{context}")
        };
    }
    let target_path = fd_path(&target);
    let r = mount(
        Some(source.as_str()),
        target_path.as_str(),
        Some(typ),
        flags,
        (!data.is_empty()).then_some(data.as_str()),
    );
    match r {
        // Without a network namespace of its own (sysfs) or an IPC one (mqueue), a user
        // namespace may not mount these: give it the host's, read-only where asked.
        Err(nix::errno::Errno::EPERM) if matches!(typ, "sysfs" | "mqueue") => {
            let host = if typ == "sysfs" {
                "/sys"
            } else {
                "/dev/mqueue"
            };
            tracing::debug!(
                "mounting {typ} on {} was refused; binding {host}",
                dest.display()
            );
            bind_then_remount(
                root,
                Path::new(host),
                &target,
                dest,
                flags | MsFlags::MS_REC,
                opts.cleared,
            )
        }
        r => {
            mount_err(r, || {
                format!(
                    "mount {typ} ({source}) on {} with {flags:?} {data:?}",
                    dest.display()
                )
            })?;
            reopen(root, dest)
        }
    }
}

/// The cgroup filesystem: on v1 a tmpfs with one directory per hierarchy; on a unified
/// host the hierarchy itself. Inside a cgroup namespace the hierarchies are mounted fresh
/// (their root is the container's cgroup); otherwise the container's cgroup directories are
/// bind-mounted from the host.
fn mount_cgroup(root: &Root, dest: &Path, opts: &MountOptions, s: &Setup) -> Result<OwnedFd> {
    let flags = opts.flags - MsFlags::MS_REMOUNT;
    let target = root.ensure(dest, Kind::Dir, true)?;
    if let [only] = s.cgroups {
        if only.subdir.is_empty() {
            mount_hierarchy(root, &target, dest, only, flags, opts, s)?;
            return reopen(root, dest);
        }
    }
    mount_err(
        mount(
            Some("tmpfs"),
            fd_path(&target).as_str(),
            Some("tmpfs"),
            flags - MsFlags::MS_RDONLY,
            Some("mode=755"),
        ),
        || format!("mount tmpfs for cgroups on {}", dest.display()),
    )?;
    for cg in s.cgroups {
        let sub = dest.join(&cg.subdir);
        let t = root.ensure(&sub, Kind::Dir, true)?;
        mount_hierarchy(root, &t, &sub, cg, flags, opts, s)?;
        // Co-mounted controllers ("cpu,cpuacct") are also reachable by each name.
        if cg.subdir.contains(',') {
            for name in cg.subdir.split(',') {
                let link = dest.join(name);
                let (dir, file) = root.parent_dir(&link)?;
                match rustix::fs::symlinkat(cg.subdir.as_str(), &dir, &file) {
                    Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                    Err(e) => return Err(e).ctx(|| format!("symlink {}", link.display())),
                }
            }
        }
    }
    let mounted = reopen(root, dest)?;
    if flags.contains(MsFlags::MS_RDONLY) {
        remount(&fd_path(&mounted), flags, opts.cleared).map_err(|e| {
            add_context(e, || {
                format!("remount cgroup tmpfs {} read-only", dest.display())
            })
        })?;
    }
    Ok(mounted)
}

fn mount_hierarchy(
    root: &Root,
    target: &OwnedFd,
    shown: &Path,
    cg: &CgroupMount,
    flags: MsFlags,
    opts: &MountOptions,
    s: &Setup,
) -> Result<()> {
    if s.cgroup_ns {
        let data = (!cg.data.is_empty()).then_some(cg.data.as_str());
        mount_err(
            mount(
                Some("cgroup"),
                fd_path(target).as_str(),
                Some(cg.fstype),
                flags,
                data,
            ),
            || format!("mount {} ({}) on {}", cg.fstype, cg.data, shown.display()),
        )
    } else {
        bind_then_remount(
            root,
            &cg.host_dir,
            target,
            shown,
            flags | MsFlags::MS_REC,
            opts.cleared,
        )
        .map(drop)
    }
}

/// Remount with `flags`, keeping the flags the kernel locks on the existing mount (nosuid,
/// nodev, noexec and the atime mode) unless the options explicitly cleared them: inside a
/// user namespace, dropping a locked flag is EPERM.
fn remount(target: &str, flags: MsFlags, cleared: MsFlags) -> Result<()> {
    let keep = locked_flags(target) - cleared;
    mount(
        None::<&str>,
        target,
        None::<&str>,
        flags | keep | MsFlags::MS_REMOUNT,
        None::<&str>,
    )
    .ctx(|| format!("remount {target} with {:?}", flags | keep))
}

fn locked_flags(target: &str) -> MsFlags {
    use nix::sys::statvfs::{statvfs, FsFlags};
    let Ok(st) = statvfs(target) else {
        return MsFlags::empty();
    };
    let f = st.flags();
    let mut out = MsFlags::empty();
    for (fs, ms) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if f.contains(fs) {
            out |= ms;
        }
    }
    out
}

fn add_context(e: Error, what: impl FnOnce() -> String) -> Error {
    match e {
        Error::Os { source, .. } => Error::Os {
            what: what(),
            source,
        },
        e => e,
    }
}

/// mount_setattr(2) on a whole subtree.
fn set_recursive_attrs(fd: &impl std::os::fd::AsRawFd, set: u64, clr: u64) -> std::io::Result<()> {
    let mut attr = libc::mount_attr {
        attr_set: set,
        attr_clr: clr,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: `attr` is a valid mount_attr whose size we pass; the path is empty so the
    // kernel acts on `fd` itself (AT_EMPTY_PATH), recursively (AT_RECURSIVE).
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH | libc::AT_RECURSIVE,
            &mut attr as *mut libc::mount_attr,
            std::mem::size_of::<libc::mount_attr>(),
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Without a mount namespace of its own, the container's mounts are made in the runtime's:
/// the parent binds the rootfs onto itself first and makes that mount private, so that every
/// mount the init makes is beneath it, reaches no other namespace, and goes with it when
/// [`detach_inherited_ns_bind`] detaches it. Returns the new mount's id.
pub(crate) fn bind_in_inherited_ns(rootfs: &Path) -> Result<u64> {
    mount_err(
        mount(
            Some(rootfs),
            rootfs,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        ),
        || format!("bind mount the rootfs {} onto itself", rootfs.display()),
    )?;
    let id = top_mount_id(rootfs);
    let private = mount_err(
        mount(
            None::<&str>,
            rootfs,
            None::<&str>,
            MsFlags::MS_PRIVATE,
            None::<&str>,
        ),
        || format!("make the rootfs bind {} private", rootfs.display()),
    );
    let made = private.and(id);
    if made.is_err() {
        // Ours and only just made: the mount on top at `rootfs`.
        let _ = umount2(rootfs, MntFlags::MNT_DETACH);
    }
    made
}

/// The id of the mount on top at `path` (statx STATX_MNT_ID).
pub(crate) fn top_mount_id(path: &Path) -> Result<u64> {
    use rustix::fs::{AtFlags, StatxFlags, CWD};
    let st = rustix::fs::statx(CWD, path, AtFlags::empty(), StatxFlags::MNT_ID)
        .ctx(|| format!("statx (mount id) of {}", path.display()))?;
    Ok(st.stx_mnt_id)
}

/// Detach the rootfs bind [`bind_in_inherited_ns`] made, with every mount beneath it, if it
/// is still the mount on top at `rootfs` (so nothing else, such as an engine's overlay under
/// it, is ever unmounted).
pub(crate) fn detach_inherited_ns_bind(rootfs: &Path, mount_id: u64) -> Result<()> {
    match top_mount_id(rootfs) {
        Ok(id) if id == mount_id => {}
        // Already gone (a second delete, a reboot): nothing of ours is there.
        _ => return Ok(()),
    }
    umount2(rootfs, MntFlags::MNT_DETACH)
        .ctx(|| format!("detach the container's mounts under {}", rootfs.display()))
}

/// Take the root directory of process `pid` as ours (chroot to /proc/PID/root), for a
/// process exec'd into a container without a mount namespace of its own.
pub(crate) fn chroot_like(pid: i32) -> Result<()> {
    let root = format!("/proc/{pid}/root");
    nix::unistd::chroot(root.as_str()).ctx(|| format!("chroot to the container's root {root}"))?;
    nix::unistd::chdir("/").ctx(|| "chdir to / in the container")
}

/// Make the rootfs our root: pivot_root, or with `no_pivot` MS_MOVE + chroot (for ramfs
/// roots, where pivot_root is impossible); without a mount namespace of our own, chroot only
/// (pivot_root or a move would change the runtime's own root).
pub(crate) fn enter(rootfs: &Path, no_pivot: bool, own_mount_ns: bool) -> Result<()> {
    nix::unistd::chdir(rootfs).ctx(|| format!("chdir to the rootfs {}", rootfs.display()))?;
    if !own_mount_ns {
        nix::unistd::chroot(".").ctx(|| format!("chroot to {}", rootfs.display()))?;
    } else if no_pivot {
        mount_err(
            mount(
                Some(rootfs),
                "/",
                None::<&str>,
                MsFlags::MS_MOVE,
                None::<&str>,
            ),
            || format!("move the rootfs {} to /", rootfs.display()),
        )?;
        nix::unistd::chroot(".").ctx(|| format!("chroot to {}", rootfs.display()))?;
    } else {
        // pivot_root(".", ".") stacks the old root on top of the new one: no temporary
        // directory is needed, and unmounting "." then removes the old root.
        nix::unistd::pivot_root(".", ".").ctx(|| format!("pivot_root to {}", rootfs.display()))?;
        // The unmount must not propagate to the host's mounts.
        mount_err(
            mount(
                None::<&str>,
                ".",
                None::<&str>,
                MsFlags::MS_SLAVE | MsFlags::MS_REC,
                None::<&str>,
            ),
            || "make the old root a slave before detaching it".into(),
        )?;
        umount2(".", MntFlags::MNT_DETACH).ctx(|| "detach the old root")?;
    }
    nix::unistd::chdir("/").ctx(|| "chdir to / in the container")
}

/// After pivot_root: read-only and masked paths, the asked-for root propagation (only in a
/// mount namespace of the container's: in the runtime's, the root bind stays private), and
/// a read-only root.
pub(crate) fn finish(spec: &Spec, own_mount_ns: bool) -> Result<()> {
    let linux = spec.linux().as_ref();
    for p in linux
        .and_then(|l| l.readonly_paths().as_ref())
        .into_iter()
        .flatten()
    {
        readonly_path(Path::new(p))?;
    }
    for p in linux
        .and_then(|l| l.masked_paths().as_ref())
        .into_iter()
        .flatten()
    {
        mask_path(Path::new(p))?;
    }
    if let Some(p) = linux
        .and_then(|l| l.rootfs_propagation().as_deref())
        .and_then(propagation_option)
        .filter(|_| own_mount_ns)
    {
        mount_err(
            mount(None::<&str>, "/", None::<&str>, p, None::<&str>),
            || format!("set rootfs propagation {p:?}"),
        )?;
    }
    if spec
        .root()
        .as_ref()
        .and_then(|r| r.readonly())
        .unwrap_or(false)
    {
        remount("/", MsFlags::MS_BIND | MsFlags::MS_RDONLY, MsFlags::empty())
            .map_err(|e| add_context(e, || "remount the root read-only".into()))?;
    }
    Ok(())
}

fn readonly_path(p: &Path) -> Result<()> {
    if !p.exists() {
        return Ok(());
    }
    mount_err(
        mount(
            Some(p),
            p,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        ),
        || format!("bind mount read-only path {} onto itself", p.display()),
    )?;
    remount(
        &p.to_string_lossy(),
        MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_RDONLY,
        MsFlags::empty(),
    )
    .map_err(|e| add_context(e, || format!("remount {} read-only", p.display())))
}

fn mask_path(p: &Path) -> Result<()> {
    let Ok(meta) = std::fs::symlink_metadata(p) else {
        return Ok(());
    };
    if meta.is_dir() {
        mount_err(
            mount(
                Some("tmpfs"),
                p,
                Some("tmpfs"),
                MsFlags::MS_RDONLY,
                Some("size=0k"),
            ),
            || format!("mask directory {} with an empty tmpfs", p.display()),
        )
    } else {
        mount_err(
            mount(
                Some("/dev/null"),
                p,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            ),
            || format!("mask {} with /dev/null", p.display()),
        )
    }
}
