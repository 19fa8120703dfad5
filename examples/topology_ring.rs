//! A ring of six routers from YAML (`examples/topologies/ring.yaml`),
//! applied, checked with UDP from every router's loopback address to every
//! other's (traffic goes clockwise round the ring, sockets opened inside the
//! namespaces), changed live (a loopback address added to one router: the
//! apply touches only that address, and the ring routes to it), drawn as
//! DOT, and destroyed.
//!
//! ```text
//!    r1 --e1--e2-- r2 --e1--e2-- r3
//!    |e2                          |e1
//!    |e1                          |e2
//!    r6 --e2--e1-- r5 --e2--e1-- r4
//! ```
//!
//! Run with `cargo run --example topology_ring` (as root).

#[path = "topologies/common.rs"]
mod common;

use nstopo::{IfAddr, Options, Topology};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/topologies/ring.yaml");

#[tokio::main]
async fn main() -> Result<()> {
    common::with_topology(FILE, run).await
}

async fn run(topo: &Topology) -> Result<()> {
    let report = nstopo::apply(topo, Options::default()).await?;
    common::summary("apply", &report);

    // Every router's loopback to every other's: up to five hops clockwise.
    let loopbacks: Vec<(String, IfAddr)> = topo
        .nodes
        .iter()
        .map(|n| (n.name.clone(), n.loopback[0]))
        .collect();
    let mut sockets = common::Sockets::default();
    let mut checked = 0;
    for (a, a_ip) in &loopbacks {
        for (b, b_ip) in &loopbacks {
            if a != b {
                sockets.round_trip((a, a_ip.addr), (b, b_ip.addr)).await?;
                checked += 1;
            }
        }
    }
    println!("UDP: {checked} round trips round the ring, all answered");

    // A live change: one more loopback address on r4, inside the ring's
    // /24. Only that address is created; r1 reaches it round the ring.
    let extra: IfAddr = "10.255.3.44/32".parse()?;
    let mut changed = topo.clone();
    if let Some(r4) = changed.nodes.iter_mut().find(|n| n.name == "r4") {
        r4.loopback.push(extra);
    }
    let report = nstopo::apply(&changed, Options::default()).await?;
    common::summary(&format!("apply with {extra} on r4"), &report);
    sockets
        .round_trip(("r1", loopbacks[0].1.addr), ("r4", extra.addr))
        .await?;
    println!("UDP: r1 reaches r4 at {}", extra.addr);

    // The live picture, as Graphviz DOT.
    let drawing = common::live_drawing(topo).await?;
    println!("drawing:\n{}", drawing.dot());
    sockets.close().await;
    Ok(())
}
