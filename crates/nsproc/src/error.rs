//! The one error type of this crate.

use std::ffi::OsString;
use std::io;

/// What went wrong while starting, waiting for or signalling a process in a
/// namespace.
///
/// Every variant names the operation that failed and carries the program,
/// namespace or pid it was about. The errno stays queryable through
/// [`Error::raw_os_error`] and [`Error::kind`]: a missing binary is
/// [`io::ErrorKind::NotFound`], a non-executable one
/// [`io::ErrorKind::PermissionDenied`], a missing namespace
/// [`io::ErrorKind::NotFound`].
///
/// A variant's message says what failed, once: its cause (the errno, the
/// nsfs or nsproxy error) is its [`source`](std::error::Error::source), for an
/// error reporter to print after it, never repeated in the message.
///
/// # Examples
///
/// ```no_run
/// # async fn demo() {
/// let err = nsproc::Command::new("/no/such/binary").netns("blue").spawn().await.unwrap_err();
/// assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The namespace could not be opened (not found, stale, not a network
    /// namespace, invalid name) or entered.
    #[error("cannot use network namespace {ns}")]
    Namespace {
        /// The namespace as it was given (name, path or nsfs identity).
        ns: String,
        /// The underlying error.
        #[source]
        source: nsfs::Error,
    },
    /// The program could not be started: not found, not executable, or the
    /// kernel refused the spawn.
    #[error("cannot spawn {program:?} in network namespace {ns}")]
    Spawn {
        /// The program, as given to [`Command::new`](crate::Command::new).
        program: OsString,
        /// The namespace it was to run in.
        ns: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The `ip netns exec` path failed in or with the nsproxy agent: it could
    /// not be started, set up its mounts, or is gone.
    #[error("cannot spawn {program:?} through the nsproxy agent in network namespace {ns}")]
    Agent {
        /// The program, as given to [`Command::new`](crate::Command::new)
        /// (empty when starting an [`ExecAgent`](crate::ExecAgent)).
        program: OsString,
        /// The namespace.
        ns: String,
        /// The underlying error.
        #[source]
        source: nsproxy::Error,
    },
    /// Closing an [`ExecAgent`](crate::ExecAgent) could not confirm that its
    /// agent was reaped (see [`ExecAgent::close`](crate::ExecAgent::close)).
    #[error("cannot close the nsproxy agent {pid} of network namespace {ns}")]
    Close {
        /// The agent's pid.
        pid: i32,
        /// The namespace it lived in.
        ns: String,
        /// The underlying error.
        #[source]
        source: nsproxy::Error,
    },
    /// Waiting for the child failed.
    #[error("cannot wait for process {pid}")]
    Wait {
        /// The child's pid.
        pid: u32,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Sending a signal to the child failed.
    #[error("cannot send signal {signal} to process {pid}")]
    Signal {
        /// The child's pid.
        pid: u32,
        /// The signal number.
        signal: i32,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A pidfd for the child could not be opened (see
    /// [`Child::pidfd`](crate::Child::pidfd)).
    #[error("cannot open a pidfd for process {pid}")]
    Pidfd {
        /// The child's pid (0 once it has been waited for).
        pid: u32,
        /// The underlying error (`ESRCH` once the child has been waited for).
        #[source]
        source: io::Error,
    },
    /// Setting up the child's stdio, or reading or writing it, failed.
    #[error("cannot {op} of program {program:?}")]
    Io {
        /// The operation (for example `"read stdout"`).
        op: &'static str,
        /// The program the stdio belongs to.
        program: OsString,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

impl Error {
    /// The errno behind this error, if there is one.
    ///
    /// # Examples
    ///
    /// ```
    /// let err = nsproc::Error::Wait { pid: 1, source: std::io::Error::from_raw_os_error(libc::ECHILD) };
    /// assert_eq!(err.raw_os_error(), Some(libc::ECHILD));
    /// ```
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            Error::Namespace { source, .. } => source.raw_os_error(),
            Error::Agent { source, .. } | Error::Close { source, .. } => source.raw_os_error(),
            Error::Spawn { source, .. }
            | Error::Wait { source, .. }
            | Error::Signal { source, .. }
            | Error::Pidfd { source, .. }
            | Error::Io { source, .. } => source.raw_os_error(),
        }
    }

    /// The [`io::ErrorKind`] of this error.
    ///
    /// # Examples
    ///
    /// ```
    /// let err = nsproc::Error::Spawn {
    ///     program: "nope".into(),
    ///     ns: "blue".into(),
    ///     source: std::io::Error::from_raw_os_error(libc::ENOENT),
    /// };
    /// assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    /// ```
    pub fn kind(&self) -> io::ErrorKind {
        match self {
            Error::Namespace { source, .. } => source.kind(),
            Error::Agent { source, .. } | Error::Close { source, .. } => source.kind(),
            Error::Spawn { source, .. }
            | Error::Wait { source, .. }
            | Error::Signal { source, .. }
            | Error::Pidfd { source, .. }
            | Error::Io { source, .. } => source.kind(),
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
/// fn check() -> nsproc::Result<()> {
///     Ok(())
/// }
/// assert!(check().is_ok());
/// ```
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    /// Every variant with a source says what failed, and leaves the cause to
    /// `source()`: a reporter walking the chain prints it once.
    #[test]
    fn display_never_repeats_the_source() {
        let io = || io::Error::from_raw_os_error(libc::EACCES);
        let nsfs = || nsfs::Error::NotFound {
            path: "/run/netns/blue".into(),
        };
        let nsproxy = || nsproxy::Error::Io {
            op: "read",
            source: io(),
        };
        let errors = [
            Error::Namespace {
                ns: "blue".into(),
                source: nsfs(),
            },
            Error::Spawn {
                program: "ip".into(),
                ns: "blue".into(),
                source: io(),
            },
            Error::Agent {
                program: "ip".into(),
                ns: "blue".into(),
                source: nsproxy(),
            },
            Error::Close {
                pid: 7,
                ns: "blue".into(),
                source: nsproxy(),
            },
            Error::Wait {
                pid: 7,
                source: io(),
            },
            Error::Signal {
                pid: 7,
                signal: 15,
                source: io(),
            },
            Error::Pidfd {
                pid: 7,
                source: io(),
            },
            Error::Io {
                op: "read stdout",
                program: "ip".into(),
                source: io(),
            },
        ];
        for err in errors {
            let shown = err.to_string();
            let source = err
                .source()
                .expect("every variant has a source")
                .to_string();
            assert!(!shown.contains(&source), "{shown:?} repeats {source:?}");
            assert!(!shown.contains("denied"), "{shown:?}");
            assert!(!shown.contains("not found"), "{shown:?}");
        }
    }
}
