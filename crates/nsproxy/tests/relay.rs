//! The netlink relay: `RelaySocket` as an rtnetlink transport, compared with a
//! direct socket made in the same namespace.
#![allow(unsafe_code)]

use std::os::fd::{FromRawFd, IntoRawFd};

use futures::{StreamExt, TryStreamExt};
use netlink_packet_core::NetlinkPayload;
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::link::{LinkAttribute, LinkMessage};
use netlink_sys::{AsyncSocket, AsyncSocketExt, SocketAddr, TokioSocket, protocols::NETLINK_ROUTE};
mod common;

use common::{anon_ns, ns_and_agent};
use nsfs::NetNs;
use nsproxy::{Agent, AgentOptions, RelaySocket};
use rtnetlink::{Handle, LinkBridge, LinkUnspec};
use testkit::guard;

const RTMGRP_LINK: u32 = 1;
const RTNLGRP_IPV4_IFADDR: u32 = 5;

/// The direct transport: a netlink socket made inside `ns` on a namespace thread.
async fn direct(ns: &NetNs) -> Handle {
    let sock = ns
        .run(|| netlink_sys::Socket::new(NETLINK_ROUTE))
        .await
        .unwrap()
        .unwrap();
    // SAFETY: we hand over ownership of an open netlink socket fd.
    let sock = unsafe { TokioSocket::from_raw_fd(sock.into_raw_fd()) };
    let (conn, handle, _) = rtnetlink::from_socket(sock);
    tokio::spawn(conn);
    handle
}

/// Brings link `index` up through `handle`.
async fn set_up(handle: &Handle, index: u32) {
    guard(
        handle
            .link()
            .set(LinkUnspec::new_with_index(index).up().build())
            .execute(),
    )
    .await
    .unwrap();
}

async fn relayed(agent: &Agent) -> Handle {
    let relay = guard(agent.netlink(NETLINK_ROUTE)).await.unwrap();
    let (conn, handle, _) = rtnetlink::from_socket(relay);
    tokio::spawn(conn);
    handle
}

fn name_of(msg: &LinkMessage) -> String {
    msg.attributes
        .iter()
        .find_map(|a| {
            if let LinkAttribute::IfName(n) = a {
                Some(n.clone())
            } else {
                None
            }
        })
        .unwrap_or_default()
}

async fn dump(handle: &Handle) -> Vec<(u32, String)> {
    let mut links: Vec<(u32, String)> =
        guard(handle.link().get().execute().try_collect::<Vec<_>>())
            .await
            .unwrap()
            .iter()
            .map(|m| (m.header.index, name_of(m)))
            .collect();
    links.sort();
    links
}

async fn add_bridge(handle: &Handle, name: &str) -> u32 {
    guard(handle.link().add(LinkBridge::new(name).build()).execute())
        .await
        .unwrap();
    let msg = guard(
        handle
            .link()
            .get()
            .match_name(name.to_string())
            .execute()
            .try_next(),
    )
    .await
    .unwrap()
    .unwrap();
    msg.header.index
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dump_and_get_link_match_the_direct_socket() {
    let ns = anon_ns().await;
    let direct = direct(&ns).await;
    for i in 0..5 {
        add_bridge(&direct, &format!("br{i}")).await;
    }
    let agent = guard(Agent::start(&ns, AgentOptions::new())).await.unwrap();
    let relay = relayed(&agent).await;

    let want = dump(&direct).await;
    assert_eq!(want.len(), 6, "lo and five bridges: {want:?}");
    assert_eq!(dump(&relay).await, want);

    for (index, name) in &want {
        let msg = guard(relay.link().get().match_index(*index).execute().try_next())
            .await
            .unwrap()
            .unwrap();
        assert_eq!((msg.header.index, name_of(&msg)), (*index, name.clone()));
        let direct_msg = guard(direct.link().get().match_index(*index).execute().try_next())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(msg.header, direct_msg.header);
    }

    // Changes made through the relay are seen directly: requests with acks,
    // one after another (no stall after a notify).
    for i in 0..5 {
        let index = want.iter().find(|(_, n)| *n == format!("br{i}")).unwrap().0;
        set_up(&relay, index).await;
    }
    let up = guard(
        direct
            .link()
            .get()
            .match_name("br3".to_string())
            .execute()
            .try_next(),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(
        up.header
            .flags
            .contains(netlink_packet_route::link::LinkFlags::Up)
    );
    let new = add_bridge(&relay, "br-relay").await;
    assert!(dump(&direct).await.contains(&(new, "br-relay".to_string())));

    // A request the kernel refuses comes back as an error, not a hang.
    let err = guard(relay.link().del(999_999).execute())
        .await
        .unwrap_err();
    assert!(
        format!("{err}").contains("No such device") || format!("{err:?}").contains("19"),
        "{err:?}"
    );

    // 64 requests in flight at once.
    let gets = (0..64).map(|_| {
        let relay = relay.clone();
        async move { relay.link().get().match_index(1).execute().try_next().await }
    });
    let all = guard(futures::future::join_all(gets)).await;
    assert!(
        all.iter()
            .all(|r| matches!(r, Ok(Some(m)) if m.header.index == 1))
    );
    drop(relay);
    guard(agent.close()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multicast_through_the_relay_after_bind_and_add_membership() {
    let ns = anon_ns().await;
    let direct = direct(&ns).await;
    let agent = guard(Agent::start(&ns, AgentOptions::new())).await.unwrap();
    let mut sock: RelaySocket = guard(agent.netlink(NETLINK_ROUTE)).await.unwrap();
    // These act on the agent's own socket (a dup of it).
    sock.socket_mut()
        .bind(&SocketAddr::new(0, RTMGRP_LINK))
        .unwrap();
    sock.socket_mut()
        .add_membership(RTNLGRP_IPV4_IFADDR)
        .unwrap();
    let (conn, _handle, mut events) = rtnetlink::from_socket(sock);
    tokio::spawn(conn);

    let index = add_bridge(&direct, "br-events").await;
    let addr = "192.0.2.1".parse().unwrap();
    guard(direct.address().add(index, addr, 24).execute())
        .await
        .unwrap();

    let (mut saw_link, mut saw_addr) = (false, false);
    while !(saw_link && saw_addr) {
        let (msg, from) = guard(events.next()).await.expect("event stream ended");
        assert_eq!(from.port_number(), 0, "kernel messages come from port 0");
        match msg.payload {
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(link))
                if name_of(&link) == "br-events" =>
            {
                assert_eq!(from.multicast_groups(), RTMGRP_LINK);
                saw_link = true;
            }
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewAddress(a))
                if a.header.index == index =>
            {
                saw_addr = true;
            }
            _ => {}
        }
    }
    guard(agent.close()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enobufs_is_passed_through() {
    let ns = anon_ns().await;
    let direct = direct(&ns).await;
    let index = add_bridge(&direct, "br-flood").await;
    let agent = guard(Agent::start(&ns, AgentOptions::new())).await.unwrap();
    let mut sock = guard(agent.netlink(NETLINK_ROUTE)).await.unwrap();
    sock.socket_mut()
        .bind(&SocketAddr::new(0, RTMGRP_LINK))
        .unwrap();
    sock.socket_mut().set_rx_buf_sz(4096).unwrap();
    // Nobody reads the relay: its channel fills, the agent stops reading the
    // kernel socket, which overflows.
    for i in 0..400 {
        let msg = if i % 2 == 0 {
            LinkUnspec::new_with_index(index).up().build()
        } else {
            LinkUnspec::new_with_index(index).down().build()
        };
        guard(direct.link().set(msg).execute()).await.unwrap();
    }
    let mut buf = Vec::with_capacity(65536);
    let mut datagrams = 0;
    let err = loop {
        buf.clear();
        match guard(sock.recv_from(&mut buf)).await {
            Ok(_) => datagrams += 1,
            Err(e) => break e,
        }
        assert!(datagrams < 10_000, "no ENOBUFS after {datagrams} datagrams");
    };
    assert_eq!(err.raw_os_error(), Some(libc::ENOBUFS), "{err}");
    // The relay keeps working after an overrun.
    set_up(&direct, index).await;
    loop {
        buf.clear();
        match guard(sock.recv_from(&mut buf)).await {
            Ok(_) => break,
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => continue,
            Err(e) => panic!("relay broken after overrun: {e}"),
        }
    }
    drop(sock);
    guard(agent.close()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_killed_fails_relay_requests() {
    let (ns, agent) = ns_and_agent().await;
    let relay = relayed(&agent).await;
    assert!(!dump(&relay).await.is_empty());
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(agent.pid()),
        nix::sys::signal::SIGKILL,
    )
    .unwrap();
    let result = guard(relay.link().get().execute().try_collect::<Vec<_>>()).await;
    assert!(
        result.map(|v| v.is_empty()).unwrap_or(true),
        "no answer from a dead agent"
    );
    let err = guard(agent.netlink(NETLINK_ROUTE)).await.unwrap_err();
    assert!(matches!(err, nsproxy::Error::AgentGone { .. }), "{err}");
    guard(agent.close()).await.unwrap();
    // A new agent works.
    let agent = guard(Agent::start(&ns, AgentOptions::new())).await.unwrap();
    let relay = relayed(&agent).await;
    assert_eq!(dump(&relay).await, vec![(1, "lo".to_string())]);
    drop(relay);
    guard(agent.close()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_is_unsupported() {
    let err = <RelaySocket as AsyncSocket>::new(0).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::Unsupported);
}

/// Public types the runtime moves across threads.
#[test]
fn send_sync_unpin() {
    fn send<T: Send>() {}
    fn sync<T: Sync>() {}
    fn unpin<T: Unpin>() {}
    send::<RelaySocket>();
    unpin::<RelaySocket>();
    send::<Agent>();
    sync::<Agent>();
    send::<nsproxy::AgentChild>();
    sync::<nsproxy::AgentChild>();
    send::<nsproxy::SpawnRequest>();
    fn future_send<F: std::future::Future + Send>(_: F) {}
    let ns = NetNs::current_thread().unwrap();
    future_send(Agent::start(&ns, AgentOptions::new()));
}
