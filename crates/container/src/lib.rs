//! The runr container library: what an engine, the `runr` CLI or an agent embeds to run OCI
//! containers. No printing and no command-line concerns live here.
//!
//! Where things are:
//! - [`config`]: loading and validating `config.json`, container ids.
//! - [`state`]: the state store under `--root/<id>`: state.json, its locking, atomic writes;
//!   the OCI state object ([`OciState`]) that `runr state` prints and hooks read.
//! - [`container`]: the [`Container`], its status, and the operations on an existing one.
//! - [`remnant`]: what a killed create or an unreadable state.json leaves, and its removal.
//! - [`process`]: the parent's side of a container's processes: [`create`] in named steps,
//!   [`exec`], the clone and sync loop both share (`spawn`), and the [`ProcessHandle`] and
//!   [`Stdio`] the caller keeps.
//! - `init`: the child's side, from clone to exec: the init, an exec'd process's first
//!   steps (`setns`), the last steps both share (`confine`), the program's exec.
//! - `rootfs`: mounts, devices, pivot_root, masked and read-only paths.
//! - `security`: capabilities, seccomp, LSM labels, process attributes, and runr's own
//!   binary kept out of reach (CVE-2019-5736).
//! - [`Spawner`] (`spawner`): creates and execs for a multi-threaded program.
//! - `namespaces`, `idmap`, `console`, [`notify`], [`hooks`], `sys`, `user`: one concern
//!   each; [`signal`]: signal names as `kill` accepts them.
//! - [`Error`] (`error`): one error type, with [`WrongStatus`] and [`InitFailure`].

pub mod checkpoint;
pub mod config;
mod console;
pub mod container;
mod error;
pub mod hooks;
mod idmap;
mod init;
mod namespaces;
pub mod notify;
pub mod process;
pub mod remnant;
mod rootfs;
mod security;
pub mod signal;
mod spawner;
pub mod state;
mod sys;
mod user;

pub use container::{Container, Event, Started};
pub use error::{Error, InitFailure, Result, WrongStatus};
pub use process::exec;
pub use process::{create, CreateOptions, ExitStatus, ProcessHandle, ProcessIo, Stdio};
pub use rootfs::MountOptions;
pub use security::seccomp::library_version as libseccomp_version;
pub use spawner::Spawner;
pub use state::{OciState, Status};
pub use sys::require_single_thread;

/// What this build of runr supports, as the OCI features document describes it.
pub mod features {
    use serde_json::{json, Value};

    pub fn document() -> Value {
        let mut caps: Vec<String> = caps::all().iter().map(|c| c.to_string()).collect();
        caps.sort();
        json!({
            "ociVersionMin": "1.0.0",
            "ociVersionMax": crate::state::OCI_VERSION,
            "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
            "mountOptions": crate::rootfs::known_options(),
            "linux": {
                "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"],
                "capabilities": caps,
                "cgroup": { "v1": true, "v2": true, "systemd": true, "systemdUser": false, "rdma": true },
                "seccomp": {
                    "enabled": true,
                    "actions": ["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY", "SCMP_ACT_TRACE", "SCMP_ACT_TRAP"],
                    "operators": ["SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE", "SCMP_CMP_LT", "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE"],
                    "archs": ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM", "SCMP_ARCH_LOONGARCH64", "SCMP_ARCH_M68K", "SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64", "SCMP_ARCH_MIPS64N32", "SCMP_ARCH_MIPSEL", "SCMP_ARCH_MIPSEL64", "SCMP_ARCH_MIPSEL64N32", "SCMP_ARCH_PARISC", "SCMP_ARCH_PARISC64", "SCMP_ARCH_PPC", "SCMP_ARCH_PPC64", "SCMP_ARCH_PPC64LE", "SCMP_ARCH_RISCV64", "SCMP_ARCH_S390", "SCMP_ARCH_S390X", "SCMP_ARCH_SH", "SCMP_ARCH_SHEB", "SCMP_ARCH_X32", "SCMP_ARCH_X86", "SCMP_ARCH_X86_64"],
                    "knownFlags": ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
                    "supportedFlags": ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]
                },
                "apparmor": { "enabled": true },
                "selinux": { "enabled": true },
                "intelRdt": { "enabled": false },
                "mountExtensions": { "idmap": { "enabled": true } }
            },
            "annotations": {
                "org.opencontainers.runr.version": env!("CARGO_PKG_VERSION")
            }
        })
    }
}
