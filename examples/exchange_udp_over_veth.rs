//! Assigns addresses on both sides of a veth pair after moving the peer into
//! another namespace, and exchanges UDP packets across the pair with sockets
//! opened inside each namespace (pyroute2's IPDB veth scenario, plus traffic).
//!
//! Two scratch namespaces ("left" standing in for the main namespace,
//! "right" for the target) keep the machine untouched; both are removed at
//! the end.
//!
//! Run with `cargo run --example exchange_udp_over_veth` (as root).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use netns::{Handle, NsName, OpenMode, RunDir};
use rtnetlink::LinkUnspec;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

#[tokio::main]
async fn main() -> Result<()> {
    let pid = std::process::id();
    let left = NsName::new(format!("udp-left-{pid}"))?;
    let right = NsName::new(format!("udp-right-{pid}"))?;
    let result = run(&left, &right).await;
    let dir = RunDir::default();
    for name in [&left, &right] {
        if dir.open(name).is_ok() {
            dir.remove(name).await?;
            println!("removed namespace {name}");
        }
    }
    result
}

async fn up(h: &Handle, link: &str, addr: Ipv4Addr) -> Result<()> {
    let index = h.link_index(link).await?;
    h.rtnetlink()
        .address()
        .add(index, IpAddr::V4(addr), 24)
        .execute()
        .await?;
    h.rtnetlink()
        .link()
        .set(LinkUnspec::new_with_index(index).up().build())
        .execute()
        .await?;
    println!(
        "{}: {link} is {addr}/24 and up",
        h.name().map(|n| n.as_str()).unwrap_or("?")
    );
    Ok(())
}

async fn run(left: &NsName, right: &NsName) -> Result<()> {
    let l = Handle::open(left, OpenMode::CreateExclusive).await?;
    let r = Handle::open(right, OpenMode::CreateExclusive).await?;
    println!("created namespaces {left} and {right}");

    l.add_veth("v0p0", "v0p1").execute().await?;
    l.move_link("v0p1", right.as_str()).execute().await?;
    println!("{left}: created v0p0/v0p1, moved v0p1 into {right}");

    // A move clears the link's settings: configure each side after it.
    let (a, b) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
    up(&l, "v0p0", a).await?;
    up(&r, "v0p1", b).await?;

    // Sockets opened inside each namespace, used from this runtime.
    let ls = l.udp_bind(SocketAddr::new(a.into(), 4000)).await?;
    let rs = r.udp_bind(SocketAddr::new(b.into(), 4000)).await?;
    for i in 0..3 {
        let msg = format!("ping {i}");
        ls.send_to(msg.as_bytes(), rs.local_addr()?).await?;
        let mut buf = [0; 64];
        let (n, from) = rs.recv_from(&mut buf).await?;
        println!(
            "{right} got {:?} from {from}",
            std::str::from_utf8(&buf[..n])?
        );
        rs.send_to(format!("pong {i}").as_bytes(), from).await?;
        let (n, from) = ls.recv_from(&mut buf).await?;
        println!(
            "{left} got {:?} from {from}",
            std::str::from_utf8(&buf[..n])?
        );
    }
    l.close().await;
    r.close().await;
    Ok(())
}
