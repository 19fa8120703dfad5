//! Many requests over one handle, cancelled requests, handles dropped with
//! requests in flight, and handles in many namespaces at once.

mod common;

use std::time::Duration;

use common::{Ns, link_names};
use futures::stream::{FuturesUnordered, StreamExt};
use futures::{FutureExt, TryStreamExt};
use netns::{Handle, OpenMode};

/// A handle on a fresh namespace with `pairs` veth pairs, and its link indexes.
async fn with_links(
    tag: &str,
    pairs: usize,
    transport: netns::Transport,
) -> (Ns, Handle, Vec<u32>) {
    let ns = Ns::new(tag).await;
    let h = common::open(ns.name(), transport).await;
    for i in 0..pairs {
        h.add_veth(format!("s{i}a"), format!("s{i}b"))
            .execute()
            .await
            .unwrap();
    }
    let links = common::links(&h).await;
    let indexes = links.iter().map(|l| l.header.index).collect::<Vec<_>>();
    assert_eq!(indexes.len(), 2 * pairs + 1);
    (ns, h, indexes)
}

async fn get_index(rtnl: &rtnetlink::Handle, index: u32) -> u32 {
    common::get_link(rtnl, index).await.header.index
}

/// A request cut short by the handle's end is answered with ECANCELED.
fn cancelled(err: &rtnetlink::Error) -> bool {
    netns::error_code(err) == Some(libc::ECANCELED)
}

both_transports! {
async fn ten_thousand_concurrent_requests_each_get_their_own_reply(transport) {
    let (_ns, h, indexes) = with_links("10k", 32, transport).await;
    let rtnl = h.rtnetlink().clone();
    let mut all: FuturesUnordered<_> = (0..10_000usize)
        .map(|k| {
            let rtnl = rtnl.clone();
            let want = indexes[k % indexes.len()];
            async move { (want, get_index(&rtnl, want).await) }
        })
        .collect();
    let mut answered = 0;
    while let Some((want, got)) = all.next().await {
        assert_eq!(want, got, "a reply went to the wrong request");
        answered += 1;
    }
    assert_eq!(answered, 10_000);
}

async fn dropped_requests_do_not_desync_the_connection(transport) {
    let (_ns, h, indexes) = with_links("cancel", 8, transport).await;
    let rtnl = h.rtnetlink().clone();
    for round in 0..20 {
        // Requests sent and dropped before their reply, some never polled,
        // some polled once, interleaved with requests that are awaited.
        let mut kept = Vec::new();
        for (k, &index) in indexes.iter().cycle().take(200).enumerate() {
            let mut stream = rtnl.link().get().match_index(index).execute();
            match (k + round) % 3 {
                0 => drop(stream),
                1 => drop(stream.try_next().now_or_never()),
                _ => kept.push((index, stream)),
            }
        }
        for (want, mut stream) in kept {
            let got = stream
                .try_next()
                .await
                .unwrap()
                .expect("a reply")
                .header
                .index;
            assert_eq!(want, got);
        }
        // And a dump after all that is whole.
        assert_eq!(link_names(&h).await.len(), indexes.len());
    }
}

async fn dropping_the_handle_ends_requests_in_flight_with_an_error(transport) {
    let (_ns, h, indexes) = with_links("inflight", 4, transport).await;
    let rtnl = h.rtnetlink().clone();
    // Requests handed to the connection before the handle is dropped: gets
    // are queued by execute(), adds on their first poll.
    let gets: FuturesUnordered<_> = (0..2_000usize)
        .map(|k| {
            let index = indexes[k % indexes.len()];
            let mut stream = rtnl.link().get().match_index(index).execute();
            async move { stream.try_next().await }
        })
        .collect();
    let adds: FuturesUnordered<_> = (0..200usize)
        .map(|k| {
            let rtnl = rtnl.clone();
            let mut add = Box::pin(async move {
                let msg = rtnetlink::LinkVeth::new(&format!("d{k}a"), &format!("d{k}b")).build();
                rtnl.link().add(msg).execute().await
            });
            let first = (&mut add).now_or_never();
            async move {
                match first {
                    Some(done) => done,
                    None => add.await,
                }
            }
        })
        .collect();
    drop(h);
    let gets = tokio::spawn(gets.collect::<Vec<_>>());
    let adds = tokio::spawn(adds.collect::<Vec<_>>());
    // Every request ends, answered or cancelled with an error: nothing hangs
    // and nothing ends silently.
    let (gets, adds) = tokio::time::timeout(Duration::from_secs(30), async {
        (gets.await.unwrap(), adds.await.unwrap())
    })
    .await
    .expect("requests hung after the handle was dropped");
    assert_eq!(gets.len(), 2_000);
    assert_eq!(adds.len(), 200);
    let mut n_cancelled = 0;
    for res in &gets {
        match res {
            Ok(Some(_)) => {}
            Err(e) if cancelled(e) => n_cancelled += 1,
            other => panic!("a get ended without an answer: {other:?}"),
        }
    }
    for res in &adds {
        match res {
            Ok(()) => {}
            Err(e) if cancelled(e) => n_cancelled += 1,
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    assert!(
        n_cancelled > 0,
        "the handle was dropped after every answer came"
    );
    println!("{n_cancelled} requests cancelled");
    // New requests on a surviving rtnetlink clone fail at once.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let err = rtnl.link().get().execute().try_next().await.unwrap_err();
    assert!(matches!(err, rtnetlink::Error::RequestFailed), "{err}");
}

async fn close_cancels_a_dump_in_flight(transport) {
    let (_ns, h, _) = with_links("dumpcancel", 1, transport).await;
    let rtnl = h.rtnetlink().clone();
    // A request the kernel answers only after it is unblocked: none exists,
    // so hold the connection's reader back instead: many dumps, then close.
    let dumps: Vec<_> = (0..50).map(|_| rtnl.link().get().execute()).collect();
    h.close().await;
    for mut dump in dumps {
        loop {
            match dump.try_next().await {
                Ok(Some(_)) => continue,
                Ok(None) => break,
                Err(e) => {
                    assert!(cancelled(&e), "{e}");
                    break;
                }
            }
        }
    }
}

async fn own_verbs_fail_when_the_connection_is_gone(transport) {
    let (_ns, h, _) = with_links("gone", 1, transport).await;
    let (connection, rtnl, _messages) = h.connection().await.unwrap();
    // A connection that is never driven and then dropped: its requests fail.
    drop(connection);
    let err = rtnl.link().get().execute().try_next().await.unwrap_err();
    assert!(matches!(err, rtnetlink::Error::RequestFailed), "{err}");
    // The handle's own connection is unaffected.
    assert_eq!(h.link_index("lo").await.unwrap(), 1);
}

async fn handles_in_a_hundred_namespaces_at_once(transport) {
    let nss: Vec<Ns> = futures::future::join_all((0..100).map(|_| Ns::new("hundred"))).await;
    let handles: Vec<Handle> = futures::future::try_join_all(
        nss.iter()
            .map(|ns| common::open_mode(ns.name(), OpenMode::OpenOnly, transport)),
    )
    .await
    .unwrap();
    futures::future::join_all(handles.iter().enumerate().map(|(i, h)| async move {
        h.add_veth(format!("h{i}a"), format!("h{i}b"))
            .execute()
            .await
            .unwrap();
        let names = link_names(h).await;
        assert_eq!(
            names,
            [format!("h{i}a"), format!("h{i}b"), "lo".to_string()]
        );
        let listener = h
            .tcp_listener("127.0.0.1:7000".parse().unwrap())
            .await
            .unwrap();
        drop(listener);
    }))
    .await;
    futures::future::join_all(handles.into_iter().map(Handle::close)).await;
}

}
