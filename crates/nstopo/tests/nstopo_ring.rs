//! A ring of 1,000 nodes (a veth to each neighbour, addresses on both ends,
//! all up, a default route per node) applies, re-applies with no request,
//! and destroys without leaking fds, threads or processes.

mod common;

use common::{ring, threads};
use std::time::Instant;

use nstopo::Options;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ring_of_1000_nodes_applies_and_destroys_without_leaks() {
    testkit::require_root();
    // Warm the toolkit's thread pools with a small ring first.
    let small = ring("rs", 4);
    nstopo::apply(&small, Options::default()).await.unwrap();
    nstopo::destroy(&small, Options::default()).await.unwrap();
    let (fds, thr) = (testkit::open_fds(), threads());

    let t = ring("r", 1000);
    let start = Instant::now();
    let report = nstopo::apply(&t, Options::default()).await.unwrap();
    let applied = start.elapsed();
    assert_eq!(
        report.created,
        1000 + 1000 + 2000 + 1000,
        "{}",
        report.plan.changes.len()
    );

    let start = Instant::now();
    let again = nstopo::apply(&t, Options::default()).await.unwrap();
    let reapplied = start.elapsed();
    assert_eq!(again.requests, 0, "{}", again.plan);

    // One address changed: one request.
    let mut t2 = t.clone();
    t2.links[500]
        .a
        .addresses
        .push("10.99.0.1/24".parse().unwrap());
    let start = Instant::now();
    let one = nstopo::apply(&t2, Options::default()).await.unwrap();
    let changed = start.elapsed();
    assert_eq!(one.requests, 1, "{}", one.plan);

    let start = Instant::now();
    let gone = nstopo::destroy(&t2, Options::default()).await.unwrap();
    let destroyed = start.elapsed();
    assert_eq!(gone.removed, 1000);
    assert!(netns::RunDir::default().list().unwrap().is_empty());
    eprintln!(
        "ring 1000 (indicative, this build): apply {applied:?} ({} requests), \
         re-apply {reapplied:?}, one change {changed:?}, destroy {destroyed:?}",
        report.requests
    );

    testkit::eventually("fds back to their count", || testkit::open_fds() <= fds).await;
    testkit::eventually("threads back to their count", || threads() <= thr).await;
    assert!(testkit::children_of(std::process::id() as i32).is_empty());
}
