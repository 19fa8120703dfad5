//! Which requests are waiting for the kernel, seen from the transport: so that
//! when a handle closes, every request still in flight gets an error reply
//! (`ECANCELED`) instead of a stream that silently ends.
//!
//! Sans IO: it only reads netlink headers out of datagrams and writes error
//! datagrams; the socket feeds it.

use std::collections::HashMap;

const NLMSG_HDRLEN: usize = 16;
const NLMSG_NOOP: u16 = 1;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x01;
const NLM_F_MULTI: u16 = 0x02;
const NLM_F_ACK: u16 = 0x04;

#[derive(Clone, Copy, Debug)]
struct Header {
    kind: u16,
    flags: u16,
    seq: u32,
}

/// The headers of the netlink messages in one datagram (stops at the first
/// malformed one).
fn headers(mut datagram: &[u8]) -> impl Iterator<Item = (Header, [u8; NLMSG_HDRLEN])> + '_ {
    std::iter::from_fn(move || {
        if datagram.len() < NLMSG_HDRLEN {
            return None;
        }
        let raw: [u8; NLMSG_HDRLEN] = datagram[..NLMSG_HDRLEN].try_into().ok()?;
        let len = u32::from_ne_bytes(raw[0..4].try_into().ok()?) as usize;
        if len < NLMSG_HDRLEN || len > datagram.len() {
            return None;
        }
        let header = Header {
            kind: u16::from_ne_bytes([raw[4], raw[5]]),
            flags: u16::from_ne_bytes([raw[6], raw[7]]),
            seq: u32::from_ne_bytes(raw[8..12].try_into().ok()?),
        };
        datagram = &datagram[((len + 3) & !3).min(datagram.len())..];
        Some((header, raw))
    })
}

#[derive(Debug)]
struct Pending {
    /// The request's header, echoed in a synthesized error.
    header: [u8; NLMSG_HDRLEN],
    wants_ack: bool,
}

/// The requests sent and not yet answered, by sequence number.
#[derive(Debug, Default)]
pub(crate) struct InFlight {
    pending: HashMap<u32, Pending>,
}

impl InFlight {
    /// Records the requests of a datagram that was sent. Requests that will
    /// get no reply (a `notify()`) are recorded too: a synthesized error for
    /// them lands on the unsolicited channel, which is harmless.
    pub(crate) fn sent(&mut self, datagram: &[u8]) {
        for (h, raw) in headers(datagram) {
            if h.flags & NLM_F_REQUEST != 0 {
                self.pending.insert(
                    h.seq,
                    Pending {
                        header: raw,
                        wants_ack: h.flags & NLM_F_ACK != 0,
                    },
                );
            }
        }
    }

    /// Forgets the requests a received datagram completes: `NLMSG_DONE`,
    /// `NLMSG_ERROR` (errors and acks), or a single reply to a request that
    /// asked for no ack.
    pub(crate) fn received(&mut self, datagram: &[u8]) {
        for (h, _) in headers(datagram) {
            if h.seq == 0 || h.kind == NLMSG_NOOP {
                continue;
            }
            let done = match h.kind {
                NLMSG_DONE | NLMSG_ERROR => true,
                _ => {
                    h.flags & NLM_F_MULTI == 0
                        && self.pending.get(&h.seq).is_some_and(|p| !p.wants_ack)
                }
            };
            if done {
                self.pending.remove(&h.seq);
            }
        }
    }

    /// How many requests are waiting.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.pending.len()
    }

    /// An `NLMSG_ERROR` datagram answering one waiting request with `-errno`,
    /// or `None` when none is left.
    pub(crate) fn cancel_next(&mut self, errno: i32) -> Option<Vec<u8>> {
        let seq = *self.pending.keys().next()?;
        let pending = self.pending.remove(&seq)?;
        let len = NLMSG_HDRLEN + 4 + NLMSG_HDRLEN;
        let mut out = Vec::with_capacity(len);
        out.extend_from_slice(&(len as u32).to_ne_bytes());
        out.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
        out.extend_from_slice(&0u16.to_ne_bytes());
        out.extend_from_slice(&seq.to_ne_bytes());
        out.extend_from_slice(&0u32.to_ne_bytes());
        out.extend_from_slice(&(-errno).to_ne_bytes());
        // The echoed request header says "this header only" (as with
        // NETLINK_CAP_ACK).
        let mut echoed = pending.header;
        echoed[0..4].copy_from_slice(&(NLMSG_HDRLEN as u32).to_ne_bytes());
        out.extend_from_slice(&echoed);
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(kind: u16, flags: u16, seq: u32, payload: usize) -> Vec<u8> {
        let len = NLMSG_HDRLEN + payload;
        let mut v = Vec::new();
        v.extend_from_slice(&(len as u32).to_ne_bytes());
        v.extend_from_slice(&kind.to_ne_bytes());
        v.extend_from_slice(&flags.to_ne_bytes());
        v.extend_from_slice(&seq.to_ne_bytes());
        v.extend_from_slice(&0u32.to_ne_bytes());
        v.resize(len, 0);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v
    }

    const GETLINK: u16 = 18;
    const NEWLINK: u16 = 16;

    #[test]
    fn requests_are_tracked_until_answered() {
        let mut f = InFlight::default();
        // A batch of two requests in one datagram.
        let mut batch = msg(NEWLINK, NLM_F_REQUEST | NLM_F_ACK, 1, 20);
        batch.extend(msg(GETLINK, NLM_F_REQUEST, 2, 16));
        batch.extend(msg(GETLINK, NLM_F_REQUEST | 0x300, 3, 16)); // dump
        f.sent(&batch);
        assert_eq!(f.len(), 3);
        // The single reply to 2 completes it.
        f.received(&msg(NEWLINK, 0, 2, 100));
        assert_eq!(f.len(), 2);
        // Parts of the dump do not; DONE does.
        let mut part = msg(NEWLINK, NLM_F_MULTI, 3, 100);
        part.extend(msg(NEWLINK, NLM_F_MULTI, 3, 100));
        f.received(&part);
        assert_eq!(f.len(), 2);
        f.received(&msg(NLMSG_DONE, NLM_F_MULTI, 3, 4));
        assert_eq!(f.len(), 1);
        // A reply to a request that wants an ack does not complete it; the ack does.
        f.received(&msg(NEWLINK, 0, 1, 100));
        assert_eq!(f.len(), 1);
        f.received(&msg(NLMSG_ERROR, 0, 1, 20));
        assert_eq!(f.len(), 0);
        assert!(f.cancel_next(libc::ECANCELED).is_none());
    }

    #[test]
    fn cancelled_requests_get_an_error_that_parses() {
        use netlink_packet_core::{NetlinkMessage, NetlinkPayload};
        use netlink_packet_route::RouteNetlinkMessage;

        let mut f = InFlight::default();
        f.sent(&msg(GETLINK, NLM_F_REQUEST, 41, 16));
        let err = f.cancel_next(libc::ECANCELED).unwrap();
        let parsed = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&err).unwrap();
        assert_eq!(parsed.header.sequence_number, 41);
        match parsed.payload {
            NetlinkPayload::Error(e) => assert_eq!(e.code.map(|c| c.get()), Some(-libc::ECANCELED)),
            other => panic!("{other:?}"),
        }
        assert!(f.cancel_next(libc::ECANCELED).is_none());
    }

    #[test]
    fn garbage_is_ignored() {
        let mut f = InFlight::default();
        f.sent(&[1, 2, 3]);
        f.sent(&[0xff; 40]);
        f.received(&[0; 7]);
        assert_eq!(f.len(), 0);
    }
}
