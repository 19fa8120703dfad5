//! Every public async operation of the toolkit leaves a `tracing` span that
//! names the operation and carries the namespace's identity and the outcome.
//!
//! A `tracing_subscriber` layer records every span the crates open (its name,
//! its target and the fields recorded on it, at creation or later), then the
//! test walks a namespace through its life with every crate (create, open a
//! handle on both transports, a veth moved by name, a spawn on both launch
//! paths, an nsdb view and a commit, remove) and checks what was recorded.
//!
//! One test in this binary: the subscriber is process-wide.

use netns::nsproc::ExecMode;
use netns::{Handle, OpenMode, RunDir, Transport};
use testkit::{Collector, Seen};
use tracing_subscriber::layer::SubscriberExt;

/// Spans named `name` whose target starts with `krate`.
fn named(collect: &Collector, krate: &str, name: &str) -> Vec<Seen> {
    let mut spans = collect.spans(name);
    spans.retain(|s| s.target.starts_with(krate));
    spans
}

/// Asserts that a span `krate::name` exists with `outcome = "ok"` and the
/// given fields present; returns the first such span.
fn expect_ok(collect: &Collector, krate: &str, name: &str, fields: &[&str]) -> Seen {
    let spans = named(collect, krate, name);
    let Some(ok) = spans.iter().find(|s| s.field("outcome") == Some("ok")) else {
        panic!(
            "no span {krate}::{name} with outcome=ok; seen with that name: {spans:#?}\nall names: {:?}",
            names(collect)
        );
    };
    for field in fields {
        assert!(
            ok.fields.contains_key(*field),
            "span {krate}::{name} lacks field {field}: {ok:#?}"
        );
    }
    ok.clone()
}

/// Every span's `crate::name`, sorted, once each.
fn names(collect: &Collector) -> Vec<String> {
    let mut names: Vec<String> = collect
        .all()
        .iter()
        .filter(|s| !s.event)
        .map(|s| format!("{}::{}", s.target.split("::").next().unwrap_or(""), s.name))
        .collect();
    names.sort();
    names.dedup();
    names
}

#[test]
fn every_operation_leaves_a_span_with_identity_and_outcome() {
    let collect = Collector::default();
    let subscriber = tracing_subscriber::registry()
        .with(collect.clone())
        .with(tracing_subscriber::filter::LevelFilter::TRACE);
    tracing::subscriber::set_global_default(subscriber).expect("one subscriber");

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let dir = RunDir::default();
        let name: netns::NsName = "obs-blue".parse().unwrap();
        dir.create(&name, OpenMode::CreateExclusive)
            .await
            .expect("create");

        let direct = Handle::open("obs-blue", OpenMode::OpenOnly)
            .await
            .expect("open direct");
        let relay = Handle::builder("obs-blue")
            .transport(Transport::Relay)
            .open()
            .await
            .expect("open relay");
        assert!(
            Handle::open("obs-missing", OpenMode::OpenOnly)
                .await
                .is_err(),
            "obs-missing does not exist"
        );
        let red = Handle::open("obs-red", OpenMode::CreateOrOpen)
            .await
            .expect("open red");

        direct
            .add_veth("obs0", "obs1")
            .execute()
            .await
            .expect("veth");
        direct
            .move_link("obs1", "obs-red")
            .execute()
            .await
            .expect("move");

        let fast = direct.command("true").status().await.expect("fast spawn");
        assert!(fast.success());
        let exec = direct
            .command("true")
            .exec_mode(ExecMode::IpNetnsExec)
            .status()
            .await
            .expect("exec spawn");
        assert!(exec.success());

        let view = nsdb::View::builder()
            .namespace(nsdb::Namespace::named("obs-blue").unwrap())
            .build()
            .await
            .expect("view");
        drop(view);

        relay.close().await;
        direct.close().await;
        red.close().await;
        dir.remove(&name).await.expect("remove");
        dir.remove(&"obs-red".parse().unwrap())
            .await
            .expect("remove red");
    });
    drop(runtime);

    let create = expect_ok(&collect, "nsfs", "create", &["netns", "inode"]);
    assert_eq!(create.fields["netns"], "obs-blue", "{create:#?}");
    expect_ok(&collect, "nsfs", "remove", &["netns"]);
    let open = expect_ok(&collect, "netns", "open", &["netns", "inode"]);
    assert!(open.fields["netns"].contains("obs-blue"), "{open:#?}");
    expect_ok(&collect, "netns", "move_link", &["netns"]);
    expect_ok(&collect, "nsproxy", "agent_start", &["inode"]);
    expect_ok(&collect, "nsproxy", "agent_request", &["op"]);
    expect_ok(&collect, "nsproc", "status", &["netns", "inode"]);
    expect_ok(&collect, "nsfs", "run_in_short", &["inode"]);
    expect_ok(&collect, "nsdb", "build", &[]);
    expect_ok(&collect, "nsdb", "add", &["netns", "inode"]);

    // A failure records its outcome and its error.
    let failed = named(&collect, "netns", "open")
        .into_iter()
        .find(|s| s.fields.get("outcome").map(String::as_str) == Some("error"))
        .expect("the failed open has a span with outcome=error");
    assert!(
        failed
            .fields
            .get("netns")
            .is_some_and(|n| n.contains("obs-missing")),
        "{failed:#?}"
    );
    assert!(failed.fields.contains_key("error"), "{failed:#?}");

    let loud = collect.loud();
    assert!(
        loud.is_empty(),
        "a normal run logs no WARN or ERROR: {loud:#?}"
    );
}
