//! A normal close is not a failure: it logs nothing at WARN or ERROR (from
//! this crate or from netlink-proto, whose `log` records are captured too).
//! Its own test binary: it installs the process's global subscriber.

mod common;

use std::sync::{Arc, Mutex};

use common::Ns;
use netns::Transport;
use tracing::Level;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

/// Keeps every event at WARN or above, as "LEVEL target: fields".
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<String>>>);

struct Fields(String);

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0 += &format!(" {}={value:?}", field.name());
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Capture {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let meta = event.metadata();
        if *meta.level() <= Level::WARN {
            let mut fields = Fields(String::new());
            event.record(&mut fields);
            let line = format!("{} {}:{}", meta.level(), meta.target(), fields.0);
            self.0.lock().unwrap().push(line);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_handles_logs_no_warning_or_error() {
    let capture = Capture::default();
    tracing_subscriber::registry().with(capture.clone()).init();
    // The capture works. (netlink-proto's `log` records reach it through the
    // bridge `init` installs: without a quiet close, its ERROR shows here.)
    tracing::warn!("probe");
    assert_eq!(capture.0.lock().unwrap().len(), 1);
    capture.0.lock().unwrap().clear();

    let ns = Ns::new("quietclose").await;
    for transport in [Transport::Direct, Transport::Relay] {
        let h = common::open(ns.name(), transport).await;
        assert_eq!(common::link_names(&h).await, ["lo"]);
        // The facade's own connections too (a dump, a request carrying an fd).
        h.nsid_list().execute().await.unwrap();
        h.nsid(ns.name()).await.unwrap();
        h.close().await;
    }
    let logged = capture.0.lock().unwrap().clone();
    assert!(logged.is_empty(), "a normal close logged: {logged:#?}");
}
