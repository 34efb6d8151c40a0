//! containerd-shim-runr-v2: containerd's Task API (shim API v2, and its renamed copy v3)
//! served by runr's supervisor, in-process: no runtime binary runs per call.
//!
//! containerd runs this binary three ways, told apart by the action after the flags:
//! - `start` ([`start`]): find or start the shim of the container's pod, print its address;
//! - `delete` ([`delete`]): clean up after a shim that died, print a DeleteResponse;
//! - no action ([`serve`]): the long-lived shim itself, serving the Task API on a socket.
//!
//! Modules: `address` (where sockets and state live, the pod grouping), `service` (the Task
//! RPCs), `io` (stdio fifos and loggers), `rootfs` (the rootfs mounts), `events` (the
//! ordered publisher), `metrics` (cgroup stats in containerd's types), `reaper` (orphans
//! adopted as subreaper), `logging`.

mod address;
mod delete;
mod events;
mod io;
mod logging;
mod metrics;
mod options;
mod reaper;
mod rootfs;
mod serve;
mod service;
mod start;

use containerd_shim_protos::protobuf::Message;
use std::io::Write;
use std::process::ExitCode;

/// The runtime name containerd knows this shim by (`--runtime`, CRI's `runtime_type`).
pub const RUNTIME_NAME: &str = "io.containerd.runr.v2";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let flags = match containerd_shim::parse(&args[1..]) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("containerd-shim-runr-v2: bad arguments: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = if flags.version {
        println!(
            "containerd-shim-runr-v2:\n  Version: {}\n  Runtime: {RUNTIME_NAME}",
            env!("CARGO_PKG_VERSION")
        );
        Ok(())
    } else if flags.info {
        print_info()
    } else {
        match flags.action.as_str() {
            "start" => start::run(&flags),
            "delete" => delete::run(&flags),
            "" => serve::run(&flags),
            other => Err(anyhow::anyhow!("unknown action {other:?}")),
        }
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("containerd-shim-runr-v2: {e:#}");
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `-info` (containerd 2.x asks before it uses a runtime): the runtime's name.
fn print_info() -> anyhow::Result<()> {
    let info = containerd_shim_protos::types::introspection::RuntimeInfo {
        name: RUNTIME_NAME.to_string(),
        ..Default::default()
    };
    let bytes = info.write_to_bytes()?;
    std::io::stdout().write_all(&bytes)?;
    Ok(())
}
