//! `NetNs`: an owned handle on a network namespace.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nix::sys::stat::fstat;
use nix::sys::statfs::{NSFS_MAGIC, fstatfs};

use crate::{Error, Executor, Result, sys};

/// The identity of a namespace: the device and inode of its nsfs file.
///
/// Two handles name the same namespace exactly when their ids are equal (this is
/// how `ip netns identify` compares them). Inode numbers can be reused once a
/// namespace is freed, so compare ids of namespaces you hold open.
///
/// # Examples
///
/// ```no_run
/// let a = nsfs::NetNs::current_thread()?;
/// let b = nsfs::NetNs::from_pid(1)?;
/// println!("same namespace as init: {}", a.id() == b.id());
/// # Ok::<(), nsfs::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NsId {
    /// `st_dev` of the nsfs file.
    pub dev: u64,
    /// `st_ino` of the nsfs file (the number `readlink /proc/PID/ns/net` shows).
    pub ino: u64,
}

impl fmt::Display for NsId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "net:[{}]", self.ino)
    }
}

/// An open network namespace: an owned fd on an nsfs file.
///
/// Holding a `NetNs` keeps the namespace alive, even after its name is removed
/// from the run directory. Clones share one fd (the handle is reference
/// counted); the fd is closed when the last clone drops. Dropping a `NetNs`
/// never removes a namespace.
///
/// Code runs inside the namespace through [`NetNs::run`], on a namespace thread
/// owned by the toolkit: there is deliberately no way to switch the calling
/// thread.
///
/// # Examples
///
/// ```no_run
/// # async fn demo() -> nsfs::Result<()> {
/// let ns = nsfs::NetNs::from_pid(1)?;
/// let inode = ns.run(|| std::fs::read_link("/proc/thread-self/ns/net")).await?;
/// println!("{inode:?}");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct NetNs {
    inner: Arc<Inner>,
}

struct Inner {
    fd: OwnedFd,
    id: NsId,
    path: Option<PathBuf>,
}

impl NetNs {
    /// Opens the network namespace file at `path` (a run-directory entry,
    /// `/proc/PID/ns/net`, or any bind mount of one).
    ///
    /// Never blocks, whatever is at `path`: the file is first opened with
    /// `O_PATH` (which neither waits for a FIFO's writer nor wakes a device)
    /// and checked to be on nsfs, and only then opened for real, through that
    /// first fd (so it is the same file). Anything else is
    /// [`Error::NotNamespace`], at once.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] if nothing is there, [`Error::NotNamespace`] if the
    /// file is not on nsfs (a plain file, a FIFO, a directory...),
    /// [`Error::WrongNamespaceType`] for another kind of namespace,
    /// [`Error::Open`] for other failures.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let ns = nsfs::NetNs::open("/run/netns/blue")?;
    /// # Ok::<(), nsfs::Error>(())
    /// ```
    pub fn open(path: impl AsRef<Path>) -> Result<NetNs> {
        let path = path.as_ref();
        let open = |source: io::Error| Error::Open {
            path: path.into(),
            source,
        };
        // An `O_PATH` open has no side effect and never blocks (a plain open
        // of a FIFO waits for a writer): check the type on it first.
        let probe = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH)
            .open(path)
            .map_err(|source| match source.kind() {
                io::ErrorKind::NotFound => Error::NotFound { path: path.into() },
                _ => open(source),
            })?;
        let stat = fstatfs(&probe).map_err(|e| open(e.into()))?;
        if stat.filesystem_type() != NSFS_MAGIC {
            return Err(Error::NotNamespace { path: path.into() });
        }
        // The same nsfs file, opened for real (`ioctl` and `setns` refuse an
        // `O_PATH` fd): through the first fd, not the path, which may have
        // changed since.
        let file =
            File::open(format!("/proc/thread-self/fd/{}", probe.as_raw_fd())).map_err(open)?;
        NetNs::from_fd_at(OwnedFd::from(file), Some(path.into()))
    }

    /// Opens the network namespace of process `pid` (`/proc/PID/ns/net`).
    ///
    /// # Errors
    ///
    /// [`Error::NoSuchProcess`] if there is no such process (or `pid` is not
    /// positive), [`Error::Open`] otherwise.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let init = nsfs::NetNs::from_pid(1)?;
    /// # Ok::<(), nsfs::Error>(())
    /// ```
    pub fn from_pid(pid: i32) -> Result<NetNs> {
        if pid <= 0 {
            return Err(Error::NoSuchProcess { pid });
        }
        let path = PathBuf::from(format!("/proc/{pid}/ns/net"));
        match NetNs::open(&path) {
            Err(Error::NotFound { .. }) => Err(Error::NoSuchProcess { pid }),
            other => other,
        }
    }

    /// Opens the network namespace of the process a pidfd refers to (from
    /// `pidfd_open(2)` or `clone3` with `CLONE_PIDFD`): where
    /// [`from_pid`](NetNs::from_pid) could open the namespace of another
    /// process that got the pid after the first one exited, a pidfd always
    /// means the one process.
    ///
    /// On Linux 6.11 and later the kernel hands the namespace over
    /// (`ioctl(PIDFD_GET_NET_NAMESPACE)`). On older kernels, the process's
    /// pid is read from `/proc/self/fdinfo`, `/proc/PID/ns/net` is opened,
    /// and then the pidfd is checked to refer to a live process
    /// (`pidfd_send_signal` with signal 0): a process still alive after the
    /// open had that pid during it, so the namespace is its own.
    ///
    /// Allowed as opening `/proc/PID/ns/net` is (`PTRACE_MODE_READ`): a
    /// process of the caller's own user, or any process for a privileged
    /// caller. The handle has no [`path`](NetNs::path).
    ///
    /// # Errors
    ///
    /// [`Error::NotPidfd`] if `pidfd` is not a pidfd (checked before any
    /// request is made on it); [`Error::NoSuchProcess`] (`ESRCH`) if the
    /// process has exited (`pid` is the pid the kernel still shows for it,
    /// or -1 once it has been reaped); [`Error::Open`] otherwise (`EACCES`:
    /// a process of another user).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use std::os::fd::{AsFd, FromRawFd, OwnedFd};
    /// let child = std::process::Command::new("sleep").arg("10").spawn()?;
    /// // SAFETY: pidfd_open returns a new fd (or -1, checked).
    /// let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, child.id(), 0) } as i32;
    /// assert!(fd >= 0);
    /// let pidfd = unsafe { OwnedFd::from_raw_fd(fd) };
    /// let ns = nsfs::NetNs::from_pidfd(pidfd.as_fd())?;
    /// assert_eq!(ns, nsfs::NetNs::from_pid(child.id() as i32)?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # References
    ///
    /// `pidfd_open(2)`, `pidfd_send_signal(2)`, `ioctl_nsfs(2)`.
    #[doc(alias = "PIDFD_GET_NET_NAMESPACE")]
    pub fn from_pidfd(pidfd: BorrowedFd<'_>) -> Result<NetNs> {
        if !is_pidfd(pidfd) {
            return Err(Error::NotPidfd {
                what: fd_path(pidfd),
            });
        }
        match sys::pidfd_net_ns(pidfd) {
            Ok(fd) => NetNs::from_fd_at(fd, None),
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Err(Error::NoSuchProcess {
                pid: pidfd_pid(pidfd).unwrap_or(-1),
            }),
            // Before Linux 6.11 a pidfd has no ioctls.
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTTY | libc::EINVAL)) => {
                NetNs::from_pidfd_by_proc(pidfd)
            }
            Err(source) => Err(Error::Open {
                path: pidfd_described(pidfd),
                source,
            }),
        }
    }

    /// [`from_pidfd`](NetNs::from_pidfd) without the ioctl (kernels before
    /// 6.11): the pid from fdinfo, `/proc/PID/ns/net`, then the pidfd's
    /// process checked to be alive.
    pub(crate) fn from_pidfd_by_proc(pidfd: BorrowedFd<'_>) -> Result<NetNs> {
        let pid = match pidfd_pid(pidfd) {
            Some(pid) if pid > 0 => pid,
            _ => return Err(Error::NoSuchProcess { pid: -1 }),
        };
        let ns = NetNs::from_pid(pid)?;
        match sys::pidfd_alive(pidfd) {
            Ok(()) => Ok(ns),
            // It exists: the kernel only refuses to signal it.
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => Ok(ns),
            // Gone: the pid may have been reused before the open.
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Err(Error::NoSuchProcess { pid }),
            Err(source) => Err(Error::Open {
                path: format!("/proc/{pid}/ns/net").into(),
                source,
            }),
        }
    }

    /// Opens the network namespace of the calling thread
    /// (`/proc/thread-self/ns/net`, which, unlike `/proc/self`, is right on
    /// any thread). The handle has no [`path`](NetNs::path).
    ///
    /// # Errors
    ///
    /// [`Error::Open`] if `/proc` is not mounted.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let here = nsfs::NetNs::current_thread()?;
    /// println!("{}", here.id());
    /// # Ok::<(), nsfs::Error>(())
    /// ```
    pub fn current_thread() -> Result<NetNs> {
        // No path kept: `/proc/thread-self/...` names another namespace on
        // another thread, so messages describe the handle by its identity.
        let path = Path::new("/proc/thread-self/ns/net");
        let file = File::open(path).map_err(|source| Error::Open {
            path: path.into(),
            source,
        })?;
        NetNs::from_fd_at(OwnedFd::from(file), None)
    }

    /// Takes ownership of an fd on a network namespace file (received over a
    /// socket, opened by other code), checking that it is one.
    ///
    /// # Errors
    ///
    /// [`Error::NotNamespace`] or [`Error::WrongNamespaceType`]; the fd is
    /// closed.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use std::os::fd::OwnedFd;
    /// let fd: OwnedFd = std::fs::File::open("/proc/1/ns/net").unwrap().into();
    /// let ns = nsfs::NetNs::from_fd(fd)?;
    /// # Ok::<(), nsfs::Error>(())
    /// ```
    pub fn from_fd(fd: OwnedFd) -> Result<NetNs> {
        NetNs::from_fd_at(fd, None)
    }

    pub(crate) fn from_fd_at(fd: OwnedFd, path: Option<PathBuf>) -> Result<NetNs> {
        let described = || path.clone().unwrap_or_else(|| fd_path(fd.as_fd()));
        check_type(fd.as_fd(), libc::CLONE_NEWNET, described)?;
        let st = fstat(&fd).map_err(|e| Error::Open {
            path: described(),
            source: e.into(),
        })?;
        let id = NsId {
            dev: st.st_dev,
            ino: st.st_ino,
        };
        Ok(NetNs {
            inner: Arc::new(Inner { fd, id, path }),
        })
    }

    /// The namespace's identity (nsfs device and inode).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let here = nsfs::NetNs::current_thread()?;
    /// assert_eq!(here.id(), nsfs::NetNs::current_thread()?.id());
    /// # Ok::<(), nsfs::Error>(())
    /// ```
    pub fn id(&self) -> NsId {
        self.inner.id
    }

    /// The path this handle was opened from, if it was opened from one.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let ns = nsfs::NetNs::open("/proc/1/ns/net")?;
    /// assert_eq!(ns.path(), Some(std::path::Path::new("/proc/1/ns/net")));
    /// # Ok::<(), nsfs::Error>(())
    /// ```
    pub fn path(&self) -> Option<&Path> {
        self.inner.path.as_deref()
    }

    /// A description of this namespace for messages: the path it was opened
    /// from, or, without one, its identity (`net:[INODE]`, as
    /// `readlink /proc/PID/ns/net` shows it).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let ns = nsfs::NetNs::open("/run/netns/blue")?;
    /// assert_eq!(ns.describe(), std::path::Path::new("/run/netns/blue"));
    /// let here = nsfs::NetNs::current_thread()?;
    /// assert_eq!(here.describe(), std::path::Path::new(&here.id().to_string()));
    /// # Ok::<(), nsfs::Error>(())
    /// ```
    pub fn describe(&self) -> PathBuf {
        self.inner
            .path
            .clone()
            .unwrap_or_else(|| PathBuf::from(self.inner.id.to_string()))
    }

    /// A new, independent fd on the same namespace (`dup`, close-on-exec).
    ///
    /// # Errors
    ///
    /// The `dup` failure (for example `EMFILE`).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let ns = nsfs::NetNs::current_thread()?;
    /// let fd: std::os::fd::OwnedFd = ns.try_clone_fd()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_clone_fd(&self) -> io::Result<OwnedFd> {
        self.inner.fd.try_clone()
    }

    /// Runs the blocking closure `f` inside this namespace, on a namespace
    /// thread of the global [`Executor`], and returns its result.
    ///
    /// At most [`Executor::size`] such closures run at once (more wait their
    /// turn); however long they run, the toolkit's own jobs (sockets,
    /// creating and removing names, spawns) do not wait for them. The global
    /// executor, once used, keeps its threads and one fd until the process
    /// exits (see [`Executor::global`]).
    ///
    /// `f` runs on a thread the toolkit owns, never on a runtime worker or a
    /// blocking-pool thread; the thread switches into the namespace for the
    /// call and back afterwards. Sockets `f` creates belong to this namespace
    /// for their whole life; `/proc/thread-self/net` and `/proc/sys/net` show
    /// this namespace. `f` must be short, must not create threads (they would
    /// be born in this namespace) and must not call back into the executor.
    /// A panic in `f` is resumed in the caller.
    ///
    /// # Cancel safety
    ///
    /// `f` is handed to a thread at the first poll. If the future is dropped
    /// after that, `f` still runs (or has run) to completion and its result
    /// is dropped, which closes any fd it returned; dropped before its first
    /// poll, nothing happens.
    ///
    /// # Errors
    ///
    /// [`Error::Enter`] if the thread could not enter the namespace (`f` was
    /// not called), [`Error::Thread`] if no namespace thread could be started
    /// (or the last one left the pool before running it).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(ns: nsfs::NetNs) -> nsfs::Result<()> {
    /// let forwarding = ns
    ///     .run(|| std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward"))
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn run<F, R>(&self, f: F) -> Result<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        Executor::global()?.run_in(self, f).await
    }

    /// Runs a closure of a few microseconds (a `socket(2)`, a `bind(2)`)
    /// inside this namespace, lending it the calling thread's CPU: what
    /// [`run`](NetNs::run) does, with [`Executor::run_in_short`] on the global
    /// executor. The caller's thread waits for it without parking (at most
    /// 50 us, then it awaits): never use it for a closure that blocks.
    ///
    /// # Cancel safety
    ///
    /// As [`run`](NetNs::run).
    ///
    /// # Errors
    ///
    /// As [`run`](NetNs::run).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(ns: nsfs::NetNs) -> Result<(), Box<dyn std::error::Error>> {
    /// let listener = ns
    ///     .run_short(|| std::net::TcpListener::bind("127.0.0.1:8080"))
    ///     .await??;
    /// # Ok(()) }
    /// ```
    pub async fn run_short<F, R>(&self, f: F) -> Result<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        Executor::global()?.run_in_short(self, f).await
    }

    /// Runs a toolkit job inside this namespace: what [`run`](NetNs::run)
    /// does, in the global executor's [toolkit lane](Executor::toolkit), so
    /// that it never waits behind users' closures, however long those run.
    ///
    /// For jobs of the toolkit (or a library on top of it) that finish
    /// promptly whatever happens elsewhere, such as spawning a process with
    /// `posix_spawn` (the fast path of `nsproc`): never for a closure that
    /// waits on another party (a channel, a lock, the network, a child's
    /// exit), which would stall every socket and spawn of the process. A job
    /// of a few microseconds whose caller waits for it is better off with
    /// [`run_short`](NetNs::run_short), which also lends it the caller's CPU.
    ///
    /// # Cancel safety
    ///
    /// As [`run`](NetNs::run).
    ///
    /// # Errors
    ///
    /// As [`run`](NetNs::run).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(ns: nsfs::NetNs) -> Result<(), Box<dyn std::error::Error>> {
    /// let child = ns
    ///     .run_toolkit(|| std::process::Command::new("true").spawn())
    ///     .await??;
    /// # Ok(()) }
    /// ```
    pub async fn run_toolkit<F, R>(&self, f: F) -> Result<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        Executor::global()?.toolkit().run_in(self, f).await
    }
}

impl AsFd for NetNs {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.fd.as_fd()
    }
}

impl PartialEq for NetNs {
    fn eq(&self, other: &NetNs) -> bool {
        self.inner.id == other.inner.id
    }
}

impl Eq for NetNs {}

impl fmt::Debug for NetNs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NetNs")
            .field("fd", &self.inner.fd.as_raw_fd())
            .field("id", &self.inner.id)
            .field("path", &self.inner.path)
            .finish()
    }
}

/// Checks that `fd` is a namespace of type `kind`, a `CLONE_NEW*` flag
/// (`CLONE_NEWNET`, `CLONE_NEWUSER`, ...): a file on nsfs, of the type
/// `ioctl(NS_GET_NSTYPE)` names. `path` describes the fd in errors.
///
/// # Errors
///
/// [`Error::NotNamespace`] if `fd` is not on nsfs (nothing else is asked of
/// it), [`Error::WrongNamespaceType`] for another type of namespace,
/// [`Error::Open`] if either question fails.
///
/// # Examples
///
/// ```
/// use std::os::fd::AsFd;
/// let user = std::fs::File::open("/proc/self/ns/user")?;
/// nsfs::check_namespace_type(user.as_fd(), libc::CLONE_NEWUSER, "/proc/self/ns/user".as_ref())?;
/// let err = nsfs::check_namespace_type(user.as_fd(), libc::CLONE_NEWNET, "/proc/self/ns/user".as_ref());
/// assert!(matches!(err, Err(nsfs::Error::WrongNamespaceType { .. })));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # References
///
/// `ioctl_nsfs(2)`.
#[doc(alias = "NS_GET_NSTYPE")]
pub fn check_namespace_type(fd: BorrowedFd<'_>, kind: libc::c_int, path: &Path) -> Result<()> {
    check_type(fd, kind, || path.to_owned())
}

/// [`check_namespace_type`], describing the fd only on failure.
fn check_type(
    fd: BorrowedFd<'_>,
    kind: libc::c_int,
    described: impl Fn() -> PathBuf,
) -> Result<()> {
    let stat = fstatfs(fd).map_err(|e| Error::Open {
        path: described(),
        source: e.into(),
    })?;
    if stat.filesystem_type() != NSFS_MAGIC {
        return Err(Error::NotNamespace { path: described() });
    }
    match sys::ns_type(fd) {
        Ok(t) if t == kind => Ok(()),
        Ok(_) => Err(Error::WrongNamespaceType { path: described() }),
        Err(source) => Err(Error::Open {
            path: described(),
            source,
        }),
    }
}

/// What an fd points at, for messages about fds that came without a path.
fn fd_path(fd: BorrowedFd<'_>) -> PathBuf {
    let link = format!("/proc/thread-self/fd/{}", fd.as_raw_fd());
    std::fs::read_link(&link).unwrap_or_else(|_| PathBuf::from(link))
}

/// `PIDFS_MAGIC`: the file system of pidfds since Linux 6.9.
const PIDFS_MAGIC: nix::sys::statfs::FsType = nix::sys::statfs::FsType(0x5049_4446);

/// Whether `fd` is a pidfd: on pidfs (Linux 6.9 and later), or the
/// anonymous inode `[pidfd]` (before).
fn is_pidfd(fd: BorrowedFd<'_>) -> bool {
    if fstatfs(fd).is_ok_and(|st| st.filesystem_type() == PIDFS_MAGIC) {
        return true;
    }
    std::fs::read_link(format!("/proc/thread-self/fd/{}", fd.as_raw_fd()))
        .is_ok_and(|target| target.as_os_str() == "anon_inode:[pidfd]")
}

/// The pid the kernel shows for a pidfd (`Pid:` in its fdinfo): -1 once
/// the process has been reaped; `None` if it cannot be read.
fn pidfd_pid(fd: BorrowedFd<'_>) -> Option<i32> {
    let info =
        std::fs::read_to_string(format!("/proc/thread-self/fdinfo/{}", fd.as_raw_fd())).ok()?;
    info.lines()
        .find_map(|l| l.strip_prefix("Pid:"))
        .and_then(|p| p.trim().parse().ok())
}

/// A pidfd's process as a path for messages: `/proc/PID/ns/net`.
fn pidfd_described(fd: BorrowedFd<'_>) -> PathBuf {
    match pidfd_pid(fd) {
        Some(pid) => format!("/proc/{pid}/ns/net").into(),
        None => fd_path(fd),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The way older kernels take (no `PIDFD_GET_NET_NAMESPACE`) finds the
    /// same namespace as the ioctl, and an exited process as `ESRCH`.
    #[test]
    fn pidfd_without_the_ioctl() {
        let mut child = std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let pidfd = sys::pidfd_open(pid).unwrap();
        assert!(is_pidfd(pidfd.as_fd()));
        assert_eq!(pidfd_pid(pidfd.as_fd()), Some(pid));
        let by_proc = NetNs::from_pidfd_by_proc(pidfd.as_fd()).unwrap();
        assert_eq!(by_proc, NetNs::from_pidfd(pidfd.as_fd()).unwrap());
        assert_eq!(by_proc, NetNs::from_pid(pid).unwrap());
        child.kill().unwrap();
        child.wait().unwrap();
        for err in [
            NetNs::from_pidfd_by_proc(pidfd.as_fd()).unwrap_err(),
            NetNs::from_pidfd(pidfd.as_fd()).unwrap_err(),
        ] {
            assert!(matches!(err, Error::NoSuchProcess { pid: -1 }), "{err}");
            assert_eq!(err.raw_os_error(), Some(libc::ESRCH));
        }
        let file = File::open("/proc/self/ns/net").unwrap();
        assert!(!is_pidfd(file.as_fd()));
    }
}
