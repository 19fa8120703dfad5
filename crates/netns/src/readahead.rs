//! Read-ahead for large dumps on a direct netlink socket.
//!
//! The kernel builds a dump lazily, one datagram at a time, *inside* the
//! reader's `recvmsg`: after each datagram is read it fills the next one
//! (`netlink_recvmsg` calls `netlink_dump` while the queue is under half the
//! receive buffer). On a socket read by one task, the kernel's work and the
//! parsing of what it built take turns on one core: for 2,000 links that is
//! ~8.4 ms of kernel time plus ~5 ms of netlink-packet-route parsing plus
//! netlink-proto's handling, in sequence.
//!
//! When a direct socket with read-ahead reads a datagram that is part of a
//! large dump still running (multi-part, no `NLMSG_DONE` or error in it, at
//! least [`START_MIN`] bytes), it hands the rest of the dump to a thread of
//! tokio's blocking pool. That thread receives datagram after datagram (so
//! the kernel builds them on its core) into a queue the task takes from, while
//! the task parses. It stops at the datagram that ends the dump, when the
//! socket is empty, when [`HIGH_WATER`] bytes wait in the queue (memory stays
//! bounded; the task reads inline again and may restart it), or when the
//! socket is dropped. Small replies (a `get link`, an ack, a short dump)
//! never meet a thread: they are read inline as before, so a round trip pays
//! no hop.
//!
//! Order is kept: while the thread is active, the task reads only from the
//! queue; the thread marks itself inactive after its last datagram is queued.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Waker};

use netlink_sys::{Socket, SocketAddr};

/// A datagram at least this large, of a dump still running, starts the
/// read-ahead thread: smaller dumps end before a hand-off would pay.
pub(crate) const START_MIN: usize = 8 * 1024;

/// The read-ahead thread stops when this many bytes wait in its queue.
pub(crate) const HIGH_WATER: usize = 1 << 20;

/// The read-ahead thread's receive buffer: a dump datagram is at most
/// max(32 KiB, the largest single message), and no rtnetlink message comes
/// near this.
const RECV_BUF: usize = 256 * 1024;

/// Spare buffers kept for the thread to receive into.
const SPARES: usize = 8;

const NLMSG_HDRLEN: usize = 16;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_MULTI: u16 = 2;

type Datagram = io::Result<(Vec<u8>, SocketAddr)>;

/// The read-ahead state of one direct socket.
#[derive(Debug, Default)]
pub(crate) struct ReadAhead {
    state: Mutex<State>,
    /// The socket was dropped: a running thread stops at its next datagram.
    closed: AtomicBool,
    /// Threads started so far (for tests and tracing).
    started: AtomicUsize,
}

#[derive(Debug, Default)]
struct State {
    queue: VecDeque<Datagram>,
    queued_bytes: usize,
    /// A thread is reading the socket: the task must not.
    active: bool,
    waker: Option<Waker>,
    spares: Vec<Vec<u8>>,
}

/// One run of the read-ahead thread: its duplicate of the socket, and, when
/// dropped (after the run, or unrun), reading handed back to the task.
struct Session {
    ahead: Arc<ReadAhead>,
    reader: Socket,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.ahead.finish();
    }
}

/// What the task does next.
pub(crate) enum Next {
    /// A datagram the thread read (or the error it met).
    Ready(Datagram),
    /// The thread is reading; the task is woken when it queues something.
    Pending,
    /// No thread is reading: read the socket inline.
    Inline,
}

impl ReadAhead {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes the next queued datagram, or says whether to wait or read
    /// inline.
    pub(crate) fn poll_next(&self, cx: &mut Context<'_>) -> Next {
        let mut state = self.state();
        if let Some(datagram) = state.queue.pop_front() {
            if let Ok((data, _)) = &datagram {
                state.queued_bytes -= data.len();
            }
            return Next::Ready(datagram);
        }
        if state.active {
            match &mut state.waker {
                Some(w) if w.will_wake(cx.waker()) => {}
                slot => *slot = Some(cx.waker().clone()),
            }
            return Next::Pending;
        }
        Next::Inline
    }

    /// A buffer to receive a datagram into.
    pub(crate) fn spare(&self) -> Vec<u8> {
        self.state()
            .spares
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(64 * 1024))
    }

    /// Gives a buffer back for the thread to receive into.
    pub(crate) fn recycle(&self, mut buf: Vec<u8>) {
        let mut state = self.state();
        if state.spares.len() < SPARES {
            buf.clear();
            state.spares.push(buf);
        }
    }

    /// Whether the task, having read `datagram` inline, should hand the rest
    /// of the dump to a thread.
    pub(crate) fn should_start(datagram: &[u8]) -> bool {
        datagram.len() >= START_MIN && continues_dump(datagram)
    }

    /// Starts a thread reading `socket` (through a duplicate of its fd, so a
    /// drop of the socket cannot leave it reading a reused fd number). Outside
    /// a tokio runtime, or if the fd cannot be duplicated, nothing starts and
    /// the task goes on reading inline.
    pub(crate) fn start(self: &Arc<Self>, socket: &Socket) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        // A CLOEXEC duplicate, owned from the start.
        let Ok(dup) = socket.as_fd().try_clone_to_owned() else {
            return;
        };
        let reader = crate::sys::netlink_socket(dup);
        self.state().active = true;
        let n = self.started.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::trace!(
            fd = socket.as_raw_fd(),
            runs = n,
            "netlink read-ahead started"
        );
        let session = Session {
            ahead: Arc::clone(self),
            reader,
        };
        // The blocking pool keeps idle threads for a while: a dump after a
        // dump reuses one. Dropping the JoinHandle detaches the thread, which
        // ends on its own (end of dump, empty socket, high water or close).
        // If the runtime is shutting down the closure is dropped unrun, and
        // the session's drop hands reading back to the task all the same.
        drop(runtime.spawn_blocking(move || session.ahead.run(&session.reader)));
    }

    /// Reading goes back to the task: wakes it if it waits.
    fn finish(&self) {
        let waker = {
            let mut state = self.state();
            state.active = false;
            state.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// The thread: receives datagrams into the queue until the dump ends,
    /// the socket is empty, the queue is full or the socket is dropped.
    fn run(&self, reader: &Socket) {
        // One read per datagram, into a buffer larger than any datagram a
        // dump makes: a size peek first (as the inline path does) would be a
        // second recvmsg, and each recvmsg makes the kernel build one more
        // dump datagram, so the thread would build two for each one it hands
        // over and the task would wait for datagrams already built.
        let mut big: Vec<u8> = Vec::with_capacity(RECV_BUF);
        loop {
            if self.closed.load(Ordering::Acquire) {
                break;
            }
            big.clear();
            match reader.recv_from(&mut big, libc::MSG_DONTWAIT | libc::MSG_TRUNC) {
                Ok((size, addr)) => {
                    let mut data = self.spare();
                    if size > big.len() {
                        // Larger than any dump datagram: answer its request
                        // with EMSGSIZE rather than hand over part of it.
                        nsproxy::netlink::truncated_answer(&big, &mut data);
                    } else {
                        data.extend_from_slice(&big);
                    }
                    let last = !continues_dump(&data);
                    if self.push(Ok((data, addr))) || last {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    self.push(Err(e));
                    break;
                }
            }
        }
    }

    /// Queues a datagram and wakes the task; true when the queue is full.
    fn push(&self, datagram: Datagram) -> bool {
        let (waker, full) = {
            let mut state = self.state();
            if let Ok((data, _)) = &datagram {
                state.queued_bytes += data.len();
            }
            state.queue.push_back(datagram);
            (state.waker.take(), state.queued_bytes >= HIGH_WATER)
        };
        if let Some(w) = waker {
            w.wake();
        }
        full
    }

    /// The socket is being dropped.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
    }
}

/// Whether `datagram` is part of a dump that goes on after it: it holds a
/// multi-part message and neither `NLMSG_DONE` nor an error (which end a
/// dump). A malformed datagram does not continue anything.
pub(crate) fn continues_dump(datagram: &[u8]) -> bool {
    let mut multi = false;
    let mut rest = datagram;
    while rest.len() >= NLMSG_HDRLEN {
        let len = u32::from_ne_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let kind = u16::from_ne_bytes([rest[4], rest[5]]);
        let flags = u16::from_ne_bytes([rest[6], rest[7]]);
        if len < NLMSG_HDRLEN || len > rest.len() {
            return false;
        }
        if kind == NLMSG_DONE || kind == NLMSG_ERROR {
            return false;
        }
        multi |= flags & NLM_F_MULTI != 0;
        // NLMSG_ALIGN: messages start on 4-byte boundaries.
        let aligned = (len + 3) & !3;
        rest = rest.get(aligned..).unwrap_or(&[]);
    }
    multi
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(kind: u16, flags: u16, payload: usize) -> Vec<u8> {
        let len = NLMSG_HDRLEN + payload;
        let mut m = Vec::with_capacity(len);
        m.extend_from_slice(&(len as u32).to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(&flags.to_ne_bytes());
        m.extend_from_slice(&[0; 8]);
        m.resize(len, 0);
        m
    }

    const RTM_NEWLINK: u16 = 16;

    #[test]
    fn a_multi_part_datagram_without_done_continues_a_dump() {
        let mut d = msg(RTM_NEWLINK, NLM_F_MULTI, 1000);
        d.extend(msg(RTM_NEWLINK, NLM_F_MULTI, 1002));
        assert!(continues_dump(&d));
    }

    #[test]
    fn done_or_an_error_ends_it() {
        let mut d = msg(RTM_NEWLINK, NLM_F_MULTI, 1000);
        d.extend(msg(NLMSG_DONE, NLM_F_MULTI, 4));
        assert!(!continues_dump(&d));
        let mut e = msg(RTM_NEWLINK, NLM_F_MULTI, 1000);
        e.extend(msg(NLMSG_ERROR, 0, 20));
        assert!(!continues_dump(&e));
    }

    #[test]
    fn a_single_reply_or_garbage_is_not_a_dump() {
        assert!(!continues_dump(&msg(RTM_NEWLINK, 0, 1000)));
        assert!(!continues_dump(&[]));
        let mut bad = msg(RTM_NEWLINK, NLM_F_MULTI, 100);
        bad[0] = 200; // longer than the datagram
        assert!(!continues_dump(&bad));
        let mut short = msg(RTM_NEWLINK, NLM_F_MULTI, 100);
        short[0..4].copy_from_slice(&4u32.to_ne_bytes()); // shorter than a header
        assert!(!continues_dump(&short));
    }

    #[test]
    fn a_truncated_datagram_becomes_an_emsgsize_answer_to_its_request() {
        let mut head = msg(RTM_NEWLINK, NLM_F_MULTI, 1000);
        head[8..12].copy_from_slice(&77u32.to_ne_bytes());
        head[12..16].copy_from_slice(&4242u32.to_ne_bytes());
        let mut out = vec![1, 2, 3];
        nsproxy::netlink::truncated_answer(&head, &mut out);
        use netlink_packet_core::{NetlinkMessage, NetlinkPayload};
        use netlink_packet_route::RouteNetlinkMessage;
        let m = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&out).unwrap();
        assert_eq!(m.header.sequence_number, 77);
        assert_eq!(m.header.port_number, 4242);
        match m.payload {
            NetlinkPayload::Error(e) => {
                assert_eq!(e.raw_code(), -libc::EMSGSIZE);
            }
            other => panic!("{other:?}"),
        }
        assert!(!continues_dump(&out));
    }

    /// A fresh named namespace holding `n` ifb links, removed on drop.
    struct Populated {
        name: nsfs::NsName,
        netns: nsfs::NetNs,
    }

    impl Populated {
        async fn new(tag: &str, n: usize) -> Populated {
            static N: AtomicUsize = AtomicUsize::new(0);
            let name: nsfs::NsName = format!(
                "ra-{tag}-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            )
            .parse()
            .unwrap();
            let netns = nsfs::RunDir::default()
                .create(&name, nsfs::OpenMode::CreateExclusive)
                .await
                .unwrap();
            let p = Populated { name, netns };
            let batch: String = (0..n)
                .map(|i| format!("link add ifb{i} type ifb\n"))
                .collect();
            let mut ip = tokio::process::Command::new("ip")
                .args(["-n", p.name.as_str(), "-batch", "-"])
                .stdin(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            use tokio::io::AsyncWriteExt;
            let mut stdin = ip.stdin.take().unwrap();
            stdin.write_all(batch.as_bytes()).await.unwrap();
            drop(stdin);
            assert!(ip.wait().await.unwrap().success());
            p
        }

        /// A socket inside, reading large dumps ahead.
        async fn socket(&self) -> crate::NetlinkSocket {
            crate::NetlinkSocket::open(&self.netns, crate::DEFAULT_RECEIVE_BUFFER)
                .await
                .unwrap()
                .with_read_ahead(true)
        }
    }

    impl Drop for Populated {
        fn drop(&mut self) {
            let path = nsfs::RunDir::default().entry(&self.name);
            let _ = nix::mount::umount2(&path, nix::mount::MntFlags::MNT_DETACH);
            let _ = std::fs::remove_file(&path);
        }
    }

    fn dump_request(seq: u32) -> Vec<u8> {
        use netlink_packet_core::{NLM_F_DUMP, NLM_F_REQUEST, NetlinkMessage};
        use netlink_packet_route::{RouteNetlinkMessage, link::LinkMessage};
        let mut req = NetlinkMessage::from(RouteNetlinkMessage::GetLink(LinkMessage::default()));
        req.header.flags = NLM_F_REQUEST | NLM_F_DUMP;
        req.header.sequence_number = seq;
        req.finalize();
        let mut buf = vec![0; req.buffer_len()];
        req.serialize(&mut buf);
        buf
    }

    /// Waits (10 s at most) until `done`, else fails with `what`.
    async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !done() {
            assert!(std::time::Instant::now() < deadline, "{what}");
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    /// Messages in a datagram.
    fn messages(mut d: &[u8]) -> usize {
        let mut n = 0;
        while d.len() >= NLMSG_HDRLEN {
            let len = u32::from_ne_bytes(d[0..4].try_into().unwrap()) as usize;
            n += 1;
            d = d.get((len + 3) & !3..).unwrap_or(&[]);
        }
        n
    }

    /// Link indexes of the datagrams read, in order, until NLMSG_DONE of `seq`.
    async fn read_dump(socket: &crate::NetlinkSocket, seq: u32) -> Vec<u32> {
        use netlink_sys::AsyncSocketExt;
        let mut indexes = Vec::new();
        loop {
            let mut d = Vec::new();
            socket.recv_from(&mut d).await.unwrap();
            let mut rest = &d[..];
            while rest.len() >= NLMSG_HDRLEN {
                let len = u32::from_ne_bytes(rest[0..4].try_into().unwrap()) as usize;
                let kind = u16::from_ne_bytes(rest[4..6].try_into().unwrap());
                let s = u32::from_ne_bytes(rest[8..12].try_into().unwrap());
                assert_eq!(s, seq, "a message of another request");
                match kind {
                    NLMSG_DONE => return indexes,
                    NLMSG_ERROR => panic!("the dump failed"),
                    _ => indexes.push(u32::from_ne_bytes(rest[20..24].try_into().unwrap())),
                }
                rest = rest.get((len + 3) & !3..).unwrap_or(&[]);
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_large_dump_read_ahead_arrives_whole_and_in_order() {
        use netlink_sys::AsyncSocketExt;
        let ns = Populated::new("order", 1500).await;
        let plain = crate::NetlinkSocket::open(&ns.netns, crate::DEFAULT_RECEIVE_BUFFER)
            .await
            .unwrap();
        assert!(!plain.reads_ahead());
        plain.send(&dump_request(1)).await.unwrap();
        let expected = read_dump(&plain, 1).await;
        assert_eq!(expected.len(), 1501);

        let ahead = ns.socket().await;
        assert!(ahead.reads_ahead());
        for seq in 2..5 {
            ahead.send(&dump_request(seq)).await.unwrap();
            assert_eq!(read_dump(&ahead, seq).await, expected);
        }
        let state = ahead.read_ahead_state().unwrap();
        assert!(
            state.started.load(Ordering::Relaxed) >= 3,
            "the thread never ran"
        );
        // Once the dump has ended, the thread hands reading back.
        eventually("the thread never stopped", || !state.state().active).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn small_answers_never_start_a_thread() {
        let ns = Populated::new("small", 2).await;
        let ahead = ns.socket().await;
        use netlink_sys::AsyncSocketExt;
        for seq in 1..20 {
            ahead.send(&dump_request(seq)).await.unwrap();
            assert_eq!(read_dump(&ahead, seq).await.len(), 3);
        }
        assert_eq!(
            ahead
                .read_ahead_state()
                .unwrap()
                .started
                .load(Ordering::Relaxed),
            0
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn what_waits_read_ahead_stays_under_the_high_water_mark() {
        use netlink_sys::AsyncSocketExt;
        // About 3 MiB of answer: three times the high-water mark.
        let ns = Populated::new("water", 2000).await;
        let ahead = ns.socket().await;
        ahead.send(&dump_request(1)).await.unwrap();
        // The first datagrams are read inline, then the thread starts.
        let mut inline = 0;
        while ahead
            .read_ahead_state()
            .unwrap()
            .started
            .load(Ordering::Relaxed)
            == 0
        {
            let mut d = Vec::new();
            ahead.recv_from(&mut d).await.unwrap();
            inline += messages(&d);
        }
        // Nobody reads: the thread fills the queue up to the mark and stops.
        let state = ahead.read_ahead_state().unwrap();
        eventually("the thread never stopped", || !state.state().active).await;
        let queued = state.state().queued_bytes;
        assert!(queued >= HIGH_WATER, "stopped early at {queued} bytes");
        assert!(queued < HIGH_WATER + RECV_BUF, "{queued} bytes queued");
        // Reading on gets the rest of the dump, the thread restarting as needed.
        let rest = read_dump(&ahead, 1).await;
        assert_eq!(inline + rest.len(), 2001);
        assert!(
            state.started.load(Ordering::Relaxed) >= 2,
            "never restarted"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn dropping_the_socket_mid_dump_stops_the_thread() {
        use netlink_sys::AsyncSocketExt;
        let ns = Populated::new("drop", 2000).await;
        let ahead = ns.socket().await;
        ahead.send(&dump_request(1)).await.unwrap();
        let state = Arc::clone(ahead.read_ahead_state().unwrap());
        let mut d = Vec::new();
        while state.started.load(Ordering::Relaxed) == 0 {
            d.clear();
            ahead.recv_from(&mut d).await.unwrap();
        }
        drop(ahead);
        // The thread ends, and with it its session (and duplicate socket).
        eventually("the thread never stopped", || {
            !(state.state().active || Arc::strong_count(&state) > 1)
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_socket_yields_after_a_few_datagrams_in_a_row() {
        use futures::task::ArcWake;
        use netlink_sys::{AsyncSocket, AsyncSocketExt};
        use std::task::Poll;
        struct Count(AtomicUsize);
        impl ArcWake for Count {
            fn wake_by_ref(arc: &Arc<Self>) {
                arc.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let ns = Populated::new("yield", 1000).await;
        // Without read-ahead, so that every datagram is there when asked for
        // (the kernel builds the next one inside each read).
        let socket = crate::NetlinkSocket::open(&ns.netns, crate::DEFAULT_RECEIVE_BUFFER)
            .await
            .unwrap();
        socket.send(&dump_request(1)).await.unwrap();
        let mut first = Vec::new();
        socket.recv_from(&mut first).await.unwrap();
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = futures::task::waker(Arc::clone(&count));
        let mut cx = Context::from_waker(&waker);
        let mut ready = 1;
        loop {
            let mut d = Vec::new();
            match socket.poll_recv_from(&mut cx, &mut d) {
                Poll::Ready(r) => {
                    r.unwrap();
                    ready += 1;
                }
                Poll::Pending => break,
            }
            assert!(ready < 100, "never yielded");
        }
        assert_eq!(ready, crate::transport::YIELD_EVERY);
        assert_eq!(count.0.load(Ordering::SeqCst), 1, "a yield wakes its task");
        // Polled again, it goes on with the dump.
        let mut d = Vec::new();
        assert!(socket.poll_recv_from(&mut cx, &mut d).is_ready());
        assert!(continues_dump(&d));
    }

    #[test]
    fn only_large_datagrams_start_a_thread() {
        let small = msg(RTM_NEWLINK, NLM_F_MULTI, 1000);
        assert!(!ReadAhead::should_start(&small));
        let large = msg(RTM_NEWLINK, NLM_F_MULTI, START_MIN);
        assert!(ReadAhead::should_start(&large));
    }
}
