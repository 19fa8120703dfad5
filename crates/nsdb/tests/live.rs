//! The view kept current from events: changes made from outside with `ip`,
//! overruns, namespaces coming and going.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{Namespaces, add_veth, assert_view_matches_dump, ip, ip_batch, view_of};
use futures::StreamExt;
use nsdb::{Change, Namespace, NsStatus, Object, ResyncReason, View};

/// About 350 `ip` changes in one namespace: links, addresses (v4 and v6),
/// routes, mtu, up/down, master, renames, deletions.
fn churn(tag: &str, round: usize) -> Vec<String> {
    let mut l = Vec::new();
    l.push(format!("link add br{tag} type bridge"));
    l.push(format!("link set br{tag} up"));
    for i in 0..32 {
        let (a, b) = (format!("{tag}a{i}"), format!("{tag}b{i}"));
        l.push(format!("link add {a} type veth peer name {b}"));
        l.push(format!("link set {a} up"));
        l.push(format!("link set {b} up"));
        l.push(format!("addr add 10.{round}.{i}.1/24 dev {a}"));
        l.push(format!("addr add 10.{round}.{i}.2/24 dev {a}"));
        l.push(format!("addr add fd00:{round}:{i}::1/64 dev {a}"));
        l.push(format!(
            "route add 172.{}.{i}.0/24 via 10.{round}.{i}.9",
            16 + round
        ));
        if i % 7 == 0 {
            l.push(format!("route add 192.168.{i}.0/24 dev {a}"));
            l.push(format!(
                "route replace 192.168.{i}.0/24 dev {a} metric 0 mtu 1000"
            ));
        }
        l.push(format!("link set {a} mtu {}", 1300 + i));
        l.push(format!("link set {b} master br{tag}"));
        l.push(format!("addr del 10.{round}.{i}.2/24 dev {a}"));
        if i % 3 == 0 {
            l.push(format!("link set {a} down"));
        }
        if i % 4 == 0 {
            l.push(format!("link set {b} nomaster"));
            l.push(format!("link set {b} name {tag}r{i}"));
        }
        if i % 5 == 0 {
            l.push(format!("link del {a}"));
        }
    }
    l
}

/// A view of every namespace of the run directory, polled every `poll`.
async fn all_namespaces_view(poll: Duration) -> View {
    View::builder()
        .all_namespaces()
        .poll_interval(poll)
        .build()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_changes_from_outside_leave_the_view_equal_to_a_dump() {
    let nss = Namespaces::create(&["lv-a", "lv-b", "lv-c"]).await;
    let all: Vec<Namespace> = (0..3).map(|i| nss.ns(i)).collect();
    let mut b = View::builder().receive_buffer(8 << 20);
    for ns in &all {
        b = b.namespace(ns.clone());
    }
    let view = b.build().await.unwrap();
    let mut total = 0;
    // Run the batches in parallel, one `ip` per namespace.
    let mut jobs = Vec::new();
    for (i, name) in ["lv-a", "lv-b", "lv-c"].iter().enumerate() {
        let lines = churn("x", i);
        total += lines.len();
        let name = name.to_string();
        jobs.push(tokio::task::spawn_blocking(move || ip_batch(&name, &lines)));
    }
    for j in jobs {
        j.await.unwrap();
    }
    assert!(total >= 1000, "only {total} changes");
    for ns in &all {
        assert_view_matches_dump(&view, ns).await;
    }
    // The view saw what was made.
    let snap = view.snapshot();
    let a = snap.namespace(&all[0]).unwrap();
    assert_eq!(a.link("xa1").unwrap().mtu, Some(1301));
    assert_eq!(
        a.link("xb1").unwrap().master,
        Some(a.link("brx").unwrap().index)
    );
    assert!(a.link("xr4").is_some() && a.link("xa5").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overrun_is_detected_and_resynced() {
    let nss = Namespaces::create(&["ov-a"]).await;
    let a = nss.ns(0);
    let view = common::overrunnable_view(&a).await;
    let mut changes = view.changes();
    let mut lines = Vec::new();
    for i in 0..150 {
        lines.push(format!("link add ov{i} type veth peer name ow{i}"));
        lines.push(format!("link set ov{i} up"));
        lines.push(format!("addr add 10.9.{i}.1/24 dev ov{i}"));
    }
    tokio::task::spawn_blocking(move || ip_batch("ov-a", &lines))
        .await
        .unwrap();
    let resynced = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(c) = changes.next().await {
            if let Change::Resynced {
                reason: ResyncReason::Overrun,
                ..
            } = c
            {
                return true;
            }
        }
        false
    })
    .await
    .expect("no resync within 20 s");
    assert!(resynced, "the change stream ended");
    assert_view_matches_dump(&view, &a).await;
    let snap = view.snapshot();
    assert_eq!(
        snap.namespace(&a)
            .unwrap()
            .links()
            .filter(|l| l.name.starts_with("ov"))
            .count(),
        150
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_added_and_removed_while_watching_all() {
    common::require_root();
    let view = all_namespaces_view(Duration::from_millis(20)).await;
    let mut changes = view.changes();
    let nss = Namespaces::create(&["all-a"]).await;
    let a = nss.ns(0);
    ip(&["netns", "add", "all-b"]);
    let b = Namespace::named("all-b").unwrap();
    add_veth("all-b", "ab0", "ab1");
    let t = Duration::from_secs(5);
    view.wait_for("all-a and all-b with ab0", t, |s| {
        s.namespace(&a).is_some() && s.link(&b, "ab0").is_some()
    })
    .await
    .unwrap();
    assert_view_matches_dump(&view, &b).await;

    ip(&["netns", "del", "all-b"]);
    view.wait_for("all-b gone", t, |s| s.namespace(&b).is_none())
        .await
        .unwrap();
    drop(nss);
    view.wait_for("all-a gone", t, |s| s.namespace(&a).is_none())
        .await
        .unwrap();

    let mut added = BTreeSet::new();
    let mut removed = BTreeSet::new();
    let mut ab0_added = false;
    while let Ok(Some(c)) = tokio::time::timeout(Duration::from_millis(200), changes.next()).await {
        match c {
            Change::NamespaceAdded { ns } => {
                added.insert(ns);
            }
            Change::NamespaceRemoved { ns } => {
                removed.insert(ns);
            }
            Change::Added {
                ns,
                object: Object::Link(l),
            } if ns == b && l.name == "ab0" => ab0_added = true,
            _ => {}
        }
    }
    assert!(added.contains(&a) && added.contains(&b), "{added:?}");
    assert!(removed.contains(&a) && removed.contains(&b), "{removed:?}");
    assert!(ab0_added);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_removed_while_viewed_is_marked_and_refuses_edits() {
    let nss = Namespaces::create(&["rm-a"]).await;
    let a = nss.ns(0);
    let view = View::builder()
        .namespace(a.clone())
        .poll_interval(Duration::from_millis(20))
        .build()
        .await
        .unwrap();
    ip(&["netns", "del", "rm-a"]);
    let snap = view
        .wait_for("rm-a marked removed", Duration::from_secs(5), |s| {
            s.namespace(&a)
                .is_some_and(|v| *v.status() == NsStatus::Removed)
        })
        .await
        .unwrap();
    // The last known state is still readable, and says it is not current.
    assert!(snap.link(&a, "lo").is_some());
    let mut tx = view.transaction();
    tx.link(&a, "lo").unwrap().up();
    assert!(matches!(tx.commit().await, Err(nsdb::Error::Stale { .. })));
    assert!(matches!(
        view.dump(&a).await,
        Err(nsdb::Error::Stale { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_stream_reports_old_and_new_values_and_wait_for_times_out() {
    let nss = Namespaces::create(&["ch-a"]).await;
    let a = nss.ns(0);
    add_veth("ch-a", "ch0", "ch1");
    let view = view_of(&[&a]).await;
    let mut changes = view.changes();
    ip(&["-n", "ch-a", "link", "set", "ch0", "mtu", "1234"]);
    let found = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(c) = changes.next().await {
            if let Change::Changed {
                ns,
                old: Object::Link(o),
                new: Object::Link(n),
            } = c
                && ns == a
                && n.name == "ch0"
                && n.mtu == Some(1234)
            {
                return o.mtu;
            }
        }
        None
    })
    .await
    .unwrap();
    assert_eq!(found, Some(1500));
    let err = view
        .wait_for("never", Duration::from_millis(50), |s| {
            s.link(&a, "nope").is_some()
        })
        .await
        .unwrap_err();
    assert!(matches!(err, nsdb::Error::Timeout { .. }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_namespaces_mode_follows_the_run_directory_monitor_without_polling() {
    common::require_root();
    // A timer that never fires in this test: only nsfs's monitor can tell.
    let view = all_namespaces_view(Duration::from_secs(3600)).await;
    ip(&["netns", "add", "mon-a"]);
    let a = Namespace::named("mon-a").unwrap();
    let t = Duration::from_secs(5);
    view.wait_for("mon-a added", t, |s| s.namespace(&a).is_some())
        .await
        .unwrap();
    ip(&["netns", "del", "mon-a"]);
    view.wait_for("mon-a removed", t, |s| s.namespace(&a).is_none())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_namespace_view_matches_a_dump() {
    common::require_root();
    // Read only: tests never change the host namespace.
    let view = View::builder()
        .namespace(Namespace::Host)
        .build()
        .await
        .unwrap();
    assert!(view.snapshot().link(&Namespace::Host, "lo").is_some());
    assert_view_matches_dump(&view, &Namespace::Host).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_change_stream_is_told_it_lagged() {
    let nss = Namespaces::create(&["lag-a"]).await;
    let a = nss.ns(0);
    let view = View::builder()
        .namespace(a.clone())
        .change_capacity(4)
        .build()
        .await
        .unwrap();
    let mut changes = view.changes();
    let lines: Vec<String> = (0..20)
        .map(|i| format!("link add lg{i} type veth peer name lh{i}"))
        .collect();
    tokio::task::spawn_blocking(move || ip_batch("lag-a", &lines))
        .await
        .unwrap();
    view.wait_for("all made", Duration::from_secs(5), |s| {
        s.link(&a, "lg19").is_some()
    })
    .await
    .unwrap();
    let first = tokio::time::timeout(Duration::from_secs(5), changes.next())
        .await
        .unwrap();
    assert!(
        matches!(first, Some(Change::Lagged { missed }) if missed > 0),
        "{first:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filtered_snapshot_or_wait_holds_only_the_namespaces_kept_and_sees_every_one_in_order() {
    common::require_root();
    let nss = Namespaces::create(&["sw-a", "sw-b", "sw-c"]).await;
    let (a, b, c) = (nss.ns(0), nss.ns(1), nss.ns(2));
    let view = view_of(&[&a, &b, &c]).await;
    let mut seen = Vec::new();
    let snap = view.snapshot_where(|v| {
        seen.push(v.namespace().clone());
        v.namespace() == &b
    });
    assert_eq!(seen, vec![a.clone(), b.clone(), c.clone()]);
    let kept: Vec<_> = snap.namespaces().map(|v| v.namespace().clone()).collect();
    assert_eq!(kept, vec![b.clone()]);
    // The same state as a whole snapshot shows.
    let whole = view.snapshot();
    assert_eq!(
        snap.namespace(&b).unwrap().state(),
        whole.namespace(&b).unwrap().state()
    );
    assert!(view.snapshot_where(|_| false).namespaces().next().is_none());

    // Waiting on the kept namespaces only.
    add_veth("sw-b", "swv0", "swv1");
    let held = view
        .wait_for_where(
            "swv0 in sw-b",
            Duration::from_secs(5),
            |v| v.namespace() == &b,
            |s| s.link(&b, "swv0").is_some(),
        )
        .await
        .unwrap();
    let kept: Vec<_> = held.namespaces().map(|v| v.namespace().clone()).collect();
    assert_eq!(kept, vec![b.clone()]);
}
