use crate::Global;
use container::checkpoint::{CgroupsMode, CheckpointOptions, CriuFlags};
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::PathBuf;

/// The flags checkpoint and restore share (runc's).
#[derive(clap::Args, Debug)]
pub struct CriuArgs {
    /// Directory of the checkpoint's images.
    #[arg(long = "image-path")]
    pub image_path: Option<PathBuf>,
    /// Directory for CRIU's log and work files (the image directory if unset).
    #[arg(long = "work-path")]
    pub work_path: Option<PathBuf>,
    /// Allow established TCP connections.
    #[arg(long = "tcp-established")]
    pub tcp_established: bool,
    /// Allow external unix sockets.
    #[arg(long = "ext-unix-sk")]
    pub ext_unix_sk: bool,
    /// Allow shell jobs.
    #[arg(long = "shell-job")]
    pub shell_job: bool,
    /// Handle file locks.
    #[arg(long = "file-locks")]
    pub file_locks: bool,
    /// How CRIU handles cgroups: soft, full, strict or ignore.
    #[arg(long = "manage-cgroups-mode", value_parser = ["soft", "full", "strict", "ignore"])]
    pub manage_cgroups_mode: Option<String>,
    /// Create this namespace empty instead of dumping or restoring it (network only).
    #[arg(long = "empty-ns")]
    pub empty_ns: Vec<String>,
    /// Deduplicate images against the parent's as they are written.
    #[arg(long = "auto-dedup")]
    pub auto_dedup: bool,
    /// Lazy migration: checkpoint serves the memory on --page-server's port until a restore
    /// (with a `criu lazy-pages` daemon) has fetched it; restore loads it on first touch.
    #[arg(long = "lazy-pages")]
    pub lazy_pages: bool,
}

impl CriuArgs {
    pub fn flags(&self) -> anyhow::Result<CriuFlags> {
        let image_path = match &self.image_path {
            Some(p) => p.clone(),
            // runc's default: ./checkpoint
            None => std::env::current_dir()?.join("checkpoint"),
        };
        Ok(CriuFlags {
            image_path,
            work_path: self.work_path.clone(),
            tcp_established: self.tcp_established,
            ext_unix_sk: self.ext_unix_sk,
            shell_job: self.shell_job,
            file_locks: self.file_locks,
            manage_cgroups_mode: self
                .manage_cgroups_mode
                .as_deref()
                .and_then(CgroupsMode::from_name),
            empty_ns: self.empty_ns.clone(),
            auto_dedup: self.auto_dedup,
            lazy_pages: self.lazy_pages,
        })
    }
}

#[derive(clap::Args, Debug)]
pub struct Args {
    pub id: String,
    #[command(flatten)]
    pub criu: CriuArgs,
    /// The previous dump's image directory, relative to --image-path.
    #[arg(long = "parent-path")]
    pub parent_path: Option<PathBuf>,
    /// Leave the container running after the checkpoint.
    #[arg(long = "leave-running")]
    pub leave_running: bool,
    /// Dump only the memory, for a later checkpoint (needs memory change tracking).
    #[arg(long = "pre-dump")]
    pub pre_dump: bool,
    /// With --lazy-pages: descriptor written a NUL byte when the pages are being served.
    #[arg(long = "status-fd")]
    pub status_fd: Option<i32>,
    /// Send pages to a CRIU page server at ADDRESS:PORT (with --lazy-pages: serve them on PORT).
    #[arg(long = "page-server")]
    pub page_server: Option<String>,
}

/// `checkpoint`: dump a running container with CRIU.
pub fn run(g: &Global, a: Args) -> anyhow::Result<i32> {
    let o = CheckpointOptions {
        criu: a.criu.flags()?,
        parent_path: a.parent_path,
        leave_running: a.leave_running,
        pre_dump: a.pre_dump,
        status_fd: a.status_fd.map(status_fd).transpose()?,
        page_server: a.page_server,
    };
    let c = container::Container::load(&g.root, &a.id)?;
    super::outlive_interrupts()?;
    super::warn_all(&container::checkpoint::checkpoint(c, &o)?);
    Ok(0)
}

/// A descriptor of runr's own for the one `--status-fd N` names (which stays open as the
/// caller gave it: it may be one of our stdio, needed for errors).
fn status_fd(n: i32) -> anyhow::Result<OwnedFd> {
    if n < 0 {
        anyhow::bail!("--status-fd {n}: not a descriptor");
    }
    // SAFETY: F_DUPFD_CLOEXEC reads no memory; an n that is not open fails with EBADF.
    let dup = unsafe { libc::fcntl(n, libc::F_DUPFD_CLOEXEC, 3) };
    if dup < 0 {
        anyhow::bail!("--status-fd {n}: {}", std::io::Error::last_os_error());
    }
    // SAFETY: dup was just made by F_DUPFD_CLOEXEC: nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(dup) })
}
