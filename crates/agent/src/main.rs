//! runr-agent: serves containers over the Kata Containers agent's ttrpc API.

use agent::containers::Containers;
use agent::{address, guest, logging, server::AgentServer};
use anyhow::Context;
use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Parser, Debug)]
#[command(name = "runr-agent", version, about)]
struct Args {
    /// Where to listen: vsock://CID:PORT (CID -1: any), unix:///path or unix://@name.
    /// Default: $KATA_AGENT_SERVER_ADDR, else vsock://-1:1024.
    #[arg(long)]
    server_address: Option<String>,

    /// error, warn, info, debug or trace.
    #[arg(long, default_value = "info")]
    log_level: String,

    /// Where the containers' state (containers/) and configs (bundles/) are kept.
    #[arg(long, default_value = "/run/runr-agent")]
    state_dir: PathBuf,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(e) = logging::init(&args.log_level) {
        eprintln!("runr-agent: {e}");
        return ExitCode::FAILURE;
    }
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    let env = std::env::var(address::ADDRESS_ENV).ok();
    let address = address::choose(args.server_address.as_deref(), env.as_deref())?;
    let in_guest = std::process::id() == 1;
    if in_guest {
        // The guest's init: its file systems, then PID 1 stays behind to reap orphans and
        // this process goes on as the agent.
        guest::mount_guest_filesystems().context("mount the guest's file systems")?;
        guest::split_init()?;
    }
    // The spawner forks its helper now, while this process has one thread: the runtime's
    // threads come after it (see container::spawner).
    let spawner = container::Spawner::start().context("start the container spawner")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("build the async runtime")?;
    runtime.block_on(async {
        let mut containers = Containers::new(Arc::new(spawner), &args.state_dir)?;
        if in_guest {
            containers = containers.in_guest();
        }
        let left = containers.remove_leftovers().await?;
        if !left.is_empty() {
            tracing::warn!(containers = ?left, "removed what an earlier agent left");
        }
        let server = AgentServer::start(&address, Arc::new(containers.clone())).await?;
        wait_for_stop().await?;
        let stopped = server.shutdown().await;
        // Nothing of the agent's outlives it: its containers go with it.
        containers
            .remove_all()
            .await
            .context("remove the containers")?;
        stopped
    })
}

/// Until SIGTERM or SIGINT.
async fn wait_for_stop() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("handle SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("handle SIGINT")?;
    let which = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    tracing::info!(signal = which, "stopping");
    Ok(())
}
