//! The client side: starting an agent and talking to it.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::fmt;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::socket::{AddressFamily, SockFlag, SockType, setsockopt, socketpair, sockopt};
use nsfs::{NetNs, NsName};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::sync::{oneshot, watch};

use crate::agent::{ARG, MARKER, PPID};
use crate::proto::{self, MAX_FRAME, Reply, Request, SpawnSpec, StdioSpec};
use crate::relay::RelaySocket;
use crate::{Error, Result, sys};

/// How an agent is set up: which namespaces it enters besides the network
/// namespace, and whether it prepares `ip netns exec`'s mounts.
///
/// # Examples
///
/// ```
/// let opts = nsproxy::AgentOptions::new().exec_mounts(nsfs::NsName::new("blue")?);
/// # Ok::<(), nsfs::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct AgentOptions {
    user_ns: Option<Arc<OwnedFd>>,
    exec_name: Option<NsName>,
}

impl AgentOptions {
    /// The defaults: only the network namespace, no mount setup.
    ///
    /// # Examples
    ///
    /// ```
    /// let opts = nsproxy::AgentOptions::new();
    /// ```
    pub fn new() -> AgentOptions {
        AgentOptions::default()
    }

    /// Enters this user namespace (an fd on an nsfs `user` file, for example
    /// `/proc/PID/ns/user`) before the network namespace. The agent is
    /// single-threaded, which `setns` into a user namespace requires; this is
    /// what lets it work in a rootless container's namespaces.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let userns: std::os::fd::OwnedFd = std::fs::File::open("/proc/1234/ns/user")?.into();
    /// let opts = nsproxy::AgentOptions::new().user_namespace(userns);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn user_namespace(mut self, fd: OwnedFd) -> AgentOptions {
        self.user_ns = Some(Arc::new(fd));
        self
    }

    /// Prepares the agent for running programs the way `ip netns exec NAME`
    /// does: a private mount namespace with `/` a recursive slave, a sysfs of
    /// the namespace on `/sys` (so `/sys/class/net` lists its devices), and
    /// every file of `/etc/netns/NAME` bind-mounted over `/etc`.
    ///
    /// # Examples
    ///
    /// ```
    /// let opts = nsproxy::AgentOptions::new().exec_mounts(nsfs::NsName::new("blue")?);
    /// # Ok::<(), nsfs::Error>(())
    /// ```
    pub fn exec_mounts(mut self, name: NsName) -> AgentOptions {
        self.exec_name = Some(name);
        self
    }
}

type ReplyResult = Result<(Reply, Vec<OwnedFd>)>;

/// What the reader task knows about the connection.
#[derive(Default)]
struct State {
    pending: HashMap<u32, oneshot::Sender<ReplyResult>>,
    exits: HashMap<u32, oneshot::Sender<Result<i32>>>,
    /// Why the connection ended, once it has.
    ended: Option<Ended>,
    /// Spawn requests with `kill_on_drop` whose caller went away before the
    /// answer: when their `Spawned` comes, the child is killed at once.
    abandoned: HashSet<u32>,
}

#[derive(Clone, Debug)]
enum Ended {
    Gone,
    Protocol { expected: String, got: String },
}

impl Ended {
    fn error(&self, pid: i32) -> Error {
        match self {
            Ended::Gone => Error::AgentGone { pid },
            Ended::Protocol { expected, got } => Error::Protocol {
                expected: expected.clone(),
                got: got.clone(),
            },
        }
    }
}

/// The control connection, shared by the handles and the reader task.
pub(crate) struct Conn {
    ctl: AsyncFd<OwnedFd>,
    pid: i32,
    next_id: AtomicU32,
    state: Mutex<State>,
}

impl Conn {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn next_id(&self) -> u32 {
        loop {
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            if id != 0 {
                return id;
            }
        }
    }

    async fn send(&self, buf: &[u8], fds: &[BorrowedFd<'_>]) -> Result<()> {
        let sent = self
            .ctl
            .async_io(Interest::WRITABLE, |fd| {
                sys::send_frame(fd.as_fd(), buf, fds, true)
            })
            .await;
        match sent {
            Ok(_) => Ok(()),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EPIPE | libc::ECONNRESET)) => {
                Err(Error::AgentGone { pid: self.pid })
            }
            Err(source) => Err(Error::Io {
                op: "send request",
                source,
            }),
        }
    }

    /// Sends `req` and waits for its reply. `on_exit` registers an exit
    /// watcher under the same id first (for `Spawn`).
    async fn request(
        &self,
        req: &Request,
        fds: &[BorrowedFd<'_>],
        on_exit: Option<oneshot::Sender<Result<i32>>>,
        kill_on_drop: bool,
    ) -> Result<(u32, Reply, Vec<OwnedFd>)> {
        let id = self.next_id();
        let mut buf = Vec::new();
        proto::encode_request(id, req, &mut buf)?;
        let (tx, rx) = oneshot::channel();
        {
            let mut st = self.state();
            if let Some(ended) = &st.ended {
                return Err(ended.error(self.pid));
            }
            st.pending.insert(id, tx);
            if let Some(exit) = on_exit {
                st.exits.insert(id, exit);
            }
        }
        let mut guard = PendingGuard {
            conn: self,
            id,
            rx,
            sent: false,
            kill_on_drop,
            answered: false,
        };
        self.send(&buf, fds).await?;
        guard.sent = true;
        let answer = (&mut guard.rx).await;
        guard.answered = true;
        match answer {
            Ok(Ok((reply, fds))) => Ok((id, reply, fds)),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(Error::AgentGone { pid: self.pid }),
        }
    }
}

/// Forgets a request that was dropped before its answer came. A dropped
/// spawn with `kill_on_drop` kills its child as a dropped [`AgentChild`]
/// would: now if the answer is already here, else when it comes.
struct PendingGuard<'a> {
    conn: &'a Conn,
    id: u32,
    rx: oneshot::Receiver<ReplyResult>,
    /// The request went out: an answer will come.
    sent: bool,
    kill_on_drop: bool,
    /// The caller got the answer: nothing to forget.
    answered: bool,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        if self.answered {
            return;
        }
        // Under the lock, which the reader holds while it hands an answer
        // over: either the answer is in `rx` or the reader will see
        // `abandoned`.
        let mut st = self.conn.state();
        let waiting = st.pending.remove(&self.id).is_some();
        st.exits.remove(&self.id);
        if !(self.kill_on_drop && self.sent) {
            return;
        }
        if waiting {
            st.abandoned.insert(self.id);
        } else if let Ok(Ok((reply, fds))) = self.rx.try_recv() {
            kill_abandoned(&reply, &fds);
        }
    }
}

/// Kills the child of a `Spawned` answer nobody waits for (through its pidfd,
/// the answer's first fd); the agent reaps it.
fn kill_abandoned(reply: &Reply, fds: &[OwnedFd]) {
    if let (Reply::Spawned { .. }, Some(pidfd)) = (reply, fds.first()) {
        let _ = sys::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL);
    }
}

/// Keeps the agent running: held by the [`Agent`] and everything it handed
/// out. When the last one drops, the control socket is shut down and the
/// agent exits on the end of file.
pub(crate) struct Keep {
    conn: Arc<Conn>,
}

impl Drop for Keep {
    fn drop(&mut self) {
        sys::shutdown(self.conn.ctl.get_ref().as_fd());
    }
}

impl fmt::Debug for Keep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keep")
            .field("agent", &self.conn.pid)
            .finish()
    }
}

/// Reaps the agent, even if the reader task is dropped with its runtime.
struct Reaper {
    pidfd: Option<OwnedFd>,
}

impl Reaper {
    /// Waits for the agent to exit (killing it if it does not within a
    /// second of its connection closing) and reaps it: its raw wait status.
    async fn reap(&mut self) -> Option<i32> {
        let pidfd = self.pidfd.take()?;
        match sys::async_fd(pidfd) {
            Ok(afd) => {
                let exited = tokio::time::timeout(Duration::from_secs(1), afd.readable()).await;
                if exited.is_err() {
                    let _ = sys::pidfd_send_signal(afd.get_ref().as_fd(), libc::SIGKILL);
                    let _ = afd.readable().await;
                }
                let status = sys::waitid_pidfd(afd.get_ref().as_fd(), false)
                    .ok()
                    .flatten();
                drop(afd);
                status
            }
            Err(_) => None,
        }
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        if let Some(pidfd) = self.pidfd.take() {
            // Dropped without reaping (the runtime shut down, or `start` was
            // cancelled): kill and reap on a plain thread, never blocking here.
            let _ = sys::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL);
            let _ = std::thread::Builder::new()
                .name("nsproxy-reap".into())
                .spawn(move || sys::waitid_pidfd(pidfd.as_fd(), false));
        }
    }
}

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
    conn: Arc<Conn>,
    keep: Arc<Keep>,
    done: watch::Receiver<Option<Option<i32>>>,
}

impl fmt::Debug for Agent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Agent")
            .field("pid", &self.conn.pid)
            .finish()
    }
}

fn start_err(step: &'static str) -> impl FnOnce(io::Error) -> Error {
    move |source| Error::Start { step, source }
}

/// A connected `SOCK_SEQPACKET` pair (close-on-exec) whose send buffers
/// hold a whole [`MAX_FRAME`] frame: a Unix datagram larger than the sender's
/// `SO_SNDBUF` (208 KiB by default) fails with `EMSGSIZE`. `SO_SNDBUF` is
/// capped by `net.core.wmem_max` and doubled by the kernel, so this needs no
/// privilege on a default system.
fn frame_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let (a, b) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )?;
    // Header and kernel bookkeeping on top of the frame itself.
    let size = MAX_FRAME + 4096;
    for fd in [&a, &b] {
        setsockopt(fd, sockopt::SndBuf, &size)?;
    }
    Ok((a, b))
}

/// How long [`Agent::start`] waits for the agent's answer to `Hello`. An agent
/// is ready in about 1.5 ms; one that does not answer at all (a binary whose
/// `main` ran instead of the agent and neither exits nor reads its stdin)
/// must not hang the caller.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Sends `Hello` (encoded in `hello`, with its `fds`) and reads the answer
/// into `rbuf`, giving up after `within`.
pub(crate) async fn handshake(
    ctl: &AsyncFd<OwnedFd>,
    pid: i32,
    hello: &[u8],
    fds: &[BorrowedFd<'_>],
    rbuf: &mut [u8],
    within: Duration,
) -> Result<()> {
    let exchange = async {
        ctl.async_io(Interest::WRITABLE, |fd| {
            sys::send_frame(fd.as_fd(), hello, fds, true)
        })
        .await?;
        recv_one(ctl, rbuf).await
    };
    let got = match tokio::time::timeout(within, exchange).await {
        Ok(Ok(got)) => got,
        Ok(Err(_)) => return Err(Error::AgentGone { pid }),
        Err(_) => {
            return Err(Error::Start {
                step: "handshake",
                source: io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("agent {pid} did not answer within {within:?}"),
                ),
            });
        }
    };
    match decode(&got, rbuf)? {
        Some((
            1,
            Reply::Ready {
                version: proto::VERSION,
                ..
            },
        )) => Ok(()),
        Some((
            _,
            Reply::Failed {
                step,
                errno,
                detail,
            },
        )) => Err(remote(step, errno, &detail)),
        Some((_, other)) => Err(unexpected("Ready", &other)),
        None => Err(Error::AgentGone { pid }),
    }
}

/// Spawns the agent process; runs on a namespace thread that outlives it.
pub(crate) fn spawn_agent(sock: OwnedFd, ppid: u32) -> io::Result<(i32, OwnedFd)> {
    let mut cmd = Command::new("/proc/self/exe");
    cmd.arg0("nsproxy-agent")
        .arg(ARG)
        .env_clear()
        .env(
            OsStr::from_bytes(MARKER.to_bytes()),
            proto::VERSION.to_string(),
        )
        .env(OsStr::from_bytes(PPID.to_bytes()), ppid.to_string())
        .stdin(Stdio::from(sock))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(path) = std::env::var_os("LD_LIBRARY_PATH") {
        cmd.env("LD_LIBRARY_PATH", path);
    }
    let child = cmd.spawn()?;
    let pid = child.id() as i32;
    // Dropping a std Child neither waits for nor kills the process: the pidfd
    // below is how we wait for it from now on.
    drop(child);
    match sys::pidfd_open(pid) {
        Ok(pidfd) => Ok((pid, pidfd)),
        Err(e) => {
            // The pid cannot be reused yet: the process is ours and unreaped.
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            let _ = sys::waitpid_blocking(pid);
            Err(e)
        }
    }
}

async fn recv_one(ctl: &AsyncFd<OwnedFd>, buf: &mut [u8]) -> io::Result<sys::Received> {
    ctl.async_io(Interest::READABLE, |fd| {
        sys::recv_frame(fd.as_fd(), buf, true)
    })
    .await
}

/// Checks what one `recv_frame` brought and decodes it. `Ok(None)`: EOF.
fn decode(got: &sys::Received, buf: &[u8]) -> Result<Option<(u32, Reply)>> {
    if got.len == 0 && got.fds.is_empty() {
        return Ok(None);
    }
    if got.bad_control {
        return Err(Error::Protocol {
            expected: "at most one SCM_RIGHTS message with its fds".into(),
            got: "truncated or several control messages".into(),
        });
    }
    if got.truncated || got.len > MAX_FRAME {
        return Err(proto::ProtoError::Oversized {
            what: "reply frame",
            len: got.len,
            max: MAX_FRAME,
        }
        .into());
    }
    Ok(Some(proto::decode_reply(&buf[..got.len], got.fds.len())?))
}

fn remote(step: proto::Step, errno: i32, detail: &[u8]) -> Error {
    Error::Remote {
        step,
        detail: String::from_utf8_lossy(detail).into_owned(),
        source: io::Error::from_raw_os_error(errno),
    }
}

fn unexpected(expected: &str, got: &Reply) -> Error {
    Error::Protocol {
        expected: expected.into(),
        got: got.name().into(),
    }
}

impl Agent {
    /// Starts an agent inside `ns`.
    ///
    /// The agent is the current executable, started again with posix_spawn
    /// from a namespace thread (which outlives it, so `PR_SET_PDEATHSIG` is
    /// safe): this crate's init hook turns it into the agent before its
    /// `main` runs. It then receives `ns` (and the user namespace of
    /// `opts`) over the control socket, enters them, and answers `Ready`.
    /// Nothing is forked: the cost does not grow with the application's size.
    ///
    /// # Cancel safety
    ///
    /// If the future is dropped before it completes, the agent (if already
    /// started) is killed and reaped on a background thread; nothing leaks.
    ///
    /// # Errors
    ///
    /// [`Error::Start`] if the process could not be started or registered,
    /// [`Error::Remote`] if it could not enter a namespace or set up the
    /// mounts (the step says which), [`Error::AgentGone`] if it died during
    /// the handshake (for example, the init hook was not linked into this
    /// executable), [`Error::Protocol`] on a bad answer, [`Error::Start`]
    /// with step `"handshake"` and kind `TimedOut` if it has not answered
    /// within 10 seconds (it is then killed and reaped).
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime with IO and time enabled.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo() -> nsproxy::Result<()> {
    /// let ns = nsfs::NetNs::open("/run/netns/blue").expect("namespace");
    /// let agent = nsproxy::Agent::start(&ns, nsproxy::AgentOptions::new()).await?;
    /// println!("agent pid {}", agent.pid());
    /// # Ok(()) }
    /// ```
    pub async fn start(ns: &NetNs, opts: AgentOptions) -> Result<Agent> {
        let (ours, theirs) = frame_pair().map_err(start_err("socketpair"))?;
        let exec = nsfs::Executor::global().map_err(|e| start_err("executor")(e.into()))?;
        let ppid = std::process::id();
        let (pid, reaper) = exec
            .run_home(move || {
                // If this future is dropped meanwhile, the Reaper is dropped
                // with the result: the agent is killed and reaped.
                spawn_agent(theirs, ppid).map(|(pid, pidfd)| (pid, Reaper { pidfd: Some(pidfd) }))
            })
            .await
            .map_err(|e| start_err("executor")(e.into()))?
            .map_err(start_err("spawn"))?;
        let mut reaper = reaper;
        sys::set_nonblocking(ours.as_fd(), true).map_err(start_err("register"))?;
        let ctl = sys::async_fd(ours).map_err(start_err("register"))?;

        // Handshake, before the reader task exists.
        let hello = Request::Hello {
            version: proto::VERSION,
            user_ns: opts.user_ns.is_some(),
            exec_name: opts
                .exec_name
                .as_ref()
                .map(|n| n.as_str().as_bytes().to_vec()),
        };
        let mut buf = Vec::new();
        proto::encode_request(1, &hello, &mut buf)?;
        let mut fds = vec![ns.as_fd()];
        if let Some(userns) = &opts.user_ns {
            fds.push(userns.as_fd());
        }
        let mut rbuf = vec![0; MAX_FRAME + 1];
        let shook = handshake(&ctl, pid, &buf, &fds, &mut rbuf, HANDSHAKE_TIMEOUT).await;
        if let Err(err) = shook {
            sys::shutdown(ctl.get_ref().as_fd());
            drop(ctl);
            reaper.reap().await;
            return Err(err);
        }

        let conn = Arc::new(Conn {
            ctl,
            pid,
            next_id: AtomicU32::new(2),
            state: Mutex::default(),
        });
        let (done_tx, done) = watch::channel(None);
        tokio::spawn(reader(Arc::clone(&conn), reaper, rbuf, done_tx));
        let keep = Arc::new(Keep {
            conn: Arc::clone(&conn),
        });
        Ok(Agent { conn, keep, done })
    }

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
        self.conn.state().ended.is_none()
    }

    /// Opens a socket of `(domain, ty, protocol)` inside the namespace, in
    /// the agent, and hands back its fd (`SCM_RIGHTS`). `SOCK_CLOEXEC` is
    /// always added; `SOCK_NONBLOCK` may be passed in `ty`.
    ///
    /// # Cancel safety
    ///
    /// If the future is dropped after the request was sent, the socket the
    /// agent sends back is closed on arrival.
    ///
    /// # Errors
    ///
    /// [`Error::Remote`] with step `Socket` and the errno of `socket(2)`;
    /// [`Error::AgentGone`] if the agent is gone.
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
        match self.conn.request(&req, &[], None, false).await? {
            (_, Reply::Socket, mut fds) => Ok(fds.remove(0)),
            (
                _,
                Reply::Failed {
                    step,
                    errno,
                    detail,
                },
                _,
            ) => Err(remote(step, errno, &detail)),
            (_, other, _) => Err(unexpected("Socket", &other)),
        }
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
    /// [`Error::Io`] if the relay channel could not be made or registered.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(agent: nsproxy::Agent) -> nsproxy::Result<()> {
    /// let relay = agent.netlink(netlink_sys::protocols::NETLINK_ROUTE).await?;
    /// # Ok(()) }
    /// ```
    pub async fn netlink(&self, protocol: isize) -> Result<RelaySocket> {
        let (ours, theirs) = frame_pair().map_err(|source| Error::Io {
            op: "relay socketpair",
            source,
        })?;
        let req = Request::OpenRelay {
            protocol: protocol as i32,
        };
        let (_, reply, mut fds) = self
            .conn
            .request(&req, &[theirs.as_fd()], None, false)
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
    }

    /// Runs a program inside the namespace, in the agent (and in its mount
    /// namespace if the agent was started with
    /// [`exec_mounts`](AgentOptions::exec_mounts)).
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
    /// answer arrives (as a dropped [`AgentChild`] would be), and it is reaped
    /// by the agent either way.
    ///
    /// # Errors
    ///
    /// [`Error::Remote`] with step `Exec` and the program as detail (or
    /// `Pidfd`); [`Error::AgentGone`]; [`Error::InvalidInput`] if a string
    /// has a NUL byte.
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
    /// assert_eq!(status, 0);
    /// # Ok(()) }
    /// ```
    pub async fn spawn(&self, req: SpawnRequest) -> Result<AgentChild> {
        if let Some(err) = req.invalid {
            return Err(err);
        }
        let spec = req.spec;
        let program = spec.program.clone();
        let kill_on_drop = spec.kill_on_drop;
        let fds: Vec<BorrowedFd<'_>> = req.fds.iter().flatten().map(|fd| fd.as_fd()).collect();
        let (exit_tx, exit_rx) = oneshot::channel();
        let (id, reply, fds) = self
            .conn
            .request(&Request::Spawn(spec), &fds, Some(exit_tx), kill_on_drop)
            .await?;
        drop(req.fds);
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
            other => {
                self.conn.state().exits.remove(&id);
                match other {
                    Reply::Failed { step, errno, .. } => Err(remote(step, errno, &program)),
                    other => Err(unexpected("Spawned", &other)),
                }
            }
        }
    }

    /// Stops the agent now: closes its control connection (even if relays or
    /// children handed out by it are still alive: they then fail with
    /// [`Error::AgentGone`]) and waits until it has exited and been reaped.
    /// Children it spawned with `kill_on_drop` are killed by the agent;
    /// the others keep running.
    ///
    /// Returns the agent's raw wait status (0: a clean exit).
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
    /// assert_eq!(status, 0);
    /// # Ok(()) }
    /// ```
    pub async fn close(self) -> Result<i32> {
        sys::shutdown(self.conn.ctl.get_ref().as_fd());
        let pid = self.conn.pid;
        let mut done = self.done.clone();
        drop(self);
        match done.wait_for(Option::is_some).await {
            Ok(status) => status.flatten().ok_or(Error::AgentGone { pid }),
            Err(_) => Err(Error::AgentGone { pid }),
        }
    }
}

/// Reads replies and routes them; when the connection ends, fails what is
/// pending and reaps the agent.
async fn reader(
    conn: Arc<Conn>,
    mut reaper: Reaper,
    mut buf: Vec<u8>,
    done: watch::Sender<Option<Option<i32>>>,
) {
    let ended = loop {
        let got = match recv_one(&conn.ctl, &mut buf).await {
            Ok(got) => got,
            Err(_) => break Ended::Gone,
        };
        let (id, reply) = match decode(&got, &buf) {
            Ok(Some(frame)) => frame,
            Ok(None) => break Ended::Gone,
            Err(Error::Protocol { expected, got }) => break Ended::Protocol { expected, got },
            Err(_) => break Ended::Gone,
        };
        match reply {
            Reply::Exited { status, .. } => {
                if let Some(tx) = conn.state().exits.remove(&id) {
                    let _ = tx.send(Ok(status));
                }
            }
            Reply::Failed {
                step: proto::Step::Protocol,
                detail,
                ..
            } if id == 0 => {
                break Ended::Protocol {
                    expected: "frames the agent accepts".into(),
                    got: format!(
                        "the agent rejected a frame: {}",
                        String::from_utf8_lossy(&detail)
                    ),
                };
            }
            reply => {
                // Handed over under the lock: see `PendingGuard`.
                let mut st = conn.state();
                if let Some(tx) = st.pending.remove(&id) {
                    let _ = tx.send(Ok((reply, got.fds)));
                } else if st.abandoned.remove(&id) {
                    drop(st);
                    kill_abandoned(&reply, &got.fds);
                }
            }
        }
    };
    sys::shutdown(conn.ctl.get_ref().as_fd());
    let (pending, exits) = {
        let mut st = conn.state();
        st.ended = Some(ended.clone());
        (
            std::mem::take(&mut st.pending),
            std::mem::take(&mut st.exits),
        )
    };
    for (_, tx) in pending {
        let _ = tx.send(Err(ended.error(conn.pid)));
    }
    for (_, tx) in exits {
        let _ = tx.send(Err(Error::AgentGone { pid: conn.pid }));
    }
    let status = reaper.reap().await;
    // Close the control socket (if no handle holds it any more) before
    // reporting: once `close` returns, the agent has left no fd behind.
    drop(conn);
    let _ = done.send(Some(status));
}

/// Where a spawned program's stdin, stdout or stderr goes.
///
/// # Examples
///
/// ```
/// use nsproxy::{AgentStdio, SpawnRequest};
/// let req = SpawnRequest::new("cat").stdin(AgentStdio::Pipe).stdout(AgentStdio::Null);
/// ```
#[derive(Debug)]
pub enum AgentStdio {
    /// `/dev/null` (the default).
    Null,
    /// A pipe made by the agent; the other end comes back in the
    /// [`AgentChild`].
    Pipe,
    /// This fd (a file, a socket, a pipe end): sent to the agent and used as
    /// is.
    Fd(OwnedFd),
}

/// A program for [`Agent::spawn`]: what `posix_spawn` needs, given complete
/// (the environment is exactly what is set here, empty by default).
///
/// Builder methods take and return `self`.
///
/// # Examples
///
/// ```
/// use nsproxy::{AgentStdio, SpawnRequest};
/// let req = SpawnRequest::new("ping")
///     .args(["-c", "1", "10.0.0.1"])
///     .env("PATH", "/usr/bin:/bin")
///     .current_dir("/")
///     .stdout(AgentStdio::Pipe)
///     .kill_on_drop(true);
/// ```
#[derive(Debug)]
pub struct SpawnRequest {
    spec: SpawnSpec,
    fds: [Option<OwnedFd>; 3],
    invalid: Option<Error>,
}

fn bytes_of(s: &OsStr, what: &'static str, invalid: &mut Option<Error>) -> Vec<u8> {
    let b = s.as_bytes();
    if b.contains(&0) && invalid.is_none() {
        *invalid = Some(Error::InvalidInput {
            what,
            why: "contains a NUL byte",
        });
    }
    b.to_vec()
}

impl SpawnRequest {
    /// A request to run `program`: a path, or a name looked up in the
    /// `PATH` of the request's environment.
    ///
    /// # Examples
    ///
    /// ```
    /// let req = nsproxy::SpawnRequest::new("/bin/true");
    /// ```
    pub fn new(program: impl AsRef<OsStr>) -> SpawnRequest {
        let mut invalid = None;
        let program = bytes_of(program.as_ref(), "program", &mut invalid);
        if program.is_empty() {
            invalid = Some(Error::InvalidInput {
                what: "program",
                why: "empty",
            });
        }
        SpawnRequest {
            spec: SpawnSpec {
                program,
                arg0: None,
                args: Vec::new(),
                env: Vec::new(),
                cwd: None,
                pgroup: None,
                kill_on_drop: false,
                stdio: [StdioSpec::Null; 3],
            },
            fds: [None, None, None],
            invalid,
        }
    }

    /// Sets `argv[0]` (by default the program).
    ///
    /// # Examples
    ///
    /// ```
    /// let req = nsproxy::SpawnRequest::new("/bin/busybox").arg0("sh");
    /// ```
    pub fn arg0(mut self, arg0: impl AsRef<OsStr>) -> SpawnRequest {
        self.spec.arg0 = Some(bytes_of(arg0.as_ref(), "arg0", &mut self.invalid));
        self
    }

    /// Adds an argument.
    ///
    /// # Examples
    ///
    /// ```
    /// let req = nsproxy::SpawnRequest::new("ip").arg("link");
    /// ```
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> SpawnRequest {
        let arg = bytes_of(arg.as_ref(), "argument", &mut self.invalid);
        self.spec.args.push(arg);
        self
    }

    /// Adds arguments.
    ///
    /// # Examples
    ///
    /// ```
    /// let req = nsproxy::SpawnRequest::new("ip").args(["-br", "link"]);
    /// ```
    pub fn args<I, S>(mut self, args: I) -> SpawnRequest
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        for arg in args {
            self = self.arg(arg);
        }
        self
    }

    /// Adds `KEY=VALUE` to the environment (which starts empty).
    ///
    /// # Examples
    ///
    /// ```
    /// let req = nsproxy::SpawnRequest::new("env").env("LANG", "C");
    /// ```
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> SpawnRequest {
        let mut entry = bytes_of(key.as_ref(), "environment key", &mut self.invalid);
        if (entry.is_empty() || entry.contains(&b'=')) && self.invalid.is_none() {
            self.invalid = Some(Error::InvalidInput {
                what: "environment key",
                why: "empty or contains '='",
            });
        }
        entry.push(b'=');
        entry.extend(bytes_of(
            value.as_ref(),
            "environment value",
            &mut self.invalid,
        ));
        self.spec.env.push(entry);
        self
    }

    /// Adds every `(key, value)` to the environment.
    ///
    /// # Examples
    ///
    /// ```
    /// let req = nsproxy::SpawnRequest::new("env").envs(std::env::vars_os());
    /// ```
    pub fn envs<I, K, V>(mut self, vars: I) -> SpawnRequest
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        for (k, v) in vars {
            self = self.env(k, v);
        }
        self
    }

    /// Sets the working directory (by default the agent's, which is the
    /// application's when it started the agent).
    ///
    /// # Examples
    ///
    /// ```
    /// let req = nsproxy::SpawnRequest::new("ls").current_dir("/tmp");
    /// ```
    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> SpawnRequest {
        let dir: &OsStr = dir.as_ref().as_ref();
        self.spec.cwd = Some(bytes_of(dir, "working directory", &mut self.invalid));
        self
    }

    /// Puts the program in process group `pgroup` (0: a new group it leads).
    ///
    /// # Examples
    ///
    /// ```
    /// let req = nsproxy::SpawnRequest::new("sleep").arg("10").process_group(0);
    /// ```
    pub fn process_group(mut self, pgroup: i32) -> SpawnRequest {
        if pgroup < 0 && self.invalid.is_none() {
            self.invalid = Some(Error::InvalidInput {
                what: "process group",
                why: "negative",
            });
        }
        self.spec.pgroup = Some(pgroup);
        self
    }

    /// Kills the program (`SIGKILL`) when its [`AgentChild`] is dropped
    /// before it exited, or when the agent exits, even if the agent is
    /// killed (for example with the application, which its agents never
    /// outlive): such a program gets `PR_SET_PDEATHSIG` tied to the agent.
    /// Without it, a program outlives the agent and the application.
    ///
    /// # Examples
    ///
    /// ```
    /// let req = nsproxy::SpawnRequest::new("sleep").arg("10").kill_on_drop(true);
    /// ```
    pub fn kill_on_drop(mut self, kill: bool) -> SpawnRequest {
        self.spec.kill_on_drop = kill;
        self
    }

    fn stdio(mut self, i: usize, stdio: AgentStdio) -> SpawnRequest {
        let (spec, fd) = match stdio {
            AgentStdio::Null => (StdioSpec::Null, None),
            AgentStdio::Pipe => (StdioSpec::Pipe, None),
            AgentStdio::Fd(fd) => (StdioSpec::Fd, Some(fd)),
        };
        self.spec.stdio[i] = spec;
        self.fds[i] = fd;
        self
    }

    /// Sets stdin.
    ///
    /// # Examples
    ///
    /// ```
    /// let req = nsproxy::SpawnRequest::new("cat").stdin(nsproxy::AgentStdio::Pipe);
    /// ```
    pub fn stdin(self, stdio: AgentStdio) -> SpawnRequest {
        self.stdio(0, stdio)
    }

    /// Sets stdout.
    ///
    /// # Examples
    ///
    /// ```
    /// let req = nsproxy::SpawnRequest::new("ip").stdout(nsproxy::AgentStdio::Pipe);
    /// ```
    pub fn stdout(self, stdio: AgentStdio) -> SpawnRequest {
        self.stdio(1, stdio)
    }

    /// Sets stderr.
    ///
    /// # Examples
    ///
    /// ```
    /// let req = nsproxy::SpawnRequest::new("ip").stderr(nsproxy::AgentStdio::Pipe);
    /// ```
    pub fn stderr(self, stdio: AgentStdio) -> SpawnRequest {
        self.stdio(2, stdio)
    }

    /// The program, as given.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(nsproxy::SpawnRequest::new("ip").program(), "ip");
    /// ```
    pub fn program(&self) -> &OsStr {
        OsStr::from_bytes(&self.spec.program)
    }
}

/// A program the agent started: its pid, pidfd, pipes, and exit status.
///
/// The pidfd is the program's for good (no pid reuse races):
/// [`kill`](AgentChild::kill) signals through it. The agent is the parent and
/// reaps the program; the status comes to [`wait`](AgentChild::wait).
///
/// Dropping an `AgentChild` closes the pipes; if the request set
/// `kill_on_drop` and the program still runs, it is killed (`SIGKILL`).
/// Otherwise it keeps running. It keeps the agent alive until dropped.
///
/// # Examples
///
/// ```no_run
/// # async fn demo(agent: nsproxy::Agent) -> nsproxy::Result<()> {
/// let mut child = agent.spawn(nsproxy::SpawnRequest::new("/bin/sleep").arg("10")).await?;
/// child.kill(libc::SIGTERM)?;
/// let status = child.wait().await?;
/// assert_eq!(status & 0x7f, libc::SIGTERM);
/// # Ok(()) }
/// ```
pub struct AgentChild {
    pid: i32,
    pidfd: OwnedFd,
    stdin: Option<OwnedFd>,
    stdout: Option<OwnedFd>,
    stderr: Option<OwnedFd>,
    exit: Option<oneshot::Receiver<Result<i32>>>,
    status: Option<i32>,
    kill_on_drop: bool,
    agent_pid: i32,
    _keep: Arc<Keep>,
}

impl fmt::Debug for AgentChild {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentChild")
            .field("pid", &self.pid)
            .field("status", &self.status)
            .field("agent", &self.agent_pid)
            .finish_non_exhaustive()
    }
}

impl AgentChild {
    /// The program's pid (in the application's pid namespace).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn demo(child: nsproxy::AgentChild) {
    /// println!("pid {}", child.pid());
    /// # }
    /// ```
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// The program's pidfd (poll it for exit, or signal through it).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn demo(child: nsproxy::AgentChild) {
    /// use std::os::fd::AsRawFd;
    /// println!("pidfd {}", child.pidfd().as_raw_fd());
    /// # }
    /// ```
    pub fn pidfd(&self) -> BorrowedFd<'_> {
        self.pidfd.as_fd()
    }

    /// Takes the client end of the stdin pipe, if stdin was
    /// [`AgentStdio::Pipe`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn demo(mut child: nsproxy::AgentChild) {
    /// let stdin = std::fs::File::from(child.take_stdin().unwrap());
    /// # }
    /// ```
    pub fn take_stdin(&mut self) -> Option<OwnedFd> {
        self.stdin.take()
    }

    /// Takes the client end of the stdout pipe, if stdout was
    /// [`AgentStdio::Pipe`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn demo(mut child: nsproxy::AgentChild) {
    /// let stdout = std::fs::File::from(child.take_stdout().unwrap());
    /// # }
    /// ```
    pub fn take_stdout(&mut self) -> Option<OwnedFd> {
        self.stdout.take()
    }

    /// Takes the client end of the stderr pipe, if stderr was
    /// [`AgentStdio::Pipe`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn demo(mut child: nsproxy::AgentChild) {
    /// let stderr = std::fs::File::from(child.take_stderr().unwrap());
    /// # }
    /// ```
    pub fn take_stderr(&mut self) -> Option<OwnedFd> {
        self.stderr.take()
    }

    /// Waits for the program to exit and returns its raw wait status (as
    /// `waitpid` gives it: decode with `libc::WIFEXITED` and friends, or
    /// `std::process::ExitStatus::from_raw`). Later calls return the same
    /// status.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future loses nothing; call `wait` again.
    ///
    /// # Errors
    ///
    /// [`Error::AgentGone`] if the agent died before reporting the status
    /// (the program was then adopted by init, or killed if `kill_on_drop`).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(mut child: nsproxy::AgentChild) -> nsproxy::Result<()> {
    /// use std::os::unix::process::ExitStatusExt;
    /// let status = std::process::ExitStatus::from_raw(child.wait().await?);
    /// assert!(status.success());
    /// # Ok(()) }
    /// ```
    pub async fn wait(&mut self) -> Result<i32> {
        if let Some(status) = self.status {
            return Ok(status);
        }
        let Some(rx) = self.exit.as_mut() else {
            return Err(Error::AgentGone {
                pid: self.agent_pid,
            });
        };
        let result = rx.await;
        self.exit = None;
        match result {
            Ok(Ok(status)) => {
                self.status = Some(status);
                Ok(status)
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(Error::AgentGone {
                pid: self.agent_pid,
            }),
        }
    }

    /// The exit status if it has already been reported, without waiting.
    ///
    /// # Errors
    ///
    /// As [`wait`](AgentChild::wait).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn demo(mut child: nsproxy::AgentChild) -> nsproxy::Result<()> {
    /// if let Some(status) = child.try_wait()? { println!("exited: {status}"); }
    /// # Ok(()) }
    /// ```
    pub fn try_wait(&mut self) -> Result<Option<i32>> {
        if let Some(status) = self.status {
            return Ok(Some(status));
        }
        let Some(rx) = self.exit.as_mut() else {
            return Err(Error::AgentGone {
                pid: self.agent_pid,
            });
        };
        match rx.try_recv() {
            Ok(Ok(status)) => {
                self.exit = None;
                self.status = Some(status);
                Ok(Some(status))
            }
            Ok(Err(e)) => {
                self.exit = None;
                Err(e)
            }
            Err(oneshot::error::TryRecvError::Empty) => Ok(None),
            Err(oneshot::error::TryRecvError::Closed) => {
                self.exit = None;
                Err(Error::AgentGone {
                    pid: self.agent_pid,
                })
            }
        }
    }

    /// Sends `signal` to the program through its pidfd
    /// (`pidfd_send_signal`): never to another process, even after the pid
    /// was reused.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] with `ESRCH` if the program has already been reaped,
    /// `EINVAL` for a bad signal.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn demo(child: nsproxy::AgentChild) -> nsproxy::Result<()> {
    /// child.kill(libc::SIGTERM)?;
    /// # Ok(()) }
    /// ```
    #[doc(alias = "pidfd_send_signal")]
    pub fn kill(&self, signal: i32) -> Result<()> {
        sys::pidfd_send_signal(self.pidfd.as_fd(), signal).map_err(|source| Error::Io {
            op: "pidfd_send_signal",
            source,
        })
    }
}

impl Drop for AgentChild {
    fn drop(&mut self) {
        if self.kill_on_drop && self.status.is_none() {
            let _ = sys::pidfd_send_signal(self.pidfd.as_fd(), libc::SIGKILL);
        }
    }
}
