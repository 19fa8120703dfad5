//! Sockets inside namespaces: TCP, UDP, raw and packet sockets belong to the
//! namespace they were made in.

mod common;

use std::os::fd::AsFd;

use common::Ns;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The namespace a socket belongs to (SIOCGSKNS), as an nsfs identity.
fn socket_netns(fd: impl AsFd) -> netns::NsId {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    const SIOCGSKNS: libc::c_ulong = 0x894C;
    let raw = fd.as_fd().as_raw_fd();
    // SAFETY: SIOCGSKNS takes no argument and returns a new fd or -1.
    #[allow(unsafe_code)]
    let ns = unsafe { libc::ioctl(raw, SIOCGSKNS as _) };
    assert!(ns >= 0, "SIOCGSKNS: {}", std::io::Error::last_os_error());
    // SAFETY: a new fd we own.
    #[allow(unsafe_code)]
    let owned = unsafe { OwnedFd::from_raw_fd(ns) };
    netns::NetNs::from_fd(owned).unwrap().id()
}

/// A handle on `ns`, with lo brought up (it is down in a fresh namespace).
async fn open_with_lo_up(ns: &Ns, transport: netns::Transport) -> netns::Handle {
    let h = common::open(ns.name(), transport).await;
    h.rtnetlink()
        .link()
        .set(rtnetlink::LinkUnspec::new_with_index(1).up().build())
        .execute()
        .await
        .unwrap();
    h
}

both_transports! {
async fn tcp_in_a_namespace(transport) {
    let ns = Ns::new("tcp").await;
    let h = open_with_lo_up(&ns, transport).await;
    let listener = h
        .tcp_listener("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    assert_eq!(socket_netns(&listener), ns.netns.id());
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = [0; 5];
        s.read_exact(&mut buf).await.unwrap();
        s.write_all(&buf).await.unwrap();
    });
    let mut client = h.tcp_connect(addr).await.unwrap();
    assert_eq!(socket_netns(&client), ns.netns.id());
    client.write_all(b"hello").await.unwrap();
    let mut back = [0; 5];
    client.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, b"hello");
    server.await.unwrap();

    // The same port in the root namespace is another socket entirely: the
    // namespace's loopback is not reachable from here.
    let root = tokio::net::TcpStream::connect(addr).await;
    assert!(root.is_err());
}

async fn connect_failures_are_typed(transport) {
    let ns = Ns::new("tcpfail").await;
    let h = common::open(ns.name(), transport).await;
    // lo is down: nothing is reachable.
    let err = h
        .tcp_connect("127.0.0.1:9".parse().unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err, netns::Error::Socket { .. }), "{err}");
    assert!(err.raw_os_error().is_some());
    let first = h.udp_bind("0.0.0.0:0".parse().unwrap()).await.unwrap();
    let err = h.udp_bind(first.local_addr().unwrap()).await.unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EADDRINUSE), "{err}");
    let taken = h.tcp_listener("0.0.0.0:0".parse().unwrap()).await.unwrap();
    let err = h
        .tcp_listener(taken.local_addr().unwrap())
        .await
        .unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EADDRINUSE), "{err}");
}

async fn udp_raw_and_packet_sockets(transport) {
    let ns = Ns::new("udp").await;
    let h = open_with_lo_up(&ns, transport).await;
    let a = h.udp_bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let b = h.udp_bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    assert_eq!(socket_netns(&a), ns.netns.id());
    a.send_to(b"ping", b.local_addr().unwrap()).await.unwrap();
    let mut buf = [0; 16];
    let (n, from) = b.recv_from(&mut buf).await.unwrap();
    assert_eq!(&buf[..n], b"ping");
    assert_eq!(from, a.local_addr().unwrap());

    let raw = h
        .socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP)
        .await
        .unwrap();
    assert_eq!(socket_netns(&raw), ns.netns.id());
    let packet = h
        .socket(
            libc::AF_PACKET,
            libc::SOCK_RAW,
            i32::from((libc::ETH_P_ALL as u16).to_be()),
        )
        .await
        .unwrap();
    assert_eq!(socket_netns(&packet), ns.netns.id());
    let err = h.socket(-1, libc::SOCK_RAW, 0).await.unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EAFNOSUPPORT), "{err}");
}

}

/// A netlink socket for the namespace the calling thread is already in is
/// made on that thread (no namespace-thread hop); either way it lives in the
/// target namespace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn netlink_socket_for_the_callers_namespace_is_made_in_it() {
    use netlink_sys::AsyncSocket;
    let here = netns::NetNs::current_thread().unwrap();
    let ns = Ns::new("nlhere").await;

    let same = netns::NetlinkSocket::open(&here, 0).await.unwrap();
    assert_eq!(socket_netns(same.socket_ref()), here.id());
    let other = netns::NetlinkSocket::open(&ns.netns, 0).await.unwrap();
    assert_eq!(socket_netns(other.socket_ref()), ns.netns.id());

    // Handle::open by pid (this process's namespace) and by name: the
    // handle's sockets live in the target, and the handle answers.
    for target in [
        netns::Target::Pid(std::process::id() as i32),
        netns::Target::from(ns.name()),
    ] {
        let h = common::open(target, netns::Transport::Direct).await;
        let (mut connection, rtnl, _messages) = h.connection().await.unwrap();
        assert_eq!(
            socket_netns(connection.socket_mut().socket_ref()),
            h.netns().id()
        );
        tokio::spawn(connection);
        drop(rtnl);
        assert!(common::link_names(&h).await.contains(&"lo".to_string()));
        h.close().await;
    }
}
