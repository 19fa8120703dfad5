//! Where a command runs: a namespace given by name, path or handle.

use std::fmt;
use std::path::{Path, PathBuf};

use nsfs::{NetNs, NsName, RunDir};

use crate::{Error, Result};

/// The network namespace a [`Command`](crate::Command) runs in.
///
/// Usually built through `From`: a [`NsName`], or a string not starting with
/// `/`, is a name looked up in the command's run directory (`/run/netns` by
/// default, see [`Command::run_dir`](crate::Command::run_dir)), like
/// `ip netns exec NAME`; a [`PathBuf`], [`Path`] or string starting with `/`
/// is a namespace file (`/proc/PID/ns/net`, a bind mount); a [`NetNs`] is an
/// open namespace, used as is. Names and paths are opened when the command is
/// spawned, so a missing namespace is reported then.
///
/// # Examples
///
/// ```no_run
/// use nsproc::Namespace;
///
/// let by_name = Namespace::from("blue");
/// let by_path = Namespace::from("/proc/1/ns/net");
/// let by_handle = Namespace::from(nsfs::NetNs::from_pid(1)?);
/// assert!(matches!(by_name, Namespace::Name(_)));
/// assert!(matches!(by_path, Namespace::Path(_)));
/// # Ok::<(), nsfs::Error>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Namespace {
    /// A name in the run directory (validated when the command is spawned).
    Name(String),
    /// A namespace file.
    Path(PathBuf),
    /// An open namespace.
    NetNs(NetNs),
}

/// A namespace opened for one spawn.
#[derive(Debug)]
pub(crate) struct Resolved {
    pub(crate) netns: NetNs,
    /// How the namespace was given, for messages.
    pub(crate) described: String,
}

impl Namespace {
    /// Opens the namespace (the run directory is used for names).
    pub(crate) fn open(&self, dir: &RunDir) -> Result<Resolved> {
        let described = self.to_string();
        let opened = match self {
            Namespace::Name(name) => NsName::new(name.as_str()).and_then(|name| dir.open(&name)),
            Namespace::Path(path) => NetNs::open(path),
            Namespace::NetNs(ns) => Ok(ns.clone()),
        };
        match opened {
            Ok(netns) => Ok(Resolved { netns, described }),
            Err(source) => Err(Error::Namespace {
                ns: described,
                source,
            }),
        }
    }

    /// The name the namespace has in `dir`, for the `/etc/netns/NAME` binds
    /// of the `ip netns exec` path: the name itself; for a path or handle, the
    /// names `dir` has for the same namespace ([`RunDir::identify`], like
    /// `ip netns identify`), preferring the entry it was opened from.
    pub(crate) fn name_in(&self, dir: &RunDir, resolved: &NetNs) -> Option<NsName> {
        let opened_from = match self {
            Namespace::Name(name) => return NsName::new(name.as_str()).ok(),
            Namespace::Path(path) => Some(path.as_path()),
            Namespace::NetNs(ns) => ns.path(),
        };
        let names = dir.identify(resolved).ok()?;
        opened_from
            .and_then(|path| names.iter().find(|n| dir.entry(n) == path))
            .or(names.first())
            .cloned()
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Namespace::Name(name) => f.write_str(name),
            Namespace::Path(path) => write!(f, "{}", path.display()),
            Namespace::NetNs(ns) => match ns.path() {
                Some(path) => write!(f, "{}", path.display()),
                None => write!(f, "{}", ns.id()),
            },
        }
    }
}

impl fmt::Debug for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Namespace::Name(name) => f.debug_tuple("Name").field(name).finish(),
            Namespace::Path(path) => f.debug_tuple("Path").field(path).finish(),
            Namespace::NetNs(ns) => f.debug_tuple("NetNs").field(ns).finish(),
        }
    }
}

impl From<&str> for Namespace {
    fn from(s: &str) -> Namespace {
        Namespace::from(s.to_owned())
    }
}

impl From<String> for Namespace {
    fn from(s: String) -> Namespace {
        if s.starts_with('/') {
            Namespace::Path(s.into())
        } else {
            Namespace::Name(s)
        }
    }
}

impl From<NsName> for Namespace {
    fn from(name: NsName) -> Namespace {
        Namespace::Name(name.into_string())
    }
}

impl From<&NsName> for Namespace {
    fn from(name: &NsName) -> Namespace {
        Namespace::Name(name.as_str().to_owned())
    }
}

impl From<PathBuf> for Namespace {
    fn from(path: PathBuf) -> Namespace {
        Namespace::Path(path)
    }
}

impl From<&Path> for Namespace {
    fn from(path: &Path) -> Namespace {
        Namespace::Path(path.to_owned())
    }
}

impl From<NetNs> for Namespace {
    fn from(ns: NetNs) -> Namespace {
        Namespace::NetNs(ns)
    }
}

impl From<&NetNs> for Namespace {
    fn from(ns: &NetNs) -> Namespace {
        Namespace::NetNs(ns.clone())
    }
}
