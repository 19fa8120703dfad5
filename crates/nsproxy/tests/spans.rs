//! The tracing an agent's life emits, collected by a real `tracing`
//! subscriber layer: the `agent_start` and `agent_request` spans with their
//! fields, the lifecycle events, and no WARN or ERROR for a normal close.

use std::time::Duration;

use nsfs::NsName;
use nsproxy::{Agent, AgentOptions, SpawnRequest};
use testkit::Collector;
use tracing::Level;
use tracing_subscriber::layer::SubscriberExt;

#[tokio::test]
async fn agent_spans_carry_the_namespace_and_the_outcome() {
    testkit::require_root();
    let collect = Collector::default();
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
    assert_eq!(start.field("netns"), Some("traced"), "{start:?}");
    assert_eq!(start.field("inode"), Some(inode.as_str()));
    assert_eq!(start.field("pid"), Some(pid.as_str()));
    assert_eq!(start.field("outcome"), Some("ok"));
    assert_eq!(start.field("error"), None);

    let requests = collect.spans("agent_request");
    let by_op = |op: &str| {
        requests
            .iter()
            .find(|s| s.field("op") == Some(op))
            .unwrap_or_else(|| panic!("no agent_request span for {op}: {requests:?}"))
            .clone()
    };
    let open = by_op("open_socket");
    assert_eq!(open.field("netns"), Some("traced"));
    assert_eq!(open.field("inode"), Some(inode.as_str()));
    assert_eq!(open.field("pid"), Some(pid.as_str()));
    assert_eq!(open.field("outcome"), Some("ok"));
    let spawn = by_op("spawn");
    assert_eq!(spawn.field("outcome"), Some("error"));
    assert!(
        spawn
            .field("error")
            .is_some_and(|e| e.contains("/no/such/program")),
        "{spawn:?}"
    );

    let events: Vec<(Level, String)> = collect
        .events()
        .into_iter()
        .filter(|e| e.target.starts_with("nsproxy"))
        .map(|e| (e.level, e.field("message").unwrap_or_default().to_owned()))
        .collect();
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
