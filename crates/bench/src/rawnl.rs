//! The raw-socket floor for dumps: a plain netlink socket made inside the
//! namespace, sending one dump request and counting the messages of the
//! answer by walking their headers, without parsing them. Nothing can dump
//! faster through netlink; the dump rows report it beside ours and `ip`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};
use nsfs::NetNs;

use crate::harness::{BResult, err};

const RTM_GETLINK: u16 = 18;
const RTM_GETADDR: u16 = 22;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_DUMP: u16 = 0x300;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;

/// What to dump.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Dump {
    Links,
    Addresses,
}

/// A blocking netlink socket inside a namespace.
#[derive(Clone, Debug)]
pub(crate) struct RawSocket {
    socket: Arc<Socket>,
    seq: Arc<AtomicU32>,
}

impl RawSocket {
    /// Makes the socket inside `ns` (on a namespace thread), with a receive
    /// buffer of `rcvbuf` bytes.
    pub(crate) async fn open(ns: &NetNs, rcvbuf: usize) -> BResult<RawSocket> {
        let socket = ns
            .run(move || -> std::io::Result<Socket> {
                let mut s = Socket::new(NETLINK_ROUTE)?;
                s.bind_auto()?;
                s.set_rx_buf_sz(rcvbuf)?;
                s.connect(&SocketAddr::new(0, 0))?;
                Ok(s)
            })
            .await??;
        Ok(RawSocket {
            socket: Arc::new(socket),
            seq: Arc::new(AtomicU32::new(1)),
        })
    }

    /// Dumps `what` and returns how many messages came back (on the blocking
    /// pool: the socket blocks).
    pub(crate) async fn dump(&self, what: Dump) -> BResult<usize> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || me.dump_blocking(what)).await?
    }

    /// Dumps `what` and keeps the datagrams, for [`parse_all`].
    pub(crate) async fn collect(&self, what: Dump) -> BResult<Vec<Vec<u8>>> {
        let me = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut out = Vec::new();
            me.dump_with(what, &mut |d| out.push(d.to_vec()))?;
            Ok(out)
        })
        .await?
    }

    fn dump_blocking(&self, what: Dump) -> BResult<usize> {
        self.dump_with(what, &mut |_| ())
    }

    fn dump_with(&self, what: Dump, keep: &mut dyn FnMut(&[u8])) -> BResult<usize> {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let (ty, body): (u16, &[u8]) = match what {
            // struct ifinfomsg, all zero (AF_UNSPEC).
            Dump::Links => (RTM_GETLINK, &[0; 16]),
            // struct ifaddrmsg, all zero (AF_UNSPEC: every family, like `ip addr`).
            Dump::Addresses => (RTM_GETADDR, &[0; 8]),
        };
        let mut req = Vec::with_capacity(16 + body.len());
        req.extend_from_slice(&((16 + body.len()) as u32).to_ne_bytes());
        req.extend_from_slice(&ty.to_ne_bytes());
        req.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
        req.extend_from_slice(&seq.to_ne_bytes());
        req.extend_from_slice(&0u32.to_ne_bytes());
        req.extend_from_slice(body);
        self.socket.send(&req, 0)?;
        let mut buf = vec![0u8; 64 << 10];
        let mut count = 0;
        loop {
            let n = self.socket.recv(&mut &mut buf[..], 0)?;
            keep(&buf[..n]);
            let mut off = 0;
            while off + 16 <= n {
                let len = u32::from_ne_bytes(buf[off..off + 4].try_into()?) as usize;
                let ty = u16::from_ne_bytes(buf[off + 4..off + 6].try_into()?);
                let mseq = u32::from_ne_bytes(buf[off + 8..off + 12].try_into()?);
                if len < 16 {
                    return Err(err(format!("raw dump: bad message length {len}")));
                }
                if mseq == seq {
                    match ty {
                        NLMSG_DONE => return Ok(count),
                        NLMSG_ERROR => {
                            let code = i32::from_ne_bytes(buf[off + 16..off + 20].try_into()?);
                            return Err(std::io::Error::from_raw_os_error(-code).into());
                        }
                        _ => count += 1,
                    }
                }
                off += (len + 3) & !3;
            }
        }
    }
}

/// Parses every message of `datagrams` into typed rtnetlink messages (what
/// rtnetlink does with a dump) and returns how many there were: the cost of
/// parsing alone, without sockets or tasks.
pub(crate) fn parse_all(datagrams: &[Vec<u8>]) -> BResult<usize> {
    use netlink_packet_core::{NetlinkMessage, NetlinkPayload};
    use netlink_packet_route::RouteNetlinkMessage;
    let mut count = 0;
    for d in datagrams {
        let mut off = 0;
        while off + 16 <= d.len() {
            let len = u32::from_ne_bytes(d[off..off + 4].try_into()?) as usize;
            if len < 16 || off + len > d.len() {
                return Err(err(format!("raw dump: bad message length {len}")));
            }
            let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&d[off..off + len])
                .map_err(|e| err(format!("parse: {e}")))?;
            if let NetlinkPayload::InnerMessage(m) = msg.payload {
                std::hint::black_box(m);
                count += 1;
            }
            off += (len + 3) & !3;
        }
    }
    Ok(count)
}
