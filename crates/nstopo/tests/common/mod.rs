//! What several nstopo test files share.
#![allow(dead_code, unreachable_pub)]

use std::net::{IpAddr, Ipv4Addr};

use nstopo::{Endpoint, IfAddr, Link, Node, Route, Topology};

/// A ring of `n` nodes named `{prefix}{i}`: link i joins node i (end `e1`,
/// the even /31 address of 10.64.0.0/16) and node i+1 (end `e0`, the odd
/// one); each node's default route goes out `e1` to its neighbour.
pub fn ring(prefix: &str, n: usize) -> Topology {
    let addr = |k: usize| IfAddr {
        addr: IpAddr::V4(Ipv4Addr::from(
            u32::from(Ipv4Addr::new(10, 64, 0, 0)) + k as u32,
        )),
        prefix_len: 31,
    };
    let mut b = Topology::builder(prefix);
    for i in 0..n {
        b = b.node(
            Node::new(format!("{prefix}{i}"))
                .route(Route::default_via(addr(2 * i + 1).addr).device("e1")),
        );
        b = b.link(Link::new(
            Endpoint::new(format!("{prefix}{i}"), "e1").address(addr(2 * i)),
            Endpoint::new(format!("{prefix}{}", (i + 1) % n), "e0").address(addr(2 * i + 1)),
        ));
    }
    b.build().unwrap()
}

/// How many threads this process has.
pub fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}
