//! Every public async operation has a DEBUG span named by the operation,
//! carrying the namespace (`netns`, `inode`) and its `outcome` (and `error`).

mod common;

use common::Ns;
use netns::{Handle, MulticastGroup, OpenMode, Transport};
use testkit::{Collector, Seen};
use tracing_subscriber::layer::SubscriberExt;

/// The spans named `name` of this crate, in the order they were made.
fn named(spans: &Collector, name: &str) -> Vec<Seen> {
    let mut seen = spans.spans(name);
    seen.retain(|s| s.target.starts_with("netns"));
    seen
}

/// Checks the one span named `name`: DEBUG, the namespace's name in
/// `netns`, its inode, outcome "ok".
fn check_ok(spans: &Collector, name: &str, ns: &Ns) {
    let seen = named(spans, name);
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
    let spans = Collector::default();
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
    assert_eq!(named(&spans, "open")[1].fields["transport"], "Relay");
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
    let failed = &named(&spans, "move_link")[1];
    assert_eq!(failed.fields["outcome"], "error", "{failed:?}");
    assert_eq!(failed.fields["error"], err.to_string(), "{failed:?}");
    let err = Handle::open("nt-no-such-namespace", OpenMode::OpenOnly)
        .await
        .unwrap_err();
    let open = named(&spans, "open");
    let failed = open.last().unwrap();
    assert!(
        failed.fields["netns"].contains("nt-no-such-namespace"),
        "{failed:?}"
    );
    assert_eq!(failed.fields["outcome"], "error");
    assert_eq!(failed.fields["error"], err.to_string());

    h.close().await;
    // Two closes: the relay handle's, then this one's.
    let close = named(&spans, "close");
    assert_eq!(close.len(), 2, "{close:#?}");
    assert_eq!(close[1].fields["outcome"], "ok");
    assert_eq!(close[1].fields["inode"], a.netns.id().ino.to_string());
}
