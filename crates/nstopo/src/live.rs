//! A watched topology: an nsdb view over its namespaces, kept current by
//! netlink events, so that a diff reads nothing from the kernel and an apply
//! sends only the requests of what differs.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::time::Duration;

use netns::{Handle, NsName, OpenMode};
use nsdb::{Namespace, NsStatus, NsView, Snapshot, View};
use tracing::Instrument;

use crate::apply::{Options, Report, apply_plan, bounded, plan_for};
use crate::diff::{Change, Plan, Scope, compute_in, route_matches};
use crate::model::{Destination, IfAddr, MacAddr, Route, Topology};
use crate::state::{Handles, LiveLink, LiveNode, LiveState, link_group, marker, sysctl_path};
use crate::{Error, Result};

/// How long an apply waits for the view to show its changes.
const CONFIRM: Duration = Duration::from_secs(10);

/// `rtm_protocol` of the routes the kernel makes for addresses.
const RTPROT_KERNEL: u8 = 2;
/// `rtm_type` of unicast routes.
const RTN_UNICAST: u8 = 1;
/// The main routing table.
const RT_TABLE_MAIN: u32 = 254;
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;

fn view_err(op: impl Into<String>) -> impl FnOnce(nsdb::Error) -> Error {
    move |source| Error::Watch {
        op: op.into(),
        source: Box::new(source),
    }
}

fn ns_of(node: &str) -> Result<Namespace> {
    Namespace::named(node).map_err(|e| Error::Namespace {
        node: node.into(),
        op: "watch",
        source: Box::new(netns::Error::Namespace(e)),
    })
}

/// A running topology, watched: an [`nsdb::View`] over the namespaces it
/// declares or owns, kept current by the kernel's netlink events.
///
/// [`state`](Live::state), [`diff`](Live::diff) and [`plan`](Live::plan)
/// read the view's snapshot, never the kernel, so drift (a link deleted with
/// `ip`, an address added by hand, a namespace removed) shows without a
/// read; [`apply`](Live::apply) sends only the requests of what differs,
/// then waits until the view shows them, so the next diff starts from the
/// truth. Namespaces an apply creates join the view; removed ones leave it.
///
/// After the first apply, a diff compares only what may differ: the nodes
/// whose declaration changed (a link's change counts for both its ends),
/// whose view changed in what nstopo reads, or that the last apply's plan
/// named, with the neighbours their links need. Every other node
/// contributed nothing to the last plan and has not changed since, so it
/// contributes nothing now: the diff is the whole diff, and a change of one
/// link of a running 1,000-node topology costs the work of that link, not
/// of the thousand nodes.
///
/// Ownership is read from the kernel as [`apply`](crate::apply) reads it:
/// the [`marker`] on `lo`, the [`link_group`] of each link.
///
/// Sysctls are not announced by netlink: their values are read once by
/// [`watch`](Live::watch) and then follow what the applies set; a sysctl
/// changed by hand shows only after a new watch.
///
/// # Examples
///
/// ```no_run
/// # async fn demo(topo: nstopo::Topology) -> nstopo::Result<()> {
/// use nstopo::{Live, Options};
/// let mut live = Live::watch(&topo, Options::default()).await?;
/// // Someone ran `ip link del eth0` in a node: the diff shows it, no read.
/// for change in live.diff(&topo)? {
///     println!("drift: {change}");
/// }
/// let report = live.apply(&topo).await?; // repairs exactly that
/// assert!(live.diff(&topo)?.is_empty());
/// live.close().await;
/// # Ok(()) }
/// ```
pub struct Live {
    topology: String,
    view: View,
    options: Options,
    handles: Handles,
    sysctls: HashMap<String, BTreeMap<String, String>>,
    /// What the last apply's plan was made from: the next diff compares
    /// only what changed since.
    base: Option<Base>,
}

/// What a plan was made from: the declaration, the view of each namespace
/// it read, and the nodes its changes named.
///
/// A node that the plan did not name contributed nothing to it; if its
/// declaration (its own, and the links that end in it) and its view are
/// still the same, it contributes nothing to a diff now either, and the
/// diff leaves it out (see [`Scope`]): a change of one link of a running
/// 1,000-node topology reads and compares the nodes of that link and their
/// neighbours, not the thousand.
struct Base {
    /// The declaration compared.
    topo: Topology,
    /// The view of each namespace read. An [`NsView`] never changes (it
    /// is the namespace at one moment) and this one keeps its state alive:
    /// a view whose state is at the same address is the same state.
    views: BTreeMap<Namespace, NsView>,
    /// The nodes the plan's changes named (both ends of a veth).
    named: HashSet<String>,
}

/// Whether two views of a namespace show the same state (false may be
/// spurious: a state copied without a change).
fn same_view(old: &NsView, new: &NsView) -> bool {
    std::ptr::eq(old.state(), new.state()) && old.status() == new.status()
}

/// Whether two views of a namespace are the same [`LiveNode`]: equal in
/// everything [`live_node`] reads (status, links, the routes it may keep,
/// and the index, address and prefix of each address it keeps), without
/// deriving it.
fn same_for_nstopo(old: &NsView, new: &NsView) -> bool {
    fn addresses(v: &NsView) -> impl Iterator<Item = (u32, IpAddr, u8)> + '_ {
        v.addresses()
            .filter(|a| !link_local(a.local))
            .map(|a| (a.index, a.local, a.prefix_len))
    }
    fn routes(v: &NsView) -> impl Iterator<Item = &nsdb::Route> {
        v.routes().filter(|r| kept_route(r))
    }
    old.status() == new.status()
        && old.state().links == new.state().links
        && addresses(old).eq(addresses(new))
        && routes(old).eq(routes(new))
}

/// Whether [`live_node`] may keep a route: one in the main table, unicast,
/// not made by the kernel for an address.
fn kept_route(r: &nsdb::Route) -> bool {
    r.protocol != RTPROT_KERNEL && r.kind == RTN_UNICAST && r.table == RT_TABLE_MAIN
}

/// An IPv6 link-local address (left out of [`LiveLink::addresses`]).
fn link_local(a: IpAddr) -> bool {
    matches!(a, IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80)
}

/// The nodes a plan's changes name.
fn named(plan: &Plan) -> HashSet<String> {
    let mut out = HashSet::new();
    for c in &plan.changes {
        if let Change::CreateVeth { b, .. } = c {
            out.insert(b.node.clone());
        }
        out.insert(c.node().to_owned());
    }
    out
}

/// How two lists differ: the length of their common prefix and of their
/// common suffix (not overlapping the prefix). What lies between, in
/// either list, changed (or moved).
fn delta<T: PartialEq>(old: &[T], new: &[T]) -> (usize, usize) {
    let p = old.iter().zip(new).take_while(|(a, b)| a == b).count();
    let s = old[p..]
        .iter()
        .rev()
        .zip(new[p..].iter().rev())
        .take_while(|(a, b)| a == b)
        .count();
    (p, s)
}

/// What changed since a [`Base`]: the dirty nodes, and where the node and
/// link lists differ ([`delta`]).
struct Dirty {
    nodes: HashSet<String>,
    node_delta: (usize, usize),
    link_delta: (usize, usize),
    /// The views that changed (or joined) since the base: those of dirty
    /// nodes, and those that changed in nothing nstopo reads (an IPv6
    /// link-local address finishing duplicate address detection).
    changed: Snapshot,
    /// The namespaces that left the view since the base.
    gone: Vec<Namespace>,
}

/// What a plan read of the view: all of it (the first plan), or what
/// changed since the base.
enum Read {
    Whole(Snapshot),
    Since(Dirty),
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live")
            .field("topology", &self.topology)
            .field("handles", &self.handles.len())
            .finish_non_exhaustive()
    }
}

impl Live {
    /// Starts watching a topology: one view over every namespace it
    /// declares that exists and every other namespace of the run directory
    /// that carries its marker (one dump each, once), and its declared
    /// sysctls read once.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only reads; a dropped watch closes what it opened.
    ///
    /// # Errors
    ///
    /// [`Error::Watch`] if the view cannot be built, [`Error::Namespace`]
    /// if the run directory cannot be listed, [`Error::Sysctl`] if a
    /// declared sysctl cannot be read.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(topo: nstopo::Topology) -> nstopo::Result<()> {
    /// let live = nstopo::Live::watch(&topo, nstopo::Options::default()).await?;
    /// println!("{} namespaces watched", live.state()?.nodes.len());
    /// # Ok(()) }
    /// ```
    pub async fn watch(topo: &Topology, options: Options) -> Result<Live> {
        let span = tracing::debug_span!("watch", topology = %topo.name, outcome = tracing::field::Empty, error = tracing::field::Empty);
        let res = Live::start(topo, options).instrument(span.clone()).await;
        crate::trace_outcome(&span, &res);
        res
    }

    async fn start(topo: &Topology, options: Options) -> Result<Live> {
        let dir = options.run_dir.clone();
        let entries = dir.list().map_err(|source| Error::Namespace {
            node: dir.path().display().to_string(),
            op: "list",
            source: Box::new(netns::Error::Namespace(source)),
        })?;
        let mut builder = View::builder().run_dir(dir.clone());
        for e in &entries {
            builder = builder.namespace(Namespace::Named(e.name.clone()));
        }
        let view = builder.build().await.map_err(view_err("build the view"))?;
        // Namespaces neither declared nor owned leave the view.
        let mark = marker(&topo.name);
        let snap = view.snapshot();
        for nv in snap.namespaces() {
            let Namespace::Named(name) = nv.namespace() else {
                continue;
            };
            let owned = nv.link("lo").and_then(|l| l.alias.as_deref()) == Some(mark.as_str());
            if topo.node(name.as_str()).is_none() && !owned {
                view.remove(nv.namespace());
            }
        }
        let mut live = Live {
            topology: topo.name.clone(),
            view,
            options,
            handles: Handles::new(),
            sysctls: HashMap::new(),
            base: None,
        };
        // Declared sysctls, read once (netlink does not announce them).
        let viewed: HashSet<String> = live
            .view
            .snapshot()
            .namespaces()
            .map(|nv| nv.namespace().to_string())
            .collect();
        let want: Vec<(String, Vec<String>)> = topo
            .nodes
            .iter()
            .filter(|n| !n.sysctls.is_empty() && viewed.contains(&n.name))
            .map(|n| (n.name.clone(), n.sysctls.keys().cloned().collect()))
            .collect();
        live.open(want.iter().map(|(n, _)| n.as_str())).await?;
        for (node, keys) in want {
            let values = read_sysctls(&live.handles[&node], &node, keys).await?;
            live.sysctls.insert(node, values);
        }
        Ok(live)
    }

    /// The view the topology is watched through: for its change stream
    /// ([`View::changes`], drift as it happens) or for what nstopo does not
    /// model.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(live: nstopo::Live) {
    /// use futures::StreamExt;
    /// let mut changes = live.view().changes();
    /// while let Some(change) = changes.next().await {
    ///     println!("{change:?}");
    /// }
    /// # }
    /// ```
    pub fn view(&self) -> &View {
        &self.view
    }

    /// The live state of the topology, from the view's snapshot (no kernel
    /// read): what [`read_state`](crate::read_state) would read now.
    ///
    /// # Errors
    ///
    /// [`Error::Watch`] if the view lost a namespace's events (marked
    /// stale: watch again).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn demo(live: &nstopo::Live) -> nstopo::Result<()> {
    /// for (name, node) in &live.state()?.nodes {
    ///     println!("{name}: {} links", node.links.len());
    /// }
    /// # Ok(()) }
    /// ```
    pub fn state(&self) -> Result<LiveState> {
        self.state_of(&self.view.snapshot())
    }

    /// The live state of the namespaces of `snap`.
    fn state_of(&self, snap: &Snapshot) -> Result<LiveState> {
        let mut state = LiveState {
            topology: self.topology.clone(),
            nodes: BTreeMap::new(),
        };
        for nv in snap.namespaces() {
            if let Some((name, node)) = self.node(nv)? {
                state.nodes.insert(name, node);
            }
        }
        Ok(state)
    }

    /// One namespace of the snapshot, as nstopo sees it; `None` if it is
    /// gone.
    fn node(&self, nv: &NsView) -> Result<Option<(String, LiveNode)>> {
        let Namespace::Named(name) = nv.namespace() else {
            return Ok(None);
        };
        match nv.status() {
            NsStatus::Live | NsStatus::Resyncing => {}
            NsStatus::Removed => return Ok(None),
            other => {
                return Err(Error::Watch {
                    op: format!("read {name}"),
                    source: Box::new(nsdb::Error::Stale {
                        ns: nv.namespace().clone(),
                        reason: format!("{other:?}"),
                    }),
                });
            }
        }
        let name = name.to_string();
        let sysctls = self.sysctls.get(&name).cloned().unwrap_or_default();
        Ok(Some((name, live_node(nv, &self.topology, sysctls))))
    }

    fn check(&self, topo: &Topology) -> Result<()> {
        if topo.name == self.topology {
            Ok(())
        } else {
            Err(Error::OtherTopology {
                watched: self.topology.clone(),
                given: topo.name.clone(),
            })
        }
    }

    /// The plan [`apply`](Live::apply) would execute now, from the view.
    ///
    /// # Errors
    ///
    /// As [`diff`](Live::diff).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn demo(live: &nstopo::Live, topo: &nstopo::Topology) -> nstopo::Result<()> {
    /// print!("{}", live.plan(topo)?);
    /// # Ok(()) }
    /// ```
    pub fn plan(&self, topo: &Topology) -> Result<Plan> {
        self.check(topo)?;
        Ok(self.plan_now(topo)?.0)
    }

    /// The plan now: compared in full the first time, then only where the
    /// declaration or the view changed since the last apply's plan
    /// ([`Base`]), or that plan named. Returns what it read of the view.
    fn plan_now(&self, topo: &Topology) -> Result<(Plan, Read)> {
        let Some(base) = &self.base else {
            let snap = self.view.snapshot();
            let state = self.state_of(&snap)?;
            return Ok((plan_for(topo, &state)?, Read::Whole(snap)));
        };
        // One pass over the view, copying only the namespaces that changed
        // (or joined); those that left are listed.
        let mut old = base.views.iter().peekable();
        let mut gone = Vec::new();
        let changed = self.view.snapshot_where(|nv| {
            let ns = nv.namespace();
            while let Some((k, _)) = old.peek()
                && *k < ns
            {
                gone.push((*k).clone());
                old.next();
            }
            match old.peek() {
                Some((k, v)) if *k == ns => {
                    let same = same_view(v, nv);
                    old.next();
                    !same
                }
                _ => true,
            }
        });
        gone.extend(old.map(|(k, _)| k.clone()));
        let dirty = dirty(base, topo, changed, gone);
        let scope = Scope::new(topo, dirty.nodes.iter().map(String::as_str).collect());
        let mut state = LiveState {
            topology: self.topology.clone(),
            nodes: BTreeMap::new(),
        };
        for name in &scope.near {
            let Ok(ns) = Namespace::named(name) else {
                continue;
            };
            // Changed, gone, or as in the base.
            let nv = match dirty.changed.namespace(&ns) {
                Some(nv) => Some(nv),
                None if dirty.gone.contains(&ns) => None,
                None => base.views.get(&ns),
            };
            if let Some(nv) = nv
                && let Some((name, node)) = self.node(nv)?
            {
                state.nodes.insert(name, node);
            }
        }
        let plan = compute_in(topo, &state, Some(&scope))
            .map_err(|objects| Error::NotOwned { objects })?;
        Ok((plan, Read::Since(dirty)))
    }

    /// Makes `plan`, made from `topo` and `read`, the base of the next
    /// diff.
    fn rebase(&mut self, topo: &Topology, plan: &Plan, read: Read) {
        let named = named(plan);
        let dirty = match read {
            Read::Whole(snap) => {
                let views = snap
                    .namespaces()
                    .map(|nv| (nv.namespace().clone(), nv.clone()))
                    .collect();
                self.base = Some(Base {
                    topo: topo.clone(),
                    views,
                    named,
                });
                return;
            }
            Read::Since(dirty) => dirty,
        };
        let Some(base) = &mut self.base else {
            return;
        };
        let (p, s) = dirty.node_delta;
        let end = base.topo.nodes.len() - s;
        base.topo
            .nodes
            .splice(p..end, topo.nodes[p..topo.nodes.len() - s].iter().cloned());
        let (p, s) = dirty.link_delta;
        let end = base.topo.links.len() - s;
        base.topo
            .links
            .splice(p..end, topo.links[p..topo.links.len() - s].iter().cloned());
        // A changed view whose node is not dirty changed in nothing nstopo
        // reads: it may stand for the old one too.
        for nv in dirty.changed.namespaces() {
            base.views.insert(nv.namespace().clone(), nv.clone());
        }
        for ns in &dirty.gone {
            base.views.remove(ns);
        }
        base.named = named;
    }

    /// Every difference between `topo` and the watched kernel state, as
    /// typed changes: drift made by hand shows here without a read.
    ///
    /// # Errors
    ///
    /// [`Error::OtherTopology`] if `topo` is not the watched topology;
    /// [`Error::NotOwned`] if declared objects exist that the topology
    /// does not own; [`Error::Watch`] as [`state`](Live::state).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn demo(live: &nstopo::Live, topo: &nstopo::Topology) -> nstopo::Result<()> {
    /// for change in live.diff(topo)? {
    ///     println!("{change}");
    /// }
    /// # Ok(()) }
    /// ```
    pub fn diff(&self, topo: &Topology) -> Result<Vec<Change>> {
        Ok(self.plan(topo)?.changes)
    }

    /// Brings the kernel to `topo` from the watched state: diffs against
    /// the view, executes only the changes (as [`apply`](crate::apply)
    /// does: phases, concurrency, rollback or stop per the options), then
    /// waits until the view shows them. `topo` may differ from the
    /// declaration watched (that is the point), but not in name.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: dropped part-way, the changes already sent happen
    /// and are not rolled back (as with [`apply`](crate::apply)); the view
    /// still follows them, so the next diff shows what remains to do, but
    /// namespaces created meanwhile are not watched: watch again.
    ///
    /// # Errors
    ///
    /// As [`diff`](Live::diff) before anything is touched; [`Error::Apply`]
    /// if a change failed; [`Error::Watch`] if the view did not confirm
    /// the changes in time or could not add a new namespace.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(live: &mut nstopo::Live, topo: &nstopo::Topology) -> nstopo::Result<()> {
    /// let report = live.apply(topo).await?;
    /// println!("{} requests", report.requests);
    /// # Ok(()) }
    /// ```
    pub async fn apply(&mut self, topo: &Topology) -> Result<Report> {
        let span = tracing::debug_span!("live_apply", topology = %topo.name, outcome = tracing::field::Empty, error = tracing::field::Empty);
        let res = self.apply_inner(topo).instrument(span.clone()).await;
        crate::trace_outcome(&span, &res);
        res
    }

    async fn apply_inner(&mut self, topo: &Topology) -> Result<Report> {
        self.check(topo)?;
        let (plan, read) = self.plan_now(topo)?;
        self.rebase(topo, &plan, read);
        if plan.is_empty() || self.options.dry_run {
            let (res, _) = apply_plan(&topo.name, plan, Handles::new(), &self.options).await;
            return res;
        }
        // Handles of the existing namespaces the plan touches.
        let created: HashSet<&str> = plan
            .changes
            .iter()
            .filter_map(|c| match c {
                Change::CreateNamespace { node } => Some(node.as_str()),
                _ => None,
            })
            .collect();
        let mut touched: Vec<&str> = Vec::new();
        for c in &plan.changes {
            match c {
                Change::CreateNamespace { .. } | Change::RemoveNamespace { .. } => {}
                Change::CreateVeth { a, b, .. } => touched.extend([a.node.as_str(), &b.node]),
                c => touched.push(c.node()),
            }
        }
        touched.retain(|n| !created.contains(n));
        self.open(touched.into_iter()).await?;

        let handles = std::mem::take(&mut self.handles);
        let (res, handles) = apply_plan(&topo.name, plan.clone(), handles, &self.options).await;
        self.handles = handles;
        let report = res?;

        // The view follows: new namespaces join, removed ones leave.
        let mut added = Vec::new();
        for c in &plan.changes {
            match c {
                Change::CreateNamespace { node } => {
                    self.sysctls.insert(node.clone(), BTreeMap::new());
                    added.push(ns_of(node)?);
                }
                Change::RemoveNamespace { node } => {
                    self.sysctls.remove(node);
                    self.view.remove(&ns_of(node)?);
                    if let Some(h) = self.handles.remove(node) {
                        h.close().await;
                    }
                }
                Change::SetSysctl {
                    node, key, value, ..
                } => {
                    self.sysctls
                        .entry(node.clone())
                        .or_default()
                        .insert(key.clone(), value.clone());
                }
                _ => {}
            }
        }
        let view = &self.view;
        let adds: Vec<_> = added
            .into_iter()
            .map(|ns| async move {
                let what = format!("add {ns} to the view");
                view.add(ns).await.map_err(view_err(what))
            })
            .collect();
        for r in bounded(adds, self.options.concurrency).await {
            r?;
        }
        self.confirm(&plan).await?;
        Ok(report)
    }

    /// Waits until the view shows every change of `plan`, checking only
    /// the namespaces the plan touches.
    async fn confirm(&self, plan: &Plan) -> Result<()> {
        let mut nodes: Vec<Namespace> = Vec::new();
        for c in &plan.changes {
            if let Change::CreateVeth { b, .. } = c {
                nodes.push(ns_of(&b.node)?);
            }
            nodes.push(ns_of(c.node())?);
        }
        nodes.sort();
        nodes.dedup();
        let touched = |snap: &nsdb::Snapshot| {
            let mut live = HashMap::new();
            for ns in &nodes {
                if let Some(nv) = snap.namespace(ns)
                    && let Ok(Some((name, node))) = self.node(nv)
                {
                    live.insert(name, node);
                }
            }
            live
        };
        let what = format!("the view to show the apply of {}", self.topology);
        let res = self
            .view
            .wait_for_where(
                &what,
                CONFIRM,
                |nv| nodes.binary_search(nv.namespace()).is_ok(),
                |snap| {
                    let live = touched(snap);
                    plan.changes.iter().all(|c| shown(c, &live))
                },
            )
            .await;
        if let Err(e) = res {
            // Name what the view does not show.
            let live = touched(&self.view.snapshot());
            let missing: Vec<String> = plan
                .changes
                .iter()
                .filter(|c| !shown(c, &live))
                .map(ToString::to_string)
                .collect();
            return Err(view_err(format!("{what} ({})", missing.join(", ")))(e));
        }
        Ok(())
    }

    /// Opens (and keeps) handles on the named namespaces not yet open.
    async fn open(&mut self, nodes: impl Iterator<Item = &str>) -> Result<()> {
        let mut missing: Vec<String> = nodes
            .filter(|n| !self.handles.contains_key(*n))
            .map(str::to_owned)
            .collect();
        missing.sort();
        missing.dedup();
        let dir = &self.options.run_dir;
        let futs: Vec<_> = missing
            .into_iter()
            .map(|node| async move {
                let name = NsName::new(node.as_str()).map_err(|e| Error::Namespace {
                    node: node.clone(),
                    op: "open",
                    source: Box::new(netns::Error::Namespace(e)),
                })?;
                let h = Handle::builder(name)
                    .run_dir(dir.clone())
                    .mode(OpenMode::OpenOnly)
                    .open()
                    .await
                    .map_err(|_| Error::NamespaceGone { node: node.clone() })?;
                Ok::<_, Error>((node, h))
            })
            .collect();
        for r in bounded(futs, self.options.concurrency).await {
            let (node, h) = r?;
            self.handles.insert(node, h);
        }
        Ok(())
    }

    /// Stops watching: closes the view's sockets and the handles kept for
    /// the applies. (Dropping a `Live` does the same, without waiting for
    /// the handles' connections to end.)
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: what is not closed yet closes when dropped.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(live: nstopo::Live) {
    /// live.close().await;
    /// # }
    /// ```
    pub async fn close(self) {
        let Live { view, handles, .. } = self;
        drop(view);
        futures::future::join_all(handles.into_values().map(Handle::close)).await;
    }
}

/// Whether the view shows `c` done (`live`: the touched namespaces).
fn shown(c: &Change, live: &HashMap<String, LiveNode>) -> bool {
    let link = |node: &str, name: &str| live.get(node).and_then(|n| n.links.get(name));
    match c {
        Change::CreateNamespace { node } => live.contains_key(node),
        Change::CreateBridge { node, bridge, .. } => link(node, &bridge.name).is_some(),
        // Both ends, tied to each other: the view may show an end before
        // it knows its peer (nsdb reads such a link again), and the next
        // diff would take the pair for broken.
        Change::CreateVeth { a, b, .. } => match (link(&a.node, &a.name), link(&b.node, &b.name)) {
            (Some(la), Some(lb)) => {
                la.peer_index == Some(lb.index) && lb.peer_index == Some(la.index)
            }
            _ => false,
        },
        Change::DeleteLink { node, name, index } => {
            link(node, name).is_none_or(|l| l.index != *index)
        }
        Change::SetLink {
            node, name, set, ..
        } => link(node, name).is_some_and(|l| {
            set.mtu.is_none_or(|m| l.mtu == m)
                && set.mac.is_none_or(|m| l.mac == Some(m))
                && set.up.is_none_or(|u| l.up == u)
                && set.master.as_ref().is_none_or(|m| {
                    l.master.as_deref() == m.as_ref().map(|(name, _)| name.as_str())
                })
        }),
        Change::AddAddress {
            node,
            device,
            address,
            ..
        } => link(node, device).is_some_and(|l| l.addresses.contains(address)),
        Change::DeleteAddress {
            node,
            device,
            address,
            ..
        } => link(node, device).is_none_or(|l| !l.addresses.contains(address)),
        Change::AddRoute { node, route, .. } => live
            .get(node)
            .is_some_and(|n| n.routes.iter().any(|h| route_matches(route, h))),
        Change::DeleteRoute { node, route, .. } => live
            .get(node)
            .is_none_or(|n| !n.routes.iter().any(|h| route_matches(route, h))),
        // Removals leave the view; sysctls are not in it.
        _ => true,
    }
}

/// The nodes that may differ from `base`: those it named, those whose
/// declaration changed (a node, or either end of a link, added, removed
/// or changed; a node or link that moved counts as changed), and those
/// whose view changed (or joined or left the view).
fn dirty(base: &Base, topo: &Topology, changed: Snapshot, gone: Vec<Namespace>) -> Dirty {
    let mut nodes = base.named.clone();
    let node_delta = delta(&base.topo.nodes, &topo.nodes);
    let (p, s) = node_delta;
    for list in [&base.topo.nodes, &topo.nodes] {
        for n in &list[p..list.len() - s] {
            nodes.insert(n.name.clone());
        }
    }
    let link_delta = delta(&base.topo.links, &topo.links);
    let (p, s) = link_delta;
    for list in [&base.topo.links, &topo.links] {
        for l in &list[p..list.len() - s] {
            nodes.insert(l.a.node.clone());
            nodes.insert(l.b.node.clone());
        }
    }
    for nv in changed.namespaces() {
        let Namespace::Named(name) = nv.namespace() else {
            continue;
        };
        let same = base
            .views
            .get(nv.namespace())
            .is_some_and(|old| same_for_nstopo(old, nv));
        if !same {
            nodes.insert(name.as_str().to_owned());
        }
    }
    for ns in &gone {
        if let Namespace::Named(name) = ns {
            nodes.insert(name.as_str().to_owned());
        }
    }
    Dirty {
        nodes,
        node_delta,
        link_delta,
        changed,
        gone,
    }
}

/// A namespace of the view as nstopo's [`LiveNode`] (what
/// `state::read_node` reads from the kernel, built from the snapshot).
fn live_node(nv: &NsView, topology: &str, sysctls: BTreeMap<String, String>) -> LiveNode {
    let group = link_group(topology);
    let mark = marker(topology);
    let names: HashMap<u32, &str> = nv.links().map(|l| (l.index, l.name.as_str())).collect();
    let mut owned = false;
    let mut links = BTreeMap::new();
    for l in nv.links() {
        let lo = l.name == "lo";
        if lo {
            owned = l.alias.as_deref() == Some(mark.as_str());
        }
        let mac = match &l.address {
            Some(a) if a.len() == 6 && !lo => {
                let mut b = [0u8; 6];
                b.copy_from_slice(a);
                Some(MacAddr(b))
            }
            _ => None,
        };
        let mut addresses: Vec<IfAddr> = nv
            .addresses_of(l.index)
            .filter(|a| !link_local(a.local))
            .map(|a| IfAddr {
                addr: a.local,
                prefix_len: a.prefix_len,
            })
            .collect();
        addresses.sort();
        links.insert(
            l.name.clone(),
            LiveLink {
                index: l.index,
                kind: l.kind.clone(),
                owned: l.group == Some(group),
                mtu: l.mtu.unwrap_or(0),
                mac,
                up: l.is_up(),
                master: l
                    .master
                    .and_then(|m| names.get(&m))
                    .map(|m| (*m).to_owned()),
                peer_index: l.link,
                addresses,
            },
        );
    }
    let mut routes = Vec::new();
    for r in nv.routes() {
        if !kept_route(r) {
            continue;
        }
        let v6 = r.family == AF_INET6;
        if !v6 && r.family != AF_INET {
            continue;
        }
        let destination = match r.destination {
            Some(addr) => Destination::Prefix(IfAddr {
                addr,
                prefix_len: r.prefix_len,
            }),
            None if r.prefix_len == 0 => Destination::Default,
            None => continue,
        };
        if v6 && destination == Destination::Default && r.gateway.is_none() {
            continue;
        }
        routes.push(Route {
            destination,
            gateway: r.gateway,
            device: r.oif.and_then(|i| names.get(&i)).map(|n| (*n).to_owned()),
            metric: Some(r.priority).filter(|m| *m != 0),
        });
    }
    LiveNode {
        owned,
        links,
        routes,
        sysctls,
    }
}

/// Reads the named sysctls inside a namespace.
async fn read_sysctls(
    h: &Handle,
    node: &str,
    keys: Vec<String>,
) -> Result<BTreeMap<String, String>> {
    let sys = |key: String| {
        let node = node.to_owned();
        move |e: std::io::Error| Error::Sysctl {
            node,
            key,
            source: e,
        }
    };
    let read = netns::nsfs::Executor::global()
        .map_err(|e| sys(String::new())(std::io::Error::other(e)))?
        .run_in(h.netns(), move || {
            keys.into_iter()
                .map(|k| {
                    let v = std::fs::read_to_string(sysctl_path(&k));
                    (k, v)
                })
                .collect::<Vec<_>>()
        })
        .await
        .map_err(|e| sys(String::new())(std::io::Error::other(e)))?;
    let mut values = BTreeMap::new();
    for (k, v) in read {
        let v = v.map_err(sys(k.clone()))?;
        values.insert(k, v.trim().to_owned());
    }
    Ok(values)
}
