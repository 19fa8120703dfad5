//! Large dumps through a handle: read ahead on another thread (the default
//! on the direct transport) or inline, they bring the same links as `ip`,
//! and requests sent while a dump streams are answered.

mod common;

use common::{Ns, add_ifbs};
use futures::TryStreamExt;
use futures::stream::{FuturesUnordered, StreamExt};
use netlink_packet_route::link::LinkAttribute;
use netns::Handle;

/// (index, name) of every link, in the order of the dump.
async fn dump(h: &Handle) -> Vec<(u32, String)> {
    try_dump(h).await.unwrap()
}

async fn try_dump(h: &Handle) -> Result<Vec<(u32, String)>, rtnetlink::Error> {
    let links: Vec<_> = h.rtnetlink().link().get().execute().try_collect().await?;
    Ok(links
        .iter()
        .map(|l| {
            let name = l.attributes.iter().find_map(|a| match a {
                LinkAttribute::IfName(n) => Some(n.clone()),
                _ => None,
            });
            (l.header.index, name.unwrap())
        })
        .collect())
}

/// (index, name) of every link as `ip -o link` prints them.
async fn ip_links(ns: &Ns) -> Vec<(u32, String)> {
    let out = tokio::process::Command::new("ip")
        .args(["-n", ns.name(), "-o", "link"])
        .output()
        .await
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let mut f = l.split(": ");
            let index = f.next().unwrap().parse().unwrap();
            let name = f.next().unwrap().split('@').next().unwrap().to_string();
            (index, name)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_dump_is_the_same_read_ahead_inline_relayed_and_by_ip() {
    let ns = Ns::new("bigdump").await;
    add_ifbs(&ns, 1200).await;
    let expected = ip_links(&ns).await;
    assert_eq!(expected.len(), 1201);
    let ahead = Handle::builder(ns.name()).open().await.unwrap();
    let inline = Handle::builder(ns.name())
        .read_ahead(false)
        .open()
        .await
        .unwrap();
    let relay = Handle::builder(ns.name())
        .transport(netns::Transport::Relay)
        .open()
        .await
        .unwrap();
    for _ in 0..3 {
        assert_eq!(dump(&ahead).await, expected);
        assert_eq!(dump(&inline).await, expected);
        assert_eq!(dump(&relay).await, expected);
    }
    // Two dumps at once on one handle: the kernel runs one dump per socket
    // at a time; the transport holds the second until the first has ended,
    // so both are whole and never mix.
    for _ in 0..5 {
        let (a, b) = tokio::join!(try_dump(&ahead), try_dump(&ahead));
        assert_eq!(a.unwrap(), expected);
        assert_eq!(b.unwrap(), expected);
    }
    for h in [ahead, inline, relay] {
        h.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_sent_while_a_dump_streams_are_answered() {
    let ns = Ns::new("dumpget").await;
    add_ifbs(&ns, 1500).await;
    let h = Handle::builder(ns.name()).open().await.unwrap();
    let expected = ip_links(&ns).await;
    let rtnl = h.rtnetlink().clone();
    let mut gets: FuturesUnordered<_> = expected
        .iter()
        .step_by(7)
        .map(|(index, name)| {
            let rtnl = rtnl.clone();
            let (index, name) = (*index, name.clone());
            async move {
                let link = common::get_link(&rtnl, index).await;
                assert_eq!(link.header.index, index);
                assert!(link.attributes.contains(&LinkAttribute::IfName(name)));
            }
        })
        .collect();
    let dumping = dump(&h);
    let answered = async {
        let mut n = 0;
        while gets.next().await.is_some() {
            n += 1;
        }
        n
    };
    let (links, n) = tokio::join!(dumping, answered);
    assert_eq!(links, expected);
    assert_eq!(n, expected.len().div_ceil(7));
    h.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handle_closed_mid_dump_ends_the_dump_and_keeps_no_fd() {
    let ns = Ns::new("dumpclose").await;
    add_ifbs(&ns, 1500).await;
    let (fds, _) = common::fds_and_threads();
    for _ in 0..5 {
        let h = Handle::builder(ns.name()).open().await.unwrap();
        let mut links = h.rtnetlink().link().get().execute();
        // Part of the dump, then the handle closes under it.
        for _ in 0..100 {
            links.try_next().await.unwrap().unwrap();
        }
        h.close().await;
        // The stream ends (with the rest, an error, or nothing), it never hangs.
        tokio::time::timeout(std::time::Duration::from_secs(10), async {
            while let Ok(Some(_)) = links.try_next().await {}
        })
        .await
        .expect("the dump hung after close");
    }
    // The read-ahead thread's duplicate of each socket is closed when it
    // stops (at the latest at the end of the dump).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while common::fds_and_threads().0 > fds {
        assert!(
            std::time::Instant::now() < deadline,
            "fds left: {} > {fds}",
            common::fds_and_threads().0
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_read_ahead_unless_told_not_to_or_relayed() {
    let ns = Ns::new("raopt").await;
    let reads_ahead = |b: netns::Builder| async move {
        let h = b.open().await.unwrap();
        let (mut connection, _, _) = h.connection().await.unwrap();
        let on = connection.socket_mut().reads_ahead();
        h.close().await;
        on
    };
    assert!(reads_ahead(Handle::builder(ns.name())).await);
    assert!(!reads_ahead(Handle::builder(ns.name()).read_ahead(false)).await);
    // The agent already receives on its own core.
    assert!(!reads_ahead(Handle::builder(ns.name()).transport(netns::Transport::Relay)).await);
    // A socket for one's own reading reads only when polled.
    let socket = netns::NetlinkSocket::open(&ns.netns, 0).await.unwrap();
    assert!(!socket.reads_ahead());
    let (mut connection, _, _) = netns::connection(&ns.netns).await.unwrap();
    assert!(connection.socket_mut().reads_ahead());
}
