//! Manages interfaces inside a network namespace: pyroute2's
//! `NetNS('netns_name')`, which offers the whole IPRoute API inside the
//! namespace. Here the handle gives a real `rtnetlink::Handle` whose requests
//! run inside the namespace: create a bridge and a veth pair, enslave one end,
//! set the MTU, bring links up, add an address and a route, list everything,
//! then delete links and the namespace.
//!
//! Run with `cargo run --example manage_links` (as root).

use std::net::{IpAddr, Ipv4Addr};

use futures::TryStreamExt;
use netlink_packet_route::address::AddressAttribute;
use netlink_packet_route::link::LinkAttribute;
use netns::{Handle, NsName, OpenMode, RunDir};
use rtnetlink::{LinkBridge, LinkUnspec, LinkVeth, RouteMessageBuilder};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

#[tokio::main]
async fn main() -> Result<()> {
    let name = NsName::new(format!("manage-{}", std::process::id()))?;
    let result = run(&name).await;
    let dir = RunDir::default();
    if dir.open(&name).is_ok() {
        dir.remove(&name).await?;
        println!("removed namespace {name}");
    }
    result
}

async fn run(name: &NsName) -> Result<()> {
    // Like NetNS('name'): create the namespace if it does not exist.
    let ns = Handle::open(name, OpenMode::CreateOrOpen).await?;
    println!("opened namespace {name}");
    let rtnl = ns.rtnetlink();

    rtnl.link()
        .add(LinkBridge::new("br0").build())
        .execute()
        .await?;
    rtnl.link()
        .add(LinkVeth::new("veth0", "veth1").build())
        .execute()
        .await?;
    println!("created br0 and veth0/veth1");

    let br0 = ns.link_index("br0").await?;
    let veth0 = ns.link_index("veth0").await?;
    let veth1 = ns.link_index("veth1").await?;
    rtnl.link()
        .set(LinkUnspec::new_with_index(veth0).controller(br0).build())
        .execute()
        .await?;
    println!("enslaved veth0 to br0");
    rtnl.link()
        .set(LinkUnspec::new_with_index(veth1).mtu(1400).build())
        .execute()
        .await?;
    println!("set veth1 mtu 1400");
    for index in [1, br0, veth0, veth1] {
        rtnl.link()
            .set(LinkUnspec::new_with_index(index).up().build())
            .execute()
            .await?;
    }
    println!("brought lo, br0, veth0, veth1 up");

    rtnl.address()
        .add(br0, IpAddr::V4(Ipv4Addr::new(192, 168, 7, 1)), 24)
        .execute()
        .await?;
    println!("added 192.168.7.1/24 to br0");
    let route = RouteMessageBuilder::<Ipv4Addr>::new()
        .destination_prefix(Ipv4Addr::new(10, 20, 0, 0), 16)
        .gateway(Ipv4Addr::new(192, 168, 7, 254))
        .build();
    rtnl.route().add(route).execute().await?;
    println!("added route 10.20.0.0/16 via 192.168.7.254");

    let mut links = rtnl.link().get().execute();
    while let Some(link) = links.try_next().await? {
        let name = link.attributes.iter().find_map(|a| match a {
            LinkAttribute::IfName(n) => Some(n.clone()),
            _ => None,
        });
        let mtu = link.attributes.iter().find_map(|a| match a {
            LinkAttribute::Mtu(m) => Some(*m),
            _ => None,
        });
        println!(
            "  link {} {:?} mtu {:?}",
            link.header.index,
            name.unwrap_or_default(),
            mtu
        );
    }
    let mut addrs = rtnl.address().get().execute();
    while let Some(addr) = addrs.try_next().await? {
        for a in &addr.attributes {
            if let AddressAttribute::Address(ip) = a {
                println!(
                    "  address {ip}/{} on {}",
                    addr.header.prefix_len, addr.header.index
                );
            }
        }
    }

    // A rejected request carries the kernel's errno and explanation.
    if let Err(err) = rtnl
        .address()
        .add(br0, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 33)
        .execute()
        .await
    {
        println!(
            "the kernel refused /33: errno {:?}, {:?}",
            netns::error_code(&err),
            netns::error_message(&err)
        );
    }

    rtnl.link().del(veth0).execute().await?;
    rtnl.link().del(br0).execute().await?;
    println!("deleted veth0 (and its peer) and br0");
    ns.close().await;
    Ok(())
}
