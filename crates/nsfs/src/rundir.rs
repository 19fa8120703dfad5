//! The run directory and the lifecycle of named namespaces.

use std::fs::{self, OpenOptions};
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sys::statfs::{NSFS_MAGIC, statfs};

use tracing::Instrument;

use crate::trace::{self, op_span};
use crate::{Error, Executor, NetNs, NsName, Result};

/// Where iproute2 names network namespaces (`/var/run/netns` is the same
/// directory on every current system).
///
/// # Examples
///
/// ```
/// assert_eq!(nsfs::RunDir::default(), nsfs::RunDir::new(nsfs::DEFAULT_RUN_DIR));
/// ```
pub const DEFAULT_RUN_DIR: &str = "/run/netns";

/// Docker's run directory for container namespaces.
///
/// # Examples
///
/// ```no_run
/// for entry in nsfs::RunDir::new(nsfs::DOCKER_RUN_DIR).list()? {
///     println!("container namespace {}", entry.name);
/// }
/// # Ok::<(), nsfs::Error>(())
/// ```
pub const DOCKER_RUN_DIR: &str = "/var/run/docker/netns";

/// How long a create or open waits for an entry another process is creating
/// (a placeholder file not yet mounted) before calling it stale.
const SETTLE: Duration = Duration::from_secs(1);

/// What [`RunDir::create`] does when the name exists or not: pyroute2's
/// open(2)-style flags.
///
/// # Examples
///
/// ```
/// use nsfs::OpenMode;
/// assert_eq!(OpenMode::default(), OpenMode::CreateOrOpen);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OpenMode {
    /// Open the namespace, creating it if it does not exist (`O_CREAT`,
    /// pyroute2's default for `NetNS` and `IPRoute(netns=)`).
    #[default]
    CreateOrOpen,
    /// Create the namespace; fail with [`Error::AlreadyExists`] if the name is
    /// taken (`O_CREAT | O_EXCL`, `ip netns add`).
    CreateExclusive,
    /// Open an existing namespace; fail with [`Error::NotFound`] if there is
    /// none (flags `0`). Never creates anything.
    OpenOnly,
}

/// What a run-directory entry is, as [`RunDir::list`] reports it.
///
/// # Examples
///
/// ```no_run
/// for entry in nsfs::RunDir::default().list()? {
///     if entry.state == nsfs::EntryState::Stale {
///         eprintln!("{} is stale", entry.name);
///     }
/// }
/// # Ok::<(), nsfs::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EntryState {
    /// A network namespace is mounted on the entry.
    Mounted,
    /// The entry is a plain file with nothing mounted on it: a creator is
    /// half-way, died half-way, or the mount was lost.
    Stale,
}

/// One entry of a run directory.
///
/// # Examples
///
/// ```no_run
/// let names: Vec<nsfs::NsName> = nsfs::RunDir::default()
///     .list()?
///     .into_iter()
///     .filter(|e| e.state == nsfs::EntryState::Mounted)
///     .map(|e| e.name)
///     .collect();
/// # Ok::<(), nsfs::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Entry {
    /// The entry's name.
    pub name: NsName,
    /// Whether a namespace is mounted on it.
    pub state: EntryState,
}

/// A directory of named network namespaces: `/run/netns` by default.
///
/// Namespaces are named by bind-mounting their nsfs file on an entry of this
/// directory, exactly as `ip netns add` does, so namespaces made here and by
/// iproute2 are the same thing and each side sees the other's.
///
/// # Examples
///
/// ```no_run
/// # async fn demo() -> nsfs::Result<()> {
/// use nsfs::{NsName, OpenMode, RunDir};
///
/// let dir = RunDir::default();
/// let name = NsName::new("blue")?;
/// let ns = dir.create(&name, OpenMode::CreateExclusive).await?;
/// assert!(dir.list()?.iter().any(|e| e.name == name));
/// dir.remove(&name).await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RunDir {
    path: PathBuf,
}

/// `/run/netns` for a privileged process; in rootless mode (not
/// [`privileged`](crate::privileged)), the user's own directory
/// ([`RunDir::user`], made and checked on first use), or `/run/netns` if
/// that is unusable (operations then fail with a clear error).
impl Default for RunDir {
    fn default() -> RunDir {
        if crate::privileged() {
            return RunDir::new(DEFAULT_RUN_DIR);
        }
        // Made and checked once per process: this is on every path that
        // names a namespace.
        static USER: std::sync::OnceLock<Option<RunDir>> = std::sync::OnceLock::new();
        USER.get_or_init(|| RunDir::user().ok())
            .clone()
            .unwrap_or_else(|| RunDir::new(DEFAULT_RUN_DIR))
    }
}

impl RunDir {
    /// A run directory at `path` (for tests, or `/var/run/docker/netns`).
    /// Nothing is touched until an operation needs it.
    ///
    /// # Examples
    ///
    /// ```
    /// let docker = nsfs::RunDir::new(nsfs::DOCKER_RUN_DIR);
    /// assert_eq!(docker.path(), std::path::Path::new("/var/run/docker/netns"));
    /// ```
    pub fn new(path: impl Into<PathBuf>) -> RunDir {
        RunDir { path: path.into() }
    }

    /// The directory's path.
    ///
    /// # Examples
    ///
    /// ```
    /// # if nsfs::privileged() {
    /// assert_eq!(nsfs::RunDir::default().path(), std::path::Path::new("/run/netns"));
    /// # }
    /// ```
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path of the entry for `name`.
    ///
    /// # Examples
    ///
    /// ```
    /// let name = nsfs::NsName::new("blue")?;
    /// assert_eq!(nsfs::RunDir::default().entry(&name), std::path::Path::new("/run/netns/blue"));
    /// # Ok::<(), nsfs::Error>(())
    /// ```
    pub fn entry(&self, name: &NsName) -> PathBuf {
        self.path.join(name.as_str())
    }

    /// Prepares the directory as iproute2 does: creates it (mode 0755), then,
    /// under an exclusive `flock` on it, makes it a recursive shared mount; if
    /// it is not a mount point yet, bind-mounts it on itself (recursively,
    /// keeping mounts already there), makes that a private peer group and
    /// retries. Shared propagation is what lets a namespace named here show up
    /// in mount namespaces cloned later, and an unmount reach every copy.
    ///
    /// Called by [`create`](RunDir::create) and [`attach`](RunDir::attach);
    /// idempotent. Blocking (a few syscalls).
    ///
    /// # Errors
    ///
    /// [`Error::PrepareRunDir`] with the failing step's error.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// nsfs::RunDir::default().prepare()?;
    /// # Ok::<(), nsfs::Error>(())
    /// ```
    pub fn prepare(&self) -> Result<()> {
        let fail = |source: io::Error| Error::PrepareRunDir {
            path: self.path.clone(),
            source,
        };
        match fs::DirBuilder::new()
            .mode(0o755)
            .recursive(true)
            .create(&self.path)
        {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(fail(e)),
        }
        // O_DIRECTORY: a run dir path that is a plain file must fail here,
        // before anything is mounted on it.
        let dir = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY)
            .open(&self.path)
            .map_err(fail)?;
        // iproute2 warns and goes on when flock fails; so do we.
        let _lock = Flock::lock(dir, FlockArg::LockExclusive).ok();
        let mut bound = false;
        loop {
            let shared = MsFlags::MS_SHARED | MsFlags::MS_REC;
            match mount(None::<&str>, &self.path, Some("none"), shared, None::<&str>) {
                Ok(()) => return Ok(()),
                Err(nix::Error::EINVAL) if !bound => {
                    let bind = MsFlags::MS_BIND | MsFlags::MS_REC;
                    mount(
                        Some(&self.path),
                        &self.path,
                        Some("none"),
                        bind,
                        None::<&str>,
                    )
                    .map_err(|e| fail(e.into()))?;
                    let private = MsFlags::MS_PRIVATE | MsFlags::MS_REC;
                    mount(
                        None::<&str>,
                        &self.path,
                        Some("none"),
                        private,
                        None::<&str>,
                    )
                    .map_err(|e| fail(e.into()))?;
                    bound = true;
                }
                Err(e) => return Err(fail(e.into())),
            }
        }
    }

    /// Opens the namespace named `name`, like `ip -n NAME` does.
    ///
    /// Never blocks, whatever the entry is (see [`NetNs::open`]).
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] if there is no such entry, [`Error::Stale`] if the
    /// entry is a plain file with no namespace mounted on it,
    /// [`Error::NotNamespace`] if it is anything else that is not a namespace
    /// (a FIFO, a directory, a device), [`Error::Open`] otherwise.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let blue = nsfs::RunDir::default().open(&"blue".parse()?)?;
    /// # Ok::<(), nsfs::Error>(())
    /// ```
    pub fn open(&self, name: &NsName) -> Result<NetNs> {
        let path = self.entry(name);
        match NetNs::open(&path) {
            Err(Error::NotNamespace { path }) if is_placeholder(&path) => {
                Err(Error::Stale { path })
            }
            other => other,
        }
    }

    /// Creates, or opens, the namespace named `name`, following `mode`, like
    /// `ip netns add` (with [`OpenMode::CreateExclusive`]).
    ///
    /// Made without fork, on a namespace thread: prepare the directory, create
    /// the entry as an empty mode-0 file with `O_EXCL`, `unshare` a new network
    /// namespace and bind-mount `/proc/thread-self/ns/net` on the entry, last.
    /// When two processes create the same name at the same moment, one creates
    /// it and the other waits until the mount is there and opens it
    /// (`CreateOrOpen`) or gets [`Error::AlreadyExists`] (`CreateExclusive`);
    /// neither ever sees a half-made entry. On failure nothing is left behind.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe in the sense that dropping undoes nothing: the work is
    /// handed to a namespace thread at the first poll, and if the future is
    /// dropped after that the namespace is still created (or opened) and the
    /// handle dropped; the name stays until removed. Dropped before its first
    /// poll, nothing happens.
    ///
    /// # Errors
    ///
    /// [`Error::AlreadyExists`], [`Error::NotFound`] (`OpenOnly`),
    /// [`Error::Stale`] (a placeholder nobody mounts within a second),
    /// [`Error::NotNamespace`] (an entry that is neither a namespace nor a
    /// plain file, such as a FIFO: at once, and never opened for real),
    /// [`Error::PrepareRunDir`], [`Error::Create`] naming the failed step.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo() -> nsfs::Result<()> {
    /// use nsfs::{OpenMode, RunDir};
    /// let dir = RunDir::default();
    /// let ns = dir.create(&"blue".parse()?, OpenMode::CreateOrOpen).await?;
    /// let again = dir.create(&"blue".parse()?, OpenMode::OpenOnly).await?;
    /// assert_eq!(ns, again);
    /// # Ok(()) }
    /// ```
    ///
    /// # References
    ///
    /// `ip-netns(8)`, `unshare(2)`, `mount(2)`.
    #[doc(alias = "ip netns add")]
    pub async fn create(&self, name: &NsName, mode: OpenMode) -> Result<NetNs> {
        let span = op_span!("create", name);
        let result = self
            .create_untraced(name, mode)
            .instrument(span.clone())
            .await;
        trace::finish(&span, &result, |ns| Some(ns.id().ino));
        result
    }

    async fn create_untraced(&self, name: &NsName, mode: OpenMode) -> Result<NetNs> {
        let dir = self.clone();
        let path = self.entry(name);
        // An existing, mounted name is opened right here (a few syscalls on
        // nsfs): no hop to a namespace thread. Everything else (creating,
        // waiting for another creator) runs on one.
        if mode != OpenMode::CreateExclusive
            && let Ok(ns) = NetNs::open(&path)
        {
            return Ok(ns);
        }
        Executor::global()?
            .toolkit()
            .run_worker(move |w| RunDir::create_blocking(Some(&dir), w, path, mode))
            .await
    }

    /// Creates or opens the namespace at `path`, on a namespace thread; `dir`
    /// (the run directory `path` is an entry of) is prepared first. Without
    /// one, `path` is a namespace file of the caller's choosing, made the same
    /// way in the directory as it is.
    pub(crate) fn create_blocking(
        dir: Option<&RunDir>,
        w: &mut crate::thread::Worker<'_>,
        path: PathBuf,
        mode: OpenMode,
    ) -> Result<NetNs> {
        if mode != OpenMode::OpenOnly {
            // Most opens of a name find it mounted: no directory set-up then.
            if mode == OpenMode::CreateOrOpen
                && let Ok(ns) = NetNs::open(&path)
            {
                return Ok(ns);
            }
            if let Some(dir) = dir {
                dir.prepare()?;
            }
        }
        let deadline = Instant::now() + SETTLE;
        let mut pause = Duration::from_micros(50);
        loop {
            let placeholder = if mode == OpenMode::OpenOnly {
                Err(io::ErrorKind::AlreadyExists.into())
            } else {
                OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create_new(true)
                    .mode(0o000)
                    .open(&path)
            };
            match placeholder {
                Ok(file) => {
                    drop(file);
                    return mount_new(w, &path).inspect_err(|_| {
                        let _ = umount2(&path, DETACH_NOFOLLOW);
                        let _ = fs::remove_file(&path);
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    if mode == OpenMode::CreateExclusive {
                        return Err(Error::AlreadyExists { path });
                    }
                    match NetNs::open(&path) {
                        Ok(ns) => return Ok(ns),
                        // Another creator is between its placeholder and its
                        // mount, or gave up and removed the entry: look again.
                        // (Only a plain file can be such a placeholder: a
                        // FIFO or a directory is an error at once.)
                        Err(Error::NotNamespace { path }) if !is_placeholder(&path) => {
                            return Err(Error::NotNamespace { path });
                        }
                        Err(Error::NotNamespace { .. }) if Instant::now() < deadline => {}
                        Err(Error::NotFound { .. })
                            if mode != OpenMode::OpenOnly && Instant::now() < deadline => {}
                        Err(Error::NotNamespace { path }) => return Err(Error::Stale { path }),
                        Err(e) => return Err(e),
                    }
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(5));
                }
                Err(source) => {
                    return Err(Error::Create {
                        path,
                        step: "create entry",
                        source,
                    });
                }
            }
        }
    }

    /// Names the network namespace of process `pid` as `name`, like
    /// `ip netns attach NAME PID`.
    ///
    /// The namespace is opened first and the name bind-mounted from that open
    /// handle, so a pid that exits (or is reused) meanwhile can never get the
    /// wrong namespace named. On failure no entry is left.
    ///
    /// # Cancel safety
    ///
    /// The work is handed to a namespace thread at the first poll: if the
    /// future is dropped after that, the name may still be created (and stays
    /// until removed). Dropped before its first poll, nothing happens.
    ///
    /// # Errors
    ///
    /// [`Error::NoSuchProcess`], [`Error::AlreadyExists`],
    /// [`Error::PrepareRunDir`], [`Error::Attach`] naming the failed step.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(pid: i32) -> nsfs::Result<()> {
    /// let ns = nsfs::RunDir::default().attach(&"container".parse()?, pid).await?;
    /// # Ok(()) }
    /// ```
    #[doc(alias = "ip netns attach")]
    pub async fn attach(&self, name: &NsName, pid: i32) -> Result<NetNs> {
        let span = op_span!("attach", name);
        let result = self
            .attach_untraced(name, pid)
            .instrument(span.clone())
            .await;
        trace::finish(&span, &result, |ns| Some(ns.id().ino));
        result
    }

    async fn attach_untraced(&self, name: &NsName, pid: i32) -> Result<NetNs> {
        let target = NetNs::from_pid(pid)?;
        let dir = self.clone();
        let path = self.entry(name);
        Executor::global()?
            .toolkit()
            .run_home_untraced(move || {
                dir.prepare()?;
                let attach = |step, source| Error::Attach {
                    path: path.clone(),
                    pid,
                    step,
                    source,
                };
                match OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create_new(true)
                    .mode(0o000)
                    .open(&path)
                {
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                        return Err(Error::AlreadyExists { path });
                    }
                    Err(e) => return Err(attach("create entry", e)),
                }
                // Mount the namespace we hold open, not `/proc/PID/ns/net`
                // again: the pid may have exited, or been reused, since.
                let source = format!("/proc/thread-self/fd/{}", target.as_fd().as_raw_fd());
                let mounted = mount(
                    Some(source.as_str()),
                    &path,
                    Some("none"),
                    MsFlags::MS_BIND,
                    None::<&str>,
                )
                .map_err(|e| attach("bind mount", e.into()))
                .and_then(|()| NetNs::open(&path));
                if mounted.is_err() {
                    let _ = umount2(&path, DETACH_NOFOLLOW);
                    let _ = fs::remove_file(&path);
                }
                mounted
            })
            .await?
    }

    /// Removes the name `name`, like `ip netns delete`: a lazy unmount (whose
    /// failure is ignored, so a stale plain file is cleaned up too), then
    /// unlink. The namespace itself lives on while anything holds it (a
    /// [`NetNs`], a socket, a process).
    ///
    /// Safer than `ip netns delete` here: the unmount never follows a
    /// symlink (`UMOUNT_NOFOLLOW`). An entry that is a symlink is removed as
    /// itself, and what it points at (another name's namespace, any mount
    /// point) stays mounted; iproute2 would detach that target first.
    ///
    /// # Cancel safety
    ///
    /// The work is handed to a namespace thread at the first poll: if the
    /// future is dropped after that, the name may still be removed. Dropped
    /// before its first poll, nothing happens.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] if there is no such entry, [`Error::Remove`] if it
    /// cannot be unlinked.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo() -> nsfs::Result<()> {
    /// nsfs::RunDir::default().remove(&"blue".parse()?).await?;
    /// # Ok(()) }
    /// ```
    #[doc(alias = "ip netns delete")]
    pub async fn remove(&self, name: &NsName) -> Result<()> {
        let span = op_span!("remove", name);
        let path = self.entry(name);
        let result = async {
            Executor::global()?
                .toolkit()
                .run_home_untraced(move || remove_entry(&path))
                .await?
        }
        .instrument(span.clone())
        .await;
        trace::finish(&span, &result, |()| None);
        result
    }

    /// The entries of the directory, sorted by name, each with its state: a
    /// mounted namespace, or a stale entry (reported, not returned as a
    /// namespace). A missing directory has no entries. Entries whose names are
    /// not valid namespace names are skipped.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the directory exists but cannot be read.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// for entry in nsfs::RunDir::default().list()? {
    ///     println!("{} {:?}", entry.name, entry.state);
    /// }
    /// # Ok::<(), nsfs::Error>(())
    /// ```
    #[doc(alias = "ip netns list")]
    pub fn list(&self) -> Result<Vec<Entry>> {
        let read = match fs::read_dir(&self.path) {
            Ok(read) => read,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(Error::Io {
                    op: "read directory",
                    path: self.path.clone(),
                    source,
                });
            }
        };
        let mut entries = Vec::new();
        for dirent in read {
            let dirent = dirent.map_err(|source| Error::Io {
                op: "read directory",
                path: self.path.clone(),
                source,
            })?;
            let Ok(name) = NsName::from_os_str(&dirent.file_name()) else {
                continue;
            };
            let state = match statfs(&dirent.path()) {
                Ok(st) if st.filesystem_type() == NSFS_MAGIC => EntryState::Mounted,
                Ok(_) => EntryState::Stale,
                // Removed while we looked.
                Err(_) => continue,
            };
            entries.push(Entry { name, state });
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(entries)
    }
}

/// Whether the entry at `path` is a plain file (what a creator makes before
/// it mounts a namespace on it, or what is left when it died half-way).
/// `stat` only: it never opens the file.
fn is_placeholder(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|md| md.file_type().is_file())
}

/// On a namespace thread: new namespace, bind mount on `path`, open it.
fn mount_new(w: &mut crate::thread::Worker<'_>, path: &Path) -> Result<NetNs> {
    let create = |step, source| Error::Create {
        path: path.into(),
        step,
        source,
    };
    w.enter_new().map_err(|e| create("unshare", e))?;
    mount(
        Some("/proc/thread-self/ns/net"),
        path,
        Some("none"),
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|e| create("bind mount", e.into()))?;
    NetNs::open(path)
}

/// A lazy unmount of the entry itself, never of what a symlink points at.
const DETACH_NOFOLLOW: MntFlags = MntFlags::MNT_DETACH.union(MntFlags::UMOUNT_NOFOLLOW);

pub(crate) fn remove_entry(path: &Path) -> Result<()> {
    // On a symlink, `UMOUNT_NOFOLLOW` fails (`EINVAL`) and only the link is
    // unlinked below: `ip netns del` would detach the link's target.
    let _ = umount2(path, DETACH_NOFOLLOW);
    fs::remove_file(path).map_err(|source| match source.kind() {
        io::ErrorKind::NotFound => Error::NotFound { path: path.into() },
        _ => Error::Remove {
            path: path.into(),
            source,
        },
    })
}
