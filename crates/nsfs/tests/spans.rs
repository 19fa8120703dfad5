//! Every public async operation runs in a DEBUG span named after it, with
//! the namespace's name (`netns`), its inode where known, and the outcome
//! (`outcome`, plus `error` on failure), recorded when it ends.
mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use common::*;
use nsfs::OpenMode;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

/// A closed span: its name and fields, as text.
#[derive(Debug, Clone)]
struct Closed {
    name: &'static str,
    fields: HashMap<String, String>,
}

#[derive(Default)]
struct Fields(HashMap<String, String>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().into(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.to_string());
    }
}

/// Collects every span of this crate, by id while open, in order once closed.
#[derive(Clone, Default)]
struct Collect {
    open: Arc<Mutex<HashMap<Id, Closed>>>,
    closed: Arc<Mutex<Vec<Closed>>>,
}

impl<S: tracing::Subscriber> Layer<S> for Collect {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, _: Context<'_, S>) {
        if !attrs.metadata().target().starts_with("nsfs") {
            return;
        }
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        let span = Closed {
            name: attrs.metadata().name(),
            fields: fields.0,
        };
        self.open.lock().unwrap().insert(id.clone(), span);
    }
    fn on_record(&self, id: &Id, values: &Record<'_>, _: Context<'_, S>) {
        if let Some(span) = self.open.lock().unwrap().get_mut(id) {
            let mut fields = Fields::default();
            values.record(&mut fields);
            span.fields.extend(fields.0);
        }
    }
    fn on_close(&self, id: Id, _: Context<'_, S>) {
        if let Some(span) = self.open.lock().unwrap().remove(&id) {
            self.closed.lock().unwrap().push(span);
        }
    }
}

#[test]
fn operations_have_spans_with_name_inode_and_outcome() {
    require_root();
    let collect = Collect::default();
    let subscriber = tracing_subscriber::registry().with(collect.clone());
    let _default = tracing::subscriber::set_default(subscriber);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let tmp = TempRunDir::new("spans");
    let name = unique("spans");
    let ino = rt.block_on(async {
        let ns = tmp
            .dir
            .create(&name, OpenMode::CreateExclusive)
            .await
            .unwrap();
        tmp.dir.pids(&name).await.unwrap();
        tmp.dir.remove(&name).await.unwrap();
        tmp.dir.remove(&name).await.unwrap_err();
        ns.run_short(|| ()).await.unwrap();
        ns.run(|| ()).await.unwrap();
        ns.id().ino.to_string()
    });
    let closed = collect.closed.lock().unwrap().clone();
    let names: Vec<_> = closed.iter().map(|s| s.name).collect();
    assert_eq!(
        names,
        [
            "create",
            "pids",
            "remove",
            "remove",
            "run_in_short",
            "run_in"
        ],
        "{closed:#?}"
    );
    for span in &closed[..4] {
        assert_eq!(span.fields["netns"], name.as_str(), "{span:?}");
    }
    let entry = tmp.dir.entry(&name).display().to_string();
    for span in &closed[4..] {
        assert_eq!(span.fields["netns"], entry, "{span:?}");
        assert_eq!(span.fields["inode"], ino, "{span:?}");
        assert_eq!(span.fields["outcome"], "ok", "{span:?}");
    }
    let field = |i: usize, f: &str| closed[i].fields.get(f).map(String::as_str);
    assert_eq!(field(0, "inode"), Some(ino.as_str()));
    assert_eq!(field(1, "inode"), Some(ino.as_str()));
    for span in &closed[..3] {
        assert_eq!(
            span.fields.get("outcome").map(String::as_str),
            Some("ok"),
            "{span:?}"
        );
        assert!(!span.fields.contains_key("error"), "{span:?}");
    }
    assert_eq!(field(3, "outcome"), Some("error"));
    assert!(
        field(3, "error").is_some_and(|e| e.contains("not found")),
        "{:?}",
        closed[3]
    );
}
