//! Which requests are waiting for the kernel, seen from the transport, so
//! that every request ends with an answer:
//!
//! - when a handle closes, or its transport dies (the relay agent exits, the
//!   socket fails), every request still waiting gets an error reply
//!   (`ECANCELED`, the transport's errno) instead of a stream that silently
//!   ends, which rtnetlink would report as an empty success;
//! - a request without its final answer by its deadline gets `ETIMEDOUT`, and
//!   the late answer is dropped when it comes;
//! - a request that could not be sent gets the send's errno;
//! - dumps wait their turn: the kernel runs one dump per socket at a time
//!   (a second one fails with `EBUSY`), so a dump sent while another is
//!   running is held here and sent once that one has ended.
//!
//! Sans IO: it reads netlink headers out of datagrams, writes error
//! datagrams, and is told the time; the socket feeds it.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

const NLMSG_HDRLEN: usize = 16;
const NLMSG_NOOP: u16 = 1;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
/// The first rtnetlink message type (`RTM_BASE`).
const RTM_BASE: u16 = 16;
const NLM_F_REQUEST: u16 = 0x01;
const NLM_F_MULTI: u16 = 0x02;
const NLM_F_ACK: u16 = 0x04;
/// `NLM_F_ROOT | NLM_F_MATCH`; on a `GET` request either bit asks for a dump.
const NLM_F_DUMP: u16 = 0x300;
/// The error message carries TLVs (`NLMSGERR_ATTR_*`) after the echoed header.
const NLM_F_ACK_TLVS: u16 = 0x200;
/// The error message echoes only the request's header.
const NLM_F_CAPPED: u16 = 0x100;
const NLMSGERR_ATTR_MSG: u16 = 1;

/// Late answers of timed-out requests remembered at most (oldest forgotten).
const EXPIRED_MAX: usize = 1024;

/// What a synthesized error reply says (its extended-ack message).
pub(crate) const TIMEOUT_MESSAGE: &str = "netns: no answer before the request timeout";

#[derive(Clone, Copy, Debug)]
struct Header {
    kind: u16,
    flags: u16,
    seq: u32,
}

impl Header {
    /// An rtnetlink `GET` asking for a dump (`RTM_GETLINK`, `RTM_GETADDR`...:
    /// the kinds whose low two bits are 2).
    fn is_dump(&self) -> bool {
        self.flags & NLM_F_REQUEST != 0
            && self.kind >= RTM_BASE
            && self.kind & 3 == 2
            && self.flags & NLM_F_DUMP != 0
    }
}

/// The headers of the netlink messages in one datagram (stops at the first
/// malformed one), with each message's byte range.
fn headers(
    datagram: &[u8],
) -> impl Iterator<Item = (Header, [u8; NLMSG_HDRLEN], std::ops::Range<usize>)> + '_ {
    let mut at = 0;
    std::iter::from_fn(move || {
        let rest = datagram.get(at..)?;
        if rest.len() < NLMSG_HDRLEN {
            return None;
        }
        let raw: [u8; NLMSG_HDRLEN] = rest[..NLMSG_HDRLEN].try_into().ok()?;
        let len = u32::from_ne_bytes(raw[0..4].try_into().ok()?) as usize;
        if len < NLMSG_HDRLEN || len > rest.len() {
            return None;
        }
        let header = Header {
            kind: u16::from_ne_bytes([raw[4], raw[5]]),
            flags: u16::from_ne_bytes([raw[6], raw[7]]),
            seq: u32::from_ne_bytes(raw[8..12].try_into().ok()?),
        };
        let range = at..at + len;
        at += ((len + 3) & !3).min(rest.len());
        Some((header, raw, range))
    })
}

#[derive(Debug)]
struct Pending {
    /// The request's header, echoed in a synthesized error.
    header: [u8; NLMSG_HDRLEN],
    wants_ack: bool,
    deadline: Option<Instant>,
}

/// An error reply to make for a request.
#[derive(Debug)]
struct Failure {
    seq: u32,
    header: [u8; NLMSG_HDRLEN],
    errno: i32,
    message: String,
}

/// What to do with a datagram the caller wants to send.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Send {
    /// Send it now.
    Now,
    /// It holds a dump and another dump is running on the socket: it was
    /// recorded and is held until that dump has ended (see
    /// [`InFlight::next_held`]).
    Held,
}

/// What to hand on of a received datagram.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Received {
    /// All of it.
    Whole,
    /// Nothing: every message in it answers a request that timed out.
    Nothing,
    /// These bytes: the datagram without its late answers.
    Part(Vec<u8>),
}

/// The requests sent and not yet answered, by sequence number.
#[derive(Debug, Default)]
pub(crate) struct InFlight {
    pending: HashMap<u32, Pending>,
    /// Error replies to hand out, in order.
    failures: VecDeque<Failure>,
    /// Requests that timed out and may still get (late) answers, with
    /// whether they asked for an ack (then only the ack is their last).
    expired: HashMap<u32, bool>,
    expired_order: VecDeque<u32>,
    /// The dump running on the socket (sent, not ended).
    dump: Option<u32>,
    /// Datagrams holding dumps, waiting for `dump` to end.
    held: VecDeque<(u32, Vec<u8>)>,
}

impl InFlight {
    /// Records the requests of a datagram to be sent, with their deadline.
    /// Requests that will get no reply (a `notify()`) are recorded too: an
    /// error synthesized for them lands on the unsolicited channel, which is
    /// harmless. Recording the same datagram again (a send retried after
    /// `Pending`) changes nothing.
    pub(crate) fn sent(&mut self, datagram: &[u8], deadline: Option<Instant>) -> Send {
        let mut dump = None;
        for (h, raw, _) in headers(datagram) {
            if h.flags & NLM_F_REQUEST == 0 {
                continue;
            }
            if h.is_dump() {
                dump = Some(h.seq);
            }
            self.pending.entry(h.seq).or_insert(Pending {
                header: raw,
                wants_ack: h.flags & NLM_F_ACK != 0,
                deadline,
            });
        }
        match dump {
            Some(seq) if self.dump.is_some_and(|running| running != seq) => {
                if !self.held.iter().any(|(s, _)| *s == seq) {
                    self.held.push_back((seq, datagram.to_vec()));
                }
                Send::Held
            }
            Some(seq) => {
                self.dump = Some(seq);
                Send::Now
            }
            None => Send::Now,
        }
    }

    /// Records the requests of a datagram that could not be sent: each is
    /// answered with `errno`.
    pub(crate) fn send_failed(&mut self, datagram: &[u8], errno: i32, message: &str) {
        for (h, raw, _) in headers(datagram) {
            if h.flags & NLM_F_REQUEST == 0 {
                continue;
            }
            self.pending.remove(&h.seq);
            if self.dump == Some(h.seq) {
                self.dump = None;
            }
            self.failures.push_back(Failure {
                seq: h.seq,
                header: raw,
                errno,
                message: message.to_owned(),
            });
        }
    }

    /// The held dump to send next, once no dump is running. Call
    /// [`held_sent`](InFlight::held_sent) once it is sent.
    pub(crate) fn next_held(&self) -> Option<&[u8]> {
        if self.dump.is_some() {
            return None;
        }
        self.held.front().map(|(_, d)| d.as_slice())
    }

    /// The held dump from [`next_held`](InFlight::next_held) was sent: it
    /// runs now.
    pub(crate) fn held_sent(&mut self) {
        if let Some((seq, _)) = self.held.pop_front() {
            self.dump = Some(seq);
        }
    }

    /// Forgets the requests a received datagram completes: `NLMSG_DONE`,
    /// `NLMSG_ERROR` (errors and acks), or a single reply to a request that
    /// asked for no ack. Says what of it to hand on: answers to requests
    /// that timed out are dropped.
    pub(crate) fn received(&mut self, datagram: &[u8]) -> Received {
        let mut late = false;
        let mut keep = Vec::new();
        for (h, _, range) in headers(datagram) {
            if h.seq == 0 || h.kind == NLMSG_NOOP {
                keep.push(range);
                continue;
            }
            let wants_ack = match self.pending.get(&h.seq) {
                Some(p) => p.wants_ack,
                None => self.expired.get(&h.seq).copied().unwrap_or(false),
            };
            let last = match h.kind {
                NLMSG_DONE | NLMSG_ERROR => true,
                _ => h.flags & NLM_F_MULTI == 0 && !wants_ack,
            };
            if last && self.dump == Some(h.seq) {
                self.dump = None;
            }
            if self.expired.contains_key(&h.seq) {
                late = true;
                if last {
                    self.expired.remove(&h.seq);
                }
                continue;
            }
            keep.push(range);
            if last {
                self.pending.remove(&h.seq);
            }
        }
        if !late {
            return Received::Whole;
        }
        if keep.is_empty() {
            return Received::Nothing;
        }
        let mut part = Vec::with_capacity(datagram.len());
        for range in keep {
            part.extend_from_slice(&datagram[range.clone()]);
            part.resize((part.len() + 3) & !3, 0);
        }
        Received::Part(part)
    }

    /// Answers the requests whose deadline is past with `ETIMEDOUT` (their
    /// late answers will be dropped) and returns the next deadline.
    pub(crate) fn expire(&mut self, now: Instant) -> Option<Instant> {
        let due: Vec<u32> = self
            .pending
            .iter()
            .filter(|(_, p)| p.deadline.is_some_and(|d| d <= now))
            .map(|(seq, _)| *seq)
            .collect();
        for seq in due {
            let Some(p) = self.pending.remove(&seq) else {
                continue;
            };
            if let Some(i) = self.held.iter().position(|(s, _)| *s == seq) {
                // Never sent: no answer will come.
                self.held.remove(i);
            } else {
                // A running dump stays running until its late end comes.
                self.expired.insert(seq, p.wants_ack);
                self.expired_order.push_back(seq);
                if self.expired_order.len() > EXPIRED_MAX
                    && let Some(old) = self.expired_order.pop_front()
                {
                    self.expired.remove(&old);
                }
            }
            self.failures.push_back(Failure {
                seq,
                header: p.header,
                errno: libc::ETIMEDOUT,
                message: TIMEOUT_MESSAGE.to_owned(),
            });
        }
        self.pending.values().filter_map(|p| p.deadline).min()
    }

    /// Answers every request still waiting (sent or held) with `errno`:
    /// the handle closes, or the transport died.
    pub(crate) fn fail_all(&mut self, errno: i32, message: &str) {
        self.held.clear();
        self.dump = None;
        let mut all: Vec<(u32, Pending)> = self.pending.drain().collect();
        all.sort_by_key(|(seq, _)| *seq);
        for (seq, p) in all {
            self.failures.push_back(Failure {
                seq,
                header: p.header,
                errno,
                message: message.to_owned(),
            });
        }
    }

    /// How many requests are waiting.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.pending.len()
    }

    /// The next error reply to hand out: an `NLMSG_ERROR` datagram answering
    /// one request with `-errno` and an extended-ack message saying why.
    pub(crate) fn next_failure(&mut self) -> Option<Vec<u8>> {
        let f = self.failures.pop_front()?;
        Some(error_datagram(f.seq, f.header, f.errno, &f.message))
    }
}

/// An `NLMSG_ERROR` for the request with header `request`: the echoed
/// header only (as with `NETLINK_CAP_ACK`), then `NLMSGERR_ATTR_MSG`.
fn error_datagram(seq: u32, request: [u8; NLMSG_HDRLEN], errno: i32, message: &str) -> Vec<u8> {
    let attr_len = 4 + message.len() + 1;
    let len = NLMSG_HDRLEN + 4 + NLMSG_HDRLEN + ((attr_len + 3) & !3);
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(&(len as u32).to_ne_bytes());
    out.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
    out.extend_from_slice(&(NLM_F_CAPPED | NLM_F_ACK_TLVS).to_ne_bytes());
    out.extend_from_slice(&seq.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes());
    out.extend_from_slice(&(-errno).to_ne_bytes());
    let mut echoed = request;
    echoed[0..4].copy_from_slice(&(NLMSG_HDRLEN as u32).to_ne_bytes());
    out.extend_from_slice(&echoed);
    out.extend_from_slice(&(attr_len as u16).to_ne_bytes());
    out.extend_from_slice(&NLMSGERR_ATTR_MSG.to_ne_bytes());
    out.extend_from_slice(message.as_bytes());
    out.push(0);
    out.resize(len, 0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
    const GETADDR: u16 = 22;

    fn seq_of(datagram: &[u8]) -> u32 {
        u32::from_ne_bytes(datagram[8..12].try_into().unwrap())
    }

    fn parse(
        datagram: &[u8],
    ) -> netlink_packet_core::NetlinkMessage<netlink_packet_route::RouteNetlinkMessage> {
        netlink_packet_core::NetlinkMessage::deserialize(datagram).unwrap()
    }

    #[test]
    fn requests_are_tracked_until_answered() {
        let mut f = InFlight::default();
        // A batch of two requests in one datagram.
        let mut batch = msg(NEWLINK, NLM_F_REQUEST | NLM_F_ACK, 1, 20);
        batch.extend(msg(GETLINK, NLM_F_REQUEST, 2, 16));
        batch.extend(msg(GETLINK, NLM_F_REQUEST | NLM_F_DUMP, 3, 16));
        assert_eq!(f.sent(&batch, None), Send::Now);
        assert_eq!(f.len(), 3);
        // The single reply to 2 completes it.
        assert_eq!(f.received(&msg(NEWLINK, 0, 2, 100)), Received::Whole);
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
        f.fail_all(libc::ECANCELED, "closed");
        assert!(f.next_failure().is_none());
    }

    #[test]
    fn failed_requests_get_an_error_that_parses_with_its_reason() {
        use netlink_packet_core::NetlinkPayload;

        let mut f = InFlight::default();
        f.sent(&msg(GETLINK, NLM_F_REQUEST, 41, 16), None);
        f.fail_all(libc::ECONNRESET, "transport died");
        let err = f.next_failure().unwrap();
        let parsed = parse(&err);
        assert_eq!(parsed.header.sequence_number, 41);
        match parsed.payload {
            NetlinkPayload::Error(e) => {
                assert_eq!(e.code.map(|c| c.get()), Some(-libc::ECONNRESET));
                assert_eq!(
                    crate::error::ext_ack_message(&e).as_deref(),
                    Some("transport died")
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(f.next_failure().is_none());
    }

    #[test]
    fn a_second_dump_is_held_until_the_first_ends() {
        let mut f = InFlight::default();
        let first = msg(GETLINK, NLM_F_REQUEST | NLM_F_DUMP, 1, 16);
        let second = msg(GETADDR, NLM_F_REQUEST | NLM_F_DUMP, 2, 16);
        let get = msg(GETLINK, NLM_F_REQUEST, 3, 16);
        // NEWLINK with NLM_F_REPLACE|NLM_F_EXCL (0x300) is no dump.
        let new = msg(NEWLINK, NLM_F_REQUEST | NLM_F_ACK | 0x300, 4, 16);
        assert_eq!(f.sent(&first, None), Send::Now);
        // Retried after Pending: still the running one.
        assert_eq!(f.sent(&first, None), Send::Now);
        assert_eq!(f.sent(&second, None), Send::Held);
        assert_eq!(f.sent(&get, None), Send::Now);
        assert_eq!(f.sent(&new, None), Send::Now);
        assert_eq!(f.next_held(), None);
        f.received(&msg(NEWLINK, NLM_F_MULTI, 1, 100));
        assert_eq!(f.next_held(), None);
        f.received(&msg(NLMSG_DONE, NLM_F_MULTI, 1, 4));
        assert_eq!(f.next_held().map(seq_of), Some(2));
        f.held_sent();
        assert_eq!(f.next_held(), None);
        // A dump that fails at once (an error instead of DONE) ends too.
        assert_eq!(
            f.sent(&msg(GETLINK, NLM_F_REQUEST | NLM_F_DUMP, 5, 16), None),
            Send::Held
        );
        f.received(&msg(NLMSG_ERROR, 0, 2, 20));
        assert_eq!(f.next_held().map(seq_of), Some(5));
    }

    #[test]
    fn timed_out_requests_get_etimedout_and_their_late_answers_are_dropped() {
        let mut f = InFlight::default();
        let t0 = Instant::now();
        let soon = t0 + Duration::from_secs(1);
        let later = t0 + Duration::from_secs(5);
        f.sent(&msg(GETLINK, NLM_F_REQUEST, 1, 16), Some(soon));
        f.sent(&msg(NEWLINK, NLM_F_REQUEST | NLM_F_ACK, 4, 16), Some(soon));
        f.sent(&msg(GETLINK, NLM_F_REQUEST | NLM_F_DUMP, 2, 16), Some(soon));
        f.sent(
            &msg(GETADDR, NLM_F_REQUEST | NLM_F_DUMP, 3, 16),
            Some(later),
        );
        assert_eq!(f.expire(t0), Some(soon));
        assert!(f.next_failure().is_none());
        assert_eq!(f.expire(soon), Some(later));
        let mut seqs: Vec<u32> = std::iter::from_fn(|| f.next_failure())
            .map(|e| seq_of(&e))
            .collect();
        seqs.sort();
        assert_eq!(seqs, [1, 2, 4]);
        // The late reply to 1 is dropped, so are 4's reply and its ack; a datagram mixing late and current
        // answers keeps the current ones.
        assert_eq!(f.received(&msg(NEWLINK, 0, 1, 40)), Received::Nothing);
        assert_eq!(f.received(&msg(NEWLINK, 0, 4, 40)), Received::Nothing);
        assert_eq!(f.received(&msg(NLMSG_ERROR, 0, 4, 20)), Received::Nothing);
        assert!(!f.expired.contains_key(&4));
        let mut mixed = msg(NEWLINK, NLM_F_MULTI, 2, 40);
        mixed.extend(msg(NLMSG_NOOP, 0, 0, 0));
        match f.received(&mixed) {
            Received::Part(p) => assert_eq!(p, msg(NLMSG_NOOP, 0, 0, 0)),
            other => panic!("{other:?}"),
        }
        // The timed-out dump still runs in the kernel: 3 waits for its end.
        assert_eq!(f.next_held(), None);
        assert_eq!(
            f.received(&msg(NLMSG_DONE, NLM_F_MULTI, 2, 4)),
            Received::Nothing
        );
        assert_eq!(f.next_held().map(seq_of), Some(3));
        f.held_sent();
        assert_eq!(
            f.received(&msg(NLMSG_DONE, NLM_F_MULTI, 3, 4)),
            Received::Whole
        );
        assert_eq!(f.len(), 0);
    }

    #[test]
    fn a_failed_send_is_answered_with_its_errno() {
        let mut f = InFlight::default();
        let dump = msg(GETLINK, NLM_F_REQUEST | NLM_F_DUMP, 9, 16);
        f.sent(&dump, None);
        f.send_failed(&dump, libc::EMSGSIZE, "too big");
        assert_eq!(f.len(), 0);
        let err = f.next_failure().unwrap();
        assert_eq!(seq_of(&err), 9);
        // No dump runs any more.
        assert_eq!(
            f.sent(&msg(GETLINK, NLM_F_REQUEST | NLM_F_DUMP, 10, 16), None),
            Send::Now
        );
    }

    #[test]
    fn garbage_is_ignored() {
        let mut f = InFlight::default();
        f.sent(&[1, 2, 3], None);
        f.sent(&[0xff; 40], None);
        f.received(&[0; 7]);
        assert_eq!(f.len(), 0);
    }
}
