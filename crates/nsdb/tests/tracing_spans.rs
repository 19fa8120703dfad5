//! nsdb's spans and events, as a tracing subscriber sees them: `build`,
//! `add`, `commit` (with a `step` per request), `resync`, and a WARN event
//! on an overrun, each with the namespace's name and inode and the
//! operation's outcome. One test: it installs the process-wide subscriber
//! (the follower tasks run on the runtime's worker threads).

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Namespaces, ip, ip_batch};
use futures::StreamExt;
use nsdb::{Change, ResyncReason, View};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

/// A span (when it closed) or an event, with its fields as text.
#[derive(Clone, Debug)]
struct Rec {
    name: String,
    target: String,
    level: Level,
    event: bool,
    fields: BTreeMap<String, String>,
}

impl Rec {
    fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }
}

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().into(), format!("{value:?}"));
    }
}

#[derive(Clone, Default)]
struct Capture {
    open: Arc<Mutex<BTreeMap<u64, Rec>>>,
    done: Arc<Mutex<Vec<Rec>>>,
}

impl<S: Subscriber> Layer<S> for Capture {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, _: Context<'_, S>) {
        let meta = attrs.metadata();
        let mut rec = Rec {
            name: meta.name().into(),
            target: meta.target().into(),
            level: *meta.level(),
            event: false,
            fields: BTreeMap::new(),
        };
        attrs.record(&mut Fields(&mut rec.fields));
        self.open.lock().unwrap().insert(id.into_u64(), rec);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _: Context<'_, S>) {
        if let Some(rec) = self.open.lock().unwrap().get_mut(&id.into_u64()) {
            values.record(&mut Fields(&mut rec.fields));
        }
    }

    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let meta = event.metadata();
        let mut rec = Rec {
            name: meta.name().into(),
            target: meta.target().into(),
            level: *meta.level(),
            event: true,
            fields: BTreeMap::new(),
        };
        event.record(&mut Fields(&mut rec.fields));
        self.done.lock().unwrap().push(rec);
    }

    fn on_close(&self, id: Id, _: Context<'_, S>) {
        if let Some(rec) = self.open.lock().unwrap().remove(&id.into_u64()) {
            self.done.lock().unwrap().push(rec);
        }
    }
}

impl Capture {
    /// The closed spans named `name` whose `netns` is `ns`.
    fn spans(&self, name: &str, ns: &str) -> Vec<Rec> {
        self.done
            .lock()
            .unwrap()
            .iter()
            .filter(|r| !r.event && r.name == name && r.field("netns") == Some(ns))
            .cloned()
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_have_spans_with_identity_and_outcome() {
    let capture = Capture::default();
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
    ip(&[
        "-n", "tr-a", "link", "add", "tr0", "type", "veth", "peer", "name", "tr1",
    ]);
    // The smallest receive buffer: a burst of changes overruns it.
    let view = View::builder()
        .namespace(a.clone())
        .receive_buffer(1)
        .build()
        .await
        .unwrap();

    // View creation: `build`, and `add` for the namespace, with its inode.
    let build = capture
        .done
        .lock()
        .unwrap()
        .iter()
        .find(|r| r.name == "build")
        .cloned();
    let build = build.expect("a build span");
    assert_eq!(build.field("outcome"), Some("ok"), "{build:?}");
    assert_eq!(build.target, "nsdb::view");
    assert_eq!(build.level, Level::DEBUG);
    let add = capture.spans("add", "tr-a");
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
    let commits: Vec<Rec> = capture
        .done
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.name == "commit")
        .cloned()
        .collect();
    assert_eq!(commits.len(), 2, "{commits:?}");
    assert_eq!(commits[0].field("outcome"), Some("ok"), "{commits:?}");
    assert_eq!(commits[1].field("outcome"), Some("error"), "{commits:?}");
    assert_eq!(commits[1].field("error"), Some(&*err.to_string()));
    let steps = capture.spans("step", "tr-a");
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
    let warns: Vec<Rec> = capture
        .done
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.event && r.level == Level::WARN && r.target.starts_with("nsdb"))
        .cloned()
        .collect();
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
            let r = capture.spans("resync", "tr-a");
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
    let loud: Vec<Rec> = capture
        .done
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.event && r.target.starts_with("nsdb") && r.level <= Level::WARN)
        .filter(|r| !r.field("message").is_some_and(|m| m.contains("overran")))
        .cloned()
        .collect();
    assert!(loud.is_empty(), "{loud:?}");
}
