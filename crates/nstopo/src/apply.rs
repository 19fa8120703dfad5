//! Executing a plan: phases in order, every change of a phase concurrently
//! (many requests in flight per namespace), rollback of what this apply did
//! on failure.

use std::collections::HashSet;
use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::StreamExt;
use netlink_packet_route::address::{AddressAttribute, AddressFlags};
use netlink_packet_route::link::{InfoData, InfoVeth, LinkAttribute};
use netns::{Handle, NsName, OpenMode, RunDir};
use rtnetlink::{LinkBridge, LinkUnspec, LinkVeth, RouteMessageBuilder};
use serde::Serialize;
use tracing::Instrument;

use crate::diff::{Change, LinkAttrs, Plan};
use crate::model::{IfAddr, Route, Topology};
use crate::state::{self, Handles, LiveState, link_group, marker};
use crate::{Error, Result};

/// What to do when a change fails part-way through an apply.
///
/// # Examples
///
/// ```
/// assert_eq!(nstopo::OnError::default(), nstopo::OnError::Rollback);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum OnError {
    /// Undo what this apply did (the default).
    #[default]
    Rollback,
    /// Stop, and report exactly what was done ([`Error::Apply`]).
    Stop,
}

/// Progress of an apply or destroy, for a progress bar.
///
/// # Examples
///
/// ```
/// let on = |e: &nstopo::Event| if let nstopo::Event::Applied { done, total, .. } = e {
///     eprintln!("{done}/{total}");
/// };
/// let _opts = nstopo::Options::default().progress(on);
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Event {
    /// The plan is made: `total` changes to apply.
    Planned {
        /// Number of changes.
        total: usize,
    },
    /// A change was applied.
    Applied {
        /// The change.
        change: Change,
        /// Changes applied so far.
        done: usize,
        /// Changes in the plan.
        total: usize,
    },
    /// A change of a rollback was applied.
    RolledBack {
        /// The inverse change.
        change: Change,
    },
}

type Progress = Arc<dyn Fn(&Event) + Send + Sync>;

/// Options of [`apply`], [`destroy`] and [`diff`].
///
/// # Examples
///
/// ```
/// let o = nstopo::Options::default().dry_run(true).concurrency(128);
/// ```
#[derive(Clone)]
#[must_use]
pub struct Options {
    pub(crate) dry_run: bool,
    on_error: OnError,
    pub(crate) concurrency: usize,
    pub(crate) run_dir: RunDir,
    progress: Option<Progress>,
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("dry_run", &self.dry_run)
            .field("on_error", &self.on_error)
            .field("concurrency", &self.concurrency)
            .field("run_dir", &self.run_dir)
            .finish_non_exhaustive()
    }
}

impl Default for Options {
    fn default() -> Options {
        Options {
            dry_run: false,
            on_error: OnError::Rollback,
            concurrency: 512,
            run_dir: RunDir::default(),
            progress: None,
        }
    }
}

impl Options {
    /// Plan only: read, diff, report the plan; change nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// let o = nstopo::Options::default().dry_run(true);
    /// ```
    pub fn dry_run(mut self, on: bool) -> Options {
        self.dry_run = on;
        self
    }

    /// What a failure part-way does (default: roll back).
    ///
    /// # Examples
    ///
    /// ```
    /// let o = nstopo::Options::default().on_error(nstopo::OnError::Stop);
    /// ```
    pub fn on_error(mut self, on_error: OnError) -> Options {
        self.on_error = on_error;
        self
    }

    /// Requests (and namespace creations) in flight at once (default 512).
    ///
    /// # Examples
    ///
    /// ```
    /// let o = nstopo::Options::default().concurrency(64);
    /// ```
    pub fn concurrency(mut self, n: usize) -> Options {
        self.concurrency = n.max(1);
        self
    }

    /// The run directory of the namespaces (default `/run/netns`).
    ///
    /// # Examples
    ///
    /// ```
    /// let o = nstopo::Options::default().run_dir(netns::RunDir::new("/run/netns"));
    /// ```
    pub fn run_dir(mut self, dir: RunDir) -> Options {
        self.run_dir = dir;
        self
    }

    /// Calls `f` on every [`Event`] (from the task running the apply).
    ///
    /// # Examples
    ///
    /// ```
    /// let o = nstopo::Options::default().progress(|e| eprintln!("{e:?}"));
    /// ```
    pub fn progress(mut self, f: impl Fn(&Event) + Send + Sync + 'static) -> Options {
        self.progress = Some(Arc::new(f));
        self
    }

    pub(crate) fn read_params(&self) -> (RunDir, usize) {
        (self.run_dir.clone(), self.concurrency)
    }

    fn emit(&self, e: Event) {
        if let Some(p) = &self.progress {
            p(&e);
        }
    }
}

/// What an apply did.
///
/// # Examples
///
/// ```no_run
/// # async fn demo(topo: nstopo::Topology) -> nstopo::Result<()> {
/// let report = nstopo::apply(&topo, nstopo::Options::default()).await?;
/// println!("{}{} requests", report.plan, report.requests);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, Default, Serialize)]
#[non_exhaustive]
pub struct Report {
    /// The plan (all applied, unless a dry run).
    pub plan: Plan,
    /// Whether it was a dry run.
    pub dry_run: bool,
    /// Requests sent to the kernel that change something (reads not
    /// counted; a namespace creation or removal counts one).
    pub requests: u64,
    /// Objects created (namespaces, links, addresses, routes).
    pub created: usize,
    /// Objects changed (link attributes, sysctls).
    pub changed: usize,
    /// Objects removed.
    pub removed: usize,
}

impl Report {
    fn count(&mut self) {
        for c in &self.plan.changes {
            match c {
                Change::CreateNamespace { .. }
                | Change::CreateBridge { .. }
                | Change::CreateVeth { .. }
                | Change::AddAddress { .. }
                | Change::AddRoute { .. } => self.created += 1,
                Change::SetLink { .. } | Change::SetSysctl { .. } => self.changed += 1,
                _ => self.removed += 1,
            }
        }
    }
}

/// Compares the declaration with the live state read from the kernel.
pub(crate) fn plan_for(topo: &Topology, live: &LiveState) -> Result<Plan> {
    crate::diff::compute(topo, live).map_err(|objects| Error::NotOwned { objects })
}

/// Every difference between the declaration and the kernel, as typed
/// changes (what [`apply`] would do). Reads only.
///
/// # Cancel safety
///
/// Cancel safe: it only reads.
///
/// # Errors
///
/// [`Error::NotOwned`] if declared objects exist that the topology does not
/// own; [`Error::Request`] if reading fails.
///
/// # Examples
///
/// ```no_run
/// # async fn demo(topo: nstopo::Topology) -> nstopo::Result<()> {
/// for change in nstopo::diff(&topo, nstopo::Options::default()).await? {
///     println!("{change}");
/// }
/// # Ok(()) }
/// ```
pub async fn diff(topo: &Topology, options: Options) -> Result<Vec<Change>> {
    Ok(plan(topo, options).await?.changes)
}

/// The plan [`apply`] would execute now. Reads only.
///
/// # Cancel safety
///
/// Cancel safe: it only reads.
///
/// # Errors
///
/// As [`diff`].
///
/// # Examples
///
/// ```no_run
/// # async fn demo(topo: nstopo::Topology) -> nstopo::Result<()> {
/// print!("{}", nstopo::plan(&topo, nstopo::Options::default()).await?);
/// # Ok(()) }
/// ```
pub async fn plan(topo: &Topology, options: Options) -> Result<Plan> {
    let span = tracing::debug_span!("plan", topology = %topo.name);
    async {
        let (live, handles) = state::read(topo, &options.run_dir, options.concurrency).await?;
        close_all(handles).await;
        plan_for(topo, &live)
    }
    .instrument(span)
    .await
}

async fn close_all(handles: Handles) {
    futures::future::join_all(handles.into_values().map(Handle::close)).await;
}

/// Brings the kernel to the declared state from any starting point: reads
/// the live state, diffs, and executes the plan phase by phase (deletions;
/// namespaces; sysctls and bridges; veths, each end born in its namespace;
/// link attributes and addresses; routes), every change of a phase
/// concurrently. A second apply of an applied topology sends no request.
///
/// # Cancel safety
///
/// Dropped part-way, the changes already sent happen (a veth request keeps
/// its peer namespace's fd until the kernel answered); everything created
/// carries the topology's marker, so the next apply completes the work and
/// [`destroy`] removes it. Nothing is rolled back.
///
/// # Errors
///
/// [`Error::NotOwned`] before anything is touched if declared objects exist
/// that the topology does not own; [`Error::Apply`] if a change failed (its
/// source names the object, the errno and the kernel's message).
///
/// # Examples
///
/// ```no_run
/// # async fn demo() -> nstopo::Result<()> {
/// let topo = nstopo::Topology::from_path("ring.yaml")?;
/// let report = nstopo::apply(&topo, nstopo::Options::default()).await?;
/// println!("created {}, changed {}, removed {}", report.created, report.changed, report.removed);
/// # Ok(()) }
/// ```
pub async fn apply(topo: &Topology, options: Options) -> Result<Report> {
    let span = tracing::debug_span!("apply", topology = %topo.name, outcome = tracing::field::Empty, error = tracing::field::Empty);
    let res = async {
        let (live, handles) = state::read(topo, &options.run_dir, options.concurrency).await?;
        let plan = match plan_for(topo, &live) {
            Ok(p) => p,
            Err(e) => {
                close_all(handles).await;
                return Err(e);
            }
        };
        let (res, handles) = apply_plan(&topo.name, plan, handles, &options).await;
        close_all(handles).await;
        res
    }
    .instrument(span.clone())
    .await;
    crate::trace_outcome(&span, &res);
    res
}

/// Executes `plan` (made from a live state the caller holds) with the
/// given open handles: for [`apply`] and the watched path
/// ([`crate::Live`]). Returns the handles, those of new namespaces
/// included.
pub(crate) async fn apply_plan(
    topo: &str,
    plan: Plan,
    handles: Handles,
    options: &Options,
) -> (Result<Report>, Handles) {
    let mut report = Report {
        plan,
        dry_run: options.dry_run,
        ..Report::default()
    };
    report.count();
    if options.dry_run {
        return (Ok(report), handles);
    }
    options.emit(Event::Planned {
        total: report.plan.changes.len(),
    });
    let mut exec = Exec {
        topo,
        handles,
        options,
        requests: AtomicU64::new(0),
        done: std::sync::atomic::AtomicUsize::new(0),
        total: report.plan.changes.len(),
    };
    let res = match exec.run(&report.plan.changes).await {
        Ok(()) => Ok(()),
        Err((applied, err)) => Err(exec.fail(applied, err).await),
    };
    report.requests = exec.requests.load(Ordering::Relaxed);
    (res.map(|()| report), exec.handles)
}

/// Removes everything the topology owns (its namespaces, with everything
/// in them), concurrently, and nothing else: a declared namespace without
/// the marker is left alone.
///
/// # Cancel safety
///
/// Dropped part-way, some namespaces are removed; destroy again removes the
/// rest.
///
/// # Errors
///
/// [`Error::Namespace`] for the first namespace that could not be removed
/// (the others are still removed).
///
/// # Examples
///
/// ```no_run
/// # async fn demo(topo: nstopo::Topology) -> nstopo::Result<()> {
/// let report = nstopo::destroy(&topo, nstopo::Options::default()).await?;
/// println!("removed {} namespaces", report.removed);
/// # Ok(()) }
/// ```
pub async fn destroy(topo: &Topology, options: Options) -> Result<Report> {
    let span = tracing::debug_span!("destroy", topology = %topo.name, outcome = tracing::field::Empty, error = tracing::field::Empty);
    let res = async {
        // Ownership alone decides what goes: one request per namespace,
        // not the whole state an apply reads.
        let changes: Vec<Change> = crate::owner::owned(topo, &options.run_dir, options.concurrency)
            .await?
            .into_iter()
            .map(|node| Change::RemoveNamespace { node })
            .collect();
        let mut report = Report {
            plan: Plan { changes },
            dry_run: options.dry_run,
            ..Report::default()
        };
        report.removed = report.plan.changes.len();
        if options.dry_run {
            return Ok(report);
        }
        options.emit(Event::Planned {
            total: report.removed,
        });
        let futs: Vec<_> = report
            .plan
            .changes
            .iter()
            .map(|c| {
                let dir = options.run_dir.clone();
                let node = c.node().to_owned();
                async move { remove_ns(&dir, &node).await }
            })
            .collect();
        let results: Vec<Result<()>> = bounded(futs, options.concurrency).await;
        report.requests = results.len() as u64;
        for (i, r) in results.into_iter().enumerate() {
            r?;
            options.emit(Event::Applied {
                change: report.plan.changes[i].clone(),
                done: i + 1,
                total: report.removed,
            });
        }
        Ok(report)
    }
    .instrument(span.clone())
    .await;
    crate::trace_outcome(&span, &res);
    res
}

/// Runs `futs` with at most `n` in flight. (The futures are made before
/// the first await: a `map` closure over references kept in the returned
/// future would make its `Send`-ness unprovable to the compiler.)
pub(crate) async fn bounded<F: std::future::Future>(futs: Vec<F>, n: usize) -> Vec<F::Output> {
    futures::stream::iter(futs)
        .buffer_unordered(n.max(1))
        .collect()
        .await
}

async fn remove_ns(dir: &RunDir, node: &str) -> Result<()> {
    let name = NsName::new(node).map_err(|e| Error::Namespace {
        node: node.into(),
        op: "remove",
        source: Box::new(netns::Error::Namespace(e)),
    })?;
    match dir.remove(&name).await {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        Err(e) => Err(Error::Namespace {
            node: node.into(),
            op: "remove",
            source: Box::new(netns::Error::Namespace(e)),
        }),
    }
}

struct Exec<'a> {
    topo: &'a str,
    handles: Handles,
    options: &'a Options,
    requests: AtomicU64,
    done: std::sync::atomic::AtomicUsize,
    total: usize,
}

impl Exec<'_> {
    /// Runs the changes phase by phase; on failure, the changes applied
    /// (in order) and the first error.
    async fn run(&mut self, changes: &[Change]) -> std::result::Result<(), (Vec<Change>, Error)> {
        let mut applied: Vec<Change> = Vec::new();
        let mut i = 0;
        while i < changes.len() {
            let phase = changes[i].phase();
            let mut j = i;
            while j < changes.len() && changes[j].phase() == phase {
                j += 1;
            }
            let batch = &changes[i..j];
            i = j;
            // Namespaces first: their handles are needed by what follows.
            let mut failed = None;
            let mut new_handles = Vec::new();
            {
                let this = &*self;
                let futs: Vec<_> = batch
                    .iter()
                    .enumerate()
                    .map(|(k, c)| async move { (k, this.one(c).await) })
                    .collect();
                let results: Vec<(usize, Result<Option<Handle>>)> =
                    bounded(futs, self.options.concurrency).await;
                for (k, r) in results {
                    match r {
                        Ok(h) => {
                            if let Some(h) = h {
                                new_handles.push((batch[k].node().to_owned(), h));
                            }
                            applied.push(batch[k].clone());
                            let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
                            self.options.emit(Event::Applied {
                                change: batch[k].clone(),
                                done,
                                total: self.total,
                            });
                        }
                        Err(e) => {
                            if failed.is_none() {
                                failed = Some(e);
                            }
                        }
                    }
                }
            }
            for (n, h) in new_handles {
                if let Some(old) = self.handles.insert(n, h) {
                    old.close().await;
                }
            }
            if let Some(e) = failed {
                return Err((applied, e));
            }
        }
        Ok(())
    }

    /// After a failure: roll back (default) or stop.
    async fn fail(&mut self, applied: Vec<Change>, err: Error) -> Error {
        if self.options.on_error == OnError::Stop {
            return Error::Apply {
                source: Box::new(err),
                applied,
                rolled_back: false,
                rollback_errors: Vec::new(),
            };
        }
        let created: HashSet<&str> = applied
            .iter()
            .filter_map(|c| match c {
                Change::CreateNamespace { node } => Some(node.as_str()),
                _ => None,
            })
            .collect();
        let mut inverse: Vec<Change> = Vec::new();
        for c in applied.iter().rev() {
            if let Some(inv) = invert(c, &created) {
                inverse.push(inv);
            }
        }
        inverse.sort_by_key(Change::phase);
        let mut rollback_errors = Vec::new();
        for inv in &inverse {
            // One at a time is simple; the namespace removals (the bulk of
            // a rollback from nothing) go concurrently below.
            if matches!(inv, Change::RemoveNamespace { .. }) {
                continue;
            }
            match self.one(inv).await {
                Ok(_) => self.options.emit(Event::RolledBack {
                    change: inv.clone(),
                }),
                Err(e) => rollback_errors.push(e),
            }
        }
        let removals: Vec<&Change> = inverse
            .iter()
            .filter(|c| matches!(c, Change::RemoveNamespace { .. }))
            .collect();
        for c in &removals {
            if let Some(h) = self.handles.remove(c.node()) {
                h.close().await;
            }
        }
        let dir = &self.options.run_dir;
        let futs: Vec<_> = removals
            .into_iter()
            .map(|c| async move { (c.clone(), remove_ns(dir, c.node()).await) })
            .collect();
        let results: Vec<(Change, Result<()>)> = bounded(futs, self.options.concurrency).await;
        for (c, r) in results {
            match r {
                Ok(()) => self.options.emit(Event::RolledBack { change: c }),
                Err(e) => rollback_errors.push(e),
            }
        }
        Error::Apply {
            source: Box::new(err),
            applied,
            rolled_back: true,
            rollback_errors,
        }
    }

    fn handle(&self, node: &str) -> Result<&Handle> {
        self.handles
            .get(node)
            .ok_or_else(|| Error::NamespaceGone { node: node.into() })
    }

    fn req(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// Applies one change; a namespace creation returns its handle.
    async fn one(&self, c: &Change) -> Result<Option<Handle>> {
        let object = || c.to_string();
        let rq = |op: &'static str| {
            let object = object();
            move |source| Error::Request {
                object,
                op,
                source: Box::new(source),
            }
        };
        match c {
            Change::CreateNamespace { node } => {
                let name = NsName::new(node.as_str()).map_err(|e| Error::Namespace {
                    node: node.clone(),
                    op: "create",
                    source: Box::new(netns::Error::Namespace(e)),
                })?;
                self.req();
                let create = || {
                    Handle::builder(name.clone())
                        .run_dir(self.options.run_dir.clone())
                        .mode(OpenMode::CreateOrOpen)
                        .open()
                };
                let h = match create().await {
                    // An entry with nothing mounted on it (after the settle
                    // time nsfs gives another creator) is what a process
                    // killed inside `ip netns add` or a create of ours
                    // leaves: it holds no namespace, so it is replaced.
                    Err(netns::Error::Namespace(netns::nsfs::Error::Stale { .. })) => {
                        remove_ns(&self.options.run_dir, node).await?;
                        create().await
                    }
                    r => r,
                }
                .map_err(|source| Error::Namespace {
                    node: node.clone(),
                    op: "create",
                    source: Box::new(source),
                })?;
                self.req();
                let msg = LinkUnspec::new_with_index(1)
                    .alias(marker(self.topo))
                    .up()
                    .build();
                h.rtnetlink()
                    .link()
                    .set(msg)
                    .execute()
                    .await
                    .map_err(rq("mark"))?;
                Ok(Some(h))
            }
            Change::RemoveNamespace { node } => {
                self.req();
                remove_ns(&self.options.run_dir, node).await?;
                Ok(None)
            }
            Change::SetSysctl {
                node, key, value, ..
            } => {
                let h = self.handle(node)?;
                self.req();
                let path = state::sysctl_path(key);
                let value = value.clone();
                let sys = |source| Error::Sysctl {
                    node: node.clone(),
                    key: key.clone(),
                    source,
                };
                netns::nsfs::Executor::global()
                    .map_err(|e| sys(std::io::Error::other(e)))?
                    .run_in(h.netns(), move || std::fs::write(path, value))
                    .await
                    .map_err(|e| sys(std::io::Error::other(e)))?
                    .map_err(sys)?;
                Ok(None)
            }
            Change::CreateBridge {
                node,
                bridge,
                index,
            } => {
                let h = self.handle(node)?;
                let mut b = LinkBridge::new(&bridge.name).index(*index);
                if let Some(m) = bridge.mtu {
                    b = b.mtu(m);
                }
                if let Some(m) = bridge.mac {
                    b = b.address(m.0.to_vec());
                }
                if bridge.up {
                    b = b.up();
                }
                let mut msg = b.build();
                msg.attributes
                    .push(LinkAttribute::Group(link_group(self.topo)));
                self.req();
                h.rtnetlink()
                    .link()
                    .add(msg)
                    .execute()
                    .await
                    .map_err(rq("create"))?;
                Ok(None)
            }
            Change::CreateVeth {
                a,
                a_index,
                b,
                b_index,
            } => {
                let ha = self.handle(&a.node)?;
                let hb = self.handle(&b.node)?;
                let group = link_group(self.topo);
                let peer_ns = hb.netns().clone();
                let mut peer = LinkUnspec::new_with_name(&b.name)
                    .index(*b_index)
                    .link_group(group)
                    .mtu(b.mtu.unwrap_or(1500))
                    .setns_by_fd(peer_ns.as_fd().as_raw_fd());
                if let Some(m) = b.mac {
                    peer = peer.address(m.0.to_vec());
                }
                // The peer cannot be brought up in the creating request:
                // the kernel configures it before the pair is joined
                // (veth_open: ENOTCONN); a SetLink follows.
                let mut msg = LinkVeth::new(&a.name, &b.name)
                    .set_info_data(InfoData::Veth(InfoVeth::Peer(peer.build())))
                    .index(*a_index)
                    .link_group(group)
                    .mtu(a.mtu.unwrap_or(1500));
                if let Some(m) = a.mac {
                    msg = msg.address(m.0.to_vec());
                }
                if a.up && a.master.is_none() {
                    msg = msg.up();
                }
                let req = ha.rtnetlink().link().add(msg.build());
                self.req();
                // The peer namespace's fd number is in the request: a task
                // holds the fd until the kernel answered, even if this
                // future is dropped.
                let res = tokio::spawn(async move {
                    let r = req.execute().await;
                    drop(peer_ns);
                    r
                })
                .await
                .unwrap_or(Err(rtnetlink::Error::RequestFailed));
                res.map_err(rq("create"))?;
                Ok(None)
            }
            Change::DeleteLink { node, index, .. } => {
                let h = self.handle(node)?;
                self.req();
                match h.rtnetlink().link().del(*index).execute().await {
                    Err(e) if netns::error_code(&e) == Some(libc::ENODEV) => Ok(None),
                    r => r.map(|_| None).map_err(rq("delete")),
                }
            }
            Change::SetLink {
                node, index, set, ..
            } => {
                let h = self.handle(node)?;
                let mut m = LinkUnspec::new_with_index(*index);
                if let Some(v) = set.mtu {
                    m = m.mtu(v);
                }
                if let Some(v) = set.mac {
                    m = m.address(v.0.to_vec());
                }
                match &set.master {
                    Some(Some((_, i))) => m = m.controller(*i),
                    Some(None) => m = m.nocontroller(),
                    None => {}
                }
                match set.up {
                    Some(true) => m = m.up(),
                    Some(false) => m = m.down(),
                    None => {}
                }
                self.req();
                h.rtnetlink()
                    .link()
                    .set(m.build())
                    .execute()
                    .await
                    .map_err(rq("set"))?;
                Ok(None)
            }
            Change::AddAddress {
                node,
                index,
                address,
                ..
            } => {
                let h = self.handle(node)?;
                let mut req = h
                    .rtnetlink()
                    .address()
                    .add(*index, address.addr, address.prefix_len);
                if address.addr.is_ipv6() {
                    req.message_mut()
                        .attributes
                        .push(AddressAttribute::Flags(AddressFlags::Nodad));
                }
                self.req();
                req.execute().await.map_err(rq("add"))?;
                Ok(None)
            }
            Change::DeleteAddress {
                node,
                index,
                address,
                ..
            } => {
                let h = self.handle(node)?;
                self.req();
                h.rtnetlink()
                    .address()
                    .del(address_msg(*index, address))
                    .execute()
                    .await
                    .map_err(rq("delete"))?;
                Ok(None)
            }
            Change::AddRoute { node, route, oif } | Change::DeleteRoute { node, route, oif } => {
                let h = self.handle(node)?;
                let msg = route_msg(route, *oif).map_err(|reason| Error::Request {
                    object: object(),
                    op: "build",
                    source: Box::new(rtnetlink::Error::InvalidNla(reason)),
                })?;
                self.req();
                let routes = h.rtnetlink().route();
                if matches!(c, Change::AddRoute { .. }) {
                    routes.add(msg).execute().await.map_err(rq("add"))?;
                } else {
                    routes.del(msg).execute().await.map_err(rq("delete"))?;
                }
                Ok(None)
            }
        }
    }
}

fn address_msg(index: u32, a: &IfAddr) -> netlink_packet_route::address::AddressMessage {
    match a.addr {
        IpAddr::V4(v4) => rtnetlink::AddressMessageBuilder::<std::net::Ipv4Addr>::new()
            .index(index)
            .address(v4, a.prefix_len)
            .build(),
        IpAddr::V6(v6) => rtnetlink::AddressMessageBuilder::<std::net::Ipv6Addr>::new()
            .index(index)
            .address(v6, a.prefix_len)
            .build(),
    }
}

fn route_msg(
    route: &Route,
    oif: Option<u32>,
) -> std::result::Result<netlink_packet_route::route::RouteMessage, String> {
    let p = route.prefix();
    let mut b = RouteMessageBuilder::<IpAddr>::new()
        .destination_prefix(p.addr, p.prefix_len)
        .map_err(|e| e.to_string())?;
    if let Some(g) = route.gateway {
        b = b.gateway(g).map_err(|e| e.to_string())?;
    }
    if let Some(i) = oif {
        b = b.output_interface(i);
    }
    if let Some(m) = route.metric {
        b = b.priority(m);
    }
    Ok(b.build())
}

/// The change that undoes `c`, if there is one to make (changes inside a
/// namespace this apply created go with the namespace).
fn invert(c: &Change, created: &HashSet<&str>) -> Option<Change> {
    let inside = |n: &str| created.contains(n);
    Some(match c {
        Change::CreateNamespace { node } => Change::RemoveNamespace { node: node.clone() },
        Change::RemoveNamespace { .. } | Change::DeleteLink { .. } => return None,
        // A veth into a namespace that stays is deleted from that side: the
        // kernel tears a removed namespace down asynchronously, and the
        // rollback must leave the state as it was when it returns.
        Change::CreateVeth {
            a,
            a_index,
            b,
            b_index,
        } => match (inside(&a.node), inside(&b.node)) {
            (true, true) => return None,
            (false, _) => Change::DeleteLink {
                node: a.node.clone(),
                name: a.name.clone(),
                index: *a_index,
            },
            (true, false) => Change::DeleteLink {
                node: b.node.clone(),
                name: b.name.clone(),
                index: *b_index,
            },
        },
        _ if inside(c.node()) => return None,
        Change::CreateBridge {
            node,
            bridge,
            index,
        } => Change::DeleteLink {
            node: node.clone(),
            name: bridge.name.clone(),
            index: *index,
        },
        Change::SetSysctl {
            node,
            key,
            value,
            old,
        } => {
            if old.is_empty() {
                return None;
            }
            Change::SetSysctl {
                node: node.clone(),
                key: key.clone(),
                value: old.clone(),
                old: value.clone(),
            }
        }
        // Attributes given to a link this apply created: nothing to restore.
        Change::SetLink { old, .. } if *old == LinkAttrs::default() => return None,
        Change::SetLink {
            node,
            name,
            index,
            set,
            old,
        } => Change::SetLink {
            node: node.clone(),
            name: name.clone(),
            index: *index,
            set: LinkAttrs {
                master: set
                    .master
                    .as_ref()
                    .map(|_| old.master.clone().unwrap_or(None)),
                ..old.clone()
            },
            old: set.clone(),
        },
        Change::AddAddress {
            node,
            device,
            index,
            address,
        } => Change::DeleteAddress {
            node: node.clone(),
            device: device.clone(),
            index: *index,
            address: *address,
        },
        Change::DeleteAddress {
            node,
            device,
            index,
            address,
        } => Change::AddAddress {
            node: node.clone(),
            device: device.clone(),
            index: *index,
            address: *address,
        },
        Change::AddRoute { node, route, oif } => Change::DeleteRoute {
            node: node.clone(),
            route: route.clone(),
            oif: *oif,
        },
        Change::DeleteRoute { node, route, oif } => Change::AddRoute {
            node: node.clone(),
            route: route.clone(),
            oif: *oif,
        },
    })
}
