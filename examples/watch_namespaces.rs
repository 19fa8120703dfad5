//! A watcher printing the changes of links, addresses and routes across every
//! namespace of the run directory, as they happen (namespaces that appear or
//! go away included).
//!
//! It runs for N seconds (the first argument, default 3) or until Ctrl-C.
//! So that it prints something, it makes a few changes itself meanwhile: a
//! namespace, a veth pair in it, an address, an MTU, then removes the
//! namespace again.
//!
//! Run with `cargo run --example watch_namespaces -- 3` (as root).

use std::time::Duration;

use futures::StreamExt;
use nsdb::{Change, Namespace, Object, View};
use nsfs::{NsName, OpenMode, RunDir};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

#[tokio::main]
async fn main() -> Result<()> {
    let seconds: u64 = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(3);
    let view = View::builder().all_namespaces().build().await?;
    let mut changes = view.changes();
    let printer = tokio::spawn(async move {
        while let Some(change) = changes.next().await {
            println!("{}", describe(&change));
        }
    });

    let name = NsName::new(format!("watched-{}", std::process::id()))?;
    let made = make_changes(&view, &name).await;
    let dir = RunDir::default();
    if dir.open(&name).is_ok() {
        dir.remove(&name).await?;
    }
    made?;

    tokio::select! {
        _ = tokio::time::sleep(Duration::from_secs(seconds)) => {}
        _ = tokio::signal::ctrl_c() => println!("interrupted"),
    }
    printer.abort();
    Ok(())
}

async fn make_changes(view: &View, name: &NsName) -> Result<()> {
    let ns = Namespace::Named(name.clone());
    RunDir::default()
        .create(name, OpenMode::CreateExclusive)
        .await?;
    view.wait_for(
        "the new namespace in the view",
        Duration::from_secs(5),
        |s| s.namespace(&ns).is_some(),
    )
    .await?;
    let mut tx = view.transaction();
    tx.create_veth(&ns, "w0", "w1")?;
    tx.commit().await?;
    let mut tx = view.transaction();
    tx.link(&ns, "w0")?
        .set_mtu(1400)
        .add_address("10.99.0.1".parse()?, 24)
        .up();
    tx.commit().await?;
    Ok(())
}

fn describe(change: &Change) -> String {
    fn object(o: &Object) -> String {
        match o {
            Object::Link(l) => {
                format!(
                    "link {} (index {}, mtu {:?}, up {})",
                    l.name,
                    l.index,
                    l.mtu,
                    l.is_up()
                )
            }
            Object::Address(a) => format!("address {}/{} on {}", a.local, a.prefix_len, a.index),
            Object::Route(r) => format!("route {}", r.key()),
            other => format!("{other:?}"),
        }
    }
    match change {
        Change::Added { ns, object: o } => format!("[{ns}] + {}", object(o)),
        Change::Removed { ns, object: o } => format!("[{ns}] - {}", object(o)),
        Change::Changed { ns, old, new } => format!("[{ns}] ~ {} -> {}", object(old), object(new)),
        Change::NamespaceAdded { ns } => format!("namespace {ns} added"),
        Change::NamespaceRemoved { ns } => format!("namespace {ns} removed"),
        Change::Resynced { ns, reason } => format!("[{ns}] resynced ({reason:?})"),
        Change::Stale { ns, reason } => format!("[{ns}] stale: {reason}"),
        Change::Lagged { missed } => format!("missed {missed} changes"),
        other => format!("{other:?}"),
    }
}
