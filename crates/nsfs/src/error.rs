//! The one error type of this crate.

use std::io;
use std::path::PathBuf;

/// What went wrong in a namespace operation.
///
/// Every variant names the operation that failed and carries the name, path or
/// pid it was about. Where the kernel said no, the errno stays queryable through
/// [`Error::raw_os_error`] and [`Error::kind`], so callers never compare strings.
///
/// # Examples
///
/// ```
/// let err = nsfs::NsName::new("a/b").unwrap_err();
/// assert!(matches!(err, nsfs::Error::InvalidName { .. }));
/// assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A namespace name was rejected before anything touched the filesystem.
    #[error("invalid netns name {name:?}: {reason}")]
    InvalidName {
        /// The rejected name (lossily decoded if it was not UTF-8).
        name: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// No namespace exists at this path.
    #[error("network namespace {} not found", path.display())]
    NotFound {
        /// The path that was looked up.
        path: PathBuf,
    },
    /// A namespace already exists at this path (create-exclusive).
    #[error("network namespace {} already exists", path.display())]
    AlreadyExists {
        /// The path that already exists.
        path: PathBuf,
    },
    /// The path exists but is not a namespace file (not on nsfs).
    #[error("{} is not a network namespace file", path.display())]
    NotNamespace {
        /// The offending path.
        path: PathBuf,
    },
    /// A run-directory entry is a plain file with no namespace mounted on it:
    /// a creator died half-way, or a mount was lost. `remove` cleans it up.
    #[error("network namespace entry {} is stale (no namespace is mounted on it)", path.display())]
    Stale {
        /// The stale entry.
        path: PathBuf,
    },
    /// The file is a namespace, but not a network namespace.
    #[error("{} is a namespace, but not a network namespace", path.display())]
    WrongNamespaceType {
        /// The offending path.
        path: PathBuf,
    },
    /// Unprivileged user namespaces are turned off on this system, so an
    /// unprivileged caller cannot have namespaces of its own. Detected
    /// before anything is made; `fix` says what to change.
    #[error("unprivileged user namespaces are disabled ({setting} = {value}); {fix}")]
    UserNamespacesDisabled {
        /// The setting that disables them (`user.max_user_namespaces`,
        /// `kernel.unprivileged_userns_clone`,
        /// `kernel.apparmor_restrict_unprivileged_userns`).
        setting: &'static str,
        /// Its value.
        value: i64,
        /// What to change.
        fix: &'static str,
    },
    /// The per-user run directory (where an unprivileged user's names
    /// live) is unusable: `why` says how.
    #[error("per-user run directory {} is unusable: {why}", path.display())]
    UserRunDir {
        /// The directory.
        path: PathBuf,
        /// Why (owned by another user, open to others, not a directory...).
        why: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// An fd given as a pidfd is not one (nothing was asked of it).
    #[error("{} is not a pidfd", what.display())]
    NotPidfd {
        /// What the fd is (`readlink` of `/proc/thread-self/fd/N`).
        what: PathBuf,
    },
    /// No process has this pid.
    #[error("no process with pid {pid}")]
    NoSuchProcess {
        /// The pid that was looked up.
        pid: i32,
    },
    /// The run directory could not be created or made a shared mount.
    #[error("cannot prepare run directory {}", path.display())]
    PrepareRunDir {
        /// The run directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Creating a namespace failed at `step`; nothing was left behind.
    #[error("cannot create network namespace {}: {step}", path.display())]
    Create {
        /// The entry being created.
        path: PathBuf,
        /// The step that failed (for example `"bind mount"`).
        step: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Naming the namespace of a process failed at `step` (like `ip netns attach`).
    #[error("cannot attach pid {pid} as {}: {step}", path.display())]
    Attach {
        /// The entry being created.
        path: PathBuf,
        /// The process whose namespace was to be named.
        pid: i32,
        /// The step that failed.
        step: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Removing a namespace entry failed.
    #[error("cannot remove network namespace {}", path.display())]
    Remove {
        /// The entry being removed.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Opening a namespace file failed.
    #[error("cannot open network namespace {}", path.display())]
    Open {
        /// The path being opened.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Entering a namespace on a namespace thread failed.
    #[error("cannot enter network namespace {}", path.display())]
    Enter {
        /// The namespace's path, as it was opened.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Any other filesystem or syscall error, with the operation and path.
    #[error("{op} {}", path.display())]
    Io {
        /// The operation (for example `"read directory"`).
        op: &'static str,
        /// The path it was about.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// Watching a run directory failed (it could not be made or watched, it
    /// was removed or unmounted while watched, or reading events failed).
    #[error("cannot monitor run directory {}", path.display())]
    Monitor {
        /// The run directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A namespace thread could not be started, or is gone.
    #[error("namespace thread unavailable")]
    Thread {
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

impl Error {
    /// The errno behind this error, if the kernel gave one.
    ///
    /// # Examples
    ///
    /// ```
    /// let err = nsfs::Error::NotFound { path: "/run/netns/x".into() };
    /// assert_eq!(err.raw_os_error(), Some(libc::ENOENT));
    /// ```
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            Error::InvalidName { .. } => Some(libc::EINVAL),
            Error::NotFound { .. } => Some(libc::ENOENT),
            Error::AlreadyExists { .. } => Some(libc::EEXIST),
            Error::NotNamespace { .. } | Error::Stale { .. } | Error::WrongNamespaceType { .. } => {
                Some(libc::EINVAL)
            }
            Error::NoSuchProcess { .. } => Some(libc::ESRCH),
            Error::NotPidfd { .. } => Some(libc::EBADF),
            Error::UserNamespacesDisabled { setting, .. } => {
                Some(if setting.starts_with("user.") {
                    libc::ENOSPC
                } else {
                    libc::EPERM
                })
            }
            Error::UserRunDir { source, .. }
            | Error::PrepareRunDir { source, .. }
            | Error::Create { source, .. }
            | Error::Attach { source, .. }
            | Error::Remove { source, .. }
            | Error::Open { source, .. }
            | Error::Enter { source, .. }
            | Error::Io { source, .. }
            | Error::Monitor { source, .. }
            | Error::Thread { source } => source.raw_os_error(),
        }
    }

    /// The [`io::ErrorKind`] of this error.
    ///
    /// # Examples
    ///
    /// ```
    /// let err = nsfs::Error::AlreadyExists { path: "/run/netns/x".into() };
    /// assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
    /// ```
    pub fn kind(&self) -> io::ErrorKind {
        match self {
            Error::InvalidName { .. } => io::ErrorKind::InvalidInput,
            Error::NotFound { .. } | Error::NoSuchProcess { .. } => io::ErrorKind::NotFound,
            Error::AlreadyExists { .. } => io::ErrorKind::AlreadyExists,
            Error::NotNamespace { .. } | Error::Stale { .. } | Error::WrongNamespaceType { .. } => {
                io::ErrorKind::InvalidInput
            }
            Error::UserNamespacesDisabled { .. } => io::ErrorKind::PermissionDenied,
            Error::NotPidfd { .. } => io::ErrorKind::InvalidInput,
            Error::UserRunDir { source, .. }
            | Error::PrepareRunDir { source, .. }
            | Error::Create { source, .. }
            | Error::Attach { source, .. }
            | Error::Remove { source, .. }
            | Error::Open { source, .. }
            | Error::Enter { source, .. }
            | Error::Io { source, .. }
            | Error::Monitor { source, .. }
            | Error::Thread { source } => source.kind(),
        }
    }
}

impl From<Error> for io::Error {
    fn from(err: Error) -> io::Error {
        match err.raw_os_error() {
            Some(code) if !matches!(err, Error::InvalidName { .. }) => {
                io::Error::new(io::Error::from_raw_os_error(code).kind(), err)
            }
            _ => io::Error::new(err.kind(), err),
        }
    }
}

/// The result type of this crate.
///
/// # Examples
///
/// ```
/// fn check() -> nsfs::Result<()> {
///     Ok(())
/// }
/// assert!(check().is_ok());
/// ```
pub type Result<T, E = Error> = std::result::Result<T, E>;
