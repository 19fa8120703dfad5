//! `Handle`: one network namespace, held open, with an rtnetlink connection
//! inside it.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures::channel::mpsc::UnboundedReceiver;
use netlink_packet_core::NetlinkMessage;
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::SocketAddr;
use nsfs::{NetNs, NsName, OpenMode, RunDir};
use tokio::task::JoinHandle;

use crate::transport::{
    DEFAULT_RECEIVE_BUFFER, NetlinkSocket, Options, Tracker, Transport, open_socket,
};
use crate::{Error, Result, Target};

/// The connection future of a namespace's netlink socket: spawn it (or poll
/// it) for the paired [`rtnetlink::Handle`] to make progress.
///
/// # Examples
///
/// ```no_run
/// # async fn demo(h: netns::Handle) -> netns::Result<()> {
/// let (connection, rtnl, _): (netns::Connection, _, _) = h.connection().await?;
/// tokio::spawn(connection);
/// # Ok(()) }
/// ```
pub type Connection = netlink_proto::Connection<RouteNetlinkMessage, NetlinkSocket>;

/// Messages the kernel sent that answer no request (multicast events,
/// overruns), as `rtnetlink` delivers them.
///
/// # Examples
///
/// ```no_run
/// # async fn demo(h: netns::Handle) -> netns::Result<()> {
/// use futures::StreamExt;
/// let (connection, _rtnl, mut messages): (_, _, netns::Messages) = h.connection().await?;
/// tokio::spawn(connection);
/// while let Some((msg, _addr)) = messages.next().await {
///     println!("{:?}", msg.payload);
/// }
/// # Ok(()) }
/// ```
pub type Messages = UnboundedReceiver<(NetlinkMessage<RouteNetlinkMessage>, SocketAddr)>;

/// Options for opening a [`Handle`]: made by [`Handle::builder`].
///
/// # Examples
///
/// ```no_run
/// # async fn demo() -> netns::Result<()> {
/// use netns::{Handle, OpenMode, RunDir};
/// let h = Handle::builder("blue")
///     .mode(OpenMode::CreateExclusive)
///     .run_dir(RunDir::new("/run/netns"))
///     .receive_buffer(8 << 20)
///     .open()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
#[must_use = "a builder does nothing until .open() is awaited"]
pub struct Builder {
    target: Target,
    mode: OpenMode,
    run_dir: RunDir,
    options: Options,
    open_timeout: Option<Duration>,
}

impl Builder {
    /// What to do if the namespace (a name) exists or not; the default is
    /// [`OpenMode::CreateOrOpen`], like pyroute2's `NetNS`.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo() -> netns::Result<()> {
    /// let h = netns::Handle::builder("blue").mode(netns::OpenMode::OpenOnly).open().await?;
    /// # Ok(()) }
    /// ```
    pub fn mode(mut self, mode: OpenMode) -> Builder {
        self.mode = mode;
        self
    }

    /// The directory names are looked up and created in (default
    /// `/run/netns`).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo() -> netns::Result<()> {
    /// let h = netns::Handle::builder("c1").run_dir(netns::RunDir::new(netns::DOCKER_RUN_DIR)).open().await?;
    /// # Ok(()) }
    /// ```
    pub fn run_dir(mut self, dir: RunDir) -> Builder {
        self.run_dir = dir;
        self
    }

    /// The netlink transport (default [`Transport::Direct`]).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo() -> netns::Result<()> {
    /// let h = netns::Handle::builder("blue").transport(netns::Transport::Direct).open().await?;
    /// # Ok(()) }
    /// ```
    pub fn transport(mut self, transport: Transport) -> Builder {
        self.options.transport = transport;
        self
    }

    /// The receive buffer of the handle's netlink sockets, in bytes (default
    /// 4 MiB; set with `SO_RCVBUFFORCE`, or `SO_RCVBUF` without
    /// `CAP_NET_ADMIN`; 0 keeps the system default).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo() -> netns::Result<()> {
    /// let h = netns::Handle::builder("blue").receive_buffer(16 << 20).open().await?;
    /// # Ok(()) }
    /// ```
    pub fn receive_buffer(mut self, bytes: usize) -> Builder {
        self.options.receive_buffer = bytes;
        self
    }

    /// Whether large dumps are read ahead on another thread (default on;
    /// direct transport only).
    ///
    /// The kernel builds a dump inside the reader's `recvmsg`, a datagram at
    /// a time. With read-ahead, once a dump answer shows to be large (a
    /// datagram of 8 KiB or more with more to come), a thread of tokio's
    /// blocking pool receives the rest while the connection task parses, so
    /// the kernel's work and the parsing overlap on two cores (a dump of
    /// 2,000 links: 22 ms without, about 12 ms with it). At most 1 MiB waits
    /// read ahead; small answers (a `get`, an ack, a short dump) are read
    /// inline and never meet a thread. Turn it off to keep every read on the
    /// connection task (on a single core there is nothing to overlap).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo() -> netns::Result<()> {
    /// let h = netns::Handle::builder("blue").read_ahead(false).open().await?;
    /// # Ok(()) }
    /// ```
    pub fn read_ahead(mut self, on: bool) -> Builder {
        self.options.read_ahead = on;
        self
    }

    /// A deadline for opening the handle: resolving or creating the
    /// namespace, starting the relay agent, making the netlink socket. Past
    /// it, [`open`](Builder::open) fails with [`Error::Timeout`] and what was
    /// made so far is released (a namespace being created may still appear,
    /// as when the future is dropped). Default: none.
    ///
    /// # Panics
    ///
    /// [`open`](Builder::open) panics if the runtime has no time driver
    /// (`enable_time`) and a timeout is set.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo() -> netns::Result<()> {
    /// use std::time::Duration;
    /// let h = netns::Handle::builder("blue").open_timeout(Duration::from_secs(2)).open().await?;
    /// # Ok(()) }
    /// ```
    pub fn open_timeout(mut self, timeout: Duration) -> Builder {
        self.open_timeout = Some(timeout);
        self
    }

    /// A deadline for every netlink request of the handle (on
    /// [`rtnetlink`](Handle::rtnetlink), the handle's own operations, and
    /// [`connection`](Handle::connection)s made from it): a request without
    /// its final answer (the reply, the ack, a dump's `NLMSG_DONE`) that long
    /// after it was handed to the connection fails with `ETIMEDOUT` (an
    /// `rtnetlink::Error::NetlinkError`, whose [`error_code`](crate::error_code)
    /// is `ETIMEDOUT`; the handle's own operations return
    /// [`Error::Timeout`]). A late answer is dropped when it comes. A dump
    /// that waits for another dump on the same socket counts its wait. Use it
    /// with the relay transport, whose agent could stop answering. Default:
    /// none.
    ///
    /// # Panics
    ///
    /// The connection task panics if the runtime has no time driver
    /// (`enable_time`) and a timeout is set.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo() -> netns::Result<()> {
    /// use std::time::Duration;
    /// let h = netns::Handle::builder("blue")
    ///     .transport(netns::Transport::Relay)
    ///     .request_timeout(Duration::from_secs(5))
    ///     .open()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn request_timeout(mut self, timeout: Duration) -> Builder {
        self.options.request_timeout = Some(timeout);
        self
    }

    /// Opens the handle. See [`Handle::open`].
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe in one respect: if dropped while a name is being
    /// created, the namespace may still be created (and stays until removed).
    /// Anything else made so far is released.
    ///
    /// # Errors
    ///
    /// As [`Handle::open`]; [`Error::Timeout`] past the
    /// [`open_timeout`](Builder::open_timeout).
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime (the connection task is spawned on it).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo() -> netns::Result<()> {
    /// let h = netns::Handle::builder("blue").open().await?;
    /// # Ok(()) }
    /// ```
    pub async fn open(self) -> Result<Handle> {
        let span = tracing::debug_span!(
            "open",
            netns = %self.target,
            inode = tracing::field::Empty,
            transport = ?self.options.transport,
            outcome = tracing::field::Empty,
            error = tracing::field::Empty,
        );
        crate::trace::traced(span, async move {
            let Some(after) = self.open_timeout else {
                return self.open_now().await;
            };
            let ns = self.target.to_string();
            tokio::time::timeout(after, self.open_now())
                .await
                .map_err(|_| Error::Timeout {
                    op: "open handle",
                    ns: ns.into(),
                    after,
                })?
        })
        .await
    }

    async fn open_now(self) -> Result<Handle> {
        let resolved = crate::target::resolve(&self.target, &self.run_dir, self.mode).await?;
        let span = tracing::Span::current();
        // Describing allocates a path: only when a subscriber listens.
        if !span.is_disabled() {
            span.record("inode", resolved.netns.id().ino);
            span.record(
                "netns",
                tracing::field::display(
                    describe(&resolved.netns, resolved.name.as_ref(), &self.run_dir).display(),
                ),
            );
        }
        let agent = match self.options.transport {
            Transport::Direct => None,
            Transport::Relay => Some(
                nsproxy::Agent::start(&resolved.netns, relay_options(&resolved.netns)?)
                    .await
                    .map_err(|source| Error::Relay {
                        ns: describe(&resolved.netns, resolved.name.as_ref(), &self.run_dir),
                        source,
                    })?,
            ),
        };
        let socket = open_socket(&resolved.netns, self.options, agent.as_ref()).await?;
        Ok(Handle {
            netns: resolved.netns,
            name: resolved.name,
            run_dir: self.run_dir,
            options: self.options,
            conn: Conn::start(socket, self.options),
            agent,
            fd_conn: tokio::sync::OnceCell::new(),
            dump_conn: tokio::sync::OnceCell::new(),
        })
    }
}

/// The relay agent's options: in rootless mode it enters the namespace's
/// own user namespace first.
fn relay_options(ns: &NetNs) -> Result<nsproxy::AgentOptions> {
    let opts = nsproxy::AgentOptions::new();
    if !crate::rootless() {
        return Ok(opts);
    }
    Ok(opts.user_namespace(ns.owner_user_ns()?))
}

/// A connection driven by a task, whose requests in flight are answered
/// with `ECANCELED` when it closes.
#[derive(Debug)]
pub(crate) struct Conn {
    rtnl: rtnetlink::Handle,
    tracker: Arc<Tracker>,
    task: Option<JoinHandle<()>>,
    /// Set by the task as its connection ends, before the connection (and
    /// with it every request still queued for it) is dropped: a request
    /// stream that ends empty because of that drop finds it set. The task's
    /// own `is_finished` becomes true only after the drop, and a caller on
    /// another worker thread could look in between.
    ended: Arc<std::sync::atomic::AtomicBool>,
}

impl Conn {
    fn start(socket: NetlinkSocket, options: Options) -> Conn {
        Conn::start_with(socket, options, false)
    }

    /// A connection whose request streams end with the NLMSG_DONE of a dump
    /// (`forward_done`), where the kernel reports a dump's failure.
    fn start_with(socket: NetlinkSocket, options: Options, forward_done: bool) -> Conn {
        let (socket, tracker) = socket.tracked(true, options.request_timeout);
        let (mut connection, rtnl, _messages) = rtnetlink::from_socket(socket);
        connection.set_forward_done(forward_done);
        // Driven until the tracker has answered everything after a close or
        // the transport's death, then dropped: netlink-proto ends a
        // connection on its own only with an error (which it logs).
        let done = Arc::clone(&tracker);
        let ended = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let ending = Arc::clone(&ended);
        let mut connection = Box::pin(connection);
        let driven = std::future::poll_fn(move |cx| {
            if connection.as_mut().poll(cx).is_ready() || done.finished() {
                ending.store(true, std::sync::atomic::Ordering::SeqCst);
                return std::task::Poll::Ready(());
            }
            std::task::Poll::Pending
        });
        Conn {
            rtnl,
            tracker,
            task: Some(tokio::spawn(driven)),
            ended,
        }
    }

    pub(crate) fn rtnl(&self) -> &rtnetlink::Handle {
        &self.rtnl
    }

    /// Whether the connection task has ended (socket failed or closed).
    pub(crate) fn closed(&self) -> bool {
        self.ended.load(std::sync::atomic::Ordering::SeqCst)
            || self.task.as_ref().is_none_or(|t| t.is_finished())
    }

    async fn close(&mut self) {
        self.tracker.close();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        // The connection answers what is in flight with ECANCELED, then ends
        // on its own (an abort would end those requests without an answer).
        self.tracker.close();
    }
}

/// One network namespace, held open, with an rtnetlink connection inside it:
/// what pyroute2's `NetNS` / `IPRoute(netns=...)` are, async.
///
/// - [`rtnetlink`](Handle::rtnetlink) gives a real [`rtnetlink::Handle`] whose
///   requests run inside the namespace; its connection is driven by a task on
///   the runtime that opened the handle. [`connection`](Handle::connection)
///   gives the `(Connection, Handle, Messages)` triple to drive yourself.
/// - [`events`](Handle::events): multicast events from inside the namespace.
/// - [`move_link`](Handle::move_link), [`add_veth`](Handle::add_veth): links
///   moved or created into namespaces given by name, path, pid or handle.
/// - [`nsid`](Handle::nsid), [`set_nsid`](Handle::set_nsid),
///   [`list_nsids`](Handle::list_nsids): namespace ids (`ip netns list-id`).
/// - [`tcp_listener`](Handle::tcp_listener), [`tcp_connect`](Handle::tcp_connect),
///   [`udp_bind`](Handle::udp_bind), [`socket`](Handle::socket): sockets that
///   live inside the namespace.
///
/// The handle holds the namespace open: it keeps working even if the
/// namespace's name is removed meanwhile.
///
/// # Drop
///
/// Dropping the handle (or [`close`](Handle::close)) closes its namespace fd
/// and ends its connection: every request still in flight, on this handle or
/// on `rtnetlink::Handle` clones of it, is answered with an `ECANCELED` error
/// (`rtnetlink::Error::NetlinkError`, see [`error_code`](crate::error_code)),
/// then the connection task ends and closes the netlink socket. Later
/// requests on surviving clones fail with `rtnetlink::Error::RequestFailed`.
/// (A request issued by another task at the very moment the connection ends
/// can see its reply stream end empty instead; none ever hangs.) A normal
/// close logs nothing above DEBUG.
///
/// If the transport dies (the relay agent exits), every request in flight
/// fails with its errno (`ECONNRESET`, `EPIPE`) and the connection ends;
/// later requests fail with `rtnetlink::Error::RequestFailed`.
/// The namespace itself stays (remove it with [`RunDir::remove`]).
///
/// # Examples
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use futures::TryStreamExt;
/// use netns::{Handle, OpenMode};
///
/// let blue = Handle::open("blue", OpenMode::CreateOrOpen).await?;
/// let mut links = blue.rtnetlink().link().get().execute();
/// while let Some(link) = links.try_next().await? {
///     println!("{:?}", link.header.index);
/// }
/// blue.close().await;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Handle {
    netns: NetNs,
    name: Option<NsName>,
    run_dir: RunDir,
    options: Options,
    conn: Conn,
    /// The nsproxy agent of the relay transport.
    agent: Option<nsproxy::Agent>,
    /// With the relay transport, a direct connection for requests that carry
    /// an fd (the agent could not resolve our fd numbers).
    fd_conn: tokio::sync::OnceCell<Conn>,
    /// A connection that hands out NLMSG_DONE, for the facade's own dumps
    /// (made on first use): a dump that fails reports its error there, and
    /// netlink-proto drops it otherwise. Not the handle's own connection,
    /// whose `rtnetlink::Handle` requests would take a DONE for an
    /// unexpected message.
    dump_conn: tokio::sync::OnceCell<Conn>,
}

impl Handle {
    /// Opens a handle on the namespace `target` (a name, a path, a pid or a
    /// [`NetNs`]; a string is a path only if it starts with `/`, see
    /// [`Target`]), following `mode` (pyroute2's flags: create-or-open by
    /// default, exclusive, open-only; names and paths can be created, a pid
    /// or `NetNs` is just opened, see [`Target::open`]), with default
    /// options. Use [`Handle::builder`] for the others.
    ///
    /// Must be called inside a tokio runtime: the connection task is spawned
    /// on it. With the direct transport, when the target is the namespace the
    /// calling thread is in (same [`NsId`](crate::NsId)), the netlink socket
    /// is made on the calling thread, without a hop to a namespace thread.
    ///
    /// # Cancel safety
    ///
    /// If dropped while a name is being created, the namespace may still be
    /// created (and stays until removed); nothing else is left behind.
    ///
    /// # Errors
    ///
    /// [`Error::Namespace`] (invalid name, not found, already exists, not a
    /// namespace, no such process), [`Error::Socket`] (the netlink socket could not be made
    /// inside the namespace), [`Error::Relay`] (the relay transport's agent
    /// could not be started).
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime (the connection task is spawned on it).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo() -> netns::Result<()> {
    /// use netns::{Handle, OpenMode, Target};
    /// let by_name = Handle::open("blue", OpenMode::CreateOrOpen).await?;
    /// let by_path = Handle::open("/run/netns/blue", OpenMode::OpenOnly).await?;
    /// let of_init = Handle::open(Target::Pid(1), OpenMode::OpenOnly).await?;
    /// # Ok(()) }
    /// ```
    #[doc(alias = "NetNS")]
    pub async fn open(target: impl Into<Target>, mode: OpenMode) -> Result<Handle> {
        Handle::builder(target).mode(mode).open().await
    }

    /// A builder for a handle on `target`, to set the open mode, the run
    /// directory, the transport and the receive buffer.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo() -> netns::Result<()> {
    /// let h = netns::Handle::builder("blue").receive_buffer(1 << 20).open().await?;
    /// # Ok(()) }
    /// ```
    pub fn builder(target: impl Into<Target>) -> Builder {
        Builder {
            target: target.into(),
            mode: OpenMode::default(),
            run_dir: RunDir::default(),
            options: Options {
                transport: Transport::Direct,
                receive_buffer: DEFAULT_RECEIVE_BUFFER,
                read_ahead: true,
                request_timeout: None,
            },
            open_timeout: None,
        }
    }

    /// The namespace this handle holds open.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(h: netns::Handle) {
    /// println!("{}", h.netns().id());
    /// # }
    /// ```
    pub fn netns(&self) -> &NetNs {
        &self.netns
    }

    /// The namespace's name, if it was opened by name.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo() -> netns::Result<()> {
    /// let h = netns::Handle::open("blue", netns::OpenMode::CreateOrOpen).await?;
    /// assert_eq!(h.name().map(|n| n.as_str()), Some("blue"));
    /// # Ok(()) }
    /// ```
    pub fn name(&self) -> Option<&NsName> {
        self.name.as_ref()
    }

    /// The run directory this handle resolves names in.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn demo(h: &netns::Handle) {
    /// println!("{}", h.run_dir().path().display());
    /// # }
    /// ```
    pub fn run_dir(&self) -> &RunDir {
        &self.run_dir
    }

    /// The transport this handle's netlink sockets use.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn demo(h: &netns::Handle) {
    /// assert_eq!(h.transport(), netns::Transport::Direct);
    /// # }
    /// ```
    pub fn transport(&self) -> Transport {
        self.options.transport
    }

    /// The nsproxy agent relaying this handle's netlink requests
    /// ([`Transport::Relay`]), or `None` on the direct transport: to watch
    /// it ([`pid`](nsproxy::Agent::pid),
    /// [`is_alive`](nsproxy::Agent::is_alive)) or use it for more.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo() -> netns::Result<()> {
    /// let h = netns::Handle::builder("blue").transport(netns::Transport::Relay).open().await?;
    /// println!("relayed by pid {}", h.agent().unwrap().pid());
    /// # Ok(()) }
    /// ```
    pub fn agent(&self) -> Option<&nsproxy::Agent> {
        self.agent.as_ref()
    }

    /// The deadline of the handle's netlink requests, if one was set.
    pub(crate) fn request_timeout(&self) -> Option<Duration> {
        self.options.request_timeout
    }

    /// The rtnetlink handle whose requests run inside the namespace. It is a
    /// plain [`rtnetlink::Handle`]: every rtnetlink verb works. Clones are
    /// cheap and share the handle's connection.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(h: netns::Handle) -> Result<(), rtnetlink::Error> {
    /// use rtnetlink::LinkVeth;
    /// h.rtnetlink().link().add(LinkVeth::new("v0", "v1").build()).execute().await?;
    /// # Ok(()) }
    /// ```
    pub fn rtnetlink(&self) -> &rtnetlink::Handle {
        &self.conn.rtnl
    }

    /// A new netlink socket inside the namespace, as the
    /// `(Connection, rtnetlink::Handle, Messages)` triple
    /// `rtnetlink::new_connection()` returns, for callers who drive the
    /// connection themselves. It is independent of this handle: it keeps the
    /// namespace alive and lives until the connection future is dropped.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: if dropped, the socket made so far is closed.
    ///
    /// # Errors
    ///
    /// [`Error::Socket`] if the socket could not be made in the namespace.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(h: netns::Handle) -> netns::Result<()> {
    /// let (connection, rtnl, _messages) = h.connection().await?;
    /// tokio::spawn(connection);
    /// # Ok(()) }
    /// ```
    pub async fn connection(&self) -> Result<(Connection, rtnetlink::Handle, Messages)> {
        let span = crate::trace::handle_span!(self, "connection");
        crate::trace::traced(span, async move {
            let (socket, _) = self
                .open_socket()
                .await?
                .tracked(false, self.options.request_timeout);
            Ok(rtnetlink::from_socket(socket))
        })
        .await
    }

    /// A new netlink socket inside the namespace, on the handle's transport.
    pub(crate) async fn open_socket(&self) -> Result<NetlinkSocket> {
        open_socket(&self.netns, self.options, self.agent.as_ref()).await
    }

    /// The connection for a request: the handle's own, or, for a request
    /// that carries an fd of this process (`IFLA_NET_NS_FD`, `NETNSA_FD`) on
    /// the relay transport, a direct one (made on first use).
    pub(crate) async fn conn(&self, carries_fd: bool) -> Result<&Conn> {
        if !carries_fd || self.agent.is_none() {
            return Ok(&self.conn);
        }
        let options = Options {
            transport: Transport::Direct,
            ..self.options
        };
        self.fd_conn
            .get_or_try_init(|| async {
                Ok(Conn::start(
                    open_socket(&self.netns, options, None).await?,
                    options,
                ))
            })
            .await
    }

    /// The connection for the facade's own dumps: its streams end with the
    /// dump's NLMSG_DONE (made on first use, on the handle's transport).
    pub(crate) async fn dump_conn(&self) -> Result<&Conn> {
        self.dump_conn
            .get_or_try_init(|| async {
                Ok(Conn::start_with(
                    self.open_socket().await?,
                    self.options,
                    true,
                ))
            })
            .await
    }

    /// Ends the connection (requests in flight get `ECANCELED`) and waits
    /// until its task has closed the netlink socket, then closes the namespace
    /// fd. The namespace stays. Dropping the handle does the same without
    /// waiting.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: if dropped, the connection is already closing and its task
    /// ends on its own.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo() -> netns::Result<()> {
    /// let h = netns::Handle::open("blue", netns::OpenMode::CreateOrOpen).await?;
    /// h.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn close(mut self) {
        let span = crate::trace::handle_span!(self, "close");
        let closing = async move {
            self.conn.close().await;
            if let Some(mut fd_conn) = self.fd_conn.take() {
                fd_conn.close().await;
            }
            if let Some(mut dump_conn) = self.dump_conn.take() {
                dump_conn.close().await;
            }
            // The agent exits once nothing it handed out (relayed sockets of
            // event streams or connections made from this handle) is left.
            drop(self.agent.take());
            Ok::<(), std::convert::Infallible>(())
        };
        let _ = crate::trace::traced(span, closing).await;
    }

    /// A description of the namespace for error messages.
    pub(crate) fn describe(&self) -> PathBuf {
        describe(&self.netns, self.name.as_ref(), &self.run_dir)
    }
}

pub(crate) fn describe(ns: &NetNs, name: Option<&NsName>, dir: &RunDir) -> PathBuf {
    match (name, ns.path()) {
        (Some(n), _) => dir.entry(n),
        (None, Some(p)) => p.into(),
        (None, None) => PathBuf::from(ns.id().to_string()),
    }
}

/// A new `NETLINK_ROUTE` connection inside `netns`.
///
/// The socket is created inside `netns` (on the calling thread if it is
/// already there, else on a namespace thread), with strict checking, extended
/// acks and a 4 MiB receive buffer, then registered with the current runtime.
///
/// # Cancel safety
///
/// Cancel safe: if dropped, the socket made so far is closed.
///
/// # Errors
///
/// [`Error::Socket`] if the socket could not be made in the namespace,
/// [`Error::Namespace`] if no namespace thread could enter it.
///
/// # Examples
///
/// ```no_run
/// # async fn demo() -> netns::Result<()> {
/// let ns = netns::NetNs::open("/run/netns/blue")?;
/// let (connection, rtnl, _messages) = netns::connection(&ns).await?;
/// tokio::spawn(connection);
/// # Ok(()) }
/// ```
pub async fn connection(netns: &NetNs) -> Result<(Connection, rtnetlink::Handle, Messages)> {
    let options = Options {
        transport: Transport::Direct,
        receive_buffer: DEFAULT_RECEIVE_BUFFER,
        read_ahead: true,
        request_timeout: None,
    };
    let span = crate::trace::netns_span!(netns, "connection");
    crate::trace::traced(span, async move {
        let (socket, _) = open_socket(netns, options, None)
            .await?
            .tracked(false, None);
        Ok(rtnetlink::from_socket(socket))
    })
    .await
}
