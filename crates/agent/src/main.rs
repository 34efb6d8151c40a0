//! runr-agent: serves containers over the Kata Containers agent's ttrpc API.

use agent::{address, backend, logging, server::AgentServer};
use anyhow::Context;
use clap::Parser;
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
    // The spawner forks its helper now, while this process has one thread: the runtime's
    // threads come after it (see container::spawner).
    let spawner = container::Spawner::start().context("start the container spawner")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("build the async runtime")?;
    runtime.block_on(async {
        // The supervisor will own the spawner; until it is wired, nothing uses it.
        let _spawner = spawner;
        let server = AgentServer::start(&address, Arc::new(backend::Unwired)).await?;
        wait_for_stop().await?;
        server.shutdown().await
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
