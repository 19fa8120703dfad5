//! Netlink plumbing: sockets made inside a namespace, requests with the
//! kernel's extended-ack message, dumps that notice `NLM_F_DUMP_INTR`.

use futures::StreamExt;
use netlink_packet_core::{
    NLM_F_ACK, NLM_F_CAPPED, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST, NetlinkHeader,
    NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::AddressFamily;
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::address::AddressMessage;
use netlink_packet_route::link::LinkMessage;
use netlink_packet_route::nsid::{NsidAttribute, NsidMessage};
use netlink_packet_route::route::RouteMessage;
use netlink_proto::sys::AsyncSocket;

use crate::Namespace;
use crate::error::{Error, NetlinkError};
use crate::model::NsState;

/// The multicast groups the event socket joins: links, IPv4/IPv6 addresses
/// and routes, namespace ids.
const GROUPS: &[netns::MulticastGroup] = &[
    netns::MulticastGroup::Link,
    netns::MulticastGroup::Ipv4Ifaddr,
    netns::MulticastGroup::Ipv4Route,
    netns::MulticastGroup::Ipv6Ifaddr,
    netns::MulticastGroup::Ipv6Route,
    netns::MulticastGroup::Nsid,
];

/// A new netlink connection inside `netns`, through the facade
/// (`netns::connection`: a socket made on a namespace thread, strict
/// checking and extended acks on, whole datagrams, `ENOBUFS` passed through).
async fn connect(
    ns: &Namespace,
    netns: &nsfs::NetNs,
) -> Result<(netns::Connection, rtnetlink::Handle, netns::Messages), Error> {
    netns::connection(netns)
        .await
        .map_err(|source| Error::Connect {
            ns: ns.clone(),
            source: Box::new(source),
        })
}

/// A request connection: capped acks, acks forwarded (a request is done
/// when its ack came). Not for rtnetlink's verbs. Dumps go through a
/// [`DumpSocket`] instead.
pub(crate) async fn request_connection(
    ns: &Namespace,
    netns: &nsfs::NetNs,
) -> Result<rtnetlink::Handle, Error> {
    let (mut conn, handle, _unsolicited) = connect(ns, netns).await?;
    let io = |e: std::io::Error| Error::Socket {
        ns: ns.clone(),
        source: e,
    };
    conn.socket_mut()
        .socket_mut()
        .set_cap_ack(true)
        .map_err(io)?;
    conn.set_forward_done(true);
    conn.set_forward_ack(true);
    tokio::spawn(conn);
    Ok(handle)
}

/// A plain connection, as rtnetlink's verbs expect it (acks and `Done`
/// swallowed).
pub(crate) async fn plain_connection(
    ns: &Namespace,
    netns: &nsfs::NetNs,
) -> Result<rtnetlink::Handle, Error> {
    let (conn, handle, _unsolicited) = connect(ns, netns).await?;
    tokio::spawn(conn);
    Ok(handle)
}

/// The event stream of `netns`: joined to the multicast groups, with the
/// given receive buffer size (bytes) if any (else the facade's, 4 MiB). It
/// is read only as the view applies it: events not applied yet wait in the
/// kernel's buffer (bounded), and an overflow is an `Event::Overrun`.
pub(crate) async fn events(
    ns: &Namespace,
    netns: &nsfs::NetNs,
    receive_buffer: Option<usize>,
) -> Result<netns::Events, Error> {
    let size = receive_buffer.unwrap_or(netns::DEFAULT_RECEIVE_BUFFER);
    netns::Events::subscribe(netns, GROUPS, size)
        .await
        .map_err(|source| Error::Connect {
            ns: ns.clone(),
            source: Box::new(source),
        })
}

/// Sends one request with `NLM_F_ACK` and waits for the ack; a NACK becomes
/// a [`NetlinkError`] with the errno and the kernel's extended-ack message.
pub(crate) async fn request(
    handle: &mut rtnetlink::Handle,
    msg: RouteNetlinkMessage,
    extra_flags: u16,
) -> Result<(), NetlinkError> {
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_ACK | extra_flags;
    let mut req = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
    req.finalize();
    let mut replies = handle.request(req).map_err(|_| NetlinkError::closed())?;
    let mut acked = false;
    while let Some(reply) = replies.next().await {
        if let NetlinkPayload::Error(e) = &reply.payload {
            match e.code {
                Some(code) => {
                    return Err(NetlinkError {
                        errno: -code.get(),
                        message: ext_ack_message(reply.header.flags, &e.header),
                    });
                }
                None => acked = true,
            }
        }
    }
    if acked {
        Ok(())
    } else {
        Err(NetlinkError::closed())
    }
}

/// [`request`] for a message that carries the fd number of `fd`
/// (`IFLA_NET_NS_FD`). If this future is dropped before the answer, the fd
/// is still held until the kernel has processed the request: closed earlier,
/// its number could name a file opened meanwhile (another namespace) by the
/// time the connection sends the request. A task sends a barrier request on
/// the same connection (answered in order, after the first) and lets the fd
/// go when it is answered.
pub(crate) async fn request_holding(
    handle: &mut rtnetlink::Handle,
    msg: RouteNetlinkMessage,
    extra_flags: u16,
    fd: &nsfs::NetNs,
) -> Result<(), NetlinkError> {
    struct Hold(Option<(nsfs::NetNs, rtnetlink::Handle)>);
    impl Drop for Hold {
        fn drop(&mut self) {
            if let Some((fd, mut handle)) = self.0.take()
                && let Ok(rt) = tokio::runtime::Handle::try_current()
            {
                rt.spawn(async move {
                    let _ = get_link(&mut handle, 1).await;
                    drop(fd);
                });
            }
        }
    }
    let mut hold = Hold(Some((fd.clone(), handle.clone())));
    let res = request(handle, msg, extra_flags).await;
    hold.0 = None;
    res
}

/// A netlink socket for dumps, read directly (not through netlink-proto,
/// whose connection task would read the whole dump into an unbounded queue
/// as fast as the kernel makes it): the kernel builds the next part of a
/// dump only when the previous one was read, so at most the socket's
/// receive buffer and one datagram are held, however big the namespace.
pub(crate) struct DumpSocket {
    socket: netns::NetlinkSocket,
    seq: u32,
    /// The sequence number of a dump whose reader was dropped before its
    /// end: the kernel refuses a new dump (`EBUSY`) until it was read out.
    unfinished: Option<u32>,
    datagram: Vec<u8>,
}

/// Serializes the dumps made on one namespace's dump socket.
pub(crate) type DumpLock = std::sync::Arc<tokio::sync::Mutex<DumpSocket>>;

/// A dump socket inside `netns`.
pub(crate) async fn dump_socket(ns: &Namespace, netns: &nsfs::NetNs) -> Result<DumpLock, Error> {
    let socket = netns::NetlinkSocket::open(netns, netns::DEFAULT_RECEIVE_BUFFER)
        .await
        .map_err(|source| Error::Connect {
            ns: ns.clone(),
            source: Box::new(source),
        })?;
    Ok(std::sync::Arc::new(tokio::sync::Mutex::new(DumpSocket {
        socket,
        seq: 0,
        unfinished: None,
        datagram: Vec::new(),
    })))
}

const NLMSG_HDRLEN: usize = 16;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;

fn io_error(e: std::io::Error) -> NetlinkError {
    NetlinkError {
        errno: e.raw_os_error().unwrap_or(libc::EIO),
        message: None,
    }
}

impl DumpSocket {
    /// Receives one datagram and hands each of its messages of dump `seq`
    /// to `each`; stops early (returning its value) when `each` says so.
    async fn recv<T>(
        &mut self,
        seq: u32,
        mut each: impl FnMut(u16, u16, &[u8]) -> Option<T>,
    ) -> Result<Option<T>, NetlinkError> {
        use netlink_proto::sys::AsyncSocketExt;
        self.datagram.clear();
        self.datagram.reserve(64 * 1024);
        self.socket
            .recv_from(&mut self.datagram)
            .await
            .map_err(io_error)?;
        let mut rest = &self.datagram[..];
        while rest.len() >= NLMSG_HDRLEN {
            let len = u32::from_ne_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            if len < NLMSG_HDRLEN || len > rest.len() {
                break;
            }
            let msg = &rest[..len];
            rest = &rest[((len + 3) & !3).min(rest.len())..];
            let kind = u16::from_ne_bytes([msg[4], msg[5]]);
            let flags = u16::from_ne_bytes([msg[6], msg[7]]);
            // Parts of an earlier dump whose reader was dropped, or replies
            // to nothing: not ours.
            if u32::from_ne_bytes([msg[8], msg[9], msg[10], msg[11]]) != seq {
                continue;
            }
            if let Some(out) = each(kind, flags, msg) {
                return Ok(Some(out));
            }
        }
        Ok(None)
    }

    /// Lets the receive buffer go between requests: a view of many
    /// namespaces would otherwise keep up to 64 KiB per namespace (a dump's
    /// datagrams reach 32 KiB) for namespaces it rarely dumps.
    fn idle(&mut self) {
        self.datagram = Vec::new();
    }

    /// Reads out the rest of a dump whose reader was dropped.
    async fn finish(&mut self) -> Result<(), NetlinkError> {
        while let Some(seq) = self.unfinished {
            let end = self
                .recv(seq, |kind, _, _| {
                    matches!(kind, NLMSG_DONE | NLMSG_ERROR).then_some(())
                })
                .await?;
            if end.is_some() {
                self.unfinished = None;
            }
        }
        Ok(())
    }

    /// A dump: every entry goes to `entry` as it arrives (no copy of the
    /// whole dump is kept); returns whether the kernel flagged it
    /// inconsistent (`NLM_F_DUMP_INTR`). A message netlink-packet-route
    /// cannot parse is skipped (and logged), as netlink-proto does.
    ///
    /// Cancel safe: a dump dropped part-way is read out before the next.
    pub(crate) async fn dump(
        &mut self,
        msg: RouteNetlinkMessage,
        mut entry: impl FnMut(&RouteNetlinkMessage),
    ) -> Result<bool, NetlinkError> {
        let seq = self.start(msg).await?;
        let mut intr = false;
        loop {
            let end = self
                .recv(seq, |kind, flags, msg| {
                    intr |= flags & NLM_F_DUMP_INTR != 0;
                    let code = || {
                        msg.get(NLMSG_HDRLEN..NLMSG_HDRLEN + 4)
                            .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
                            .unwrap_or(0)
                    };
                    match kind {
                        NLMSG_DONE | NLMSG_ERROR if code() < 0 => {
                            let after = msg.get(NLMSG_HDRLEN + 4..).unwrap_or(&[]);
                            Some(Err(NetlinkError {
                                errno: -code(),
                                // A failed dump's DONE carries the TLVs right
                                // after the code; an error echoes the request.
                                message: if kind == NLMSG_DONE {
                                    tlv_message(after)
                                } else {
                                    ext_ack_message(flags, after)
                                },
                            }))
                        }
                        NLMSG_DONE => Some(Ok(())),
                        NLMSG_ERROR => None, // an ack: the dump goes on
                        _ => {
                            match NetlinkMessage::<RouteNetlinkMessage>::deserialize(msg) {
                                Ok(m) => {
                                    if let NetlinkPayload::InnerMessage(m) = &m.payload {
                                        entry(m);
                                    }
                                }
                                Err(e) => tracing::warn!("skipped a dump entry: {e}"),
                            }
                            None
                        }
                    }
                })
                .await?;
            if let Some(end) = end {
                self.unfinished = None;
                self.idle();
                return end.map(|()| intr);
            }
        }
    }

    /// One request answered by one message (`RTM_GETLINK` of one index,
    /// `RTM_GETNSID`), sent on this socket: `Ok(None)` when the kernel
    /// answered `errno` in `absent`. The kernel handles a rtnetlink request
    /// inside the `sendmsg` that sends it, so an fd number the request
    /// carries (`NETNSA_FD`) only needs to stay open until this has sent it.
    ///
    /// Cancel safe: a reply left unread is skipped by the next reader (its
    /// sequence number is not the one awaited).
    pub(crate) async fn get(
        &mut self,
        msg: RouteNetlinkMessage,
        absent: &[i32],
    ) -> Result<Option<RouteNetlinkMessage>, NetlinkError> {
        let seq = self.send(msg, NLM_F_REQUEST).await?;
        loop {
            let got = self
                .recv(seq, |kind, flags, msg| match kind {
                    NLMSG_ERROR => {
                        let code = msg
                            .get(NLMSG_HDRLEN..NLMSG_HDRLEN + 4)
                            .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
                            .unwrap_or(0);
                        if code == 0 {
                            return None; // an ack: the answer comes before it
                        }
                        if absent.contains(&-code) {
                            return Some(Ok(None));
                        }
                        let after = msg.get(NLMSG_HDRLEN + 4..).unwrap_or(&[]);
                        Some(Err(NetlinkError {
                            errno: -code,
                            message: ext_ack_message(flags, after),
                        }))
                    }
                    NLMSG_DONE => Some(Ok(None)),
                    _ => match NetlinkMessage::<RouteNetlinkMessage>::deserialize(msg) {
                        Ok(NetlinkMessage {
                            payload: NetlinkPayload::InnerMessage(m),
                            ..
                        }) => Some(Ok(Some(m))),
                        Ok(_) => None,
                        Err(e) => Some(Err(NetlinkError {
                            errno: libc::EPROTO,
                            message: Some(format!("unparsable answer: {e}")),
                        })),
                    },
                })
                .await?;
            if let Some(answer) = got {
                self.idle();
                return answer;
            }
        }
    }

    /// Sends a dump request (after reading out any unfinished dump) and
    /// returns its sequence number.
    async fn start(&mut self, msg: RouteNetlinkMessage) -> Result<u32, NetlinkError> {
        let seq = self.send(msg, NLM_F_REQUEST | NLM_F_DUMP).await?;
        self.unfinished = Some(seq);
        Ok(seq)
    }

    /// Sends a request with `flags` (after reading out any unfinished
    /// dump) and returns its sequence number.
    async fn send(&mut self, msg: RouteNetlinkMessage, flags: u16) -> Result<u32, NetlinkError> {
        use netlink_proto::sys::{AsyncSocketExt, SocketAddr};
        self.finish().await?;
        self.seq = self.seq.wrapping_add(1).max(1);
        let seq = self.seq;
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        header.sequence_number = seq;
        let mut req = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
        req.finalize();
        let mut bytes = vec![0; req.buffer_len()];
        req.serialize(&mut bytes);
        self.socket
            .send_to(&bytes, &SocketAddr::new(0, 0))
            .await
            .map_err(io_error)?;
        Ok(seq)
    }
}

/// One link by index (`RTM_GETLINK`); `None` if there is no such link.
pub(crate) async fn get_link(
    handle: &mut rtnetlink::Handle,
    index: u32,
) -> Result<Option<RouteNetlinkMessage>, NetlinkError> {
    let mut msg = LinkMessage::default();
    msg.header.index = index;
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST;
    let mut req = NetlinkMessage::new(
        header,
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::GetLink(msg)),
    );
    req.finalize();
    let mut replies = handle.request(req).map_err(|_| NetlinkError::closed())?;
    while let Some(reply) = replies.next().await {
        match reply.payload {
            NetlinkPayload::InnerMessage(m @ RouteNetlinkMessage::NewLink(_)) => {
                return Ok(Some(m));
            }
            NetlinkPayload::Error(e) => match e.code {
                Some(code) if -code.get() == libc::ENODEV => return Ok(None),
                Some(code) => {
                    return Err(NetlinkError {
                        errno: -code.get(),
                        message: ext_ack_message(reply.header.flags, &e.header),
                    });
                }
                None => {}
            },
            _ => {}
        }
    }
    Err(NetlinkError::closed())
}

/// What a full dump covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DumpPart {
    Links,
    Addresses,
    Routes,
}

impl DumpPart {
    fn request(self) -> RouteNetlinkMessage {
        match self {
            DumpPart::Links => RouteNetlinkMessage::GetLink(LinkMessage::default()),
            DumpPart::Addresses => RouteNetlinkMessage::GetAddress(AddressMessage::default()),
            DumpPart::Routes => RouteNetlinkMessage::GetRoute(RouteMessage::default()),
        }
    }

    pub(crate) fn what(self) -> &'static str {
        match self {
            DumpPart::Links => "links",
            DumpPart::Addresses => "addresses",
            DumpPart::Routes => "routes",
        }
    }
}

/// How many times an interrupted dump is retried before giving up.
const DUMP_RETRIES: usize = 10;

/// Dumps `parts` into `state`, retrying a part the kernel flagged
/// `NLM_F_DUMP_INTR`. Returns how many dumps were interrupted.
pub(crate) async fn dump_into(
    ns: &Namespace,
    lock: &DumpLock,
    parts: &[DumpPart],
    state: &mut NsState,
) -> Result<usize, Error> {
    // One dump at a time per socket (the kernel answers EBUSY otherwise).
    let mut socket = lock.lock().await;
    let mut interrupted = 0;
    for &part in parts {
        let mut attempt = 0;
        loop {
            let mut fresh = NsState::default();
            let intr = socket
                .dump(part.request(), |m| {
                    fresh.apply(m, 0);
                })
                .await
                .map_err(|source| Error::Dump {
                    ns: ns.clone(),
                    what: part.what(),
                    source,
                })?;
            if intr && attempt < DUMP_RETRIES {
                interrupted += 1;
                attempt += 1;
                continue;
            }
            match part {
                DumpPart::Links => state.links = fresh.links,
                DumpPart::Addresses => state.addresses = fresh.addresses,
                DumpPart::Routes => state.routes = fresh.routes,
            }
            break;
        }
    }
    Ok(interrupted)
}

/// One link by index (`RTM_GETLINK`) on a namespace's dump socket; `None`
/// if there is no such link.
pub(crate) async fn query_link(
    lock: &DumpLock,
    index: u32,
) -> Result<Option<RouteNetlinkMessage>, NetlinkError> {
    let mut msg = LinkMessage::default();
    msg.header.index = index;
    let answer = lock
        .lock()
        .await
        .get(RouteNetlinkMessage::GetLink(msg), &[libc::ENODEV])
        .await?;
    Ok(answer.filter(|m| matches!(m, RouteNetlinkMessage::NewLink(_))))
}

/// The link `index` of the namespace that has the id `nsid` in the
/// namespace of `lock`'s socket (`RTM_GETLINK` with `IFLA_TARGET_NETNSID`):
/// how a veth's peer is read from the other side without knowing which
/// namespace that is. `None` if there is no such link or id.
pub(crate) async fn query_peer_link(
    lock: &DumpLock,
    nsid: i32,
    index: u32,
) -> Result<Option<LinkMessage>, NetlinkError> {
    use netlink_packet_route::link::LinkAttribute;
    let mut msg = LinkMessage::default();
    msg.header.index = index;
    msg.attributes.push(LinkAttribute::IfNetnsId(nsid));
    let answer = lock
        .lock()
        .await
        .get(
            RouteNetlinkMessage::GetLink(msg),
            &[libc::ENODEV, libc::EINVAL, libc::ENOENT],
        )
        .await?;
    Ok(match answer {
        Some(RouteNetlinkMessage::NewLink(m)) => Some(m),
        _ => None,
    })
}

/// The id the namespace behind `fd` has inside the namespace of `lock`'s
/// socket (`RTM_GETNSID` with `NETNSA_FD`), `None` if none is assigned.
pub(crate) async fn query_nsid(
    lock: &DumpLock,
    fd: std::os::fd::BorrowedFd<'_>,
) -> Result<Option<i32>, NetlinkError> {
    use std::os::fd::AsRawFd;
    let mut msg = NsidMessage::default();
    msg.header.family = AddressFamily::Unspec;
    msg.attributes
        .push(NsidAttribute::Fd(fd.as_raw_fd() as u32));
    // `fd` is borrowed for the whole call: it stays open until the kernel
    // has handled the request (inside the send).
    let answer = lock
        .lock()
        .await
        .get(RouteNetlinkMessage::GetNsId(msg), &[])
        .await?;
    Ok(match answer {
        Some(RouteNetlinkMessage::NewNsId(m)) => m.attributes.iter().find_map(|a| match a {
            NsidAttribute::Id(id) if *id >= 0 => Some(*id),
            _ => None,
        }),
        _ => None,
    })
}

/// `NLMSGERR_ATTR_MSG` from the TLVs after the echoed request (extended ack).
pub(crate) fn ext_ack_message(flags: u16, echoed: &[u8]) -> Option<String> {
    // The echoed request: only its 16-byte header when capped, else all of it.
    let start = if flags & NLM_F_CAPPED != 0 {
        16
    } else {
        let len = u32::from_ne_bytes(echoed.get(0..4)?.try_into().ok()?) as usize;
        (len + 3) & !3
    };
    tlv_message(echoed.get(start..)?)
}

/// `NLMSGERR_ATTR_MSG` from a run of extended-ack TLVs.
fn tlv_message(mut tlvs: &[u8]) -> Option<String> {
    while tlvs.len() >= 4 {
        let len = u16::from_ne_bytes([tlvs[0], tlvs[1]]) as usize;
        let kind = u16::from_ne_bytes([tlvs[2], tlvs[3]]) & 0x3fff;
        if len < 4 || len > tlvs.len() {
            return None;
        }
        if kind == 1 {
            let value = &tlvs[4..len];
            let end = value.iter().position(|&b| b == 0).unwrap_or(value.len());
            return Some(String::from_utf8_lossy(&value[..end]).into_owned());
        }
        tlvs = tlvs.get((len + 3) & !3..).unwrap_or(&[]);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A dump dropped part-way (its datagrams still queued, the kernel still
    /// in the dump) does not break the next one: it is read out first
    /// instead of the kernel answering `EBUSY`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dump_dropped_part_way_does_not_break_the_next() {
        use std::io::Write;
        assert!(
            nix::unistd::geteuid().is_root(),
            "this test needs root (network namespaces)"
        );
        let dir = nsfs::RunDir::default();
        let name = nsfs::NsName::new("nsdb-unit-dump-cancel").unwrap();
        let netns = dir
            .create(&name, nsfs::OpenMode::CreateExclusive)
            .await
            .unwrap();
        // Enough links for a dump of several datagrams.
        let mut ip = std::process::Command::new("ip")
            .args(["-n", name.as_str(), "-batch", "-"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        {
            let mut stdin = ip.stdin.take().unwrap();
            for i in 0..100 {
                writeln!(stdin, "link add dc{i}a type veth peer name dc{i}b").unwrap();
            }
        }
        assert!(ip.wait().unwrap().success());
        let ns = Namespace::Named(name.clone());
        let lock = dump_socket(&ns, &netns).await.unwrap();
        let mut socket = lock.lock().await;
        // A dump whose reader went away after its first datagram (as a
        // dropped `dump` future leaves it): the rest is still queued and the
        // kernel is still in the dump.
        let seq = socket.start(DumpPart::Links.request()).await.unwrap();
        let end = socket
            .recv(seq, |kind, _, _| (kind == NLMSG_DONE).then_some(()))
            .await
            .unwrap();
        assert!(end.is_none(), "the dump fit in one datagram");
        assert!(socket.unfinished.is_some());
        let mut links = 0;
        let intr = socket
            .dump(DumpPart::Links.request(), |_| links += 1)
            .await
            .unwrap();
        assert!(!intr);
        assert_eq!(links, 201);
        drop(socket);
        drop(lock);
        dir.remove(&name).await.unwrap();
    }

    fn tlv(kind: u16, value: &[u8]) -> Vec<u8> {
        let len = 4 + value.len();
        let mut v = (len as u16).to_ne_bytes().to_vec();
        v.extend_from_slice(&kind.to_ne_bytes());
        v.extend_from_slice(value);
        while !v.len().is_multiple_of(4) {
            v.push(0);
        }
        v
    }

    #[test]
    fn ext_ack_capped() {
        let mut echoed = vec![0u8; 16];
        echoed[0..4].copy_from_slice(&40u32.to_ne_bytes());
        echoed.extend(tlv(2, &8u32.to_ne_bytes()));
        echoed.extend(tlv(1, b"mtu less than device minimum\0"));
        assert_eq!(
            ext_ack_message(NLM_F_CAPPED, &echoed).as_deref(),
            Some("mtu less than device minimum")
        );
    }

    #[test]
    fn ext_ack_uncapped_skips_the_whole_request() {
        let mut echoed = vec![0u8; 22];
        echoed[0..4].copy_from_slice(&22u32.to_ne_bytes());
        echoed.extend([0, 0]); // padding to 24
        echoed.extend(tlv(1, b"bad\0"));
        assert_eq!(ext_ack_message(0, &echoed).as_deref(), Some("bad"));
    }

    #[test]
    fn ext_ack_absent_or_garbled() {
        assert_eq!(ext_ack_message(NLM_F_CAPPED, &[0u8; 16]), None);
        assert_eq!(ext_ack_message(NLM_F_CAPPED, &[0u8; 3]), None);
        let mut echoed = vec![0u8; 16];
        echoed.extend([200, 0, 1, 0]);
        assert_eq!(ext_ack_message(NLM_F_CAPPED, &echoed), None);
    }
}
