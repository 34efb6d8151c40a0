use super::checkpoint::CriuArgs;
use crate::Global;
use container::checkpoint::RestoreOptions;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    pub id: String,
    #[command(flatten)]
    pub criu: CriuArgs,
    /// Path to the bundle (the directory holding config.json).
    #[arg(short = 'b', long, default_value = ".")]
    pub bundle: PathBuf,
    /// Unix socket on which to send the pty master of a terminal.
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// Return once the container is restored instead of waiting for it.
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Write the restored init's host pid to this file.
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// Do not reap orphans as subreaper while waiting in the foreground.
    #[arg(long = "no-subreaper")]
    pub no_subreaper: bool,
    /// Accepted for runc's sake: CRIU, not runr, sets up the restored root.
    #[arg(long = "no-pivot")]
    pub no_pivot: bool,
}

/// `restore`: bring a checkpointed container back with CRIU.
pub fn run(g: &Global, a: Args) -> anyhow::Result<i32> {
    if a.no_subreaper && !a.detach {
        anyhow::bail!("--no-subreaper is not supported by runr restore in the foreground");
    }
    let o = RestoreOptions {
        create: container::CreateOptions {
            root: g.root.clone(),
            id: a.id.clone(),
            bundle: a.bundle,
            pid_file: a.pid_file,
            console_socket: a.console_socket,
            no_pivot: a.no_pivot,
            systemd_cgroup: g.systemd_cgroup,
            detached: a.detach,
            ..Default::default()
        },
        criu: a.criu.flags()?,
    };
    super::outlive_interrupts()?;
    let mut c = container::checkpoint::restore(&o)?;
    if a.detach {
        return Ok(0);
    }
    let pid = c.saved().init_pid;
    c.unlock();
    drop(c);
    crate::relay::block_forwarded_signals()?;
    let code = crate::relay::wait_forwarding_signals(pid, None, None)?;
    super::warn_all(&container::Container::load(&g.root, &a.id)?.delete(true)?);
    Ok(code)
}
