//! Multicast events from inside namespaces: select over several namespaces,
//! overruns reported.

mod common;

use std::time::Duration;

use common::Ns;
use futures::StreamExt;
use netlink_packet_core::NetlinkPayload;
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::link::LinkAttribute;
use netns::{Event, Events, Handle, MulticastGroup, OpenMode};

/// The name of a new link announced by `event`, if it is one (an error
/// fails the test).
fn new_link(event: &netns::Result<Event>) -> Option<String> {
    match event {
        Err(e) => panic!("the event stream failed: {e}"),
        Ok(Event::Message(msg)) => match &msg.payload {
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(link)) => {
                link.attributes.iter().find_map(|a| match a {
                    LinkAttribute::IfName(n) => Some(n.clone()),
                    _ => None,
                })
            }
            _ => None,
        },
        _ => None,
    }
}

/// Waits (bounded, so a bug fails instead of hanging) for a RTM_NEWLINK of a
/// link whose name starts with `name` on `events`.
async fn expect_link(events: &mut Events, name: &str) {
    let wait = async {
        while let Some(event) = events.next().await {
            if new_link(&event).is_some_and(|n| n.starts_with(name)) {
                return;
            }
        }
        panic!("event stream ended");
    };
    tokio::time::timeout(Duration::from_secs(20), wait)
        .await
        .unwrap_or_else(|_| panic!("no RTM_NEWLINK for {name}"));
}

both_transports! {
async fn an_event_stream_outlives_its_handle(transport) {
    let ns = Ns::new("outlive").await;
    let h = common::open(ns.name(), transport).await;
    let mut events = h.events(&[MulticastGroup::Link]).await.unwrap();
    h.close().await;
    let other = common::open(ns.name(), netns::Transport::Direct).await;
    other.add_veth("late0", "late1").execute().await.unwrap();
    expect_link(&mut events, "late").await;
}

async fn select_over_three_namespaces(transport) {
    let nss = [
        Ns::new("ev0").await,
        Ns::new("ev1").await,
        Ns::new("ev2").await,
    ];
    let mut handles = Vec::new();
    let mut streams = Vec::new();
    for ns in &nss {
        let h = common::open(ns.name(), transport).await;
        streams.push(
            h.events(&[MulticastGroup::Link, MulticastGroup::Ipv4Ifaddr])
                .await
                .unwrap(),
        );
        handles.push(h);
    }
    for (i, h) in handles.iter().enumerate() {
        h.add_veth(format!("e{i}a"), format!("e{i}b"))
            .execute()
            .await
            .unwrap();
    }
    let mut seen = [false; 3];
    let [s0, s1, s2] = &mut streams[..] else {
        unreachable!()
    };
    let deadline = tokio::time::sleep(Duration::from_secs(20));
    tokio::pin!(deadline);
    while seen != [true; 3] {
        tokio::select! {
            Some(e) = s0.next() => if new_link(&e).as_deref() == Some("e0a") { seen[0] = true },
            Some(e) = s1.next() => if new_link(&e).as_deref() == Some("e1a") { seen[1] = true },
            Some(e) = s2.next() => if new_link(&e).as_deref() == Some("e2a") { seen[2] = true },
            _ = &mut deadline => panic!("events missing: {seen:?}"),
        }
    }
    // Each stream only sees its own namespace.
    assert!(streams[0].namespace().ends_with(nss[0].name()));
}

async fn events_of_one_namespace_do_not_leak_into_another(transport) {
    let a = Ns::new("eva").await;
    let b = Ns::new("evb").await;
    let ha = common::open(a.name(), transport).await;
    let hb = common::open(b.name(), transport).await;
    let mut ea = ha.events(&[MulticastGroup::Link]).await.unwrap();
    hb.add_veth("only-b0", "only-b1").execute().await.unwrap();
    ha.add_veth("a0", "a1").execute().await.unwrap();
    // The first link event a sees is its own.
    let first = tokio::time::timeout(Duration::from_secs(20), ea.next())
        .await
        .unwrap()
        .unwrap();
    let name = new_link(&first).expect("a link event");
    assert!(name.starts_with('a'), "{name}");
}


}
// A current-thread runtime: while the test blocks it, the events task cannot
// read, so the kernel's (tiny) receive buffer overflows.
#[tokio::test(flavor = "current_thread")]
async fn overrun_is_reported_direct() {
    overrun_is_reported(netns::Transport::Direct).await;
}

#[tokio::test(flavor = "current_thread")]
async fn overrun_is_reported_relay() {
    overrun_is_reported(netns::Transport::Relay).await;
}

async fn overrun_is_reported(transport: netns::Transport) {
    let ns = Ns::new("overrun").await;
    // A listener with the smallest receive buffer.
    let listener = smallest_buffer(&ns, transport).await;
    let mut events = listener.events(&[MulticastGroup::Link]).await.unwrap();
    let name = ns.name().to_string();
    // The relay's agent keeps reading the kernel socket while this runtime is
    // blocked, until the relay channel to us is full: it takes more events.
    let pairs = match transport {
        netns::Transport::Direct => 40,
        _ => 1500,
    };
    // Make events from another thread while this runtime is blocked.
    burst(&name, "o", pairs);
    let (overruns, messages) = count_until_quiet(&mut events).await;
    assert!(overruns >= 1, "no overrun reported ({messages} messages)");
    assert!(
        messages < 2 * pairs,
        "every event arrived despite the overrun"
    );
    // The stream keeps working after an overrun. With so small a buffer a
    // new veth pair's events may overflow it again (then the overrun is
    // reported and the one event that fitted is discarded with the rest of
    // the queue), or one of them arrives: either shows the stream alive.
    let h = common::open_mode(ns.name(), OpenMode::OpenOnly, transport)
        .await
        .unwrap();
    h.add_veth("after0", "after1").execute().await.unwrap();
    let alive = async {
        while let Some(event) = events.next().await {
            if matches!(event, Ok(Event::Overrun))
                || new_link(&event).is_some_and(|n| n.starts_with("after"))
            {
                return;
            }
        }
        panic!("event stream ended");
    };
    tokio::time::timeout(Duration::from_secs(20), alive)
        .await
        .expect("nothing from the stream after the overrun");
}

/// Makes `pairs` veth pairs named `{prefix}{i}a/b` in `name` from another
/// thread, while the caller's (current-thread) runtime is blocked.
fn burst(name: &str, prefix: &str, pairs: usize) {
    let (name, prefix) = (name.to_string(), prefix.to_string());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let h = common::open_mode(name.as_str(), OpenMode::OpenOnly, netns::Transport::Direct)
                .await
                .unwrap();
            for i in 0..pairs {
                h.add_veth(format!("{prefix}{i}a"), format!("{prefix}{i}b"))
                    .execute()
                    .await
                    .unwrap();
            }
        });
    })
    .join()
    .unwrap();
}

/// Reads `events` until none comes for a second; returns how many overruns
/// and how many messages it saw.
async fn count_until_quiet(events: &mut netns::Events) -> (usize, usize) {
    let (mut overruns, mut messages) = (0, 0);
    while let Ok(Some(event)) = tokio::time::timeout(Duration::from_secs(1), events.next()).await {
        match event {
            Ok(Event::Overrun) => overruns += 1,
            Ok(Event::Message(_)) => messages += 1,
            Ok(_) => {}
            Err(e) => panic!("the event stream failed: {e}"),
        }
    }
    (overruns, messages)
}

/// A handle on `ns` whose sockets have the smallest receive buffer the
/// kernel allows, so that a burst of events overflows it.
async fn smallest_buffer(ns: &Ns, transport: netns::Transport) -> Handle {
    Handle::builder(ns.name())
        .mode(OpenMode::OpenOnly)
        .receive_buffer(1)
        .transport(transport)
        .open()
        .await
        .unwrap()
}

// Regression: after reporting one ENOBUFS the kernel marks a netlink socket
// congested and drops later events *silently* until a read empties its
// queue. The stream used to yield the overrun and leave the queue full, so a
// consumer that resynced right away (nsdb) lost the events dropped during
// its resync without ever hearing of it. Now the stream empties the queue
// when it reports an overrun, and the next overflow is reported too.
#[tokio::test(flavor = "current_thread")]
async fn a_second_overflow_after_an_overrun_is_reported_too() {
    let ns = Ns::new("overrun2").await;
    let listener = smallest_buffer(&ns, netns::Transport::Direct).await;
    let mut events = listener.events(&[MulticastGroup::Link]).await.unwrap();
    burst(ns.name(), "p", 40);
    // Read up to the first overrun, and not one event further.
    loop {
        match tokio::time::timeout(Duration::from_secs(5), events.next()).await {
            Ok(Some(Ok(Event::Overrun))) => break,
            Ok(Some(_)) => {}
            other => panic!("no overrun after the first burst: {other:?}"),
        }
    }
    // A second burst while nothing reads: it overflows again.
    burst(ns.name(), "q", 40);
    let (overruns, _) = count_until_quiet(&mut events).await;
    assert!(overruns >= 1, "the second overflow was dropped silently");
}

// Regression: the stream used to be drained by a task into an unbounded
// queue, so a consumer that stopped polling made this process's memory grow
// without bound and never saw an overrun. Now events wait in the kernel's
// buffer: on a multi-thread runtime that keeps running, a stream that is not
// polled overflows that buffer and reports it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unpolled_stream_overflows_the_kernel_buffer_not_our_memory() {
    let ns = Ns::new("unpolled").await;
    let listener = smallest_buffer(&ns, netns::Transport::Direct).await;
    let mut events = listener.events(&[MulticastGroup::Link]).await.unwrap();
    let h = common::open(ns.name(), netns::Transport::Direct).await;
    for i in 0..40 {
        h.add_veth(format!("u{i}a"), format!("u{i}b"))
            .execute()
            .await
            .unwrap();
    }
    let (overruns, messages) = count_until_quiet(&mut events).await;
    assert!(
        overruns >= 1,
        "no overrun: {messages} messages were queued in this process"
    );
}

#[tokio::test]
async fn events_without_a_handle() {
    let ns = Ns::new("subscribe").await;
    let mut events = Events::subscribe(&ns.netns, &[MulticastGroup::Link], 0)
        .await
        .unwrap();
    let h = common::open(ns.name(), netns::Transport::Direct).await;
    h.add_veth("sub0", "sub1").execute().await.unwrap();
    expect_link(&mut events, "sub").await;
}

// Regression: a stream whose socket failed used to end silently, as if
// there were nothing more to say. It now yields the error, then ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_whose_agent_dies_says_why_it_ended() {
    let ns = Ns::new("evdies").await;
    let h = common::open(ns.name(), netns::Transport::Relay).await;
    let mut events = h.events(&[MulticastGroup::Link]).await.unwrap();
    let pid = h.agent().unwrap().pid();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL).unwrap();
    let end = tokio::time::timeout(Duration::from_secs(20), events.next())
        .await
        .expect("the stream hung after its agent died");
    match end {
        Some(Err(err @ netns::Error::Socket { .. })) => {
            assert!(
                err.raw_os_error().is_some() || err.kind() == std::io::ErrorKind::ConnectionReset
            );
            assert!(err.to_string().contains(ns.name()), "{err}");
        }
        other => panic!("expected the stream's error, got {other:?}"),
    }
    assert!(
        events.next().await.is_none(),
        "the stream ends after its error"
    );
    h.close().await;
}
