use crate::Global;
use std::path::PathBuf;

/// The flags `create` and `run` share.
#[derive(clap::Args, Debug)]
pub struct CreateFlags {
    /// Path to the bundle (the directory holding config.json).
    #[arg(short = 'b', long, default_value = ".")]
    pub bundle: PathBuf,
    /// Write the init's host pid to this file.
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// Unix socket on which to send the pty master of a terminal.
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// Use MS_MOVE and chroot instead of pivot_root (for a ramfs root).
    #[arg(long = "no-pivot")]
    pub no_pivot: bool,
    /// Do not create a new session keyring for the container.
    #[arg(long = "no-new-keyring")]
    pub no_new_keyring: bool,
    /// Pass N more descriptors (3 to 3+N-1) to the container.
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: u32,
}

impl CreateFlags {
    pub fn options(&self, g: &Global, id: &str, detached: bool) -> container::CreateOptions {
        container::CreateOptions {
            root: g.root.clone(),
            id: id.to_string(),
            bundle: self.bundle.clone(),
            // Read from the bundle, as runc does.
            spec: None,
            pid_file: self.pid_file.clone(),
            console_socket: self.console_socket.clone(),
            no_pivot: self.no_pivot,
            no_new_keyring: self.no_new_keyring,
            preserve_fds: self.preserve_fds,
            listen_fds: container::process::listen_fds_from_env(),
            systemd_cgroup: g.systemd_cgroup,
            notify_socket: std::env::var_os("NOTIFY_SOCKET").map(PathBuf::from),
            detached,
            console_in_process: false,
            init_sigmask: None,
            // The CLI's stdio is the container's: engines hand runc and runr pipes or fifos.
            stdio: container::Stdio::Inherit,
        }
    }
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Container id.
    pub id: String,
    #[command(flatten)]
    pub flags: CreateFlags,
}

pub fn run(g: &Global, a: Args) -> anyhow::Result<i32> {
    container::create(&a.flags.options(g, &a.id, true))?;
    Ok(0)
}
