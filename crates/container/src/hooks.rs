//! OCI hooks: run a list of hooks with the container state on stdin, each with its args,
//! env and timeout. Output is captured in a memfd (no pipe to fill and block on) and
//! reported when the hook fails.

use crate::error::{Error, Result};
use crate::state::OciState;
use crate::sys;
use oci_spec::runtime::{Hook, Hooks};
use std::io::{Read, Seek, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Which lifecycle point a list of hooks belongs to (for messages).
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Prestart,
    CreateRuntime,
    CreateContainer,
    StartContainer,
    Poststart,
    Poststop,
}

impl Kind {
    /// Every kind, in lifecycle order.
    pub const ALL: [Kind; 6] = [
        Kind::Prestart,
        Kind::CreateRuntime,
        Kind::CreateContainer,
        Kind::StartContainer,
        Kind::Poststart,
        Kind::Poststop,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Prestart => "prestart",
            Kind::CreateRuntime => "createRuntime",
            Kind::CreateContainer => "createContainer",
            Kind::StartContainer => "startContainer",
            Kind::Poststart => "poststart",
            Kind::Poststop => "poststop",
        }
    }

    pub fn of(self, hooks: &Hooks) -> &[Hook] {
        #[allow(deprecated)]
        let list = match self {
            Kind::Prestart => hooks.prestart(),
            Kind::CreateRuntime => hooks.create_runtime(),
            Kind::CreateContainer => hooks.create_container(),
            Kind::StartContainer => hooks.start_container(),
            Kind::Poststart => hooks.poststart(),
            Kind::Poststop => hooks.poststop(),
        };
        list.as_deref().unwrap_or(&[])
    }
}

/// Check hooks before anything is created: absolute paths and positive timeouts.
pub fn validate(hooks: Option<&Hooks>) -> Result<()> {
    let Some(hooks) = hooks else { return Ok(()) };
    for kind in Kind::ALL {
        for h in kind.of(hooks) {
            if !h.path().is_absolute() {
                return Err(Error::Config(format!(
                    "{} hook path {} must be absolute",
                    kind.name(),
                    h.path().display()
                )));
            }
            if h.timeout().is_some_and(|t| t <= 0) {
                return Err(Error::Config(format!(
                    "{} hook {}: timeout must be greater than zero",
                    kind.name(),
                    h.path().display()
                )));
            }
        }
    }
    Ok(())
}

/// What the init writes to the exec fifo before the error of a failed startContainer hook,
/// so that `start` tells it from a failed exec (see [`crate::Container::start`]).
pub(crate) const START_HOOK_FAILED: &str = "startContainer hook failed: ";

/// Run the hooks of `kind` in order; the first failure stops the rest and is returned. A
/// hook without `env` inherits the environment of the process that runs it, as with runc.
pub fn run(kind: Kind, hooks: Option<&Hooks>, state: &OciState) -> Result<()> {
    run_with_env(kind, hooks, state, None)
}

/// Like [`run`], but a hook without `env` gets `default_env` (the startContainer hooks, which
/// the init runs, get the environment of the container's process, not the runtime's).
pub(crate) fn run_with_env(
    kind: Kind,
    hooks: Option<&Hooks>,
    state: &OciState,
    default_env: Option<&[String]>,
) -> Result<()> {
    let Some(hooks) = hooks else { return Ok(()) };
    let list = kind.of(hooks);
    if list.is_empty() {
        return Ok(());
    }
    let json = serde_json::to_vec(&state.for_hooks()).expect("hook state always serializes");
    for (i, hook) in list.iter().enumerate() {
        run_one(hook, &json, default_env).map_err(|e| {
            Error::Hook(format!(
                "{} hook #{i} ({}): {e}",
                kind.name(),
                hook.path().display()
            ))
        })?;
    }
    Ok(())
}

/// Run every hook of `kind` in order; a failure is a warning and the rest still run
/// (poststart, poststop). Returns the warnings, for the caller to show.
pub fn run_all_warn(kind: Kind, hooks: Option<&Hooks>, state: &OciState) -> Vec<String> {
    let Some(hooks) = hooks else {
        return Vec::new();
    };
    let json = serde_json::to_vec(&state.for_hooks()).expect("hook state always serializes");
    let mut warnings = Vec::new();
    for (i, hook) in kind.of(hooks).iter().enumerate() {
        if let Err(e) = run_one(hook, &json, None) {
            warnings.push(format!(
                "{} hook #{i} ({}) failed: {e}",
                kind.name(),
                hook.path().display()
            ));
        }
    }
    warnings
}

fn run_one(hook: &Hook, state: &[u8], default_env: Option<&[String]>) -> Result<(), String> {
    let output = memfd().map_err(|e| format!("memfd for hook output: {e}"))?;
    let mut cmd = Command::new(hook.path());
    if let Some(args) = hook.args() {
        if let Some((argv0, rest)) = args.split_first() {
            cmd.arg0(argv0).args(rest);
        }
    }
    if let Some(env) = hook.env().as_deref().or(default_env) {
        cmd.env_clear();
        for kv in env {
            if let Some((k, v)) = kv.split_once('=') {
                cmd.env(k, v);
            }
        }
    }
    let clone = || {
        output
            .try_clone()
            .map(Stdio::from)
            .map_err(|e| e.to_string())
    };
    cmd.stdin(Stdio::piped()).stdout(clone()?).stderr(clone()?);
    let mut child = cmd.spawn().map_err(|e| format!("start: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its stdin is fine: ignore EPIPE.
        let _ = stdin.write_all(state);
    }
    let timeout = hook.timeout().map(|t| Duration::from_secs(t as u64));
    if timeout.is_some() {
        let pidfd = sys::pidfd_open(child.id() as i32).map_err(|e| format!("pidfd_open: {e}"))?;
        let exited = sys::pidfd_wait_exit(&pidfd, timeout).map_err(|e| format!("wait: {e}"))?;
        if !exited {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "timed out after {}s",
                hook.timeout().unwrap_or_default()
            ));
        }
    }
    let status = child.wait().map_err(|e| format!("wait: {e}"))?;
    if status.success() {
        return Ok(());
    }
    let mut text = String::new();
    let mut f = output;
    let _ = f.rewind();
    let _ = f.take(4096).read_to_string(&mut text);
    let how = match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit status {c}"),
        (_, Some(s)) => format!("killed by signal {s}"),
        _ => "failed".into(),
    };
    let text = text.trim();
    if text.is_empty() {
        Err(how)
    } else {
        Err(format!("{how}, output: {text}"))
    }
}

fn memfd() -> std::io::Result<std::fs::File> {
    let fd = rustix::fs::memfd_create("runr-hook-output", rustix::fs::MemfdFlags::CLOEXEC)?;
    Ok(std::fs::File::from(fd))
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{HookBuilder, HooksBuilder};

    fn state() -> OciState {
        OciState {
            oci_version: "1.0.2".into(),
            id: "t".into(),
            pid: 1,
            status: crate::state::Status::Creating,
            bundle: "/b".into(),
            rootfs: "/b/rootfs".into(),
            created: String::new(),
            owner: String::new(),
            annotations: Default::default(),
        }
    }

    fn sh(script: &str, timeout: Option<i64>) -> Hook {
        let mut b = HookBuilder::default()
            .path("/bin/sh")
            .args(vec!["sh".to_string(), "-c".to_string(), script.to_string()])
            .env(vec!["X=1".to_string()]);
        if let Some(t) = timeout {
            b = b.timeout(t);
        }
        b.build().unwrap()
    }

    #[test]
    fn hook_reads_state_and_env() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let hook = sh(
            &format!("cat > {0}; echo \" $X\" >> {0}", out.display()),
            None,
        );
        let hooks = HooksBuilder::default()
            .poststart(vec![hook])
            .build()
            .unwrap();
        run(Kind::Poststart, Some(&hooks), &state()).unwrap();
        let text = std::fs::read_to_string(out).unwrap();
        assert!(text.contains("\"status\":\"creating\""), "{text}");
        assert!(text.ends_with(" 1\n"), "{text}");
    }

    #[test]
    fn failure_carries_output_and_stops_the_list() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("second-ran");
        let hooks = HooksBuilder::default()
            .create_runtime(vec![
                sh("echo broken >&2; exit 3", None),
                sh(&format!("touch {}", marker.display()), None),
            ])
            .build()
            .unwrap();
        let err = run(Kind::CreateRuntime, Some(&hooks), &state())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("exit status 3") && err.contains("broken"),
            "{err}"
        );
        assert!(!marker.exists());
    }

    #[test]
    fn timeout_kills_the_hook() {
        let hooks = HooksBuilder::default()
            .prestart(vec![sh("sleep 10", Some(1))])
            .build()
            .unwrap();
        let t = std::time::Instant::now();
        let err = run(Kind::Prestart, Some(&hooks), &state())
            .unwrap_err()
            .to_string();
        assert!(err.contains("timed out"), "{err}");
        assert!(t.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn warn_mode_runs_every_hook() {
        let hooks = HooksBuilder::default()
            .poststop(vec![sh("exit 1", None), sh("exit 2", None)])
            .build()
            .unwrap();
        assert_eq!(
            run_all_warn(Kind::Poststop, Some(&hooks), &state()).len(),
            2
        );
    }
}
