//! The container init: the child side of a create, from the clone to the exec of the user's
//! program. One thread, no allocation-heavy work; every failure goes back to the parent, with
//! its step and errno, over the sync socket (before `Ready`) or through the exec fifo (after
//! it, so that `start` reports it).
//!
//! `confine`: the last steps it shares with an exec'd process; `setns`: an exec'd
//! process's own first steps; `program`: opening and exec'ing the user's program safely.

mod confine;
pub(crate) mod program;
pub(crate) mod setns;

pub(crate) use confine::{confine, Confine, Ready};

use crate::error::{Context, Error, Result};
use crate::hooks::{self, Kind};
use crate::namespaces::Plan;
use crate::process::sync::{Message, SyncSocket};
use crate::rootfs::{self, CgroupMount};
use crate::state::{OciState, Status};
use crate::sys;
use nix::sched::CloneFlags;
use nix::sys::signal::{SigHandler, SigSet, SigmaskHow, Signal};
use oci_spec::runtime::Spec;
use std::convert::Infallible;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

/// Everything the init needs, borrowed from the parent's memory (the clone copied it).
pub(crate) struct InitArgs<'a> {
    pub spec: &'a Spec,
    pub rootfs: &'a Path,
    pub bundle: &'a Path,
    pub plan: &'a Plan,
    pub sync: &'a SyncSocket,
    /// O_PATH descriptor of the exec fifo. Not of the state directory: a directory
    /// descriptor open while the init works inside the container would be a path out of it
    /// through /proc/self/fd (CVE-2024-21626).
    pub exec_fifo: &'a OwnedFd,
    pub cgroups: &'a [CgroupMount],
    /// Idmapped mounts, prepared by the parent where it has the privileges.
    pub idmapped: &'a rootfs::IdmappedMounts,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    /// Become dumpable again, once set up, while waiting for `start`. Only for rootless
    /// containers whose runr binary the user cannot write: an unprivileged `runr exec` can
    /// open /proc/<init>/ns/* only if the init is dumpable, and what non-dumpable guards
    /// against, a container process writing runr's binary through /proc/<init>/exe, cannot
    /// happen to a file the user (the most any process of the container is on the host)
    /// cannot write.
    pub traceable_while_waiting: bool,
    /// What the last steps apply (see [`confine`]).
    pub confine: Confine<'a>,
    /// The signal mask to restore (the parent may block signals to forward them).
    pub sigmask: &'a SigSet,
    /// State for the hooks the init runs itself; pid is filled in from `Proceed`.
    pub hook_state: OciState,
    /// What goes on 0, 1 and 2 before anything else.
    pub stdio: &'a crate::process::stdio::ChildStdio<'a>,
}

/// Run the init; never returns.
pub(crate) fn run(mut args: InitArgs) -> ! {
    let err = match setup(&mut args) {
        Ok(ready) => match start(&args, ready) {
            Ok(never) => match never {},
            Err((fifo, e)) => {
                // After `Ready` the parent may be gone: `start` reads this from the fifo.
                // A startContainer hook's failure is tagged: `start` carries on after it.
                let text = match &e {
                    Error::Hook(msg) => format!("{}{msg}", hooks::START_HOOK_FAILED),
                    e => e.to_string(),
                };
                if let Some(mut f) = fifo {
                    let _ = f.write_all(text.as_bytes());
                }
                // SAFETY: _exit skips the parent's atexit handlers and buffers, which this
                // copy of the process must not run.
                unsafe { libc::_exit(127) }
            }
        },
        Err(e) => e,
    };
    let _ = args.sync.send(&Message::Error((&err).into()));
    // SAFETY: as above.
    unsafe { libc::_exit(1) }
}

/// Wait until the parent has put us in our cgroups (see `Message::Proceed`).
pub(crate) fn wait_joined(sync: &SyncSocket) -> Result<()> {
    match expect(sync, "its cgroup")? {
        Message::Joined => Ok(()),
        other => Err(Error::init(format!(
            "unexpected message instead of Joined: {other:?}"
        ))),
    }
}

pub(crate) fn expect(sync: &SyncSocket, want: &str) -> Result<Message> {
    match sync.recv()? {
        Some(Message::Error(f)) => Err(Error::Init(f)),
        Some(m) => Ok(m),
        None => Err(Error::init(format!(
            "the runtime went away while the init waited for {want}"
        ))),
    }
}

fn setup(a: &mut InitArgs) -> Result<Ready> {
    a.stdio.install()?;
    reset_signals(a.sigmask)?;
    // A runtime killed during create takes the half-made init with it (see `start`).
    set_parent_death_signal(libc::SIGKILL)?;
    let Message::Proceed { host_pid } = expect(a.sync, "the go-ahead")? else {
        return Err(Error::init("unexpected message instead of the go-ahead"));
    };
    a.hook_state.pid = host_pid;
    // Dumpable until now only if an unprivileged parent had to write our id maps.
    sys::set_non_dumpable()?;

    crate::namespaces::join(a.plan)?;
    let later = a.plan.unshare_in_child();
    if !later.is_empty() {
        nix::sched::unshare(later).ctx(|| format!("unshare {later:?}"))?;
    }
    let in_user_ns = a.plan.new_user || a.plan.join_user;
    if in_user_ns {
        crate::namespaces::become_root_in_user_ns()?;
        // A change of ids clears the parent-death signal.
        set_parent_death_signal(libc::SIGKILL)?;
    }
    if a.plan.new_cgroup {
        // After the parent put us in our cgroup, so that it becomes the namespace's root.
        nix::sched::unshare(CloneFlags::CLONE_NEWCGROUP).ctx(|| "unshare a cgroup namespace")?;
    }
    nix::unistd::setsid().ctx(|| "setsid")?;
    if !a.no_new_keyring {
        join_new_session_keyring()?;
    }
    // Modes of the devices and directories we create are exact; the process umask is set last.
    nix::sys::stat::umask(nix::sys::stat::Mode::empty());

    rootfs::prepare(&rootfs::Setup {
        spec: a.spec,
        rootfs: a.rootfs,
        bundle: a.bundle,
        in_user_ns,
        cgroup_ns: a.plan.has_cgroup_ns(),
        cgroups: a.cgroups,
        idmapped: a.idmapped,
        own_mount_ns: a.plan.own_mount,
    })?;
    wait_joined(a.sync)?;
    let spec_hooks = a.spec.hooks().as_ref();
    let parent_hooks = spec_hooks
        .is_some_and(|h| !Kind::Prestart.of(h).is_empty() || !Kind::CreateRuntime.of(h).is_empty());
    if parent_hooks {
        a.sync.send(&Message::RunHooks)?;
        if expect(a.sync, "the runtime's hooks")? != Message::HooksDone {
            return Err(Error::init("unexpected message instead of HooksDone"));
        }
    }
    hooks::run(Kind::CreateContainer, spec_hooks, &a.hook_state)?;

    rootfs::enter(a.rootfs, a.no_pivot, a.plan.own_mount)?;
    let process = a
        .spec
        .process()
        .as_ref()
        .ok_or_else(|| Error::Config("process is missing".into()))?;
    // All that writes to the container's filesystem or /proc/sys comes before the
    // read-only paths and the read-only root.
    set_names(a.spec)?;
    set_sysctls(a.spec)?;
    ensure_cwd(process.cwd())?;
    if process.terminal().unwrap_or(false) {
        let master = crate::console::setup_in_container(process, true)?;
        a.sync.send_fd(&Message::Console, &master)?;
    }
    rootfs::finish(a.spec, a.plan.own_mount)?;
    let ready = confine(process, &a.confine, a.sync)?;
    // From here the sync channel tells of the runtime's death; the created init must
    // survive the runtime's normal exit.
    set_parent_death_signal(0)?;
    a.sync.send(&Message::Ready)?;
    Ok(ready)
}

/// PR_SET_PDEATHSIG: `sig` (0 for none) when the thread that cloned us dies.
fn set_parent_death_signal(sig: libc::c_int) -> Result<()> {
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, sig as libc::c_ulong, 0, 0, 0) } != 0 {
        return Err(std::io::Error::last_os_error()).ctx(|| "prctl(PR_SET_PDEATHSIG)");
    }
    Ok(())
}

/// After `Ready`: wait for `start`, run the startContainer hooks, exec.
fn start(
    a: &InitArgs,
    ready: Ready,
) -> std::result::Result<Infallible, (Option<std::fs::File>, Error)> {
    if a.traceable_while_waiting {
        nix::sys::prctl::set_dumpable(true)
            .ctx(|| "prctl(PR_SET_DUMPABLE, 1)")
            .map_err(|e| (None, e))?;
    }
    // Until the runtime has recorded us we are half-made: if it dies first, so do we.
    match expect(a.sync, "the runtime to record the container") {
        Ok(Message::Committed) => {}
        Ok(_) => {
            let e = Error::init("unexpected message instead of Committed");
            return Err((None, e));
        }
        Err(e) => return Err((None, e)),
    }
    // Blocks until `start` opens the fifo for reading.
    let fifo = open_exec_fifo(a.exec_fifo).map_err(|e| (None, e))?;
    let mut state = a.hook_state.clone();
    state.status = Status::Created;
    // A hook without env gets the program's environment (runc's do), not the runtime's.
    let env = a.spec.process().as_ref().and_then(|p| p.env().as_deref());
    let hooks = a.spec.hooks().as_ref();
    if let Err(e) = hooks::run_with_env(Kind::StartContainer, hooks, &state, env.or(Some(&[]))) {
        return Err((Some(fifo), e));
    }
    // On success the fifo closes with the exec (O_CLOEXEC) and `start` reads end-of-file.
    Err((Some(fifo), ready.exec()))
}

/// Open the exec fifo for writing through its O_PATH descriptor. Linux reopens a descriptor
/// only through /proc, so the container needs /proc mounted (as with runc); the result is
/// checked to be the same fifo, whatever the container's /proc holds.
fn open_exec_fifo(opath: &OwnedFd) -> Result<std::fs::File> {
    let path = crate::rootfs::fd_path(opath);
    let what = || format!("open the exec fifo (through {path}; the container needs /proc)");
    let cpath = std::ffi::CString::new(path.as_str()).map_err(|_| Error::init(what()))?;
    // The init may wait in this open for a long time: it gives back what memory it can
    // first, and nothing between that and the open faults much of it back in.
    let fd = sys::release_memory_then_open(&cpath, rustix::fs::OFlags::WRONLY).ctx(what)?;
    let id = |fd: &OwnedFd| rustix::fs::fstat(fd).map(|st| (st.st_dev, st.st_ino));
    if id(&fd).ctx(what)? != id(opath).ctx(what)? {
        return Err(Error::init(format!("{}: not the exec fifo", what())));
    }
    Ok(fd.into())
}

/// Default dispositions and the caller's mask: Rust ignores SIGPIPE, and an ignored signal
/// would stay ignored across exec.
pub(crate) fn reset_signals(mask: &SigSet) -> Result<()> {
    for sig in Signal::iterator() {
        if sig == Signal::SIGKILL || sig == Signal::SIGSTOP {
            continue;
        }
        // SAFETY: installing SIG_DFL runs no handler code of ours.
        let _ = unsafe { nix::sys::signal::signal(sig, SigHandler::SigDfl) };
    }
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(mask), None)
        .ctx(|| "restore the signal mask")
}

pub(crate) fn join_new_session_keyring() -> Result<()> {
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
    // SAFETY: a null name asks the kernel for a new anonymous session keyring.
    let r = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            KEYCTL_JOIN_SESSION_KEYRING,
            std::ptr::null::<libc::c_char>(),
        )
    };
    if r < 0 {
        let e = std::io::Error::last_os_error();
        // No keyring support in this kernel: nothing to isolate.
        if e.raw_os_error() != Some(libc::ENOSYS) {
            return Err(e).ctx(|| "join a new session keyring (use --no-new-keyring to skip)");
        }
    }
    Ok(())
}

fn set_names(spec: &Spec) -> Result<()> {
    if let Some(h) = spec.hostname().as_deref().filter(|h| !h.is_empty()) {
        nix::unistd::sethostname(h).ctx(|| format!("sethostname {h:?}"))?;
    }
    if let Some(d) = spec.domainname().as_deref().filter(|d| !d.is_empty()) {
        // SAFETY: pointer and length of a live byte slice.
        if unsafe { libc::setdomainname(d.as_ptr().cast(), d.len()) } != 0 {
            return Err(std::io::Error::last_os_error()).ctx(|| format!("setdomainname {d:?}"));
        }
    }
    Ok(())
}

fn set_sysctls(spec: &Spec) -> Result<()> {
    for (key, value) in spec
        .linux()
        .iter()
        .flat_map(|l| l.sysctl().iter().flatten())
    {
        let path = PathBuf::from("/proc/sys").join(key.replace('.', "/"));
        std::fs::write(&path, value)
            .ctx(|| format!("sysctl {key}={value} (write {})", path.display()))?;
    }
    Ok(())
}

fn ensure_cwd(cwd: &Path) -> Result<()> {
    match std::fs::metadata(cwd) {
        Ok(m) if !m.is_dir() => Err(Error::Config(format!(
            "process.cwd {} is not a directory",
            cwd.display()
        ))),
        Ok(_) => Ok(()),
        Err(_) => {
            std::fs::create_dir_all(cwd).ctx(|| format!("create process.cwd {}", cwd.display()))
        }
    }
}
