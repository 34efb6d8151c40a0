use crate::Global;
use container::checkpoint::{CgroupsMode, CheckpointOptions, CriuFlags};
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
    /// Use userfaultfd to load memory lazily (not supported yet: refused).
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
    /// Descriptor CRIU writes to when the lazy-pages server is ready (not supported yet).
    #[arg(long = "status-fd")]
    pub status_fd: Option<i32>,
    /// Send pages to a CRIU page server at ADDRESS:PORT.
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
        status_fd: a.status_fd,
        page_server: a.page_server,
    };
    let c = container::Container::load(&g.root, &a.id)?;
    super::warn_all(&container::checkpoint::checkpoint(c, &o)?);
    Ok(0)
}
