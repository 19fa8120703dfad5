//! The toolkit's own netlink transport: a netlink socket made inside a
//! namespace, driven by tokio's reactor on the caller's runtime.
//!
//! On the sockets of rtnetlink connections it also sees every request to its
//! end (the bookkeeping is the sans-IO `inflight` module):
//!
//! - **One dump at a time, queued.** The kernel runs one dump per socket; a
//!   second dump sent meanwhile fails with `EBUSY` (plain rtnetlink has this
//!   flaw), so several tasks sharing a handle lost about half of their
//!   concurrent dumps. A dump sent while another runs is held here and sent
//!   when that one's `NLMSG_DONE` (or error) arrives. Measured against a
//!   socket per concurrent dump (16 tasks each dumping 300 links, 2 vCPUs):
//!   93-104 ms (median) queued, 103-129 ms with 16 direct sockets and
//!   150-200 ms relayed, at a peak RSS of 18-21 MB queued against 97 MB
//!   (each socket reads its dump ahead), and one fd instead of sixteen. The
//!   kernel builds dumps inside the reader's `recvmsg` on one socket or
//!   many; on two cores a queue loses nothing.
//! - **No empty success.** When the transport dies (the relay agent exits,
//!   a read fails, a send fails for a reason other than the request itself)
//!   each request still waiting is answered with an `NLMSG_ERROR` carrying
//!   the errno (`ECONNRESET`, `EPIPE`...), matched by netlink-proto on
//!   sequence number and port like a kernel answer, then the connection
//!   ends; a request that cannot be sent (`EMSGSIZE`) gets its own error and
//!   the connection goes on. Without this, netlink-proto ends the request
//!   streams silently and rtnetlink reports an empty dump or `Ok(None)`.
//! - **Deadlines.** With a request timeout, a request without its final
//!   answer by then is answered with `ETIMEDOUT`; its late answer is dropped.
//! - **A quiet close.** Closing answers what is in flight with `ECANCELED`;
//!   the task driving a handle's connection then drops it (netlink-proto
//!   would end it only through a read error, which it logs as an ERROR).

use std::fmt;
use std::future::Future;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use futures::task::AtomicWaker;

use netlink_sys::{AsyncSocket, Socket, SocketAddr, protocols::NETLINK_ROUTE};

use crate::inflight::{InFlight, Received, Send};
use crate::readahead::{Next, ReadAhead};
use crate::{Error, Result};
use nix::sys::socket::{setsockopt, sockopt};
use nsfs::NetNs;
use tokio::io::unix::AsyncFd;

/// Default receive buffer of the sockets this crate makes: large enough for
/// dumps of thousands of links and bursts of events.
///
/// # Examples
///
/// ```no_run
/// # async fn demo() -> netns::Result<()> {
/// let h = netns::Handle::builder("blue")
///     .receive_buffer(4 * netns::DEFAULT_RECEIVE_BUFFER)
///     .open()
///     .await?;
/// # Ok(()) }
/// ```
pub const DEFAULT_RECEIVE_BUFFER: usize = 4 << 20;

/// Datagrams a socket hands over in a row before it yields once (see
/// `poll_recv_from`): about 100 links' worth of a dump.
pub(crate) const YIELD_EVERY: usize = 4;

/// A netlink socket living in one network namespace, as a
/// [`netlink_sys::AsyncSocket`] for [`rtnetlink::from_socket`].
///
/// Made by [`Handle::open`](crate::Handle::open) and
/// [`connection`](crate::connection). With [`Transport::Direct`](crate::Transport::Direct)
/// the socket is created on a namespace thread inside the namespace; with
/// [`Transport::Relay`](crate::Transport::Relay) it is an nsproxy agent's
/// socket, relayed. Either way it has `NETLINK_GET_STRICT_CHK` and
/// `NETLINK_EXT_ACK` enabled and a receive buffer sized for large dumps, then
/// registered with the reactor of the runtime it is used on.
///
/// Unlike `netlink_sys::TokioSocket`, it
/// - wakes its task after every successful send, so netlink-proto 0.14 never
///   stalls with requests queued behind a `notify()`;
/// - hands netlink-proto exactly one kernel datagram per receive, checking its
///   real size first (`MSG_PEEK | MSG_TRUNC`) so a datagram larger than the
///   offered buffer is read whole instead of being truncated;
/// - never panics when registration fails: the error is returned;
/// - on the sockets of rtnetlink connections, holds a dump while another runs
///   (the kernel would answer `EBUSY`), and answers every request whose
///   transport dies, whose send fails or whose deadline passes with an
///   error, never leaving its stream to end empty;
/// - on the sockets of rtnetlink connections (direct transport), reads large
///   dumps ahead: once a datagram of 8 KiB or more shows a dump goes on, a
///   thread of tokio's blocking pool receives the rest into a bounded queue
///   (1 MiB) while the connection task parses, so the kernel, which builds
///   a dump inside the reader's `recvmsg`, works on another core. Sockets
///   from [`NetlinkSocket::open`] and event streams read only when polled
///   ([`reads_ahead`](NetlinkSocket::reads_ahead) says which).
///
/// Dropping it closes the socket.
///
/// # Examples
///
/// ```no_run
/// # async fn demo() -> netns::Result<()> {
/// use netns::{Handle, OpenMode};
/// let handle = Handle::open("blue", OpenMode::CreateOrOpen).await?;
/// let (connection, rtnl, _messages) = handle.connection().await?;
/// tokio::spawn(connection);
/// # Ok(()) }
/// ```
pub struct NetlinkSocket {
    inner: Inner,
    /// Datagrams handed over since the last time a read found nothing.
    streak: AtomicUsize,
    tracker: Option<Arc<Tracker>>,
    /// Read-ahead of large dumps (direct sockets of rtnetlink connections).
    ahead: Option<Arc<ReadAhead>>,
}

impl Drop for NetlinkSocket {
    fn drop(&mut self) {
        if let Some(ahead) = &self.ahead {
            ahead.close();
        }
    }
}

/// Sees every request of a connection to its end: answers what is in flight
/// with an error when the handle closes (`ECANCELED`) or the transport dies
/// (its errno), when a request's deadline passes (`ETIMEDOUT`) or its send
/// fails; holds a dump until the one running on the socket has ended (see
/// the `inflight` module).
pub(crate) struct Tracker {
    inflight: Mutex<InFlight>,
    scratch: Mutex<Vec<u8>>,
    closing: AtomicBool,
    /// Why the transport died (errno, description), once it has.
    died: Mutex<Option<(i32, String)>>,
    /// A request was taken (and recorded) since the last idle round.
    taken: AtomicBool,
    /// One idle round has passed since closing: netlink-proto has had a poll
    /// to hand over every request still queued in its channel.
    idle_once: AtomicBool,
    /// Everything in flight was answered after closing or dying: the task
    /// driving the connection may end it (see `finished`).
    finished: AtomicBool,
    /// The connection is driven by a task that ends it once `finished`
    /// (quietly); otherwise the socket ends it with an error.
    quiet: bool,
    request_timeout: Option<Duration>,
    timer: Mutex<Option<Pin<Box<tokio::time::Sleep>>>>,
    waker: AtomicWaker,
}

impl fmt::Debug for Tracker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tracker")
            .field("closing", &self.closing.load(Ordering::Acquire))
            .field("request_timeout", &self.request_timeout)
            .finish_non_exhaustive()
    }
}

/// Send errors that fail only the request being sent; any other send error
/// means the transport is gone.
fn fails_only_the_request(errno: i32) -> bool {
    matches!(
        errno,
        libc::EMSGSIZE | libc::ENOBUFS | libc::ENOMEM | libc::EINVAL
    )
}

const CLOSED: &str = "netns handle closed";

impl Tracker {
    fn new(quiet: bool, request_timeout: Option<Duration>) -> Tracker {
        Tracker {
            inflight: Mutex::default(),
            scratch: Mutex::default(),
            closing: AtomicBool::new(false),
            died: Mutex::new(None),
            taken: AtomicBool::new(false),
            idle_once: AtomicBool::new(false),
            finished: AtomicBool::new(false),
            quiet,
            request_timeout,
            timer: Mutex::new(None),
            waker: AtomicWaker::new(),
        }
    }

    /// Starts closing: the connection answers what is in flight with
    /// `ECANCELED`, then ends.
    pub(crate) fn close(&self) {
        self.closing.store(true, Ordering::Release);
        self.waker.wake();
    }

    /// Whether everything in flight was answered after closing (or the
    /// transport dying) and the connection can end.
    pub(crate) fn finished(&self) -> bool {
        self.finished.load(Ordering::Acquire)
    }

    /// Why the connection ends, once it does: the errno requests in flight
    /// are answered with, and the reason.
    fn end(&self) -> Option<(i32, String)> {
        if let Some(died) = lock(&self.died).as_ref() {
            return Some(died.clone());
        }
        self.closing
            .load(Ordering::Acquire)
            .then(|| (libc::ECANCELED, CLOSED.to_owned()))
    }

    /// The transport failed with `err`: every request in flight is answered
    /// with its errno, then the connection ends.
    fn die(&self, err: &io::Error) {
        let mut died = lock(&self.died);
        if died.is_none() {
            tracing::info!(error = %err, "netlink transport died");
            let errno = err.raw_os_error().unwrap_or(libc::ECONNRESET);
            *died = Some((errno, format!("netns: netlink transport died: {err}")));
        }
    }

    /// A send of `datagram` failed with `err`: its requests are answered
    /// with the errno; the transport dies unless the error is the request's
    /// own (too large...).
    fn send_failed(&self, datagram: &[u8], err: &io::Error) {
        let errno = err.raw_os_error().unwrap_or(libc::EIO);
        let why = format!("netns: cannot send the request: {err}");
        lock(&self.inflight).send_failed(datagram, errno, &why);
        if !fails_only_the_request(errno) {
            self.die(err);
        }
    }

    /// Answers requests past their deadline and arms the timer for the next
    /// one (waking the task then).
    fn poll_deadlines(&self, cx: &mut Context<'_>) {
        loop {
            let next = lock(&self.inflight).expire(std::time::Instant::now());
            let mut timer = lock(&self.timer);
            let Some(at) = next else {
                *timer = None;
                return;
            };
            let at = tokio::time::Instant::from_std(at);
            let sleep = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
            if sleep.deadline() != at {
                sleep.as_mut().reset(at);
            }
            if sleep.as_mut().poll(cx).is_pending() {
                return;
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

enum Inner {
    Direct(AsyncFd<Socket>),
    Relay(nsproxy::RelaySocket),
}

impl fmt::Debug for NetlinkSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner {
            Inner::Direct(fd) => f
                .debug_struct("NetlinkSocket")
                .field("fd", &fd.get_ref().as_raw_fd())
                .finish(),
            Inner::Relay(_) => f
                .debug_struct("NetlinkSocket")
                .field("transport", &"relay")
                .finish(),
        }
    }
}

/// Makes a `NETLINK_ROUTE` socket in the calling thread's namespace and
/// configures it (strict checking, extended acks, receive buffer).
/// Runs on a namespace thread.
pub(crate) fn new_route_socket(rcvbuf: usize) -> io::Result<Socket> {
    let socket = Socket::new(NETLINK_ROUTE)?;
    configure(&socket, rcvbuf)?;
    Ok(socket)
}

pub(crate) fn configure(socket: &Socket, rcvbuf: usize) -> io::Result<()> {
    socket.set_netlink_get_strict_chk(true)?;
    socket.set_ext_ack(true)?;
    if rcvbuf > 0 {
        set_receive_buffer(socket.as_fd(), rcvbuf)?;
    }
    Ok(())
}

/// SO_RCVBUFFORCE (needs CAP_NET_ADMIN, ignores rmem_max), else SO_RCVBUF.
pub(crate) fn set_receive_buffer(fd: BorrowedFd<'_>, size: usize) -> io::Result<()> {
    match setsockopt(&fd, sockopt::RcvBufForce, &size) {
        Ok(()) => Ok(()),
        Err(nix::errno::Errno::EPERM) => {
            setsockopt(&fd, sockopt::RcvBuf, &size).map_err(io::Error::from)
        }
        Err(e) => Err(e.into()),
    }
}

impl NetlinkSocket {
    /// A new `NETLINK_ROUTE` socket inside `netns`, made on a namespace
    /// thread (or on the calling thread, if it is already inside `netns`)
    /// with strict checking and extended acks, and a receive buffer of
    /// `receive_buffer` bytes (0 keeps the system default), registered with
    /// the current runtime. For callers who read and write netlink
    /// themselves (with [`netlink_sys::AsyncSocketExt`]) instead of through
    /// netlink-proto: reading as they consume keeps a dump's memory bounded
    /// by the kernel's buffer, where a connection queues all of it.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: if dropped, the socket made so far is closed.
    ///
    /// # Errors
    ///
    /// [`Error::Socket`](crate::Error::Socket) if the socket could not be
    /// made, [`Error::Namespace`](crate::Error::Namespace) if no namespace
    /// thread could enter `netns`.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime (the socket is registered with its reactor).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// use netlink_sys::{AsyncSocketExt, SocketAddr};
    /// let ns = netns::NetNs::open("/run/netns/blue")?;
    /// let mut socket = netns::NetlinkSocket::open(&ns, netns::DEFAULT_RECEIVE_BUFFER).await?;
    /// # let request: Vec<u8> = Vec::new();
    /// socket.send_to(&request, &SocketAddr::new(0, 0)).await?;
    /// let mut reply = Vec::new();
    /// socket.recv_from(&mut reply).await?;
    /// # Ok(()) }
    /// ```
    pub async fn open(netns: &nsfs::NetNs, receive_buffer: usize) -> crate::Result<NetlinkSocket> {
        // Read only as its owner reads: back-pressure stays in the kernel.
        let options = Options {
            transport: Transport::Direct,
            receive_buffer,
            read_ahead: false,
            request_timeout: None,
        };
        let span = crate::trace::netns_span!(netns, "netlink_socket");
        crate::trace::traced(span, open_socket(netns, options, None)).await
    }

    /// Registers a configured socket with the current runtime's reactor.
    /// Must be called from within a tokio runtime.
    pub(crate) fn from_socket(socket: Socket) -> io::Result<NetlinkSocket> {
        socket.set_non_blocking(true)?;
        let fd = crate::sys::register(socket)?;
        Ok(NetlinkSocket {
            inner: Inner::Direct(fd),
            streak: AtomicUsize::new(0),
            tracker: None,
            ahead: None,
        })
    }

    /// Wraps a relay from an nsproxy agent, configuring the agent's socket
    /// (through the dup the relay holds) like a direct one.
    pub(crate) fn from_relay(
        relay: nsproxy::RelaySocket,
        rcvbuf: usize,
    ) -> io::Result<NetlinkSocket> {
        configure(relay.socket_ref(), rcvbuf)?;
        Ok(NetlinkSocket {
            inner: Inner::Relay(relay),
            streak: AtomicUsize::new(0),
            tracker: None,
            ahead: None,
        })
    }

    /// Tracks requests in flight (see [`Tracker`]), each with a deadline of
    /// `request_timeout` if given. `quiet`: the task driving the connection
    /// ends it once [`Tracker::finished`]; otherwise the socket ends it with
    /// an error after answering what was in flight.
    pub(crate) fn tracked(
        mut self,
        quiet: bool,
        request_timeout: Option<Duration>,
    ) -> (NetlinkSocket, Arc<Tracker>) {
        let tracker = Arc::new(Tracker::new(quiet, request_timeout));
        self.tracker = Some(Arc::clone(&tracker));
        (self, tracker)
    }

    /// Turns read-ahead of large dumps on (see the `readahead` module) for a
    /// direct socket; a relayed one already has it (the agent reads on its
    /// own core).
    pub(crate) fn with_read_ahead(mut self, on: bool) -> NetlinkSocket {
        self.ahead = (on && matches!(self.inner, Inner::Direct(_))).then(Arc::default);
        self
    }

    /// Whether this socket reads large dumps ahead on another thread.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo() -> netns::Result<()> {
    /// let ns = netns::NetNs::open("/run/netns/blue")?;
    /// let socket = netns::NetlinkSocket::open(&ns, netns::DEFAULT_RECEIVE_BUFFER).await?;
    /// // A socket for one's own reading keeps back-pressure in the kernel.
    /// assert!(!socket.reads_ahead());
    /// # Ok(()) }
    /// ```
    pub fn reads_ahead(&self) -> bool {
        self.ahead.is_some()
    }

    #[cfg(test)]
    pub(crate) fn read_ahead_state(&self) -> Option<&Arc<ReadAhead>> {
        self.ahead.as_ref()
    }

    fn poll_recv_inner<B: bytes::BufMut>(
        &self,
        cx: &mut Context<'_>,
        buf: &mut B,
    ) -> Poll<io::Result<SocketAddr>> {
        match (&self.inner, &self.ahead) {
            (Inner::Direct(_), Some(ahead)) => {
                let mut data = ahead.spare();
                let res = ready!(self.poll_recv_vec(cx, &mut data));
                let res = res.and_then(|addr| {
                    if buf.remaining_mut() < data.len() {
                        return Err(io::Error::from_raw_os_error(libc::EMSGSIZE));
                    }
                    buf.put_slice(&data);
                    Ok(addr)
                });
                ahead.recycle(data);
                Poll::Ready(res)
            }
            (Inner::Direct(fd), None) => loop {
                let mut guard = ready!(fd.poll_read_ready(cx))?;
                match guard.try_io(|fd| recv_datagram(fd.get_ref(), buf)) {
                    Ok(res) => return Poll::Ready(res),
                    Err(_would_block) => continue,
                }
            },
            // One frame is one kernel datagram.
            (Inner::Relay(r), _) => r.poll_recv_from(cx, buf),
        }
    }

    /// Receives one datagram into `out` (empty on entry). With read-ahead,
    /// takes it from the read-ahead queue while a thread reads the socket,
    /// and starts that thread after an inline read of a large dump datagram.
    fn poll_recv_vec(
        &self,
        cx: &mut Context<'_>,
        out: &mut Vec<u8>,
    ) -> Poll<io::Result<SocketAddr>> {
        let (Inner::Direct(fd), Some(ahead)) = (&self.inner, &self.ahead) else {
            return self.poll_recv_inner(cx, out);
        };
        match ahead.poll_next(cx) {
            Next::Ready(Ok((data, addr))) => {
                ahead.recycle(std::mem::replace(out, data));
                return Poll::Ready(Ok(addr));
            }
            Next::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Next::Pending => return Poll::Pending,
            Next::Inline => {}
        }
        out.reserve(64 * 1024);
        let addr = loop {
            let mut guard = ready!(fd.poll_read_ready(cx))?;
            match guard.try_io(|fd| recv_datagram(fd.get_ref(), out)) {
                Ok(res) => break res?,
                Err(_would_block) => continue,
            }
        };
        if ReadAhead::should_start(out) {
            ahead.start(fd.get_ref());
        }
        Poll::Ready(Ok(addr))
    }
}

/// Receives one datagram whole: peek its size, then read it into `buf` if it
/// fits, or into a buffer of its size otherwise.
pub(crate) fn recv_datagram<B: bytes::BufMut>(
    socket: &Socket,
    buf: &mut B,
) -> io::Result<SocketAddr> {
    let mut empty: &mut [u8] = &mut [];
    let (size, _) = socket.recv_from(
        &mut empty,
        libc::MSG_PEEK | libc::MSG_TRUNC | libc::MSG_DONTWAIT,
    )?;
    if size <= buf.chunk_mut().len() {
        let (n, addr) = socket.recv_from(buf, libc::MSG_DONTWAIT)?;
        debug_assert_eq!(n, size);
        Ok(addr)
    } else if buf.remaining_mut() < size {
        // A fixed-size buffer that cannot hold it: drop the datagram rather
        // than hand over part of it.
        socket.recv_from(&mut empty, libc::MSG_DONTWAIT)?;
        Err(io::Error::from_raw_os_error(libc::EMSGSIZE))
    } else {
        let mut big: Vec<u8> = Vec::with_capacity(size);
        let (_, addr) = socket.recv_from(&mut big, libc::MSG_DONTWAIT)?;
        buf.put_slice(&big);
        Ok(addr)
    }
}

impl NetlinkSocket {
    /// Sends one datagram on the transport.
    fn poll_send_inner(
        &self,
        cx: &mut Context<'_>,
        buf: &[u8],
        addr: &SocketAddr,
    ) -> Poll<io::Result<usize>> {
        match &self.inner {
            Inner::Direct(fd) => loop {
                let mut guard = ready!(fd.poll_write_ready(cx))?;
                match guard.try_io(|fd| fd.get_ref().send_to(buf, addr, libc::MSG_DONTWAIT)) {
                    Ok(res) => return Poll::Ready(res),
                    Err(_would_block) => continue,
                }
            },
            Inner::Relay(r) => r.poll_send_to(cx, buf, addr),
        }
    }
}

impl AsyncSocket for NetlinkSocket {
    fn socket_ref(&self) -> &Socket {
        match &self.inner {
            Inner::Direct(fd) => fd.get_ref(),
            Inner::Relay(r) => r.socket_ref(),
        }
    }

    fn socket_mut(&mut self) -> &mut Socket {
        match &mut self.inner {
            Inner::Direct(fd) => fd.get_mut(),
            Inner::Relay(r) => r.socket_mut(),
        }
    }

    /// Always fails: a socket of this type is made inside a namespace by
    /// [`Handle::open`](crate::Handle::open) or
    /// [`connection`](crate::connection), never by netlink-proto.
    fn new(_protocol: isize) -> io::Result<Self> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "netns::NetlinkSocket is made inside a namespace by netns::Handle",
        ))
    }

    fn poll_send(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.poll_send_to(cx, buf, &SocketAddr::new(0, 0))
    }

    fn poll_send_to(
        &self,
        cx: &mut Context<'_>,
        buf: &[u8],
        addr: &SocketAddr,
    ) -> Poll<io::Result<usize>> {
        let Some(t) = &self.tracker else {
            let sent = ready!(self.poll_send_inner(cx, buf, addr));
            if sent.is_ok() {
                // netlink-proto 0.14 sends one batch per poll and does not
                // poll again by itself: without this wake, requests queued
                // after a notify() (which gets no reply) would sit unsent.
                cx.waker().wake_by_ref();
            }
            return Poll::Ready(sent);
        };
        if t.end().is_some() {
            // Not sent: recorded, so that it is answered with the error.
            lock(&t.inflight).sent(buf, None);
            t.taken.store(true, Ordering::Release);
            t.finished.store(false, Ordering::Release);
            cx.waker().wake_by_ref();
            return Poll::Ready(Ok(buf.len()));
        }
        let deadline = t.request_timeout.map(|d| std::time::Instant::now() + d);
        if lock(&t.inflight).sent(buf, deadline) == Send::Held {
            // Sent once the dump running on the socket has ended.
            cx.waker().wake_by_ref();
            return Poll::Ready(Ok(buf.len()));
        }
        if let Err(e) = ready!(self.poll_send_inner(cx, buf, addr)) {
            // Answered with the error by the receive side; the connection
            // goes on unless the transport is gone.
            t.send_failed(buf, &e);
        }
        cx.waker().wake_by_ref();
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_recv<B>(&self, cx: &mut Context<'_>, buf: &mut B) -> Poll<io::Result<()>>
    where
        B: bytes::BufMut,
    {
        self.poll_recv_from(cx, buf).map(|r| r.map(|_| ()))
    }

    fn poll_recv_from<B>(&self, cx: &mut Context<'_>, buf: &mut B) -> Poll<io::Result<SocketAddr>>
    where
        B: bytes::BufMut,
    {
        // netlink-proto reads until the socket has nothing, and only then
        // hands what it parsed to the requests' streams: a dump would be
        // parsed whole (some 10 MiB of messages for 2,000 links) before its
        // consumer saw the first. Yielding every few datagrams lets the
        // connection forward what it has, so the consumer can use and free
        // messages while the dump goes on: memory stays bounded, and the
        // allocator reuses the same chunks instead of growing, trimming and
        // faulting the heap in again on every dump.
        if self.streak.load(Ordering::Relaxed) >= YIELD_EVERY {
            self.streak.store(0, Ordering::Relaxed);
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let res = self.poll_recv_tracked(cx, buf);
        match &res {
            Poll::Ready(Ok(_)) => {
                self.streak.fetch_add(1, Ordering::Relaxed);
            }
            Poll::Pending => self.streak.store(0, Ordering::Relaxed),
            Poll::Ready(Err(_)) => {}
        }
        res
    }

    fn poll_recv_from_full(&self, cx: &mut Context<'_>) -> Poll<io::Result<(Vec<u8>, SocketAddr)>> {
        let mut data = Vec::new();
        let addr = ready!(self.poll_recv_from(cx, &mut data))?;
        Poll::Ready(Ok((data, addr)))
    }
}

impl NetlinkSocket {
    /// Receives one datagram; on a tracked connection, through the record of
    /// requests in flight: hands out the error replies it makes (closing,
    /// transport gone, timeouts, failed sends), sends held dumps when their
    /// turn comes, drops late answers, and ends the connection once closed
    /// or dead and everything was answered.
    fn poll_recv_tracked<B>(
        &self,
        cx: &mut Context<'_>,
        buf: &mut B,
    ) -> Poll<io::Result<SocketAddr>>
    where
        B: bytes::BufMut,
    {
        let Some(t) = &self.tracker else {
            return self.poll_recv_inner(cx, buf);
        };
        t.waker.register(cx.waker());
        loop {
            let end = t.end();
            if let Some((errno, why)) = &end {
                lock(&t.inflight).fail_all(*errno, why);
            }
            if t.request_timeout.is_some() {
                t.poll_deadlines(cx);
            }
            if let Some(error) = lock(&t.inflight).next_failure() {
                buf.put_slice(&error);
                return Poll::Ready(Ok(SocketAddr::new(0, 0)));
            }
            if let Some((_, why)) = end {
                // Nothing in flight. End only after a round in which
                // netlink-proto handed over no new request: those still
                // queued in its channel are taken (and recorded) by the send
                // path in the meantime.
                let taken = t.taken.swap(false, Ordering::AcqRel);
                if taken || !t.idle_once.swap(true, Ordering::AcqRel) {
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                if t.quiet {
                    // The driving task ends the connection: no error to log.
                    t.finished.store(true, Ordering::Release);
                    return Poll::Pending;
                }
                return Poll::Ready(Err(io::Error::new(io::ErrorKind::ConnectionAborted, why)));
            }
            // A held dump whose turn has come.
            let held = lock(&t.inflight).next_held().map(<[u8]>::to_vec);
            if let Some(held) = held {
                match self.poll_send_inner(cx, &held, &SocketAddr::new(0, 0)) {
                    Poll::Ready(Ok(_)) => lock(&t.inflight).held_sent(),
                    Poll::Ready(Err(e)) => {
                        lock(&t.inflight).held_sent();
                        t.send_failed(&held, &e);
                        continue;
                    }
                    Poll::Pending => {}
                }
            }
            // Read through a scratch buffer to see which requests complete.
            let mut scratch = lock(&t.scratch);
            scratch.clear();
            scratch.reserve(64 * 1024);
            let addr = match ready!(self.poll_recv_vec(cx, &mut scratch)) {
                Ok(addr) => addr,
                // An overrun: netlink-proto reports it, the socket goes on.
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => return Poll::Ready(Err(e)),
                Err(e) => {
                    t.die(&e);
                    continue;
                }
            };
            match lock(&t.inflight).received(&scratch) {
                Received::Whole => buf.put_slice(&scratch),
                Received::Part(part) => buf.put_slice(&part),
                Received::Nothing => continue,
            }
            return Poll::Ready(Ok(addr));
        }
    }
}

/// How the handle's netlink requests reach the kernel.
///
/// # Examples
///
/// ```no_run
/// # async fn demo() -> netns::Result<()> {
/// use netns::{Handle, Transport};
/// let h = Handle::builder("blue").transport(Transport::Direct).open().await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Transport {
    /// A netlink socket created inside the namespace on a namespace thread
    /// (or on the calling thread when it is already inside that namespace)
    /// and used directly from the caller's runtime (the default: requests
    /// cost what they cost in the root namespace).
    #[default]
    Direct,
    /// Netlink relayed through an nsproxy agent: a process started (not
    /// forked) inside the namespace, holding the netlink socket. Costs a
    /// process and about 36 us more per request; for when a process must
    /// hold the socket. Requests that carry an fd of this process (moving a
    /// link, namespace ids) still go through a direct socket, made on first
    /// use, because the agent could not resolve those fd numbers.
    Relay,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct Options {
    pub(crate) transport: Transport,
    pub(crate) receive_buffer: usize,
    /// Large dumps are read ahead on another thread (direct transport).
    pub(crate) read_ahead: bool,
    /// The deadline of every netlink request on the handle's connections.
    pub(crate) request_timeout: Option<Duration>,
}

pub(crate) async fn open_socket(
    netns: &NetNs,
    options: Options,
    agent: Option<&nsproxy::Agent>,
) -> Result<NetlinkSocket> {
    let ns_path = || netns.describe();
    let rcvbuf = options.receive_buffer;
    if let Some(agent) = agent {
        let relay = agent
            .netlink(netlink_sys::protocols::NETLINK_ROUTE)
            .await
            .map_err(|source| Error::Relay {
                ns: ns_path(),
                source,
            })?;
        return NetlinkSocket::from_relay(relay, rcvbuf).map_err(|source| Error::Socket {
            op: "configure relayed netlink socket",
            ns: ns_path(),
            source,
        });
    }
    // socket() makes the socket in the calling thread's namespace and has no
    // other namespace-sensitive effect, nor does it block: when the calling
    // thread is already inside `netns`, make it here and skip the hop to a
    // namespace thread. If the calling thread's namespace cannot be read
    // (no /proc), hop as for any other namespace. Reading it costs a /proc
    // lookup (~5 us, a sixth of opening a handle), so it is asked only when
    // the target is the executor's home, where runtime threads live; a
    // thread switched elsewhere by its owner just takes the hop.
    let here = nsfs::Executor::global().is_ok_and(|e| e.home().id() == netns.id())
        && nsfs::NetNs::current_thread().is_ok_and(|cur| cur.id() == netns.id());
    let made = if here {
        new_route_socket(rcvbuf)
    } else if crate::rootless() {
        // No thread of ours may enter it: the agent of its user namespace
        // makes the socket, which keeps the agent's credentials.
        let fd = crate::rootless::socket_in(
            netns,
            libc::AF_NETLINK,
            libc::SOCK_RAW,
            libc::NETLINK_ROUTE,
        )
        .await?;
        let socket = crate::sys::netlink_socket(fd);
        configure(&socket, rcvbuf).map(|()| socket)
    } else {
        netns.run_short(move || new_route_socket(rcvbuf)).await?
    };
    let socket = made.map_err(|source| Error::Socket {
        op: "create netlink socket",
        ns: ns_path(),
        source,
    })?;
    NetlinkSocket::from_socket(socket)
        .map(|s| s.with_read_ahead(options.read_ahead))
        .map_err(|source| Error::Socket {
            op: "register netlink socket",
            ns: ns_path(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::{NLM_F_REQUEST, NetlinkMessage, NetlinkPayload};
    use netlink_packet_route::RouteNetlinkMessage;
    use netlink_packet_route::link::LinkMessage;
    use netlink_sys::AsyncSocketExt;

    fn get_lo(seq: u32) -> Vec<u8> {
        let mut msg = LinkMessage::default();
        msg.header.index = 1;
        let mut req = NetlinkMessage::from(RouteNetlinkMessage::GetLink(msg));
        req.header.flags = NLM_F_REQUEST;
        req.header.sequence_number = seq;
        req.finalize();
        let mut buf = vec![0; req.buffer_len()];
        req.serialize(&mut buf);
        buf
    }

    /// A netlink socket of the test's own namespace (nothing is changed in
    /// it: the request only reads `lo`).
    fn socket() -> NetlinkSocket {
        NetlinkSocket::from_socket(new_route_socket(0).unwrap()).unwrap()
    }

    #[tokio::test]
    async fn a_datagram_larger_than_the_offered_buffer_arrives_whole() {
        let s = socket();
        s.send_to(&get_lo(7), &SocketAddr::new(0, 0)).await.unwrap();
        // An empty Vec offers 64 bytes: the reply is larger, and must not be
        // truncated.
        let mut buf = Vec::new();
        s.recv_from(&mut buf).await.unwrap();
        assert!(buf.len() > 64, "{} bytes", buf.len());
        let reply = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&buf).unwrap();
        assert_eq!(reply.header.sequence_number, 7);
        assert_eq!(reply.header.length as usize, buf.len());
        match reply.payload {
            NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(l)) => {
                assert_eq!(l.header.index, 1)
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_fixed_buffer_too_small_is_an_error_not_a_truncation() {
        let s = socket();
        s.send_to(&get_lo(8), &SocketAddr::new(0, 0)).await.unwrap();
        let mut small = [0u8; 32];
        let err = s.recv_from(&mut &mut small[..]).await.unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EMSGSIZE));
        // The datagram was dropped whole; the socket goes on.
        s.send_to(&get_lo(9), &SocketAddr::new(0, 0)).await.unwrap();
        let mut buf = Vec::new();
        s.recv_from(&mut buf).await.unwrap();
        let reply = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&buf).unwrap();
        assert_eq!(reply.header.sequence_number, 9);
    }

    #[tokio::test]
    async fn sockets_have_strict_checking_ext_ack_and_a_big_buffer() {
        let sock = new_route_socket(DEFAULT_RECEIVE_BUFFER).unwrap();
        assert!(sock.get_ext_ack().unwrap());
        // The kernel doubles the value it was given.
        assert!(sock.get_rx_buf_sz().unwrap() >= DEFAULT_RECEIVE_BUFFER);
        let s = NetlinkSocket::from_socket(sock).unwrap();
        assert!(s.socket_ref().get_ext_ack().unwrap());
    }

    #[test]
    fn new_is_unsupported() {
        let err = <NetlinkSocket as AsyncSocket>::new(0).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::Unsupported);
    }
}
