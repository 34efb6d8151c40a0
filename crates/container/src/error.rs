//! One error type for the library. Every variant that wraps an OS error carries the step
//! that failed (which path, which mount, which syscall) so a user can act on it, and the
//! variants are what a service maps to its status codes: an unknown id is [`Error::NotExist`],
//! an operation that does not fit the container's status is [`Error::Status`] with a
//! [`WrongStatus`], a failure inside the container's init is [`Error::Init`] with the step
//! and errno it failed with.

use crate::state::Status;
use serde::{Deserialize, Serialize};
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
    /// The container's init (or an exec'd process before its exec) reported a failure, or
    /// died.
    #[error("{0}")]
    Init(InitFailure),
    /// A create-time hook failed.
    #[error("{0}")]
    Hook(String),
    /// The operation does not fit the container's status.
    #[error("{0}")]
    Status(WrongStatus),
    /// The container's processes did not die when killed.
    #[error("{0}")]
    Timeout(String),
    /// An argument of the operation is wrong (e.g. an unknown signal).
    #[error("{0}")]
    Invalid(String),
}

/// An operation that does not fit the container's status. The texts are runc's where runc
/// has one, since engines match on them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum WrongStatus {
    /// pause, update or kill of a container whose init has gone.
    #[error("container not running")]
    NotRunning,
    /// stats or events of a container whose init has gone.
    #[error("container with id {0} is not running")]
    NotRunningId(String),
    /// resume of a container that is not paused.
    #[error("container not paused")]
    NotPaused,
    #[error("cannot exec in a stopped container")]
    ExecStopped,
    #[error("cannot exec in a paused container (use --ignore-paused to override)")]
    ExecPaused,
    #[error("cannot start a container that has stopped")]
    StartStopped,
    #[error("cannot start a container in the paused state")]
    StartPaused,
    #[error("cannot start an already running container")]
    StartRunning,
    /// delete without force of a container still running (or paused, or being created).
    #[error("cannot delete container {id} that is not stopped: {status}")]
    DeleteNotStopped {
        id: String,
        #[serde(with = "status_name")]
        status: Status,
    },
    /// delete of a container whose create is still at work.
    #[error("container {0} is still being created")]
    StillCreating(String),
    /// A container asked for as a remnant (see [`crate::remnant`]) is complete.
    #[error("container {0} is complete")]
    Complete(String),
}

/// A failure inside the container's init or an exec'd process before it became the user's
/// program, as it reached the runtime.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InitFailure {
    /// The step that failed, when it was one system call or file operation (e.g.
    /// `mount proc onto /proc`).
    pub step: Option<String>,
    /// The errno it failed with, if the kernel gave one.
    pub errno: Option<i32>,
    /// The whole message, as it is shown to a user.
    pub message: String,
}

impl InitFailure {
    /// A failure the runtime saw for itself (the init died, or said something unexpected).
    pub fn new(message: impl Into<String>) -> Self {
        InitFailure {
            step: None,
            errno: None,
            message: message.into(),
        }
    }
}

impl Display for InitFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// What a process of the container sends its runtime when one of its steps failed.
impl From<&Error> for InitFailure {
    fn from(e: &Error) -> Self {
        match e {
            Error::Init(f) => f.clone(),
            Error::Os { what, source } => InitFailure {
                step: Some(what.clone()),
                errno: source.raw_os_error(),
                message: e.to_string(),
            },
            _ => InitFailure {
                step: None,
                errno: e.errno(),
                message: e.to_string(),
            },
        }
    }
}

impl Error {
    /// A failure of the init that the runtime saw itself (it died, or said something
    /// unexpected).
    pub(crate) fn init(message: impl Into<String>) -> Error {
        Error::Init(InitFailure::new(message))
    }
}

/// [`Status`] as its spec name, for [`WrongStatus`] on the wire.
mod status_name {
    use crate::state::Status;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(status: &Status, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(status.as_str())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Status, D::Error> {
        let name = String::deserialize(d)?;
        Status::from_name(&name)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown status {name:?}")))
    }
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
    /// The errno behind the failure, if the kernel gave one: of a system call or file
    /// operation, of a cgroup file, or of the step that failed inside the init.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Os { source, .. } => source.raw_os_error(),
            Error::Cgroup(e) => e.errno(),
            Error::Init(f) => f.errno,
            _ => None,
        }
    }
}

/// An [`Error`] as it crosses from one process to another (a spawner's worker to its
/// caller): the same variant, message and errno on the other side.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum WireError {
    InvalidId,
    Exists,
    NotExist,
    Config(String),
    /// `detail` is the OS error's own text, for errors that carry no errno.
    Os {
        what: String,
        errno: Option<i32>,
        detail: String,
    },
    Cgroup {
        message: String,
        errno: Option<i32>,
    },
    Init(InitFailure),
    Hook(String),
    Status(WrongStatus),
    Timeout(String),
    Invalid(String),
}

impl From<&Error> for WireError {
    fn from(e: &Error) -> Self {
        match e {
            Error::InvalidId => WireError::InvalidId,
            Error::Exists => WireError::Exists,
            Error::NotExist => WireError::NotExist,
            Error::Config(m) => WireError::Config(m.clone()),
            Error::Os { what, source } => WireError::Os {
                what: what.clone(),
                errno: source.raw_os_error(),
                detail: source.to_string(),
            },
            Error::Cgroup(c) => WireError::Cgroup {
                message: c.to_string(),
                errno: c.errno(),
            },
            Error::Init(f) => WireError::Init(f.clone()),
            Error::Hook(m) => WireError::Hook(m.clone()),
            Error::Status(s) => WireError::Status(s.clone()),
            Error::Timeout(m) => WireError::Timeout(m.clone()),
            Error::Invalid(m) => WireError::Invalid(m.clone()),
        }
    }
}

impl From<WireError> for Error {
    fn from(w: WireError) -> Self {
        match w {
            WireError::InvalidId => Error::InvalidId,
            WireError::Exists => Error::Exists,
            WireError::NotExist => Error::NotExist,
            WireError::Config(m) => Error::Config(m),
            WireError::Os {
                what,
                errno: Some(errno),
                ..
            } => Error::Os {
                what,
                source: std::io::Error::from_raw_os_error(errno),
            },
            WireError::Os {
                what,
                errno: None,
                detail,
            } => Error::Os {
                what,
                source: std::io::Error::other(detail),
            },
            WireError::Cgroup { message, errno } => {
                Error::Cgroup(cgroups::CgroupError::Relayed { message, errno })
            }
            WireError::Init(f) => Error::Init(f),
            WireError::Hook(m) => Error::Hook(m),
            WireError::Status(s) => Error::Status(s),
            WireError::Timeout(m) => Error::Timeout(m),
            WireError::Invalid(m) => Error::Invalid(m),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn across(e: Error) -> Error {
        let json = serde_json::to_string(&WireError::from(&e)).unwrap();
        serde_json::from_str::<WireError>(&json).unwrap().into()
    }

    fn samples() -> Vec<Error> {
        vec![
            Error::InvalidId,
            Error::Exists,
            Error::NotExist,
            Error::Config("process.args must not be empty".into()),
            Error::Os {
                what: "mount proc onto /proc".into(),
                source: std::io::Error::from_raw_os_error(libc::EPERM),
            },
            Error::Os {
                what: "read the exec fifo".into(),
                source: std::io::Error::other("short read"),
            },
            Error::Cgroup(cgroups::CgroupError::Write {
                path: "/sys/fs/cgroup/memory/x/memory.limit_in_bytes".into(),
                value: "1".into(),
                source: std::io::Error::from_raw_os_error(libc::EBUSY),
            }),
            Error::Init(InitFailure {
                step: Some("chdir to /nowhere".into()),
                errno: Some(libc::ENOENT),
                message: "chdir to /nowhere: No such file or directory (os error 2)".into(),
            }),
            Error::Hook("prestart hook /bin/false exited with status 1".into()),
            Error::Status(WrongStatus::DeleteNotStopped {
                id: "c1".into(),
                status: Status::Running,
            }),
            Error::Status(WrongStatus::NotRunning),
            Error::Timeout("the container init (pid 9) did not die within 10s of SIGKILL".into()),
            Error::Invalid("unknown signal \"SIGFOO\"".into()),
        ]
    }

    #[test]
    fn an_error_keeps_its_variant_message_and_errno_across_processes() {
        for e in samples() {
            let back = across(Error::from(WireError::from(&e)));
            assert_eq!(back.to_string(), e.to_string());
            assert_eq!(back.errno(), e.errno(), "{e}");
            assert_eq!(WireError::from(&back), WireError::from(&e));
            assert_eq!(
                std::mem::discriminant(&back),
                std::mem::discriminant(&e),
                "{e}"
            );
        }
    }

    #[test]
    fn wrong_status_texts_are_the_ones_engines_match() {
        let e = Error::Status(WrongStatus::DeleteNotStopped {
            id: "web".into(),
            status: Status::Paused,
        });
        assert_eq!(
            e.to_string(),
            "cannot delete container web that is not stopped: paused"
        );
        assert_eq!(
            Error::Status(WrongStatus::NotRunning).to_string(),
            "container not running"
        );
    }

    #[test]
    fn an_init_failure_names_the_step_and_errno_of_an_os_error() {
        let e = Error::Os {
            what: "mount proc onto /proc".into(),
            source: std::io::Error::from_raw_os_error(libc::EPERM),
        };
        let f = InitFailure::from(&e);
        assert_eq!(f.step.as_deref(), Some("mount proc onto /proc"));
        assert_eq!(f.errno, Some(libc::EPERM));
        assert_eq!(f.message, e.to_string());
        let f = InitFailure::from(&Error::Config("no such user: nobody2".into()));
        assert_eq!((f.step, f.errno), (None, None));
        assert_eq!(f.message, "no such user: nobody2");
    }
}
