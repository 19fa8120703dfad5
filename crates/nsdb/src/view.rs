//! The [`View`] handle: which namespaces it covers ([`Builder`]), adding
//! and removing them, snapshots, the change stream, waits, and the sockets
//! each namespace gets. The tasks that keep it current are in `follow.rs`,
//! the values it hands out in `snapshot.rs`.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use nsfs::{EntryState, NetNs, NsId, NsName, RunDir};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;
use tracing::field::Empty;

use crate::error::{Error, Result};
use crate::follow::{follow, watch_run_dir};
use crate::model::{Delta, NsState};
use crate::nl::{self, DumpLock, DumpPart};
use crate::peers::{self, Peers};
use crate::snapshot::{Change, Changes, NsStatus, NsView, ResyncReason, Snapshot};
use crate::trace;

/// A namespace the view covers: the host's (the one this process started
/// in) or one named in the run directory.
///
/// This is the *key* a [`View`] files a namespace under, not a way to name
/// one to open: that is [`nsfs::Target`] (also `netns::Target` and
/// `nsproc::Target`: a name, path, pid or open namespace). A view needs a
/// key that stays the same for the namespace's life in the view, can be
/// compared, sorted and hashed, and holds no fd: so only the host and names
/// in the run directory (the view follows the directory to add and drop
/// them), and `Host` has no `Target` counterpart. The name is validated as
/// a `Target`'s name is ([`nsfs::NsName`]).
///
/// # Examples
///
/// ```
/// let ns = nsdb::Namespace::named("test").unwrap();
/// assert_eq!(ns.to_string(), "test");
/// assert_eq!(nsdb::Namespace::Host.to_string(), "(host)");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Namespace {
    /// The namespace the process started in (`nsfs::Executor::home`).
    Host,
    /// A namespace named in the run directory (`/run/netns/NAME`).
    Named(NsName),
}

impl Namespace {
    /// A named namespace; the name is validated first.
    ///
    /// # Errors
    ///
    /// `nsfs::Error::InvalidName` for an empty name, `.`, `..`, a name with
    /// `/` or NUL, or one longer than 255 bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(nsdb::Namespace::named("a/b").is_err());
    /// ```
    pub fn named(name: &str) -> std::result::Result<Namespace, nsfs::Error> {
        Ok(Namespace::Named(NsName::new(name)?))
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Namespace::Host => f.write_str("(host)"),
            Namespace::Named(n) => write!(f, "{n}"),
        }
    }
}

/// Options of a [`View`] (see [`View::builder`]).
///
/// # Examples
///
/// ```no_run
/// # async fn demo() -> nsdb::Result<()> {
/// let view = nsdb::View::builder()
///     .namespace(nsdb::Namespace::named("test").unwrap())
///     .receive_buffer(1 << 20)
///     .build()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Builder {
    run_dir: RunDir,
    namespaces: Vec<Namespace>,
    all: bool,
    receive_buffer: Option<usize>,
    /// The backstop's period, if the user set one.
    poll: Option<Duration>,
    capacity: usize,
}

impl Builder {
    /// Covers `ns` too.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let b = nsdb::View::builder().namespace(nsdb::Namespace::Host);
    /// ```
    pub fn namespace(mut self, ns: Namespace) -> Builder {
        self.namespaces.push(ns);
        self
    }

    /// Covers every namespace of the run directory, now and later:
    /// namespaces that appear are added, namespaces removed are dropped.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let b = nsdb::View::builder().all_namespaces();
    /// ```
    pub fn all_namespaces(mut self) -> Builder {
        self.all = true;
        self
    }

    /// The run directory named namespaces live in (default `/run/netns`).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let b = nsdb::View::builder().run_dir(nsfs::RunDir::new("/var/run/docker/netns"));
    /// ```
    pub fn run_dir(mut self, dir: RunDir) -> Builder {
        self.run_dir = dir;
        self
    }

    /// The receive buffer of each event socket, in bytes (`SO_RCVBUF`; the
    /// kernel doubles it). Default: the system's. A small one overruns
    /// sooner; every overrun is followed by a resync.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let b = nsdb::View::builder().receive_buffer(4 << 20);
    /// ```
    pub fn receive_buffer(mut self, bytes: usize) -> Builder {
        self.receive_buffer = Some(bytes);
        self
    }

    /// How often the run directory is checked for namespaces that appeared
    /// or went away. nsfs's run-directory monitor reports them at once; this
    /// timer is the backstop, and the only source when the monitor cannot
    /// be set up. Each round checks every viewed name (one `stat` each,
    /// about 6 us: 6 ms for a view of 1,000 namespaces). Default: 1 s while
    /// the monitor runs, 100 ms without it.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let b = nsdb::View::builder().poll_interval(std::time::Duration::from_millis(20));
    /// ```
    pub fn poll_interval(mut self, every: Duration) -> Builder {
        self.poll = Some(every);
        self
    }

    /// How many changes a slow [`Changes`] stream may fall behind before it
    /// gets [`Change::Lagged`] (default 1024; each slot costs a few hundred
    /// bytes).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let b = nsdb::View::builder().change_capacity(1 << 16);
    /// ```
    pub fn change_capacity(mut self, changes: usize) -> Builder {
        self.capacity = changes.max(1);
        self
    }

    /// Opens every namespace, subscribes to its events, dumps it, and starts
    /// following it. Returns once every listed namespace is in the view.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future drops what was set up so far; nothing outlives it.
    ///
    /// # Errors
    ///
    /// [`Error::Namespace`] if a namespace cannot be opened, [`Error::Socket`]
    /// or [`Error::Dump`] if its netlink set-up fails.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo() -> nsdb::Result<()> {
    /// let view = nsdb::View::builder().namespace(nsdb::Namespace::Host).build().await?;
    /// # Ok(()) }
    /// ```
    pub async fn build(self) -> Result<View> {
        let span = tracing::debug_span!(
            "build",
            namespaces = self.namespaces.len(),
            all = self.all,
            outcome = Empty,
            error = Empty,
        );
        trace::traced(span, self.build_view()).await
    }

    async fn build_view(self) -> Result<View> {
        let (changes, _) = broadcast::channel(self.capacity);
        let (generation, _) = watch::channel(0u64);
        let inner = Arc::new(Inner {
            shared: Mutex::new(Shared::default()),
            changes,
            generation,
            options: self.clone(),
            watcher: Mutex::new(None),
            peers: Mutex::new(Peers::default()),
        });
        let view = View { inner };
        // Watch before listing, so a namespace added in between is not missed.
        let monitor = match self.run_dir.monitor() {
            Ok(m) => Some(m),
            Err(e) => {
                tracing::debug!(error = %e, "no run-directory monitor: polling only");
                None
            }
        };
        // Namespaces are added concurrently, a bounded number at a time:
        // each costs a few socket set-ups (on the namespace threads) and
        // three dumps, and one add does not wait for another.
        futures::stream::iter(self.namespaces.iter().cloned())
            .map(|ns| view.add(ns))
            .buffer_unordered(BUILD_CONCURRENCY)
            .try_collect::<()>()
            .await?;
        if self.all {
            let listed = self.run_dir.list().map_err(|source| Error::Namespace {
                ns: Namespace::Host,
                source,
            })?;
            let named = listed
                .into_iter()
                .filter(|e| e.state == EntryState::Mounted)
                .map(|e| Namespace::Named(e.name));
            futures::stream::iter(named)
                .map(|ns| view.add(ns))
                .buffer_unordered(BUILD_CONCURRENCY)
                // Gone meanwhile: the watcher sorts it out.
                .for_each(|_| async {})
                .await;
        }
        let weak = Arc::downgrade(&view.inner);
        let task = tokio::spawn(watch_run_dir(
            weak,
            self.run_dir.clone(),
            self.all,
            self.poll,
            monitor,
        ));
        *lock(&view.inner.watcher) = Some(task);
        Ok(view)
    }
}

/// The sockets of a namespace made on first use.
#[derive(Clone, Copy, Debug)]
enum Lazy {
    /// Transactions' requests.
    Request,
    /// What [`View::handle`] hands out.
    User,
}

/// How many namespaces [`Builder::build`] adds at once.
const BUILD_CONCURRENCY: usize = 32;

/// One namespace's bookkeeping. No fd of the namespace is kept: it is
/// opened again by name (and checked to be the same inode) when one is
/// needed (see [`Inner::open_netns`]).
pub(crate) struct Entry {
    pub(crate) view: NsView,
    pub(crate) id: NsId,
    /// The request socket of transactions, made on first use.
    pub(crate) request: Option<rtnetlink::Handle>,
    /// The socket [`View::handle`] hands out, made on first use.
    pub(crate) user_handle: Option<rtnetlink::Handle>,
    /// The dump socket, also for single queries (a link, an nsid).
    pub(crate) dump_lock: DumpLock,
    /// Ends the event stream of the follow task.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) events_abort: futures::stream::AbortHandle,
    pub(crate) tasks: Vec<JoinHandle<()>>,
}

impl Drop for Entry {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// What the view's handle and its tasks share.
#[derive(Default)]
pub(crate) struct Shared {
    pub(crate) namespaces: BTreeMap<Namespace, Entry>,
}

/// The view itself: every [`View`] clone holds it, the follower tasks a
/// weak reference.
pub(crate) struct Inner {
    pub(crate) shared: Mutex<Shared>,
    pub(crate) changes: broadcast::Sender<Change>,
    /// Bumped after every change of the state: what [`View::wait_for`] waits on.
    pub(crate) generation: watch::Sender<u64>,
    pub(crate) options: Builder,
    pub(crate) watcher: Mutex<Option<JoinHandle<()>>>,
    /// The index of links by key and the namespace ids waiting for a peer
    /// (`peers.rs`). Lock order: `shared`, then `peers` (never `shared`
    /// while holding `peers`); what must be atomic with the view's state
    /// (filing a link, waiting for one) is done holding both.
    pub(crate) peers: Mutex<Peers>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(t) = lock(&self.watcher).take() {
            t.abort();
        }
    }
}

/// Locks `m`, through a poisoning (the state stays consistent: every
/// update is made under one lock and cannot panic half-way).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Inner {
    /// Sends `deltas` of `ns` on the change stream (and files its link
    /// changes in the index of peers). Called with `shared` locked.
    pub(crate) fn publish(&self, ns: &Namespace, deltas: Vec<Delta>) {
        lock(&self.peers).apply(ns, &deltas);
        for d in deltas {
            let change = match d {
                Delta::Added(object) => Change::Added {
                    ns: ns.clone(),
                    object,
                },
                Delta::Changed { old, new } => Change::Changed {
                    ns: ns.clone(),
                    old,
                    new,
                },
                Delta::Removed(object) => Change::Removed {
                    ns: ns.clone(),
                    object,
                },
            };
            let _ = self.changes.send(change);
        }
    }

    /// Tells waiters the state changed.
    pub(crate) fn bump(&self) {
        self.generation.send_modify(|g| *g += 1);
    }

    /// Opens `ns` again (a named one by its name, checked to still be the
    /// namespace `id`): the view keeps no namespace fd.
    pub(crate) fn open_netns(&self, ns: &Namespace, id: NsId) -> Result<NetNs> {
        let netns = match ns {
            Namespace::Host => nsfs::Executor::global().map(|e| e.home().clone()),
            Namespace::Named(name) => self.options.run_dir.open(name),
        }
        .map_err(|source| Error::Namespace {
            ns: ns.clone(),
            source,
        })?;
        if netns.id() != id {
            return Err(Error::Stale {
                ns: ns.clone(),
                reason: "the name now names another namespace".into(),
            });
        }
        Ok(netns)
    }

    /// Sets the status of `ns` (a stale one is reported as a change).
    pub(crate) fn set_status(&self, ns: &Namespace, status: NsStatus) {
        let mut shared = lock(&self.shared);
        if let Some(e) = shared.namespaces.get_mut(ns) {
            if let NsStatus::Stale { reason } = &status {
                let _ = self.changes.send(Change::Stale {
                    ns: ns.clone(),
                    reason: reason.clone(),
                });
            }
            e.view.status = status;
        }
        drop(shared);
        self.bump();
    }
}

/// A live view of the links, addresses and routes of one or more network
/// namespaces, kept current from rtnetlink events (cheap to clone; every
/// clone is the same view).
///
/// Each namespace has two netlink sockets made inside it by the `netns`
/// facade, and no other fd: an event socket (`netns::Events`) joined to the
/// link, address, route and nsid multicast groups (subscribed before the
/// first dump, so nothing is missed), and a dump socket
/// (`netns::NetlinkSocket`) read one datagram at a time, which also carries
/// the view's own single queries (a link read again, a namespace id). A
/// transaction's first commit in a namespace adds a request socket
/// (`netns::connection`), [`View::handle`] one more, on first use. A
/// veth's peer namespace is named from the link itself (see
/// [`NsView::peer`]): building a view is linear in its namespaces and
/// links, 32 namespaces set up at once. An overrun
/// of the event socket (`ENOBUFS`) or an interrupted dump (`NLM_F_DUMP_INTR`)
/// is followed by a full dump of that namespace; the differences are reported
/// as changes, then [`Change::Resynced`]. A namespace whose connection dies is
/// marked [`NsStatus::Stale`]; one removed from the run directory,
/// [`NsStatus::Removed`] (or dropped, in all-namespaces mode).
///
/// Dropping the last clone stops every task and closes every socket.
///
/// # Examples
///
/// ```no_run
/// # async fn demo() -> nsdb::Result<()> {
/// use std::time::Duration;
/// let test = nsdb::Namespace::named("test").unwrap();
/// let view = nsdb::View::builder().namespace(test.clone()).build().await?;
/// view.wait_for("v0p1 up in test", Duration::from_secs(5), |s| {
///     s.link(&test, "v0p1").is_some_and(|l| l.is_up())
/// })
/// .await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct View {
    pub(crate) inner: Arc<Inner>,
}

impl fmt::Debug for View {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shared = lock(&self.inner.shared);
        f.debug_struct("View")
            .field("namespaces", &shared.namespaces.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl View {
    /// A builder: say which namespaces to cover, then [`Builder::build`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo() -> nsdb::Result<()> {
    /// let view = nsdb::View::builder().all_namespaces().build().await?;
    /// # Ok(()) }
    /// ```
    pub fn builder() -> Builder {
        Builder {
            run_dir: RunDir::default(),
            namespaces: Vec::new(),
            all: false,
            receive_buffer: None,
            poll: None,
            capacity: 1024,
        }
    }

    /// Adds a namespace to the view: subscribes to its events, dumps it, and
    /// follows it from then on. Adding a namespace already followed does
    /// nothing; adding one that is [`NsStatus::Stale`] or
    /// [`NsStatus::Removed`] starts over (new sockets, new dump): the way to
    /// recover after its connection died.
    ///
    /// # Cancel safety
    ///
    /// If dropped before its dumps are done, the namespace is not added and
    /// nothing it set up outlives it; after that, it is added, and the
    /// naming of its peers goes on by itself.
    ///
    /// # Errors
    ///
    /// [`Error::Namespace`], [`Error::Socket`], [`Error::Dump`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(view: nsdb::View) -> nsdb::Result<()> {
    /// view.add(nsdb::Namespace::named("blue").unwrap()).await?;
    /// # Ok(()) }
    /// ```
    pub async fn add(&self, ns: Namespace) -> Result<()> {
        let span = tracing::debug_span!(
            "add",
            netns = %ns,
            inode = Empty,
            outcome = Empty,
            error = Empty,
        );
        trace::traced(span, self.add_namespace(ns)).await
    }

    async fn add_namespace(&self, ns: Namespace) -> Result<()> {
        if lock(&self.inner.shared)
            .namespaces
            .get(&ns)
            .is_some_and(|e| e.view.status.is_followed())
        {
            return Ok(());
        }
        let netns = match &ns {
            Namespace::Host => {
                nsfs::Executor::global()
                    .map(|e| e.home().clone())
                    .map_err(|source| Error::Namespace {
                        ns: ns.clone(),
                        source,
                    })?
            }
            Namespace::Named(name) => {
                self.inner
                    .options
                    .run_dir
                    .open(name)
                    .map_err(|source| Error::Namespace {
                        ns: ns.clone(),
                        source,
                    })?
            }
        };
        tracing::Span::current().record("inode", netns.id().ino);
        // Subscribe first, then dump: events that happen during the dump wait
        // in the queue and are applied after it.
        let events = nl::events(&ns, &netns, self.inner.options.receive_buffer).await?;
        // Ending the stream (a test's way to kill the event socket) makes
        // the namespace stale, as a failed socket does.
        let (events, events_abort) = futures::stream::abortable(events);
        let dump_lock = nl::dump_socket(&ns, &netns).await?;
        let id = netns.id();
        // The sockets keep the namespace alive; the fd is not kept.
        drop(netns);
        let mut state = NsState::default();
        let interrupted = nl::dump_into(
            &ns,
            &dump_lock,
            &[DumpPart::Links, DumpPart::Addresses, DumpPart::Routes],
            &mut state,
        )
        .await?;
        let weak = Arc::downgrade(&self.inner);
        let touched = {
            let mut shared = lock(&self.inner.shared);
            if shared
                .namespaces
                .get(&ns)
                .is_some_and(|e| e.view.status.is_followed())
            {
                return Ok(()); // added concurrently
            }
            // Started over: what was known of it before goes.
            let touched = match shared.namespaces.remove(&ns) {
                Some(old) => peers::forget_namespace(&self.inner, &mut shared, &ns, &old),
                None => Default::default(),
            };
            let _ = self
                .inner
                .changes
                .send(Change::NamespaceAdded { ns: ns.clone() });
            // Its objects, as `Added` (only if anyone listens: a big
            // namespace makes many).
            if self.inner.changes.receiver_count() > 0 {
                let initial = NsState::default().diff(&state);
                self.inner.publish(&ns, initial);
            }
            {
                // Filed under the same lock: an id waiting for one of these
                // links is woken, one resolved later finds them.
                let mut peers = lock(&self.inner.peers);
                for l in state.links.values() {
                    peers.add_link(&ns, l);
                }
            }
            if interrupted > 0 {
                let _ = self.inner.changes.send(Change::Resynced {
                    ns: ns.clone(),
                    reason: ResyncReason::DumpInterrupted,
                });
            }
            let task = tokio::spawn(follow(weak, ns.clone(), dump_lock.clone(), events));
            shared.namespaces.insert(
                ns.clone(),
                Entry {
                    view: NsView {
                        state: Arc::new(state),
                        status: NsStatus::Live,
                        nsids: Arc::default(),
                        ns: ns.clone(),
                    },
                    id,
                    request: None,
                    user_handle: None,
                    dump_lock,
                    events_abort,
                    tasks: vec![task],
                },
            );
            touched
        };
        self.inner.bump();
        // Names its peers, and the peers of others it was missing for: on a
        // task of its own, so that dropping this future half-way does not
        // leave an id neither named nor waiting.
        let mut todo: Vec<Namespace> = touched.into_iter().collect();
        todo.push(ns);
        let _ = peers::spawn_resolve(&self.inner, todo).await;
        Ok(())
    }

    /// Drops a namespace from the view (its sockets close). Returns whether
    /// it was there.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn demo(view: nsdb::View) {
    /// view.remove(&nsdb::Namespace::named("blue").unwrap());
    /// # }
    /// ```
    pub fn remove(&self, ns: &Namespace) -> bool {
        let touched = {
            let mut shared = lock(&self.inner.shared);
            shared
                .namespaces
                .remove(ns)
                .map(|old| peers::forget_namespace(&self.inner, &mut shared, ns, &old))
        };
        let removed = touched.is_some();
        // The ids that named it wait for it again (it may come back).
        if let Some(touched) = touched.filter(|t| !t.is_empty())
            && tokio::runtime::Handle::try_current().is_ok()
        {
            drop(peers::spawn_resolve(
                &self.inner,
                touched.into_iter().collect(),
            ));
        }
        if removed {
            let _ = self
                .inner
                .changes
                .send(Change::NamespaceRemoved { ns: ns.clone() });
            self.inner.bump();
        }
        removed
    }

    /// A consistent snapshot of every namespace (cheap: shares the state
    /// until the view changes).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn demo(view: nsdb::View) {
    /// let snap = view.snapshot();
    /// assert!(snap.link(&nsdb::Namespace::Host, "lo").is_some());
    /// # }
    /// ```
    pub fn snapshot(&self) -> Snapshot {
        let shared = lock(&self.inner.shared);
        Snapshot {
            namespaces: shared
                .namespaces
                .iter()
                .map(|(k, e)| (k.clone(), e.view.clone()))
                .collect(),
        }
    }

    /// A consistent snapshot of the namespaces that `keep` accepts: the
    /// others are not copied. `keep` sees every namespace once, in the
    /// order of [`Snapshot::namespaces`], under the view's lock: it must
    /// be quick and must not call the view. For a view of many namespaces
    /// of which a few matter (those that changed since an older snapshot,
    /// those an edit touched), this costs a pass over the namespaces and
    /// a copy of the few.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn demo(view: nsdb::View) {
    /// let blue = nsdb::Namespace::named("blue").unwrap();
    /// let snap = view.snapshot_where(|v| v.namespace() == &blue);
    /// assert!(snap.namespaces().count() <= 1);
    /// # }
    /// ```
    pub fn snapshot_where(&self, mut keep: impl FnMut(&NsView) -> bool) -> Snapshot {
        let shared = lock(&self.inner.shared);
        Snapshot {
            namespaces: shared
                .namespaces
                .iter()
                .filter(|(_, e)| keep(&e.view))
                .map(|(k, e)| (k.clone(), e.view.clone()))
                .collect(),
        }
    }

    /// The changes from now on, as a `Stream`.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(view: nsdb::View) {
    /// use futures::StreamExt;
    /// let mut changes = view.changes();
    /// if let Some(c) = changes.next().await { println!("{c:?}"); }
    /// # }
    /// ```
    pub fn changes(&self) -> Changes {
        let rx = self.inner.changes.subscribe();
        let stream = futures::stream::unfold(rx, |mut rx| async move {
            match rx.recv().await {
                Ok(c) => Some((c, rx)),
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    Some((Change::Lagged { missed }, rx))
                }
                Err(broadcast::error::RecvError::Closed) => None,
            }
        });
        Changes {
            inner: Box::pin(stream),
        }
    }

    /// Waits until `condition` holds on the view, at most `timeout`; returns
    /// the snapshot it held on. `what` names the condition in the error.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] if the condition did not hold in time.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(view: nsdb::View) -> nsdb::Result<()> {
    /// let test = nsdb::Namespace::named("test").unwrap();
    /// view.wait_for("v0p1 up", std::time::Duration::from_secs(5), |s| {
    ///     s.link(&test, "v0p1").is_some_and(|l| l.is_up())
    /// })
    /// .await?;
    /// # Ok(()) }
    /// ```
    pub async fn wait_for<F>(&self, what: &str, timeout: Duration, condition: F) -> Result<Snapshot>
    where
        F: FnMut(&Snapshot) -> bool,
    {
        self.wait_for_where(what, timeout, |_| true, condition)
            .await
    }

    /// [`wait_for`](View::wait_for) on snapshots of the namespaces `keep`
    /// accepts ([`snapshot_where`](View::snapshot_where)): for a condition
    /// on a few namespaces of many, without copying the others at every
    /// change.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] if the condition did not hold in time.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(view: nsdb::View) -> nsdb::Result<()> {
    /// let test = nsdb::Namespace::named("test").unwrap();
    /// view.wait_for_where(
    ///     "v0p1 up",
    ///     std::time::Duration::from_secs(5),
    ///     |v| v.namespace() == &test,
    ///     |s| s.link(&test, "v0p1").is_some_and(|l| l.is_up()),
    /// )
    /// .await?;
    /// # Ok(()) }
    /// ```
    pub async fn wait_for_where<K, F>(
        &self,
        what: &str,
        timeout: Duration,
        mut keep: K,
        mut condition: F,
    ) -> Result<Snapshot>
    where
        K: FnMut(&NsView) -> bool,
        F: FnMut(&Snapshot) -> bool,
    {
        let span = tracing::debug_span!(
            "wait_for",
            what = %what,
            timeout_ms = timeout.as_millis() as u64,
            outcome = Empty,
            error = Empty,
        );
        let mut rx = self.inner.generation.subscribe();
        let wait = async {
            loop {
                rx.borrow_and_update();
                let snap = self.snapshot_where(&mut keep);
                if condition(&snap) {
                    return snap;
                }
                if rx.changed().await.is_err() {
                    futures::future::pending::<()>().await;
                }
            }
        };
        trace::traced(span, async {
            tokio::time::timeout(timeout, wait)
                .await
                .map_err(|_| Error::Timeout {
                    what: what.to_owned(),
                    timeout,
                })
        })
        .await
    }

    /// A fresh dump of `ns`, made now on the view's dump socket (not the
    /// view's state): to check the view against the kernel.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads.
    ///
    /// # Errors
    ///
    /// [`Error::NotViewed`], [`Error::Dump`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(view: nsdb::View) -> nsdb::Result<()> {
    /// let fresh = view.dump(&nsdb::Namespace::Host).await?;
    /// println!("{} links", fresh.links.len());
    /// # Ok(()) }
    /// ```
    pub async fn dump(&self, ns: &Namespace) -> Result<NsState> {
        // Refuses a stale or removed namespace, as edits do.
        self.check_followed(ns)?;
        let dump_lock = lock(&self.inner.shared)
            .namespaces
            .get(ns)
            .map(|e| e.dump_lock.clone())
            .ok_or_else(|| Error::NotViewed { ns: ns.clone() })?;
        let mut state = NsState::default();
        nl::dump_into(
            ns,
            &dump_lock,
            &[DumpPart::Links, DumpPart::Addresses, DumpPart::Routes],
            &mut state,
        )
        .await?;
        Ok(state)
    }

    /// An `rtnetlink::Handle` on a netlink socket in `ns`, made on first use
    /// and kept with the view: for anything the view does not model
    /// (neighbours, rules, traffic control), or to change things directly.
    /// Changes made through it show in the view like any other, from the
    /// events.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: if dropped before it returns, no handle is kept.
    ///
    /// # Errors
    ///
    /// [`Error::NotViewed`]; [`Error::Stale`] if the view of `ns` is stale or
    /// the namespace was removed; [`Error::Namespace`]/[`Error::Socket`] if
    /// the socket cannot be made.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(view: nsdb::View) -> Result<(), Box<dyn std::error::Error>> {
    /// use futures::TryStreamExt;
    /// let handle = view.handle(&nsdb::Namespace::named("test")?).await?;
    /// let neighbours: Vec<_> = handle.neighbours().get().execute().try_collect().await?;
    /// # Ok(()) }
    /// ```
    pub async fn handle(&self, ns: &Namespace) -> Result<rtnetlink::Handle> {
        self.lazy_handle(ns, Lazy::User).await
    }

    /// The socket `which` of `ns`, made on first use.
    async fn lazy_handle(&self, ns: &Namespace, which: Lazy) -> Result<rtnetlink::Handle> {
        fn slot(e: &mut Entry, which: Lazy) -> &mut Option<rtnetlink::Handle> {
            match which {
                Lazy::Request => &mut e.request,
                Lazy::User => &mut e.user_handle,
            }
        }
        self.check_followed(ns)?;
        let (cached, id) = {
            let mut shared = lock(&self.inner.shared);
            let e = shared
                .namespaces
                .get_mut(ns)
                .ok_or_else(|| Error::NotViewed { ns: ns.clone() })?;
            (slot(e, which).clone(), e.id)
        };
        if let Some(h) = cached {
            return Ok(h);
        }
        let netns = self.inner.open_netns(ns, id)?;
        let handle = match which {
            Lazy::Request => nl::request_connection(ns, &netns).await?,
            Lazy::User => nl::plain_connection(ns, &netns).await?,
        };
        let mut shared = lock(&self.inner.shared);
        let e = shared
            .namespaces
            .get_mut(ns)
            .ok_or_else(|| Error::NotViewed { ns: ns.clone() })?;
        Ok(slot(e, which).get_or_insert(handle).clone())
    }

    /// Fails unless `ns` is viewed and followed (not stale, not removed).
    pub(crate) fn check_followed(&self, ns: &Namespace) -> Result<()> {
        let shared = lock(&self.inner.shared);
        let e = shared
            .namespaces
            .get(ns)
            .ok_or_else(|| Error::NotViewed { ns: ns.clone() })?;
        match &e.view.status {
            NsStatus::Stale { reason } => Err(Error::Stale {
                ns: ns.clone(),
                reason: reason.clone(),
            }),
            NsStatus::Removed => Err(Error::Stale {
                ns: ns.clone(),
                reason: "namespace removed".into(),
            }),
            _ => Ok(()),
        }
    }

    /// The handle of the view's own request socket for transactions
    /// (ext-ack, acks and `Done` forwarded: not for rtnetlink's verbs), made
    /// on first use.
    pub(crate) async fn request_handle(&self, ns: &Namespace) -> Result<rtnetlink::Handle> {
        self.lazy_handle(ns, Lazy::Request).await
    }

    /// The namespace `ns`, opened again (see [`Inner::open_netns`]).
    pub(crate) fn netns(&self, ns: &Namespace) -> Result<NetNs> {
        let id = self
            .inode(ns)
            .ok_or_else(|| Error::NotViewed { ns: ns.clone() })?;
        self.inner.open_netns(ns, id)
    }

    /// The identity of `ns` in the view.
    pub(crate) fn inode(&self, ns: &Namespace) -> Option<NsId> {
        lock(&self.inner.shared).namespaces.get(ns).map(|e| e.id)
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;

    use super::*;

    /// The event connection dying (here: its stream is ended) marks the namespace
    /// stale, says so on the change stream, and refuses edits.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dead_event_connection_marks_the_namespace_stale() {
        assert!(
            nix::unistd::geteuid().is_root(),
            "this test needs root (network namespaces)"
        );
        let dir = RunDir::default();
        let name = NsName::new("nsdb-unit-dead-conn").unwrap();
        dir.create(&name, nsfs::OpenMode::CreateExclusive)
            .await
            .unwrap();
        let ns = Namespace::Named(name.clone());
        let view = View::builder().namespace(ns.clone()).build().await.unwrap();
        let mut changes = view.changes();
        lock(&view.inner.shared).namespaces[&ns]
            .events_abort
            .abort();
        let snap = view
            .wait_for("stale", Duration::from_secs(5), |s| {
                matches!(s.namespace(&ns).unwrap().status(), NsStatus::Stale { .. })
            })
            .await
            .unwrap();
        // The last known state is still there, marked.
        assert!(snap.link(&ns, "lo").is_some());
        let said = tokio::time::timeout(Duration::from_secs(5), async {
            while let Some(c) = changes.next().await {
                if matches!(c, Change::Stale { .. }) {
                    return true;
                }
            }
            false
        })
        .await
        .unwrap();
        assert!(said);
        let mut tx = view.transaction();
        tx.link(&ns, "lo").unwrap().up();
        assert!(matches!(tx.commit().await, Err(Error::Stale { .. })));
        // Adding it again starts over.
        view.add(ns.clone()).await.unwrap();
        assert!(view.snapshot().namespace(&ns).unwrap().status().is_live());
        let mut tx = view.transaction();
        tx.link(&ns, "lo").unwrap().up();
        tx.commit().await.unwrap();
        drop(view);
        dir.remove(&name).await.unwrap();
    }
}
