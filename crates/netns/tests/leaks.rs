//! Opening and closing handles returns fd and thread counts to where they
//! started. One test in this binary (both transports, one after the other), so
//! no other test moves the counts.

mod common;

use std::time::Duration;

use common::{Ns, fds_and_threads};
use netns::{MulticastGroup, Transport};

async fn cycles(ns: &Ns, transport: Transport, n: usize) {
    let cycle = || async {
        let h = common::open(ns.name(), transport).await;
        assert_eq!(h.link_index("lo").await.unwrap(), 1);
        h.close().await;
    };
    // Warm up: namespace threads start on first use, several at once.
    start_every_namespace_thread(ns).await;
    futures::future::join_all((0..16).map(|_| cycle())).await;
    {
        let h = common::open(ns.name(), transport).await;
        let ev = h.events(&[MulticastGroup::Link]).await.unwrap();
        drop((ev, h));
    }
    settle().await;
    let before = fds_and_threads();

    for _ in 0..n {
        cycle().await;
    }
    // Dropped (not closed) handles and event streams release everything
    // too, once their tasks have ended.
    for _ in 0..100 {
        let h = common::open(ns.name(), transport).await;
        let ev = h.events(&[MulticastGroup::Link]).await.unwrap();
        let udp = h.udp_bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        drop((h, ev, udp));
    }
    settle().await;
    let after = fds_and_threads();
    assert_eq!(
        before, after,
        "{transport:?}: (fds, threads) before and after"
    );
}

/// Starts every thread of the global executor, which start on demand and
/// then live as long as the process: with every closure thread held, a
/// toolkit job starts the thread kept for toolkit jobs. Without this, the
/// first burst that needs that thread would start it in the middle of the
/// count.
async fn start_every_namespace_thread(ns: &Ns) {
    let h = common::open(ns.name(), Transport::Direct).await;
    let held = common::HeldClosures::hold(h.netns()).await;
    h.netns().run_short(|| ()).await.unwrap();
    held.release().await;
    h.close().await;
}

/// Lets background tasks (connection ends, agent reaping) finish.
async fn settle() {
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_open_close_cycles_leak_nothing() {
    let ns = Ns::new("leaks").await;
    cycles(&ns, Transport::Direct, 1_000).await;
    cycles(&ns, Transport::Relay, 1_000).await;
}
