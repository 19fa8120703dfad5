//! Every public async operation has a DEBUG span named by the operation,
//! carrying the namespace (`netns`, `inode`) and its `outcome` (and `error`).

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use common::Ns;
use netns::{Handle, MulticastGroup, OpenMode, Transport};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::layer::{Context, SubscriberExt};

/// A span as seen: its name, level, target and fields (Display/Debug text).
#[derive(Clone, Debug)]
struct Seen {
    name: &'static str,
    level: tracing::Level,
    target: String,
    fields: HashMap<String, String>,
}

/// Spans in the order they were made, and where each span id is.
#[derive(Default)]
struct Recorded {
    at: HashMap<u64, usize>,
    spans: Vec<Seen>,
}

#[derive(Clone, Default)]
struct Spans(Arc<Mutex<Recorded>>);

struct Fields<'a>(&'a mut HashMap<String, String>);

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().into(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.0.insert(field.name().into(), value.to_string());
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Spans {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, _: Context<'_, S>) {
        let meta = attrs.metadata();
        let mut seen = Seen {
            name: meta.name(),
            level: *meta.level(),
            target: meta.target().into(),
            fields: HashMap::new(),
        };
        attrs.record(&mut Fields(&mut seen.fields));
        let mut all = self.0.lock().unwrap();
        let at = all.spans.len();
        all.spans.push(seen);
        all.at.insert(id.into_u64(), at);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _: Context<'_, S>) {
        let mut all = self.0.lock().unwrap();
        if let Some(&at) = all.at.get(&id.into_u64()) {
            values.record(&mut Fields(&mut all.spans[at].fields));
        }
    }
}

impl Spans {
    /// The spans named `name` of this crate, in the order they were made.
    fn named(&self, name: &str) -> Vec<Seen> {
        let all = self.0.lock().unwrap();
        all.spans
            .iter()
            .filter(|s| s.name == name && s.target.starts_with("netns"))
            .cloned()
            .collect()
    }
}

/// Checks the one span named `name`: DEBUG, the namespace's name in
/// `netns`, its inode, outcome "ok".
fn check_ok(spans: &Spans, name: &str, ns: &Ns) {
    let seen = spans.named(name);
    assert_eq!(seen.len(), 1, "spans {name}: {seen:#?}");
    let s = &seen[0];
    assert_eq!(s.level, tracing::Level::DEBUG, "{s:?}");
    assert!(s.fields["netns"].contains(ns.name()), "{s:?}");
    assert_eq!(s.fields["inode"], ns.netns.id().ino.to_string(), "{s:?}");
    assert_eq!(s.fields["outcome"], "ok", "{s:?}");
    assert!(!s.fields.contains_key("error"), "{s:?}");
}

#[tokio::test(flavor = "current_thread")]
async fn public_operations_have_spans_with_namespace_and_outcome() {
    let spans = Spans::default();
    let _default =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(spans.clone()));
    let a = Ns::new("spana").await;
    let b = Ns::new("spanb").await;

    let h = Handle::builder(a.name())
        .mode(OpenMode::OpenOnly)
        .open()
        .await
        .unwrap();
    check_ok(&spans, "open", &a);
    let relay = common::open(a.name(), Transport::Relay).await;
    assert_eq!(spans.named("open")[1].fields["transport"], "Relay");
    relay.close().await;

    h.udp_bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    check_ok(&spans, "udp_bind", &a);
    h.tcp_listener("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    check_ok(&spans, "tcp_listener", &a);
    h.socket(libc::AF_INET, libc::SOCK_DGRAM, 0).await.unwrap();
    check_ok(&spans, "socket", &a);
    drop(h.events(&[MulticastGroup::Link]).await.unwrap());
    check_ok(&spans, "events", &a);
    drop(h.connection().await.unwrap());
    check_ok(&spans, "connection", &a);
    h.add_veth("sp0", "sp1").execute().await.unwrap();
    check_ok(&spans, "add_veth", &a);
    h.move_link("sp1", b.name()).execute().await.unwrap();
    check_ok(&spans, "move_link", &a);

    // A failure: outcome "error" and the error's Display.
    let err = h
        .move_link("no-such-link", b.name())
        .execute()
        .await
        .unwrap_err();
    let failed = &spans.named("move_link")[1];
    assert_eq!(failed.fields["outcome"], "error", "{failed:?}");
    assert_eq!(failed.fields["error"], err.to_string(), "{failed:?}");
    let err = Handle::open("nt-no-such-namespace", OpenMode::OpenOnly)
        .await
        .unwrap_err();
    let open = spans.named("open");
    let failed = open.last().unwrap();
    assert!(
        failed.fields["netns"].contains("nt-no-such-namespace"),
        "{failed:?}"
    );
    assert_eq!(failed.fields["outcome"], "error");
    assert_eq!(failed.fields["error"], err.to_string());

    h.close().await;
    // Two closes: the relay handle's, then this one's.
    let close = spans.named("close");
    assert_eq!(close.len(), 2, "{close:#?}");
    assert_eq!(close[1].fields["outcome"], "ok");
    assert_eq!(close[1].fields["inode"], a.netns.id().ino.to_string());
}
