//! Checkpoint and restore with CRIU: [`checkpoint`] dumps a running container's process tree
//! into an image directory (then removes the container, unless it is left running), and
//! [`restore`] brings a container back from such a directory, under any id, through the same
//! steps create takes (state directory, cgroup with its limits, hooks), with CRIU in place of
//! the clone.
//!
//! CRIU is found as `$RUNR_CRIU` or `criu` on PATH ([`criu::Criu::locate`]) and driven over
//! its RPC (`criu swrk`), see [`criu`].

pub(crate) mod criu;
mod restore;

pub(crate) use restore::take_back_image_acl;
pub use restore::{restore, RestoreOptions};

use crate::container::Container;
use crate::error::{Context, Error, Result, WrongStatus};
use crate::namespaces::Plan;
use crate::state::Status;
use criu::Criu;
use oci_spec::runtime::Spec;
use rust_criu::rust_criu_protobuf::rpc::{self, Criu_opts, Criu_req_type};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

/// CRIU's log in the work directory.
const DUMP_LOG: &str = "dump.log";
/// The container's stdio as it was at the dump (what /proc/PID/fd/0..2 linked to), kept in
/// the image directory: restore hands the new stdio to CRIU in place of these.
const DESCRIPTORS: &str = "descriptors.json";

/// How CRIU treats the container's cgroups (`--manage-cgroups-mode`), as CRIU names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupsMode {
    /// Restore properties only of cgroups CRIU itself creates (CRIU's default).
    Soft,
    /// Restore every property.
    Full,
    /// Like full, and fail if a cgroup's properties cannot be restored.
    Strict,
    /// Leave cgroups alone: neither dumped nor restored.
    Ignore,
}

impl CgroupsMode {
    pub fn from_name(name: &str) -> Option<CgroupsMode> {
        match name {
            "soft" => Some(CgroupsMode::Soft),
            "full" => Some(CgroupsMode::Full),
            "strict" => Some(CgroupsMode::Strict),
            "ignore" => Some(CgroupsMode::Ignore),
            _ => None,
        }
    }

    fn rpc(self) -> rpc::Criu_cg_mode {
        match self {
            CgroupsMode::Soft => rpc::Criu_cg_mode::SOFT,
            CgroupsMode::Full => rpc::Criu_cg_mode::FULL,
            CgroupsMode::Strict => rpc::Criu_cg_mode::STRICT,
            CgroupsMode::Ignore => rpc::Criu_cg_mode::IGNORE,
        }
    }
}

/// The options checkpoint and restore share (runc's flags of the same names).
#[derive(Debug, Clone, Default)]
pub struct CriuFlags {
    /// Where the images are (written by checkpoint, read by restore).
    pub image_path: PathBuf,
    /// Where CRIU writes its log and work files; the image directory if unset.
    pub work_path: Option<PathBuf>,
    pub tcp_established: bool,
    pub ext_unix_sk: bool,
    pub shell_job: bool,
    pub file_locks: bool,
    pub manage_cgroups_mode: Option<CgroupsMode>,
    /// Namespaces CRIU creates empty instead of dumping or restoring them (only `network`).
    pub empty_ns: Vec<String>,
    pub auto_dedup: bool,
    /// Lazy migration: the dump serves the memory instead of writing it (see
    /// [`checkpoint`]); the restore has a `criu lazy-pages` daemon fill it in on demand.
    pub lazy_pages: bool,
}

/// How to checkpoint a container (`runr checkpoint`'s flags).
#[derive(Debug, Default)]
pub struct CheckpointOptions {
    pub criu: CriuFlags,
    /// The previous (pre-)dump's image directory, relative to this one's.
    pub parent_path: Option<PathBuf>,
    /// Keep the container running after the dump.
    pub leave_running: bool,
    /// Dump only the memory (for iterative migration).
    pub pre_dump: bool,
    /// With `criu.lazy_pages`: checkpoint writes one NUL byte to this descriptor once CRIU's
    /// lazy-pages server is ready (the moment to start the restoring side).
    pub status_fd: Option<OwnedFd>,
    /// ADDRESS:PORT of a page server to send the pages to; with `criu.lazy_pages`, where
    /// CRIU serves them itself (it listens on PORT of every address: CRIU's RPC takes only
    /// the port of a lazy dump's server).
    pub page_server: Option<String>,
}

/// Dump container `c` (running or paused) into `o.criu.image_path`. The container is gone
/// afterwards (as after `delete`, poststop hooks run; their failures are the warnings
/// returned) unless `o.leave_running`. If the dump fails the container goes on as it was.
///
/// With `o.criu.lazy_pages` the memory is not written: CRIU serves it from the frozen
/// container on `o.page_server`'s port, and this returns once a lazy restore (through a
/// `criu lazy-pages` daemon) has fetched every page. As with runc, the container is then
/// gone, or with `o.leave_running` runs on.
pub fn checkpoint(c: Container, o: &CheckpointOptions) -> Result<Vec<String>> {
    let status = c.status();
    if !matches!(status, Status::Running | Status::Paused) {
        return Err(Error::Status(WrongStatus::NotRunning));
    }
    refuse_unsupported(&o.criu)?;
    if o.status_fd.is_some() && !o.criu.lazy_pages {
        // runc ignores it then; a caller waiting for the byte would wait forever.
        return Err(Error::Invalid(
            "--status-fd is only for --lazy-pages (CRIU reports on it when its lazy-pages \
             server is ready); a checkpoint without --lazy-pages never writes to it"
                .into(),
        ));
    }
    if o.criu.lazy_pages && o.page_server.is_none() {
        return Err(Error::Invalid(
            "--lazy-pages needs --page-server ADDRESS:PORT: the port CRIU serves the pages \
             on, for `criu lazy-pages --page-server --port PORT` on the restoring side"
                .into(),
        ));
    }
    if o.criu.lazy_pages && o.pre_dump {
        return Err(Error::Invalid(
            "--lazy-pages and --pre-dump do not go together".into(),
        ));
    }
    let saved = c.saved();
    let plan = plan_of(&saved.config)?;
    if !plan.own_mount {
        return Err(Error::Invalid(
            "runr checkpoints only containers with a mount namespace of their own (CRIU \
             cannot restore one whose mounts are in the runtime's namespace)"
                .into(),
        ));
    }
    refuse_joined_user_ns(&plan)?;
    let criu = Criu::locate()?;
    if o.pre_dump {
        if !criu.features(want(|f| f.set_mem_track(true)))?.mem_track() {
            return Err(Error::Invalid(format!(
                "--pre-dump needs memory change tracking, which this kernel does not offer \
                 (`{} check --feature mem_dirty_track` fails)",
                criu.path.display()
            )));
        }
        return Err(Error::Invalid(
            "--pre-dump is not supported by runr yet (it sends CRIU no PRE_DUMP request); \
             checkpoint without it"
                .into(),
        ));
    }
    if o.criu.lazy_pages {
        require_lazy_pages(&criu)?;
        lazy_server_pipes()?;
    }
    let status_fd = o.status_fd.as_ref().map(writable_status_fd).transpose()?;
    let dirs = Dirs::open(&o.criu, true)?;
    let pid = saved.init_pid;
    let mut opts = common_opts(&o.criu, &dirs, DUMP_LOG);
    save_descriptors(pid, &o.criu.image_path, &mut opts)?;
    if joined_netns(&plan).is_some() {
        // Not the container's to dump: CRIU records it by key, and restore joins it again.
        let link = format!("/proc/{pid}/ns/net");
        let ino = std::fs::metadata(&link)
            .ctx(|| format!("stat {link}"))?
            .ino();
        opts.external.push(format!("net[{ino}]:{JOINED_NETNS}"));
    }
    opts.set_pid(pid);
    opts.set_root(saved.rootfs.to_string_lossy().into_owned());
    opts.set_leave_running(o.leave_running);
    if let Some(parent) = &o.parent_path {
        opts.set_parent_img(parent.to_string_lossy().into_owned());
    }
    if let Some(addr) = &o.page_server {
        opts.ps = protobuf::MessageField::some(page_server(addr)?);
    }
    if o.criu.lazy_pages {
        // CRIU says on its RPC ("status-ready") when the lazy-pages server listens.
        opts.set_notify_scripts(true);
    }
    if let Some(freezer) = freezer_dir(&c) {
        opts.set_freeze_cgroup(freezer.to_string_lossy().into_owned());
    }
    // A terminal's pty master is outside the container: CRIU dumps the slave side alone.
    if terminal(&saved.config) {
        opts.set_orphan_pts_master(true);
    }
    let cgroup_binds = cgroup_binds(&saved.config, &plan, None, &saved.cgroup_paths)?;
    for (dest, _) in external_mounts(&saved.config, &saved.bundle, &plan, Some(pid))
        .into_iter()
        .chain(cgroup_binds)
    {
        opts.ext_mnt.push(criu::ext_mount(dest.clone(), dest));
    }
    let mut status_fd = status_fd;
    let mut on_notify = |n: criu::Notify| -> Result<()> {
        if n.script == "status-ready" {
            if let Some(fd) = status_fd.take() {
                rustix::io::write(fd, &[0u8])
                    .map_err(std::io::Error::from)
                    .ctx(|| "write the ready byte to --status-fd")?;
            }
        }
        Ok(())
    };
    let dumped = criu.request(Criu_req_type::DUMP, opts, &dirs.raw(), None, &mut on_notify);
    if let Err(e) = dumped {
        // CRIU thaws what it froze when it fails, not when it dies (killed by ^C, or
        // crashed): a container that ran goes on running.
        if status == Status::Running {
            thaw_after_dump(&c);
        }
        return Err(criu.explain(with_log(e, &dirs.work_path.join(DUMP_LOG))));
    }
    if o.leave_running {
        // A paused container stays paused: CRIU thaws only what it froze itself.
        return Ok(Vec::new());
    }
    // CRIU killed the processes: what remains (state, cgroup) goes as with delete.
    let id = c.id().to_string();
    c.delete(true).map_err(|e| {
        Error::Invalid(format!(
            "the checkpoint is written to {}, but removing container {id} after it failed \
             (`delete --force {id}` removes the rest): {e}",
            o.criu.image_path.display()
        ))
    })
}

/// Thaw container `c`, running before the dump, if a dump that did not finish left it frozen.
fn thaw_after_dump(c: &Container) {
    if let Err(e) = crate::container::thaw_if_frozen(c.cgroup().as_ref()) {
        tracing::warn!(
            "thaw container {} after the failed checkpoint (`runr resume` it): {e}",
            c.id()
        );
    }
}

/// A feature-check request for the features `set` sets.
fn want(set: impl FnOnce(&mut rpc::Criu_features)) -> rpc::Criu_features {
    let mut f = rpc::Criu_features::new();
    set(&mut f);
    f
}

/// Lazy pages need userfaultfd with its non-cooperative events, on both sides.
pub(crate) fn require_lazy_pages(criu: &Criu) -> Result<()> {
    if criu
        .features(want(|f| f.set_lazy_pages(true)))?
        .lazy_pages()
    {
        return Ok(());
    }
    Err(Error::Invalid(format!(
        "--lazy-pages needs userfaultfd with non-cooperative events, which this kernel or \
         CRIU does not offer (`{} check --feature uffd-noncoop` fails)",
        criu.path.display()
    )))
}

/// CRIU's lazy-pages server (the dump side) reads the pages through a pipe it sizes to
/// `8 * PAGE_SIZE / sizeof(struct pipe_buffer)` pages (40 bytes each on 64-bit kernels), which
/// the kernel rounds up to a power of two: 4 MiB with 4 KiB pages. Above fs.pipe-max-size that
/// needs CAP_SYS_RESOURCE; CRIU ignores the failure and breaks on the first page asked for,
/// after the container was frozen and the restoring side started. Refused up front instead.
fn lazy_server_pipes() -> Result<()> {
    const CAP_SYS_RESOURCE: u32 = 24;
    let status = std::fs::read_to_string("/proc/self/status").ctx(|| "read /proc/self/status")?;
    let effective = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .ok_or_else(|| Error::Invalid("no CapEff in /proc/self/status".into()))?;
    if effective & (1 << CAP_SYS_RESOURCE) != 0 {
        return Ok(());
    }
    let max_path = "/proc/sys/fs/pipe-max-size";
    let max: usize = std::fs::read_to_string(max_path)
        .ctx(|| format!("read {max_path}"))?
        .trim()
        .parse()
        .map_err(|e| Error::Invalid(format!("{max_path}: {e}")))?;
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .map_or(4096, |p| p as usize);
    let need = (8 * page / 40).next_power_of_two() * page;
    if max >= need {
        return Ok(());
    }
    Err(Error::Invalid(format!(
        "--lazy-pages: CRIU's lazy-pages server needs a pipe of {need} bytes, more than \
         fs.pipe-max-size ({max}) allows without CAP_SYS_RESOURCE, which runr lacks here; \
         the dump would break at the first page asked for (raise fs.pipe-max-size to {need}, \
         or run with CAP_SYS_RESOURCE). A lazy restore from local images (checkpoint without \
         --lazy-pages, `criu lazy-pages -D DIR`, restore --lazy-pages) needs neither"
    )))
}

/// `fd`, checked open for writing.
fn writable_status_fd(fd: &OwnedFd) -> Result<BorrowedFd<'_>> {
    let mode = rustix::fs::fcntl_getfl(fd)
        .map_err(std::io::Error::from)
        .ctx(|| "--status-fd: read its access mode")?;
    if !mode.contains(rustix::fs::OFlags::WRONLY) && !mode.contains(rustix::fs::OFlags::RDWR) {
        return Err(Error::Invalid(
            "--status-fd: the descriptor is not open for writing".into(),
        ));
    }
    Ok(fd.as_fd())
}

/// Flags neither command supports yet, refused rather than ignored.
fn refuse_unsupported(f: &CriuFlags) -> Result<()> {
    if let Some(ns) = f.empty_ns.iter().find(|n| n.as_str() != "network") {
        return Err(Error::Invalid(format!(
            "--empty-ns {ns}: runr supports only --empty-ns network"
        )));
    }
    Ok(())
}

/// A user namespace joined by path (not runr's own) would come back as a new one: CRIU
/// restores the user namespaces it dumped.
pub(crate) fn refuse_joined_user_ns(plan: &Plan) -> Result<()> {
    if plan.join_user && !plan.shares_our_user_ns()? {
        return Err(Error::Invalid(
            "runr does not checkpoint or restore containers that join a user namespace by \
             path (CRIU would restore a new one in its place)"
                .into(),
        ));
    }
    Ok(())
}

/// CRIU's key for a network namespace the container joined by path.
pub(crate) const JOINED_NETNS: &str = "runr-joined-netns";

/// The network namespace the container joins by path, if it does.
pub(crate) fn joined_netns(plan: &Plan) -> Option<&Path> {
    plan.join
        .iter()
        .find(|(f, _)| *f == nix::sched::CloneFlags::CLONE_NEWNET)
        .map(|(_, p)| p.as_path())
}

/// The namespaces `spec` gave the container, as create planned them.
fn plan_of(spec: &Spec) -> Result<Plan> {
    match spec.linux() {
        Some(linux) => Plan::new(linux),
        None => Ok(Plan::default()),
    }
}

fn terminal(spec: &Spec) -> bool {
    spec.process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false)
}

/// The image and work directories, open for CRIU.
pub(crate) struct Dirs {
    image: OwnedFd,
    work: Option<OwnedFd>,
    pub(crate) work_path: PathBuf,
}

impl Dirs {
    /// Open (with `create`, make) the directories `f` names.
    pub(crate) fn open(f: &CriuFlags, create: bool) -> Result<Dirs> {
        let image = open_dir(&f.image_path, create, "image")?;
        let work = match &f.work_path {
            Some(p) => Some(open_dir(p, true, "work")?),
            None => None,
        };
        Ok(Dirs {
            image,
            work,
            work_path: f.work_path.clone().unwrap_or_else(|| f.image_path.clone()),
        })
    }

    /// The descriptors CRIU must inherit.
    pub(crate) fn raw(&self) -> Vec<i32> {
        let mut v = vec![self.image.as_raw_fd()];
        v.extend(self.work.as_ref().map(|w| w.as_raw_fd()));
        v
    }
}

fn open_dir(path: &Path, create: bool, what: &str) -> Result<OwnedFd> {
    if path.as_os_str().is_empty() {
        return Err(Error::Invalid(format!(
            "the {what} directory must be given"
        )));
    }
    if create {
        // The images hold the container's memory: for root's eyes only.
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(path)
            .ctx(|| format!("create {what} directory {}", path.display()))?;
    }
    rustix::fs::open(
        path,
        rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(std::io::Error::from)
    .ctx(|| format!("open {what} directory {}", path.display()))
}

/// The options dump and restore set alike.
pub(crate) fn common_opts(f: &CriuFlags, dirs: &Dirs, log: &str) -> Criu_opts {
    let mut opts = Criu_opts::new();
    opts.set_images_dir_fd(dirs.image.as_raw_fd());
    if let Some(w) = &dirs.work {
        opts.set_work_dir_fd(w.as_raw_fd());
    }
    opts.set_log_file(log.into());
    opts.set_log_level(4);
    opts.set_tcp_established(f.tcp_established);
    opts.set_ext_unix_sk(f.ext_unix_sk);
    opts.set_shell_job(f.shell_job);
    opts.set_file_locks(f.file_locks);
    opts.set_auto_dedup(f.auto_dedup);
    opts.set_lazy_pages(f.lazy_pages);
    opts.set_manage_cgroups(true);
    if let Some(mode) = f.manage_cgroups_mode {
        opts.set_manage_cgroups_mode(mode.rpc());
    }
    if f.empty_ns.iter().any(|n| n == "network") {
        opts.set_empty_ns(libc::CLONE_NEWNET as u32);
    }
    opts
}

fn page_server(addr: &str) -> Result<rpc::Criu_page_server_info> {
    let bad = || Error::Invalid(format!("--page-server {addr}: expected ADDRESS:PORT"));
    let (host, port) = addr.rsplit_once(':').ok_or_else(bad)?;
    let port: i32 = port.parse().map_err(|_| bad())?;
    let mut ps = rpc::Criu_page_server_info::new();
    ps.set_address(host.trim_matches(['[', ']']).into());
    ps.set_port(port);
    Ok(ps)
}

/// The cgroup CRIU freezes the tree with: the freezer hierarchy's (v1) or the unified one.
fn freezer_dir(c: &Container) -> Option<PathBuf> {
    let paths = c.cgroup().paths();
    let find = |name: &str| {
        paths
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, p)| p.clone())
    };
    find("freezer").or_else(|| find(""))
}

/// Mounts from outside the container (destination, host source): CRIU dumps them as
/// external, by destination, and restore maps each back to its source. The config's bind
/// mounts; in a user namespace also the device nodes bound from the host, and the files
/// masked with a bind of (the host's) /dev/null: at a dump those `pid` shows as files (a
/// masked directory is a tmpfs of the container's own), at a restore all of them (CRIU
/// uses only the keys its images name).
pub(crate) fn external_mounts(
    spec: &Spec,
    bundle: &Path,
    plan: &Plan,
    pid: Option<i32>,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for m in spec.mounts().iter().flatten() {
        let bind = m.typ().as_deref() == Some("bind")
            || m.options()
                .iter()
                .flatten()
                .any(|o| o == "bind" || o == "rbind");
        let Some(source) = m.source() else { continue };
        if !bind {
            continue;
        }
        let source = match source.is_absolute() {
            true => source.clone(),
            false => bundle.join(source),
        };
        out.push((
            m.destination().to_string_lossy().into_owned(),
            source.to_string_lossy().into_owned(),
        ));
    }
    if !(plan.new_user || plan.join_user) {
        return out;
    }
    for dev in crate::rootfs::devices_bound_from_host(spec) {
        let dev = dev.to_string_lossy().into_owned();
        out.push((dev.clone(), dev));
    }
    let masked = spec
        .linux()
        .as_ref()
        .and_then(|l| l.masked_paths().as_ref())
        .into_iter()
        .flatten();
    for p in masked {
        let is_file = match pid {
            Some(pid) => {
                std::fs::symlink_metadata(format!("/proc/{pid}/root{p}")).is_ok_and(|m| !m.is_dir())
            }
            None => true,
        };
        if is_file {
            out.push((p.clone(), "/dev/null".into()));
        }
    }
    out
}

/// Without a cgroup namespace the container's cgroup directories are bind-mounted from the
/// host (see `rootfs::mount_cgroup`): external to CRIU too, by destination (each hierarchy's
/// place under the cgroup mount), with the host directory of `cgroup_paths` (the dumped
/// container's, or on restore the new one's).
pub(crate) fn cgroup_binds(
    spec: &Spec,
    plan: &Plan,
    layout: Option<&cgroups::Layout>,
    cgroup_paths: &[(String, PathBuf)],
) -> Result<Vec<(String, String)>> {
    let cgroup_mounts: Vec<&Path> = spec
        .mounts()
        .iter()
        .flatten()
        .filter(|m| matches!(m.typ().as_deref(), Some("cgroup") | Some("cgroup2")))
        .map(|m| m.destination().as_path())
        .collect();
    if plan.has_cgroup_ns() || cgroup_mounts.is_empty() || cgroup_paths.is_empty() {
        return Ok(Vec::new());
    }
    // Detected here, when there is something to bind, if the caller has none at hand.
    let detected;
    let layout = match layout {
        Some(l) => l,
        None => {
            detected = cgroups::Layout::detect()?;
            &detected
        }
    };
    let hierarchies = crate::process::create::cgroup_mounts(layout, cgroup_paths);
    let mut out = Vec::new();
    for dest in cgroup_mounts {
        for h in &hierarchies {
            let at = match h.subdir.is_empty() {
                true => dest.to_path_buf(),
                false => dest.join(&h.subdir),
            };
            out.push((
                at.to_string_lossy().into_owned(),
                h.host_dir.to_string_lossy().into_owned(),
            ));
        }
    }
    Ok(out)
}

/// Record what the init's stdin, stdout and stderr are, as the keys CRIU knows them by
/// (`pipe:[INO]`, or `file[MNT:INO]` for a file), and mark files external in `opts`: they
/// were opened outside the container (its runtime's stdio), so CRIU cannot dump them by path,
/// and restore gives the new container's stdio in their place.
fn save_descriptors(pid: i32, image: &Path, opts: &mut Criu_opts) -> Result<()> {
    let mut keys = Vec::new();
    for fd in 0..3 {
        let key = descriptor_key(pid, fd)?;
        if key.starts_with("file[") {
            opts.external.push(key.clone());
        }
        keys.push(key);
    }
    let path = image.join(DESCRIPTORS);
    std::fs::write(&path, serde_json::to_vec(&keys).expect("strings serialize"))
        .ctx(|| format!("write {}", path.display()))
}

/// CRIU's key for descriptor `fd` of `pid` ("" if it is not open).
fn descriptor_key(pid: i32, fd: i32) -> Result<String> {
    let link_path = format!("/proc/{pid}/fd/{fd}");
    let Ok(link) = std::fs::read_link(&link_path) else {
        return Ok(String::new());
    };
    let link = link.to_string_lossy().into_owned();
    if !link.starts_with('/') || link.starts_with("/dev/pts/") {
        return Ok(link);
    }
    let ino = std::fs::metadata(&link_path)
        .ctx(|| format!("stat {link_path}"))?
        .ino();
    let info_path = format!("/proc/{pid}/fdinfo/{fd}");
    let info = std::fs::read_to_string(&info_path).ctx(|| format!("read {info_path}"))?;
    let mnt_id: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("mnt_id:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| Error::Invalid(format!("no mnt_id in {info_path}")))?;
    Ok(format!("file[{mnt_id:x}:{ino:x}]"))
}

/// The stdio links [`save_descriptors`] wrote.
pub(crate) fn load_descriptors(image: &Path) -> Result<Vec<String>> {
    let path = image.join(DESCRIPTORS);
    let text = std::fs::read(&path).ctx(|| format!("read {}", path.display()))?;
    serde_json::from_slice(&text)
        .map_err(|e| Error::Invalid(format!("{} is not a checkpoint's: {e}", path.display())))
}

/// `e` with the errors CRIU logged in `log`.
pub(crate) fn with_log(e: Error, log: &Path) -> Error {
    match e {
        Error::Invalid(m) => Error::Invalid(format!("{m}{}", criu::log_errors(log))),
        e => e,
    }
}
