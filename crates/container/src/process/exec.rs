//! `exec`: start another process in an existing container.
//!
//! The parent (the single-threaded CLI) points its children at the container's pid namespace
//! and clones the process, so it is born in that namespace; puts it in the container's
//! cgroup before it can fork; and lets it go. The child joins every other namespace of the
//! container through a pidfd of the init (one setns for all of them), sets up its terminal
//! and the same confinement as the init, and execs. Its failures reach the caller over the
//! sync socket; success is the socket closing with the exec.

use crate::container::Container;
use crate::error::{Context, Error, Result, WrongStatus};
use crate::init::{self, setns};
use crate::namespaces;
use crate::process::spawn::{cgroup_self_entry, spawn, Ended, Serve};
use crate::process::stdio::Stdio;
use crate::process::ProcessHandle;
use crate::security::attrs::Attrs;
use crate::security::lsm::ExecLabels;
use crate::sys;
use cgroups::{FreezerState, SubCgroups};
use nix::sched::CloneFlags;
use nix::sys::signal::SigSet;
use nix::unistd::Pid;
use oci_spec::runtime::{Capabilities, Capability, LinuxNamespaceType, Process};
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// How to exec; mirrors the flags of `runc exec`.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct ExecOptions {
    /// The process to start (from `--process`, or built with [`process_from_args`]).
    pub process: Process,
    pub console_socket: Option<PathBuf>,
    /// The caller will not stay attached to the process's stdio (runc's `--detach`).
    pub detached: bool,
    /// The caller takes a terminal's pty master in-process ([`ProcessHandle::console`]);
    /// runc's rules tying a terminal to `--detach`, `--console-socket` and a terminal on our
    /// stdin do not apply.
    pub console_in_process: bool,
    pub pid_file: Option<PathBuf>,
    /// Pass descriptors 3 to 3+N-1 on to the process.
    pub preserve_fds: u32,
    /// systemd socket activation: this many descriptors from 3 on are the caller's
    /// LISTEN_FDS; they are passed on (before the preserved ones) and announced in the env.
    pub listen_fds: u32,
    /// `--cgroup`: existing sub-cgroups of the container's to put the process in.
    pub cgroup: SubCgroups,
    /// Exec into a paused container (the process stays frozen until it is resumed).
    pub ignore_paused: bool,
    /// The signal mask the process must run with (the caller may block signals to forward).
    #[serde(with = "crate::spawner::sigmask")]
    pub sigmask: Option<SigSet>,
    /// Where its stdin, stdout and stderr go (with a terminal: the pty, and this must be
    /// [`Stdio::Inherit`]).
    #[serde(skip)]
    pub stdio: Stdio,
}

/// What `runc exec ID ARGS...` changes in the container's own process.
#[derive(Debug, Clone, Default)]
pub struct ProcessOverrides {
    pub args: Vec<String>,
    pub terminal: bool,
    /// KEY=VALUE, added after (so winning over) the config's.
    pub env: Vec<String>,
    pub cwd: Option<PathBuf>,
    /// `uid[:gid]`, numeric.
    pub user: Option<String>,
    pub additional_gids: Vec<String>,
    /// Capabilities added to the bounding, effective and permitted sets.
    pub caps: Vec<String>,
    pub no_new_privs: bool,
    pub apparmor: Option<String>,
    pub process_label: Option<String>,
}

/// The process `exec` starts when given arguments instead of `--process`: the container's
/// own process with the arguments and the flags' changes.
pub fn process_from_args(base: &Process, o: &ProcessOverrides) -> Result<Process> {
    let bad = |m: String| Err(Error::Invalid(m));
    if o.args.is_empty() {
        return bad("exec needs a command to run (or --process)".into());
    }
    let mut p = base.clone();
    p.set_args(Some(o.args.clone()));
    p.set_terminal(Some(o.terminal));
    p.set_console_size(None);
    let mut env = p.env().clone().unwrap_or_default();
    env.extend(o.env.iter().cloned());
    p.set_env(Some(env));
    if let Some(cwd) = &o.cwd {
        p.set_cwd(cwd.clone());
    }
    let parse_id = |s: &str, what: &str| {
        s.parse::<u32>()
            .map_err(|_| Error::Invalid(format!("{what} {s:?} is not a number")))
    };
    if let Some(user) = &o.user {
        let (uid, gid) = match user.split_once(':') {
            Some((u, g)) => (parse_id(u, "uid")?, Some(parse_id(g, "gid")?)),
            None => (parse_id(user, "uid")?, None),
        };
        let u = p.user_mut();
        u.set_uid(uid);
        if let Some(gid) = gid {
            u.set_gid(gid);
        }
    }
    if !o.additional_gids.is_empty() {
        let gids = o
            .additional_gids
            .iter()
            .map(|g| parse_id(g, "additional gid"))
            .collect::<Result<Vec<_>>>()?;
        p.user_mut().set_additional_gids(Some(gids));
    }
    if !o.caps.is_empty() {
        let mut caps = p.capabilities().clone().unwrap_or_default();
        for name in &o.caps {
            let upper = name.to_ascii_uppercase();
            let cap = Capability::from_str(upper.strip_prefix("CAP_").unwrap_or(&upper))
                .map_err(|_| Error::Invalid(format!("unknown capability {name:?}")))?;
            let add = |set: &Option<Capabilities>| {
                let mut set = set.clone().unwrap_or_default();
                set.insert(cap);
                Some(set)
            };
            let (b, e, p) = (
                add(caps.bounding()),
                add(caps.effective()),
                add(caps.permitted()),
            );
            caps.set_bounding(b).set_effective(e).set_permitted(p);
        }
        p.set_capabilities(Some(caps));
    }
    if o.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    if let Some(a) = &o.apparmor {
        p.set_apparmor_profile(Some(a.clone()));
    }
    if let Some(l) = &o.process_label {
        p.set_selinux_label(Some(l.clone()));
    }
    Ok(p)
}

/// Read a process.json (`exec --process`).
pub fn load_process(path: &Path) -> Result<Process> {
    let text =
        std::fs::read(path).map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))?;
    crate::config::parse(&text)
        .map_err(|e| Error::Invalid(format!("{}: malformed process: {e}", path.display())))
}

impl Container {
    /// Start `o.process` in this container. When this returns, the process has exec'd (or
    /// failed to, and is gone). The container must be created or running, or paused with
    /// `ignore_paused`. Must be called from a single-threaded process.
    pub fn exec(mut self, o: &ExecOptions) -> Result<ProcessHandle> {
        let process = &o.process;
        validate_process(process)?;
        let terminal = process.terminal().unwrap_or(false);
        crate::console::check_flags(
            terminal,
            o.detached,
            o.console_socket.as_deref(),
            o.console_in_process,
        )?;
        // From here the init is pinned: if it dies, setns fails instead of finding another
        // process under a recycled pid.
        let init_pidfd = self
            .init_pidfd()
            .ok_or(Error::Status(WrongStatus::ExecStopped))?;
        let cgroup = self.cgroup();
        if !o.ignore_paused && cgroup.freezer()? == FreezerState::Frozen {
            return Err(Error::Status(WrongStatus::ExecPaused));
        }
        let init_pid = self.saved().init_pid;
        let (mut join, join_pid) = namespaces_to_join(&self, init_pid)?;
        let labels = ExecLabels::for_process(process)?;
        // The same filter and attributes as the init's, from the config saved at create.
        let linux = self.saved().config.linux().as_ref();
        let seccomp =
            crate::security::seccomp::for_config(linux, self.dir().parent().unwrap_or(self.dir()))?;
        let mut attrs = Attrs::from_config(process, linux)?;
        let initial_cpus = crate::security::attrs::exec_affinity(process, &mut attrs)?;
        // Nothing below needs the container to stay as it is, and a process that stays
        // frozen (--ignore-paused) must not keep other commands waiting on the lock.
        self.unlock();

        guard_binary(&self, process, init_pid)?;
        let (child_stdio, io) = o.stdio.prepare(terminal)?;
        let sigmask = o.sigmask.unwrap_or_else(SigSet::empty);
        attrs.apply_inherited()?;
        let restore = enter_for_children(join_pid, &mut join, &init_pidfd)?;
        let new_keyring = !self.saved().no_new_keyring;
        let entry = cgroup_self_entry(cgroup.as_ref(), &o.cgroup)?;
        let mut child = spawn(
            0,
            sys::Dumpable::Never,
            "the exec'd process",
            restore,
            &[],
            entry.as_ref(),
            |sync| {
                setns::run(setns::Args {
                    process,
                    sync,
                    init_pidfd: &init_pidfd,
                    init_pid,
                    join,
                    new_keyring,
                    confine: init::Confine {
                        attrs: &attrs,
                        labels: &labels,
                        listen_fds: o.listen_fds,
                        preserve_fds: o.preserve_fds,
                        seccomp: seccomp.as_ref(),
                    },
                    sigmask: &sigmask,
                    stdio: &child_stdio,
                })
            },
        )?;
        // Only the child holds the far ends of its pipes now: it sees EOF, the caller too.
        drop(child_stdio);
        let pid = child.pid;
        let pidfd = sys::pidfd_open(pid).ctx(|| format!("pidfd_open the exec'd process {pid}"))?;
        if let Some(cpus) = &initial_cpus {
            nix::sched::sched_setaffinity(Pid::from_raw(pid), cpus)
                .ctx(|| "sched_setaffinity for process.execCPUAffinity.initial")?;
        }
        // The child joins the namespaces while we put it in the cgroup (unless it entered
        // by itself); it waits for `Joined` before its last steps (see `Message::Proceed`).
        let self_entered = entry.is_some();
        drop(entry);
        child.hand_over(true, || match self_entered {
            true => Ok(()),
            false => Ok(cgroup.enter_exec(pid, &o.cgroup)?),
        })?;
        let mut state = self.hook_state(crate::Status::Running);
        state.pid = pid;
        let serve = Serve {
            console_socket: o.console_socket.as_deref(),
            seccomp: seccomp.as_ref(),
            state: &state,
            hooks: None,
        };
        // The sync socket closes on exec.
        let console = match child.converse(&serve)? {
            (Ended::Closed, console) => console,
            (Ended::Ready, _) => {
                return Err(Error::init(
                    "unexpected message from the exec'd process: Ready",
                ))
            }
        };
        if let Some(pid_file) = &o.pid_file {
            crate::state::write_atomic(pid_file, pid.to_string().as_bytes())?;
        }
        child.release();
        Ok(ProcessHandle::new(pid, pidfd, io, console))
    }
}

/// Point the namespaces our children are born in at the container's pid namespace (and,
/// unprivileged, its user namespace, which `join` then no longer lists), for the clone.
fn enter_for_children(
    join_pid: bool,
    join: &mut CloneFlags,
    init_pidfd: &OwnedFd,
) -> Result<namespaces::ParentRestore> {
    let rootless = !nix::unistd::geteuid().is_root();
    if join_pid && rootless && join.contains(CloneFlags::CLONE_NEWUSER) {
        // The child is then born in the container's user namespace.
        join.remove(CloneFlags::CLONE_NEWUSER);
        namespaces::join_user_and_pid_for_children(init_pidfd)
    } else if join_pid {
        namespaces::join_pid_for_children(init_pidfd)
    } else {
        Ok(namespaces::ParentRestore::default())
    }
}

fn validate_process(p: &Process) -> Result<()> {
    if p.args().as_ref().is_none_or(|a| a.is_empty()) {
        return Err(Error::Invalid("process.args must not be empty".into()));
    }
    if !p.cwd().is_absolute() {
        return Err(Error::Invalid(format!(
            "process.cwd {:?} must be an absolute path",
            p.cwd()
        )));
    }
    Ok(())
}

/// The namespaces of the container the child must join itself, and whether the parent
/// must first point its children at the container's pid namespace.
fn namespaces_to_join(c: &Container, init_pid: i32) -> Result<(CloneFlags, bool)> {
    let mut flags = CloneFlags::empty();
    let mut pid = false;
    let namespaces = c.saved().config.linux().as_ref().map(|l| l.namespaces());
    for ns in namespaces.into_iter().flatten().flatten() {
        match ns.typ() {
            LinuxNamespaceType::Pid => pid = true,
            // setns refuses the user namespace we are already in (a joined one may be ours).
            LinuxNamespaceType::User if same_user_ns(init_pid)? => {}
            t => flags |= namespaces::flag_of(t),
        }
    }
    Ok((flags, pid))
}

/// Left in the state directory once a process with CAP_SYS_PTRACE that the container's own
/// config does not grant was exec'd into it: it may still be there, able to trace.
const TRACER_MARK: &str = "tracer";

/// CVE-2019-5736: before cloning into a container whose processes may ptrace ours, move
/// onto a read-only view of runr's binary (see `exe_guard`).
fn guard_binary(c: &Container, process: &Process, init_pid: i32) -> Result<()> {
    use crate::security::exe_guard::{grants_ptrace, protect_own_binary};
    if !nix::unistd::geteuid().is_root() {
        // Unprivileged: the container has a user namespace of its own.
        return Ok(());
    }
    let config_can = c
        .saved()
        .config
        .process()
        .as_ref()
        .is_some_and(grants_ptrace);
    let this_can = grants_ptrace(process);
    let mark = c.dir().join(TRACER_MARK);
    if !config_can && !this_can && !mark.exists() {
        return Ok(());
    }
    if !same_user_ns(init_pid)? {
        return Ok(());
    }
    if this_can && !config_can {
        // The init of a created container still runs our binary, from wherever it was
        // when it was cloned: a tracer must not meet it there.
        if c.status() == crate::Status::Created {
            return Err(Error::Invalid(
                "cannot exec a process with CAP_SYS_PTRACE, which the container's own \
                 config does not grant, before the container is started"
                    .into(),
            ));
        }
        std::fs::write(&mark, b"").ctx(|| format!("write {}", mark.display()))?;
    }
    protect_own_binary()
}

fn same_user_ns(pid: i32) -> Result<bool> {
    Ok(ns_id("/proc/self/ns/user")? == ns_id(&format!("/proc/{pid}/ns/user"))?)
}

/// The identity of a namespace file. Denied to an unprivileged user, it says why (see
/// `init::InitArgs::traceable_while_waiting`).
fn ns_id(path: &str) -> Result<(u64, u64)> {
    match std::fs::metadata(path) {
        Ok(m) => Ok((m.dev(), m.ino())),
        Err(e)
            if e.kind() == std::io::ErrorKind::PermissionDenied
                && !nix::unistd::geteuid().is_root() =>
        {
            Err(e).ctx(|| {
                format!(
                    "stat {path}: the init of a container not yet started stays closed to \
                     unprivileged users while runr's own binary is writable by you; start \
                     the container first, or use a runr binary you cannot write"
                )
            })
        }
        Err(e) => Err(e).ctx(|| format!("stat {path}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Process {
        Process::default()
    }

    #[test]
    fn args_replace_and_env_appends() {
        let p = process_from_args(
            &base(),
            &ProcessOverrides {
                args: vec!["ls".into(), "-l".into()],
                env: vec!["A=1".into()],
                cwd: Some("/tmp".into()),
                user: Some("1000:100".into()),
                additional_gids: vec!["5".into(), "6".into()],
                caps: vec!["CAP_NET_ADMIN".into(), "sys_time".into()],
                no_new_privs: true,
                terminal: true,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(p.args().as_deref().unwrap(), ["ls", "-l"]);
        assert_eq!(p.env().as_ref().unwrap().last().unwrap(), "A=1");
        assert!(p.env().as_ref().unwrap().len() > 1);
        assert_eq!(p.cwd(), Path::new("/tmp"));
        assert_eq!((p.user().uid(), p.user().gid()), (1000, 100));
        assert_eq!(p.user().additional_gids().as_deref(), Some(&[5, 6][..]));
        let caps = p.capabilities().clone().unwrap();
        for set in [caps.bounding(), caps.effective(), caps.permitted()] {
            let set = set.as_ref().unwrap();
            assert!(set.contains(&Capability::NetAdmin) && set.contains(&Capability::SysTime));
        }
        assert!(!caps
            .ambient()
            .as_ref()
            .unwrap()
            .contains(&Capability::NetAdmin));
        assert_eq!(p.no_new_privileges(), Some(true));
        assert_eq!(p.terminal(), Some(true));
    }

    #[test]
    fn bad_overrides_are_refused() {
        let with = |o: ProcessOverrides| process_from_args(&base(), &o).unwrap_err().to_string();
        let args = vec!["true".to_string()];
        assert!(with(ProcessOverrides::default()).contains("needs a command"));
        let e = with(ProcessOverrides {
            args: args.clone(),
            user: Some("nobody".into()),
            ..Default::default()
        });
        assert!(e.contains("uid \"nobody\" is not a number"), "{e}");
        let e = with(ProcessOverrides {
            args: args.clone(),
            user: Some("1:x".into()),
            ..Default::default()
        });
        assert!(e.contains("gid \"x\""), "{e}");
        let e = with(ProcessOverrides {
            args,
            caps: vec!["CAP_FLY".into()],
            ..Default::default()
        });
        assert!(e.contains("unknown capability"), "{e}");
    }
}
