//! The agent's errors and the ttrpc status each one answers with.
//!
//! Kata's clients read the status code: NOT_FOUND for an unknown container or exec id,
//! INVALID_ARGUMENT for a request that cannot be carried out as written, INTERNAL for the
//! rest. The message is runr's own, so that the shim shows the real cause.

use ttrpc::{Code, Status};

/// What a request to the agent failed with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AgentError {
    /// An unknown container id, exec id or other name.
    #[error("{0}")]
    NotFound(String),
    /// A request that cannot be carried out as written: a bad spec, a missing id.
    #[error("{0}")]
    InvalidArgument(String),
    /// Something the agent does not do (yet).
    #[error("{0}")]
    Unimplemented(String),
    /// Anything else: the system or the container library failed.
    #[error("{0}")]
    Internal(String),
}

impl AgentError {
    pub fn not_found(msg: impl Into<String>) -> Self {
        AgentError::NotFound(msg.into())
    }

    pub fn invalid(msg: impl Into<String>) -> Self {
        AgentError::InvalidArgument(msg.into())
    }

    pub fn internal(msg: impl Into<String>) -> Self {
        AgentError::Internal(msg.into())
    }

    /// The ttrpc status code this error answers with.
    pub fn code(&self) -> Code {
        match self {
            AgentError::NotFound(_) => Code::NOT_FOUND,
            AgentError::InvalidArgument(_) => Code::INVALID_ARGUMENT,
            AgentError::Unimplemented(_) => Code::UNIMPLEMENTED,
            AgentError::Internal(_) => Code::INTERNAL,
        }
    }

    /// The same error with `what` (the RPC, the object) in front of its message.
    pub fn context(self, what: impl std::fmt::Display) -> Self {
        let wrap = |m: String| format!("{what}: {m}");
        match self {
            AgentError::NotFound(m) => AgentError::NotFound(wrap(m)),
            AgentError::InvalidArgument(m) => AgentError::InvalidArgument(wrap(m)),
            AgentError::Unimplemented(m) => AgentError::Unimplemented(wrap(m)),
            AgentError::Internal(m) => AgentError::Internal(wrap(m)),
        }
    }
}

impl From<crate::convert::ConvertError> for AgentError {
    fn from(e: crate::convert::ConvertError) -> Self {
        AgentError::InvalidArgument(e.to_string())
    }
}

/// The container library's errors, by what the client did: an unknown container is
/// NOT_FOUND; a bad id, a taken id, a bad configuration, an argument or a container status
/// that does not fit the request are INVALID_ARGUMENT; the system failing is INTERNAL.
impl From<container::Error> for AgentError {
    fn from(e: container::Error) -> Self {
        use container::Error as E;
        let msg = e.to_string();
        match e {
            E::NotExist => AgentError::NotFound(msg),
            E::InvalidId | E::Exists | E::Config(_) | E::Invalid(_) | E::Status(_) => {
                AgentError::InvalidArgument(msg)
            }
            E::Os { .. } | E::Cgroup(_) | E::Init(_) | E::Hook(_) | E::Timeout(_) => {
                AgentError::Internal(msg)
            }
        }
    }
}

/// The supervisor's errors: an unknown container or exec id is NOT_FOUND; a taken id, a
/// request that does not fit the process (a pty asked of a process without one, a process
/// that has exited, a container in the wrong state) INVALID_ARGUMENT; a library error as
/// the library's own mapping says, with the supervisor's whole message (which step failed).
impl From<supervisor::Error> for AgentError {
    fn from(e: supervisor::Error) -> Self {
        use supervisor::Error as E;
        let msg = e.to_string();
        match e {
            E::NotFound { .. } => AgentError::NotFound(msg),
            E::AlreadyExists { .. } | E::InvalidArgument(_) | E::FailedPrecondition(_) => {
                AgentError::InvalidArgument(msg)
            }
            E::Library { source, .. } => match AgentError::from(source) {
                AgentError::NotFound(_) => AgentError::NotFound(msg),
                AgentError::InvalidArgument(_) => AgentError::InvalidArgument(msg),
                AgentError::Unimplemented(_) => AgentError::Unimplemented(msg),
                AgentError::Internal(_) => AgentError::Internal(msg),
            },
            E::Io { .. } => AgentError::Internal(msg),
        }
    }
}

/// The status a failed request answers with.
pub fn to_status(e: &AgentError) -> Status {
    ttrpc::get_status(e.code(), e.to_string())
}

/// The ttrpc error a generated service method returns for `e`.
pub fn to_ttrpc(e: AgentError) -> ttrpc::Error {
    ttrpc::Error::RpcStatus(to_status(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_has_its_code_and_keeps_its_message() {
        let cases = [
            (
                AgentError::not_found("container c1 not found"),
                Code::NOT_FOUND,
            ),
            (
                AgentError::invalid("OCI.Process.Args: empty"),
                Code::INVALID_ARGUMENT,
            ),
            (AgentError::Unimplemented("no".into()), Code::UNIMPLEMENTED),
            (AgentError::internal("clone3: EPERM"), Code::INTERNAL),
        ];
        for (e, code) in cases {
            let msg = e.to_string();
            let status = to_status(&e);
            assert_eq!(status.code(), code);
            assert_eq!(status.message(), msg);
            match to_ttrpc(e) {
                ttrpc::Error::RpcStatus(s) => assert_eq!(s.code(), code),
                other => panic!("not a status: {other:?}"),
            }
        }
    }

    #[test]
    fn container_library_errors() {
        let code = |e: container::Error| AgentError::from(e).code();
        assert_eq!(code(container::Error::NotExist), Code::NOT_FOUND);
        assert_eq!(code(container::Error::InvalidId), Code::INVALID_ARGUMENT);
        assert_eq!(code(container::Error::Exists), Code::INVALID_ARGUMENT);
        assert_eq!(
            code(container::Error::Config("bad".into())),
            Code::INVALID_ARGUMENT
        );
        assert_eq!(
            code(container::Error::Status(container::WrongStatus::NotRunning)),
            Code::INVALID_ARGUMENT
        );
        assert_eq!(
            code(container::Error::Init(container::InitFailure::new(
                "exec: ENOENT"
            ))),
            Code::INTERNAL
        );
        let os = container::Error::Os {
            what: "mount /proc".into(),
            source: std::io::Error::from_raw_os_error(libc::EPERM),
        };
        let e = AgentError::from(os).context("CreateContainer c1");
        assert_eq!(e.code(), Code::INTERNAL);
        assert!(
            e.to_string()
                .starts_with("CreateContainer c1: mount /proc: "),
            "{e}"
        );
    }

    #[test]
    fn supervisor_errors() {
        use supervisor::Error as E;
        let code = |e: E| AgentError::from(e).code();
        let nf = E::NotFound {
            id: "c".into(),
            exec_id: "e".into(),
        };
        assert_eq!(code(nf), Code::NOT_FOUND);
        let taken = E::AlreadyExists {
            id: "c".into(),
            exec_id: "c".into(),
        };
        assert_eq!(code(taken), Code::INVALID_ARGUMENT);
        assert_eq!(
            code(E::FailedPrecondition("exited".into())),
            Code::INVALID_ARGUMENT
        );
        let lib = E::Library {
            what: "create".into(),
            source: container::Error::Os {
                what: "mount /no/such".into(),
                source: std::io::Error::from_raw_os_error(libc::ENOENT),
            },
        };
        let e = AgentError::from(lib);
        assert_eq!(e.code(), Code::INTERNAL);
        assert!(e.to_string().starts_with("create: mount /no/such: "), "{e}");
        let bad = E::Library {
            what: "create".into(),
            source: container::Error::Config("process.args is empty".into()),
        };
        assert_eq!(code(bad), Code::INVALID_ARGUMENT);
        let io = E::Io {
            what: "read stdout".into(),
            source: std::io::Error::from_raw_os_error(libc::EIO),
        };
        assert_eq!(code(io), Code::INTERNAL);
    }

    #[test]
    fn context_keeps_the_kind() {
        let e = AgentError::not_found("exec e1").context("WaitProcess c1");
        assert_eq!(e, AgentError::NotFound("WaitProcess c1: exec e1".into()));
        assert_eq!(e.code(), Code::NOT_FOUND);
    }
}
