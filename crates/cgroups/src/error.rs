use std::path::PathBuf;

/// Every cgroup failure names the file and, for writes, the value.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("write {value:?} to {path}: {source}")]
    Write {
        path: PathBuf,
        value: String,
        source: std::io::Error,
    },
    #[error("create cgroup {path}: {source}")]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("remove cgroup {path}: {source}")]
    Remove {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("add pid {pid} to {path}: {source}")]
    Enter {
        pid: i32,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("move itself into {path}: {source}")]
    EnterSelf {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cgroup layout: {0}")]
    Layout(String),
    #[error("invalid cgroup setting: {0}")]
    Invalid(String),
    #[error("{0}")]
    Unsupported(String),
    /// A cgroup error another process met and reported (e.g. a library's helper process).
    #[error("{message}")]
    Relayed { message: String, errno: Option<i32> },
}

impl CgroupError {
    /// The errno of the failed file operation, if that is what this is.
    pub fn errno(&self) -> Option<i32> {
        match self {
            CgroupError::Read { source, .. }
            | CgroupError::Write { source, .. }
            | CgroupError::Create { source, .. }
            | CgroupError::Remove { source, .. }
            | CgroupError::Enter { source, .. }
            | CgroupError::EnterSelf { source, .. } => source.raw_os_error(),
            CgroupError::Relayed { errno, .. } => *errno,
            _ => None,
        }
    }

    /// The kernel said no for lack of rights (an unprivileged user, a read-only cgroupfs).
    pub fn is_permission_denied(&self) -> bool {
        matches!(
            self.errno(),
            Some(libc::EACCES) | Some(libc::EPERM) | Some(libc::EROFS)
        )
    }
}
