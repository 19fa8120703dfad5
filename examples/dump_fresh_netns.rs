//! Creates a network namespace and dumps its links: a fresh namespace has
//! exactly one, `lo` (down). Then removes it.
//!
//! Run with `cargo run --example dump_fresh_netns` (as root).

use futures::TryStreamExt;
use netlink_packet_route::link::{LinkAttribute, LinkFlags};
use netns::{Handle, NsName, OpenMode, RunDir};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

#[tokio::main]
async fn main() -> Result<()> {
    let name = NsName::new(format!("fresh-{}", std::process::id()))?;
    let result = run(&name).await;
    let dir = RunDir::default();
    if dir.open(&name).is_ok() {
        dir.remove(&name).await?;
        println!("removed namespace {name}");
    }
    result
}

async fn run(name: &NsName) -> Result<()> {
    let h = Handle::open(name, OpenMode::CreateExclusive).await?;
    println!("created namespace {name} ({})", h.netns().id());
    let links: Vec<_> = h.rtnetlink().link().get().execute().try_collect().await?;
    let mut names = Vec::new();
    for link in &links {
        let ifname = link
            .attributes
            .iter()
            .find_map(|a| match a {
                LinkAttribute::IfName(n) => Some(n.clone()),
                _ => None,
            })
            .unwrap_or_default();
        let up = link.header.flags.contains(LinkFlags::Up);
        println!(
            "  {}: {ifname} {}",
            link.header.index,
            if up { "UP" } else { "DOWN" }
        );
        names.push(ifname);
    }
    assert_eq!(names, ["lo"], "a fresh namespace has exactly lo");
    println!("the dump is exactly [\"lo\"]");
    h.close().await;
    Ok(())
}
