//! Scale rows: an nsdb view of a ring of namespaces (`topo/view`) and
//! thousands of open `netns::Handle`s in one process (`scale/handles`).
//!
//! Each sample runs in a fresh worker process, so that its memory (RssAnon
//! growth), fds and threads are its own: the worker does the whole thing,
//! keeps the figures, answers the memory, and is then asked for the others
//! (`mem-scale-stat`). Sizes: `topo/view` 1,000 namespaces (100 with
//! `--quick`, `NSBENCH_VIEW_N` overrides), `scale/handles` 10,000 (500 with
//! `--quick`, `NSBENCH_HANDLES_N` overrides).
//!
//! A worker raises its `RLIMIT_NOFILE` to what the run needs: the soft limit
//! to the hard one, and, as root, the hard one too where it is lower
//! (two fds per handle: 10,000 handles need 20,000 fds and more, where
//! many systems set the hard limit at 4,096 to 20,000).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use ::nsdb::{Namespace, View};
use futures::{StreamExt, TryStreamExt};
use nsfs::{NsName, OpenMode, RunDir};

use super::RowSpec;
use crate::harness::{BResult, Config, Measurement, Target, Unit, err};
use crate::scratch::{register, unique_name, unregister};
use crate::worker::{Worker, rss_anon_kib};

pub(super) fn rows() -> Vec<RowSpec> {
    vec![
        RowSpec {
            name: "topo/view",
            about: "an nsdb view (listing every namespace) of a ring of N namespaces, each with a veth pair to the next (N = 1,000; --quick 100; NSBENCH_VIEW_N), built until every link names its peer's namespace, vs the same namespaces read by hand: a netns::Handle per namespace dumping links, addresses and routes, 32 at once (what a program without nsdb does to read them once); each sample a fresh worker process (time, RssAnon growth, fds and threads per namespace in the notes)",
            target: Target::None,
            run: |c| Box::pin(topo_view(c)),
        },
        RowSpec {
            name: "scale/handles",
            about: "N namespaces (10,000; --quick 500; NSBENCH_HANDLES_N), each with an open netns::Handle in one worker process, opened 64 at once: time to open all (goal: under 10 s), vs the floor of a namespace fd and a plain netlink socket made in each (no connection task); RssAnon growth (goal: under 200 MiB), fds and threads in the notes",
            target: Target::AbsAtMost(10_000_000.0),
            run: |c| Box::pin(handles(c)),
        },
    ]
}

/// How many namespaces a row uses: `full` or `quick`, or the environment's.
fn size(cfg: &Config, var: &str, full: usize, quick: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| cfg.size(full, quick))
}

/// How many set-up operations run at once.
const AT_ONCE: usize = 32;

/// The figures of the last run in this worker, other than its memory.
#[derive(Clone, Copy, Debug, Default)]
struct Figures {
    nanos: u64,
    fds: u64,
    threads: u64,
}

static LAST: Mutex<Figures> = Mutex::new(Figures {
    nanos: 0,
    fds: 0,
    threads: 0,
});

/// Memory operations a worker measures for these rows: each runs one
/// sample (argument `PREFIX:N`) and returns its RssAnon growth in KiB; the
/// other figures are kept for `mem-scale-stat time|fds|threads`.
pub(super) async fn worker_value(op: &str, arg: &str) -> Option<BResult<u64>> {
    let run = match op {
        "mem-scale-view" => Run::View,
        "mem-scale-dump" => Run::Dump,
        "mem-scale-handles" => Run::Handles,
        "mem-scale-sockets" => Run::Sockets,
        "mem-scale-stat" => {
            let f = *LAST.lock().unwrap_or_else(|e| e.into_inner());
            return Some(match arg {
                "time" => Ok(f.nanos),
                "fds" => Ok(f.fds),
                "threads" => Ok(f.threads),
                other => Err(err(format!("unknown figure {other:?}"))),
            });
        }
        _ => return None,
    };
    Some(measure(run, arg).await)
}

#[derive(Clone, Copy, Debug)]
enum Run {
    View,
    Dump,
    Handles,
    Sockets,
}

fn count(dir: &str) -> BResult<u64> {
    Ok(std::fs::read_dir(dir)?.count() as u64)
}

fn anon() -> BResult<u64> {
    rss_anon_kib(std::process::id()).ok_or_else(|| err("no RssAnon in /proc/self/status"))
}

/// Raises `RLIMIT_NOFILE` to at least `need` (soft to hard; as root, the
/// hard limit too, up to `fs.nr_open`).
#[allow(unsafe_code)]
fn raise_fd_limit(need: u64) -> BResult<()> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the valid rlimit it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    let hard = lim.rlim_max;
    if lim.rlim_max < need && nix::unistd::geteuid().is_root() {
        let max: u64 = std::fs::read_to_string("/proc/sys/fs/nr_open")?
            .trim()
            .parse()?;
        lim.rlim_max = need.min(max);
    }
    lim.rlim_cur = lim.rlim_max;
    // SAFETY: setrlimit reads the valid, initialised rlimit it is given.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } == 0 {
        return Ok(());
    }
    let e = std::io::Error::last_os_error();
    if lim.rlim_max == hard || e.raw_os_error() != Some(libc::EPERM) {
        return Err(e.into());
    }
    // Root without CAP_SYS_RESOURCE in its bounding set (a container):
    // the hard limit stays, the soft limit goes up to it, and a run that
    // needs more fails when it runs out, saying so.
    lim.rlim_max = hard;
    lim.rlim_cur = hard;
    // SAFETY: as above.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    Ok(())
}

fn names(prefix: &str, n: usize) -> BResult<Vec<NsName>> {
    (0..n)
        .map(|i| Ok(NsName::new(format!("{prefix}{i}"))?))
        .collect()
}

/// One sample in this worker; returns RssAnon growth (KiB), keeps the rest.
async fn measure(run: Run, arg: &str) -> BResult<u64> {
    let (prefix, n) = arg
        .rsplit_once(':')
        .ok_or_else(|| err(format!("bad argument {arg:?}")))?;
    let n: usize = n.parse()?;
    let names = names(prefix, n)?;
    raise_fd_limit(3 * n as u64 + 1024)?;
    let (fds0, threads0, anon0) = (count("/proc/self/fd")?, count("/proc/self/task")?, anon()?);
    let start = Instant::now();
    // What is held while the figures are taken.
    let held: Box<dyn std::any::Any> = match run {
        Run::View => {
            let view = names
                .iter()
                .fold(View::builder(), |b, name| {
                    b.namespace(Namespace::Named(name.clone()))
                })
                .build()
                .await?;
            view.wait_for("every peer named", Duration::from_secs(60), |s| {
                ring_named(s, &names)
            })
            .await?;
            Box::new(view)
        }
        Run::Dump => {
            let dumps: Vec<_> = futures::stream::iter(names.iter().cloned())
                .map(|name| async move {
                    let h = netns::Handle::open(name, OpenMode::OpenOnly).await?;
                    let r = h.rtnetlink();
                    let links: Vec<_> = r.link().get().execute().try_collect().await?;
                    let addrs: Vec<_> = r.address().get().execute().try_collect().await?;
                    let routes: Vec<_> = r
                        .route()
                        .get(netlink_packet_route::route::RouteMessage::default())
                        .execute()
                        .try_collect()
                        .await?;
                    h.close().await;
                    Ok::<_, crate::harness::BoxError>((links, addrs, routes))
                })
                .buffer_unordered(AT_ONCE)
                .try_collect()
                .await?;
            Box::new(dumps)
        }
        Run::Handles => {
            let handles: Vec<netns::Handle> = futures::stream::iter(names.iter().cloned())
                .map(|name| netns::Handle::open(name, OpenMode::OpenOnly))
                .buffer_unordered(64)
                .try_collect()
                .await?;
            Box::new(handles)
        }
        Run::Sockets => {
            let dir = RunDir::default();
            let sockets: Vec<_> = futures::stream::iter(names.iter().cloned())
                .map(|name| {
                    let dir = dir.clone();
                    async move {
                        let ns = dir.open(&name)?;
                        let socket = crate::rawnl::RawSocket::open(&ns, 0).await?;
                        Ok::<_, crate::harness::BoxError>((ns, socket))
                    }
                })
                .buffer_unordered(64)
                .try_collect()
                .await?;
            Box::new(sockets)
        }
    };
    let nanos = u64::try_from(start.elapsed().as_nanos())?;
    let figures = Figures {
        nanos,
        fds: count("/proc/self/fd")?.saturating_sub(fds0),
        threads: count("/proc/self/task")?.saturating_sub(threads0),
    };
    let grown = anon()?.saturating_sub(anon0);
    drop(held);
    *LAST.lock().unwrap_or_else(|e| e.into_inner()) = figures;
    Ok(grown)
}

/// Whether every ring link of `names` names its peer's namespace.
fn ring_named(s: &::nsdb::Snapshot, names: &[NsName]) -> bool {
    let n = names.len();
    (0..n).all(|i| {
        let Some(v) = s.namespace(&Namespace::Named(names[i].clone())) else {
            return false;
        };
        let next = Namespace::Named(names[(i + 1) % n].clone());
        v.link(&format!("r{i}"))
            .and_then(|l| v.peer(l))
            .is_some_and(|p| p.namespace.as_ref() == Some(&next))
    })
}

/// `n` namespaces named `PREFIX<i>`, registered for clean-up; with `ring`,
/// a veth pair from each to the next (`r<i>` in i, `l<i+1>` in i+1, each
/// end born in its namespace).
struct Many {
    prefix: String,
    n: usize,
}

impl Many {
    async fn create(tag: &str, n: usize, ring: bool) -> BResult<Many> {
        raise_fd_limit(3 * n as u64 + 1024)?;
        let prefix = format!("{}-", unique_name(tag));
        let many = Many { prefix, n };
        let names = names(&many.prefix, n)?;
        for name in &names {
            register(name.as_str());
        }
        let dir = RunDir::default();
        futures::stream::iter(names.iter().cloned())
            .map(|name| {
                let dir = dir.clone();
                async move {
                    dir.create(&name, OpenMode::CreateExclusive).await?;
                    Ok::<_, crate::harness::BoxError>(())
                }
            })
            .buffer_unordered(AT_ONCE)
            .try_collect::<()>()
            .await?;
        if ring {
            futures::stream::iter(0..n)
                .map(|i| {
                    let (here, next) = (names[i].clone(), names[(i + 1) % n].clone());
                    async move {
                        let h = netns::Handle::open(here, OpenMode::OpenOnly).await?;
                        h.add_veth(format!("r{i}"), format!("l{}", (i + 1) % n))
                            .peer_netns(next)
                            .execute()
                            .await?;
                        h.close().await;
                        Ok::<_, crate::harness::BoxError>(())
                    }
                })
                .buffer_unordered(AT_ONCE)
                .try_collect::<()>()
                .await?;
        }
        Ok(many)
    }

    fn arg(&self) -> String {
        format!("{}:{}", self.prefix, self.n)
    }

    async fn remove(self) -> BResult<()> {
        let names = names(&self.prefix, self.n)?;
        let dir = RunDir::default();
        futures::stream::iter(names.iter().cloned())
            .map(|name| {
                let dir = dir.clone();
                async move { dir.remove(&name).await }
            })
            .buffer_unordered(AT_ONCE)
            .try_collect::<()>()
            .await?;
        for name in &names {
            unregister(name.as_str());
        }
        Ok(())
    }
}

/// One sample of `op` in a fresh worker: (time us, RssAnon KiB, fds,
/// threads).
async fn sample(op: &str, arg: &str) -> BResult<[f64; 4]> {
    let mut w = Worker::start(0).await?;
    let res = async {
        let mem = w.values(op, arg, 1).await?;
        let mut out = [0.0, mem.first().copied().unwrap_or(0) as f64, 0.0, 0.0];
        for (i, what) in [(0, "time"), (2, "fds"), (3, "threads")] {
            let v = w.values("mem-scale-stat", what, 1).await?;
            out[i] = v.first().copied().unwrap_or(0) as f64;
        }
        out[0] /= 1e3;
        Ok::<_, crate::harness::BoxError>(out)
    }
    .await;
    w.stop().await?;
    res
}

/// Samples `ours` and `reference` in turn, `rounds` times each (order
/// reversed every round); returns the four figures of every sample.
async fn rounds(
    rounds: usize,
    ours: &str,
    reference: &str,
    arg: &str,
) -> BResult<[Vec<[f64; 4]>; 2]> {
    let mut out: [Vec<[f64; 4]>; 2] = Default::default();
    // A warm-up of each, thrown away (page cache, the kernel's slabs).
    sample(ours, arg).await?;
    sample(reference, arg).await?;
    for r in 0..rounds {
        let order = if r % 2 == 0 { [0, 1] } else { [1, 0] };
        for side in order {
            let op = if side == 0 { ours } else { reference };
            out[side].push(sample(op, arg).await?);
        }
    }
    Ok(out)
}

/// The median of figure `i` of the samples `v`, as the harness takes it.
fn median(v: &[[f64; 4]], i: usize) -> f64 {
    let x: Vec<f64> = v.iter().map(|s| s[i]).collect();
    crate::harness::Stats::of(&x).map_or(0.0, |s| s.median)
}

/// "RssAnon +X MiB (Y KiB per namespace), Z fds (W per namespace), T
/// threads" of the median sample.
fn costs(what: &str, v: &[[f64; 4]], n: usize) -> String {
    let (mem, fds, threads) = (median(v, 1), median(v, 2), median(v, 3));
    format!(
        "{what}: RssAnon +{:.1} MiB ({:.1} KiB per namespace), {fds:.0} fds ({:.2} per namespace), {threads:.0} threads more; {:.0} us per namespace",
        mem / 1024.0,
        mem / n as f64,
        fds / n as f64,
        median(v, 0) / n as f64,
    )
}

async fn topo_view(cfg: &Config) -> BResult<Measurement> {
    let n = size(cfg, "NSBENCH_VIEW_N", 1000, 100);
    let many = Many::create("tv", n, true).await?;
    let res = async {
        let [o, r] = rounds(
            cfg.size(5, 2),
            "mem-scale-view",
            "mem-scale-dump",
            &many.arg(),
        )
        .await?;
        let times = |v: &[[f64; 4]]| v.iter().map(|s| s[0]).collect::<Vec<_>>();
        Ok(Measurement::versus(
            "nsdb view built, every peer named",
            &times(&o),
            "Handle per namespace, dumps",
            &times(&r),
        )?
        .note(format!("{n} namespaces in a veth ring (2 veth ends each)"))
        .note(costs("view", &o, n))
        .note(costs("dumps (held)", &r, n)))
    }
    .await;
    many.remove().await?;
    res
}

/// Fds a worker keeps besides two per namespace (its runtime, executor,
/// pipes, libraries).
const FD_RESERVE: u64 = 1024;

/// The number of namespaces of `wanted` that this machine's fd limit lets
/// one process hold with two fds each: the limit is raised first as far as
/// it goes (a worker raises its own the same way). Root without
/// `CAP_SYS_RESOURCE` (a container) cannot pass the hard limit.
#[allow(unsafe_code)]
fn fit_fd_limit(wanted: usize) -> BResult<usize> {
    raise_fd_limit(2 * wanted as u64 + FD_RESERVE)?;
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the valid rlimit it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    let fit = lim.rlim_cur.saturating_sub(FD_RESERVE) / 2;
    Ok(wanted.min(usize::try_from(fit).unwrap_or(usize::MAX)))
}

async fn handles(cfg: &Config) -> BResult<Measurement> {
    let wanted = size(cfg, "NSBENCH_HANDLES_N", 10_000, 500);
    let n = fit_fd_limit(wanted)?;
    let many = Many::create("sh", n, false).await?;
    let res = async {
        let [o, r] = rounds(
            cfg.size(3, 2),
            "mem-scale-handles",
            "mem-scale-sockets",
            &many.arg(),
        )
        .await?;
        let times = |v: &[[f64; 4]]| v.iter().map(|s| s[0]).collect::<Vec<_>>();
        let mem = median(&o, 1);
        let mut m = Measurement::versus(
            "open N netns::Handles",
            &times(&o),
            "fd + plain netlink socket each",
            &times(&r),
        )?
        .note(format!("{n} namespaces, each handle opened by name"))
        .note(if n < wanted {
            format!(
                "N={n}, not {wanted}: this machine's open-file limit (two fds per handle) cannot be raised further (no CAP_SYS_RESOURCE)"
            )
        } else {
            format!("N={n}")
        })
        .note(costs("handles", &o, n))
        .note(costs("floor", &r, n))
        .note(format!(
            "memory goal: RssAnon growth under 200 MiB: {:.1} MiB ({})",
            mem / 1024.0,
            if mem <= 200.0 * 1024.0 {
                "met"
            } else {
                "NOT met"
            }
        ));
        m.unit = Unit::Us;
        Ok(m)
    }
    .await;
    many.remove().await?;
    res
}
