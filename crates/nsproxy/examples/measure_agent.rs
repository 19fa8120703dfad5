//! A throwaway measurement of the agent (run in release, on an idle machine):
//! agent ready time for a small application and for one holding 2 GiB of
//! touched memory, the relay's get-link round trip against the direct socket,
//! and the agent's private memory.
//!
//! `cargo run --release -p nsproxy --example measure_agent [big_mib]`
#![allow(unsafe_code)]

use std::os::fd::{FromRawFd, IntoRawFd};
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use netlink_sys::{TokioSocket, protocols::NETLINK_ROUTE};
use nsproxy::{Agent, AgentOptions};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

async fn ready_times(ns: &nsfs::NetNs, n: usize) -> Duration {
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let agent = Agent::start(ns, AgentOptions::new()).await.unwrap();
        times.push(t.elapsed());
        agent.close().await.unwrap();
    }
    median(times)
}

async fn rtt(handle: &rtnetlink::Handle, n: usize) -> Duration {
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        handle
            .link()
            .get()
            .match_index(1)
            .execute()
            .try_next()
            .await
            .unwrap()
            .unwrap();
        times.push(t.elapsed());
    }
    median(times)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let big_mib: usize = std::env::args().nth(1).map_or(2048, |s| s.parse().unwrap());
    let ns = nsfs::Executor::global()
        .unwrap()
        .run_in_new(|| ())
        .await
        .unwrap()
        .0;
    ready_times(&ns, 20).await;
    let small = ready_times(&ns, 300).await;
    println!("agent ready, small app: median {small:?}");

    // Private memory of an idle agent.
    let agent = Agent::start(&ns, AgentOptions::new()).await.unwrap();
    let rollup = std::fs::read_to_string(format!("/proc/{}/smaps_rollup", agent.pid())).unwrap();
    for line in rollup
        .lines()
        .filter(|l| l.starts_with("Private_Dirty") || l.starts_with("Rss"))
    {
        println!("agent {line}");
    }

    // Relay RTT against the direct socket made in the same namespace.
    let sock = ns
        .run(|| netlink_sys::Socket::new(NETLINK_ROUTE))
        .await
        .unwrap()
        .unwrap();
    // SAFETY: ownership of an open netlink socket fd moves into the TokioSocket.
    let sock = unsafe { TokioSocket::from_raw_fd(sock.into_raw_fd()) };
    let (conn, direct, _) = rtnetlink::from_socket(sock);
    tokio::spawn(conn);
    let (conn, relay, _) = rtnetlink::from_socket(agent.netlink(NETLINK_ROUTE).await.unwrap());
    tokio::spawn(conn);
    rtt(&direct, 200).await;
    rtt(&relay, 200).await;
    let mut d = Vec::new();
    let mut r = Vec::new();
    for _ in 0..5 {
        d.push(rtt(&direct, 1000).await);
        r.push(rtt(&relay, 1000).await);
    }
    let (d, r) = (median(d), median(r));
    println!(
        "get-link RTT: direct {d:?}, relay {r:?}, ratio {:.2}",
        r.as_secs_f64() / d.as_secs_f64()
    );
    drop((direct, relay));
    agent.close().await.unwrap();

    // The same application holding `big_mib` of touched memory.
    let mut big = vec![0u8; big_mib << 20];
    for page in big.chunks_mut(4096) {
        page[0] = 1;
    }
    let large = ready_times(&ns, 300).await;
    println!("agent ready, app with {big_mib} MiB touched: median {large:?}");
    println!(
        "ratio large/small {:.2}",
        large.as_secs_f64() / small.as_secs_f64()
    );
    std::hint::black_box(&big);
}
