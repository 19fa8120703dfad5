//! The reference doc's IPDB scenario, on nsdb's live view:
//!
//! ```python
//! ipdb_main = IPDB()
//! ipdb_test = IPDB(nl=NetNS('test'))
//! ipdb_main.create(ifname='v0p0', kind='veth', peer='v0p1').commit()
//! with ipdb_main.interfaces.v0p1 as veth:
//!     veth.net_ns_fd = 'test'
//! with ipdb_main.interfaces.v0p0 as veth:
//!     veth.add_ip('172.16.200.1/24'); veth.up()
//! with ipdb_test.interfaces.v0p1 as veth:
//!     veth.add_ip('172.16.200.2/24'); veth.up()
//! ```
//!
//! One view covers both namespaces. So that it leaves the machine untouched,
//! a scratch namespace plays the root namespace's part (`View::builder()
//! .namespace(Namespace::Host)` is the real thing). Everything it makes is
//! removed at the end: the links die with their namespaces.
//!
//! Run with `cargo run --example ipdb_scenario` (as root).

use std::time::Duration;

use nsdb::{Namespace, View};
use nsfs::{NsName, OpenMode, RunDir};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

#[tokio::main]
async fn main() -> Result<()> {
    let pid = std::process::id();
    let main_name = NsName::new(format!("ipdb-main-{pid}"))?;
    let test_name = NsName::new(format!("test-{pid}"))?;
    let dir = RunDir::default();
    dir.create(&main_name, OpenMode::CreateExclusive).await?;
    let result = match dir.create(&test_name, OpenMode::CreateExclusive).await {
        Ok(_) => run(&main_name, &test_name).await,
        Err(e) => Err(e.into()),
    };
    // Remove what was made, whatever happened (the view is gone by now, so
    // nothing holds the namespaces any more).
    for name in [&main_name, &test_name] {
        if dir.open(name).is_ok() {
            dir.remove(name).await?;
            println!("removed namespace {name}");
        }
    }
    result
}

async fn run(main_name: &NsName, test_name: &NsName) -> Result<()> {
    let main = Namespace::Named(main_name.clone());
    let test = Namespace::Named(test_name.clone());
    let view = View::builder()
        .namespace(main.clone())
        .namespace(test.clone())
        .build()
        .await?;

    // ipdb_main.create(ifname='v0p0', kind='veth', peer='v0p1').commit()
    let mut tx = view.transaction();
    tx.create_veth(&main, "v0p0", "v0p1")?;
    tx.commit().await?;
    println!("created veth v0p0/v0p1 in {main}");

    // with ipdb_main.interfaces.v0p1 as veth: veth.net_ns_fd = 'test'
    // (a move is its own step: the kernel clears the link's settings).
    let mut tx = view.transaction();
    tx.link(&main, "v0p1")?.move_to(&test);
    tx.commit().await?;
    println!("moved v0p1 to {test}");

    // Addresses on each side, each through the view of its namespace.
    let mut tx = view.transaction();
    tx.link(&main, "v0p0")?
        .add_address("172.16.200.1".parse()?, 24)
        .up();
    tx.link(&test, "v0p1")?
        .add_address("172.16.200.2".parse()?, 24)
        .up();
    println!("plan:");
    for step in tx.plan()? {
        println!("  {step}");
    }
    tx.commit().await?;

    let snap = view
        .wait_for("both ends up", Duration::from_secs(5), |s| {
            s.link(&main, "v0p0").is_some_and(|l| l.is_up())
                && s.link(&test, "v0p1").is_some_and(|l| l.is_up())
        })
        .await?;
    for ns in [&main, &test] {
        let v = snap.namespace(ns).expect("in the view");
        for link in v.links().filter(|l| l.kind.as_deref() == Some("veth")) {
            let addrs: Vec<String> = v
                .addresses_of(link.index)
                .map(|a| format!("{}/{}", a.local, a.prefix_len))
                .collect();
            let peer = v.peer(link).map(|p| {
                let where_ = p.namespace.map_or("?".to_owned(), |n| n.to_string());
                format!("peer index {} in {where_}", p.index)
            });
            println!(
                "{ns}: {} index {} up {} mtu {:?} {addrs:?} {}",
                link.name,
                link.index,
                link.is_up(),
                link.mtu,
                peer.unwrap_or_default()
            );
        }
    }
    Ok(())
}
