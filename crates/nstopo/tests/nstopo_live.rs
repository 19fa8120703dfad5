//! A watched topology (`nstopo::Live`) against the real kernel: drift made
//! with `ip` shows in its diff without a read and its apply repairs it; a
//! one-link change of a 200-node ring sends only that link's requests; the
//! watch closes without leaving fds or threads.

mod common;

use common::{ring, threads};
use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;

use nstopo::{Change, Endpoint, IfAddr, Link, Live, Options, Topology};

/// The tests of this file share the run directory and a watch views every
/// namespace of it once: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn topo(prefix: &str) -> Topology {
    let yaml = format!(
        r#"
name: {prefix}
nodes:
  - name: {prefix}-a
    sysctls: {{ net.ipv4.ip_forward: 1 }}
    routes:
      - "10.0.2.0/24 via 10.0.1.2"
  - name: {prefix}-b
  - name: {prefix}-c
    bridges:
      - {{ name: br0, addresses: [10.0.2.1/24] }}
    routes:
      - "default via 10.0.2.254"
links:
  - a: {{ node: {prefix}-a, name: eth1, mtu: 9000, addresses: [10.0.1.1/24, "fd00:1::1/64"] }}
    b: {{ node: {prefix}-b, name: eth1, mtu: 9000, addresses: [10.0.1.2/24] }}
  - a: {{ node: {prefix}-b, name: eth2, addresses: [10.0.2.254/24] }}
    b: {{ node: {prefix}-c, name: eth1, master: br0 }}
"#
    );
    Topology::from_yaml_str(&yaml).unwrap()
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Waits until the watched diff satisfies `cond` (the view follows the
/// kernel's events), and returns it.
async fn drift(live: &Live, t: &Topology, what: &str, cond: impl Fn(&[Change]) -> bool) {
    testkit::eventually(what, || cond(&live.diff(t).unwrap())).await;
}

/// Repairs through the watch, then checks against a fresh read that
/// nothing is left to do, and that the watch agrees without waiting.
async fn repair(live: &mut Live, t: &Topology) -> nstopo::Report {
    let report = live.apply(t).await.unwrap();
    assert!(report.requests > 0, "{}", report.plan);
    let left = live.diff(t).unwrap();
    assert!(left.is_empty(), "plan:\n{}left: {left:#?}", report.plan);
    let fresh = nstopo::diff(t, Options::default()).await.unwrap();
    assert!(fresh.is_empty(), "{fresh:#?}");
    assert_eq!(live.state().unwrap(), nstopo::read_state(t).await.unwrap());
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_shows_in_the_watched_diff_and_apply_repairs_it() {
    testkit::require_root();
    let _serial = SERIAL.lock().await;
    let t = topo("lvd");
    nstopo::apply(&t, Options::default()).await.unwrap();
    // Warm the thread pools, then count.
    Live::watch(&t, Options::default())
        .await
        .unwrap()
        .close()
        .await;
    let (fds, thr) = (testkit::open_fds(), threads());

    let mut live = Live::watch(&t, Options::default()).await.unwrap();
    assert!(live.diff(&t).unwrap().is_empty());
    assert_eq!(live.state().unwrap(), nstopo::read_state(&t).await.unwrap());
    let again = live.apply(&t).await.unwrap();
    assert_eq!(again.requests, 0, "{}", again.plan);

    // A link deleted with `ip` (both ends of the pair go).
    ip(&["-n", "lvd-a", "link", "del", "eth1"]);
    drift(&live, &t, "the deleted veth in the diff", |d| {
        d.iter()
            .any(|c| matches!(c, Change::CreateVeth { a, .. } if a.name == "eth1"))
    })
    .await;
    repair(&mut live, &t).await;

    // An address added by hand on an owned link.
    ip(&["-n", "lvd-b", "addr", "add", "10.9.9.9/24", "dev", "eth2"]);
    drift(&live, &t, "the extra address in the diff", |d| {
        d.iter().any(|c| {
            matches!(c, Change::DeleteAddress { address, .. }
                if address.addr == IpAddr::V4(Ipv4Addr::new(10, 9, 9, 9)))
        })
    })
    .await;
    let r = repair(&mut live, &t).await;
    assert_eq!(r.requests, 1, "{}", r.plan);

    // A link set down and its MTU changed by hand.
    ip(&["-n", "lvd-b", "link", "set", "eth1", "down", "mtu", "1400"]);
    drift(&live, &t, "the link's attributes in the diff", |d| {
        d.iter()
            .any(|c| matches!(c, Change::SetLink { name, .. } if name == "eth1"))
    })
    .await;
    repair(&mut live, &t).await;

    // A route deleted by hand.
    ip(&["-n", "lvd-c", "route", "del", "default"]);
    drift(&live, &t, "the deleted route in the diff", |d| {
        d.iter()
            .any(|c| matches!(c, Change::AddRoute { node, .. } if node == "lvd-c"))
    })
    .await;
    repair(&mut live, &t).await;

    // A namespace removed: it comes back with its links, and joins the view.
    ip(&["netns", "del", "lvd-c"]);
    drift(&live, &t, "the removed namespace in the diff", |d| {
        d.iter()
            .any(|c| matches!(c, Change::CreateNamespace { node } if node == "lvd-c"))
    })
    .await;
    repair(&mut live, &t).await;
    ip(&["-n", "lvd-c", "addr", "add", "10.7.7.7/24", "dev", "br0"]);
    drift(&live, &t, "drift in the namespace that came back", |d| {
        d.iter()
            .any(|c| matches!(c, Change::DeleteAddress { node, .. } if node == "lvd-c"))
    })
    .await;
    repair(&mut live, &t).await;

    // A node no longer declared is removed, and leaves the view.
    let mut smaller = t.clone();
    smaller.nodes.retain(|n| n.name != "lvd-c");
    smaller.links.retain(|l| l.b.node != "lvd-c");
    let r = live.apply(&smaller).await.unwrap();
    assert!(
        r.plan
            .changes
            .iter()
            .any(|c| matches!(c, Change::RemoveNamespace { node } if node == "lvd-c")),
        "{}",
        r.plan
    );
    assert!(!live.state().unwrap().nodes.contains_key("lvd-c"));
    assert!(live.diff(&smaller).unwrap().is_empty());

    // Another topology's declaration is refused.
    let other = topo("lvx");
    assert!(matches!(
        live.diff(&other),
        Err(nstopo::Error::OtherTopology { .. })
    ));

    live.close().await;
    // No more than before (one fewer is fine: the baseline may hold an fd
    // of the toolkit's that closes later, such as a cached namespace fd).
    testkit::eventually("fds and threads back", || {
        testkit::open_fds() <= fds && threads() <= thr
    })
    .await;
    nstopo::destroy(&t, Options::default()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_link_change_of_a_200_node_ring_sends_only_that_links_requests() {
    testkit::require_root();
    let _serial = SERIAL.lock().await;
    let t = ring("lvr", 200);
    nstopo::apply(&t, Options::default()).await.unwrap();
    let mut live = Live::watch(&t, Options::default()).await.unwrap();
    assert_eq!(live.state().unwrap().nodes.len(), 200);

    let extra: IfAddr = "10.255.0.0/31".parse().unwrap();
    let mut changed = t.clone();
    changed.links.push(Link::new(
        Endpoint::new("lvr0", "x0").address(extra),
        Endpoint::new("lvr100", "x1").address("10.255.0.1/31".parse().unwrap()),
    ));
    let add = live.apply(&changed).await.unwrap();
    // The veth (one request, both ends born in place), an address on each
    // end; nothing else.
    assert!(
        add.plan.changes.iter().all(|c| match c {
            Change::CreateVeth { a, b, .. } => a.name == "x0" && b.name == "x1",
            Change::AddAddress { device, .. } | Change::SetLink { name: device, .. } =>
                device == "x0" || device == "x1",
            _ => false,
        }),
        "{}",
        add.plan
    );
    assert_eq!(add.requests, add.plan.changes.len() as u64, "{}", add.plan);
    assert!(add.requests <= 5, "{}", add.plan);
    // Confirmed: the watch shows it as soon as the apply returns.
    assert!(live.diff(&changed).unwrap().is_empty());
    assert!(
        live.state().unwrap().nodes["lvr100"].links["x1"]
            .addresses
            .contains(&"10.255.0.1/31".parse().unwrap())
    );

    // Removed: a delete of each end (the second finds the pair gone).
    let remove = live.apply(&t).await.unwrap();
    assert!(remove.requests <= 2, "{}", remove.plan);
    assert!(
        remove
            .plan
            .changes
            .iter()
            .all(|c| matches!(c, Change::DeleteLink { name, .. } if name == "x0" || name == "x1")),
        "{}",
        remove.plan
    );
    assert!(live.diff(&t).unwrap().is_empty());
    let again = live.apply(&t).await.unwrap();
    assert_eq!(again.requests, 0, "{}", again.plan);

    live.close().await;
    let fresh = nstopo::diff(&t, Options::default()).await.unwrap();
    assert!(fresh.is_empty(), "{fresh:#?}");
    nstopo::destroy(&t, Options::default()).await.unwrap();
}

fn addr(s: &str) -> IfAddr {
    s.parse().unwrap()
}

/// After a first apply, an apply compares only the nodes whose declaration
/// or view changed since: drift made by hand in nodes no apply touches is
/// still found and repaired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apply_repairs_drift_in_nodes_the_change_does_not_touch() {
    testkit::require_root();
    let _serial = SERIAL.lock().await;
    let t = ring("lvi", 12);
    nstopo::apply(&t, Options::default()).await.unwrap();
    let mut live = Live::watch(&t, Options::default()).await.unwrap();

    // A first change: one link between lvi0 and lvi6.
    let mut changed = t.clone();
    changed.links.push(Link::new(
        Endpoint::new("lvi0", "x0").address(addr("10.255.1.0/31")),
        Endpoint::new("lvi6", "x1").address(addr("10.255.1.1/31")),
    ));
    live.apply(&changed).await.unwrap();

    // Drift by hand in nodes the change does not touch; the declaration
    // stays the same.
    ip(&["-n", "lvi3", "addr", "add", "10.9.9.9/24", "dev", "e1"]);
    ip(&["-n", "lvi9", "link", "set", "e0", "down"]);
    drift(&live, &changed, "both drifts in the diff", |d| {
        d.iter()
            .any(|c| matches!(c, Change::DeleteAddress { node, .. } if node == "lvi3"))
            && d.iter().any(
                |c| matches!(c, Change::SetLink { node, name, .. } if node == "lvi9" && name == "e0"),
            )
    })
    .await;
    let r = repair(&mut live, &changed).await;
    assert_eq!(r.plan.changes.len(), 2, "{}", r.plan);

    // Drift again, and the link removed in the same apply.
    ip(&["-n", "lvi4", "route", "del", "default"]);
    drift(&live, &t, "the deleted route in the diff", |d| {
        d.iter()
            .any(|c| matches!(c, Change::AddRoute { node, .. } if node == "lvi4"))
    })
    .await;
    let r = repair(&mut live, &t).await;
    assert!(
        r.plan.changes.iter().all(|c| match c {
            Change::AddRoute { node, .. } => node == "lvi4",
            Change::DeleteLink { name, .. } => name == "x0" || name == "x1",
            _ => false,
        }),
        "{}",
        r.plan
    );

    live.close().await;
    nstopo::destroy(&t, Options::default()).await.unwrap();
}

/// Through a series of live applies (a link added, attributes and
/// addresses changed, a node added and removed, a link removed), the
/// watched diff of the next declaration always equals a diff made from a
/// fresh read of the kernel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watched_diff_equals_a_fresh_diff_through_a_series_of_applies() {
    testkit::require_root();
    let _serial = SERIAL.lock().await;
    let t = ring("lvs", 10);
    nstopo::apply(&t, Options::default()).await.unwrap();
    let mut live = Live::watch(&t, Options::default()).await.unwrap();

    let mut series = Vec::new();
    let mut next = t.clone();
    next.links.push(Link::new(
        Endpoint::new("lvs0", "x0").address(addr("10.255.2.0/31")),
        Endpoint::new("lvs5", "x1").address(addr("10.255.2.1/31")),
    ));
    series.push(next.clone());
    next.links[2].a.addresses.push(addr("10.99.0.1/24"));
    next.links[7].b = next.links[7].b.clone().mtu(1400);
    next.nodes[3]
        .routes
        .push(nstopo::Route::to(nstopo::Destination::Prefix(addr("10.200.0.0/16"))).device("e1"));
    series.push(next.clone());
    next.nodes.push(nstopo::Node::new("lvs-new"));
    next.links.insert(
        4,
        Link::new(
            Endpoint::new("lvs-new", "n0").address(addr("10.255.3.0/31")),
            Endpoint::new("lvs8", "n1").address(addr("10.255.3.1/31")),
        ),
    );
    series.push(next.clone());
    next.nodes.retain(|n| n.name != "lvs-new");
    next.links.retain(|l| l.a.node != "lvs-new");
    series.push(next.clone());
    series.push(t.clone());

    for (i, want) in series.iter().enumerate() {
        let watched = live.diff(want).unwrap();
        let fresh = nstopo::diff(want, Options::default()).await.unwrap();
        assert!(!fresh.is_empty(), "step {i}");
        assert_eq!(watched, fresh, "step {i}");
        live.apply(want).await.unwrap();
        assert!(live.diff(want).unwrap().is_empty(), "step {i}");
        let fresh = nstopo::diff(want, Options::default()).await.unwrap();
        assert!(fresh.is_empty(), "step {i}: {fresh:#?}");
    }

    live.close().await;
    nstopo::destroy(&t, Options::default()).await.unwrap();
}
