//! Netlink helpers shared by the relay (in the agent) and the toolkit's
//! other netlink readers: about netlink datagrams, not the agent protocol.

/// The answer to put in place of a netlink datagram too large to read whole
/// (of which `head`, at least its first 16 bytes, was read): an
/// `NLMSG_ERROR` with `EMSGSIZE` for the request its first message answers
/// (same sequence number and port), written into `out` (cleared first). The
/// request then fails with a clear error, and its dump ends, where relaying
/// a truncated datagram would corrupt it and failing the read would end the
/// whole connection. A `head` shorter than a netlink header gives an answer
/// to sequence 0.
///
/// # Examples
///
/// ```
/// // The header of a multi-part answer to request 7 of port 42.
/// let mut head = vec![0u8; 16];
/// head[0..4].copy_from_slice(&300_000u32.to_ne_bytes());
/// head[4..6].copy_from_slice(&16u16.to_ne_bytes()); // RTM_NEWLINK
/// head[8..12].copy_from_slice(&7u32.to_ne_bytes());
/// head[12..16].copy_from_slice(&42u32.to_ne_bytes());
/// let mut answer = Vec::new();
/// nsproxy::netlink::truncated_answer(&head, &mut answer);
/// assert_eq!(answer.len(), 36);
/// assert_eq!(u16::from_ne_bytes([answer[4], answer[5]]), 2); // NLMSG_ERROR
/// assert_eq!(&answer[8..16], &head[8..16]);
/// assert_eq!(i32::from_ne_bytes(answer[16..20].try_into()?), -libc::EMSGSIZE);
/// # Ok::<(), std::array::TryFromSliceError>(())
/// ```
pub fn truncated_answer(head: &[u8], out: &mut Vec<u8>) {
    const NLMSG_HDRLEN: usize = 16;
    const NLMSG_ERROR: u16 = 2;
    let mut original = [0u8; NLMSG_HDRLEN];
    let n = head.len().min(NLMSG_HDRLEN);
    original[..n].copy_from_slice(&head[..n]);
    let len = (NLMSG_HDRLEN + 4 + NLMSG_HDRLEN) as u32;
    out.clear();
    out.extend_from_slice(&len.to_ne_bytes());
    out.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
    out.extend_from_slice(&0u16.to_ne_bytes());
    out.extend_from_slice(&original[8..16]); // sequence number and port
    out.extend_from_slice(&(-libc::EMSGSIZE).to_ne_bytes());
    out.extend_from_slice(&original);
}
