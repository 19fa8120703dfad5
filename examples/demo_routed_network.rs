//! The toolkit's main demonstration: a small routed network of three network
//! namespaces, built and exercised from one async program, then torn down.
//!
//! ```text
//!   demo-a                 demo-router                 demo-b
//!  ┌────────────┐        ┌──────────────────┐        ┌────────────┐
//!  │ a0         ├────────┤ r0          r1   ├────────┤ b0         │
//!  │ 10.10.1.1  │  veth  │ 10.10.1.254      │  veth  │ 10.10.2.1  │
//!  │ default via│        │      10.10.2.254 │        │ default via│
//!  │ .1.254     │        │  ip_forward = 1  │        │ .2.254     │
//!  └────────────┘        └──────────────────┘        └────────────┘
//! ```
//!
//! What it shows, step by step:
//! 1. three named namespaces made like `ip netns add` (visible to `ip netns`),
//! 2. rtnetlink event streams from all three, `select!`ed in one task,
//! 3. veth pairs created with the peer placed directly in another namespace,
//!    and a link moved into a namespace by name,
//! 4. addresses, links and routes set through each namespace's rtnetlink handle,
//! 5. a sysctl written from a closure run inside a namespace,
//! 6. UDP and TCP across the router, with sockets opened inside the namespaces,
//! 7. programs run inside the namespaces with their output read back,
//! 8. a live `nsdb` view of all three namespaces, veth peers resolved by name,
//! 9. everything removed again.
//!
//! Run with `cargo run --release --example demo_routed_network` (as root).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use futures::StreamExt;
use netns::MulticastGroup;
use netns::{Event, Handle, NsName, OpenMode, RunDir};
use rtnetlink::{LinkUnspec, RouteMessageBuilder};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const A: Ipv4Addr = Ipv4Addr::new(10, 10, 1, 1);
const R0: Ipv4Addr = Ipv4Addr::new(10, 10, 1, 254);
const R1: Ipv4Addr = Ipv4Addr::new(10, 10, 2, 254);
const B: Ipv4Addr = Ipv4Addr::new(10, 10, 2, 1);

#[tokio::main]
async fn main() -> Result<()> {
    let started = Instant::now();
    let names: Vec<NsName> = ["demo-a", "demo-router", "demo-b"]
        .iter()
        .map(|n| NsName::new(format!("{n}-{}", std::process::id())))
        .collect::<std::result::Result<_, _>>()?;
    let result = run(&names).await;
    // Tear down whatever was made, even after a failure.
    let dir = RunDir::default();
    for name in &names {
        if dir.open(name).is_ok() {
            dir.remove(name).await?;
            println!("removed namespace {name}");
        }
    }
    println!("done in {:.1?}", started.elapsed());
    result
}

async fn run(names: &[NsName]) -> Result<()> {
    let [a_name, r_name, b_name] = names else {
        unreachable!()
    };

    // 1. Namespaces, made the way `ip netns add` makes them.
    let t = Instant::now();
    let a = Handle::open(a_name, OpenMode::CreateExclusive).await?;
    let router = Handle::open(r_name, OpenMode::CreateExclusive).await?;
    let b = Handle::open(b_name, OpenMode::CreateExclusive).await?;
    println!(
        "1. created {a_name}, {r_name}, {b_name} in {:.1?}",
        t.elapsed()
    );
    let listed = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()?;
    println!("   `ip netns list` sees them:");
    for line in String::from_utf8_lossy(&listed.stdout).lines() {
        println!("     {line}");
    }

    // 2. Events from all three namespaces, counted by one task.
    let groups = [
        MulticastGroup::Link,
        MulticastGroup::Ipv4Ifaddr,
        MulticastGroup::Ipv4Route,
    ];
    let mut streams = Vec::new();
    for h in [&a, &router, &b] {
        let label = h.name().map(|n| n.to_string()).unwrap_or_default();
        let events = h.events(&groups).await?;
        streams.push(events.map(move |e| (label.clone(), e)).boxed());
    }
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    let counter = tokio::spawn(async move {
        let mut all = futures::stream::select_all(streams);
        let mut counts: BTreeMap<String, (usize, usize)> = BTreeMap::new();
        loop {
            tokio::select! {
                Some((ns, event)) = all.next() => {
                    let entry = counts.entry(ns).or_default();
                    match event {
                        Ok(Event::Message(_)) => entry.0 += 1,
                        Ok(Event::Overrun) => entry.1 += 1,
                        _ => {}
                    }
                }
                _ = &mut stop_rx => break,
            }
        }
        counts
    });
    println!("2. listening to link, address and route events in all three");

    // 3. Links: veth pairs with the peer placed directly in another
    //    namespace, and one end moved by namespace name.
    router
        .add_veth("r0", "a0")
        .peer_netns(a_name.as_str())
        .execute()
        .await?;
    b.add_veth("b0", "r1-tmp").execute().await?;
    b.move_link("r1-tmp", r_name.as_str())
        .rename("r1")
        .execute()
        .await?;
    println!(
        "3. veth r0<->a0 made with a0 placed in {a_name}; b0<->r1 made in {b_name}, r1 moved (and renamed) by name"
    );

    // 4. Addresses, links up and routes, each through its namespace's handle.
    configure(&a, "a0", A).await?;
    configure(&router, "r0", R0).await?;
    configure(&router, "r1", R1).await?;
    configure(&b, "b0", B).await?;
    default_route(&a, R0).await?;
    default_route(&b, R1).await?;
    println!("4. addresses set, links up, default routes via the router");

    // 5. A sysctl, from a closure run inside the router's namespace (no
    //    runtime thread ever switches namespace).
    router
        .netns()
        .run(|| std::fs::write("/proc/sys/net/ipv4/ip_forward", "1"))
        .await??;
    println!("5. ip_forward=1 written inside {r_name} by a closure on a namespace thread");

    // 6. Traffic across the router with sockets made inside a and b.
    let server = b.udp_bind(SocketAddr::new(B.into(), 5353)).await?;
    let client = a.udp_bind(SocketAddr::new(A.into(), 0)).await?;
    let t = Instant::now();
    for i in 0..3 {
        client
            .send_to(format!("ping {i}").as_bytes(), server.local_addr()?)
            .await?;
        let mut buf = [0u8; 64];
        let (n, from) =
            tokio::time::timeout(Duration::from_secs(5), server.recv_from(&mut buf)).await??;
        server.send_to(&buf[..n], from).await?;
        let (n, _) =
            tokio::time::timeout(Duration::from_secs(5), client.recv_from(&mut buf)).await??;
        println!(
            "6. udp {A} -> {B} -> back: {:?}",
            std::str::from_utf8(&buf[..n])?
        );
    }
    println!(
        "   3 UDP round trips through the router in {:.1?}",
        t.elapsed()
    );
    let listener = b.tcp_listener(SocketAddr::new(B.into(), 8080)).await?;
    let accept = tokio::spawn(async move {
        let (mut sock, peer) = listener.accept().await?;
        let mut line = String::new();
        sock.read_to_string(&mut line).await?;
        Ok::<_, std::io::Error>((peer, line))
    });
    let mut stream = a.tcp_connect(SocketAddr::new(B.into(), 8080)).await?;
    stream.write_all(b"hello over tcp").await?;
    stream.shutdown().await?;
    let (peer, line) = accept.await??;
    println!("   tcp: {B}:8080 in {b_name} accepted {peer} from {a_name} and read {line:?}");

    // 7. Programs run inside namespaces, output read back through real fds.
    let out = a.command("ip").args(["-4", "-br", "addr"]).output().await?;
    print_output(&format!("7. `ip -4 -br addr` in {a_name}"), &out.stdout);
    let out = router.command("ip").args(["route"]).output().await?;
    print_output(&format!("   `ip route` in {r_name}"), &out.stdout);
    let out = router
        .command("ls")
        .arg("/sys/class/net")
        .exec_mode(netns::nsproc::ExecMode::IpNetnsExec)
        .output()
        .await?;
    print_output(
        &format!("   `ls /sys/class/net` in {r_name}, run like `ip netns exec` (its own /sys)"),
        &out.stdout,
    );
    match router.command("/nonexistent/tool").status().await {
        Err(err) => println!("   a missing program fails at once: {err}"),
        Ok(status) => println!("   unexpected: {status}"),
    }

    // 8. A live view of all three namespaces.
    let mut builder = nsdb::View::builder();
    for name in [a_name, r_name, b_name] {
        builder = builder.namespace(nsdb::Namespace::Named(name.clone()));
    }
    let view = builder.build().await?;
    let snapshot = view.snapshot();
    println!("8. nsdb view:");
    for ns in snapshot.namespaces() {
        for link in ns.links() {
            let addrs: Vec<String> = ns
                .addresses_of(link.index)
                .map(|addr| format!("{}/{}", addr.local, addr.prefix_len))
                .collect();
            let peer = match ns.peer(link) {
                Some(nsdb::Peer {
                    index,
                    namespace: Some(peer_ns),
                    ..
                }) => {
                    format!(" peer {peer_ns}#{index}")
                }
                _ => String::new(),
            };
            println!(
                "   {:<24} {:<4} {:<5} {}{}",
                ns.namespace().to_string(),
                link.name,
                if link.is_up() { "UP" } else { "DOWN" },
                addrs.join(" "),
                peer
            );
        }
    }
    // The view follows changes: take r0 down and wait for the view to see it.
    let r0 = router.link_index("r0").await?;
    router
        .rtnetlink()
        .link()
        .set(LinkUnspec::new_with_index(r0).down().build())
        .execute()
        .await?;
    let r_ns = nsdb::Namespace::Named(r_name.clone());
    view.wait_for("r0 down", Duration::from_secs(5), |s| {
        s.link(&r_ns, "r0").is_some_and(|l| !l.is_up())
    })
    .await?;
    println!("   took r0 down with rtnetlink; the view saw it");
    drop(view);

    let _ = stop_tx.send(());
    let counts = counter.await?;
    println!("2. (result) events seen while building:");
    for (ns, (messages, overruns)) in counts {
        println!("   {ns}: {messages} messages, {overruns} overruns");
    }
    for h in [a, router, b] {
        h.close().await;
    }
    Ok(())
}

async fn configure(h: &Handle, link: &str, addr: Ipv4Addr) -> Result<()> {
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
    Ok(())
}

async fn default_route(h: &Handle, via: Ipv4Addr) -> Result<()> {
    let route = RouteMessageBuilder::<Ipv4Addr>::new().gateway(via).build();
    h.rtnetlink().route().add(route).execute().await?;
    Ok(())
}

fn print_output(title: &str, stdout: &[u8]) {
    println!("{title}:");
    for line in String::from_utf8_lossy(stdout).lines() {
        println!("     {line}");
    }
}
