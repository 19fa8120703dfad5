//! nsdb rows: how soon the live view shows a change made with `ip`, the
//! view's memory for 2,000 links and 10,000 addresses, and a transaction
//! commit of one change against the same change sent through rtnetlink.

use std::cell::Cell;
use std::time::{Duration, Instant};

use ::nsdb::{Namespace, View};
use futures::TryStreamExt;

use super::RowSpec;
use crate::harness::{BResult, BoxError, Config, Measurement, Target, Unit, err, pair};
use crate::scratch::{Scratch, run_quiet};
use crate::worker::{Worker, rss_anon_kib};

pub(super) fn rows() -> Vec<RowSpec> {
    vec![
        RowSpec {
            name: "nsdb/ip-change-latency",
            about: "from the start of `ip -n NAME link set ifb0 mtu M` to the nsdb view showing the new mtu (ours) vs to that ip process exiting (reference); both timed from the same start, in the same sample",
            target: Target::None,
            run: |c| Box::pin(change_latency(c, false)),
        },
        RowSpec {
            name: "nsdb/rtnetlink-change-latency",
            about: "from sending `set mtu` through rtnetlink (a direct netns::Handle) to the nsdb view showing the new mtu (ours) vs to the kernel's ack (reference); both from the same request",
            target: Target::None,
            run: |c| Box::pin(change_latency(c, true)),
        },
        RowSpec {
            name: "nsdb/view-memory",
            about: "heap (RssAnon growth) of a worker process building an nsdb view of a netns with 2,000 links and 10,000 addresses vs of a worker holding the same plain rtnetlink dump (Vec<LinkMessage> + Vec<AddressMessage>)",
            target: Target::None,
            run: |c| Box::pin(view_memory(c)),
        },
        RowSpec {
            name: "nsdb/commit-vs-rtnetlink",
            about: "an nsdb transaction setting one link's mtu, committed and confirmed by the view, vs the same request sent through rtnetlink (netns::Handle, direct) and acked",
            target: Target::RatioAtMost(1.5),
            run: |c| Box::pin(commit(c)),
        },
    ]
}

/// Memory operations a worker process measures for the rows of this module
/// (KiB of RssAnon growth).
pub(super) async fn worker_value(op: &str, arg: &str) -> Option<BResult<u64>> {
    match op {
        "mem-view" => Some(mem_view(arg).await),
        "mem-msgs" => Some(mem_msgs(arg).await),
        _ => None,
    }
}

fn anon() -> BResult<u64> {
    rss_anon_kib(std::process::id()).ok_or_else(|| err("no RssAnon in /proc/self/status"))
}

async fn mem_view(name: &str) -> BResult<u64> {
    let ns = Namespace::named(name)?;
    let before = anon()?;
    let view = View::builder().namespace(ns.clone()).build().await?;
    let snap = view.snapshot();
    let links = snap.namespace(&ns).map_or(0, |v| v.links().count());
    let after = anon()?;
    drop(snap);
    drop(view);
    if links == 0 {
        return Err(err("the view shows no links"));
    }
    Ok(after.saturating_sub(before))
}

async fn mem_msgs(name: &str) -> BResult<u64> {
    let before = anon()?;
    let h = netns::Handle::open(name, netns::OpenMode::OpenOnly).await?;
    let links: Vec<_> = h.rtnetlink().link().get().execute().try_collect().await?;
    let addrs: Vec<_> = h
        .rtnetlink()
        .address()
        .get()
        .execute()
        .try_collect()
        .await?;
    let after = anon()?;
    drop((links, addrs));
    h.close().await;
    Ok(after.saturating_sub(before))
}

/// How soon the view shows a change made outside it: by an `ip` process, or
/// (`by_rtnetlink`) by a request on a separate rtnetlink handle.
async fn change_latency(cfg: &Config, by_rtnetlink: bool) -> BResult<Measurement> {
    let s = Scratch::new("db").await?;
    let res = async {
        s.ip(&["link", "add", "ifb0", "type", "ifb"]).await?;
        let ns = Namespace::named(&s.name)?;
        let view = View::builder().namespace(ns.clone()).build().await?;
        let h = netns::Handle::open(s.name.as_str(), netns::OpenMode::OpenOnly).await?;
        let index = h.link_index("ifb0").await?;
        let plan = cfg.plan(if by_rtnetlink { 2000 } else { 300 }, if by_rtnetlink { 400 } else { 60 });
        let (mut o, mut r) = (Vec::new(), Vec::new());
        let start = Instant::now();
        for i in 0..plan.warmup + plan.samples {
            let mtu = 1000 + (i % 500) as u32;
            let mtu_s = mtu.to_string();
            let t0 = Instant::now();
            let by_ip = async {
                if by_rtnetlink {
                    let msg = rtnetlink::LinkUnspec::new_with_index(index).mtu(mtu).build();
                    h.rtnetlink().link().set(msg).execute().await?;
                } else {
                    run_quiet("ip", &["-n", &s.name, "link", "set", "ifb0", "mtu", &mtu_s]).await?;
                }
                Ok::<_, BoxError>(t0.elapsed())
            };
            let in_view = async {
                view.wait_for("new mtu", Duration::from_secs(5), |snap| {
                    snap.link(&ns, "ifb0").and_then(|l| l.mtu) == Some(mtu)
                })
                .await?;
                Ok::<_, BoxError>(t0.elapsed())
            };
            let (a, b) = tokio::join!(by_ip, in_view);
            if i >= plan.warmup {
                r.push(a?.as_secs_f64() * 1e6);
                o.push(b?.as_secs_f64() * 1e6);
            }
            if i >= plan.warmup + 5 && start.elapsed() > plan.budget {
                break;
            }
        }
        h.close().await;
        let lag: Vec<f64> = o.iter().zip(&r).map(|(v, i)| v - i).collect();
        let lag = crate::harness::Stats::of(&lag)?;
        let (reference, done) =
            if by_rtnetlink { ("rtnetlink ack", "the ack") } else { ("ip process exits", "ip exited") };
        Ok(Measurement::versus("view shows the change", &o, reference, &r)?.note(format!(
            "view minus {reference}, per sample: median {:.0} us, p90 {:.0} us (negative: the view saw it before {done})",
            lag.median, lag.p90
        )))
    }
    .await;
    s.remove().await?;
    res
}

async fn view_memory(cfg: &Config) -> BResult<Measurement> {
    let links = cfg.size(2000, 500);
    let addrs = cfg.size(10_000, 2000);
    let s = super::rtnl::populated(links, addrs).await?;
    let res = async {
        let mut o = Vec::new();
        let mut r = Vec::new();
        for i in 0..cfg.size(6, 3) {
            for op in if i % 2 == 0 {
                ["mem-view", "mem-msgs"]
            } else {
                ["mem-msgs", "mem-view"]
            } {
                let mut w = Worker::start(0).await?;
                let v = w.values(op, &s.name, 1).await;
                w.stop().await?;
                let v = v?
                    .first()
                    .copied()
                    .ok_or_else(|| err("worker gave no value"))? as f64;
                if op == "mem-view" {
                    o.push(v)
                } else {
                    r.push(v)
                }
            }
        }
        let mut m = Measurement::versus("nsdb View", &o, "plain rtnetlink messages", &r)?;
        m.unit = Unit::KiB;
        Ok(m.note(format!(
            "{links} links, {addrs} addresses; each sample a fresh worker process"
        )))
    }
    .await;
    s.remove().await?;
    res
}

async fn commit(cfg: &Config) -> BResult<Measurement> {
    let s = Scratch::new("db").await?;
    let res = async {
        s.ip(&["link", "add", "ifb0", "type", "ifb"]).await?;
        let ns = Namespace::named(&s.name)?;
        let view = View::builder().namespace(ns.clone()).build().await?;
        let h = netns::Handle::open(s.name.as_str(), netns::OpenMode::OpenOnly).await?;
        let index = h.link_index("ifb0").await?;
        let next = Cell::new(0u32);
        let mtu = || {
            next.set(next.get() + 1);
            1000 + next.get() % 500
        };
        let mut ours = async || {
            let m = mtu();
            let mut tx = view.transaction();
            tx.link(&ns, "ifb0")?.set_mtu(m);
            let start = Instant::now();
            tx.commit().await?;
            Ok(vec![start.elapsed()])
        };
        let mut reference = async || {
            let m = mtu();
            let msg = rtnetlink::LinkUnspec::new_with_index(index).mtu(m).build();
            let start = Instant::now();
            h.rtnetlink().link().set(msg).execute().await?;
            Ok(vec![start.elapsed()])
        };
        let res = pair(cfg.plan(500, 100), &mut ours, &mut reference).await;
        h.close().await;
        let [o, r] = res?;
        Measurement::versus("nsdb commit (confirmed)", &o, "rtnetlink set, acked", &r)
    }
    .await;
    s.remove().await?;
    res
}
