//! The parent side of creating a container: validate, record state, make the cgroup, clone
//! the init straight into its namespaces, put it in its cgroup before it can fork, write its
//! id maps, run the runtime's hooks when it asks, and record it once it is ready. Any
//! failure undoes everything: no state directory, cgroup, mount or process is left behind.

use crate::config;
use crate::container::{self, Container};
use crate::error::{Context, Error, Result};
use crate::hooks::{self, Kind};
use crate::init::{self, InitArgs};
use crate::namespaces::{self, Plan};
use crate::process::spawn::{cgroup_self_entry, spawn, Child, Ended, Serve};
use crate::process::stdio::{ChildStdio, Stdio};
use crate::process::sync::Message;
use crate::remnant::InitRecord;
use crate::rootfs::CgroupMount;
use crate::security::lsm::ExecLabels;
use crate::state::{
    make_state_dir, write_atomic, OciState, SavedState, Status, EXEC_FIFO, INIT_RECORD, OCI_VERSION,
};
use crate::sys;
use cgroups::{CgroupConfig, Layout, Manager};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::wait::WaitStatus;
use oci_spec::runtime::{
    LinuxDeviceCgroupBuilder, LinuxDeviceType, LinuxIdMapping, LinuxResources, Spec,
};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

/// How to create a container; mirrors the flags of `runc create`.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct CreateOptions {
    /// State root (`--root`).
    pub root: PathBuf,
    pub id: String,
    pub bundle: PathBuf,
    /// The container's config, when the caller holds it already (an engine embedding the
    /// library, which would otherwise write it to `<bundle>/config.json` only for it to be
    /// read back). Checked as a read one is. `None`: `<bundle>/config.json` is read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<Box<Spec>>,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: u32,
    /// systemd socket activation: this many descriptors from 3 on are the caller's
    /// LISTEN_FDS; they are passed on (before the preserved ones) and announced in the env.
    pub listen_fds: u32,
    pub systemd_cgroup: bool,
    /// The caller's `NOTIFY_SOCKET`: the container's program is the one to notify it.
    pub notify_socket: Option<PathBuf>,
    /// The caller will not stay attached to the container's stdio (runc's `--detach`, with
    /// runc's rules for a terminal: see `console_in_process`).
    pub detached: bool,
    /// The caller takes a terminal's pty master in-process ([`Container::take_console`]),
    /// as a program embedding the library does; runc's rules tying a terminal to
    /// `--detach`, `--console-socket` and a terminal on our stdin do not apply.
    pub console_in_process: bool,
    /// The signal mask the container's init must run with (the caller may have blocked
    /// signals in order to forward them).
    #[serde(with = "crate::spawner::sigmask")]
    pub init_sigmask: Option<SigSet>,
    /// Where the init's (and so the program's) stdin, stdout and stderr go; the caller's
    /// ends of pipes come back with [`Container::take_io`]. With a terminal: the pty, and
    /// this must be [`Stdio::Inherit`].
    #[serde(skip)]
    pub stdio: Stdio,
}

/// Create a container: when this returns, its init waits on the exec fifo for `start`.
///
/// Must be called from a single-threaded process: the init is cloned from this one.
pub fn create(o: &CreateOptions) -> Result<Container> {
    let (p, planned_cgroup) = Prepared::new(o)?;
    // Declared before `undo`, which borrows it.
    let cgroup: Box<dyn Manager>;
    let lock = make_state_dir(&o.root, &p.dir)?;
    let mut undo = Undo {
        dir: Some(p.dir.clone()),
        cgroup: None,
        rootfs_bind: None,
    };
    // Without a mount namespace, the container's mounts go under a bind of the rootfs in
    // ours, which the record names so that even a killed create's mounts can be removed.
    let rootfs_bind_mount_id = match p.plan.own_mount {
        true => None,
        false => Some(crate::rootfs::bind_in_inherited_ns(&p.rootfs)?),
    };
    undo.rootfs_bind = rootfs_bind_mount_id.map(|id| (p.rootfs.clone(), id));
    // Recorded before anything else outside the directory exists, so that whatever a
    // create killed at any moment leaves, `delete` finds (see `crate::remnant`).
    let record_path = p.dir.join(INIT_RECORD);
    let mut record = p.init_record(planned_cgroup.as_ref(), undo.rootfs_bind.clone());
    record.write(&record_path)?;
    if o.notify_socket.is_some() {
        crate::notify::make_dir(&p.dir)?;
    }
    let resources = resources_with_default_devices(&p.spec);
    cgroup = create_cgroup(planned_cgroup, resources.as_ref(), p.rootless)?;
    undo.cgroup = Some(cgroup.as_ref());
    let exec_fifo = make_exec_fifo(&p.dir)?;

    let (child_stdio, io) = o.stdio.prepare(p.terminal)?;
    let mut hook_state = p.hook_state(&o.id);
    let (child, self_entered) = clone_init(
        o,
        &p,
        cgroup.as_ref(),
        &exec_fifo,
        &lock,
        &child_stdio,
        &hook_state,
    )?;
    // Only the init holds the far ends of its pipes now.
    drop(child_stdio);
    let pid = child.pid;
    hook_state.pid = pid;
    // The start time tells the init from a later process with a recycled pid.
    let (start, _) = sys::process_start(pid)
        .ok_or_else(|| Error::init("the container init died right after its clone"))?;
    record.init_pid = pid;
    record.init_start_time = start;
    record.write(&record_path)?;

    hand_over_init(&child, &p, cgroup.as_ref(), self_entered)?;
    let hooks = || {
        let hooks = p.spec.hooks().as_ref();
        hooks::run(Kind::Prestart, hooks, &hook_state)
            .and_then(|()| hooks::run(Kind::CreateRuntime, hooks, &hook_state))
    };
    let serve = Serve {
        console_socket: o.console_socket.as_deref(),
        seccomp: p.seccomp.as_ref(),
        state: &hook_state,
        hooks: Some(&hooks),
    };
    let console = match child.converse(&serve)? {
        (Ended::Ready, console) => console,
        (Ended::Closed, _) => {
            let died = describe_early_exit(child.wait_dead(), cgroup.as_ref());
            return Err(Error::init(died));
        }
    };

    let state = p.saved_state(o, pid, start, cgroup.as_ref(), rootfs_bind_mount_id);
    state.write(&p.dir)?;
    if let Some(pid_file) = &o.pid_file {
        write_atomic(pid_file, pid.to_string().as_bytes())?;
    }
    undo.commit();
    commit_init(child);
    Ok(Container::new_created(p.dir, state, lock, console, io))
}

/// Everything a create decides before it makes anything: the config loaded and checked,
/// the namespaces to make or join, the labels, attributes, seccomp filter and idmapped
/// mounts the init will apply. A bad config is refused here, with nothing to undo.
pub(crate) struct Prepared {
    pub(crate) bundle: PathBuf,
    pub(crate) spec: Spec,
    pub(crate) dir: PathBuf,
    pub(crate) rootfs: PathBuf,
    pub(crate) terminal: bool,
    pub(crate) plan: Plan,
    pub(crate) rootless: bool,
    /// Who writes the id maps of a new user namespace.
    id_maps: Option<crate::idmap::Writer>,
    labels: ExecLabels,
    attrs: crate::security::attrs::Attrs,
    seccomp: Option<crate::security::seccomp::Filter>,
    idmapped: crate::rootfs::IdmappedMounts,
    pub(crate) layout: Layout,
}

impl Prepared {
    /// What to create, and the container's cgroup (planned, not yet made).
    pub(crate) fn new(o: &CreateOptions) -> Result<(Prepared, Box<dyn Manager>)> {
        config::validate_id(&o.id)?;
        let bundle = std::fs::canonicalize(&o.bundle)
            .map_err(|e| Error::Config(format!("bundle {}: {e}", o.bundle.display())))?;
        let mut spec = match &o.spec {
            Some(spec) => Spec::clone(spec),
            None => config::load(&bundle)?,
        };
        config::validate(&spec)?;
        for w in crate::rootfs::warnings(&spec) {
            tracing::warn!("{w}");
        }
        let dir = o.root.join(&o.id);
        if o.notify_socket.is_some() {
            crate::notify::add_to_spec(&dir, &mut spec)?;
        }
        let rootfs = config::rootfs_path(&spec, &bundle)?;
        let linux = spec.linux().as_ref().expect("validated");
        let process = spec.process().as_ref().expect("validated");
        let terminal = process.terminal().unwrap_or(false);
        crate::console::check_flags(
            terminal,
            o.detached,
            o.console_socket.as_deref(),
            o.console_in_process,
        )?;
        let plan = Plan::new(linux)?;
        let (uid_maps, gid_maps) = id_maps(linux);
        crate::idmap::validate("linux.uidMappings", uid_maps)?;
        crate::idmap::validate("linux.gidMappings", gid_maps)?;
        let euid = nix::unistd::geteuid();
        let rootless = !euid.is_root();
        if rootless && !plan.new_user && !plan.join_user {
            return Err(Error::Config(format!(
                "runr runs as uid {euid}: without privileges a container needs a user \
                 namespace (runr spec --rootless writes such a config)"
            )));
        }
        let id_maps = match plan.new_user {
            true => Some(crate::idmap::Writer::choose(uid_maps, gid_maps)?),
            false => None,
        };
        let labels = ExecLabels::for_process(process)?;
        let attrs = crate::security::attrs::Attrs::from_config(process, Some(linux))?;
        let seccomp = crate::security::seccomp::for_config(Some(linux), &o.root)?;
        let idmapped = crate::rootfs::IdmappedMounts::for_spec(&spec, &bundle)?;
        let layout = Layout::detect()?;
        let planned = cgroups::manager(
            &layout,
            &CgroupConfig {
                path: linux.cgroups_path().clone(),
                id: o.id.clone(),
                systemd: o.systemd_cgroup,
            },
        )?;
        let prepared = Prepared {
            bundle,
            dir,
            rootfs,
            terminal,
            plan,
            rootless,
            id_maps,
            labels,
            attrs,
            seccomp,
            idmapped,
            layout,
            spec,
        };
        Ok((prepared, planned))
    }

    fn linux(&self) -> &oci_spec::runtime::Linux {
        self.spec.linux().as_ref().expect("validated")
    }

    fn process(&self) -> &oci_spec::runtime::Process {
        self.spec.process().as_ref().expect("validated")
    }

    /// The record of what this create or restore is about to make, before its init exists.
    pub(crate) fn init_record(
        &self,
        cgroup: &dyn Manager,
        rootfs_bind: Option<(PathBuf, u64)>,
    ) -> InitRecord {
        InitRecord {
            rootfs_bind,
            cgroup_paths: cgroup.paths(),
            systemd_unit: cgroup.systemd_unit(),
            own_pid_ns: self.plan.own_pid,
            criu_restore: false,
            image_acl: None,
            init_pid: 0,
            init_start_time: 0,
        }
    }

    /// What hooks get; `rootfs`, `created` and `owner` are not in their form of it.
    pub(crate) fn hook_state(&self, id: &str) -> OciState {
        OciState {
            oci_version: OCI_VERSION.into(),
            id: id.into(),
            pid: 0,
            status: Status::Creating,
            bundle: self.bundle.clone(),
            rootfs: self.rootfs.clone(),
            created: String::new(),
            owner: String::new(),
            annotations: self.spec.annotations().clone().unwrap_or_default(),
        }
    }

    /// The record of the created container.
    pub(crate) fn saved_state(
        &self,
        o: &CreateOptions,
        pid: i32,
        start: u64,
        cgroup: &dyn Manager,
        rootfs_bind_mount_id: Option<u64>,
    ) -> SavedState {
        SavedState {
            id: o.id.clone(),
            init_pid: pid,
            init_start_time: start,
            bundle: self.bundle.clone(),
            rootfs: self.rootfs.clone(),
            created: humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string(),
            annotations: self.spec.annotations().clone().unwrap_or_default(),
            config: self.spec.clone(),
            no_new_keyring: o.no_new_keyring,
            notify_socket: o.notify_socket.clone(),
            cgroup_paths: cgroup.paths(),
            systemd_unit: cgroup.systemd_unit(),
            own_pid_ns: self.plan.own_pid,
            rootfs_bind_mount_id,
        }
    }
}

fn id_maps(linux: &oci_spec::runtime::Linux) -> (&[LinuxIdMapping], &[LinuxIdMapping]) {
    (
        linux.uid_mappings().as_deref().unwrap_or(&[]),
        linux.gid_mappings().as_deref().unwrap_or(&[]),
    )
}

/// The exec fifo the init blocks on until `start`, and an O_PATH descriptor of it for the
/// init (see [`InitArgs::exec_fifo`]).
fn make_exec_fifo(dir: &Path) -> Result<OwnedFd> {
    let fifo = dir.join(EXEC_FIFO);
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o622))
        .ctx(|| format!("mkfifo {}", fifo.display()))?;
    // mkfifo honours the umask; the init may run as any user and must be able to write it.
    std::fs::set_permissions(&fifo, std::os::unix::fs::PermissionsExt::from_mode(0o622))
        .ctx(|| format!("chmod {}", fifo.display()))?;
    rustix::fs::open(
        &fifo,
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .ctx(|| format!("open {}", fifo.display()))
}

/// Clone the init into its new namespaces (or those it joins); it starts on `init::run`.
/// Also whether it enters its cgroup by itself (else `hand_over_init` moves it in).
fn clone_init(
    o: &CreateOptions,
    p: &Prepared,
    cgroup: &dyn Manager,
    exec_fifo: &OwnedFd,
    lock: &std::fs::File,
    stdio: &ChildStdio,
    hook_state: &OciState,
) -> Result<(Child, bool)> {
    let cgroup_mounts = cgroup_mounts(&p.layout, &cgroup.paths());
    let sigmask = o.init_sigmask.unwrap_or_else(SigSet::empty);
    p.attrs.apply_inherited()?;
    // A pid namespace joined by path holds others' processes, which may trace ours.
    let may_be_traced = crate::security::exe_guard::grants_ptrace(p.process())
        || (p.plan.join_pid.is_some() && !p.rootless);
    if may_be_traced && p.plan.shares_our_user_ns()? {
        crate::security::exe_guard::protect_own_binary()?;
    }
    // Asked here, not in the child: it already is in the new user namespace.
    let traceable_while_waiting = p.rootless && !sys::own_binary_writable();
    let restore = namespaces::prepare_parent(&p.plan)?;
    let dumpable = match p.id_maps {
        Some(crate::idmap::Writer::OwnIds | crate::idmap::Writer::Helpers) => {
            sys::Dumpable::UntilMapped
        }
        _ => sys::Dumpable::Never,
    };
    // The child's copy of the lock descriptor would hold the flock (shared with ours) for
    // as long as the container lives.
    let not_for_child = [lock.as_fd()];
    let entry = cgroup_self_entry(cgroup, &Default::default())?;
    let child = spawn(
        p.plan.flags_for_clone().bits() as u64,
        dumpable,
        "the container init",
        restore,
        &not_for_child,
        entry.as_ref(),
        |sync| {
            init::run(InitArgs {
                spec: &p.spec,
                rootfs: &p.rootfs,
                bundle: &p.bundle,
                plan: &p.plan,
                sync,
                exec_fifo,
                cgroups: &cgroup_mounts,
                idmapped: &p.idmapped,
                no_pivot: o.no_pivot,
                no_new_keyring: o.no_new_keyring,
                traceable_while_waiting,
                confine: init::Confine {
                    attrs: &p.attrs,
                    labels: &p.labels,
                    listen_fds: o.listen_fds,
                    preserve_fds: o.preserve_fds,
                    seccomp: p.seccomp.as_ref(),
                },
                sigmask: &sigmask,
                stdio,
                hook_state: hook_state.clone(),
            })
        },
    )?;
    Ok((child, entry.is_some()))
}

/// Before the init can fork, run a hook or exec: its cgroup (unless it `self_entered`),
/// its id maps, its network devices. The init needs the first two before its first step
/// when it has a user namespace (ids) or a new cgroup namespace (rooted at its cgroup);
/// otherwise it prepares its rootfs meanwhile and waits for `Joined` before it goes further.
fn hand_over_init(
    child: &Child,
    p: &Prepared,
    cgroup: &dyn Manager,
    self_entered: bool,
) -> Result<()> {
    let proceed_first = p.id_maps.is_none() && (self_entered || !p.plan.new_cgroup);
    child.hand_over(proceed_first, || {
        if !self_entered {
            cgroup.enter(child.pid)?;
        }
        if let Some(writer) = &p.id_maps {
            let (uid_maps, gid_maps) = id_maps(p.linux());
            writer.write(child.pid, uid_maps, gid_maps)?;
        }
        namespaces::move_net_devices(&p.plan, p.linux(), child.pid)
    })
}

/// The container is recorded: let the init wait on the exec fifo. It waits for this
/// before it does; dead by now, it is merely stopped.
fn commit_init(mut child: Child) {
    child.release();
    if let Err(e) = child.sock.send(&Message::Committed) {
        tracing::debug!("the init did not wait for the go-ahead to wait for start: {e}");
    }
}

/// How many systemd socket-activation descriptors (from fd 3 on) this process was handed:
/// LISTEN_FDS, when LISTEN_PID names us.
pub fn listen_fds_from_env() -> u32 {
    let ours = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        .is_some_and(|p| p == std::process::id());
    if !ours {
        return 0;
    }
    std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// What to tear down if create fails part-way (the init itself is killed by its
/// [`Child`], dropped first).
pub(crate) struct Undo<'a> {
    pub(crate) dir: Option<PathBuf>,
    pub(crate) cgroup: Option<&'a dyn Manager>,
    /// The rootfs bind made in runr's own mount namespace, and its mount id.
    pub(crate) rootfs_bind: Option<(PathBuf, u64)>,
}

impl Undo<'_> {
    pub(crate) fn commit(mut self) {
        self.dir = None;
        self.cgroup = None;
        self.rootfs_bind = None;
    }
}

impl Drop for Undo<'_> {
    fn drop(&mut self) {
        if let Some((rootfs, id)) = &self.rootfs_bind {
            if let Err(e) = crate::rootfs::detach_inherited_ns_bind(rootfs, *id) {
                tracing::warn!("cleanup after a failed create: {e}");
            }
        }
        if let Some(cg) = self.cgroup {
            if let Err(e) = cg.destroy() {
                tracing::warn!("cleanup after a failed create: {e}");
            }
        }
        if let Some(dir) = &self.dir {
            let _ = crate::state::remove_state_dir(dir);
        }
    }
}

/// Why the init closed the sync channel without a word (it died, and ended so).
fn describe_early_exit(status: Option<WaitStatus>, cgroup: &dyn Manager) -> String {
    match status {
        Some(WaitStatus::Exited(_, code)) => {
            format!("the container init exited with status {code} during setup")
        }
        Some(WaitStatus::Signaled(_, Signal::SIGKILL, _)) if cgroup.oom_kill_count() > 0 => {
            container::oom_message("during its setup")
        }
        Some(WaitStatus::Signaled(_, sig, _)) => {
            format!("the container init was killed by {sig} during setup")
        }
        _ => "the container init died during setup".into(),
    }
}

/// Make the container's cgroup and write its limits. Unprivileged, with no cgroup delegated
/// to the user, a container that asks for no limits runs without a cgroup (as with runc);
/// one that asks for limits cannot be given them and fails.
pub(crate) fn create_cgroup(
    cgroup: Box<dyn Manager>,
    resources: Option<&LinuxResources>,
    rootless: bool,
) -> Result<Box<dyn Manager>> {
    let e = match cgroup.create(resources) {
        Ok(()) => return Ok(cgroup),
        Err(e) => e,
    };
    // A create that fails part-way (a limit refused) has made directories.
    let _ = cgroup.destroy();
    if !rootless || !e.is_permission_denied() {
        return Err(e.into());
    }
    if resources.is_some_and(has_limits) {
        return Err(Error::Config(format!(
            "resource limits need a cgroup, and none is delegated to this unprivileged user \
             ({e}); remove linux.resources or delegate a cgroup"
        )));
    }
    tracing::debug!("no cgroup for this rootless container: {e}");
    Ok(Box::new(cgroups::none::NoCgroup))
}

/// Whether `r` asks for any limit (device rules aside: a user namespace cannot create
/// devices anyway).
fn has_limits(r: &LinuxResources) -> bool {
    r.memory().is_some()
        || r.cpu().is_some()
        || r.pids().is_some()
        || r.block_io().is_some()
        || r.hugepage_limits().as_ref().is_some_and(|v| !v.is_empty())
        || r.network().is_some()
        || r.rdma().as_ref().is_some_and(|m| !m.is_empty())
        || r.unified().as_ref().is_some_and(|m| !m.is_empty())
}

/// The config's resources (without the zeros engines send for unset fields), with allow
/// rules for the devices every container gets appended to a device list that denies (as
/// runc does), so a deny-all list does not take /dev/null.
pub(crate) fn resources_with_default_devices(spec: &Spec) -> Option<LinuxResources> {
    let linux = spec.linux().as_ref()?;
    let mut r = cgroups::resources::without_unset_zeros(linux.resources().as_ref()?);
    if let Some(rules) = r.devices().clone().filter(|d| !d.is_empty()) {
        let mut rules = rules;
        let mut allow = |typ: LinuxDeviceType, major: i64, minor: i64| {
            let mut b = LinuxDeviceCgroupBuilder::default()
                .allow(true)
                .typ(typ)
                .major(major)
                .access("rwm");
            if minor >= 0 {
                b = b.minor(minor);
            }
            rules.push(b.build().expect("all fields set"));
        };
        for (_, major, minor) in crate::rootfs::default_device_rules() {
            allow(LinuxDeviceType::C, major, minor);
        }
        // A fifo is no device to the kernel: the devices cgroup has no rule for it (and
        // needs none to open it), so it only gets its node.
        for d in linux.devices().iter().flatten() {
            if d.typ() != LinuxDeviceType::P {
                allow(d.typ(), d.major(), d.minor());
            }
        }
        r.set_devices(Some(rules));
    }
    Some(r)
}

/// How each hierarchy appears under the container's cgroup mount.
pub(crate) fn cgroup_mounts(layout: &Layout, paths: &[(String, PathBuf)]) -> Vec<CgroupMount> {
    let dir_of = |name: &str| {
        paths
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, d)| d.clone())
            .unwrap_or_default()
    };
    let mut out: Vec<CgroupMount> = layout
        .v1()
        .iter()
        .map(|h| CgroupMount {
            subdir: h
                .mountpoint
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| h.name.clone()),
            fstype: "cgroup",
            data: h.name.clone(),
            host_dir: dir_of(&h.name),
        })
        .collect();
    if let Some(u) = layout.unified() {
        let subdir = if out.is_empty() {
            String::new()
        } else {
            u.mountpoint
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "unified".into())
        };
        out.push(CgroupMount {
            subdir,
            fstype: "cgroup2",
            data: String::new(),
            host_dir: dir_of(""),
        });
    }
    out
}
