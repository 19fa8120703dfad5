//! Multicast events from inside a namespace, as a `Stream`.

use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures::Stream;
use netlink_packet_core::{NetlinkMessage, NetlinkPayload};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{AsyncSocket, SocketAddr};
use rtnetlink::MulticastGroup;

use crate::transport::NetlinkSocket;
use crate::{Error, Handle, Result};

/// One item of an [`Events`] stream.
///
/// # Examples
///
/// ```no_run
/// # async fn demo(h: netns::Handle) -> netns::Result<()> {
/// use futures::StreamExt;
/// use netns::{Event, MulticastGroup};
/// let mut events = h.events(&[MulticastGroup::Link]).await?;
/// while let Some(event) = events.next().await {
///     match event? {
///         Event::Message(msg) => println!("{:?}", msg.payload),
///         Event::Overrun => println!("events were lost: dump again to resync"),
///         _ => {}
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Event {
    /// A message the kernel multicast (RTM_NEWLINK, RTM_NEWADDR...).
    Message(NetlinkMessage<RouteNetlinkMessage>),
    /// The socket's receive buffer overflowed (`ENOBUFS`): some events were
    /// lost. State derived from events must be resynchronised (dump again).
    /// Events still queued in the socket when the overrun was seen are
    /// discarded (they predate the resync), so that a later overflow is
    /// reported again.
    Overrun,
}

/// A stream of rtnetlink multicast events from inside one namespace: made by
/// [`Handle::events`].
///
/// It has its own netlink socket, subscribed to the requested groups inside
/// the namespace, and reads it only when polled: events the consumer has not
/// taken yet wait in the kernel's receive buffer (see
/// [`Builder::receive_buffer`](crate::Builder::receive_buffer)), never in a
/// queue of this process, so a slow consumer costs no memory here; when that
/// buffer overflows the stream yields [`Event::Overrun`]. At most one kernel
/// datagram is held between polls. Several streams from several namespaces
/// can be `tokio::select!`ed or merged (`futures::stream::select_all`);
/// polling is cancel safe. The stream never ends on its own while the socket
/// works; if the socket fails (for example, on the relay transport, the
/// agent exits) it yields that error ([`Error::Socket`], the errno
/// queryable) and then ends: a stream that ends always says why. A message
/// the kernel sent that
/// `netlink-packet-route` cannot parse is skipped, as `rtnetlink` does.
/// Like `nsfs`'s monitor, the items are `Result`s.
///
/// The stream is independent of the [`Handle`] that made it: it keeps its
/// namespace (and, on the relay transport, the agent) alive and goes on after
/// the handle is closed.
///
/// # Drop
///
/// Dropping it closes its socket.
///
/// # Examples
///
/// ```no_run
/// # async fn demo(a: netns::Handle, b: netns::Handle) -> netns::Result<()> {
/// use futures::StreamExt;
/// use netns::MulticastGroup::{Ipv4Ifaddr, Link};
/// let mut ea = a.events(&[Link, Ipv4Ifaddr]).await?;
/// let mut eb = b.events(&[Link]).await?;
/// tokio::select! {
///     Some(e) = ea.next() => println!("a: {:?}", e?),
///     Some(e) = eb.next() => println!("b: {:?}", e?),
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Events {
    socket: NetlinkSocket,
    /// The last datagram received, and where its next message starts.
    datagram: Vec<u8>,
    next: usize,
    ns: PathBuf,
    /// The socket failed and the error was yielded: the stream has ended.
    ended: bool,
}

/// Room offered to each receive: the largest datagram the kernel builds for
/// events and dumps is 32 KiB (a larger one is still read whole).
const DATAGRAM: usize = 64 * 1024;
const NLMSG_HDRLEN: usize = 16;

impl Events {
    /// The next message of the datagram held, if any is left (a malformed
    /// header drops the rest of the datagram).
    fn next_message(&mut self) -> Option<NetlinkMessage<RouteNetlinkMessage>> {
        while let Some(rest) = self.datagram.get(self.next..) {
            let len = match rest.get(..4) {
                Some(b) if rest.len() >= NLMSG_HDRLEN => {
                    u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize
                }
                _ => break,
            };
            if len < NLMSG_HDRLEN || len > rest.len() {
                break;
            }
            self.next += (len + 3) & !3;
            if let Ok(msg) = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&rest[..len]) {
                return Some(msg);
            }
        }
        self.datagram.clear();
        self.next = 0;
        None
    }
}

impl Events {
    /// The namespace these events come from (its path or identity), for
    /// telling streams apart.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(h: netns::Handle) -> netns::Result<()> {
    /// let events = h.events(&[netns::MulticastGroup::Link]).await?;
    /// println!("events of {}", events.namespace().display());
    /// # Ok(()) }
    /// ```
    pub fn namespace(&self) -> &std::path::Path {
        &self.ns
    }
}

impl Stream for Events {
    type Item = Result<Event>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Event>>> {
        let this = self.get_mut();
        if this.ended {
            return Poll::Ready(None);
        }
        loop {
            while let Some(msg) = this.next_message() {
                match msg.payload {
                    NetlinkPayload::Overrun(_) => return Poll::Ready(Some(Ok(Event::Overrun))),
                    NetlinkPayload::Noop | NetlinkPayload::Done(_) => {}
                    _ => return Poll::Ready(Some(Ok(Event::Message(msg)))),
                }
            }
            this.datagram.reserve(DATAGRAM);
            match ready!(this.socket.poll_recv_from(cx, &mut this.datagram)) {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    this.drain(cx);
                    return Poll::Ready(Some(Ok(Event::Overrun)));
                }
                Err(source) => {
                    this.ended = true;
                    tracing::debug!(ns = %this.ns.display(), error = %source, "event stream ended");
                    return Poll::Ready(Some(Err(Error::Socket {
                        op: "receive events",
                        ns: this.ns.clone(),
                        source,
                    })));
                }
            }
        }
    }
}

/// The most datagrams [`Events::drain`] discards after an overrun before it
/// gives up on emptying the queue (a storm refilling it as fast as it is read).
const MAX_DRAIN: usize = 1 << 16;

impl Events {
    /// After an overrun, discards everything the socket still holds.
    ///
    /// Those events are older than the resync the consumer makes on
    /// [`Event::Overrun`], so nothing of value is lost. And it is what keeps
    /// the *next* overrun visible: after reporting one `ENOBUFS`, the kernel
    /// marks the socket congested and drops further events silently until a
    /// read empties its queue (`NETLINK_S_CONGESTED`, cleared in
    /// `netlink_rcv_wake`). A consumer that resynced while the queue stayed
    /// full would lose the events dropped meanwhile without ever hearing of
    /// it.
    fn drain(&mut self, cx: &mut Context<'_>) {
        for _ in 0..MAX_DRAIN {
            self.datagram.clear();
            self.datagram.reserve(DATAGRAM);
            match self.socket.poll_recv_from(cx, &mut self.datagram) {
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(e)) if e.raw_os_error() == Some(libc::ENOBUFS) => {}
                // Empty (the waker is registered), or failing: the next poll
                // says which.
                Poll::Ready(Err(_)) | Poll::Pending => break,
            }
        }
        self.datagram.clear();
        self.next = 0;
    }
}

impl Handle {
    /// Subscribes to rtnetlink multicast `groups` inside the namespace (like
    /// `ip -n NAME monitor`) and returns the stream of events.
    ///
    /// Overruns are reported as [`Event::Overrun`], never hidden. Subscribing
    /// happens before this returns: every event after that is delivered.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: if dropped, the socket made so far is closed.
    ///
    /// # Errors
    ///
    /// [`Error::Socket`] if the socket could not be made or subscribed.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime (the socket is registered with its reactor).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(h: netns::Handle) -> netns::Result<()> {
    /// use futures::StreamExt;
    /// let mut events = h.events(&[netns::MulticastGroup::Link]).await?;
    /// let first = events.next().await;
    /// # Ok(()) }
    /// ```
    #[doc(alias = "ip monitor")]
    pub async fn events(&self, groups: &[MulticastGroup]) -> Result<Events> {
        let span = crate::trace::handle_span!(self, "events");
        crate::trace::traced(span, async move {
            // Read only when polled: back-pressure stays in the kernel.
            let socket = self.open_socket().await?.with_read_ahead(false);
            Events::with_socket(socket, self.describe(), groups)
        })
        .await
    }
}

impl Events {
    /// Subscribes to rtnetlink multicast `groups` inside `netns`, without a
    /// [`Handle`]: a direct socket made on a namespace thread, with a
    /// receive buffer of `receive_buffer` bytes (0 keeps the system default;
    /// see [`Builder::receive_buffer`](crate::Builder::receive_buffer)).
    /// Otherwise as [`Handle::events`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: if dropped, the socket made so far is closed.
    ///
    /// # Errors
    ///
    /// [`Error::Socket`] if the socket could not be made or subscribed,
    /// [`Error::Namespace`] if no namespace thread could enter `netns`.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime (the socket is registered with its reactor).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo() -> netns::Result<()> {
    /// use futures::StreamExt;
    /// let ns = netns::NetNs::open("/run/netns/blue")?;
    /// let mut events =
    ///     netns::Events::subscribe(&ns, &[netns::MulticastGroup::Link], 1 << 20).await?;
    /// let first = events.next().await;
    /// # Ok(()) }
    /// ```
    pub async fn subscribe(
        netns: &nsfs::NetNs,
        groups: &[MulticastGroup],
        receive_buffer: usize,
    ) -> Result<Events> {
        let span = crate::trace::netns_span!(netns, "events");
        crate::trace::traced(span, async move {
            let socket = NetlinkSocket::open(netns, receive_buffer).await?;
            Events::with_socket(socket, netns.describe(), groups)
        })
        .await
    }

    fn with_socket(
        mut socket: NetlinkSocket,
        ns: PathBuf,
        groups: &[MulticastGroup],
    ) -> Result<Events> {
        let sock = socket.socket_mut();
        // Groups 1 to 32 join through the bind's group mask, in one take of
        // the kernel's netlink table lock (global, exclusive), where one
        // `NETLINK_ADD_MEMBERSHIP` per group takes it once each: six groups
        // cost about as much as dumping a small namespace, and a view of
        // 1,000 namespaces subscribes 1,000 sockets. Higher groups join by
        // membership.
        let ids = || groups.iter().map(|g| *g as u32);
        let mask = ids()
            .filter(|g| (1..=32).contains(g))
            .fold(0u32, |mask, g| mask | 1 << (g - 1));
        let mut subscribe = || -> std::io::Result<()> {
            sock.bind(&SocketAddr::new(0, mask))?;
            for group in ids().filter(|g| *g > 32) {
                sock.add_membership(group)?;
            }
            Ok(())
        };
        subscribe().map_err(|source| Error::Socket {
            op: "subscribe to events",
            ns: ns.clone(),
            source,
        })?;
        Ok(Events {
            socket,
            datagram: Vec::new(),
            next: 0,
            ns,
            ended: false,
        })
    }
}
