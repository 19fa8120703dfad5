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
const GROUPS: &[u32] = &[
    1,  // RTNLGRP_LINK
    5,  // RTNLGRP_IPV4_IFADDR
    7,  // RTNLGRP_IPV4_ROUTE
    9,  // RTNLGRP_IPV6_IFADDR
    11, // RTNLGRP_IPV6_ROUTE
    28, // RTNLGRP_NSID
];

/// Received messages (events, or the synthetic overrun).
pub(crate) type Messages = netns::Messages;

/// A new netlink connection inside `netns`, through the facade
/// (`netns::connection`: a socket made on a namespace thread, strict
/// checking and extended acks on, whole datagrams, `ENOBUFS` passed through).
async fn connect(
    ns: &Namespace,
    netns: &nsfs::NetNs,
) -> Result<(netns::Connection, rtnetlink::Handle, Messages), Error> {
    netns::connection(netns)
        .await
        .map_err(|source| Error::Connect {
            ns: ns.clone(),
            source: Box::new(source),
        })
}

/// A request connection: capped acks, acks and `Done` forwarded (to see
/// `NLM_F_DUMP_INTR` on it). Not for rtnetlink's verbs.
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

/// An event connection: joined to the multicast groups, with the given
/// receive buffer size (bytes) if any (else the facade's, 4 MiB).
pub(crate) async fn event_connection(
    ns: &Namespace,
    netns: &nsfs::NetNs,
    receive_buffer: Option<usize>,
) -> Result<(Messages, tokio::task::JoinHandle<()>), Error> {
    let (mut conn, _handle, messages) = connect(ns, netns).await?;
    let io = |e: std::io::Error| Error::Socket {
        ns: ns.clone(),
        source: e,
    };
    let socket = conn.socket_mut().socket_mut();
    // Bind (which also gives the socket its port: an unbound socket has port
    // 0, the kernel's, and gets no multicast) with the groups' mask.
    let mask = GROUPS.iter().fold(0u32, |m, g| m | (1 << (g - 1)));
    socket
        .bind(&netlink_proto::sys::SocketAddr::new(0, mask))
        .map_err(io)?;
    if let Some(size) = receive_buffer {
        socket.set_rx_buf_sz(size).map_err(io)?;
    }
    let task = tokio::spawn(conn);
    Ok((messages, task))
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

/// A dump: every entry goes to `entry` as it arrives (no copy of the whole
/// dump is kept); returns whether the kernel flagged it inconsistent.
pub(crate) async fn dump(
    handle: &mut rtnetlink::Handle,
    msg: RouteNetlinkMessage,
    mut entry: impl FnMut(&RouteNetlinkMessage),
) -> Result<bool, NetlinkError> {
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    let mut req = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
    req.finalize();
    let mut replies = handle.request(req).map_err(|_| NetlinkError::closed())?;
    let mut intr = false;
    let mut done = false;
    while let Some(reply) = replies.next().await {
        intr |= reply.header.flags & NLM_F_DUMP_INTR != 0;
        match &reply.payload {
            NetlinkPayload::InnerMessage(m) => entry(m),
            NetlinkPayload::Done(_) => done = true,
            NetlinkPayload::Error(e) => {
                if let Some(code) = e.code {
                    return Err(NetlinkError {
                        errno: -code.get(),
                        message: ext_ack_message(reply.header.flags, &e.header),
                    });
                }
            }
            _ => {}
        }
    }
    if !done {
        return Err(NetlinkError::closed());
    }
    Ok(intr)
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

/// Serializes the dumps made on one request socket.
pub(crate) type DumpLock = std::sync::Arc<tokio::sync::Mutex<()>>;

/// How many times an interrupted dump is retried before giving up.
const DUMP_RETRIES: usize = 10;

/// Dumps `parts` into `state`, retrying a part the kernel flagged
/// `NLM_F_DUMP_INTR`. Returns how many dumps were interrupted.
pub(crate) async fn dump_into(
    ns: &Namespace,
    handle: &mut rtnetlink::Handle,
    lock: &DumpLock,
    parts: &[DumpPart],
    state: &mut NsState,
) -> Result<usize, Error> {
    // One dump at a time per socket (the kernel answers EBUSY otherwise).
    let _guard = lock.lock().await;
    let mut interrupted = 0;
    for &part in parts {
        let mut attempt = 0;
        loop {
            let mut fresh = NsState::default();
            let intr = dump(handle, part.request(), |m| {
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

/// The id the namespace behind `fd` has inside the namespace of `handle`
/// (`RTM_GETNSID` with `NETNSA_FD`), `None` if none is assigned.
pub(crate) async fn nsid_of(
    handle: &mut rtnetlink::Handle,
    fd: std::os::fd::BorrowedFd<'_>,
) -> Result<Option<i32>, NetlinkError> {
    use std::os::fd::AsRawFd;
    let mut msg = NsidMessage::default();
    msg.header.family = AddressFamily::Unspec;
    msg.attributes
        .push(NsidAttribute::Fd(fd.as_raw_fd() as u32));
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST;
    let mut req = NetlinkMessage::new(
        header,
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::GetNsId(msg)),
    );
    req.finalize();
    let mut replies = handle.request(req).map_err(|_| NetlinkError::closed())?;
    while let Some(reply) = replies.next().await {
        match reply.payload {
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewNsId(m)) => {
                for a in m.attributes {
                    if let NsidAttribute::Id(id) = a {
                        return Ok((id >= 0).then_some(id));
                    }
                }
            }
            NetlinkPayload::Error(e) => {
                if let Some(code) = e.code {
                    return Err(NetlinkError {
                        errno: -code.get(),
                        message: ext_ack_message(reply.header.flags, &e.header),
                    });
                }
            }
            _ => {}
        }
    }
    Ok(None)
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
    let mut tlvs = echoed.get(start..)?;
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

    fn tlv(kind: u16, value: &[u8]) -> Vec<u8> {
        let len = 4 + value.len();
        let mut v = (len as u16).to_ne_bytes().to_vec();
        v.extend_from_slice(&kind.to_ne_bytes());
        v.extend_from_slice(value);
        while v.len() % 4 != 0 {
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
