//! Which network namespace: one type, and one rule for "name or path", for
//! every crate of the toolkit.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use tracing::Instrument;

use crate::{Error, Executor, NetNs, NsName, OpenMode, Result, RunDir};

/// A network namespace, as a caller names it: a name in a run directory, a
/// path, a process, or a namespace already open.
///
/// This is the one "which namespace" type of the toolkit: `netns` opens
/// handles and moves links with it, `nsproc` runs commands in it,
/// [`RunDir::identify`] looks its names up. Every crate applies the same rule
/// to a string:
///
/// - a string starting with `/` is a path (an nsfs file: `/proc/PID/ns/net`,
///   `/run/netns/blue`, a bind mount of the caller's);
/// - anything else is a name in the run directory, validated as `ip netns`
///   validates names ([`NsName`]) before anything touches the filesystem.
///
/// So `"a/b"`, `"../x"` and `"../../proc/1/ns/net"` are
/// [`Error::InvalidName`] everywhere, never relative paths. A relative path
/// is used only when the caller says it is a path: [`Target::Path`], or a
/// `PathBuf` / `&Path` (converted to `Path` whatever they hold).
///
/// A name is validated when the target is used (so converting from a string
/// cannot fail); [`Target::name`] validates it up front.
///
/// # Examples
///
/// ```
/// use std::path::Path;
/// use nsfs::Target;
///
/// assert!(matches!(Target::from("blue"), Target::Name(_)));
/// assert!(matches!(Target::from("/proc/1/ns/net"), Target::Path(_)));
/// // Not a path: a name, and an invalid one.
/// assert!(matches!(Target::from("../../proc/1/ns/net"), Target::Name(_)));
/// assert!(Target::from("a/b").name().is_err());
/// // A path because the caller says so.
/// assert!(matches!(Target::from(Path::new("ns/net")), Target::Path(_)));
/// assert!(matches!(Target::from(1), Target::Pid(1)));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Target {
    /// A name in the run directory (`ip netns` names), validated when used.
    Name(String),
    /// A path to an nsfs file (`/proc/PID/ns/net`, a bind mount).
    Path(PathBuf),
    /// The network namespace of process `pid` (`/proc/PID/ns/net`).
    Pid(i32),
    /// An already open namespace, used as it is.
    NetNs(NetNs),
}

impl Target {
    /// The validated name of a [`Target::Name`]; `None` for the other kinds.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`] for a name `ip netns` would reject (empty, `.`,
    /// `..`, containing `/` or NUL, longer than 255 bytes).
    ///
    /// # Examples
    ///
    /// ```
    /// use nsfs::Target;
    /// assert_eq!(Target::from("blue").name()?.unwrap().as_str(), "blue");
    /// assert!(Target::from("/run/netns/blue").name()?.is_none());
    /// assert!(Target::from("../x").name().is_err());
    /// # Ok::<(), nsfs::Error>(())
    /// ```
    pub fn name(&self) -> Result<Option<NsName>> {
        match self {
            Target::Name(name) => NsName::new(name.as_str()).map(Some),
            _ => Ok(None),
        }
    }

    /// The name this target has in `dir`, known without looking at the
    /// filesystem: a valid name, or the file name of a path that is an entry
    /// of `dir` (`/run/netns/blue` in `/run/netns`). `None` otherwise.
    ///
    /// # Examples
    ///
    /// ```
    /// use nsfs::{RunDir, Target};
    /// let dir = RunDir::default();
    /// assert_eq!(Target::from("/run/netns/blue").name_in(&dir).unwrap().as_str(), "blue");
    /// assert!(Target::from("/proc/1/ns/net").name_in(&dir).is_none());
    /// assert!(Target::from("a/b").name_in(&dir).is_none());
    /// ```
    pub fn name_in(&self, dir: &RunDir) -> Option<NsName> {
        match self {
            Target::Name(name) => NsName::new(name.as_str()).ok(),
            Target::Path(path) => path
                .parent()
                .filter(|parent| *parent == dir.path())
                .and_then(|_| path.file_name())
                .and_then(|name| NsName::from_os_str(name).ok()),
            Target::Pid(_) | Target::NetNs(_) => None,
        }
    }

    /// Opens the namespace, creating it first if `mode` says so and it does
    /// not exist. Names are looked up in (and created in) `dir`.
    ///
    /// - A name: like [`RunDir::create`] (or [`RunDir::open`] for
    ///   [`OpenMode::OpenOnly`]). The name is validated first.
    /// - A path: opened; with [`OpenMode::CreateOrOpen`] or
    ///   [`OpenMode::CreateExclusive`] a missing path is created exactly as a
    ///   run-directory entry is (the file made with `O_EXCL`, a new namespace
    ///   bind-mounted on it last, nothing left behind on failure), but the
    ///   path's directory is used as it is: it is not made a shared mount,
    ///   so the mount is seen in the caller's mount namespace (and those
    ///   its mounts propagate to). Remove it with [`Target::remove`]. A path
    ///   that is an entry of `dir` (`/run/netns/blue`) is that name, created
    ///   as [`RunDir::create`] creates it.
    /// - A pid or an open namespace: opened (it exists); with
    ///   [`OpenMode::CreateExclusive`], [`Error::AlreadyExists`].
    ///
    /// # Cancel safety
    ///
    /// As [`RunDir::create`]: once a creation has been handed to a namespace
    /// thread, dropping the future does not undo it (the namespace stays
    /// until removed). Opening only is cancel safe.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`] (before anything touches the filesystem),
    /// [`Error::NotFound`], [`Error::AlreadyExists`], [`Error::Stale`],
    /// [`Error::NotNamespace`], [`Error::NoSuchProcess`], [`Error::Create`],
    /// [`Error::PrepareRunDir`], [`Error::Open`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo() -> nsfs::Result<()> {
    /// use nsfs::{OpenMode, RunDir, Target};
    ///
    /// let dir = RunDir::default();
    /// let blue = Target::from("blue").open(&dir, OpenMode::CreateOrOpen).await?;
    /// let mine = Target::from("/tmp/my-ns").open(&dir, OpenMode::CreateExclusive).await?;
    /// assert!(Target::from("a/b").open(&dir, OpenMode::OpenOnly).await.is_err());
    /// Target::from("/tmp/my-ns").remove(&dir).await?;
    /// # Ok(()) }
    /// ```
    #[doc(alias = "ip netns add")]
    pub async fn open(&self, dir: &RunDir, mode: OpenMode) -> Result<NetNs> {
        let span = span!("open", self, mode = ?mode);
        let opened = self.open_in(dir, mode).instrument(span.clone()).await;
        if let Ok(ns) = &opened {
            span.record("inode", ns.id().ino);
        }
        outcome(&span, &opened);
        opened
    }

    async fn open_in(&self, dir: &RunDir, mode: OpenMode) -> Result<NetNs> {
        match (self, mode) {
            (Target::Name(_) | Target::Path(_), OpenMode::OpenOnly) => self.open_existing(dir),
            (Target::Name(name), _) => {
                let name = NsName::new(name.as_str())?;
                // An existing name is opened right here: a few syscalls, where
                // `create` would hop to a namespace thread and re-share the run
                // directory (a mount call) first. Anything else (missing, a
                // placeholder being mounted by another creator) goes to
                // `create`, which handles races.
                if mode == OpenMode::CreateOrOpen
                    && let Ok(ns) = dir.open(&name)
                {
                    return Ok(ns);
                }
                dir.create(&name, mode).await
            }
            // An entry of the run directory is created as that name is.
            (Target::Path(path), _) => match self.name_in(dir) {
                Some(name) => dir.create(&name, mode).await,
                None => create_at(path, mode).await,
            },
            (Target::Pid(_) | Target::NetNs(_), OpenMode::CreateExclusive) => {
                Err(Error::AlreadyExists {
                    path: self.described(),
                })
            }
            (Target::Pid(_) | Target::NetNs(_), _) => self.open_existing(dir),
        }
    }

    /// Removes the namespace's name: a name's entry in `dir` (as
    /// [`RunDir::remove`]), or the namespace file at a path made by
    /// [`Target::open`] (a lazy unmount, then unlink, like `ip netns delete`).
    /// The namespace itself lives on while anything holds it.
    ///
    /// # Cancel safety
    ///
    /// As [`RunDir::remove`]: handed to a namespace thread at the first poll;
    /// if dropped after that, the name may still be removed.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidName`], [`Error::NotFound`], [`Error::Remove`]; a pid
    /// or an open namespace has no name to remove: [`Error::Remove`] with
    /// kind `InvalidInput`.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo() -> nsfs::Result<()> {
    /// use nsfs::{RunDir, Target};
    /// Target::from("/tmp/my-ns").remove(&RunDir::default()).await?;
    /// # Ok(()) }
    /// ```
    #[doc(alias = "ip netns delete")]
    pub async fn remove(&self, dir: &RunDir) -> Result<()> {
        let span = span!("remove", self);
        let removed = self.remove_in(dir).instrument(span.clone()).await;
        outcome(&span, &removed);
        removed
    }

    async fn remove_in(&self, dir: &RunDir) -> Result<()> {
        match self {
            Target::Name(name) => dir.remove(&NsName::new(name.as_str())?).await,
            Target::Path(path) => {
                let path = path.clone();
                Executor::global()?
                    .run_home(move || crate::rundir::remove_entry(&path))
                    .await?
            }
            Target::Pid(_) | Target::NetNs(_) => Err(Error::Remove {
                path: self.described(),
                source: io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "only a name or a path can be removed",
                ),
            }),
        }
    }

    /// Opens an existing namespace (names validated first, looked up in
    /// `dir`).
    pub(crate) fn open_existing(&self, dir: &RunDir) -> Result<NetNs> {
        match self {
            Target::Name(name) => dir.open(&NsName::new(name.as_str())?),
            Target::Path(path) => NetNs::open(path),
            Target::Pid(pid) => NetNs::from_pid(*pid),
            Target::NetNs(ns) => Ok(ns.clone()),
        }
    }

    /// The target as a path, for error messages.
    fn described(&self) -> PathBuf {
        match self {
            Target::Pid(pid) => format!("/proc/{pid}/ns/net").into(),
            Target::NetNs(ns) => ns.describe(),
            Target::Name(name) => name.into(),
            Target::Path(path) => path.clone(),
        }
    }
}

/// A DEBUG span for an operation on a target, with the fields every
/// operation of the toolkit has (`netns`, `inode`, `outcome`, `error`).
macro_rules! span {
    ($name:literal, $target:expr $(, $($field:tt)*)?) => {
        tracing::debug_span!(
            $name,
            netns = %$target,
            inode = tracing::field::Empty,
            outcome = tracing::field::Empty,
            error = tracing::field::Empty,
            $($($field)*)?
        )
    };
}
use span;

/// Records how an operation ended in its span.
fn outcome<T>(span: &tracing::Span, result: &Result<T>) {
    match result {
        Ok(_) => {
            span.record("outcome", "ok");
        }
        Err(err) => {
            span.record("outcome", "error");
            span.record("error", tracing::field::display(err));
        }
    }
}

/// Opens the namespace file at `path`, or creates a namespace there.
async fn create_at(path: &Path, mode: OpenMode) -> Result<NetNs> {
    if mode == OpenMode::CreateOrOpen
        && let Ok(ns) = NetNs::open(path)
    {
        return Ok(ns);
    }
    let path = path.to_owned();
    Executor::global()?
        .run_worker(move |w| RunDir::create_blocking(None, w, path, mode))
        .await
}

/// A name as it was given, a path, `pid N`, or an open namespace's path or
/// identity (`net:[INODE]`).
impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Name(name) => f.write_str(name),
            Target::Path(path) => write!(f, "{}", path.display()),
            Target::Pid(pid) => write!(f, "pid {pid}"),
            Target::NetNs(ns) => match ns.path() {
                Some(path) => write!(f, "{}", path.display()),
                None => write!(f, "{}", ns.id()),
            },
        }
    }
}

/// The rule: a leading `/` makes a path, anything else is a name.
impl From<&str> for Target {
    fn from(s: &str) -> Target {
        Target::from(s.to_owned())
    }
}

/// The rule: a leading `/` makes a path, anything else is a name.
impl From<String> for Target {
    fn from(s: String) -> Target {
        if s.starts_with('/') {
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
    fn from(name: NsName) -> Target {
        Target::Name(name.into_string())
    }
}

impl From<&NsName> for Target {
    fn from(name: &NsName) -> Target {
        Target::Name(name.as_str().to_owned())
    }
}

impl From<PathBuf> for Target {
    fn from(path: PathBuf) -> Target {
        Target::Path(path)
    }
}

impl From<&PathBuf> for Target {
    fn from(path: &PathBuf) -> Target {
        Target::Path(path.clone())
    }
}

impl From<&Path> for Target {
    fn from(path: &Path) -> Target {
        Target::Path(path.to_owned())
    }
}

impl From<i32> for Target {
    fn from(pid: i32) -> Target {
        Target::Pid(pid)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_rule_for_name_or_path() {
        for s in ["a/b", "../x", "../../proc/1/ns/net", "..", "", "./x"] {
            let t = Target::from(s);
            assert!(matches!(t, Target::Name(_)), "{s:?} is {t:?}");
            let err = t.name().unwrap_err();
            assert!(matches!(err, Error::InvalidName { .. }), "{s:?}: {err}");
        }
        for s in ["/proc/self/ns/net", "/run/netns/x", "/"] {
            assert!(matches!(Target::from(s), Target::Path(_)), "{s:?}");
        }
        assert!(matches!(Target::from(Path::new("a/b")), Target::Path(_)));
        assert!(matches!(Target::from(PathBuf::from("x")), Target::Path(_)));
    }
}
