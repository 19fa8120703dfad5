//! Watching a run directory for namespaces added and removed.
//!
//! inotify tells when an entry appears or disappears, but `ip netns add` (and
//! [`RunDir::create`]) make the entry *before* they mount the namespace on it:
//! a consumer that opened a name on `IN_CREATE` could get a plain file. So a
//! new entry is held back as *pending* until a namespace is really mounted on
//! it. Mounts make no inotify event; the mount table does: `/proc/self/mountinfo`
//! polls as `POLLPRI` whenever a mount is added or removed in this mount
//! namespace, and every change re-checks the pending entries. (If that file
//! cannot be polled, a timer backing off from 5 ms to 1 s re-checks them.)

use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::fs;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, InotifyEvent};
use nix::sys::statfs::{NSFS_MAGIC, statfs};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use crate::sys::{self, InotifyFd};
use crate::{EntryState, Error, NsName, Result, RunDir};

/// A change in a run directory, as [`Monitor`] reports it: a name that
/// came or went (not to be confused with the facade's netlink events, which
/// report links, addresses and routes inside one namespace).
///
/// Per name, events come in the order things happened: an `Added` is always
/// followed by a `Removed` before the next `Added` of the same name.
///
/// # Examples
///
/// ```no_run
/// # async fn demo() -> nsfs::Result<()> {
/// use futures::StreamExt;
/// use std::collections::BTreeSet;
///
/// let mut names = BTreeSet::new();
/// let mut events = nsfs::RunDir::default().monitor()?;
/// while let Some(event) = events.next().await {
///     match event? {
///         nsfs::RunDirEvent::Added(name) => { names.insert(name); }
///         nsfs::RunDirEvent::Removed(name) => { names.remove(&name); }
///         nsfs::RunDirEvent::Resync(now) => names = now.into_iter().collect(),
///         _ => {}
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RunDirEvent {
    /// A namespace is now mounted under this name (reported once the mount is
    /// there, never at the bare placeholder file).
    Added(NsName),
    /// A name that was reported (or present when the monitor started) is gone.
    Removed(NsName),
    /// The kernel's event queue overflowed (`IN_Q_OVERFLOW`), so some events
    /// were lost. The directory was re-read: this is the complete, sorted list
    /// of names with a namespace mounted now. A consumer must replace its view
    /// with it; later events follow on from it.
    Resync(Vec<NsName>),
}

/// An endless [`Stream`] of [`RunDirEvent`]s on a run directory, like
/// `ip netns monitor`: made by [`RunDir::monitor`].
///
/// Namespaces already there when the monitor starts are not reported as
/// added (their removal is). An entry removed before a namespace was ever
/// mounted on it (a creator that failed, a stale placeholder) produces no
/// event at all. The directory is read when the stream is polled: a namespace
/// added and removed again before that may produce no event (what the
/// consumer saw is still right: it is not there). A namespace unmounted
/// without its entry being removed stays unreported until the entry is
/// removed.
///
/// The stream ends with an error if the directory itself is removed, moved or
/// unmounted. Dropping the monitor closes its inotify and mountinfo fds.
///
/// # Cancel safety
///
/// Polling is cancel safe: dropping a `next()` future loses no event, since
/// events are kept in the monitor until they are returned.
///
/// # Examples
///
/// ```no_run
/// # async fn demo() -> nsfs::Result<()> {
/// use futures::StreamExt;
///
/// let mut events = nsfs::RunDir::default().monitor()?;
/// if let Some(Ok(nsfs::RunDirEvent::Added(name))) = events.next().await {
///     let ns = nsfs::RunDir::default().open(&name)?; // mounted: this works
/// }
/// # Ok(()) }
/// ```
pub struct Monitor {
    path: PathBuf,
    inner: Pin<Box<dyn Stream<Item = Result<RunDirEvent>> + Send + Sync>>,
}

impl fmt::Debug for Monitor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Monitor")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Stream for Monitor {
    type Item = Result<RunDirEvent>;

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<RunDirEvent>>> {
        self.inner.as_mut().poll_next(cx)
    }
}

impl RunDir {
    /// Watches this directory for namespaces added and removed, like
    /// `ip netns monitor` (creating the directory, mode 0755, if it is
    /// missing). See [`Monitor`] for what is reported when.
    ///
    /// Must be called within a Tokio runtime (the monitor's fds are registered
    /// with its reactor).
    ///
    /// # Errors
    ///
    /// [`Error::Monitor`] if the directory cannot be made or watched, or there
    /// is no Tokio runtime.
    ///
    /// A path that exists but is not a directory (a plain file) is an error
    /// at start, `ENOTDIR` ([`Error::raw_os_error`]): this differs from
    /// `ip netns monitor`, which puts its inotify watch on the file and then
    /// waits for ever, since a file never reports the directory events it
    /// asked for. No namespace can be added under such a path (`ip netns add`
    /// fails too), so a monitor there could only be silently empty.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo() -> nsfs::Result<()> {
    /// use futures::StreamExt;
    ///
    /// let mut events = nsfs::RunDir::default().monitor()?;
    /// while let Some(event) = events.next().await {
    ///     println!("{:?}", event?);
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # References
    ///
    /// `inotify(7)`, `proc_pid_mountinfo(5)` (on polling the mount table).
    #[doc(alias = "ip netns monitor")]
    #[doc(alias = "inotify")]
    pub fn monitor(&self) -> Result<Monitor> {
        self.monitor_with(true)
    }

    /// [`monitor`](RunDir::monitor), optionally without polling the mount
    /// table (to test the timer fallback).
    fn monitor_with(&self, poll_mounts: bool) -> Result<Monitor> {
        let path = self.path().to_path_buf();
        let fail = |source: io::Error| Error::Monitor {
            path: path.clone(),
            source,
        };
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(fail(io::Error::other(
                "RunDir::monitor needs a Tokio runtime",
            )));
        }
        match fs::DirBuilder::new()
            .mode(0o755)
            .recursive(true)
            .create(&path)
        {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(fail(e)),
        }
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)
            .map_err(|e| fail(e.into()))?;
        let mask = AddWatchFlags::IN_CREATE
            | AddWatchFlags::IN_DELETE
            | AddWatchFlags::IN_MOVED_FROM
            | AddWatchFlags::IN_MOVED_TO
            | AddWatchFlags::IN_DELETE_SELF
            | AddWatchFlags::IN_MOVE_SELF
            | AddWatchFlags::IN_ONLYDIR;
        inotify.add_watch(&path, mask).map_err(|e| fail(e.into()))?;
        let inotify = sys::register(InotifyFd(inotify), Interest::READABLE).map_err(fail)?;
        let mountinfo = fs::File::open("/proc/self/mountinfo")
            .and_then(|file| {
                if poll_mounts { Ok(file) } else { Err(io::Error::other("not polling mounts")) }
            })
            .and_then(|file| sys::register(file, Interest::PRIORITY))
            .inspect_err(|err| {
                tracing::debug!(%err, "cannot poll /proc/self/mountinfo; monitor falls back to a timer");
            })
            .ok();
        // Watch first, then read: an entry made in between is seen twice, which
        // the bookkeeping tolerates; one made before is in the listing.
        let mut known = HashSet::new();
        let mut pending = VecDeque::new();
        for entry in self.list()? {
            if entry.state == EntryState::Mounted {
                known.insert(entry.name);
            } else {
                pending.push_back(entry.name);
            }
        }
        let state = State {
            dir: self.clone(),
            inotify,
            mountinfo,
            known,
            pending,
            queue: VecDeque::new(),
            done: false,
            backoff: FALLBACK_FIRST,
        };
        let inner = futures::stream::unfold(state, |mut state| async move {
            let item = state.next().await?;
            Some((item, state))
        });
        Ok(Monitor {
            path,
            inner: Box::pin(inner),
        })
    }
}

const FALLBACK_FIRST: Duration = Duration::from_millis(5);
const FALLBACK_MAX: Duration = Duration::from_secs(1);

struct State {
    dir: RunDir,
    inotify: AsyncFd<InotifyFd>,
    mountinfo: Option<AsyncFd<fs::File>>,
    /// Names reported as added, or mounted when the monitor started.
    known: HashSet<NsName>,
    /// Entries seen, not mounted yet, in the order they appeared.
    pending: VecDeque<NsName>,
    /// Events (and a final error) not returned yet, in order.
    queue: VecDeque<Result<RunDirEvent>>,
    /// No more reading: the stream ends once `queue` is drained.
    done: bool,
    backoff: Duration,
}

impl State {
    /// The next event; `None` once the stream has ended.
    async fn next(&mut self) -> Option<Result<RunDirEvent>> {
        loop {
            if let Some(item) = self.queue.pop_front() {
                return Some(item);
            }
            if self.done {
                return None;
            }
            let waiting = !self.pending.is_empty();
            tokio::select! {
                biased;
                ready = self.inotify.readable() => match ready {
                    Ok(mut guard) => match guard.get_inner().0.read_events() {
                        Ok(events) => self.apply(events),
                        Err(nix::Error::EAGAIN) => guard.clear_ready(),
                        Err(e) => self.fail(e.into()),
                    },
                    Err(e) => self.fail(e),
                },
                ready = wait_mountinfo(self.mountinfo.as_ref()), if waiting => {
                    if let Err(err) = ready {
                        tracing::debug!(%err, "polling /proc/self/mountinfo failed; monitor falls back to a timer");
                        self.mountinfo = None;
                    }
                    self.recheck();
                }
                () = tokio::time::sleep(self.backoff), if waiting && self.mountinfo.is_none() => {
                    self.backoff = (self.backoff * 2).min(FALLBACK_MAX);
                    self.recheck();
                }
            }
        }
    }

    /// Ends the stream with `source`, after the events already queued.
    fn fail(&mut self, source: io::Error) {
        self.done = true;
        self.queue.push_back(Err(Error::Monitor {
            path: self.dir.path().to_path_buf(),
            source,
        }));
    }

    fn apply(&mut self, events: Vec<InotifyEvent>) {
        for event in events {
            let mask = event.mask;
            if mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
                self.resync();
                continue;
            }
            if mask.intersects(
                AddWatchFlags::IN_DELETE_SELF
                    | AddWatchFlags::IN_MOVE_SELF
                    | AddWatchFlags::IN_UNMOUNT
                    | AddWatchFlags::IN_IGNORED,
            ) {
                self.fail(io::Error::new(
                    io::ErrorKind::NotFound,
                    "the run directory was removed, moved or unmounted",
                ));
                return;
            }
            if mask.contains(AddWatchFlags::IN_ISDIR) {
                continue;
            }
            let Some(name) = event
                .name
                .as_deref()
                .and_then(|n| NsName::from_os_str(n).ok())
            else {
                continue;
            };
            if mask.intersects(AddWatchFlags::IN_CREATE | AddWatchFlags::IN_MOVED_TO) {
                self.appeared(name);
            } else if mask.intersects(AddWatchFlags::IN_DELETE | AddWatchFlags::IN_MOVED_FROM) {
                self.disappeared(&name);
            }
        }
    }

    /// An entry appeared: report it if mounted, else hold it back.
    fn appeared(&mut self, name: NsName) {
        if self.known.contains(&name) || self.pending.contains(&name) {
            // Seen by the initial listing as well.
            return;
        }
        if is_mounted(&self.dir.entry(&name)) {
            self.known.insert(name.clone());
            self.queue.push_back(Ok(RunDirEvent::Added(name)));
        } else {
            self.pending.push_back(name);
            self.backoff = FALLBACK_FIRST;
        }
    }

    /// An entry went away: report it only if it was reported (or known).
    fn disappeared(&mut self, name: &NsName) {
        if self.known.remove(name) {
            self.queue.push_back(Ok(RunDirEvent::Removed(name.clone())));
        } else {
            self.pending.retain(|p| p != name);
        }
    }

    /// The mount table changed (or the timer fired): report the pending
    /// entries that are mounted now, in the order they appeared.
    fn recheck(&mut self) {
        let pending = std::mem::take(&mut self.pending);
        for name in pending {
            if is_mounted(&self.dir.entry(&name)) {
                self.known.insert(name.clone());
                self.queue.push_back(Ok(RunDirEvent::Added(name)));
            } else {
                // Still a placeholder (or gone: its removal event follows).
                self.pending.push_back(name);
            }
        }
    }

    /// Events were lost: read the directory again and say so.
    fn resync(&mut self) {
        tracing::warn!(
            run_dir = %self.dir.path().display(),
            "run-directory monitor overran (inotify queue overflow): events were lost, re-reading the directory"
        );
        match self.dir.list() {
            Ok(entries) => {
                self.known.clear();
                self.pending.clear();
                let mut now = Vec::new();
                for entry in entries {
                    match entry.state {
                        EntryState::Mounted => {
                            self.known.insert(entry.name.clone());
                            now.push(entry.name);
                        }
                        EntryState::Stale => self.pending.push_back(entry.name),
                    }
                }
                self.queue.push_back(Ok(RunDirEvent::Resync(now)));
            }
            Err(err) => {
                self.done = true;
                self.queue.push_back(Err(err));
            }
        }
    }
}

/// Waits until the mount table changes. Never resolves without a mountinfo fd
/// (the timer branch runs instead).
async fn wait_mountinfo(mountinfo: Option<&AsyncFd<fs::File>>) -> io::Result<()> {
    let Some(fd) = mountinfo else {
        return std::future::pending().await;
    };
    let mut guard = fd.ready(Interest::PRIORITY).await?;
    // The kernel reports each change once per poll (it records the mount
    // table's event count at each poll), so clearing is right: a later change
    // makes it ready again.
    guard.clear_ready();
    Ok(())
}

/// Whether a namespace is mounted on `path` (what [`RunDir::list`] calls
/// [`EntryState::Mounted`]).
fn is_mounted(path: &Path) -> bool {
    statfs(path).is_ok_and(|st| st.filesystem_type() == NSFS_MAGIC)
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsRawFd;

    use futures::StreamExt;
    use nix::mount::{MntFlags, MsFlags, mount, umount2};

    use super::*;
    use crate::Executor;

    /// Without the mount table to poll, the timer still reports a namespace
    /// mounted late on a placeholder.
    #[tokio::test]
    async fn timer_fallback_reports_a_late_mount() {
        assert!(nix::unistd::geteuid().is_root(), "this test needs root");
        let path = PathBuf::from(format!("/etc/netns/.nsfs-unit-{}", std::process::id()));
        let dir = RunDir::new(&path);
        let mut events = dir.monitor_with(false).unwrap();
        let late = NsName::new("late").unwrap();
        fs::write(dir.entry(&late), b"").unwrap();
        let (ns, ()) = Executor::global().unwrap().run_in_new(|| ()).await.unwrap();
        let fd = ns.try_clone_fd().unwrap();
        let source = format!("/proc/self/fd/{}", fd.as_raw_fd());
        let entry = dir.entry(&late);
        mount(
            Some(source.as_str()),
            &entry,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .unwrap();
        let next = tokio::time::timeout(Duration::from_secs(20), events.next()).await;
        assert!(
            matches!(next, Ok(Some(Ok(RunDirEvent::Added(ref n)))) if *n == late),
            "{next:?}"
        );
        umount2(&entry, MntFlags::MNT_DETACH).unwrap();
        fs::remove_file(&entry).unwrap();
        let next = tokio::time::timeout(Duration::from_secs(20), events.next()).await;
        assert!(
            matches!(next, Ok(Some(Ok(RunDirEvent::Removed(ref n)))) if *n == late),
            "{next:?}"
        );
        fs::remove_dir(&path).unwrap();
    }
}
