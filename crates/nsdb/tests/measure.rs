//! Throwaway measurements (run by hand, printed, never asserted):
//! `cargo test -p nsdb --release --test measure -- --ignored --nocapture`.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{Namespaces, add_veth, disable_ipv6, ip, ip_batch};
use netlink_packet_route::link::LinkAttribute;
use nsdb::View;

/// Counts live heap bytes, to tell the view's own memory from the
/// allocator's retained pages.
struct Counting;

static LIVE: std::sync::atomic::AtomicIsize = std::sync::atomic::AtomicIsize::new(0);
static PEAK: std::sync::atomic::AtomicIsize = std::sync::atomic::AtomicIsize::new(0);

// SAFETY: forwards to the system allocator; only counts.
#[allow(unsafe_code)]
unsafe impl std::alloc::GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        let now = LIVE.fetch_add(layout.size() as isize, std::sync::atomic::Ordering::Relaxed);
        PEAK.fetch_max(
            now + layout.size() as isize,
            std::sync::atomic::Ordering::Relaxed,
        );
        // SAFETY: same contract as ours.
        unsafe { std::alloc::System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        LIVE.fetch_sub(layout.size() as isize, std::sync::atomic::Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn live_kib() -> isize {
    LIVE.load(std::sync::atomic::Ordering::Relaxed) / 1024
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn p90(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() * 9 / 10]
}

fn rss_kib() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement, run by hand with --ignored --nocapture"]
async fn measure_latency_memory_commit() {
    let nss = Namespaces::create(&["ms-a", "ms-big"]).await;
    let a = nss.ns(0);
    add_veth("ms-a", "m0", "m1");
    let view = View::builder().namespace(a.clone()).build().await.unwrap();

    // 1. From `ip link set mtu` to the view showing it.
    let (mut ip_done, mut shown) = (Vec::new(), Vec::new());
    for i in 0..200u32 {
        let mtu = 1300 + (i % 100);
        let t0 = Instant::now();
        let st = Command::new("ip")
            .args(["-n", "ms-a", "link", "set", "m0", "mtu", &mtu.to_string()])
            .status()
            .unwrap();
        assert!(st.success());
        let t1 = t0.elapsed();
        view.wait_for("mtu", Duration::from_secs(5), |s| {
            s.link(&a, "m0").is_some_and(|l| l.mtu == Some(mtu))
        })
        .await
        .unwrap();
        let t2 = t0.elapsed();
        ip_done.push(t1.as_secs_f64() * 1e3);
        shown.push(t2.as_secs_f64() * 1e3);
        // Let the next change be a change.
        if i % 100 == 99 {
            ip(&["-n", "ms-a", "link", "set", "m0", "mtu", "1500"]);
        }
    }
    let lag: Vec<f64> = shown.iter().zip(&ip_done).map(|(s, d)| s - d).collect();
    println!(
        "ip change -> view: ip exits after {:.3} ms (median), view shows it after {:.3} ms (median), p90 {:.3} ms; view minus ip exit: median {:.3} ms",
        median(&mut ip_done.clone()),
        median(&mut shown.clone()),
        p90(&mut shown.clone()),
        median(&mut lag.clone())
    );

    // 2. A one-change commit vs the same change sent directly (ack only),
    // and the direct change plus the wait for the view.
    let handle = view.handle(&a).await.unwrap();
    let index = view.snapshot().link(&a, "m0").unwrap().index;
    let (mut commit, mut direct, mut direct_seen) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..300u32 {
        let mtu = 1000 + i * 2;
        let t0 = Instant::now();
        let mut tx = view.transaction();
        tx.link(&a, "m0").unwrap().set_mtu(mtu);
        tx.commit().await.unwrap();
        commit.push(t0.elapsed().as_secs_f64() * 1e6);

        let mtu = mtu + 1;
        let t0 = Instant::now();
        let msg = rtnetlink::LinkUnspec::new_with_index(index)
            .mtu(mtu)
            .build();
        assert!(
            msg.attributes
                .iter()
                .all(|a| matches!(a, LinkAttribute::Mtu(_)))
        );
        handle.link().set(msg).execute().await.unwrap();
        direct.push(t0.elapsed().as_secs_f64() * 1e6);
        view.wait_for("mtu", Duration::from_secs(5), |s| {
            s.link_by_index(&a, index)
                .is_some_and(|l| l.mtu == Some(mtu))
        })
        .await
        .unwrap();
        direct_seen.push(t0.elapsed().as_secs_f64() * 1e6);
    }
    let (c, d, ds) = (
        median(&mut commit),
        median(&mut direct),
        median(&mut direct_seen),
    );
    println!(
        "one-change commit {c:.0} us vs direct rtnetlink {d:.0} us (ratio {:.2}x); direct + wait for the view {ds:.0} us (commit / that {:.2}x)",
        c / d,
        c / ds
    );
    drop(handle);

    // 3. Memory for 2,000 links + 10,000 addresses.
    disable_ipv6(&nss.names[1]).await;
    let mut lines = Vec::new();
    for i in 0..1000u32 {
        lines.push(format!("link add ma{i} type veth peer name mb{i}"));
    }
    for i in 0..1000u32 {
        for (j, dev) in [format!("ma{i}"), format!("mb{i}")].iter().enumerate() {
            for k in 0..5u32 {
                let n = i * 10 + j as u32 * 5 + k;
                lines.push(format!(
                    "addr add 10.{}.{}.{}/32 dev {dev}",
                    n >> 16,
                    (n >> 8) & 255,
                    n & 255
                ));
            }
        }
    }
    ip_batch("ms-big", &lines);
    let big = nss.ns(1);
    let before = rss_kib();
    let live_before = live_kib();
    PEAK.store(0, std::sync::atomic::Ordering::Relaxed);
    let t0 = Instant::now();
    let big_view = View::builder()
        .namespace(big.clone())
        .build()
        .await
        .unwrap();
    let built = t0.elapsed();
    let after = rss_kib();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let live_after = live_kib();
    let snap = big_view.snapshot();
    let v = snap.namespace(&big).unwrap();
    println!(
        "memory: {} links, {} addresses, {} routes: live heap +{} KiB (peak while building +{} KiB), RSS +{} KiB (view built in {:.0} ms)",
        v.links().count(),
        v.addresses().count(),
        v.routes().count(),
        live_after - live_before,
        PEAK.load(std::sync::atomic::Ordering::Relaxed) / 1024 - live_before,
        after.saturating_sub(before),
        built.as_secs_f64() * 1e3
    );
}
