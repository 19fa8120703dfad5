//! What a handle (or a link move) is about: a namespace given by name, path,
//! pid or open handle.

use std::fmt;
use std::path::{Path, PathBuf};

use nsfs::{NetNs, NsName, OpenMode, RunDir};

use crate::{Error, Result};

/// A network namespace, as a user names it: the argument of
/// [`Handle::open`](crate::Handle::open) and the destination of
/// [`Handle::move_link`](crate::Handle::move_link).
///
/// Strings follow pyroute2's rule: a string containing `/` is a path, anything
/// else is a name in the run directory (`/run/netns`). A name is validated
/// when it is used (empty, `.`, `..`, NUL and names over 255 bytes are
/// rejected with [`nsfs::Error::InvalidName`]).
///
/// # Examples
///
/// ```
/// use netns::Target;
///
/// assert!(matches!(Target::from("blue"), Target::Name(_)));
/// assert!(matches!(Target::from("/proc/1/ns/net"), Target::Path(_)));
/// assert!(matches!(Target::Pid(1), Target::Pid(1)));
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Target {
    /// A name in the run directory (`ip netns` names).
    Name(String),
    /// A path to an nsfs file (`/proc/PID/ns/net`, a bind mount).
    Path(PathBuf),
    /// The namespace of a process.
    Pid(i32),
    /// An already open namespace.
    NetNs(NetNs),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Name(n) => write!(f, "netns {n:?}"),
            Target::Path(p) => write!(f, "netns {}", p.display()),
            Target::Pid(p) => write!(f, "netns of pid {p}"),
            Target::NetNs(ns) => match ns.path() {
                Some(p) => write!(f, "netns {}", p.display()),
                None => write!(f, "netns {}", ns.id()),
            },
        }
    }
}

impl From<&str> for Target {
    fn from(s: &str) -> Target {
        if s.contains('/') {
            Target::Path(s.into())
        } else {
            Target::Name(s.into())
        }
    }
}

impl From<String> for Target {
    fn from(s: String) -> Target {
        if s.contains('/') {
            Target::Path(s.into())
        } else {
            Target::Name(s)
        }
    }
}

impl From<&String> for Target {
    fn from(s: &String) -> Target {
        Target::from(s.as_str())
    }
}

impl From<NsName> for Target {
    fn from(n: NsName) -> Target {
        Target::Name(n.into_string())
    }
}

impl From<&NsName> for Target {
    fn from(n: &NsName) -> Target {
        Target::Name(n.as_str().into())
    }
}

impl From<PathBuf> for Target {
    fn from(p: PathBuf) -> Target {
        Target::Path(p)
    }
}

impl From<&Path> for Target {
    fn from(p: &Path) -> Target {
        Target::Path(p.into())
    }
}

impl From<NetNs> for Target {
    fn from(ns: NetNs) -> Target {
        Target::NetNs(ns)
    }
}

impl From<&NetNs> for Target {
    fn from(ns: &NetNs) -> Target {
        Target::NetNs(ns.clone())
    }
}

impl From<&crate::Handle> for Target {
    fn from(h: &crate::Handle) -> Target {
        Target::NetNs(h.netns().clone())
    }
}

/// A resolved target: the open namespace, and its name if it has one.
#[derive(Debug)]
pub(crate) struct Resolved {
    pub(crate) netns: NetNs,
    pub(crate) name: Option<NsName>,
}

impl Target {
    /// Opens (or creates, for names) the namespace.
    pub(crate) async fn resolve(&self, dir: &RunDir, mode: OpenMode) -> Result<Resolved> {
        // Only names can be created; CreateOrOpen of anything else opens it.
        if mode == OpenMode::CreateExclusive && !matches!(self, Target::Name(_)) {
            return Err(Error::Mode {
                target: self.to_string(),
                mode: "create",
            });
        }
        match self {
            Target::Name(n) => {
                let name = NsName::new(n.as_str())?;
                let netns = match mode {
                    OpenMode::OpenOnly => dir.open(&name)?,
                    // An existing name is opened right here: a few syscalls,
                    // where `create` would hop to a namespace thread and
                    // re-share the run directory (a mount call) first.
                    // Anything else (missing, a placeholder being mounted by
                    // another creator) goes to `create`, which handles races.
                    OpenMode::CreateOrOpen => match dir.open(&name) {
                        Ok(netns) => netns,
                        Err(_) => dir.create(&name, mode).await?,
                    },
                    _ => dir.create(&name, mode).await?,
                };
                Ok(Resolved {
                    netns,
                    name: Some(name),
                })
            }
            // A path in the run directory is that name.
            Target::Path(p) => Ok(Resolved {
                netns: NetNs::open(p)?,
                name: p
                    .parent()
                    .filter(|parent| *parent == dir.path())
                    .and_then(|_| p.file_name())
                    .and_then(|n| NsName::from_os_str(n).ok()),
            }),
            Target::Pid(pid) => Ok(Resolved {
                netns: NetNs::from_pid(*pid)?,
                name: None,
            }),
            Target::NetNs(ns) => Ok(Resolved {
                netns: ns.clone(),
                name: None,
            }),
        }
    }
}
