//! What the view shows: the state of each namespace at one moment
//! ([`NsView`], [`Snapshot`]), how current it is ([`NsStatus`]), and the
//! changes between moments ([`Change`], [`Changes`]). Plain values: no
//! sockets, no tasks.

use std::collections::BTreeMap;
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures::Stream;

use crate::model::{Address, Link, NsState, Object, Route};
use crate::view::Namespace;
#[cfg(doc)]
use crate::view::View;

/// How current the view of one namespace is.
///
/// # Examples
///
/// ```no_run
/// # fn demo(v: &nsdb::NsView) {
/// if !v.status().is_live() { eprintln!("not current: {:?}", v.status()); }
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NsStatus {
    /// Kept current from events.
    Live,
    /// A resync is running (after an overrun or an interrupted dump); the
    /// state is the last known one.
    Resyncing,
    /// The view lost track (the connection died, a resync failed): the state
    /// is the last known one and will not change.
    Stale {
        /// Why.
        reason: String,
    },
    /// The namespace was removed from the run directory while viewed: the
    /// state is the last known one. Its event socket is closed; the entry
    /// (and its dump socket, which keeps the namespace object alive)
    /// stays until [`View::remove`].
    Removed,
}

impl NsStatus {
    /// Whether the state is current.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(nsdb::NsStatus::Live.is_live());
    /// ```
    pub fn is_live(&self) -> bool {
        matches!(self, NsStatus::Live)
    }

    /// Live or resyncing: events are being followed.
    pub(crate) fn is_followed(&self) -> bool {
        matches!(self, NsStatus::Live | NsStatus::Resyncing)
    }
}

/// The other end of a link tied to a link in another namespace (a veth
/// peer), from `IFLA_LINK` and `IFLA_LINK_NETNSID`.
///
/// # Examples
///
/// ```no_run
/// # fn demo(v: &nsdb::NsView, l: &nsdb::Link) {
/// if let Some(p) = v.peer(l) { println!("peer index {} in {:?}", p.index, p.namespace); }
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Peer {
    /// The peer's index in its namespace.
    pub index: u32,
    /// The peer's namespace, when the view covers it (`None` if it lives in
    /// a namespace the view does not know).
    pub namespace: Option<Namespace>,
}

/// The view of one namespace at one moment (cheap to clone).
///
/// # Examples
///
/// ```no_run
/// # fn demo(snap: nsdb::Snapshot) {
/// let v = snap.namespace(&nsdb::Namespace::Host).unwrap();
/// println!("{} links, {} addresses", v.links().count(), v.addresses().count());
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct NsView {
    pub(crate) state: Arc<NsState>,
    pub(crate) status: NsStatus,
    /// The namespace ids of `ns`, mapped to the namespaces of the view.
    pub(crate) nsids: Arc<BTreeMap<i32, Namespace>>,
    pub(crate) ns: Namespace,
}

impl NsView {
    /// Which namespace this is.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn demo(v: &nsdb::NsView) { println!("{}", v.namespace()); }
    /// ```
    pub fn namespace(&self) -> &Namespace {
        &self.ns
    }

    /// How current it is.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn demo(v: &nsdb::NsView) { assert!(v.status().is_live()); }
    /// ```
    pub fn status(&self) -> &NsStatus {
        &self.status
    }

    /// The whole state (links, addresses, routes), to compare with a dump.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(view: nsdb::View, ns: nsdb::Namespace) -> nsdb::Result<()> {
    /// let fresh = view.dump(&ns).await?;
    /// assert_eq!(view.snapshot().namespace(&ns).unwrap().state(), &fresh);
    /// # Ok(()) }
    /// ```
    pub fn state(&self) -> &NsState {
        &self.state
    }

    /// The links, by index.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn demo(v: &nsdb::NsView) { for l in v.links() { println!("{}", l.name); } }
    /// ```
    pub fn links(&self) -> impl Iterator<Item = &Link> {
        self.state.links.values()
    }

    /// The link named `name`.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn demo(v: &nsdb::NsView) { assert!(v.link("lo").is_some()); }
    /// ```
    pub fn link(&self, name: &str) -> Option<&Link> {
        self.state.link_by_name(name)
    }

    /// The link with index `index`.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn demo(v: &nsdb::NsView) { assert_eq!(v.link_by_index(1).unwrap().name, "lo"); }
    /// ```
    pub fn link_by_index(&self, index: u32) -> Option<&Link> {
        self.state.links.get(&index)
    }

    /// All addresses.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn demo(v: &nsdb::NsView) { for a in v.addresses() { println!("{}", a.local); } }
    /// ```
    pub fn addresses(&self) -> impl Iterator<Item = &Address> {
        self.state.addresses.values()
    }

    /// The addresses of the link with index `index`.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn demo(v: &nsdb::NsView) { assert_eq!(v.addresses_of(1).count(), 2); }
    /// ```
    pub fn addresses_of(&self, index: u32) -> impl Iterator<Item = &Address> {
        self.state
            .addresses
            .values()
            .filter(move |a| a.index == index)
    }

    /// All routes.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn demo(v: &nsdb::NsView) { for r in v.routes() { println!("{}", r.key()); } }
    /// ```
    pub fn routes(&self) -> impl Iterator<Item = &Route> {
        self.state.routes.values()
    }

    /// The other end of `link` when it is tied to a link in another
    /// namespace (`IFLA_LINK_NETNSID` present), with that namespace's name
    /// when the view covers it.
    ///
    /// The name comes a moment after the link: the view reads the peer link
    /// from the other side by its namespace id, then asks the namespaces
    /// holding a link with that index and hardware address (almost always
    /// one) for their id. A peer whose namespace joins the view later is
    /// named when it joins. Wait for it with [`View::wait_for`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn demo(v: &nsdb::NsView) {
    /// let veth = v.link("v0p0").unwrap();
    /// let peer = v.peer(veth).unwrap();
    /// assert_eq!(peer.namespace, Some(nsdb::Namespace::named("test").unwrap()));
    /// # }
    /// ```
    pub fn peer(&self, link: &Link) -> Option<Peer> {
        let id = link.link_netnsid?;
        Some(Peer {
            index: link.link?,
            namespace: self.nsids.get(&id).cloned(),
        })
    }
}

/// A consistent picture of every namespace of a view, taken at one moment
/// (no event is half-applied in it).
///
/// # Examples
///
/// ```no_run
/// # fn demo(view: nsdb::View) {
/// let snap = view.snapshot();
/// for v in snap.namespaces() { println!("{}: {} links", v.namespace(), v.links().count()); }
/// # }
/// ```
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub(crate) namespaces: BTreeMap<Namespace, NsView>,
}

impl Snapshot {
    /// The view of one namespace.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn demo(s: nsdb::Snapshot) { assert!(s.namespace(&nsdb::Namespace::Host).is_some()); }
    /// ```
    pub fn namespace(&self, ns: &Namespace) -> Option<&NsView> {
        self.namespaces.get(ns)
    }

    /// Every namespace, in name order (the host first).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn demo(s: nsdb::Snapshot) { println!("{}", s.namespaces().count()); }
    /// ```
    pub fn namespaces(&self) -> impl Iterator<Item = &NsView> {
        self.namespaces.values()
    }

    /// The link named `name` in `ns`.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn demo(s: nsdb::Snapshot) { assert!(s.link(&nsdb::Namespace::Host, "lo").is_some()); }
    /// ```
    pub fn link(&self, ns: &Namespace, name: &str) -> Option<&Link> {
        self.namespaces.get(ns)?.link(name)
    }

    /// The link with index `index` in `ns`.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn demo(s: nsdb::Snapshot) { assert!(s.link_by_index(&nsdb::Namespace::Host, 1).is_some()); }
    /// ```
    pub fn link_by_index(&self, ns: &Namespace, index: u32) -> Option<&Link> {
        self.namespaces.get(ns)?.link_by_index(index)
    }
}

/// Why a namespace was dumped again.
///
/// # Examples
///
/// ```no_run
/// # fn demo(c: nsdb::Change) {
/// if let nsdb::Change::Resynced { reason: nsdb::ResyncReason::Overrun, .. } = c { eprintln!("events were lost"); }
/// # }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResyncReason {
    /// The event socket overran (`ENOBUFS`): events were lost.
    Overrun,
    /// A dump was flagged inconsistent (`NLM_F_DUMP_INTR`) and was redone.
    DumpInterrupted,
}

/// One change in the view, in the order the view applied them.
///
/// Applying every change in order to an empty view, starting when the
/// [`Changes`] stream was made, reproduces [`View::snapshot`] (unless a
/// [`Change::Lagged`] says some were skipped: then take a new snapshot).
///
/// # Examples
///
/// ```no_run
/// # fn demo(c: nsdb::Change) {
/// match c {
///     nsdb::Change::Changed { ns, old: nsdb::Object::Link(o), new: nsdb::Object::Link(n) } => {
///         println!("{ns}: {} mtu {:?} -> {:?}", n.name, o.mtu, n.mtu);
///     }
///     other => println!("{other:?}"),
/// }
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Change {
    /// An object appeared.
    Added {
        /// Where.
        ns: Namespace,
        /// What.
        object: Object,
    },
    /// An object changed.
    Changed {
        /// Where.
        ns: Namespace,
        /// Before.
        old: Object,
        /// After.
        new: Object,
    },
    /// An object went away.
    Removed {
        /// Where.
        ns: Namespace,
        /// What it was.
        object: Object,
    },
    /// A namespace joined the view (its objects follow as `Added`).
    NamespaceAdded {
        /// Which.
        ns: Namespace,
    },
    /// A namespace left the run directory (or the view).
    NamespaceRemoved {
        /// Which.
        ns: Namespace,
    },
    /// A namespace was dumped again; the differences were reported as
    /// `Added`/`Changed`/`Removed` just before this.
    Resynced {
        /// Which.
        ns: Namespace,
        /// Why.
        reason: ResyncReason,
    },
    /// The view lost track of a namespace (see [`NsStatus::Stale`]).
    Stale {
        /// Which.
        ns: Namespace,
        /// Why.
        reason: String,
    },
    /// This stream fell behind and `missed` changes were dropped: take a new
    /// snapshot.
    Lagged {
        /// How many.
        missed: u64,
    },
}

/// A `Stream` of [`Change`]s (see [`View::changes`]).
///
/// # Examples
///
/// ```no_run
/// # async fn demo(view: nsdb::View) {
/// use futures::StreamExt;
/// let mut changes = view.changes();
/// while let Some(change) = changes.next().await { println!("{change:?}"); }
/// # }
/// ```
pub struct Changes {
    pub(crate) inner: Pin<Box<dyn Stream<Item = Change> + Send>>,
}

impl fmt::Debug for Changes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Changes").finish_non_exhaustive()
    }
}

impl Stream for Changes {
    type Item = Change;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Change>> {
        self.inner.as_mut().poll_next(cx)
    }
}
