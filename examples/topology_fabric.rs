//! A 3-tier datacenter fabric from YAML (`examples/topologies/fabric.yaml`:
//! 2 spines, 3 leaves with a bridge each, 6 hosts, static routes and
//! `ip_forward`), applied, checked with UDP between every pair of hosts in
//! different racks (sockets opened inside the namespaces), changed live (an
//! address added to one host and removed again: the apply touches only
//! that address), drawn, and destroyed.
//!
//! ```text
//!            spine1               spine2         every leaf: up1 to spine1,
//!                                                up2 to spine2
//!     leaf1       leaf2       leaf3              each with bridge br0
//!    /     \     /     \     /     \
//! host1  host2 host3  host4 host5  host6         default via br0
//! ```
//!
//! Run with `cargo run --example topology_fabric` (as root).

#[path = "topologies/common.rs"]
mod common;

use std::net::IpAddr;

use nstopo::{IfAddr, Options, Topology};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const FILE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/examples/topologies/fabric.yaml"
);

#[tokio::main]
async fn main() -> Result<()> {
    common::with_topology(FILE, run).await
}

/// The hosts and the first address of their `eth0`, in declaration order.
fn hosts(topo: &Topology) -> Vec<(String, IpAddr)> {
    topo.links
        .iter()
        .flat_map(|l| l.ends())
        .filter(|e| e.node.starts_with("host"))
        .map(|e| (e.node.clone(), e.addresses[0].addr))
        .collect()
}

/// The rack of a host: the third octet of its address.
fn rack(ip: &IpAddr) -> u8 {
    match ip {
        IpAddr::V4(v4) => v4.octets()[2],
        IpAddr::V6(_) => 0,
    }
}

async fn run(topo: &Topology) -> Result<()> {
    let report = nstopo::apply(topo, Options::default()).await?;
    common::summary("apply", &report);

    // Every host to every host in another rack: host -> leaf -> spine1 ->
    // leaf -> host, and back.
    let hosts = hosts(topo);
    let mut sockets = common::Sockets::default();
    let mut checked = 0;
    for (a, a_ip) in &hosts {
        for (b, b_ip) in &hosts {
            if rack(a_ip) != rack(b_ip) {
                sockets.round_trip((a, *a_ip), (b, *b_ip)).await?;
                checked += 1;
            }
        }
    }
    println!("UDP: {checked} round trips between racks, all answered");

    // A live change: one more address on host1's eth0. The second apply
    // creates that address and nothing else.
    let extra: IfAddr = "10.2.1.111/24".parse()?;
    let mut changed = topo.clone();
    for link in &mut changed.links {
        for end in [&mut link.a, &mut link.b] {
            if end.node == "host1" && end.name == "eth0" {
                end.addresses.push(extra);
            }
        }
    }
    let report = nstopo::apply(&changed, Options::default()).await?;
    common::summary(&format!("apply with {extra} on host1:eth0"), &report);
    let (h6, h6_ip) = &hosts[5];
    sockets
        .round_trip((h6, *h6_ip), ("host1", extra.addr))
        .await?;
    println!("UDP: {h6} reaches host1 at {} too", extra.addr);
    let report = nstopo::apply(topo, Options::default()).await?;
    common::summary("apply of the file again", &report);

    // The live picture.
    let drawing = common::live_drawing(topo).await?;
    println!(
        "drawing: {} namespaces, {} veth pairs; as Mermaid:\n{}",
        drawing.namespace_count(),
        drawing.veth_count(),
        drawing.mermaid()
    );
    sockets.close().await;
    Ok(())
}
