//! The runr container library: what an engine, the `runr` CLI or an agent embeds to run OCI
//! containers. No printing and no command-line concerns live here.
//!
//! Where things are:
//! - [`config`]: loading and validating `config.json`, container ids.
//! - [`container`]: the [`Container`], its status, and the state store under `--root`.
//! - [`process`]: the parent side of creating a container (clone, sync, cgroups, state).
//! - `init`: the child side, from clone to exec.
//! - [`exec`]: another process in an existing container, both sides.
//! - `namespaces`, `rootfs`, `security`, [`hooks`], `user`: one concern each.
//! - [`signal`]: signal names as `kill` accepts them.

pub mod config;
mod console;
pub mod container;
mod error;
pub mod exec;
pub mod hooks;
mod init;
mod lsm;
mod namespaces;
pub mod notify;
pub mod process;
mod rootfs;
mod security;
pub mod signal;
mod sync;
mod sys;
mod user;

pub use container::{Container, Event, Started, Status};
pub use error::{Error, Result};
pub use process::{create, CreateOptions};

/// What this build of runr supports, as the OCI features document describes it.
pub mod features {
    use serde_json::{json, Value};

    pub fn document() -> Value {
        let mut caps: Vec<String> = caps::all().iter().map(|c| c.to_string()).collect();
        caps.sort();
        json!({
            "ociVersionMin": "1.0.0",
            "ociVersionMax": crate::container::OCI_VERSION,
            "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
            "mountOptions": crate::rootfs::known_options(),
            "linux": {
                "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"],
                "capabilities": caps,
                "cgroup": { "v1": true, "v2": true, "systemd": true, "systemdUser": false, "rdma": true },
                "seccomp": { "enabled": false },
                "apparmor": { "enabled": false },
                "selinux": { "enabled": false },
                "intelRdt": { "enabled": false },
                "mountExtensions": { "idmap": { "enabled": false } }
            },
            "annotations": {
                "org.opencontainers.runr.version": env!("CARGO_PKG_VERSION")
            }
        })
    }
}
