//! Regression: building a view used to hold a whole dump at once (netlink-
//! proto's connection task read it into an unbounded queue as fast as the
//! kernel made it): +33 MiB of heap at the peak for 2,000 links and 10,000
//! addresses whose view keeps 7 MiB. Dumps are now read as they are applied,
//! so the peak stays near what the view keeps.

mod common;

use std::sync::atomic::{AtomicIsize, Ordering};

use common::{Namespaces, disable_ipv6, ip_batch};
use nsdb::View;

/// Counts live heap bytes and their peak.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator; only counts.
#[allow(unsafe_code)]
unsafe impl std::alloc::GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        let now = LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        PEAK.fetch_max(now + layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { std::alloc::System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn building_a_view_never_holds_a_whole_dump() {
    let nss = Namespaces::create(&["nsdb-mem"]).await;
    disable_ipv6(&nss.names[0]).await;
    let mut lines = Vec::new();
    for i in 0..500u32 {
        lines.push(format!("link add ma{i} type veth peer name mb{i}"));
    }
    for n in 0..5000u32 {
        let dev = if n % 2 == 0 { "ma" } else { "mb" };
        lines.push(format!(
            "addr add 10.{}.{}.{}/32 dev {dev}{}",
            n >> 16,
            (n >> 8) & 255,
            n & 255,
            (n / 2) % 500
        ));
    }
    ip_batch(nss.names[0].as_str(), &lines);
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    let view = View::builder().namespace(nss.ns(0)).build().await.unwrap();
    let kept = LIVE.load(Ordering::Relaxed) - before;
    let peak = PEAK.load(Ordering::Relaxed) - before;
    let snap = view.snapshot();
    let v = snap.namespace(&nss.ns(0)).unwrap();
    assert_eq!(v.links().count(), 1001);
    assert_eq!(v.addresses().count(), 5000);
    // Slack for the sockets' buffers (64 KiB each) and the change channel.
    assert!(
        peak <= 2 * kept + (1 << 20),
        "peak heap +{} KiB while building a view that keeps +{} KiB",
        peak / 1024,
        kept / 1024
    );
}
