//! The `Agent` handle and its verbs: requests over the connection.

use std::fmt;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{oneshot, watch};
use tracing::Instrument;

use super::conn::{Conn, Keep};
use super::launch::frame_pair;
use super::{AgentChild, SpawnRequest, finish, remote, unexpected};
use crate::proto::{Reply, Request};
use crate::relay::RelaySocket;
use crate::{Error, Result, sys};

/// A running agent: a process inside a network namespace, started by
/// spawn/exec of the current executable (never a fork of the application),
/// serving requests over a `SOCK_SEQPACKET` control socket.
///
/// Cloning is cheap: clones share the one agent. The agent exits when the
/// last `Agent` clone and everything it handed out ([`RelaySocket`],
/// [`AgentChild`]) are dropped, or at once on [`Agent::close`]; it also
/// dies with the application (`PR_SET_PDEATHSIG`). Its process is reaped
/// through a pidfd by a background task.
///
/// # Examples
///
/// ```no_run
/// # async fn demo() -> nsproxy::Result<()> {
/// let ns = nsfs::NetNs::open("/run/netns/blue").expect("namespace");
/// let agent = nsproxy::Agent::start(&ns, nsproxy::AgentOptions::new()).await?;
/// let udp = agent.open_socket(libc::AF_INET, libc::SOCK_DGRAM, 0).await?;
/// agent.close().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Agent {
    pub(super) conn: Arc<Conn>,
    pub(super) keep: Arc<Keep>,
    pub(super) done: watch::Receiver<Option<Option<i32>>>,
    /// The deadline of each request made through this handle.
    pub(super) request_timeout: Option<Duration>,
    /// For spans: the namespace's name or path, and inode.
    pub(super) netns: Option<Arc<str>>,
    pub(super) inode: u64,
}

impl fmt::Debug for Agent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Agent")
            .field("pid", &self.conn.pid)
            .field("request_timeout", &self.request_timeout)
            .finish_non_exhaustive()
    }
}

impl Agent {
    /// The agent's pid (in the application's pid namespace).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(agent: nsproxy::Agent) {
    /// assert!(agent.pid() > 0);
    /// # }
    /// ```
    pub fn pid(&self) -> i32 {
        self.conn.pid
    }

    /// Whether the agent's connection is still open.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(agent: nsproxy::Agent) {
    /// if !agent.is_alive() { println!("agent gone"); }
    /// # }
    /// ```
    pub fn is_alive(&self) -> bool {
        self.conn.table().ended().is_none()
    }

    /// A handle on the same agent whose requests have deadline `limit`
    /// (`None`: no limit) instead of [`AgentOptions::request_timeout`](crate::AgentOptions::request_timeout):
    /// a per-call deadline is `agent.with_request_timeout(...).spawn(...)`.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(agent: nsproxy::Agent) -> nsproxy::Result<()> {
    /// use std::time::Duration;
    /// let quick = agent.with_request_timeout(Some(Duration::from_millis(500)));
    /// let fd = quick.open_socket(libc::AF_INET, libc::SOCK_DGRAM, 0).await?;
    /// # Ok(()) }
    /// ```
    pub fn with_request_timeout(&self, limit: Option<Duration>) -> Agent {
        Agent {
            request_timeout: limit,
            ..self.clone()
        }
    }

    /// The `agent_request` span of one request.
    fn span(&self, op: &'static str) -> tracing::Span {
        let span = tracing::debug_span!(
            "agent_request",
            op,
            netns = tracing::field::Empty,
            inode = self.inode,
            pid = self.conn.pid,
            outcome = tracing::field::Empty,
            error = tracing::field::Empty,
        );
        if let Some(netns) = &self.netns {
            span.record("netns", tracing::field::display(netns));
        }
        span
    }

    /// Runs request `op` in its span, recording the outcome.
    async fn traced<T>(&self, op: &'static str, fut: impl Future<Output = Result<T>>) -> Result<T> {
        let span = self.span(op);
        let result = fut.instrument(span.clone()).await;
        finish(&span, &result);
        result
    }

    /// Opens a socket of `(domain, ty, protocol)` inside the namespace, in
    /// the agent, and hands back its fd (`SCM_RIGHTS`). `SOCK_CLOEXEC` is
    /// always added; `SOCK_NONBLOCK` may be passed in `ty`.
    ///
    /// # Cancel safety
    ///
    /// If the future is dropped after the request was sent, the socket the
    /// agent sends back is closed on arrival (as after a deadline).
    ///
    /// # Errors
    ///
    /// [`Error::Remote`] with step `Socket` and the errno of `socket(2)`;
    /// [`Error::AgentGone`] if the agent is gone;
    /// [`Error::Timeout`] past the request deadline
    /// ([`AgentOptions::request_timeout`](crate::AgentOptions::request_timeout));
    /// [`Error::Protocol`] if the agent answers with a reply of another kind
    /// (the connection is then closed).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(agent: nsproxy::Agent) -> nsproxy::Result<()> {
    /// let fd = agent.open_socket(libc::AF_INET6, libc::SOCK_STREAM, 0).await?;
    /// let listener = std::net::TcpListener::from(fd);
    /// # Ok(()) }
    /// ```
    pub async fn open_socket(&self, domain: i32, ty: i32, protocol: i32) -> Result<OwnedFd> {
        let req = Request::OpenSocket {
            domain,
            ty,
            protocol,
        };
        self.traced("open_socket", self.fd_request("open_socket", &req, &[]))
            .await
    }

    /// A request answered by `Socket` with one fd.
    async fn fd_request(
        &self,
        op: &'static str,
        req: &Request,
        fds: &[BorrowedFd<'_>],
    ) -> Result<OwnedFd> {
        let deadline = self.request_timeout;
        match self
            .conn
            .request(op, req, fds, None, false, deadline)
            .await?
        {
            (Reply::Socket, mut fds) => Ok(fds.remove(0)),
            (
                Reply::Failed {
                    step,
                    errno,
                    detail,
                },
                _,
            ) => Err(remote(step, errno, &detail)),
            (other, _) => Err(unexpected("Socket", &other)),
        }
    }

    /// Opens a socket of `(domain, ty, protocol)` inside the network
    /// namespace `ns` (which need not be the agent's own): the agent enters
    /// `ns`, makes the socket, returns to its own namespace and hands the
    /// socket back. The socket keeps `ns` and the agent's credentials for
    /// its whole life; used from the caller it costs what a socket made by
    /// the caller would cost. This is how an unprivileged caller gets
    /// sockets (netlink included) inside the namespaces of a user-namespace
    /// agent ([`Agent::start_user`]).
    ///
    /// # Cancel safety
    ///
    /// As [`Agent::open_socket`]: a socket that arrives after the future was
    /// dropped is closed.
    ///
    /// # Errors
    ///
    /// [`Error::Remote`] with step `SetnsNet` (the agent may not enter `ns`:
    /// a namespace of another user namespace), `Socket` or `SetnsHome`;
    /// otherwise as [`Agent::open_socket`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(agent: nsproxy::Agent, ns: nsfs::NetNs) -> nsproxy::Result<()> {
    /// let nl = agent
    ///     .open_socket_in(&ns, libc::AF_NETLINK, libc::SOCK_RAW, libc::NETLINK_ROUTE)
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn open_socket_in(
        &self,
        ns: &nsfs::NetNs,
        domain: i32,
        ty: i32,
        protocol: i32,
    ) -> Result<OwnedFd> {
        let req = Request::OpenSocketIn {
            domain,
            ty,
            protocol,
        };
        let op = "open_socket_in";
        self.traced(op, self.fd_request(op, &req, &[ns.as_fd()]))
            .await
    }

    /// Makes a new network namespace owned by the agent's user namespace
    /// (a user-namespace agent, [`Agent::start_user`]) and opens it. With a
    /// `name`, the agent also holds it and names it in its name directory
    /// (a symlink `DIR/NAME` to the fd it holds): the namespace then lives
    /// until the name is removed or the agent exits, and any process of the
    /// same user opens it through the name.
    ///
    /// # Cancel safety
    ///
    /// If dropped after the request was sent, the namespace may still be
    /// made and, with a name, named (remove the name to release it).
    ///
    /// # Errors
    ///
    /// [`Error::Remote`] with step `UnshareNet` (`ENOSPC`: the
    /// `user.max_net_namespaces` limit), `SetnsHome`, or `Name` (`EEXIST`:
    /// the name is taken; `EINVAL`: the agent has no name directory);
    /// [`Error::Io`] if the fd received is not a network namespace;
    /// otherwise as [`Agent::open_socket`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(agent: nsproxy::Agent) -> nsproxy::Result<()> {
    /// let blue = agent.new_netns(Some(&"blue".parse().expect("name"))).await?;
    /// # Ok(()) }
    /// ```
    pub async fn new_netns(&self, name: Option<&nsfs::NsName>) -> Result<nsfs::NetNs> {
        let req = Request::NewNetNs {
            name: name.map(|n| n.as_str().as_bytes().to_vec()),
        };
        let op = "new_netns";
        self.traced(op, async {
            let fd = self.fd_request(op, &req, &[]).await?;
            nsfs::NetNs::from_fd(fd).map_err(|e| Error::Io {
                op: "new network namespace",
                source: e.into(),
            })
        })
        .await
    }

    /// Holds the network namespace `ns` and names it `name` in the agent's
    /// name directory (a user-namespace agent, [`Agent::start_user`], with
    /// one), exactly as [`new_netns`](Agent::new_netns) names a namespace it
    /// made: a symlink `DIR/NAME` to the fd the agent keeps, until the name
    /// is removed or the agent exits. `ns` may belong to any user namespace
    /// (holding an fd needs no privilege): this is `ip netns attach` for a
    /// user without root, with `ns` opened from `/proc/PID/ns/net` or a
    /// pidfd by the caller.
    ///
    /// # Cancel safety
    ///
    /// If dropped after the request was sent, the name may still be made
    /// (remove it to release the namespace).
    ///
    /// # Errors
    ///
    /// [`Error::Remote`] with step `Name`: `EEXIST` if the name is taken,
    /// `EINVAL` if the agent has no name directory; otherwise as
    /// [`Agent::open_socket`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(agent: nsproxy::Agent) -> Result<(), Box<dyn std::error::Error>> {
    /// let theirs = nsfs::NetNs::from_pid(4242)?;
    /// agent.name_netns(&theirs, &"theirs".parse()?).await?;
    /// # Ok(()) }
    /// ```
    #[doc(alias = "ip netns attach")]
    pub async fn name_netns(&self, ns: &nsfs::NetNs, name: &nsfs::NsName) -> Result<()> {
        let req = Request::NameNetNs {
            name: name.as_str().as_bytes().to_vec(),
        };
        let op = "name_netns";
        self.traced(op, async {
            // The namespace comes back; the caller holds it already.
            self.fd_request(op, &req, &[ns.as_fd()]).await.map(drop)
        })
        .await
    }

    /// Opens a netlink socket of `protocol` (`NETLINK_ROUTE`, ...) inside the
    /// namespace and relays it: every datagram goes through the agent.
    ///
    /// The returned [`RelaySocket`] implements [`netlink_sys::AsyncSocket`],
    /// so it plugs into `rtnetlink::from_socket`. Its `socket_mut()` is a dup
    /// of the agent's own netlink socket: `bind` (multicast groups),
    /// `add_membership` and socket options act on the socket that relays.
    ///
    /// # Cancel safety
    ///
    /// If the future is dropped after the request was sent, the relay is torn
    /// down as soon as the agent notices its channel is closed.
    ///
    /// # Errors
    ///
    /// [`Error::Remote`] with step `Netlink`; [`Error::AgentGone`];
    /// [`Error::Io`] if the relay channel could not be made or registered;
    /// [`Error::Timeout`] past the request deadline
    /// ([`AgentOptions::request_timeout`](crate::AgentOptions::request_timeout));
    /// [`Error::Protocol`] if the agent answers with a reply of another kind
    /// (the connection is then closed).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(agent: nsproxy::Agent) -> nsproxy::Result<()> {
    /// let relay = agent.netlink(netlink_sys::protocols::NETLINK_ROUTE).await?;
    /// # Ok(()) }
    /// ```
    pub async fn netlink(&self, protocol: isize) -> Result<RelaySocket> {
        self.traced("netlink", async {
            let (ours, theirs) = frame_pair().map_err(|source| Error::Io {
                op: "relay socketpair",
                source,
            })?;
            let req = Request::OpenRelay {
                protocol: protocol as i32,
            };
            let (reply, mut fds) = self
                .conn
                .request(
                    "netlink",
                    &req,
                    &[theirs.as_fd()],
                    None,
                    false,
                    self.request_timeout,
                )
                .await?;
            drop(theirs);
            match reply {
                Reply::Relay => {
                    let nl = sys::netlink_socket(fds.remove(0));
                    RelaySocket::new(ours, nl, Arc::clone(&self.keep))
                }
                Reply::Failed {
                    step,
                    errno,
                    detail,
                } => Err(remote(step, errno, &detail)),
                other => Err(unexpected("Relay", &other)),
            }
        })
        .await
    }

    /// Runs a program inside the namespace, in the agent (and in its mount
    /// namespace if the agent was started with
    /// [`exec_mounts`](crate::AgentOptions::exec_mounts)).
    ///
    /// Returns once the program runs (or failed to start), with its pid,
    /// pidfd and the client ends of the pipes asked for. Its exit status
    /// comes later through [`AgentChild::wait`]. A missing or
    /// non-executable program fails at once with `ENOENT`/`EACCES`.
    ///
    /// # Cancel safety
    ///
    /// If the future is dropped after the request was sent, the program may
    /// run; if `kill_on_drop` was set it is killed as soon as the agent's
    /// answer arrives (as a dropped [`AgentChild`] would be, and as after a
    /// deadline, with or without `kill_on_drop`), and it is reaped
    /// by the agent either way.
    ///
    /// # Errors
    ///
    /// [`Error::Remote`] with step `Exec` and the program as detail (or
    /// `Pidfd`); [`Error::AgentGone`]; [`Error::InvalidInput`] if a string
    /// has a NUL byte;
    /// [`Error::Timeout`] past the request deadline (a
    /// program the agent starts after it is killed at once)
    /// ([`AgentOptions::request_timeout`](crate::AgentOptions::request_timeout));
    /// [`Error::Protocol`] if the agent answers with a reply of another kind
    /// (the connection is then closed).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(agent: nsproxy::Agent) -> nsproxy::Result<()> {
    /// use nsproxy::{AgentStdio, SpawnRequest};
    /// let mut child = agent
    ///     .spawn(SpawnRequest::new("/bin/ip").arg("link").stdout(AgentStdio::Pipe))
    ///     .await?;
    /// let status = child.wait().await?;
    /// assert!(status.success());
    /// # Ok(()) }
    /// ```
    pub async fn spawn(&self, req: SpawnRequest) -> Result<AgentChild> {
        self.traced("spawn", self.spawn_untraced(req)).await
    }

    async fn spawn_untraced(&self, req: SpawnRequest) -> Result<AgentChild> {
        if let Some(err) = req.invalid {
            return Err(err);
        }
        let spec = req.spec;
        let program = spec.program.clone();
        let kill_on_drop = spec.kill_on_drop;
        let fds: Vec<BorrowedFd<'_>> = req
            .fds
            .iter()
            .chain(std::iter::once(&req.netns))
            .flatten()
            .map(|fd| fd.as_fd())
            .collect();
        let (exit_tx, exit_rx) = oneshot::channel();
        let (reply, fds) = self
            .conn
            .request(
                "spawn",
                &Request::Spawn(spec),
                &fds,
                Some(exit_tx),
                kill_on_drop,
                self.request_timeout,
            )
            .await?;
        drop(req.fds);
        drop(req.netns);
        match reply {
            Reply::Spawned { pid, stdio } => {
                let mut fds = fds.into_iter();
                let pidfd = fds.next().expect("decode_reply checked the fd count");
                let mut take = |present: bool| if present { fds.next() } else { None };
                let (stdin, stdout, stderr) = (take(stdio[0]), take(stdio[1]), take(stdio[2]));
                Ok(AgentChild {
                    pid,
                    pidfd,
                    stdin,
                    stdout,
                    stderr,
                    exit: Some(exit_rx),
                    status: None,
                    kill_on_drop,
                    agent_pid: self.conn.pid,
                    _keep: Arc::clone(&self.keep),
                })
            }
            Reply::Failed { step, errno, .. } => Err(remote(step, errno, &program)),
            other => Err(unexpected("Spawned", &other)),
        }
    }

    /// Stops the agent now: closes its control connection (even if relays or
    /// children handed out by it are still alive: they then fail with
    /// [`Error::AgentGone`]) and waits until it has exited and been reaped.
    /// Children it spawned with `kill_on_drop` are killed by the agent;
    /// the others keep running.
    ///
    /// Returns the agent's exit status (success: a clean exit).
    ///
    /// # Cancel safety
    ///
    /// If the future is dropped, the agent still stops and is reaped in the
    /// background.
    ///
    /// # Errors
    ///
    /// [`Error::AgentGone`] if the reader task was dropped with its runtime
    /// before it could report the status (the agent is reaped anyway).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(agent: nsproxy::Agent) -> nsproxy::Result<()> {
    /// let status = agent.close().await?;
    /// assert!(status.success());
    /// # Ok(()) }
    /// ```
    pub async fn close(self) -> Result<ExitStatus> {
        sys::shutdown(self.conn.ctl.get_ref().as_fd());
        let pid = self.conn.pid;
        let mut done = self.done.clone();
        drop(self);
        match done.wait_for(Option::is_some).await {
            Ok(status) => status
                .flatten()
                .map(ExitStatus::from_raw)
                .ok_or(Error::AgentGone { pid }),
            Err(_) => Err(Error::AgentGone { pid }),
        }
    }
}
