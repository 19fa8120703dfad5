//! A `tracing` layer that keeps every span and event it sees, as text.

use std::collections::{BTreeMap, HashMap};
use std::fmt::{self, Write as _};
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

/// A span or an event as the [`Collector`] saw it, with its fields as text
/// (strings as they are, numbers in decimal, anything else as `Debug`).
///
/// ```
/// # let collector = testkit::Collector::default();
/// for seen in collector.spans("open") {
///     assert_eq!(seen.field("outcome"), Some("ok"));
/// }
/// ```
#[derive(Clone, Debug)]
pub struct Seen {
    /// The span's name (an event's is made up by `tracing`).
    pub name: &'static str,
    /// Its target: the module path of the code that made it.
    pub target: String,
    /// Its level.
    pub level: Level,
    /// Whether it is an event (not a span).
    pub event: bool,
    /// Whether the span has closed (always true for an event).
    pub closed: bool,
    /// Its fields, recorded at creation or later.
    pub fields: BTreeMap<String, String>,
}

impl Seen {
    /// The field `name` as text, if it was recorded.
    ///
    /// ```
    /// # let collector = testkit::Collector::default();
    /// let errors = collector.spans("open").iter().filter(|s| s.field("error").is_some()).count();
    /// # assert_eq!(errors, 0);
    /// ```
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }
}

#[derive(Debug, Default)]
struct State {
    /// Every span and event, in the order they were made.
    all: Vec<Seen>,
    /// Where each open span's id is in `all`.
    open: HashMap<u64, usize>,
    /// The closed spans not taken yet, in the order they closed.
    closed: Vec<usize>,
}

/// A `tracing_subscriber` layer that records every span (its name, target,
/// level and fields, at creation or later) and every event; clones share
/// what was recorded.
///
/// ```
/// use tracing_subscriber::layer::SubscriberExt;
///
/// let collector = testkit::Collector::default();
/// let subscriber = tracing_subscriber::registry().with(collector.clone());
/// tracing::subscriber::with_default(subscriber, || tracing::warn!("lost"));
/// assert_eq!(collector.loud().len(), 1);
/// ```
#[derive(Clone, Debug, Default)]
pub struct Collector(Arc<Mutex<State>>);

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
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

fn seen(meta: &'static tracing::Metadata<'static>, event: bool) -> Seen {
    Seen {
        name: meta.name(),
        target: meta.target().into(),
        level: *meta.level(),
        event,
        closed: event,
        fields: BTreeMap::new(),
    }
}

impl<S: Subscriber> Layer<S> for Collector {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, _: Context<'_, S>) {
        let mut span = seen(attrs.metadata(), false);
        attrs.record(&mut Fields(&mut span.fields));
        let mut state = self.0.lock().unwrap();
        let at = state.all.len();
        state.all.push(span);
        state.open.insert(id.into_u64(), at);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _: Context<'_, S>) {
        let mut state = self.0.lock().unwrap();
        if let Some(&at) = state.open.get(&id.into_u64()) {
            values.record(&mut Fields(&mut state.all[at].fields));
        }
    }

    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let mut seen = seen(event.metadata(), true);
        event.record(&mut Fields(&mut seen.fields));
        self.0.lock().unwrap().all.push(seen);
    }

    fn on_close(&self, id: Id, _: Context<'_, S>) {
        let mut state = self.0.lock().unwrap();
        if let Some(at) = state.open.remove(&id.into_u64()) {
            state.all[at].closed = true;
            state.closed.push(at);
        }
    }
}

impl Collector {
    /// The spans named `name` (open or closed), in the order they were made.
    ///
    /// ```
    /// # let collector = testkit::Collector::default();
    /// assert!(collector.spans("open").is_empty());
    /// ```
    pub fn spans(&self, name: &str) -> Vec<Seen> {
        let state = self.0.lock().unwrap();
        state
            .all
            .iter()
            .filter(|s| !s.event && s.name == name)
            .cloned()
            .collect()
    }

    /// Every span and event, in the order they were made.
    ///
    /// ```
    /// # let collector = testkit::Collector::default();
    /// assert!(collector.all().is_empty());
    /// ```
    pub fn all(&self) -> Vec<Seen> {
        self.0.lock().unwrap().all.clone()
    }

    /// The closed spans not taken yet, in the order they closed.
    ///
    /// ```
    /// # let collector = testkit::Collector::default();
    /// assert!(collector.closed().is_empty());
    /// ```
    pub fn closed(&self) -> Vec<Seen> {
        let state = self.0.lock().unwrap();
        state
            .closed
            .iter()
            .map(|&at| state.all[at].clone())
            .collect()
    }

    /// Takes the closed spans named `name`: returns them, in the order they
    /// closed, and [`closed`](Self::closed) no longer lists them.
    ///
    /// ```
    /// # let collector = testkit::Collector::default();
    /// assert!(collector.take("spawn").is_empty());
    /// ```
    pub fn take(&self, name: &str) -> Vec<Seen> {
        let mut state = self.0.lock().unwrap();
        let state = &mut *state;
        let (taken, kept) = state
            .closed
            .iter()
            .partition::<Vec<usize>, _>(|&&at| state.all[at].name == name);
        state.closed = kept;
        taken.into_iter().map(|at| state.all[at].clone()).collect()
    }

    /// Every event, in the order they came.
    ///
    /// ```
    /// # let collector = testkit::Collector::default();
    /// assert!(collector.events().is_empty());
    /// ```
    pub fn events(&self) -> Vec<Seen> {
        let state = self.0.lock().unwrap();
        state.all.iter().filter(|s| s.event).cloned().collect()
    }

    /// The events at WARN or ERROR, each as `LEVEL target: field=value …`.
    ///
    /// ```
    /// # let collector = testkit::Collector::default();
    /// assert!(collector.loud().is_empty(), "a normal close logs no warning");
    /// ```
    pub fn loud(&self) -> Vec<String> {
        self.events()
            .into_iter()
            .filter(|e| e.level <= Level::WARN)
            .map(|e| {
                let mut line = format!("{} {}:", e.level, e.target);
                for (k, v) in &e.fields {
                    let _ = write!(line, " {k}={v}");
                }
                line
            })
            .collect()
    }

    /// Forgets everything recorded so far (spans still open are recorded
    /// no more).
    ///
    /// ```
    /// # let collector = testkit::Collector::default();
    /// collector.clear();
    /// assert!(collector.events().is_empty());
    /// ```
    pub fn clear(&self) {
        let mut state = self.0.lock().unwrap();
        *state = State::default();
    }
}
