//! The tracing an agent's life emits, collected by a real `tracing`
//! subscriber layer: the `agent_start` and `agent_request` spans with their
//! fields, the lifecycle events, and no WARN or ERROR for a normal close.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nsfs::NsName;
use nsproxy::{Agent, AgentOptions, SpawnRequest};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

#[derive(Debug, Clone, Default)]
struct SpanSeen {
    name: &'static str,
    fields: HashMap<String, String>,
}

#[derive(Default)]
struct Seen {
    spans: HashMap<u64, SpanSeen>,
    events: Vec<(Level, String)>,
}

#[derive(Clone, Default)]
struct Collect(Arc<Mutex<Seen>>);

struct Fields<'a>(&'a mut HashMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        self.0.insert(field.name().into(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.to_string());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.to_string());
    }
}

impl<S: Subscriber> Layer<S> for Collect {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, _: Context<'_, S>) {
        let mut span = SpanSeen {
            name: attrs.metadata().name(),
            ..SpanSeen::default()
        };
        attrs.record(&mut Fields(&mut span.fields));
        self.0.lock().unwrap().spans.insert(id.into_u64(), span);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _: Context<'_, S>) {
        let mut seen = self.0.lock().unwrap();
        if let Some(span) = seen.spans.get_mut(&id.into_u64()) {
            values.record(&mut Fields(&mut span.fields));
        }
    }

    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        if !event.metadata().target().starts_with("nsproxy") {
            return;
        }
        let mut fields = HashMap::new();
        event.record(&mut Fields(&mut fields));
        let message = fields.remove("message").unwrap_or_default();
        let level = *event.metadata().level();
        self.0.lock().unwrap().events.push((level, message));
    }
}

impl Collect {
    fn spans(&self, name: &str) -> Vec<SpanSeen> {
        let seen = self.0.lock().unwrap();
        seen.spans
            .values()
            .filter(|s| s.name == name)
            .cloned()
            .collect()
    }
}

fn field<'a>(span: &'a SpanSeen, name: &str) -> Option<&'a str> {
    span.fields.get(name).map(String::as_str)
}

#[tokio::test]
async fn agent_spans_carry_the_namespace_and_the_outcome() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root (network namespaces): run it as root"
    );
    let collect = Collect::default();
    let subscriber = tracing_subscriber::registry().with(collect.clone());
    // This runtime has one thread: the agent's tasks run under it too.
    let _default = tracing::subscriber::set_default(subscriber);

    let (ns, ()) = nsfs::Executor::global()
        .unwrap()
        .run_in_new(|| ())
        .await
        .unwrap();
    let inode = ns.id().ino.to_string();
    let name = NsName::new("traced").unwrap();
    let opts = AgentOptions::new().exec_mounts(Some(name));
    let guard = Duration::from_secs(20);
    let agent = tokio::time::timeout(guard, Agent::start(&ns, opts))
        .await
        .unwrap()
        .unwrap();
    let pid = agent.pid().to_string();
    tokio::time::timeout(guard, agent.open_socket(libc::AF_INET, libc::SOCK_DGRAM, 0))
        .await
        .unwrap()
        .unwrap();
    tokio::time::timeout(guard, agent.spawn(SpawnRequest::new("/no/such/program")))
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        tokio::time::timeout(guard, agent.close())
            .await
            .unwrap()
            .unwrap()
            .success()
    );

    let starts = collect.spans("agent_start");
    assert_eq!(starts.len(), 1, "{starts:?}");
    let start = &starts[0];
    assert_eq!(field(start, "netns"), Some("traced"), "{start:?}");
    assert_eq!(field(start, "inode"), Some(inode.as_str()));
    assert_eq!(field(start, "pid"), Some(pid.as_str()));
    assert_eq!(field(start, "outcome"), Some("ok"));
    assert_eq!(field(start, "error"), None);

    let requests = collect.spans("agent_request");
    let by_op = |op: &str| {
        requests
            .iter()
            .find(|s| field(s, "op") == Some(op))
            .unwrap_or_else(|| panic!("no agent_request span for {op}: {requests:?}"))
            .clone()
    };
    let open = by_op("open_socket");
    assert_eq!(field(&open, "netns"), Some("traced"));
    assert_eq!(field(&open, "inode"), Some(inode.as_str()));
    assert_eq!(field(&open, "pid"), Some(pid.as_str()));
    assert_eq!(field(&open, "outcome"), Some("ok"));
    let spawn = by_op("spawn");
    assert_eq!(field(&spawn, "outcome"), Some("error"));
    assert!(
        field(&spawn, "error").is_some_and(|e| e.contains("/no/such/program")),
        "{spawn:?}"
    );

    let events = collect.0.lock().unwrap().events.clone();
    let has =
        |level: Level, text: &str| events.iter().any(|(l, m)| *l == level && m.contains(text));
    assert!(has(Level::DEBUG, "agent started"), "{events:?}");
    assert!(has(Level::DEBUG, "agent exited"), "{events:?}");
    assert!(
        events
            .iter()
            .all(|(l, _)| *l != Level::WARN && *l != Level::ERROR),
        "a normal life and close log no WARN or ERROR: {events:?}"
    );
}
