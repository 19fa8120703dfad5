//! Opening and closing handles returns fd and thread counts to where they
//! started. One test in this binary, so no other test moves the counts.

mod common;

use common::{Ns, fds_and_threads};
use netns::{Handle, MulticastGroup, OpenMode};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_open_close_cycles_leak_nothing() {
    let ns = Ns::new("leaks").await;
    let cycle = || async {
        let h = Handle::open(ns.name(), OpenMode::OpenOnly).await.unwrap();
        assert_eq!(h.link_index("lo").await.unwrap(), 1);
        h.close().await;
    };
    // Warm up: the namespace threads start on first use, several at once.
    futures::future::join_all((0..16).map(|_| cycle())).await;
    let events = {
        let h = Handle::open(ns.name(), OpenMode::OpenOnly).await.unwrap();
        h.events(&[MulticastGroup::Link]).await.unwrap()
    };
    drop(events);
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let before = fds_and_threads();

    for _ in 0..1_000 {
        cycle().await;
    }
    // Dropped (not closed) handles and event streams release everything too,
    // once their tasks have been aborted.
    for _ in 0..100 {
        let h = Handle::open(ns.name(), OpenMode::OpenOnly).await.unwrap();
        let ev = h.events(&[MulticastGroup::Link]).await.unwrap();
        let udp = h.udp_bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        drop((h, ev, udp));
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let after = fds_and_threads();
    assert_eq!(before, after, "(fds, threads) before and after");
}
