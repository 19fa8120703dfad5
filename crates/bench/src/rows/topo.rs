//! Topology rows: build and destroy a topology of N namespaces joined by 2N
//! veth pairs, and change one link of it while it runs, against the same
//! work done with `ip` processes, `ip -batch`, a hand-written loop of the
//! toolkit's primitives and raw netlink sockets (the kernel's floor).
//!
//! The topology ([`Topo`]): nodes `0..N`, each a named namespace; link `i`
//! joins node `i` (`e0`) to node `i+1` (`e1`), link `N+i` joins node `i`
//! (`e2`) to node `i+2` (`e3`), all modulo N: a ring and a second ring of
//! stride 2, so every node has four veth ends. Link `L` is the /31
//! `10.0.0.0 + 2L`, its first end the even address; every end is up, and
//! every node's `lo` (as nstopo brings it up); every node has one route,
//! `172.16.0.0/12` via the far end of its `e0`. [`declaration`] gives the
//! same topology as an nstopo declaration.
//!
//! Sizes: N is 1,000 (200 with `--quick`), or `NSBENCH_TOPO_NODES` if set
//! (at least 5). Every sample starts once the kernel has freed the
//! namespaces of the one before (see [`freed`]), so no side pays for
//! another's backlog.

mod freed;
mod ip;
mod raw;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsFd, AsRawFd};
use std::time::{Duration, Instant};

use netlink_packet_route::link::{InfoData, InfoVeth, LinkMessage};
use netns::{Handle, OpenMode};
use rtnetlink::{LinkUnspec, LinkVeth};

use self::freed::Watcher;
use super::RowSpec;
use crate::harness::{BResult, Config, Measurement, Stats, Target, err};
use crate::scratch::{register, unique_name, unregister};

/// The ifindex of `lo` in every namespace.
const LO_INDEX: u32 = 1;
/// Prefix length of every link's addresses.
const LINK_PREFIX: u8 = 31;
/// Every node's one route: destination and prefix length (via the far end
/// of its `e0`).
const ROUTE: (Ipv4Addr, u8) = (Ipv4Addr::new(172, 16, 0, 0), 12);

pub(super) fn rows() -> Vec<RowSpec> {
    vec![
        RowSpec {
            name: "topo/build",
            about: "build N=1,000 namespaces + 2,000 veth pairs (addresses on both ends, all up, one route per node) with nstopo apply vs a hand-written concurrent loop of the toolkit's primitives (Handle::open, add_veth().peer_netns(), rtnetlink); floor: raw netlink from threads of our own; notes: `ip` processes (8 at a time) and `ip -batch`. NSBENCH_TOPO_NODES sets N",
            target: Target::RatioAtMost(1.1),
            run: |c| Box::pin(build(c)),
        },
        RowSpec {
            name: "topo/destroy",
            about: "remove the N-node topology with nstopo destroy vs a concurrent loop of RunDir::remove, timed until the kernel has freed every namespace (net_namespace slab objects N fewer); floor: umount+unlink from threads; notes: `ip netns del` processes, `ip -batch` netns del",
            target: Target::RatioAtMost(1.1),
            run: |c| Box::pin(destroy(c)),
        },
        RowSpec {
            name: "topo/live-change",
            about: "one veth link added to the running N-node topology (addresses, up) and removed again, through a watched nstopo::Live (diff against its nsdb view + apply + the view confirming), vs the same requests sent directly on netns handles (create veth with peer in place, addresses, up; delete), acked",
            target: Target::RatioAtMost(1.5),
            run: |c| Box::pin(live_change(c)),
        },
        RowSpec {
            name: "topo/build-phases",
            about: "what bounds a build: the raw-netlink build of the N-node topology (namespaces; veths; addresses, up and routes) and its removal (names; kernel freed) from 2 threads vs 1 thread; floor: 8 threads; notes give each phase",
            target: Target::None,
            run: |c| Box::pin(phases(c)),
        },
    ]
}

/// N: `NSBENCH_TOPO_NODES`, else 1,000 (200 with `--quick`), once nstopo
/// has accepted the declaration of that size. Also raises
/// the process's soft limit of open files to its hard limit: the loop holds
/// a handle (a namespace fd and a socket) per node, the raw floor a
/// namespace fd and a socket per node, more than a soft limit of 1,024
/// allows at N = 1,000.
fn nodes(cfg: &Config) -> BResult<usize> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
    }
    let n = match std::env::var("NSBENCH_TOPO_NODES") {
        Ok(v) => match v.parse::<usize>() {
            Ok(n) if n >= 5 => Ok(n),
            _ => Err(err(format!(
                "NSBENCH_TOPO_NODES={v:?}: want a number of nodes, at least 5"
            ))),
        },
        Err(_) => Ok(cfg.size(1000, 200)),
    }?;
    // nstopo must accept, at this size, the declaration ours applies.
    let names = Topo::new(n);
    names.forget();
    declaration(&names)?;
    Ok(n)
}

/// One veth pair of the topology.
#[derive(Clone, Debug)]
pub(crate) struct Link {
    /// The node of the first end (which creates the pair) and of the peer.
    pub(crate) a: usize,
    pub(crate) b: usize,
    pub(crate) a_if: &'static str,
    pub(crate) b_if: &'static str,
    /// The ifindex each end gets where a side can choose it (raw netlink).
    pub(crate) a_index: u32,
    pub(crate) b_index: u32,
    pub(crate) a_addr: Ipv4Addr,
    pub(crate) b_addr: Ipv4Addr,
}

/// One veth end as its node sees it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct End {
    pub(crate) name: &'static str,
    pub(crate) index: u32,
    pub(crate) addr: Ipv4Addr,
}

/// The topology of the rows (see the module docs), with fresh names.
#[derive(Debug)]
pub(crate) struct Topo {
    /// What every name starts with (the declaration's name).
    pub(crate) prefix: String,
    pub(crate) names: Vec<String>,
    pub(crate) links: Vec<Link>,
}

impl Topo {
    /// N nodes with fresh names, registered for the run's clean-up.
    fn new(n: usize) -> Topo {
        let prefix = unique_name("t");
        let names: Vec<String> = (0..n).map(|i| format!("{prefix}-{i}")).collect();
        for name in &names {
            register(name);
        }
        let addr = |l: usize, end: u32| Ipv4Addr::from(0x0a00_0000 + 2 * l as u32 + end);
        let mut links = Vec::with_capacity(2 * n);
        for (stride, a_if, b_if, a_index) in [(1, "e0", "e1", 10), (2, "e2", "e3", 12)] {
            for i in 0..n {
                let l = links.len();
                links.push(Link {
                    a: i,
                    b: (i + stride) % n,
                    a_if,
                    b_if,
                    a_index,
                    b_index: a_index + 1,
                    a_addr: addr(l, 0),
                    b_addr: addr(l, 1),
                });
            }
        }
        Topo {
            prefix,
            names,
            links,
        }
    }

    fn n(&self) -> usize {
        self.names.len()
    }

    /// The links node `i` creates (it holds their first end).
    pub(crate) fn links_from(&self, i: usize) -> [&Link; 2] {
        [&self.links[i], &self.links[self.n() + i]]
    }

    /// Node `i`'s four veth ends.
    pub(crate) fn ends(&self, i: usize) -> [End; 4] {
        let n = self.n();
        let (ring_in, chord_in) = (
            &self.links[(i + n - 1) % n],
            &self.links[n + (i + n - 2) % n],
        );
        let [ring, chord] = self.links_from(i);
        let a = |l: &Link| End {
            name: l.a_if,
            index: l.a_index,
            addr: l.a_addr,
        };
        let b = |l: &Link| End {
            name: l.b_if,
            index: l.b_index,
            addr: l.b_addr,
        };
        [a(ring), b(ring_in), a(chord), b(chord_in)]
    }

    /// The gateway of node `i`'s route: the far end of its `e0`.
    pub(crate) fn gateway(&self, i: usize) -> Ipv4Addr {
        self.links[i].b_addr
    }

    /// Removes every name and waits until the kernel has freed the
    /// namespaces (those that exist: a failed build may have made only
    /// some).
    async fn teardown(&self, watcher: &mut Watcher) -> BResult<()> {
        tokio::task::block_in_place(|| {
            let count = watcher.track(&self.names)?;
            let start = Instant::now();
            raw::remove_names(&self.names, threads())?;
            self.forget();
            watcher.wait(count, start).map(drop)
        })
    }

    fn forget(&self) {
        for name in &self.names {
            unregister(name);
        }
    }
}

/// The topology as an nstopo declaration: what `topo/build` applies.
fn declaration(topo: &Topo) -> BResult<nstopo::Topology> {
    let ifaddr = |a: Ipv4Addr, len: u8| {
        nstopo::IfAddr::new(IpAddr::V4(a), len).ok_or_else(|| err(format!("bad address {a}/{len}")))
    };
    let dst = nstopo::Destination::Prefix(ifaddr(ROUTE.0, ROUTE.1)?);
    let mut b = nstopo::Topology::builder(topo.prefix.as_str());
    for (i, name) in topo.names.iter().enumerate() {
        let route = nstopo::Route::to(dst).via(IpAddr::V4(topo.gateway(i)));
        b = b.node(nstopo::Node::new(name.as_str()).route(route));
    }
    for l in &topo.links {
        let a = nstopo::Endpoint::new(topo.names[l.a].as_str(), l.a_if)
            .address(ifaddr(l.a_addr, LINK_PREFIX)?);
        let z = nstopo::Endpoint::new(topo.names[l.b].as_str(), l.b_if)
            .address(ifaddr(l.b_addr, LINK_PREFIX)?);
        b = b.link(nstopo::Link::new(a, z));
    }
    Ok(b.build()?)
}

/// Threads of the raw sides: one per CPU.
fn threads() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// The ways of building and destroying a topology.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Way {
    /// nstopo.
    Ours,
    /// One `ip` process per command, [`ip::PROCESSES`] at a time.
    IpProcesses,
    /// `ip -batch`.
    IpBatch,
    /// A hand-written concurrent loop of the toolkit's primitives.
    Loop,
    /// Raw netlink sockets from threads of our own.
    Raw,
}

impl Way {
    fn label(self, op: Op) -> String {
        match (self, op) {
            (Way::Ours, Op::Build) => "nstopo apply".into(),
            (Way::Ours, Op::Destroy) => "nstopo destroy".into(),
            (Way::IpProcesses, Op::Build) => {
                format!("ip processes (ip -n NAME ..., {} at a time)", ip::PROCESSES)
            }
            (Way::IpProcesses, Op::Destroy) => {
                format!("ip netns del processes ({} at a time)", ip::PROCESSES)
            }
            (Way::IpBatch, Op::Build) => format!(
                "ip -batch ({} root batches, then ip -n NAME -batch per node, {} at a time)",
                ip::root_batches(),
                ip::PROCESSES
            ),
            (Way::IpBatch, Op::Destroy) => {
                format!("ip -batch netns del ({} batches)", ip::root_batches())
            }
            (Way::Loop, Op::Build) => {
                "toolkit loop (Handle::open, add_veth().peer_netns(), rtnetlink)".into()
            }
            (Way::Loop, Op::Destroy) => "toolkit loop (RunDir::remove, all at once)".into(),
            (Way::Raw, Op::Build) => format!("raw netlink, {} threads", threads()),
            (Way::Raw, Op::Destroy) => format!("umount+unlink, {} threads", threads()),
        }
    }

    /// The goal of ours against this way: ours/this at most.
    fn goal(self) -> Option<f64> {
        match self {
            Way::Ours => None,
            Way::IpProcesses => Some(1.0 / 15.0),
            Way::IpBatch => Some(1.0),
            Way::Loop => Some(1.1),
            Way::Raw => Some(1.2),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Build,
    Destroy,
}

/// Builds `topo` the way `way` does; returns the time until the last
/// request was acked (or the last `ip` exited). Whatever the way holds open
/// (handles, sockets) is closed before it returns, untimed.
async fn build_with(way: Way, topo: &Topo) -> BResult<Duration> {
    // The declaration is the user's input: made before the clock starts.
    let declared = declaration(topo)?;
    let start = Instant::now();
    match way {
        Way::Ours => {
            nstopo::apply(&declared, nstopo::Options::default()).await?;
        }
        Way::IpProcesses => ip::build_by_processes(topo).await?,
        Way::IpBatch => ip::build_by_batches(topo).await?,
        Way::Loop => return loop_build(topo).await,
        Way::Raw => {
            tokio::task::block_in_place(|| raw::build(topo, threads()))?;
        }
    }
    Ok(start.elapsed())
}

/// The hand-written loop: every namespace opened (created) at once, every
/// veth sent at once from its first node's handle with the peer born in the
/// second, then on every node at once: the four ifindexes looked up, the
/// addresses and ups (`lo` too) sent together, then the route.
async fn loop_build(topo: &Topo) -> BResult<Duration> {
    use futures::future::{try_join, try_join_all};
    let start = Instant::now();
    let handles = try_join_all(topo.names.iter().map(|n| {
        Handle::builder(n.as_str())
            .mode(OpenMode::CreateExclusive)
            .open()
    }))
    .await?;
    let res = async {
        try_join_all(topo.links.iter().map(|l| {
            handles[l.a]
                .add_veth(l.a_if, l.b_if)
                .peer_netns(&handles[l.b])
                .execute()
        }))
        .await?;
        try_join_all(handles.iter().enumerate().map(|(i, h)| async move {
            let ends = topo.ends(i);
            let mut index = try_join_all(ends.iter().map(|e| h.link_index(e.name))).await?;
            let rt = h.rtnetlink();
            index.push(LO_INDEX);
            try_join(
                try_join_all(ends.iter().zip(&index).map(|(e, &ix)| {
                    rt.address()
                        .add(ix, IpAddr::V4(e.addr), LINK_PREFIX)
                        .execute()
                })),
                try_join_all(index.iter().map(|&ix| {
                    rt.link()
                        .set(LinkUnspec::new_with_index(ix).up().build())
                        .execute()
                })),
            )
            .await?;
            let route = rtnetlink::RouteMessageBuilder::<Ipv4Addr>::new()
                .destination_prefix(ROUTE.0, ROUTE.1)
                .gateway(topo.gateway(i))
                .build();
            rt.route().add(route).execute().await?;
            Ok::<_, crate::harness::BoxError>(())
        }))
        .await?;
        Ok::<_, crate::harness::BoxError>(start.elapsed())
    }
    .await;
    futures::future::join_all(handles.into_iter().map(Handle::close)).await;
    res
}

/// Removes `topo` (declared as `declared`) the way `way` does; returns when
/// the last name is gone (the kernel frees the namespaces afterwards).
async fn destroy_with(way: Way, topo: &Topo, declared: &nstopo::Topology) -> BResult<()> {
    match way {
        Way::Ours => {
            nstopo::destroy(declared, nstopo::Options::default()).await?;
        }
        Way::IpProcesses => ip::destroy_by_processes(&topo.names).await?,
        Way::IpBatch => ip::destroy_by_batches(&topo.names).await?,
        Way::Loop => {
            let dir = nsfs::RunDir::default();
            let names = topo
                .names
                .iter()
                .map(|n| nsfs::NsName::new(n.clone()))
                .collect::<Result<Vec<_>, _>>()?;
            futures::future::try_join_all(names.iter().map(|n| dir.remove(n))).await?;
        }
        Way::Raw => tokio::task::block_in_place(|| raw::remove_names(&topo.names, threads()))?,
    }
    Ok(())
}

/// Builds a topology untimed, with nstopo (so that it owns it: its marker
/// and link group), for the rows that measure something else; returns it
/// with its declaration.
async fn prepare(n: usize, watcher: &mut Watcher) -> BResult<(Topo, nstopo::Topology)> {
    let topo = Topo::new(n);
    let res = async {
        let declared = declaration(&topo)?;
        nstopo::apply(&declared, nstopo::Options::default()).await?;
        Ok::<_, crate::harness::BoxError>(declared)
    }
    .await;
    match res {
        Ok(declared) => Ok((topo, declared)),
        Err(e) => {
            let _ = topo.teardown(watcher).await;
            Err(e)
        }
    }
}

/// Samples of each way, in seconds.
type Samples = BTreeMap<Way, Vec<f64>>;

/// Runs `one(way)` for every way in turn, round after round, the order
/// reversed every round, after one warm-up round; `ip` processes (slow) are
/// sampled in the first `ip_rounds` kept rounds only. Each call is one
/// sample, in microseconds.
async fn sample<F>(cfg: &Config, ways: &[Way], ip_rounds: usize, mut one: F) -> BResult<Samples>
where
    F: AsyncFnMut(Way) -> BResult<Duration>,
{
    let kept = ((cfg.size(5, 3) as f64 * cfg.scale).round() as usize).max(1);
    let mut out = Samples::new();
    for round in 0..kept + 1 {
        let mut order = ways.to_vec();
        if round % 2 == 1 {
            order.reverse();
        }
        for way in order {
            if way == Way::IpProcesses && (round == 0 || round > ip_rounds) {
                continue;
            }
            let t = one(way).await?;
            if round > 0 {
                out.entry(way).or_default().push(t.as_secs_f64() * 1e6);
            }
        }
    }
    Ok(out)
}

fn median(samples: &Samples, way: Way) -> Option<f64> {
    samples
        .get(&way)
        .and_then(|s| Stats::of(s).ok())
        .map(|s| s.median)
}

/// The row's result: ours against the loop, the raw floor, and every way's
/// median and ratio in the notes.
fn report(op: Op, n: usize, samples: &Samples, what: &str) -> BResult<Measurement> {
    let secs = |us: f64| format!("{:.2} s", us / 1e6);
    let mut notes = vec![format!("N={n} nodes, {} veth pairs, {what}", 2 * n)];
    for way in [Way::IpProcesses, Way::IpBatch, Way::Loop, Way::Raw] {
        if let Some(m) = median(samples, way) {
            notes.push(format!(
                "{}: median {} ({} samples)",
                way.label(op),
                secs(m),
                samples[&way].len()
            ));
        }
    }
    let ours = samples
        .get(&Way::Ours)
        .ok_or_else(|| err("ours was not sampled"))?;
    let ours_median = Stats::of(ours)?.median;
    for way in [Way::IpProcesses, Way::IpBatch, Way::Loop, Way::Raw] {
        if let (Some(m), Some(goal)) = (median(samples, way), way.goal()) {
            let r = ours_median / m;
            notes.push(format!(
                "ours / {}: {r:.3} (goal <= {goal:.3}: {})",
                way.label(op),
                if r <= goal { "met" } else { "NOT met" }
            ));
        }
    }
    let reference = samples
        .get(&Way::Loop)
        .ok_or_else(|| err("the loop was not sampled"))?;
    let floor = samples
        .get(&Way::Raw)
        .ok_or_else(|| err("the raw floor was not sampled"))?;
    let mut m = Measurement::versus(&Way::Ours.label(op), ours, &Way::Loop.label(op), reference)?
        .with_floor(&Way::Raw.label(op), floor)?;
    for note in notes {
        m = m.note(note);
    }
    Ok(m)
}

/// The ways a row samples.
const WAYS: [Way; 5] = [
    Way::Ours,
    Way::IpProcesses,
    Way::IpBatch,
    Way::Loop,
    Way::Raw,
];

/// Runs `row` with a watcher namespace, removed afterwards whatever happens.
async fn watched<F>(row: F) -> BResult<Measurement>
where
    F: AsyncFnOnce(&mut Watcher) -> BResult<Measurement>,
{
    let mut watcher = Watcher::new().await?;
    let res = row(&mut watcher).await;
    let removed = watcher.remove().await;
    let m = res?;
    removed?;
    Ok(m)
}

async fn build(cfg: &Config) -> BResult<Measurement> {
    let n = nodes(cfg)?;
    watched(async |w: &mut Watcher| {
        let samples = sample(cfg, &WAYS, cfg.size(2, 1), async |way| {
            let topo = Topo::new(n);
            let t = build_with(way, &topo).await;
            // The next build starts when the kernel has freed this one.
            topo.teardown(w)
                .await
                .map_err(|e| err(format!("after {}: {e}", way.label(Op::Build))))?;
            t
        })
        .await?;
        report(
            Op::Build,
            n,
            &samples,
            "each build starts once the kernel has freed the previous one",
        )
    })
    .await
}

async fn destroy(cfg: &Config) -> BResult<Measurement> {
    let n = nodes(cfg)?;
    watched(async |w: &mut Watcher| destroy_watched(cfg, n, w).await).await
}

async fn destroy_watched(cfg: &Config, n: usize, w: &mut Watcher) -> BResult<Measurement> {
    let mut gone: Samples = Samples::new();
    let samples = sample(cfg, &WAYS, cfg.size(2, 1), async |way| {
        let (topo, declared) = prepare(n, w).await?;
        let count = tokio::task::block_in_place(|| w.track(&topo.names))?;
        let start = Instant::now();
        let res = destroy_with(way, &topo, &declared).await;
        let names_gone = start.elapsed();
        if let Err(e) = res {
            let _ = tokio::task::block_in_place(|| {
                raw::remove_names(&topo.names, threads())?;
                topo.forget();
                w.wait(count, Instant::now())
            });
            return Err(e);
        }
        topo.forget();
        let freed = tokio::task::block_in_place(|| w.wait(count, start))?;
        gone.entry(way)
            .or_default()
            .push(names_gone.as_secs_f64() * 1e6);
        Ok(freed)
    })
    .await?;
    // `sample` dropped the warm-up round's samples; drop its names-gone too.
    for (way, g) in gone.iter_mut() {
        let keep = samples.get(way).map_or(0, Vec::len);
        let drop = g.len().saturating_sub(keep);
        g.drain(..drop);
    }
    let mut what = String::from(
        "timed until the kernel freed every namespace (its cleanup_net batch over); until the names were gone:",
    );
    for (way, g) in &gone {
        if let Ok(s) = Stats::of(g) {
            what.push_str(&format!(" {:?} {:.2} s", way, s.median / 1e6));
        }
    }
    report(Op::Destroy, n, &samples, &what)
}

/// A veth added to the running topology for the live-change row: its
/// message, with chosen ifindexes, the peer born in `peer`'s namespace.
fn live_veth(peer: &Handle) -> LinkMessage {
    let peer_msg = LinkUnspec::new_with_name("x1")
        .index(LIVE_INDEX + 1)
        .setns_by_fd(peer.netns().as_fd().as_raw_fd())
        .build();
    LinkVeth::new("x0", "x1")
        .index(LIVE_INDEX)
        .set_info_data(InfoData::Veth(InfoVeth::Peer(peer_msg)))
        .build()
}

const LIVE_INDEX: u32 = 20;
const LIVE_ADDRS: [Ipv4Addr; 2] = [
    Ipv4Addr::new(10, 255, 255, 0),
    Ipv4Addr::new(10, 255, 255, 1),
];

/// The reference of the live change: create the veth with its peer in
/// place, both addresses and both ups at once, acked; then delete it.
/// Returns (add, remove).
async fn live_direct(a: &Handle, b: &Handle) -> BResult<(Duration, Duration)> {
    use futures::future::try_join4;
    let start = Instant::now();
    a.rtnetlink().link().add(live_veth(b)).execute().await?;
    let (ra, rb) = (a.rtnetlink(), b.rtnetlink());
    try_join4(
        ra.address()
            .add(LIVE_INDEX, IpAddr::V4(LIVE_ADDRS[0]), LINK_PREFIX)
            .execute(),
        rb.address()
            .add(LIVE_INDEX + 1, IpAddr::V4(LIVE_ADDRS[1]), LINK_PREFIX)
            .execute(),
        ra.link()
            .set(LinkUnspec::new_with_index(LIVE_INDEX).up().build())
            .execute(),
        rb.link()
            .set(LinkUnspec::new_with_index(LIVE_INDEX + 1).up().build())
            .execute(),
    )
    .await?;
    let added = start.elapsed();
    let start = Instant::now();
    ra.link().del(LIVE_INDEX).execute().await?;
    Ok((added, start.elapsed()))
}

/// `IFA_F_TENTATIVE`: an IPv6 address whose duplicate address detection
/// is not done.
const IFA_F_TENTATIVE: u32 = 0x40;

/// Waits (polling, at most a minute) until no namespace of the watched
/// topology has a tentative IPv6 address.
async fn settled(live: &nstopo::Live) -> BResult<()> {
    let start = Instant::now();
    loop {
        let tentative = live
            .view()
            .snapshot()
            .namespaces()
            .any(|v| v.addresses().any(|a| a.flags & IFA_F_TENTATIVE != 0));
        if !tentative {
            return Ok(());
        }
        if start.elapsed() > Duration::from_secs(60) {
            return Err(err(
                "IPv6 addresses still tentative a minute after the build",
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn live_change(cfg: &Config) -> BResult<Measurement> {
    let n = nodes(cfg)?;
    watched(async |w: &mut Watcher| live_change_watched(cfg, n, w).await).await
}

async fn live_change_watched(cfg: &Config, n: usize, w: &mut Watcher) -> BResult<Measurement> {
    let (topo, declared) = prepare(n, w).await?;
    let res = async {
        // Ours: the declaration with one more link, applied; then the
        // declaration as it was, applied again.
        let mut changed = declared.clone();
        let end = |node: usize, name: &str, addr: Ipv4Addr| {
            let addr = nstopo::IfAddr::new(IpAddr::V4(addr), LINK_PREFIX)
                .ok_or_else(|| err(format!("bad address {addr}")))?;
            Ok::<_, crate::harness::BoxError>(
                nstopo::Endpoint::new(topo.names[node].as_str(), name).address(addr),
            )
        };
        changed.links.push(nstopo::Link::new(
            end(0, "x0", LIVE_ADDRS[0])?,
            end(n / 2, "x1", LIVE_ADDRS[1])?,
        ));
        let a = Handle::open(topo.names[0].as_str(), OpenMode::OpenOnly).await?;
        let b = Handle::open(topo.names[n / 2].as_str(), OpenMode::OpenOnly).await?;
        // Ours watches the topology (built before the clock starts): each
        // apply diffs against the view, sends the difference and waits
        // for the view to show it.
        let mut live = nstopo::Live::watch(&declared, nstopo::Options::default()).await?;
        // Off the clock, for both sides: the samples start once the
        // topology has settled. For seconds after a build the kernel is
        // still finishing duplicate address detection of the 4N IPv6
        // link-local addresses (one work item each, under RTNL), which
        // changes thousands of namespaces while the samples run.
        settled(&live).await?;
        let plan = cfg.plan(20, 10);
        // Per side: add+remove, add, remove (us).
        let mut got: [[Vec<f64>; 3]; 2] = Default::default();
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        let started = Instant::now();
        let res = async {
            for i in 0..plan.warmup + plan.samples {
                for side in if i % 2 == 0 { [0, 1] } else { [1, 0] } {
                    let (add, remove) = if side == 0 {
                        let start = Instant::now();
                        let r = live.apply(&changed).await?;
                        let add = start.elapsed();
                        if r.created + r.changed == 0 {
                            return Err(err("nstopo apply of the added link changed nothing"));
                        }
                        let start = Instant::now();
                        live.apply(&declared).await?;
                        (add, start.elapsed())
                    } else {
                        let took = live_direct(&a, &b).await?;
                        // Off the clock: the view sees the direct side's
                        // veth gone before ours diffs against it.
                        live.view()
                            .wait_for("the direct veth gone", Duration::from_secs(10), |s| {
                                s.namespaces()
                                    .all(|v| v.link("x0").is_none() && v.link("x1").is_none())
                            })
                            .await?;
                        took
                    };
                    if i >= plan.warmup {
                        got[side][0].push(us(add + remove));
                        got[side][1].push(us(add));
                        got[side][2].push(us(remove));
                    }
                }
                if i >= plan.warmup + 5 && started.elapsed() > plan.budget {
                    break;
                }
            }
            Ok::<_, crate::harness::BoxError>(())
        }
        .await;
        a.close().await;
        b.close().await;
        live.close().await;
        res?;
        let med = |v: &[f64]| Stats::of(v).map(|s| s.median);
        Ok(Measurement::versus(
            "nstopo Live::apply (+link), Live::apply (-link)",
            &got[0][0],
            "same requests sent directly, acked",
            &got[1][0],
        )?
        .note(format!(
            "N={n} nodes; add: ours {:.0} us, direct {:.0} us; remove: ours {:.0} us, direct {:.0} us",
            med(&got[0][1])?,
            med(&got[1][1])?,
            med(&got[0][2])?,
            med(&got[1][2])?
        ))
        .note("ours: the topology watched through an nsdb view (built before the clock, samples once no IPv6 address is tentative); each apply diffs against the view, sends the difference and waits until the view shows it; direct: one veth request with the peer in place, two addresses and two ups at once, then one delete"))
    }
    .await;
    topo.teardown(w).await?;
    res
}

async fn phases(cfg: &Config) -> BResult<Measurement> {
    let n = nodes(cfg)?;
    watched(async |w: &mut Watcher| phases_watched(cfg, n, w).await).await
}

async fn phases_watched(cfg: &Config, n: usize, w: &mut Watcher) -> BResult<Measurement> {
    let rounds = ((cfg.size(5, 3) as f64 * cfg.scale).round() as usize).max(1);
    let widths = [1usize, 2, 8];
    // Per width: build phases, total, names removed, kernel freed (us).
    let mut got: BTreeMap<usize, [Vec<f64>; 6]> = BTreeMap::new();
    for round in 0..rounds + 1 {
        let mut order = widths.to_vec();
        if round % 2 == 1 {
            order.reverse();
        }
        for t in order {
            let topo = Topo::new(n);
            let built = tokio::task::block_in_place(|| raw::build(&topo, t));
            if built.is_err() {
                topo.teardown(w).await?;
            }
            let p = built?;
            let (names_gone, freed) = tokio::task::block_in_place(|| -> BResult<_> {
                let count = w.track(&topo.names)?;
                let start = Instant::now();
                raw::remove_names(&topo.names, t)?;
                let names_gone = start.elapsed();
                topo.forget();
                Ok((names_gone, w.wait(count, start)?))
            })?;
            if round > 0 {
                let us = |d: Duration| d.as_secs_f64() * 1e6;
                let v = got.entry(t).or_default();
                for (k, d) in [p.create, p.veths, p.config, p.total(), names_gone, freed]
                    .into_iter()
                    .enumerate()
                {
                    v[k].push(us(d));
                }
            }
        }
    }
    let med = |t: usize, k: usize| Stats::of(&got[&t][k]).map(|s| s.median);
    let mut m = Measurement::versus(
        "raw build, 2 threads",
        &got[&2][3],
        "raw build, 1 thread",
        &got[&1][3],
    )?
    .with_floor("raw build, 8 threads", &got[&8][3])?
    .note(format!("N={n} nodes, {} veth pairs; medians in ms", 2 * n));
    for t in widths {
        m = m.note(format!(
            "{t} thread(s): namespaces {:.0}, veths {:.0}, addresses+up+routes {:.0}, total {:.0}; removal: names gone {:.0}, kernel freed {:.0}",
            med(t, 0)? / 1e3,
            med(t, 1)? / 1e3,
            med(t, 2)? / 1e3,
            med(t, 3)? / 1e3,
            med(t, 4)? / 1e3,
            med(t, 5)? / 1e3,
        ));
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_node_has_four_distinct_ends_and_links_pair_up() {
        let topo = Topo::new(7);
        topo.forget();
        assert_eq!(topo.links.len(), 14);
        let mut addrs = std::collections::HashSet::new();
        for i in 0..7 {
            let ends = topo.ends(i);
            let names: std::collections::HashSet<_> = ends.iter().map(|e| e.name).collect();
            let indexes: std::collections::HashSet<_> = ends.iter().map(|e| e.index).collect();
            assert_eq!((names.len(), indexes.len()), (4, 4));
            for e in ends {
                assert!(addrs.insert(e.addr), "{} twice", e.addr);
            }
            // The gateway is the far end of e0, on e0's /31.
            assert_eq!(u32::from(topo.gateway(i)) ^ 1, u32::from(ends[0].addr));
        }
        assert_eq!(addrs.len(), 28);
        let script = ip::node_script(&topo, 3);
        assert_eq!(script.lines().count(), 10);
        assert!(script.ends_with(&format!(
            "route add 172.16.0.0/12 via {}\n",
            topo.gateway(3)
        )));
        let (create, veths, config) = ip::commands(&topo);
        assert_eq!((create.len(), veths.len(), config.len()), (7, 14, 7));
        assert!(config.iter().all(|c| c.len() == 10));
        // nstopo accepts the same topology as a declaration.
        let decl = declaration(&topo).unwrap();
        assert_eq!((decl.nodes.len(), decl.links.len()), (7, 14));
        assert_eq!(decl.nodes[3].routes.len(), 1);
    }
}
