//! Restore: a container made from a bundle as create makes it (state directory, cgroup with
//! its limits, hooks at the moment create runs them), whose processes CRIU brings back from a
//! checkpoint instead of a clone. Any failure undoes everything (no state directory, cgroup,
//! mount or process is left).

use super::criu::{ext_mount, inherit_fd, Criu, Notify};
use super::{
    cgroup_binds, common_opts, external_mounts, joined_netns, load_descriptors,
    refuse_joined_user_ns, refuse_unsupported, require_lazy_pages, with_log, JOINED_NETNS,
};
use super::{CriuFlags, Dirs};
use crate::container::Container;
use crate::error::{Context, Error, Result};
use crate::hooks::{self, Kind};
use crate::process::create::{create_cgroup, resources_with_default_devices, Prepared, Undo};
use crate::process::CreateOptions;
use crate::process::Stdio;
use crate::state::{make_state_dir, write_atomic, CRIU_CGYARD, CRIU_ROOT, INIT_RECORD};
use crate::sys;
use cgroups::{Layout, Manager};
use nix::mount::MsFlags;
use rust_criu::rust_criu_protobuf::rpc::{self, Criu_req_type};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

const RESTORE_LOG: &str = "restore.log";
/// The socket a `criu lazy-pages` daemon listens on, in its work directory.
const LAZY_PAGES_SOCKET: &str = "lazy-pages.socket";
// The rootfs is bound for CRIU at `state::CRIU_ROOT` in the state directory: CRIU wants the
// root of the restored mount namespace to be a mount point.

/// How to restore a container (`runr restore`'s flags). `create` gives the id, bundle, pid
/// file, console socket and the rest as for create. Its `stdio` may be `Stdio::Fds`: the
/// restored init gets those where its own stdio was a pipe or file from outside at the dump;
/// otherwise (`Inherit`; `Piped` is not supported) it gets the caller's own 0, 1 and 2.
#[derive(Debug, Default)]
pub struct RestoreOptions {
    pub create: CreateOptions,
    pub criu: CriuFlags,
}

/// Restore the container checkpointed into `o.criu.image_path` as `o.create.id`. The
/// restored container is running; its init is a child of the caller (who may wait for it).
pub fn restore(o: &RestoreOptions) -> Result<Container> {
    refuse_unsupported(&o.criu)?;
    let criu = Criu::locate()?;
    if o.criu.lazy_pages {
        require_lazy_pages(&criu)?;
        lazy_daemon_listens(&o.criu)?;
    }
    let (p, planned_cgroup) = Prepared::new(&o.create)?;
    if !p.plan.own_mount {
        return Err(Error::Invalid(
            "runr restores only containers with a mount namespace of their own".into(),
        ));
    }
    refuse_joined_user_ns(&p.plan)?;
    // CRIU hands a terminal's new master over only once everything is made.
    if p.terminal && o.create.console_socket.is_none() {
        return Err(Error::Invalid(
            "the container has a terminal: restore needs --console-socket".into(),
        ));
    }
    // Before anything is made: a wrong image path fails here.
    let descriptors = load_descriptors(&o.criu.image_path)?;
    let dirs = Dirs::open(&o.criu, false)?;

    let cgroup: Box<dyn Manager>;
    let lock = make_state_dir(&o.create.root, &p.dir)?;
    let mut undo = Undo {
        dir: Some(p.dir.clone()),
        cgroup: None,
        rootfs_bind: None,
    };
    let record_path = p.dir.join(INIT_RECORD);
    let mut record = p.init_record(planned_cgroup.as_ref(), None);
    // CRIU will work in the cgroup: if runr dies, `delete` kills everything there.
    record.criu_restore = true;
    let access = match p.plan.new_user {
        true => ImageAccess::plan(&o.criu.image_path, &p.spec)?,
        false => None,
    };
    // Recorded before it is granted: if runr dies, `delete` takes it back.
    record.image_acl = access.as_ref().map(|a| (a.dir.clone(), a.mode));
    record.write(&record_path)?;
    let resources = resources_with_default_devices(&p.spec);
    cgroup = create_cgroup(planned_cgroup, resources.as_ref(), p.rootless)?;
    undo.cgroup = Some(cgroup.as_ref());
    // If runr dies while CRIU works, whatever removes the state directory detaches this
    // first (`state::remove_state_dir`).
    let root = RootBind::new(&p.rootfs, &p.dir.join(CRIU_ROOT))?;
    give_read_only_root_a_tmp(&p.spec, &p.rootfs);

    // Released (the directory as it was) once CRIU is done, before any error returns.
    let _access = access.map(ImageAccess::grant).transpose()?;
    let stdio = StdioForCriu::new(&descriptors, &o.create.stdio)?;
    let mut opts = common_opts(&o.criu, &dirs, RESTORE_LOG);
    opts.set_root(root.path.to_string_lossy().into_owned());
    // The restored init becomes our child, as a created one is.
    opts.set_rst_sibling(true);
    opts.set_notify_scripts(true);
    if p.terminal {
        opts.set_orphan_pts_master(true);
    }
    let cgroup_binds = cgroup_binds(&p.spec, &p.plan, Some(&p.layout), &cgroup.paths())?;
    for (dest, source) in external_mounts(&p.spec, &p.bundle, &p.plan, None)
        .into_iter()
        .chain(cgroup_binds)
    {
        opts.ext_mnt.push(ext_mount(dest, source));
    }
    opts.cg_root = cgroup_roots(&p.layout, &cgroup.paths());
    let yard = CgroupYard::new(&p.dir.join(CRIU_CGYARD))?;
    opts.set_cgroup_yard(yard.0.to_string_lossy().into_owned());
    opts.inherit_fd = stdio.inherit_fds();
    let mut inherit = dirs.raw();
    inherit.extend(stdio.raw());
    // A network namespace joined by path was dumped as external: CRIU puts the tasks in
    // the one the config names now.
    let netns = match joined_netns(&p.plan) {
        Some(path) => Some(
            std::fs::File::open(path)
                .ctx(|| format!("open network namespace {}", path.display()))?,
        ),
        None => None,
    };
    if let Some(ns) = &netns {
        opts.inherit_fd
            .push(inherit_fd(JOINED_NETNS.into(), ns.as_raw_fd()));
        inherit.push(ns.as_raw_fd());
    }

    let mut hook_state = p.hook_state(&o.create.id);
    let hooks = p.spec.hooks().as_ref();
    let mut restored_pid = 0;
    let mut on_notify = |n: Notify| -> Result<()> {
        match n.script {
            "setup-namespaces" => {
                hook_state.pid = n.pid;
                hooks::run(Kind::Prestart, hooks, &hook_state)?;
                hooks::run(Kind::CreateRuntime, hooks, &hook_state)
            }
            "orphan-pts-master" => {
                let master = n.fd.ok_or_else(|| {
                    Error::Invalid("criu sent no pty master with orphan-pts-master".into())
                })?;
                match &o.create.console_socket {
                    Some(sock) => crate::console::send_to_socket(sock, &master),
                    None => Err(Error::Invalid(
                        "the container has a terminal: restore needs --console-socket".into(),
                    )),
                }
            }
            "post-restore" => {
                // Recorded before CRIU lets the tree run: if runr dies from here on,
                // `delete` finds and kills the restored init.
                restored_pid = n.pid;
                let (start, _) = sys::process_start(n.pid).ok_or_else(|| {
                    Error::Invalid(format!("the restored init (pid {}) died at once", n.pid))
                })?;
                record.init_pid = n.pid;
                record.init_start_time = start;
                record.write(&record_path)
            }
            _ => Ok(()),
        }
    };
    // In the container's cgroup, as runc puts it: what CRIU forks starts there, and
    // whatever ends the cgroup's processes ends CRIU's too, even once runr is gone.
    let in_cgroup = Some(cgroup.as_ref());
    let resp = criu.request(
        Criu_req_type::RESTORE,
        opts,
        &inherit,
        in_cgroup,
        &mut on_notify,
    );
    drop(yard);
    let resp = match resp {
        Ok(resp) => resp,
        Err(e) => {
            // CRIU failed after it had restored the tree (post-restore): the tree goes too.
            if restored_pid > 0 {
                drop(KillOnDrop(restored_pid, cgroup.as_ref()));
            }
            let e = with_log(e, &dirs.work_path.join(RESTORE_LOG));
            let e = limits_hint(read_only_root_hint(e, &p.rootfs), cgroup.as_ref());
            return Err(criu.explain(e));
        }
    };
    drop(root);
    let pid = match resp.restore.as_ref().map(|r| r.pid()) {
        Some(pid) if pid > 0 => pid,
        _ => restored_pid,
    };
    // From here a failure must not leave the restored tree running.
    let guard = KillOnDrop(pid, cgroup.as_ref());
    let (start, _) = sys::process_start(pid)
        .ok_or_else(|| Error::Invalid(format!("the restored init (pid {pid}) died at once")))?;
    if pid != record.init_pid {
        record.init_pid = pid;
        record.init_start_time = start;
        record.write(&record_path)?;
    }
    let state = p.saved_state(&o.create, pid, start, cgroup.as_ref(), None);
    state.write(&p.dir)?;
    if let Some(pid_file) = &o.create.pid_file {
        write_atomic(pid_file, pid.to_string().as_bytes())?;
    }
    std::mem::forget(guard);
    undo.commit();
    let io = Default::default();
    Ok(Container::new_created(p.dir, state, lock, None, io))
}

/// CRIU moves into the restored root by way of its /tmp, or of a directory it makes there
/// when there is no /tmp, which it cannot on a root that was read-only at the dump
/// (`root.readonly`, as `runr spec` writes it; runc's restores fail the same way). An empty
/// /tmp is made in such a rootfs (from the host, where it is not read-only): it is where
/// any image has one.
fn give_read_only_root_a_tmp(spec: &oci_spec::runtime::Spec, rootfs: &Path) {
    let read_only = spec.root().as_ref().and_then(|r| r.readonly()) == Some(true);
    let tmp = rootfs.join("tmp");
    if !read_only || std::fs::symlink_metadata(&tmp).is_ok() {
        return;
    }
    use std::os::unix::fs::DirBuilderExt;
    if let Err(e) = std::fs::DirBuilder::new().mode(0o1777).create(&tmp) {
        tracing::warn!("make {} for CRIU: {e}", tmp.display());
        return;
    }
    // The mode without the umask, on the directory just made: never through a symlink a
    // container sharing the rootfs could put there meanwhile.
    use rustix::fs::{Mode, OFlags};
    let flags = OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    if let Ok(dir) = rustix::fs::open(&tmp, flags, Mode::empty()) {
        let _ = rustix::fs::fchmod(&dir, Mode::from_raw_mode(0o1777));
    }
}

/// The error of a restore that failed for want of a /tmp in a read-only root (see
/// [`give_read_only_root_a_tmp`]), saying so.
fn read_only_root_hint(e: Error, rootfs: &Path) -> Error {
    match e {
        Error::Invalid(m) if m.contains("temporary directory: Read-only file system") => {
            Error::Invalid(format!(
                "{m}; the container's root was read-only when it was checkpointed \
                 (root.readonly), and CRIU needs a /tmp directory in a read-only root: \
                 make one in {}",
                rootfs.display()
            ))
        }
        e => e,
    }
}

/// The error of a restore that failed where the container's cgroup refused a fork or ran
/// out of memory, saying that CRIU works inside the container's limits (as with runc).
fn limits_hint(e: Error, cgroup: &dyn cgroups::Manager) -> Error {
    let forks_refused = cgroup.paths().iter().any(|(name, dir)| {
        (name == "pids" || name.is_empty())
            && std::fs::read_to_string(dir.join("pids.events")).is_ok_and(|t| {
                t.lines()
                    .any(|l| l.strip_prefix("max ").is_some_and(|n| n.trim() != "0"))
            })
    });
    let hit = match (forks_refused, cgroup.oom_kill_count() > 0) {
        (true, _) => "its pids limit refused a fork",
        (false, true) => "its memory limit killed a process",
        (false, false) => return e,
    };
    Error::Invalid(format!(
        "{e}; CRIU restores inside the container's cgroup (as with runc), and {hit}: the \
         limits must leave room for CRIU's own processes too"
    ))
}

/// A lazy restore hands the restored tasks' userfaultfds to a `criu lazy-pages` daemon over
/// its socket `lazy-pages.socket` in CRIU's work directory (the daemon's `-W`, or its `-D`):
/// without one there, CRIU would fail late and obscurely.
fn lazy_daemon_listens(f: &CriuFlags) -> Result<()> {
    let work = f.work_path.as_ref().unwrap_or(&f.image_path);
    let sock = work.join(LAZY_PAGES_SOCKET);
    match std::fs::symlink_metadata(&sock) {
        Ok(m) if m.file_type().is_socket() => Ok(()),
        _ => Err(Error::Invalid(format!(
            "--lazy-pages: no lazy-pages daemon at {}: start `criu lazy-pages --page-server \
             --address ADDRESS --port PORT -D {}` (ADDRESS:PORT the checkpoint's \
             --page-server) first, with the work directory of this restore",
            sock.display(),
            f.image_path.display()
        ))),
    }
}

/// The restored tasks of a container in a user namespace of its own read some images (the
/// tty infos) as the namespace's root, which on the host is the mapped uid: a checkpoint's
/// directory is root's alone (mode 0700). For the restore, a POSIX ACL lets that uid search
/// it (and no one else: the files are CRIU's 0644); dropping this takes the ACL away and
/// puts the mode back. Two restores from one directory take turns (a lock on it), so
/// neither takes the ACL away under the other.
struct ImageAccess {
    dir: PathBuf,
    mode: u32,
    uid: u32,
    granted: bool,
    _lock: std::fs::File,
}

const ACL_XATTR: &str = "system.posix_acl_access";

impl ImageAccess {
    /// Lock `dir` and say what the container of `spec` needs of it, if anything.
    fn plan(dir: &Path, spec: &oci_spec::runtime::Spec) -> Result<Option<ImageAccess>> {
        let Some(uid) = spec
            .linux()
            .as_ref()
            .and_then(|l| l.uid_mappings().as_ref())
            .and_then(|m| m.iter().find(|m| m.container_id() == 0))
            .map(|m| m.host_id())
        else {
            return Ok(None);
        };
        let lock = crate::state::open_dir(dir)?;
        crate::state::flock(&lock, dir, libc::LOCK_EX)?;
        let meta = lock.metadata().ctx(|| format!("stat {}", dir.display()))?;
        let mode = meta.mode() & 0o7777;
        if uid == 0 || mode & 0o001 != 0 || meta.uid() == uid {
            return Ok(None);
        }
        // A directory with an ACL of its own is left as it is (CRIU says if it cannot read).
        if rustix::fs::getxattr(dir, ACL_XATTR, &mut [0u8; 0]).is_ok() {
            return Ok(None);
        }
        Ok(Some(ImageAccess {
            dir: dir.into(),
            mode,
            uid,
            granted: false,
            _lock: lock,
        }))
    }

    fn grant(mut self) -> Result<ImageAccess> {
        let (mode, uid) = (self.mode, self.uid);
        // Linux's xattr form of an ACL: version 2, then (tag, perm, id) entries by tag.
        const UNDEFINED: u32 = u32::MAX;
        let owner = (mode >> 6) & 7;
        let entries: [(u16, u32, u32); 5] = [
            (0x01, owner, UNDEFINED), // the owner: as before
            (0x02, 1, uid),           // the mapped root: search only
            (0x04, (mode >> 3) & 7, UNDEFINED),
            (0x10, ((mode >> 3) & 7) | 1, UNDEFINED), // the mask lets the entry through
            (0x20, mode & 7, UNDEFINED),
        ];
        let mut acl = 2u32.to_le_bytes().to_vec();
        for (tag, perm, id) in entries {
            acl.extend_from_slice(&tag.to_le_bytes());
            acl.extend_from_slice(&(perm as u16).to_le_bytes());
            acl.extend_from_slice(&id.to_le_bytes());
        }
        rustix::fs::setxattr(&self.dir, ACL_XATTR, &acl, rustix::fs::XattrFlags::CREATE)
            .map_err(std::io::Error::from)
            .ctx(|| {
                format!(
                    "let the container's root (uid {uid}) search {} for CRIU (an ACL)",
                    self.dir.display()
                )
            })?;
        self.granted = true;
        Ok(self)
    }
}

impl Drop for ImageAccess {
    fn drop(&mut self) {
        if self.granted {
            take_back_image_acl(&self.dir, self.mode);
        }
    }
}

/// Take away the ACL [`ImageAccess`] gave `dir` and put its `mode` back (also what
/// `delete` does after a restore killed while it was granted).
pub(crate) fn take_back_image_acl(dir: &Path, mode: u32) {
    match rustix::fs::removexattr(dir, ACL_XATTR) {
        Ok(()) | Err(rustix::io::Errno::NODATA) => {}
        Err(e) => tracing::warn!("remove the ACL from {}: {e}", dir.display()),
    }
    if let Err(e) = rustix::fs::chmod(dir, rustix::fs::Mode::from_raw_mode(mode)) {
        tracing::warn!("restore the mode of {}: {e}", dir.display());
    }
}

/// CRIU's cgroup yard (`state::CRIU_CGYARD`): an empty directory of the state directory,
/// where CRIU mounts each hierarchy it needs. Left to itself, CRIU makes its yard in its
/// work directory, where the mounts stay if CRIU is killed mid-way; here, whatever removes
/// the state directory detaches them first. CRIU unmounts nothing in a yard it is given:
/// dropping this does.
struct CgroupYard(PathBuf);

impl CgroupYard {
    fn new(path: &Path) -> Result<CgroupYard> {
        std::fs::create_dir(path).ctx(|| format!("create {}", path.display()))?;
        Ok(CgroupYard(path.into()))
    }
}

impl Drop for CgroupYard {
    fn drop(&mut self) {
        if let Err(e) = crate::state::remove_cgroup_yard(&self.0) {
            tracing::warn!("remove {}: {e}", self.0.display());
        }
    }
}

/// The rootfs bound at a path of the state directory for as long as CRIU needs it.
struct RootBind {
    path: PathBuf,
}

impl RootBind {
    fn new(rootfs: &Path, path: &Path) -> Result<RootBind> {
        std::fs::create_dir(path).ctx(|| format!("create {}", path.display()))?;
        nix::mount::mount(
            Some(rootfs),
            path,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .ctx(|| format!("bind mount {} on {}", rootfs.display(), path.display()))?;
        // Private: what CRIU mounts under it must not spread to the rootfs's peers.
        let bound = RootBind { path: path.into() };
        nix::mount::mount(
            None::<&str>,
            path,
            None::<&str>,
            MsFlags::MS_PRIVATE | MsFlags::MS_REC,
            None::<&str>,
        )
        .ctx(|| format!("make {} private", path.display()))?;
        Ok(bound)
    }
}

impl Drop for RootBind {
    fn drop(&mut self) {
        if let Err(e) = nix::mount::umount2(&self.path, nix::mount::MntFlags::MNT_DETACH) {
            tracing::warn!("unmount {}: {e}", self.path.display());
        }
        let _ = std::fs::remove_dir(&self.path);
    }
}

/// The new stdio (`create.stdio`'s descriptors, or our own stdin, stdout and stderr), for
/// CRIU to give the restored init where its own were pipes or files from outside at the dump
/// (as an engine hands a container new pipes on restore).
struct StdioForCriu {
    /// (key CRIU knows the old pipe by, our descriptor for it)
    fds: Vec<(String, OwnedFd)>,
}

impl StdioForCriu {
    fn new(descriptors: &[String], stdio: &Stdio) -> Result<StdioForCriu> {
        let given: [BorrowedFd<'_>; 3] = match stdio {
            Stdio::Fds {
                stdin,
                stdout,
                stderr,
            } => [stdin.as_fd(), stdout.as_fd(), stderr.as_fd()],
            // SAFETY: 0, 1 and 2 are open for as long as this process runs.
            Stdio::Inherit => [0, 1, 2].map(|n| unsafe { BorrowedFd::borrow_raw(n) }),
            Stdio::Piped => {
                return Err(Error::Invalid(
                    "a restore cannot make new pipes for the container's stdio: give it \
                     descriptors (Stdio::Fds) or let it inherit the caller's"
                        .into(),
                ))
            }
        };
        let mut fds = Vec::new();
        for (n, link) in descriptors.iter().enumerate().take(3) {
            if !link.starts_with("pipe:") && !link.starts_with("file[") {
                continue;
            }
            let dup = rustix::io::fcntl_dupfd_cloexec(given[n], 3)
                .map_err(std::io::Error::from)
                .ctx(|| format!("duplicate descriptor {n} for criu"))?;
            fds.push((link.clone(), dup));
        }
        Ok(StdioForCriu { fds })
    }

    fn inherit_fds(&self) -> Vec<rpc::Inherit_fd> {
        self.fds
            .iter()
            .map(|(key, fd)| inherit_fd(key.clone(), fd.as_raw_fd()))
            .collect()
    }

    fn raw(&self) -> Vec<i32> {
        self.fds.iter().map(|(_, fd)| fd.as_raw_fd()).collect()
    }
}

/// Where CRIU is to put the restored tasks: the new container's cgroup in each hierarchy,
/// as a path from that hierarchy's root.
fn cgroup_roots(layout: &Layout, paths: &[(String, PathBuf)]) -> Vec<rpc::Cgroup_root> {
    let mut out = Vec::new();
    for (name, dir) in paths {
        let h = match name.as_str() {
            "" => layout.unified(),
            n => layout.v1().iter().find(|h| h.name == n),
        };
        let Some(h) = h else { continue };
        let Ok(rel) = dir.strip_prefix(&h.mountpoint) else {
            continue;
        };
        let mut root = rpc::Cgroup_root::new();
        if !name.is_empty() {
            root.set_ctrl(name.clone());
        }
        root.set_path(h.mount_root.join(rel).to_string_lossy().into_owned());
        out.push(root);
    }
    out
}

/// The end of a restored tree whose container could not be recorded: the init (our child,
/// reaped) and, without a pid namespace of its own, whatever else the tree holds in its
/// cgroup, which could not be removed otherwise.
struct KillOnDrop<'a>(i32, &'a dyn cgroups::Manager);

impl Drop for KillOnDrop<'_> {
    fn drop(&mut self) {
        if self.0 > 0 {
            crate::process::children::kill_and_reap(self.0);
        }
        if let Err(e) = crate::container::kill_all_and_wait(self.1) {
            tracing::warn!("cleanup after a failed restore: {e}");
        }
    }
}
