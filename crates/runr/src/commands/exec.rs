use crate::Global;
use container::exec::{ExecOptions, ProcessOverrides};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A process.json to run (instead of a command and the flags below).
    #[arg(short = 'p', long)]
    pub process: Option<PathBuf>,
    /// Unix socket on which to send the pty master of the terminal.
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// Working directory in the container.
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    /// Set an environment variable (KEY=VALUE); repeatable.
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Allocate a pseudo-terminal.
    #[arg(short = 't', long = "tty")]
    pub tty: bool,
    /// User: uid[:gid].
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// An additional group id; repeatable.
    #[arg(short = 'g', long = "additional-gids")]
    pub additional_gids: Vec<String>,
    /// Return once the process has started instead of waiting for it.
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Write the process's host pid to this file.
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// SELinux label for the process.
    #[arg(long = "process-label")]
    pub process_label: Option<String>,
    /// AppArmor profile for the process.
    #[arg(long)]
    pub apparmor: Option<String>,
    /// Set no_new_privileges for the process.
    #[arg(long = "no-new-privs")]
    pub no_new_privs: bool,
    /// Add a capability (bounding, effective and permitted sets); repeatable.
    #[arg(short = 'c', long = "cap")]
    pub cap: Vec<String>,
    /// Pass N more descriptors (3 to 3+N-1, after any LISTEN_FDS) to the process.
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: u32,
    /// Run the process in an existing sub-cgroup: [controller,...:]path; repeatable.
    #[arg(long)]
    pub cgroup: Vec<String>,
    /// Allow exec in a paused container (the process stays frozen until resumed).
    #[arg(long = "ignore-paused")]
    pub ignore_paused: bool,
    /// Container id.
    pub id: String,
    /// The command and its arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

pub fn run(g: &Global, a: Args) -> anyhow::Result<i32> {
    let c = container::Container::load(&g.root, &a.id)?;
    let process = match &a.process {
        Some(path) => container::exec::load_process(path)?,
        None => {
            let base = c.saved().config.process().clone().unwrap_or_default();
            container::exec::process_from_args(
                &base,
                &ProcessOverrides {
                    args: a.command,
                    terminal: a.tty,
                    env: a.env,
                    cwd: a.cwd,
                    user: a.user,
                    additional_gids: a.additional_gids,
                    caps: a.cap,
                    no_new_privs: a.no_new_privs,
                    apparmor: a.apparmor,
                    process_label: a.process_label,
                },
            )?
        }
    };
    let mut opts = ExecOptions {
        process,
        console_socket: a.console_socket,
        detached: a.detach,
        console_in_process: false,
        pid_file: a.pid_file,
        preserve_fds: a.preserve_fds,
        listen_fds: container::process::listen_fds_from_env(),
        cgroup: cgroups::SubCgroups::parse(&a.cgroup)?,
        ignore_paused: a.ignore_paused,
        sigmask: None,
        stdio: container::Stdio::Inherit,
    };
    if !a.detach {
        // Signals that arrive from now on are forwarded to the process, not lost.
        opts.sigmask = Some(crate::relay::block_forwarded_signals()?);
    }
    let mut execed = c.exec(&opts)?;
    if a.detach {
        return Ok(0);
    }
    crate::relay::wait_forwarding_signals(execed.pid(), execed.console.take(), None)
}
