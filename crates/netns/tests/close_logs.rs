//! A normal close is not a failure: it logs nothing at WARN or ERROR (from
//! this crate or from netlink-proto, whose `log` records are captured too).
//! Its own test binary: it installs the process's global subscriber.

mod common;

use common::Ns;
use netns::Transport;
use testkit::Collector;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_handles_logs_no_warning_or_error() {
    let capture = Collector::default();
    tracing_subscriber::registry().with(capture.clone()).init();
    // The capture works. (netlink-proto's `log` records reach it through the
    // bridge `init` installs: without a quiet close, its ERROR shows here.)
    tracing::warn!("probe");
    assert_eq!(capture.loud().len(), 1);
    capture.clear();

    let ns = Ns::new("quietclose").await;
    for transport in [Transport::Direct, Transport::Relay] {
        let h = common::open(ns.name(), transport).await;
        assert_eq!(common::link_names(&h).await, ["lo"]);
        // The facade's own connections too (a dump, a request carrying an fd).
        h.nsid_list().execute().await.unwrap();
        h.nsid(ns.name()).await.unwrap();
        h.close().await;
    }
    let logged = capture.loud();
    assert!(logged.is_empty(), "a normal close logged: {logged:#?}");
}
