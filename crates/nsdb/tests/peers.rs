//! Naming a veth's peer namespace: when the peer's namespace joins the view
//! after the link was seen (its end renamed meanwhile), leaves it and comes
//! back, and when the pair is made the way container runtimes make it (one
//! end moved into the other namespace and renamed there).

mod common;

use std::time::Duration;

use common::{Namespaces, add_veth, ip, view_of};
use nsdb::{Namespace, Snapshot, View};

/// Whether `link` of `here` names `there` as its peer's namespace, with the
/// index `peer` has there.
fn names_peer(s: &Snapshot, here: &Namespace, link: &str, there: &Namespace, peer: &str) -> bool {
    let Some(v) = s.namespace(here) else {
        return false;
    };
    v.link(link).and_then(|l| v.peer(l)).is_some_and(|p| {
        p.namespace.as_ref() == Some(there)
            && s.link(there, peer).is_some_and(|x| x.index == p.index)
    })
}

async fn wait_named(view: &View, here: &Namespace, link: &str, there: &Namespace, peer: &str) {
    view.wait_for(
        &format!("{link} in {here} names {peer} in {there}"),
        Duration::from_secs(10),
        |s| names_peer(s, here, link, there, peer),
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_namespace_added_later_is_named_and_forgotten_when_it_leaves() {
    let nss = Namespaces::create(&["pr-a", "pr-b"]).await;
    let (a, b) = (nss.ns(0), nss.ns(1));
    ip(&[
        "-n", "pr-a", "link", "add", "pa0", "type", "veth", "peer", "name", "pb0", "netns", "pr-b",
    ]);
    let view = view_of(&[&a]).await;
    let snap = view.snapshot();
    let v = snap.namespace(&a).unwrap();
    let peer = v
        .peer(v.link("pa0").unwrap())
        .expect("pa0 is tied elsewhere");
    assert_eq!(peer.namespace, None, "pr-b is not in the view");

    // Renamed before its namespace joins: found all the same.
    ip(&["-n", "pr-b", "link", "set", "pb0", "name", "eth0"]);
    view.add(b.clone()).await.unwrap();
    wait_named(&view, &a, "pa0", &b, "eth0").await;
    wait_named(&view, &b, "eth0", &a, "pa0").await;

    // Out of the view: not named; back in: named again.
    assert!(view.remove(&b));
    view.wait_for("pa0's peer unnamed", Duration::from_secs(10), |s| {
        let v = s.namespace(&a).unwrap();
        v.peer(v.link("pa0").unwrap())
            .is_some_and(|p| p.namespace.is_none())
    })
    .await
    .unwrap();
    view.add(b.clone()).await.unwrap();
    wait_named(&view, &a, "pa0", &b, "eth0").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pair_made_as_container_runtimes_make_it_names_both_peers() {
    let nss = Namespaces::create(&["pr-host", "pr-ctr"]).await;
    let (host, ctr) = (nss.ns(0), nss.ns(1));
    let view = view_of(&[&host, &ctr]).await;
    add_veth("pr-host", "vethpr", "tmppr");
    ip(&["-n", "pr-host", "link", "set", "tmppr", "netns", "pr-ctr"]);
    ip(&["-n", "pr-ctr", "link", "set", "tmppr", "name", "eth0"]);
    wait_named(&view, &host, "vethpr", &ctr, "eth0").await;
    wait_named(&view, &ctr, "eth0", &host, "vethpr").await;
    // A second namespace pair in the same view, the other way round.
    ip(&[
        "-n", "pr-ctr", "link", "add", "c1", "type", "veth", "peer", "name", "h1", "netns",
        "pr-host",
    ]);
    wait_named(&view, &ctr, "c1", &host, "h1").await;
    wait_named(&view, &host, "h1", &ctr, "c1").await;
}
