//! Starting an agent: its options, the spawn of the process, the handshake,
//! and the reaper that waits for its end.

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use nix::sys::socket::{AddressFamily, SockFlag, SockType, setsockopt, socketpair, sockopt};
use nsfs::{NetNs, NsName};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::sync::watch;
use tracing::Instrument;

use super::conn::{Conn, Keep, decode, reader, recv_one};
use super::{Agent, finish, remote};
use crate::agent::{ARG, MARKER, PPID};
use crate::pending::HELLO_ID;
use crate::proto::{self, MAX_FRAME, Reply, Request};
use crate::{Error, Result, sys};

/// How an agent is set up: which namespaces it enters besides the network
/// namespace, and whether it prepares `ip netns exec`'s mounts.
///
/// # Examples
///
/// ```
/// let opts = nsproxy::AgentOptions::new().exec_mounts(Some(nsfs::NsName::new("blue")?));
/// # Ok::<(), nsfs::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct AgentOptions {
    pub(super) user_ns: Option<Arc<OwnedFd>>,
    /// Exec-mode mounts, for this name (if any).
    pub(super) exec: Option<Option<NsName>>,
    pub(super) start_timeout: Option<Duration>,
    pub(super) request_timeout: Option<Duration>,
    /// A user-namespace agent outlives this process while it holds names.
    pub(super) detach: bool,
}

impl AgentOptions {
    /// The defaults: only the network namespace, no mount setup, a start
    /// deadline of 10 seconds ([`DEFAULT_START_TIMEOUT`]) and no deadline on
    /// requests.
    ///
    /// # Examples
    ///
    /// ```
    /// let opts = nsproxy::AgentOptions::new();
    /// ```
    pub fn new() -> AgentOptions {
        AgentOptions {
            user_ns: None,
            exec: None,
            start_timeout: Some(DEFAULT_START_TIMEOUT),
            request_timeout: None,
            detach: false,
        }
    }

    /// For [`Agent::start_user`] with a name directory: the agent outlives
    /// this process while it holds names, so that names made by a short
    /// command (`nsctl add`) stay until removed. Such an agent gets no
    /// parent-death signal and a session of its own; when its control
    /// connection ends (this process closes it or exits), it stays until the
    /// last name it holds is removed, then exits. It is never killed by this
    /// process; if this process is still there, it reaps it. Default: off
    /// (the agent ends with its connection, names and all).
    ///
    /// # Examples
    ///
    /// ```
    /// let opts = nsproxy::AgentOptions::new().detach_names(true);
    /// ```
    pub fn detach_names(mut self, on: bool) -> AgentOptions {
        self.detach = on;
        self
    }

    /// How long [`Agent::start`] may take, from the spawn to the agent's
    /// `Ready`; `None`: no limit. Past it, the start fails with
    /// [`Error::Timeout`] and the agent is killed and reaped. An agent is
    /// ready in about 1.5 ms; the limit is for one that never answers (a
    /// binary whose `main` ran instead of the agent, a stopped process) or a
    /// toolkit thread that is busy.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let opts = nsproxy::AgentOptions::new().start_timeout(Some(Duration::from_secs(2)));
    /// ```
    pub fn start_timeout(mut self, limit: Option<Duration>) -> AgentOptions {
        self.start_timeout = limit;
        self
    }

    /// The deadline of every request to the agent ([`Agent::open_socket`],
    /// [`Agent::netlink`], [`Agent::spawn`]); `None` (the default): no limit.
    /// Past it, a request fails with [`Error::Timeout`] and leaves nothing
    /// behind: an fd the agent sends later is closed, a program it starts
    /// later is killed. [`Agent::with_request_timeout`] sets it per call.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let opts = nsproxy::AgentOptions::new().request_timeout(Some(Duration::from_secs(1)));
    /// ```
    pub fn request_timeout(mut self, limit: Option<Duration>) -> AgentOptions {
        self.request_timeout = limit;
        self
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
    /// the namespace on `/sys` (so `/sys/class/net` lists its devices), and,
    /// for a `name`, every file of `/etc/netns/NAME` bind-mounted over
    /// `/etc`. A namespace without a name (`None`) gets the first two.
    ///
    /// # Examples
    ///
    /// ```
    /// let opts = nsproxy::AgentOptions::new().exec_mounts(Some(nsfs::NsName::new("blue")?));
    /// let anonymous = nsproxy::AgentOptions::new().exec_mounts(None);
    /// # Ok::<(), nsfs::Error>(())
    /// ```
    pub fn exec_mounts(mut self, name: Option<NsName>) -> AgentOptions {
        self.exec = Some(name);
        self
    }
}

impl Default for AgentOptions {
    fn default() -> AgentOptions {
        AgentOptions::new()
    }
}

/// The default of [`AgentOptions::start_timeout`]: 10 seconds.
///
/// # Examples
///
/// ```
/// assert_eq!(nsproxy::DEFAULT_START_TIMEOUT.as_secs(), 10);
/// ```
pub const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(10);

/// Reaps the agent, even if the reader task is dropped with its runtime.
pub(crate) struct Reaper {
    pub(crate) pidfd: Option<OwnedFd>,
    /// A detached user-namespace agent: waited for, never killed.
    pub(crate) detached: bool,
}

impl Reaper {
    /// Waits for the agent to exit (killing it if it does not within a
    /// second of its connection closing) and reaps it: its raw wait status.
    pub(super) async fn reap(&mut self) -> Option<i32> {
        let pidfd = self.pidfd.take()?;
        match sys::async_fd(pidfd) {
            Ok(afd) if self.detached => {
                let _ = afd.readable().await;
                let status = sys::waitid_pidfd(afd.get_ref().as_fd(), false)
                    .ok()
                    .flatten();
                drop(afd);
                status
            }
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
            // A detached agent is not killed: it ends when its names are gone.
            if !self.detached {
                let _ = sys::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL);
            }
            let _ = std::thread::Builder::new()
                .name("nsproxy-reap".into())
                .spawn(move || sys::waitid_pidfd(pidfd.as_fd(), false));
        }
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
pub(super) fn frame_pair() -> io::Result<(OwnedFd, OwnedFd)> {
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

/// Sends `Hello` (encoded in `hello`, with its `fds`) and reads the answer
/// into `rbuf`.
async fn handshake(
    ctl: &AsyncFd<OwnedFd>,
    pid: i32,
    hello: &[u8],
    fds: &[BorrowedFd<'_>],
    rbuf: &mut [u8],
) -> Result<()> {
    let exchange = async {
        ctl.async_io(Interest::WRITABLE, |fd| {
            sys::send_frame(fd.as_fd(), hello, fds, true)
        })
        .await?;
        recv_one(ctl, rbuf).await
    };
    let Ok(got) = exchange.await else {
        return Err(Error::AgentGone { pid });
    };
    match decode(&got, rbuf)? {
        Some((HELLO_ID, Reply::Ready { version, .. })) if version == proto::VERSION => Ok(()),
        Some((HELLO_ID, Reply::Ready { version, .. })) => Err(proto::ProtoError::Version {
            expected: proto::VERSION,
            got: version,
        }
        .into()),
        Some((
            _,
            Reply::Failed {
                step,
                errno,
                detail,
            },
        )) => Err(remote(step, errno, &detail)),
        Some((id, other)) => Err(Error::Protocol {
            expected: format!("Ready or Failed for request {HELLO_ID}"),
            got: format!("{} for request {id}", other.name()),
        }),
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
    /// or at once, with step `"secure mode (AT_SECURE)"` and `EPERM`, in a process
    /// running with `AT_SECURE` (setuid, setgid or file capabilities, gained
    /// from the executable by an unprivileged caller): the agent, which is
    /// this executable again, refuses to run as such, so that no caller can
    /// use the executable's privilege through it. Give such a program its
    /// capabilities as ambient capabilities (a service manager's
    /// `AmbientCapabilities=`, `setpriv --ambient-caps`) instead;
    /// [`Error::Remote`] if it could not enter a namespace or set up the
    /// mounts (the step says which), [`Error::AgentGone`] if it died during
    /// the handshake (for example, the init hook was not linked into this
    /// executable), [`Error::Protocol`] on a bad answer (another protocol
    /// version, for one), [`Error::Timeout`] if it is not ready within
    /// [`AgentOptions::start_timeout`] (it is then killed and reaped).
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
        let span = start_span(ns, &opts);
        let start = async {
            let (ours, pid, reaper) = launch().await?;
            tracing::Span::current().record("pid", pid);
            Agent::handshake(ns, &opts, ours, pid, reaper).await
        };
        let started = within(opts.start_timeout, "agent start", start)
            .instrument(span.clone())
            .await;
        finish(&span, &started);
        if let Ok(agent) = &started {
            tracing::debug!(parent: &span, pid = agent.pid(), "nsproxy agent started");
        }
        started
    }

    /// Starts a *user-namespace agent*: an agent in a user namespace (a new
    /// one mapping the caller's uid and gid to 0, as `unshare -Ur` does, or
    /// an existing one), sitting in an empty network namespace of its own.
    /// It makes network namespaces owned by that user namespace
    /// ([`Agent::new_netns`]), sockets inside any of them
    /// ([`Agent::open_socket_in`]) and programs in any of them
    /// ([`SpawnRequest::netns`](crate::SpawnRequest::netns)), for a caller
    /// that has no privilege of its own: the kernel lets only a
    /// single-threaded process `setns` into a user namespace, and the owner
    /// of a user namespace holds every capability inside it.
    ///
    /// With `names`, a directory the caller owns, the agent holds the
    /// namespaces it makes with a name (`new_netns(Some(name))`) and names
    /// each as a symlink `names/NAME` to `/proc/AGENT/fd/N`, which any
    /// process of the same user can open while the agent lives; removing the
    /// symlink makes the agent let the namespace go (it watches the
    /// directory), and an agent that exits removes the names it made.
    ///
    /// # Cancel safety
    ///
    /// As [`Agent::start`]: if dropped, the agent is killed and reaped.
    ///
    /// # Errors
    ///
    /// As [`Agent::start`]; [`Error::Remote`] with step `UnshareUser` (user
    /// namespaces are not allowed to this caller: `ENOSPC` when
    /// `user.max_user_namespaces` is reached or 0, `EPERM` or `EACCES` under
    /// a distribution restriction), `UserMap`, `SetnsUser` (a user
    /// namespace this caller cannot enter), `UnshareNet` or `Watch`.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo() -> nsproxy::Result<()> {
    /// use nsproxy::{Agent, AgentOptions, UserNamespace};
    /// let agent = Agent::start_user(UserNamespace::New, None, AgentOptions::new()).await?;
    /// let ns = agent.new_netns(None).await?;
    /// let udp = agent.open_socket_in(&ns, libc::AF_INET, libc::SOCK_DGRAM, 0).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # References
    ///
    /// `user_namespaces(7)`, `unshare(1)` (`-Ur`), `setns(2)`.
    pub async fn start_user(
        user: UserNamespace,
        names: Option<&std::path::Path>,
        opts: AgentOptions,
    ) -> Result<Agent> {
        let span = tracing::debug_span!(
            "agent_start",
            netns = "user namespace agent",
            inode = tracing::field::Empty,
            pid = tracing::field::Empty,
            outcome = tracing::field::Empty,
            error = tracing::field::Empty,
        );
        let dir = names.map(|p| p.as_os_str().as_bytes().to_vec());
        let start = async {
            let (ours, pid, reaper) = launch().await?;
            tracing::Span::current().record("pid", pid);
            let (create, fds) = match &user {
                UserNamespace::New => (true, Vec::new()),
                UserNamespace::Join(fd) => (false, vec![fd.as_fd()]),
            };
            let hello = Request::UserHello {
                version: proto::VERSION,
                create,
                dir,
                detach: opts.detach,
            };
            let detach = opts.detach;
            Agent::handshake_with(&hello, &fds, &opts, ours, pid, reaper, None, 0, detach).await
        };
        let started = within(opts.start_timeout, "agent start", start)
            .instrument(span.clone())
            .await;
        if let Ok(agent) = &started {
            if let Ok(ino) = super::users::user_ns_of_pid(agent.pid()) {
                span.record("inode", ino);
            }
            super::users::register(agent);
        }
        finish(&span, &started);
        started
    }

    /// The start after the spawn: the handshake over `ctl` with the process
    /// `pid` (reaped by `reaper`), then the reader task. A seam for tests,
    /// which play the agent's side over a socketpair.
    pub(crate) async fn handshake(
        ns: &NetNs,
        opts: &AgentOptions,
        ctl: OwnedFd,
        pid: i32,
        reaper: Reaper,
    ) -> Result<Agent> {
        let hello = Request::Hello {
            version: proto::VERSION,
            user_ns: opts.user_ns.is_some(),
            exec_name: opts.exec.as_ref().map(|name| {
                name.as_ref()
                    .map_or_else(Vec::new, |n| n.as_str().as_bytes().to_vec())
            }),
        };
        let mut fds = vec![ns.as_fd()];
        if let Some(userns) = &opts.user_ns {
            fds.push(userns.as_fd());
        }
        Agent::handshake_with(
            &hello,
            &fds,
            opts,
            ctl,
            pid,
            reaper,
            label(ns, opts),
            ns.id().ino,
            false,
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn handshake_with(
        hello: &Request,
        fds: &[BorrowedFd<'_>],
        opts: &AgentOptions,
        ctl: OwnedFd,
        pid: i32,
        mut reaper: Reaper,
        netns: Option<Arc<str>>,
        inode: u64,
        detached: bool,
    ) -> Result<Agent> {
        sys::set_nonblocking(ctl.as_fd(), true).map_err(start_err("register"))?;
        let ctl = sys::async_fd(ctl).map_err(start_err("register"))?;
        let mut buf = Vec::new();
        proto::encode_request(HELLO_ID, hello, &mut buf)?;
        let mut rbuf = vec![0; MAX_FRAME + 1];
        // If this future is dropped (the start deadline), `ctl` and the
        // reaper go with it: the agent is killed and reaped.
        if let Err(err) = handshake(&ctl, pid, &buf, fds, &mut rbuf).await {
            sys::shutdown(ctl.get_ref().as_fd());
            drop(ctl);
            reaper.reap().await;
            return Err(err);
        }
        // Only a started agent is detached: one that failed or timed out
        // during the handshake is killed and reaped as any other.
        reaper.detached = detached;
        let conn = Arc::new(Conn::new(ctl, pid));
        let (done_tx, done) = watch::channel(None);
        tokio::spawn(reader(Arc::clone(&conn), reaper, rbuf, done_tx));
        let keep = Arc::new(Keep {
            conn: Arc::clone(&conn),
        });
        Ok(Agent {
            conn,
            keep,
            done,
            request_timeout: opts.request_timeout,
            netns,
            inode,
        })
    }
}

/// Which user namespace a user-namespace agent ([`Agent::start_user`])
/// works in.
///
/// # Examples
///
/// ```no_run
/// use nsproxy::UserNamespace;
/// let fresh = UserNamespace::New;
/// let podman: std::os::fd::OwnedFd = std::fs::File::open("/proc/1234/ns/user")?.into();
/// let existing = UserNamespace::Join(podman);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum UserNamespace {
    /// A new user namespace, the caller's uid and gid mapped to 0 in it
    /// (`setgroups` denied), as `unshare -Ur` makes.
    New,
    /// The user namespace of this fd: an nsfs `user` file
    /// (`/proc/PID/ns/user`, or from `NS_GET_USERNS`) or a pidfd (Linux 5.8).
    Join(OwnedFd),
}

/// Spawns an agent process and gives the client end of its control socket,
/// its pid and its reaper.
async fn launch() -> Result<(OwnedFd, i32, Reaper)> {
    if sys::secure_mode() {
        // The agent would refuse (see the init hook): say why now.
        let source = io::Error::from_raw_os_error(libc::EPERM);
        return Err(start_err("secure mode (AT_SECURE)")(source));
    }
    let (ours, theirs) = frame_pair().map_err(start_err("socketpair"))?;
    // The toolkit's lane: a user's long closures never delay an agent.
    let exec = nsfs::Executor::global().map_err(|e| start_err("executor")(e.into()))?;
    let ppid = std::process::id();
    let (pid, reaper) = exec
        .toolkit()
        .run_home(move || {
            // If this future is dropped meanwhile, the Reaper is
            // dropped with the result: the agent is killed and reaped.
            spawn_agent(theirs, ppid).map(|(pid, pidfd)| {
                (
                    pid,
                    Reaper {
                        pidfd: Some(pidfd),
                        detached: false,
                    },
                )
            })
        })
        .await
        .map_err(|e| start_err("executor")(e.into()))?
        .map_err(start_err("spawn"))?;
    Ok((ours, pid, reaper))
}

/// What the spans call the namespace: the `ip netns exec` name, else the
/// path it was opened from.
fn label(ns: &NetNs, opts: &AgentOptions) -> Option<Arc<str>> {
    match (opts.exec.as_ref().and_then(Option::as_ref), ns.path()) {
        (Some(name), _) => Some(name.as_str().into()),
        (None, Some(path)) => Some(path.display().to_string().into()),
        (None, None) => None,
    }
}

fn start_span(ns: &NetNs, opts: &AgentOptions) -> tracing::Span {
    let span = tracing::debug_span!(
        "agent_start",
        netns = tracing::field::Empty,
        inode = ns.id().ino,
        pid = tracing::field::Empty,
        outcome = tracing::field::Empty,
        error = tracing::field::Empty,
    );
    if let Some(netns) = label(ns, opts) {
        span.record("netns", tracing::field::display(netns));
    }
    span
}

/// Runs `fut` for at most `limit` (`None`: no limit); past it, fails with
/// [`Error::Timeout`] naming `op`.
pub(crate) async fn within<T>(
    limit: Option<Duration>,
    op: &'static str,
    fut: impl Future<Output = Result<T>>,
) -> Result<T> {
    match limit {
        None => fut.await,
        Some(after) => tokio::time::timeout(after, fut)
            .await
            .unwrap_or(Err(Error::Timeout { op, after })),
    }
}
