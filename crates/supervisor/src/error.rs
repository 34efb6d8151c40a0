//! The supervisor's errors, typed so that a front end maps each to its own codes (gRPC's
//! NotFound, AlreadyExists, InvalidArgument, FailedPrecondition, Internal).

/// What a supervisor call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No such container, or no such process in it. For a container's init, `exec_id` is
    /// the container id.
    #[error("container {id}: no process {exec_id:?}")]
    NotFound { id: String, exec_id: String },
    /// A container with this id, or a process with this exec id in the container, exists.
    #[error("container {id}: process {exec_id:?} already exists")]
    AlreadyExists { id: String, exec_id: String },
    /// The request itself is wrong (a terminal process asked for pipes, a resize of a
    /// process without a terminal).
    #[error("{0}")]
    InvalidArgument(String),
    /// The request does not fit the process's state (it has exited; it still runs; its
    /// stdin is closed).
    #[error("{0}")]
    FailedPrecondition(String),
    /// The container library failed; its message says which step.
    #[error("{what}: {source}")]
    Library {
        what: String,
        #[source]
        source: container::Error,
    },
    /// A system call of the supervisor's own failed.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

/// The supervisor's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The errno behind the failure, if an OS error is what it was.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Library { source, .. } => source.errno(),
            Error::Io { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }

    pub(crate) fn not_found(id: &str, exec_id: &str) -> Error {
        Error::NotFound {
            id: id.into(),
            exec_id: exec_id.into(),
        }
    }

    pub(crate) fn exists(id: &str, exec_id: &str) -> Error {
        Error::AlreadyExists {
            id: id.into(),
            exec_id: exec_id.into(),
        }
    }

    /// A library error on container `id`, mapped to the supervisor's own kinds where the
    /// library's says the same thing (no such container, one exists, a bad argument).
    pub(crate) fn library(id: &str, what: impl Into<String>, source: container::Error) -> Error {
        match source {
            container::Error::NotExist => Error::not_found(id, id),
            container::Error::Exists => Error::exists(id, id),
            container::Error::InvalidId => {
                Error::InvalidArgument(format!("invalid container id {id:?}"))
            }
            container::Error::Status(message) => {
                Error::FailedPrecondition(format!("{}: {message}", what.into()))
            }
            source => Error::Library {
                what: what.into(),
                source,
            },
        }
    }

    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io {
            what: what.into(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn library_errors_map_to_the_supervisors_kinds() {
        let e = Error::library("c", "start", container::Error::NotExist);
        assert!(
            matches!(e, Error::NotFound { ref id, ref exec_id } if id == "c" && exec_id == "c")
        );
        let e = Error::library("c", "create", container::Error::Exists);
        assert!(matches!(e, Error::AlreadyExists { .. }));
        let e = Error::library(
            "c",
            "pause",
            container::Error::Status(container::WrongStatus::NotRunning),
        );
        assert_eq!(e.to_string(), "pause: container not running");
        assert!(matches!(e, Error::FailedPrecondition(_)));
    }

    #[test]
    fn os_errors_keep_their_message_and_errno() {
        let os = container::Error::Os {
            what: "open /x".into(),
            source: std::io::Error::from_raw_os_error(libc::ENOENT),
        };
        let e = Error::library("c", "exec", os);
        assert_eq!(e.errno(), Some(libc::ENOENT));
        assert!(e.to_string().starts_with("exec: open /x: "), "{e}");
        assert_eq!(Error::InvalidArgument("x".into()).errno(), None);
    }
}
