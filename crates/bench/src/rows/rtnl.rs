//! netns rows: open a handle, get-link round trip, 64 requests in flight,
//! dumps of 2,000 links and 10,000 addresses, and moving a veth peer by name.

use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use netns::{Handle, OpenMode, Transport};

use super::{NotYet, RowSpec};
use crate::harness::{BResult, Config, Measurement, Target, err, pair, triple};
use crate::rawnl::{Dump, RawSocket};
use crate::scratch::{Scratch, run_quiet};

pub(super) fn rows() -> Vec<RowSpec> {
    vec![
        RowSpec {
            name: "netns/open-first-answer",
            about: "netns::Handle::open (direct transport) on a named netns and the answer to get-link 1 vs rtnetlink::new_connection() in the root netns and the same answer",
            target: Target::RatioAtMost(1.5),
            run: |c| Box::pin(open_first_answer(c)),
        },
        RowSpec {
            name: "netns/get-link-direct",
            about: "round trip of get-link 1 through a netns::Handle (direct transport) vs plain rtnetlink in the root netns",
            target: Target::RatioAtMost(1.1),
            run: |c| Box::pin(get_link(c, Transport::Direct)),
        },
        RowSpec {
            name: "netns/get-link-relay",
            about: "round trip of get-link 1 through a netns::Handle (relay transport, nsproxy agent) vs plain rtnetlink in the root netns",
            target: Target::RatioAtMost(1.8),
            run: |c| Box::pin(get_link(c, Transport::Relay)),
        },
        RowSpec {
            name: "netns/inflight64-direct",
            about: "time for 1,000 get-link requests with 64 in flight (direct transport) vs plain rtnetlink in the root netns; notes give requests/s",
            target: Target::None,
            run: |c| Box::pin(inflight(c, Transport::Direct)),
        },
        RowSpec {
            name: "netns/inflight64-relay",
            about: "time for 1,000 get-link requests with 64 in flight (relay transport) vs plain rtnetlink in the root netns; notes give requests/s",
            target: Target::None,
            run: |c| Box::pin(inflight(c, Transport::Relay)),
        },
        RowSpec {
            name: "netns/dump-links-direct",
            about: "dump of 2,000 ifb links in a netns through a netns::Handle (direct) vs `ip -n NAME -o link` as a process; floor: raw netlink socket counting messages",
            target: Target::RatioAtMost(1.0),
            run: |c| Box::pin(dump(c, Transport::Direct, Dump::Links)),
        },
        RowSpec {
            name: "netns/dump-links-relay",
            about: "dump of 2,000 ifb links through a netns::Handle (relay) vs `ip -n NAME -o link`; floor: raw netlink socket",
            target: Target::RatioAtMost(1.0),
            run: |c| Box::pin(dump(c, Transport::Relay, Dump::Links)),
        },
        RowSpec {
            name: "netns/dump-addrs-direct",
            about: "dump of 10,000 IPv4 addresses (on 100 ifb links) in a netns through a netns::Handle (direct) vs `ip -n NAME -o addr`; floor: raw netlink socket",
            target: Target::RatioAtMost(1.0),
            run: |c| Box::pin(dump(c, Transport::Direct, Dump::Addresses)),
        },
        RowSpec {
            name: "netns/dump-addrs-relay",
            about: "dump of 10,000 IPv4 addresses through a netns::Handle (relay) vs `ip -n NAME -o addr`; floor: raw netlink socket",
            target: Target::RatioAtMost(1.0),
            run: |c| Box::pin(dump(c, Transport::Relay, Dump::Addresses)),
        },
        RowSpec {
            name: "netns/move-veth-peer",
            about: "move a veth peer into another netns by names (Handle::move_link(\"peer\", \"NAME\")) vs `ip -n A link set PEER netns B` as a process (moved back untimed)",
            target: Target::RatioAtMost(1.0),
            run: |c| Box::pin(move_peer(c)),
        },
    ]
}

/// Plain rtnetlink in the root namespace: the reference of most rows.
async fn plain() -> BResult<(rtnetlink::Handle, tokio::task::JoinHandle<()>)> {
    let (conn, handle, _) = rtnetlink::new_connection()?;
    Ok((handle, tokio::spawn(conn)))
}

async fn open(name: &str, transport: Transport) -> BResult<Handle> {
    match Handle::builder(name)
        .mode(OpenMode::OpenOnly)
        .transport(transport)
        .open()
        .await
    {
        Ok(h) => Ok(h),
        // The relay transport is not built yet: say so, never fake it.
        Err(e) if transport == Transport::Relay && e.kind() == std::io::ErrorKind::Unsupported => {
            Err(Box::new(NotYet(e.to_string())))
        }
        Err(e) => Err(e.into()),
    }
}

pub(super) async fn get_link_1(h: &rtnetlink::Handle) -> BResult<()> {
    h.link()
        .get()
        .match_index(1)
        .execute()
        .try_next()
        .await?
        .ok_or_else(|| err("no link 1"))?;
    Ok(())
}

async fn open_first_answer(cfg: &Config) -> BResult<Measurement> {
    let scratch = Scratch::new("op").await?;
    let name = scratch.name.clone();
    let mut ours = async || {
        let start = Instant::now();
        let h = open(&name, Transport::Direct).await?;
        get_link_1(h.rtnetlink()).await?;
        let t = start.elapsed();
        h.close().await;
        Ok(vec![t])
    };
    let mut reference = async || {
        let start = Instant::now();
        let (h, task) = plain().await?;
        get_link_1(&h).await?;
        let t = start.elapsed();
        drop(h);
        task.abort();
        let _ = task.await;
        Ok(vec![t])
    };
    let res = pair(cfg.plan(500, 100), &mut ours, &mut reference).await;
    scratch.remove().await?;
    let [o, r] = res?;
    Measurement::versus(
        "Handle::open + get-link",
        &o,
        "rtnetlink::new_connection + get-link",
        &r,
    )
}

async fn get_link(cfg: &Config, transport: Transport) -> BResult<Measurement> {
    let scratch = Scratch::new("gl").await?;
    let res = async {
        let h = open(&scratch.name, transport).await?;
        let (root, task) = plain().await?;
        let rtnl = h.rtnetlink().clone();
        let mut ours = async || {
            let start = Instant::now();
            get_link_1(&rtnl).await?;
            Ok(vec![start.elapsed()])
        };
        let mut reference = async || {
            let start = Instant::now();
            get_link_1(&root).await?;
            Ok(vec![start.elapsed()])
        };
        let res = pair(cfg.plan(5000, 1000), &mut ours, &mut reference).await;
        h.close().await;
        task.abort();
        res
    }
    .await;
    scratch.remove().await?;
    let [o, r] = res?;
    Measurement::versus(
        &format!("Handle ({transport:?})"),
        &o,
        "plain rtnetlink, root netns",
        &r,
    )
}

async fn burst(h: &rtnetlink::Handle, n: usize) -> BResult<Duration> {
    let start = Instant::now();
    futures::stream::iter(0..n)
        .map(|_| get_link_1(h))
        .buffer_unordered(64)
        .try_for_each(|()| async { Ok(()) })
        .await?;
    Ok(start.elapsed())
}

async fn inflight(cfg: &Config, transport: Transport) -> BResult<Measurement> {
    const N: usize = 1000;
    let scratch = Scratch::new("if").await?;
    let res = async {
        let h = open(&scratch.name, transport).await?;
        let (root, task) = plain().await?;
        let rtnl = h.rtnetlink().clone();
        let mut ours = async || Ok(vec![burst(&rtnl, N).await?]);
        let mut reference = async || Ok(vec![burst(&root, N).await?]);
        let res = pair(cfg.plan(60, 15), &mut ours, &mut reference).await;
        h.close().await;
        task.abort();
        res
    }
    .await;
    scratch.remove().await?;
    let [o, r] = res?;
    let m = Measurement::versus(
        &format!("Handle ({transport:?}), {N} req"),
        &o,
        &format!("plain rtnetlink, {N} req"),
        &r,
    )?;
    let rate = |us: f64| N as f64 / (us / 1e6);
    let note = format!(
        "requests/s with 64 in flight (from medians): ours {:.1}k, plain rtnetlink {:.1}k",
        rate(m.ours.stats.median) / 1e3,
        rate(m.reference.as_ref().map_or(f64::NAN, |r| r.stats.median)) / 1e3
    );
    Ok(m.note(note))
}

/// Makes a namespace holding `links` ifb links (at least one per 100
/// addresses) and `addrs` IPv4 addresses spread 100 to a link, with
/// `ip -n NAME -batch`.
pub(super) async fn populated(links: usize, addrs: usize) -> BResult<Scratch> {
    let s = Scratch::new("dm").await?;
    let mut batch = String::new();
    for i in 0..links.max(addrs.div_ceil(100)) {
        batch.push_str(&format!("link add ifb{i} type ifb\n"));
    }
    s.ip_batch(&batch).await?;
    if addrs > 0 {
        let mut batch = String::new();
        for i in 0..addrs {
            batch.push_str(&format!(
                "addr add 10.{}.{}.1/32 dev ifb{}\n",
                i / 250,
                i % 250,
                i / 100
            ));
        }
        s.ip_batch(&batch).await?;
    }
    Ok(s)
}

async fn dump(cfg: &Config, transport: Transport, what: Dump) -> BResult<Measurement> {
    let links = cfg.size(2000, 500);
    let addrs = cfg.size(10_000, 2000);
    let setup = Instant::now();
    let scratch = match what {
        Dump::Links => populated(links, 0).await?,
        Dump::Addresses => populated(0, addrs).await?,
    };
    let setup = setup.elapsed();
    let res = async {
        let h = open(&scratch.name, transport).await?;
        let raw = RawSocket::open(&scratch.ns, netns::DEFAULT_RECEIVE_BUFFER).await?;
        let rtnl = h.rtnetlink().clone();
        let (mut ours_n, mut raw_n) = (0, 0);
        let kind = match what {
            Dump::Links => "link",
            Dump::Addresses => "addr",
        };
        let mut ours = async || {
            let start = Instant::now();
            let n = match what {
                Dump::Links => rtnl.link().get().execute().try_fold(0, |n, _| async move { Ok(n + 1) }).await?,
                Dump::Addresses => {
                    rtnl.address().get().execute().try_fold(0, |n, _| async move { Ok(n + 1) }).await?
                }
            };
            ours_n = n;
            Ok(vec![start.elapsed()])
        };
        let mut reference = async || {
            let start = Instant::now();
            run_quiet("ip", &["-n", &scratch.name, "-o", kind]).await?;
            Ok(vec![start.elapsed()])
        };
        let mut floor = async || {
            let start = Instant::now();
            raw_n = raw.dump(what).await?;
            Ok(vec![start.elapsed()])
        };
        let res = triple(cfg.plan(40, 10), &mut ours, &mut reference, &mut floor).await;
        h.close().await;
        let [o, r, f] = res?;
        if ours_n != raw_n {
            return Err(err(format!("ours counted {ours_n} {kind}s, the raw socket {raw_n}")));
        }
        let m = Measurement::versus(
            &format!("Handle ({transport:?}) dump"),
            &o,
            &format!("ip -n NAME -o {kind}"),
            &r,
        )?
        .with_floor("raw netlink socket, counting", &f)?;
        // Diagnostic: parsing alone (no socket, no task) of one dump's datagrams.
        let datagrams = raw.collect(what).await?;
        let mut parse = Vec::new();
        for _ in 0..5 {
            let start = Instant::now();
            let n = crate::rawnl::parse_all(&datagrams)?;
            parse.push(start.elapsed().as_secs_f64() * 1e6);
            if n != ours_n {
                return Err(err(format!("parsed {n} {kind}s, ours counted {ours_n}")));
            }
        }
        let parse = crate::harness::Stats::of(&parse)?.median;
        let rate = |us: f64| ours_n as f64 / (us / 1e6) / 1e3;
        let note = format!(
            "{ours_n} {kind}s (made in {:.2} s with ip -batch); k{kind}s/s from medians: ours {:.1}, ip {:.1}, raw floor {:.1}",
            setup.as_secs_f64(),
            rate(m.ours.stats.median),
            rate(m.reference.as_ref().map_or(f64::NAN, |r| r.stats.median)),
            rate(m.floor.as_ref().map_or(f64::NAN, |r| r.stats.median)),
        );
        Ok(m.note(note).note(format!(
            "typed parse alone of one dump's datagrams (netlink-packet-route, one thread, no socket): {parse:.0} us"
        )))
    }
    .await;
    scratch.remove().await?;
    res
}

async fn move_peer(cfg: &Config) -> BResult<Measurement> {
    let a = Scratch::new("ma").await?;
    let b = Scratch::new("mb").await?;
    let res = async {
        a.ip(&["link", "add", "vA", "type", "veth", "peer", "name", "vB"])
            .await?;
        let h = open(&a.name, Transport::Direct).await?;
        let back = ["-n", &b.name, "link", "set", "vB", "netns", &a.name];
        let mut ours = async || {
            let start = Instant::now();
            h.move_link("vB", b.name.as_str()).execute().await?;
            let t = start.elapsed();
            crate::scratch::ip(&back).await?;
            Ok(vec![t])
        };
        let mut reference = async || {
            let start = Instant::now();
            run_quiet(
                "ip",
                &["-n", &a.name, "link", "set", "vB", "netns", &b.name],
            )
            .await?;
            let t = start.elapsed();
            crate::scratch::ip(&back).await?;
            Ok(vec![t])
        };
        let res = pair(cfg.plan(200, 40), &mut ours, &mut reference).await;
        h.close().await;
        res
    }
    .await;
    a.remove().await?;
    b.remove().await?;
    let [o, r] = res?;
    Measurement::versus(
        "Handle::move_link by names",
        &o,
        "ip link set PEER netns NAME",
        &r,
    )
}
