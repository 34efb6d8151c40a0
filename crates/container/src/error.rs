//! One error type for the library. Every variant that wraps an OS error carries the step
//! that failed (which path, which mount, which syscall) so a user can act on it.

use std::fmt::Display;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The id has characters outside `[A-Za-z0-9_+.-]`, or is `.` or `..`.
    #[error("invalid container ID format")]
    InvalidId,
    #[error("container with given ID already exists")]
    Exists,
    #[error("container does not exist")]
    NotExist,
    /// config.json could not be read, parsed, or breaks a rule of the spec.
    #[error("{0}")]
    Config(String),
    /// A system call or file operation failed.
    #[error("{what}: {source}")]
    Os {
        what: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Cgroup(#[from] cgroups::CgroupError),
    /// The container init reported a failure, or died.
    #[error("{0}")]
    Init(String),
    /// A create-time hook failed.
    #[error("{0}")]
    Hook(String),
    /// The operation does not fit the container's status (e.g. "container not running").
    #[error("{0}")]
    Status(String),
    /// An argument of the operation is wrong (e.g. an unknown signal).
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Attach the failing step to an OS error: `.ctx(|| format!("mount {dest}"))`.
pub(crate) trait Context<T> {
    fn ctx<S: Display>(self, what: impl FnOnce() -> S) -> Result<T>;
}

impl<T> Context<T> for std::result::Result<T, std::io::Error> {
    fn ctx<S: Display>(self, what: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|source| Error::Os {
            what: what().to_string(),
            source,
        })
    }
}

impl<T> Context<T> for std::result::Result<T, nix::errno::Errno> {
    fn ctx<S: Display>(self, what: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|e| Error::Os {
            what: what().to_string(),
            source: std::io::Error::from_raw_os_error(e as i32),
        })
    }
}

impl<T> Context<T> for std::result::Result<T, rustix::io::Errno> {
    fn ctx<S: Display>(self, what: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|e| Error::Os {
            what: what().to_string(),
            source: e.into(),
        })
    }
}

impl<T> Context<T> for std::result::Result<T, caps::errors::CapsError> {
    fn ctx<S: Display>(self, what: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|e| Error::Os {
            what: what().to_string(),
            source: std::io::Error::other(e.to_string()),
        })
    }
}

impl Error {
    /// The errno behind an OS error, if that is what this is.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Os { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}
