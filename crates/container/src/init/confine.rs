//! The last steps of every container process, the init's and each exec'd one's alike,
//! and the program they leave ready to exec: limits, working directory, descriptors, LSM
//! labels, attributes, seccomp, user and capabilities, no_new_privs, umask, environment.

use crate::error::{Error, Result};
use crate::init::expect;
use crate::init::program::Program;
use crate::process::sync::{Message, SyncSocket};
use crate::security::attrs::Attrs;
use crate::security::caps;
use crate::security::lsm::ExecLabels;
use crate::security::seccomp::Filter;
use crate::sys;
use oci_spec::runtime::Process;
use std::ffi::CString;

/// What the setup leaves ready for the exec.
pub(crate) struct Ready {
    program: Program,
    env: Vec<CString>,
    /// A seccomp filter still to load (under no_new_privs it waits until the very end).
    seccomp: Option<Filter>,
}

impl Ready {
    /// Become the container's program; returns only if execve (or the filter) failed.
    pub(crate) fn exec(&self) -> Error {
        if let Some(filter) = &self.seccomp {
            if let Err(e) = filter.load() {
                return e;
            }
        }
        self.program.exec(&self.env)
    }
}

/// The last steps of every container process, the init's and each exec'd one's alike:
/// limits, working directory, descriptors, user and capabilities, no_new_privs, umask, and
/// the lookup of the program, which must happen as the user who will run it.
///
/// Descriptors from 3 on stay open: first `listen_fds` socket-activation ones (announced with
/// LISTEN_FDS and LISTEN_PID), then `preserve_fds` more.
pub(crate) fn confine(process: &Process, c: &Confine, sync: &SyncSocket) -> Result<Ready> {
    caps::set_rlimits(process.rlimits().as_deref().unwrap_or(&[]))?;
    crate::init::program::chdir(process.cwd())?;
    // Only fds 0-2 and the preserved ones may reach the container's program.
    sys::cloexec_from(3 + c.listen_fds + c.preserve_fds)?;
    c.labels.apply()?;
    // While the capabilities some of these need are still there.
    c.attrs.apply()?;
    let nnp = process.no_new_privileges().unwrap_or(false);
    let mut seccomp = c.seccomp.cloned();
    if !nnp {
        // Without no_new_privs the kernel wants CAP_SYS_ADMIN, which is about to go.
        load_seccomp(seccomp.take(), sync)?;
    }
    for warning in caps::switch_user_and_caps(process)? {
        sync.send(&Message::Warning(warning))?;
    }
    if nnp {
        caps::set_no_new_privs()?;
        // The agent must have the notify descriptor before the process runs, and the
        // parent is only listening until Ready; a plain filter waits for the exec.
        if seccomp.as_ref().is_some_and(|f| f.listener.is_some()) {
            load_seccomp(seccomp.take(), sync)?;
        }
    }
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(
        process.user().umask().unwrap_or(0o022) as libc::mode_t,
    ));
    let mut ready = prepare_exec(process, &listen_env(c.listen_fds))?;
    ready.seccomp = seccomp;
    Ok(ready)
}

/// What [`confine`] applies to a container process besides its `process` section, all
/// checked and prepared by the parent before the clone.
pub(crate) struct Confine<'a> {
    /// Scheduler, I/O priority, personality, memory policy, OOM score.
    pub(crate) attrs: &'a Attrs,
    /// The LSM labels to exec into.
    pub(crate) labels: &'a ExecLabels,
    /// Socket-activation descriptors (before the preserved ones).
    pub(crate) listen_fds: u32,
    pub(crate) preserve_fds: u32,
    /// The compiled seccomp filter, if the config has one.
    pub(crate) seccomp: Option<&'a Filter>,
}

/// Load `filter` now; a notify descriptor goes to the parent, for the agent.
fn load_seccomp(filter: Option<Filter>, sync: &SyncSocket) -> Result<()> {
    let Some(filter) = filter else {
        return Ok(());
    };
    if let Some(fd) = filter.load()? {
        sync.send_fd(&Message::SeccompFd, &fd)?;
        if expect(sync, "the seccomp agent")? != Message::SeccompDone {
            return Err(Error::init("unexpected message instead of SeccompDone"));
        }
    }
    Ok(())
}

/// LISTEN_FDS and LISTEN_PID for a process handed `n` socket-activation descriptors.
fn listen_env(n: u32) -> Vec<String> {
    if n == 0 {
        return Vec::new();
    }
    vec![format!("LISTEN_FDS={n}"), "LISTEN_PID=1".into()]
}

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn prepare_exec(process: &Process, extra_env: &[String]) -> Result<Ready> {
    let args = process.args().as_deref().unwrap_or(&[]);
    let given: Vec<String> = process
        .env()
        .iter()
        .flatten()
        .chain(extra_env)
        .cloned()
        .collect();
    let mut env = dedup_env(&given)?;
    if let Some(home) = crate::user::home_for(&env, process.user().uid()) {
        env.push(format!("HOME={home}"));
    }
    let path_var = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH);
    let exe = crate::init::program::find_executable(&args[0], path_var)?;
    let cstr =
        |s: &str| CString::new(s).map_err(|_| Error::Config(format!("{s:?} contains a NUL byte")));
    let argv = args.iter().map(|a| cstr(a)).collect::<Result<_>>()?;
    Ok(Ready {
        program: Program::open(&exe, argv)?,
        env: env.iter().map(|e| cstr(e)).collect::<Result<_>>()?,
        seccomp: None,
    })
}

/// The environment as the program gets it: each variable once, the last value given winning
/// (so `exec -e` overrides the config), and every entry of the form KEY=VALUE.
fn dedup_env(env: &[String]) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::with_capacity(env.len());
    for e in env {
        let Some((key, _)) = e.split_once('=').filter(|(k, _)| !k.is_empty()) else {
            return Err(Error::Config(format!(
                "environment variable {e:?} is not of the form KEY=VALUE"
            )));
        };
        let prefix_len = key.len() + 1;
        match out
            .iter_mut()
            .find(|o| o.as_bytes().get(..prefix_len) == e.as_bytes().get(..prefix_len))
        {
            Some(slot) => slot.clone_from(e),
            None => out.push(e.clone()),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_keeps_the_last_value_in_the_first_place() {
        let env = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            dedup_env(&env(&["A=1", "PATH=/bin", "A=2", "AB=3", "E="])).unwrap(),
            env(&["A=2", "PATH=/bin", "AB=3", "E="])
        );
        assert!(dedup_env(&env(&["NOEQUALS"])).is_err());
        assert!(dedup_env(&env(&["=x"])).is_err());
    }
}
