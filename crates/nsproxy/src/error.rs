//! The one error type of this crate.

use std::io;

use crate::proto::{ProtoError, Step};

/// What went wrong talking to an agent.
///
/// Every variant names the operation that failed. Where the kernel said no,
/// in this process or in the agent, the errno stays queryable through
/// [`Error::raw_os_error`] and [`Error::kind`]. A variant with a source does
/// not repeat it in its message: an error reporter walks
/// [`std::error::Error::source`] and prints each cause once.
///
/// # Examples
///
/// ```
/// use nsproxy::{Error, proto::Step};
/// let err = Error::Remote {
///     step: Step::Exec,
///     detail: "/no/such/program".into(),
///     source: std::io::Error::from_raw_os_error(libc::ENOENT),
/// };
/// assert_eq!(err.raw_os_error(), Some(libc::ENOENT));
/// assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
/// assert_eq!(err.to_string(), "nsproxy agent: exec \"/no/such/program\" failed");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Starting the agent process failed at `step` (nothing is left running).
    #[error("cannot start the nsproxy agent: {step}")]
    Start {
        /// The step (for example `"spawn"`, `"handshake"`).
        step: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The peer sent a frame the protocol does not allow; the connection is
    /// closed.
    #[error("nsproxy protocol error: expected {expected}, got {got}")]
    Protocol {
        /// What was expected.
        expected: String,
        /// What came.
        got: String,
    },
    /// The agent tried and the kernel said no: `step` failed with the errno
    /// in `source`.
    #[error("nsproxy agent: {step} {detail:?} failed")]
    Remote {
        /// The step that failed in the agent.
        step: Step,
        /// What it was about (a program, a path), possibly empty.
        detail: String,
        /// The errno, as an `io::Error`.
        #[source]
        source: io::Error,
    },
    /// A local operation on the agent's sockets or fds failed.
    #[error("nsproxy: {op} failed")]
    Io {
        /// The operation (for example `"send request"`).
        op: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The agent process is gone (killed, or its connection closed): the
    /// request could not complete.
    #[error("nsproxy agent (pid {pid}) is gone")]
    AgentGone {
        /// The agent's pid.
        pid: i32,
    },
    /// The operation `op` did not finish within the deadline `after` the
    /// caller set ([`AgentOptions::start_timeout`](crate::AgentOptions::start_timeout),
    /// [`AgentOptions::request_timeout`](crate::AgentOptions::request_timeout)).
    /// Nothing it started is left behind.
    #[error("nsproxy: {op} timed out after {after:?}")]
    Timeout {
        /// The operation: `"agent start"`, `"open_socket"`, `"netlink"`,
        /// `"spawn"`.
        op: &'static str,
        /// The deadline.
        after: std::time::Duration,
    },
    /// A request was rejected before anything was sent.
    #[error("invalid {what}: {why}")]
    InvalidInput {
        /// The offending input.
        what: &'static str,
        /// Why.
        why: &'static str,
    },
}

impl Error {
    /// The errno behind this error, if there is one.
    ///
    /// # Examples
    ///
    /// ```
    /// let err = nsproxy::Error::AgentGone { pid: 1 };
    /// assert_eq!(err.raw_os_error(), Some(libc::ECONNRESET));
    /// ```
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            Error::Start { source, .. }
            | Error::Remote { source, .. }
            | Error::Io { source, .. } => source.raw_os_error(),
            Error::Protocol { .. } => Some(libc::EPROTO),
            Error::AgentGone { .. } => Some(libc::ECONNRESET),
            Error::Timeout { .. } => Some(libc::ETIMEDOUT),
            Error::InvalidInput { .. } => Some(libc::EINVAL),
        }
    }

    /// The [`io::ErrorKind`] of this error.
    ///
    /// # Examples
    ///
    /// ```
    /// let err = nsproxy::Error::InvalidInput { what: "argument", why: "contains NUL" };
    /// assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    /// ```
    pub fn kind(&self) -> io::ErrorKind {
        match self {
            Error::Start { source, .. }
            | Error::Remote { source, .. }
            | Error::Io { source, .. } => source.kind(),
            Error::Protocol { .. } => io::ErrorKind::InvalidData,
            Error::AgentGone { .. } => io::ErrorKind::ConnectionReset,
            Error::Timeout { .. } => io::ErrorKind::TimedOut,
            Error::InvalidInput { .. } => io::ErrorKind::InvalidInput,
        }
    }
}

impl From<ProtoError> for Error {
    fn from(e: ProtoError) -> Error {
        Error::Protocol {
            expected: e.expected(),
            got: e.got(),
        }
    }
}

impl From<Error> for io::Error {
    fn from(err: Error) -> io::Error {
        io::Error::new(err.kind(), err)
    }
}

/// The result type of this crate.
///
/// # Examples
///
/// ```
/// fn check() -> nsproxy::Result<()> {
///     Ok(())
/// }
/// assert!(check().is_ok());
/// ```
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: the Display of a variant with a source printed the
    /// source too, so every error reporter printed the errno twice.
    #[test]
    fn display_says_each_cause_once() {
        let source = || io::Error::from_raw_os_error(libc::EMFILE);
        let errors = [
            Error::Start {
                step: "spawn",
                source: source(),
            },
            Error::Remote {
                step: Step::Socket,
                detail: String::new(),
                source: source(),
            },
            Error::Io {
                op: "send request",
                source: source(),
            },
        ];
        let errno_text = source().to_string();
        for err in errors {
            let shown = err.to_string();
            assert!(!shown.contains(&errno_text), "{shown:?} repeats its source");
            let source = std::error::Error::source(&err).expect("a source");
            assert_eq!(source.to_string(), errno_text);
            assert_eq!(err.raw_os_error(), Some(libc::EMFILE));
        }
    }
}
