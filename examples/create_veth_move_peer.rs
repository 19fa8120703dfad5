//! Creates a veth pair and moves the peer into a network namespace given by
//! name: pyroute2's
//!
//! ```python
//! ipr.link('add', ifname='v0p0', kind='veth', peer='v0p1')
//! idx = ipr.link_lookup(ifname='v0p1')[0]
//! ipr.link('set', index=idx, net_ns_fd='netns_name')
//! ```
//!
//! So that it leaves the machine untouched, the example plays the root
//! namespace's part with a scratch namespace ("host"); with
//! `Handle::open(Target::Pid(std::process::id() as i32), OpenMode::OpenOnly)`
//! the same code works from the root namespace. Everything it makes is
//! removed at the end (the links die with their namespaces).
//!
//! Run with `cargo run --example create_veth_move_peer` (as root).

use futures::TryStreamExt;
use netlink_packet_route::link::LinkAttribute;
use netns::{Handle, NsName, OpenMode, RunDir};
use rtnetlink::LinkVeth;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

#[tokio::main]
async fn main() -> Result<()> {
    let pid = std::process::id();
    let host = NsName::new(format!("veth-host-{pid}"))?;
    let target = NsName::new(format!("netns_name-{pid}"))?;
    let result = run(&host, &target).await;
    // Remove what was made, whatever happened.
    let dir = RunDir::default();
    for name in [&host, &target] {
        if dir.open(name).is_ok() {
            dir.remove(name).await?;
            println!("removed namespace {name}");
        }
    }
    result
}

async fn run(host: &NsName, target: &NsName) -> Result<()> {
    let h = Handle::open(host, OpenMode::CreateExclusive).await?;
    println!("created namespace {host} (standing in for the root namespace)");
    let t = Handle::open(target, OpenMode::CreateExclusive).await?;
    println!("created namespace {target}");

    h.rtnetlink()
        .link()
        .add(LinkVeth::new("v0p0", "v0p1").build())
        .execute()
        .await?;
    println!("{host}: created veth pair v0p0 / v0p1");

    let idx = h.link_index("v0p1").await?;
    h.move_link(idx, target.as_str()).execute().await?;
    println!("{host}: moved v0p1 (index {idx}) into {target} by name");

    println!("{host} links: {:?}", names(&h).await?);
    println!("{target} links: {:?}", names(&t).await?);
    h.close().await;
    t.close().await;
    Ok(())
}

async fn names(h: &Handle) -> Result<Vec<String>> {
    let links: Vec<_> = h.rtnetlink().link().get().execute().try_collect().await?;
    Ok(links
        .iter()
        .filter_map(|l| {
            l.attributes.iter().find_map(|a| match a {
                LinkAttribute::IfName(n) => Some(n.clone()),
                _ => None,
            })
        })
        .collect())
}
