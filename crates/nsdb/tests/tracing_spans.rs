//! nsdb's spans and events, as a tracing subscriber sees them: `build`,
//! `add`, `commit` (with a `step` per request), `resync`, and a WARN event
//! on an overrun, each with the namespace's name and inode and the
//! operation's outcome. One test: it installs the process-wide subscriber
//! (the follower tasks run on the runtime's worker threads).

mod common;

use std::time::Duration;

use common::{Namespaces, add_veth, ip_batch};
use futures::StreamExt;
use nsdb::{Change, ResyncReason};
use testkit::{Collector, Seen};
use tracing::Level;
use tracing_subscriber::layer::SubscriberExt;

/// The closed spans named `name` whose `netns` is `ns`.
fn closed(capture: &Collector, name: &str, ns: &str) -> Vec<Seen> {
    let mut spans = capture.closed();
    spans.retain(|r| r.name == name && r.field("netns") == Some(ns));
    spans
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_have_spans_with_identity_and_outcome() {
    let capture = Collector::default();
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(capture.clone()))
        .expect("the only subscriber of this test binary");

    let nss = Namespaces::create(&["tr-a"]).await;
    let a = nss.ns(0);
    let inode = nsfs::RunDir::default()
        .open(&nss.names[0])
        .unwrap()
        .id()
        .ino
        .to_string();
    add_veth("tr-a", "tr0", "tr1");
    let view = common::overrunnable_view(&a).await;

    // View creation: `build`, and `add` for the namespace, with its inode.
    let build = capture.closed().into_iter().find(|r| r.name == "build");
    let build = build.expect("a build span");
    assert_eq!(build.field("outcome"), Some("ok"), "{build:?}");
    assert_eq!(build.target, "nsdb::view");
    assert_eq!(build.level, Level::DEBUG);
    let add = closed(&capture, "add", "tr-a");
    assert_eq!(add.len(), 1, "{add:?}");
    assert_eq!(add[0].field("inode"), Some(&*inode), "{add:?}");
    assert_eq!(add[0].field("outcome"), Some("ok"), "{add:?}");

    // A commit that works, then one the kernel refuses.
    let mut tx = view.transaction();
    tx.link(&a, "tr0").unwrap().set_mtu(1400);
    tx.commit().await.unwrap();
    let mut tx = view.transaction();
    tx.link(&a, "tr0").unwrap().set_mtu(100_000);
    let err = tx.commit().await.unwrap_err();
    let mut commits = capture.closed();
    commits.retain(|r| r.name == "commit");
    assert_eq!(commits.len(), 2, "{commits:?}");
    assert_eq!(commits[0].field("outcome"), Some("ok"), "{commits:?}");
    assert_eq!(commits[1].field("outcome"), Some("error"), "{commits:?}");
    assert_eq!(commits[1].field("error"), Some(&*err.to_string()));
    let steps = closed(&capture, "step", "tr-a");
    assert_eq!(steps.len(), 2, "{steps:?}");
    assert_eq!(steps[0].field("inode"), Some(&*inode), "{steps:?}");
    assert_eq!(steps[0].field("outcome"), Some("ok"), "{steps:?}");
    assert_eq!(steps[1].field("outcome"), Some("error"), "{steps:?}");
    assert!(
        steps[1].field("request").unwrap().contains("mtu 100000"),
        "{steps:?}"
    );

    // An overrun: a WARN event naming the namespace, then a `resync` span.
    let mut changes = view.changes();
    let lines: Vec<String> = (0..150)
        .flat_map(|i| {
            [
                format!("link add tv{i} type veth peer name tw{i}"),
                format!("link set tv{i} up"),
                format!("addr add 10.8.{i}.1/24 dev tv{i}"),
            ]
        })
        .collect();
    tokio::task::spawn_blocking(move || ip_batch("tr-a", &lines))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(c) = changes.next().await {
            if matches!(
                c,
                Change::Resynced {
                    reason: ResyncReason::Overrun,
                    ..
                }
            ) {
                return;
            }
        }
        panic!("the change stream ended");
    })
    .await
    .expect("no resync within 20 s");
    let mut warns = capture.events();
    warns.retain(|r| r.level == Level::WARN && r.target.starts_with("nsdb"));
    assert!(!warns.is_empty(), "no WARN on the overrun");
    for w in &warns {
        assert_eq!(w.field("netns"), Some("tr-a"), "{w:?}");
        assert_eq!(w.field("inode"), Some(&*inode), "{w:?}");
        assert!(w.field("message").unwrap().contains("overran"), "{w:?}");
    }
    // The resync span closes once its dump is applied (the span ends just
    // after the change is sent).
    let resynced = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let r = closed(&capture, "resync", "tr-a");
            if !r.is_empty() {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("a closed resync span");
    assert_eq!(resynced[0].field("outcome"), Some("ok"), "{resynced:?}");
    assert_eq!(resynced[0].field("inode"), Some(&*inode), "{resynced:?}");
    assert_eq!(resynced[0].field("reason"), Some("Overrun"), "{resynced:?}");

    // A normal close logs no ERROR and no other WARN.
    drop(view);
    drop(nss);
    let mut loud = capture.events();
    loud.retain(|r| r.target.starts_with("nsdb") && r.level <= Level::WARN);
    loud.retain(|r| !r.field("message").is_some_and(|m| m.contains("overran")));
    assert!(loud.is_empty(), "{loud:?}");
}
