//! Links moved into, or created in, namespaces given by name, path, pid or
//! handle (pyroute2's `net_ns_fd='name'`).

use std::fmt;
use std::os::fd::{AsFd, AsRawFd};

use futures::{StreamExt, TryStreamExt};
use netlink_packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::link::{InfoData, InfoVeth, LinkMessage};
use nsfs::{NetNs, OpenMode};
use rtnetlink::{LinkUnspec, LinkVeth};

use crate::{Error, Handle, Result, Target};

/// A link, by index or by name: the first argument of
/// [`Handle::move_link`].
///
/// # Examples
///
/// ```
/// use netns::LinkRef;
/// assert!(matches!(LinkRef::from(3u32), LinkRef::Index(3)));
/// assert!(matches!(LinkRef::from("veth0"), LinkRef::Name(_)));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LinkRef {
    /// The link's index (`ifindex`) in the handle's namespace.
    Index(u32),
    /// The link's name in the handle's namespace.
    Name(String),
}

impl fmt::Display for LinkRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkRef::Index(i) => write!(f, "index {i}"),
            LinkRef::Name(n) => write!(f, "{n:?}"),
        }
    }
}

impl From<u32> for LinkRef {
    fn from(i: u32) -> LinkRef {
        LinkRef::Index(i)
    }
}

impl From<&str> for LinkRef {
    fn from(n: &str) -> LinkRef {
        LinkRef::Name(n.into())
    }
}

impl From<String> for LinkRef {
    fn from(n: String) -> LinkRef {
        LinkRef::Name(n)
    }
}

/// A request to move a link into another namespace: made by
/// [`Handle::move_link`].
///
/// # Examples
///
/// ```no_run
/// # async fn demo(root: netns::Handle) -> netns::Result<()> {
/// root.move_link("veth1", "blue").rename("eth0").execute().await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
#[must_use = "a request does nothing until .execute() is awaited"]
pub struct MoveLink<'a> {
    handle: &'a Handle,
    link: LinkRef,
    to: Target,
    rename: Option<String>,
}

impl MoveLink<'_> {
    /// Renames the link in the same request (like
    /// `ip link set DEV netns NS name NEW`).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(root: netns::Handle) -> netns::Result<()> {
    /// root.move_link(7u32, "blue").rename("eth0").execute().await?;
    /// # Ok(()) }
    /// ```
    pub fn rename(mut self, name: impl Into<String>) -> Self {
        self.rename = Some(name.into());
        self
    }

    /// Sends the request.
    ///
    /// The destination is opened first (by name in the handle's run
    /// directory, path, pid, or the given handle): a missing destination is an
    /// error before anything is sent. The kernel gets `IFLA_NET_NS_FD` with an
    /// fd this process holds for the duration of the request.
    ///
    /// # Cancel safety
    ///
    /// If dropped after the request was queued, the link may or may not have
    /// moved, but only ever into `to`: the destination's fd stays open until
    /// the kernel answered (a task holds it), so its number cannot name
    /// another file meanwhile.
    ///
    /// # Errors
    ///
    /// [`Error::Namespace`] if the destination does not exist (nothing is
    /// sent), [`Error::LinkNotFound`] if the link does not exist,
    /// [`Error::Request`] if the kernel refused (for example `EEXIST` if the
    /// destination already has a link of that name).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(root: netns::Handle) -> netns::Result<()> {
    /// root.move_link("veth1", "blue").execute().await?;
    /// # Ok(()) }
    /// ```
    #[doc(alias = "ip link set netns")]
    pub async fn execute(self) -> Result<()> {
        let span = crate::trace::handle_span!(self.handle, "move_link");
        crate::trace::traced(span, self.run()).await
    }

    async fn run(self) -> Result<()> {
        let MoveLink {
            handle,
            link,
            to,
            rename,
        } = self;
        let dest = to.open(handle.run_dir(), OpenMode::OpenOnly).await?;
        // A name is looked up; an index goes as is (the kernel's ENODEV for a
        // missing one becomes LinkNotFound below).
        let index = match &link {
            LinkRef::Index(i) => *i,
            LinkRef::Name(_) => handle.link_index(link.clone()).await?,
        };
        let mut msg = LinkUnspec::new_with_index(index).setns_by_fd(dest.as_fd().as_raw_fd());
        if let Some(name) = rename {
            msg = msg.name(name);
        }
        let res = handle
            .ack(
                "move link",
                RouteNetlinkMessage::SetLink(msg.build()),
                0,
                Some(&dest),
            )
            .await;
        drop(dest);
        match res {
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Err(Error::LinkNotFound {
                link: link.to_string(),
                ns: handle.describe(),
            }),
            other => other,
        }
    }
}

/// A request to create a veth pair, optionally with its peer directly in
/// another namespace: made by [`Handle::add_veth`].
///
/// # Examples
///
/// ```no_run
/// # async fn demo(root: netns::Handle) -> netns::Result<()> {
/// root.add_veth("veth0", "veth1").peer_netns("blue").execute().await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
#[must_use = "a request does nothing until .execute() is awaited"]
pub struct AddVeth<'a> {
    handle: &'a Handle,
    name: String,
    peer: String,
    peer_netns: Option<Target>,
    attrs: VethAttrs,
}

/// Attributes a veth pair gets in its creating request (none by default).
#[derive(Debug, Default)]
struct VethAttrs {
    mtu: Option<u32>,
    peer_address: Option<Vec<u8>>,
    controller: Option<u32>,
    up: bool,
}

impl AddVeth<'_> {
    /// Both ends get this MTU when they are made (no second request).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(root: netns::Handle) -> netns::Result<()> {
    /// root.add_veth("veth0", "veth1").mtu(1400).execute().await?;
    /// # Ok(()) }
    /// ```
    pub fn mtu(mut self, mtu: u32) -> Self {
        self.attrs.mtu = Some(mtu);
        self
    }

    /// The peer's MAC address, set when it is made (`IFLA_ADDRESS` of the
    /// peer); the kernel picks a random one otherwise.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(root: netns::Handle) -> netns::Result<()> {
    /// root.add_veth("veth0", "veth1")
    ///     .peer_address(vec![0x02, 0, 0, 0, 0, 1])
    ///     .execute()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn peer_address(mut self, mac: Vec<u8>) -> Self {
        self.attrs.peer_address = Some(mac);
        self
    }

    /// This end (not the peer) is made a port of the link with this index
    /// (a bridge, a bond) in the same request (`IFLA_MASTER`).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(root: netns::Handle) -> netns::Result<()> {
    /// let br = root.link_index("br0").await?;
    /// root.add_veth("veth0", "veth1").controller(br).execute().await?;
    /// # Ok(()) }
    /// ```
    pub fn controller(mut self, index: u32) -> Self {
        self.attrs.controller = Some(index);
        self
    }

    /// This end (not the peer) is brought up in the same request.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(root: netns::Handle) -> netns::Result<()> {
    /// root.add_veth("veth0", "veth1").up().execute().await?;
    /// # Ok(()) }
    /// ```
    pub fn up(mut self) -> Self {
        self.attrs.up = true;
        self
    }

    /// Creates the peer directly inside `target` (a name, path, pid, `NetNs`
    /// or handle), like pyroute2's `peer={'ifname': .., 'net_ns_fd': name}`.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(root: netns::Handle, blue: netns::Handle) -> netns::Result<()> {
    /// root.add_veth("veth0", "veth1").peer_netns(&blue).execute().await?;
    /// # Ok(()) }
    /// ```
    pub fn peer_netns(mut self, target: impl Into<Target>) -> Self {
        self.peer_netns = Some(target.into());
        self
    }

    /// Sends the request.
    ///
    /// # Cancel safety
    ///
    /// If dropped after the request was queued, the pair may or may not
    /// exist; the peer's namespace fd stays open until the kernel answered,
    /// so a peer can only ever land in the namespace given.
    ///
    /// # Errors
    ///
    /// [`Error::Namespace`] if the peer's namespace does not exist (nothing is
    /// sent), [`Error::Request`] if the kernel refused (`EEXIST`...).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(h: netns::Handle) -> netns::Result<()> {
    /// h.add_veth("a0", "a1").execute().await?;
    /// # Ok(()) }
    /// ```
    pub async fn execute(self) -> Result<()> {
        let span = crate::trace::handle_span!(self.handle, "add_veth");
        crate::trace::traced(span, self.run()).await
    }

    async fn run(self) -> Result<()> {
        let AddVeth {
            handle,
            name,
            peer,
            peer_netns,
            attrs,
        } = self;
        let dest: Option<NetNs> = match peer_netns {
            Some(t) => Some(t.open(handle.run_dir(), OpenMode::OpenOnly).await?),
            None => None,
        };
        let mut peer_msg = LinkUnspec::new_with_name(&peer);
        if let Some(ns) = &dest {
            peer_msg = peer_msg.setns_by_fd(ns.as_fd().as_raw_fd());
        }
        let mut this = LinkVeth::new(&name, &peer);
        if let Some(mtu) = attrs.mtu {
            peer_msg = peer_msg.mtu(mtu);
            this = this.mtu(mtu);
        }
        if let Some(mac) = attrs.peer_address {
            peer_msg = peer_msg.address(mac);
        }
        if let Some(index) = attrs.controller {
            this = this.controller(index);
        }
        if attrs.up {
            this = this.up();
        }
        let msg: LinkMessage = this
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer_msg.build())))
            .build();
        let res = handle
            .ack(
                "add veth",
                RouteNetlinkMessage::NewLink(msg),
                NLM_F_CREATE | NLM_F_EXCL,
                dest.as_ref(),
            )
            .await;
        drop(dest);
        res
    }
}

impl Handle {
    /// Moves a link of this handle's namespace (by index or name) into the
    /// namespace `to` (a name, path, pid, `NetNs` or handle), like
    /// `ip link set DEV netns NAME` and pyroute2's `net_ns_fd='name'`.
    /// See [`MoveLink::execute`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(root: netns::Handle, blue: netns::Handle) -> netns::Result<()> {
    /// root.move_link("veth1", "blue").execute().await?;
    /// blue.move_link("veth1", netns::Target::Pid(1)).execute().await?;
    /// # Ok(()) }
    /// ```
    pub fn move_link(&self, link: impl Into<LinkRef>, to: impl Into<Target>) -> MoveLink<'_> {
        MoveLink {
            handle: self,
            link: link.into(),
            to: to.into(),
            rename: None,
        }
    }

    /// Creates a veth pair `name` / `peer` in this namespace; see
    /// [`AddVeth::peer_netns`] to create the peer directly in another one.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(root: netns::Handle) -> netns::Result<()> {
    /// root.add_veth("veth0", "veth1").peer_netns("blue").execute().await?;
    /// # Ok(()) }
    /// ```
    pub fn add_veth(&self, name: impl Into<String>, peer: impl Into<String>) -> AddVeth<'_> {
        AddVeth {
            handle: self,
            name: name.into(),
            peer: peer.into(),
            peer_netns: None,
            attrs: VethAttrs::default(),
        }
    }

    /// The index of a link of this namespace (an index is checked to exist).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    ///
    /// # Errors
    ///
    /// [`Error::LinkNotFound`] if there is no such link, [`Error::Request`]
    /// if the request failed.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(h: netns::Handle) -> netns::Result<()> {
    /// assert_eq!(h.link_index("lo").await?, 1);
    /// # Ok(()) }
    /// ```
    pub async fn link_index(&self, link: impl Into<LinkRef>) -> Result<u32> {
        let link = link.into();
        let get = self.rtnetlink().link().get();
        let get = match &link {
            LinkRef::Index(i) => get.match_index(*i),
            LinkRef::Name(n) => get.match_name(n.clone()),
        };
        match get.execute().try_next().await {
            Ok(Some(msg)) => Ok(msg.header.index),
            Ok(None) => {
                if self.conn(false).await?.closed() {
                    Err(self.request_error("get link", rtnetlink::Error::RequestFailed))
                } else {
                    Err(Error::LinkNotFound {
                        link: link.to_string(),
                        ns: self.describe(),
                    })
                }
            }
            Err(e) if crate::error_code(&e) == Some(libc::ENODEV) => Err(Error::LinkNotFound {
                link: link.to_string(),
                ns: self.describe(),
            }),
            Err(e) => Err(self.request_error("get link", e)),
        }
    }

    pub(crate) fn request_error(&self, op: &'static str, source: rtnetlink::Error) -> Error {
        if let Some(after) = self.request_timeout()
            && crate::error_code(&source) == Some(libc::ETIMEDOUT)
            && crate::error_message(&source).as_deref() == Some(crate::inflight::TIMEOUT_MESSAGE)
        {
            return Error::Timeout {
                op,
                ns: self.describe(),
                after,
            };
        }
        Error::Request {
            op,
            ns: self.describe(),
            source,
        }
    }

    /// Sends `msg` with `NLM_F_REQUEST | NLM_F_ACK | flags` and waits for the
    /// kernel's answer. A connection that ended before answering is an error.
    ///
    /// `fd`: the namespace whose fd number the request carries (only a
    /// direct socket's kernel side resolves it); it is held open until the
    /// kernel answered, even if this future is dropped first.
    pub(crate) async fn ack(
        &self,
        op: &'static str,
        msg: RouteNetlinkMessage,
        flags: u16,
        fd: Option<&NetNs>,
    ) -> Result<()> {
        let conn = self.conn(fd.is_some()).await?;
        let mut req = NetlinkMessage::from(msg);
        req.header.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
        let replies = conn
            .rtnl()
            .clone()
            .request(req)
            .map_err(|e| self.request_error(op, e))?;
        let mut replies = Replies::new(replies, fd);
        while let Some(reply) = replies.next().await {
            if let NetlinkPayload::Error(err) = reply.payload
                && err.code.is_some()
            {
                return Err(self.request_error(op, rtnetlink::Error::NetlinkError(err)));
            }
        }
        if conn.closed() {
            return Err(self.request_error(op, rtnetlink::Error::RequestFailed));
        }
        Ok(())
    }
}

/// The replies to a request that carries an fd number of this process
/// (`IFLA_NET_NS_FD`, `NETNSA_FD`), holding that fd open until the kernel
/// answered. If the caller stops waiting first (its future dropped), a task
/// keeps the fd until the answer comes: closed earlier, its number could be
/// given to another file opened meanwhile, before the connection task sends
/// the request, and the kernel would act on that file (a link moved into the
/// wrong namespace).
pub(crate) struct Replies<S>
where
    S: futures::Stream<Item = NetlinkMessage<RouteNetlinkMessage>> + Unpin + Send + 'static,
{
    /// `None` once it ended.
    stream: Option<S>,
    fd: Option<NetNs>,
}

impl<S> Replies<S>
where
    S: futures::Stream<Item = NetlinkMessage<RouteNetlinkMessage>> + Unpin + Send + 'static,
{
    pub(crate) fn new(stream: S, fd: Option<&NetNs>) -> Replies<S> {
        Replies {
            stream: Some(stream),
            fd: fd.cloned(),
        }
    }

    pub(crate) async fn next(&mut self) -> Option<NetlinkMessage<RouteNetlinkMessage>> {
        let item = self.stream.as_mut()?.next().await;
        if item.is_none() {
            self.stream = None;
            self.fd = None;
        }
        item
    }
}

impl<S> Drop for Replies<S>
where
    S: futures::Stream<Item = NetlinkMessage<RouteNetlinkMessage>> + Unpin + Send + 'static,
{
    fn drop(&mut self) {
        if let (Some(mut stream), Some(fd)) = (self.stream.take(), self.fd.take()) {
            // The stream ends when the kernel answered, or with ECANCELED
            // when the handle closes: the task never outlives the connection.
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move {
                    while stream.next().await.is_some() {}
                    drop(fd);
                });
            }
        }
    }
}
