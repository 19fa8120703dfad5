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

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use netns::nsproc::ExecMode;
use netns::{Handle, OpenMode, RunDir, Transport};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

/// One span as the layer saw it.
#[derive(Clone, Debug, Default)]
struct Seen {
    name: &'static str,
    target: String,
    fields: BTreeMap<String, String>,
}

/// Collects spans; events at WARN or ERROR are kept apart, as text.
#[derive(Clone, Default)]
struct Collect {
    spans: Arc<Mutex<BTreeMap<u64, Seen>>>,
    loud: Arc<Mutex<Vec<String>>>,
}

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Collect {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, _: Context<'_, S>) {
        let mut seen = Seen {
            name: attrs.metadata().name(),
            target: attrs.metadata().target().to_owned(),
            fields: BTreeMap::new(),
        };
        attrs.record(&mut Fields(&mut seen.fields));
        self.spans.lock().unwrap().insert(id.into_u64(), seen);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _: Context<'_, S>) {
        if let Some(seen) = self.spans.lock().unwrap().get_mut(&id.into_u64()) {
            values.record(&mut Fields(&mut seen.fields));
        }
    }

    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let level = *event.metadata().level();
        if level <= Level::WARN {
            let mut fields = BTreeMap::new();
            event.record(&mut Fields(&mut fields));
            let mut line = format!("{level} {}:", event.metadata().target());
            for (k, v) in fields {
                let _ = write!(line, " {k}={v}");
            }
            self.loud.lock().unwrap().push(line);
        }
    }
}

impl Collect {
    /// Spans named `name` whose target starts with `krate`.
    fn named(&self, krate: &str, name: &str) -> Vec<Seen> {
        self.spans
            .lock()
            .unwrap()
            .values()
            .filter(|s| s.name == name && s.target.starts_with(krate))
            .cloned()
            .collect()
    }

    /// Asserts that a span `krate::name` exists with `outcome = "ok"` and the
    /// given fields present; returns the first such span.
    fn expect_ok(&self, krate: &str, name: &str, fields: &[&str]) -> Seen {
        let spans = self.named(krate, name);
        let ok = spans
            .iter()
            .find(|s| s.fields.get("outcome").map(String::as_str) == Some("ok"));
        let Some(ok) = ok else {
            panic!(
                "no span {krate}::{name} with outcome=ok; seen with that name: {spans:#?}\nall names: {:?}",
                self.names()
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

    fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .spans
            .lock()
            .unwrap()
            .values()
            .map(|s| format!("{}::{}", s.target.split("::").next().unwrap_or(""), s.name))
            .collect();
        names.sort();
        names.dedup();
        names
    }
}

#[test]
fn every_operation_leaves_a_span_with_identity_and_outcome() {
    let collect = Collect::default();
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

    let create = collect.expect_ok("nsfs", "create", &["netns", "inode"]);
    assert_eq!(create.fields["netns"], "obs-blue", "{create:#?}");
    collect.expect_ok("nsfs", "remove", &["netns"]);
    let open = collect.expect_ok("netns", "open", &["netns", "inode"]);
    assert!(open.fields["netns"].contains("obs-blue"), "{open:#?}");
    collect.expect_ok("netns", "move_link", &["netns"]);
    collect.expect_ok("nsproxy", "agent_start", &["inode"]);
    collect.expect_ok("nsproxy", "agent_request", &["op"]);
    collect.expect_ok("nsproc", "status", &["netns", "inode"]);
    collect.expect_ok("nsfs", "run_in_short", &["inode"]);
    collect.expect_ok("nsdb", "build", &[]);
    collect.expect_ok("nsdb", "add", &["netns", "inode"]);

    // A failure records its outcome and its error.
    let failed = collect
        .named("netns", "open")
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

    let loud = collect.loud.lock().unwrap().clone();
    assert!(
        loud.is_empty(),
        "a normal run logs no WARN or ERROR: {loud:#?}"
    );
}
