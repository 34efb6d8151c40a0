//! One file per command; each parses nothing itself (clap did) and calls the library.

mod checkpoint;
mod create;
mod delete;
mod events;
mod exec;
mod features;
mod kill;
mod list;
mod pause;
mod ps;
mod restore;
mod run;
mod spec;
mod start;
mod state;
mod update;

use crate::Global;
use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a container: its init waits for `start`.
    Create(create::Args),
    /// Start a created container.
    Start(start::Args),
    /// Create and start a container, in the foreground unless --detach.
    Run(run::Args),
    /// Run another process in a container.
    Exec(Box<exec::Args>),
    /// Print the state of a container as JSON.
    State(state::Args),
    /// List containers.
    List(list::Args),
    /// List the processes of a container.
    Ps(ps::Args),
    /// Send a signal to a container's init (or every process with --all).
    Kill(kill::Args),
    /// Freeze every process of a container.
    Pause(pause::Args),
    /// Thaw a paused container.
    Resume(pause::Args),
    /// Change a container's resource limits.
    Update(Box<update::Args>),
    /// Print resource usage and OOM events as JSON lines.
    Events(events::Args),
    /// Delete a container and what it holds.
    Delete(delete::Args),
    /// Checkpoint a running container with CRIU.
    Checkpoint(Box<checkpoint::Args>),
    /// Restore a container from a checkpoint with CRIU.
    Restore(Box<restore::Args>),
    /// Write a default config.json.
    Spec(spec::Args),
    /// Print the features this runtime supports, as JSON.
    Features,
}

impl Command {
    /// runc prefixes create and run errors ("runc create failed: ..."); engines show it.
    pub fn error_prefix(&self) -> &'static str {
        match self {
            Command::Create(_) => "runr create failed: ",
            Command::Run(_) => "runr run failed: ",
            Command::Exec(_) => "exec failed: ",
            _ => "",
        }
    }

    /// runc exits 255 when exec itself fails (telling it from the process's own codes).
    pub fn error_exit_code(&self) -> i32 {
        match self {
            Command::Exec(_) => 255,
            _ => 1,
        }
    }
}

pub fn run(g: &Global, cmd: Command) -> anyhow::Result<i32> {
    match cmd {
        Command::Create(a) => create::run(g, a),
        Command::Start(a) => start::run(g, a),
        Command::Run(a) => run::run(g, a),
        Command::Exec(a) => exec::run(g, *a),
        Command::State(a) => state::run(g, a),
        Command::List(a) => list::run(g, a),
        Command::Ps(a) => ps::run(g, a),
        Command::Kill(a) => kill::run(g, a),
        Command::Delete(a) => delete::run(g, a),
        Command::Pause(a) => pause::pause(g, a),
        Command::Resume(a) => pause::resume(g, a),
        Command::Update(a) => update::run(g, *a),
        Command::Events(a) => events::run(g, a),
        Command::Checkpoint(a) => checkpoint::run(g, *a),
        Command::Restore(a) => restore::run(g, *a),
        Command::Spec(a) => spec::run(a),
        Command::Features => features::run(),
    }
}

/// `runr --version`, in runc's shape: engines read the first line's version and the
/// `commit:` line (docker info shows it).
pub fn version_text() -> String {
    format!(
        "runr version {}\ncommit: {}\nspec: {}\nlibseccomp: {}\n",
        env!("CARGO_PKG_VERSION"),
        env!("RUNR_COMMIT"),
        container::state::OCI_VERSION,
        container::libseccomp_version()
    )
}

/// Show warnings (failed poststart/poststop hooks) the library returned.
fn warn_all(warnings: &[String]) {
    for w in warnings {
        tracing::warn!("{w}");
    }
}

/// For checkpoint and restore, while CRIU works: SIGINT, SIGTERM, SIGHUP and SIGQUIT no
/// longer end runr (a handler that does nothing; CRIU, exec'd, has their default actions).
/// A ^C at a terminal reaches CRIU too, which dies of it, and runr, still there, undoes its
/// part (thaws the container it was dumping; removes the container it was restoring). Sent
/// to runr alone, they let CRIU finish.
fn outlive_interrupts() -> anyhow::Result<()> {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    extern "C" fn ignore(_: libc::c_int) {}
    let action = SigAction::new(
        SigHandler::Handler(ignore),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for sig in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
    ] {
        // SAFETY: the handler does nothing, which is async-signal-safe.
        unsafe { sigaction(sig, &action) }
            .map_err(|e| anyhow::anyhow!("set a handler for {sig}: {e}"))?;
    }
    Ok(())
}
