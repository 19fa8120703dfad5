//! What a child's stdin, stdout and stderr are connected to.

use std::fmt;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use nix::fcntl::OFlag;

/// What one of a child's standard streams is connected to, like
/// [`std::process::Stdio`].
///
/// Unlike `std`'s, a `Stdio` can be reused: a command holding
/// [`Stdio::piped`] makes a new pipe for each spawn, one holding an fd hands the
/// child a duplicate of it on each spawn.
///
/// # Examples
///
/// ```no_run
/// # async fn demo() -> nsproc::Result<()> {
/// use nsproc::{Command, Stdio};
///
/// let log = std::fs::File::create("/tmp/out.log").unwrap();
/// let child = Command::new("ip")
///     .arg("link")
///     .netns("blue")
///     .stdin(Stdio::null())
///     .stdout(log)
///     .spawn()
///     .await?;
/// # Ok(()) }
/// ```
pub struct Stdio(Kind);

enum Kind {
    Inherit,
    Null,
    Piped,
    Fd(OwnedFd),
}

impl Stdio {
    /// The child inherits this process's stream.
    ///
    /// # Examples
    ///
    /// ```
    /// let _ = nsproc::Command::new("true").stderr(nsproc::Stdio::inherit());
    /// ```
    pub fn inherit() -> Stdio {
        Stdio(Kind::Inherit)
    }

    /// The stream is connected to `/dev/null`.
    ///
    /// # Examples
    ///
    /// ```
    /// let _ = nsproc::Command::new("true").stdin(nsproc::Stdio::null());
    /// ```
    pub fn null() -> Stdio {
        Stdio(Kind::Null)
    }

    /// A new pipe connects the child's stream to the matching field of
    /// [`Child`](crate::Child), as a tokio pipe end owned by the caller.
    ///
    /// # Examples
    ///
    /// ```
    /// let _ = nsproc::Command::new("cat").stdout(nsproc::Stdio::piped());
    /// ```
    pub fn piped() -> Stdio {
        Stdio(Kind::Piped)
    }

    /// Prepares one spawn: the child's side and, for a pipe, ours.
    pub(crate) fn prepare(&self, which: Stream) -> io::Result<Prepared> {
        match &self.0 {
            Kind::Inherit => Ok(Prepared {
                child: ChildSide::Inherit,
                parent: None,
            }),
            Kind::Null => Ok(Prepared {
                child: ChildSide::Null,
                parent: None,
            }),
            Kind::Fd(fd) => Ok(Prepared {
                child: ChildSide::Fd(fd.try_clone()?),
                parent: None,
            }),
            Kind::Piped => {
                let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
                let (child, parent) = match which {
                    Stream::Stdin => (read, write),
                    Stream::Stdout | Stream::Stderr => (write, read),
                };
                Ok(Prepared {
                    child: ChildSide::Fd(child),
                    parent: Some(parent),
                })
            }
        }
    }
}

/// Which standard stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stream {
    Stdin,
    Stdout,
    Stderr,
}

/// One stream, prepared for one spawn.
#[derive(Debug)]
pub(crate) struct Prepared {
    pub(crate) child: ChildSide,
    pub(crate) parent: Option<OwnedFd>,
}

/// The child's end of a stream.
#[derive(Debug)]
pub(crate) enum ChildSide {
    Inherit,
    Null,
    Fd(OwnedFd),
}

impl ChildSide {
    pub(crate) fn into_std(self) -> std::process::Stdio {
        match self {
            ChildSide::Inherit => std::process::Stdio::inherit(),
            ChildSide::Null => std::process::Stdio::null(),
            ChildSide::Fd(fd) => std::process::Stdio::from(fd),
        }
    }

    /// An fd for the child, for a launcher that needs one for every stream:
    /// `/dev/null` opened, or a duplicate of our own stream.
    pub(crate) fn into_fd(self, which: Stream) -> io::Result<OwnedFd> {
        match self {
            ChildSide::Fd(fd) => Ok(fd),
            ChildSide::Null => {
                let write = which != Stream::Stdin;
                Ok(File::options()
                    .read(!write)
                    .write(write)
                    .open("/dev/null")?
                    .into())
            }
            ChildSide::Inherit => match which {
                Stream::Stdin => io::stdin().as_fd().try_clone_to_owned(),
                Stream::Stdout => io::stdout().as_fd().try_clone_to_owned(),
                Stream::Stderr => io::stderr().as_fd().try_clone_to_owned(),
            },
        }
    }
}

impl Default for Stdio {
    fn default() -> Stdio {
        Stdio::inherit()
    }
}

impl From<OwnedFd> for Stdio {
    /// The child gets a duplicate of `fd` (this `Stdio` keeps the original).
    fn from(fd: OwnedFd) -> Stdio {
        Stdio(Kind::Fd(fd))
    }
}

impl From<File> for Stdio {
    fn from(file: File) -> Stdio {
        Stdio(Kind::Fd(file.into()))
    }
}

impl fmt::Debug for Stdio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Kind::Inherit => f.write_str("Stdio::inherit()"),
            Kind::Null => f.write_str("Stdio::null()"),
            Kind::Piped => f.write_str("Stdio::piped()"),
            Kind::Fd(fd) => write!(f, "Stdio::from(fd {})", fd.as_raw_fd()),
        }
    }
}
