//! Multicast events from inside a namespace, as a `Stream`.

use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;
use netlink_packet_core::{NetlinkMessage, NetlinkPayload};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{AsyncSocket, SocketAddr};
use rtnetlink::MulticastGroup;

use crate::handle::{Messages, Task};
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
///     match event {
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
    Overrun,
}

/// A stream of rtnetlink multicast events from inside one namespace: made by
/// [`Handle::events`].
///
/// It has its own netlink socket, subscribed to the requested groups inside
/// the namespace, driven by a task on the runtime that made it. Several
/// streams from several namespaces can be `tokio::select!`ed or merged
/// (`futures::stream::select_all`). The stream never ends on its own while the
/// socket works; it ends if the socket fails.
///
/// The stream is independent of the [`Handle`] that made it: it keeps its
/// namespace (and, on the relay transport, the agent) alive and goes on after
/// the handle is closed.
///
/// # Drop
///
/// Dropping it ends its task and closes its socket.
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
///     Some(e) = ea.next() => println!("a: {e:?}"),
///     Some(e) = eb.next() => println!("b: {e:?}"),
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Events {
    messages: Messages,
    // Declared after `messages` so the receiver is dropped first.
    _task: Task,
    ns: PathBuf,
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
    type Item = Event;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        Pin::new(&mut self.messages).poll_next(cx).map(|item| {
            item.map(|(msg, _): (_, SocketAddr)| match msg.payload {
                NetlinkPayload::Overrun(_) => Event::Overrun,
                _ => Event::Message(msg),
            })
        })
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
    /// Outside a tokio runtime (the stream's task is spawned on it).
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
        let ns = self.describe();
        let mut socket = self.open_socket().await?;
        let sock = socket.socket_mut();
        let mut subscribe = || -> std::io::Result<()> {
            sock.bind(&SocketAddr::new(0, 0))?;
            for group in groups {
                sock.add_membership(*group as u32)?;
            }
            Ok(())
        };
        subscribe().map_err(|source| Error::Socket {
            op: "subscribe to events",
            ns: ns.clone(),
            source,
        })?;
        let (connection, _rtnl, messages) = rtnetlink::from_socket(socket);
        let task = Task(tokio::spawn(connection));
        Ok(Events {
            messages,
            _task: task,
            ns,
        })
    }
}
