//! The agent protocol, sans IO: frames to bytes and bytes to frames.
//!
//! This module has no tokio, no fds and no clock. It turns typed messages into
//! the bytes of one `SOCK_SEQPACKET` frame and back, and checks that a frame
//! came with the number of fds its message needs (the caller counts the fds of
//! the frame's one `SCM_RIGHTS` message; the fds themselves never come here).
//! Everything it rejects is a [`ProtoError`] that says what was expected and
//! what came.
//!
//! Two channels use it:
//!
//! - the **control channel** (one per agent): a [`Request`] from the client or
//!   a [`Reply`] from the agent per frame, each behind an 8-byte header
//!   `[kind: u16][reserved: u16 = 0][id: u32]`, little endian;
//! - a **relay channel** (one per relayed netlink socket): a [`RelayFrame`] per
//!   frame, behind a 12-byte header `[kind: u8][0; 3][port: u32][groups: u32]`.
//!
//! `docs/nsproxy.md` describes every message byte by byte.
//!
//! # Examples
//!
//! ```
//! use nsproxy::proto::{self, Request};
//!
//! let mut buf = Vec::new();
//! let req = Request::OpenSocket { domain: libc::AF_INET, ty: libc::SOCK_DGRAM, protocol: 0 };
//! proto::encode_request(7, &req, &mut buf)?;
//! assert_eq!(proto::decode_request(&buf, 0)?, (7, req));
//! # Ok::<(), proto::ProtoError>(())
//! ```

use std::fmt;

/// The protocol version this build speaks. The handshake fails on any other.
///
/// # Examples
///
/// ```
/// use nsproxy::proto::{self, Request};
/// let hello = Request::Hello { version: proto::VERSION, user_ns: false, exec_name: None };
/// let mut buf = Vec::new();
/// proto::encode_request(1, &hello, &mut buf)?;
/// # Ok::<(), proto::ProtoError>(())
/// ```
pub const VERSION: u32 = 1;

/// The largest frame either side sends or accepts, header included.
///
/// # Examples
///
/// ```
/// let mut buf = vec![0u8; nsproxy::proto::MAX_FRAME + 1]; // one more: see MSG_TRUNC
/// # let _ = &mut buf;
/// ```
pub const MAX_FRAME: usize = 256 * 1024;

/// The largest number of fds one frame may carry.
///
/// # Examples
///
/// ```
/// use nsproxy::proto::{MAX_FDS, Reply};
/// let spawned = Reply::Spawned { pid: 42, stdio: [true, true, true] };
/// assert!(spawned.fd_count() <= MAX_FDS); // the pidfd and three pipes
/// ```
pub const MAX_FDS: usize = 4;

/// Size of the control-channel header.
///
/// # Examples
///
/// ```
/// use nsproxy::proto::{self, Request};
/// let mut buf = Vec::new();
/// proto::encode_request(1, &Request::OpenRelay { protocol: 0 }, &mut buf)?;
/// assert_eq!(buf.len(), proto::HEADER_LEN + 4); // header, then the protocol
/// # Ok::<(), proto::ProtoError>(())
/// ```
pub const HEADER_LEN: usize = 8;

/// Size of the relay-channel header.
///
/// # Examples
///
/// ```
/// let mut frame = Vec::new();
/// nsproxy::proto::encode_relay_header(0, 0, &mut frame);
/// assert_eq!(frame.len(), nsproxy::proto::RELAY_HEADER_LEN);
/// ```
pub const RELAY_HEADER_LEN: usize = 12;

/// The largest netlink datagram a relay frame carries.
///
/// # Examples
///
/// ```
/// use nsproxy::proto::{MAX_DATAGRAM, MAX_FRAME, RELAY_HEADER_LEN};
/// assert_eq!(MAX_DATAGRAM + RELAY_HEADER_LEN, MAX_FRAME);
/// ```
pub const MAX_DATAGRAM: usize = MAX_FRAME - RELAY_HEADER_LEN;

/// `Hello` flag: the frame carries a user namespace fd after the netns fd.
///
/// # Examples
///
/// ```
/// use nsproxy::proto::Request;
/// let hello = Request::Hello { version: 1, user_ns: true, exec_name: None };
/// assert_eq!(hello.fd_count(), 2); // the netns fd and the user namespace fd
/// ```
pub const HELLO_USERNS: u32 = 1;

const K_HELLO: u16 = 1;
const K_OPEN_SOCKET: u16 = 2;
const K_OPEN_RELAY: u16 = 3;
const K_SPAWN: u16 = 4;
const K_USER_HELLO: u16 = 5;
const K_NEW_NETNS: u16 = 6;
const K_OPEN_SOCKET_IN: u16 = 7;
const K_NAME_NETNS: u16 = 8;
const K_READY: u16 = 0x81;
const K_SOCKET: u16 = 0x82;
const K_RELAY: u16 = 0x83;
const K_SPAWNED: u16 = 0x84;
const K_EXITED: u16 = 0x85;
const K_FAILED: u16 = 0x86;

const R_DATAGRAM: u8 = 1;
const R_ERRNO: u8 = 2;

const S_HAS_ARG0: u32 = 1;
const S_HAS_CWD: u32 = 2;
const S_HAS_PGROUP: u32 = 4;
const S_KILL_ON_DROP: u32 = 8;
const S_IN_NETNS: u32 = 16;
const S_KNOWN: u32 = S_HAS_ARG0 | S_HAS_CWD | S_HAS_PGROUP | S_KILL_ON_DROP | S_IN_NETNS;

/// `UserHello` flag: make a new user namespace (no fd follows) instead of
/// joining the one whose fd the frame carries.
const U_CREATE: u32 = 1;
/// `UserHello` flag: a directory path follows, whose deletions the agent
/// watches (the names of the namespaces it holds).
const U_HAS_DIR: u32 = 2;
/// `UserHello` flag: the agent outlives the client while it holds names.
const U_DETACH: u32 = 4;

/// A frame the protocol rejects.
///
/// Whichever side gets one closes the connection: the agent exits, the
/// client fails every pending request.
///
/// # Examples
///
/// ```
/// let err = nsproxy::proto::decode_reply(&[1, 2, 3], 0).unwrap_err();
/// assert!(matches!(err, nsproxy::proto::ProtoError::Truncated { .. }));
/// println!("{err}");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtoError {
    /// The frame ended before `what` was complete.
    #[error("truncated frame: expected {need} bytes for {what}, {have} left")]
    Truncated {
        /// The field being read.
        what: &'static str,
        /// Bytes it needs.
        need: usize,
        /// Bytes left in the frame.
        have: usize,
    },
    /// The frame (or a field of it) is larger than allowed.
    #[error("oversized {what}: {len} bytes, at most {max}")]
    Oversized {
        /// What was too large.
        what: &'static str,
        /// Its size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The message kind is not one this side accepts.
    #[error("unknown message kind {kind:#x} on the {channel} channel")]
    UnknownKind {
        /// The kind received.
        kind: u16,
        /// `"request"`, `"reply"` or `"relay"`.
        channel: &'static str,
    },
    /// The frame carried a different number of fds than its message needs.
    #[error("{message} carries {expected} fds, the frame came with {got}")]
    UnexpectedFds {
        /// The message.
        message: &'static str,
        /// Fds it needs.
        expected: usize,
        /// Fds that came.
        got: usize,
    },
    /// The peer speaks another protocol version.
    #[error("protocol version {got}, this build speaks {expected}")]
    Version {
        /// Ours.
        expected: u32,
        /// Theirs.
        got: u32,
    },
    /// A field has a value the protocol does not allow.
    #[error("invalid {what}: {why}")]
    Invalid {
        /// The field.
        what: &'static str,
        /// Why.
        why: &'static str,
    },
    /// Bytes were left after the message.
    #[error("{extra} trailing bytes after {message}")]
    Trailing {
        /// The message.
        message: &'static str,
        /// How many bytes were left.
        extra: usize,
    },
    /// A message arrived that this point of the conversation does not expect.
    #[error("expected {expected}, got {got}")]
    Unexpected {
        /// What was expected.
        expected: &'static str,
        /// What came.
        got: &'static str,
    },
}

impl ProtoError {
    /// What the protocol expected, in words.
    ///
    /// # Examples
    ///
    /// ```
    /// let err = nsproxy::proto::ProtoError::Version { expected: 1, got: 9 };
    /// assert_eq!(err.expected(), "protocol version 1");
    /// ```
    pub fn expected(&self) -> String {
        match self {
            ProtoError::Truncated { what, need, .. } => format!("{need} bytes for {what}"),
            ProtoError::Oversized { what, max, .. } => format!("{what} of at most {max} bytes"),
            ProtoError::UnknownKind { channel, .. } => format!("a known {channel} kind"),
            ProtoError::UnexpectedFds {
                message, expected, ..
            } => {
                format!("{expected} fds with {message}")
            }
            ProtoError::Version { expected, .. } => format!("protocol version {expected}"),
            ProtoError::Invalid { what, .. } => format!("a valid {what}"),
            ProtoError::Trailing { message, .. } => format!("the end of {message}"),
            ProtoError::Unexpected { expected, .. } => (*expected).to_string(),
        }
    }

    /// What came instead, in words.
    ///
    /// # Examples
    ///
    /// ```
    /// let err = nsproxy::proto::ProtoError::Version { expected: 1, got: 9 };
    /// assert_eq!(err.got(), "version 9");
    /// ```
    pub fn got(&self) -> String {
        match self {
            ProtoError::Truncated { have, .. } => format!("{have} bytes"),
            ProtoError::Oversized { len, .. } => format!("{len} bytes"),
            ProtoError::UnknownKind { kind, .. } => format!("kind {kind:#x}"),
            ProtoError::UnexpectedFds { got, .. } => format!("{got} fds"),
            ProtoError::Version { got, .. } => format!("version {got}"),
            ProtoError::Invalid { why, .. } => (*why).to_string(),
            ProtoError::Trailing { extra, .. } => format!("{extra} more bytes"),
            ProtoError::Unexpected { got, .. } => (*got).to_string(),
        }
    }
}

/// The step of an agent operation that failed, carried by [`Reply::Failed`].
///
/// # Examples
///
/// ```
/// use nsproxy::proto::Step;
/// assert_eq!(Step::from_code(Step::Exec.code()), Step::Exec);
/// assert_eq!(Step::Exec.to_string(), "exec");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Step {
    /// The agent rejected a frame.
    Protocol,
    /// `setns` into the user namespace.
    SetnsUser,
    /// `setns` into the network namespace.
    SetnsNet,
    /// `unshare(CLONE_NEWNS)` for exec mode.
    UnshareMount,
    /// Making `/` a recursive slave mount.
    MountSlave,
    /// Detach-unmounting `/sys` (reserved: as in iproute2, this agent mounts
    /// the new sysfs over `/sys` when it cannot unmount it).
    UnmountSys,
    /// Mounting a new sysfs on `/sys`.
    MountSys,
    /// Bind-mounting a file of `/etc/netns/NAME` over `/etc`.
    BindEtc,
    /// `socket()` for `open_socket`.
    Socket,
    /// Creating the relayed netlink socket.
    Netlink,
    /// Spawning the program (`posix_spawn`/exec): the detail is the program.
    Exec,
    /// `pidfd_open` on the spawned child.
    Pidfd,
    /// `unshare(CLONE_NEWUSER)`: making a user namespace.
    UnshareUser,
    /// Writing `setgroups`, `uid_map` or `gid_map` of a new user namespace
    /// (the detail names the file).
    UserMap,
    /// `unshare(CLONE_NEWNET)`: making a network namespace (the agent's
    /// home, or one asked for by `NewNetNs`).
    UnshareNet,
    /// `setns` back into the agent's home network namespace.
    SetnsHome,
    /// Making the name of a new namespace (a symlink in the watched
    /// directory; the detail is the name).
    Name,
    /// Watching the name directory (`inotify`).
    Watch,
    /// A step this build does not know (a newer agent).
    Other(u16),
}

impl Step {
    /// The wire code.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(nsproxy::proto::Step::Protocol.code(), 1);
    /// ```
    pub fn code(self) -> u16 {
        match self {
            Step::Protocol => 1,
            Step::SetnsUser => 2,
            Step::SetnsNet => 3,
            Step::UnshareMount => 4,
            Step::MountSlave => 5,
            Step::UnmountSys => 6,
            Step::MountSys => 7,
            Step::BindEtc => 8,
            Step::Socket => 9,
            Step::Netlink => 10,
            Step::Exec => 11,
            Step::Pidfd => 12,
            Step::UnshareUser => 13,
            Step::UserMap => 14,
            Step::UnshareNet => 15,
            Step::SetnsHome => 16,
            Step::Name => 17,
            Step::Watch => 18,
            Step::Other(code) => code,
        }
    }

    /// The step for a wire code (unknown codes become [`Step::Other`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use nsproxy::proto::Step;
    /// assert_eq!(Step::from_code(999), Step::Other(999));
    /// ```
    pub fn from_code(code: u16) -> Step {
        match code {
            1 => Step::Protocol,
            2 => Step::SetnsUser,
            3 => Step::SetnsNet,
            4 => Step::UnshareMount,
            5 => Step::MountSlave,
            6 => Step::UnmountSys,
            7 => Step::MountSys,
            8 => Step::BindEtc,
            9 => Step::Socket,
            10 => Step::Netlink,
            11 => Step::Exec,
            12 => Step::Pidfd,
            13 => Step::UnshareUser,
            14 => Step::UserMap,
            15 => Step::UnshareNet,
            16 => Step::SetnsHome,
            17 => Step::Name,
            18 => Step::Watch,
            other => Step::Other(other),
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Step::Protocol => "protocol",
            Step::SetnsUser => "setns(user)",
            Step::SetnsNet => "setns(net)",
            Step::UnshareMount => "unshare(mount)",
            Step::MountSlave => "make / a slave mount",
            Step::UnmountSys => "unmount /sys",
            Step::MountSys => "mount sysfs on /sys",
            Step::BindEtc => "bind /etc/netns file",
            Step::Socket => "socket",
            Step::Netlink => "netlink socket",
            Step::Exec => "exec",
            Step::Pidfd => "pidfd_open",
            Step::UnshareUser => "unshare(user)",
            Step::UserMap => "write the user namespace's id maps",
            Step::UnshareNet => "unshare(net)",
            Step::SetnsHome => "setns(home net)",
            Step::Name => "name the namespace",
            Step::Watch => "watch the name directory",
            Step::Other(code) => return write!(f, "step #{code}"),
        };
        f.write_str(s)
    }
}

/// Where a spawned program's stdin, stdout or stderr goes.
///
/// # Examples
///
/// ```
/// use nsproxy::proto::StdioSpec;
/// let stdio = [StdioSpec::Null, StdioSpec::Pipe, StdioSpec::Fd];
/// assert_eq!(stdio.iter().filter(|s| **s == StdioSpec::Fd).count(), 1);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StdioSpec {
    /// `/dev/null`.
    Null,
    /// A pipe made by the agent; the client's end comes back in `Spawned`.
    Pipe,
    /// An fd the client sent with the request (in stdin, stdout, stderr order).
    Fd,
}

impl StdioSpec {
    fn code(self) -> u8 {
        match self {
            StdioSpec::Null => 0,
            StdioSpec::Pipe => 1,
            StdioSpec::Fd => 2,
        }
    }

    fn from_code(code: u8) -> Result<StdioSpec, ProtoError> {
        match code {
            0 => Ok(StdioSpec::Null),
            1 => Ok(StdioSpec::Pipe),
            2 => Ok(StdioSpec::Fd),
            _ => Err(ProtoError::Invalid {
                what: "stdio",
                why: "code is not 0, 1 or 2",
            }),
        }
    }
}

/// The program to run, as the agent receives it.
///
/// Strings are raw bytes (no NUL inside): they become C strings in the agent.
///
/// # Examples
///
/// ```
/// use nsproxy::proto::{SpawnSpec, StdioSpec};
/// let spec = SpawnSpec {
///     program: b"/bin/true".to_vec(),
///     arg0: None,
///     args: vec![],
///     env: vec![b"PATH=/usr/bin:/bin".to_vec()],
///     cwd: None,
///     pgroup: None,
///     kill_on_drop: true,
///     stdio: [StdioSpec::Null; 3],
///     in_netns: false,
/// };
/// assert_eq!(spec.fd_count(), 0);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpawnSpec {
    /// The program (a path, or a name looked up in the child's `PATH`).
    pub program: Vec<u8>,
    /// `argv[0]`, if not the program.
    pub arg0: Option<Vec<u8>>,
    /// The arguments after `argv[0]`.
    pub args: Vec<Vec<u8>>,
    /// The whole environment, as `KEY=VALUE` entries.
    pub env: Vec<Vec<u8>>,
    /// The working directory, if not the agent's.
    pub cwd: Option<Vec<u8>>,
    /// Process group to join (`0`: a new group led by the child).
    pub pgroup: Option<i32>,
    /// Kill the child if the agent exits while the child still runs.
    pub kill_on_drop: bool,
    /// stdin, stdout, stderr.
    pub stdio: [StdioSpec; 3],
    /// Spawn in the network namespace whose fd the frame carries after the
    /// stdio fds (a user-namespace agent, see [`Request::UserHello`]),
    /// instead of the agent's own.
    pub in_netns: bool,
}

impl SpawnSpec {
    /// How many fds the `Spawn` frame carries (one per [`StdioSpec::Fd`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use nsproxy::proto::{SpawnSpec, StdioSpec};
    /// let spec = SpawnSpec {
    ///     program: b"cat".to_vec(),
    ///     arg0: None,
    ///     args: vec![],
    ///     env: vec![],
    ///     cwd: None,
    ///     pgroup: None,
    ///     kill_on_drop: false,
    ///     stdio: [StdioSpec::Fd, StdioSpec::Null, StdioSpec::Fd],
    ///     in_netns: false,
    /// };
    /// assert_eq!(spec.fd_count(), 2);
    /// ```
    pub fn fd_count(&self) -> usize {
        self.stdio.iter().filter(|s| **s == StdioSpec::Fd).count() + usize::from(self.in_netns)
    }
}

/// A message from the client to the agent.
///
/// # Examples
///
/// ```
/// use nsproxy::proto::Request;
/// let req = Request::OpenRelay { protocol: libc::NETLINK_ROUTE };
/// assert_eq!(req.fd_count(), 1);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// The handshake: enter the namespaces carried as fds (netns, then the
    /// user namespace if `user_ns`), and set up exec mode for `exec_name`.
    Hello {
        /// Protocol version of the client.
        version: u32,
        /// Whether a user namespace fd follows the netns fd.
        user_ns: bool,
        /// Exec-mode mounts (`/sys`, and `/etc/netns/NAME` for a name):
        /// `None` for none, `Some` of the namespace's name, or `Some` of an
        /// empty name for a namespace without one (no `/etc` binds). On the
        /// wire, a presence byte 0, 1 (then the name) or 2.
        exec_name: Option<Vec<u8>>,
    },
    /// Open a socket inside the namespace and send it back.
    OpenSocket {
        /// `AF_*`.
        domain: i32,
        /// `SOCK_*` (flags allowed; `SOCK_CLOEXEC` is always added).
        ty: i32,
        /// The protocol.
        protocol: i32,
    },
    /// Relay a new netlink socket of `protocol` over the relay channel whose
    /// agent end this frame carries.
    OpenRelay {
        /// `NETLINK_*`.
        protocol: i32,
    },
    /// Spawn a program; the frame carries one fd per [`StdioSpec::Fd`]
    /// (and the network namespace's with [`SpawnSpec::in_netns`]).
    Spawn(SpawnSpec),
    /// The handshake of a *user-namespace agent* (instead of `Hello`): make
    /// a new user namespace mapping the agent's uid and gid to 0 (as
    /// `unshare -Ur` does), or join the one whose fd (an nsfs `user` file
    /// or a pidfd) the frame carries; then make an empty network namespace
    /// of it as the agent's home. Such an agent serves [`Request::NewNetNs`],
    /// [`Request::OpenSocketIn`] and `Spawn` with `in_netns`, switching into
    /// the namespace given with each request and back home after it.
    UserHello {
        /// Protocol version of the client.
        version: u32,
        /// Make a new user namespace (no fd) rather than join one (one fd).
        create: bool,
        /// A directory whose entries name namespaces this agent holds: when
        /// one of its names is removed, the agent lets the namespace go.
        dir: Option<Vec<u8>>,
        /// Outlive the client: no parent-death signal, a session of its
        /// own, and at the end of the control connection the agent stays
        /// until the last name it holds is removed.
        detach: bool,
    },
    /// Make a new network namespace (owned by the agent's user namespace)
    /// and send its fd back, answered with [`Reply::Socket`]. With a `name`,
    /// the agent also holds the namespace and names it: a symlink
    /// `DIR/NAME` to `/proc/AGENT/fd/N`, the fd it holds, which any process
    /// of the same user can open; removing the symlink releases it.
    NewNetNs {
        /// The name (a valid namespace name), if any.
        name: Option<Vec<u8>>,
    },
    /// Hold the network namespace whose fd the frame carries and name it
    /// `name` (a user-namespace agent with a name directory), as
    /// [`Request::NewNetNs`] names a new one: a symlink `DIR/NAME` to the
    /// fd the agent keeps, released when the symlink is removed. Answered
    /// with [`Reply::Socket`] carrying the namespace back.
    NameNetNs {
        /// The name (a valid namespace name).
        name: Vec<u8>,
    },
    /// Open a socket inside the network namespace whose fd the frame
    /// carries (a user-namespace agent), answered with [`Reply::Socket`].
    OpenSocketIn {
        /// `AF_*`.
        domain: i32,
        /// `SOCK_*` (flags allowed; `SOCK_CLOEXEC` is always added).
        ty: i32,
        /// The protocol.
        protocol: i32,
    },
}

impl Request {
    /// The fds a frame with this request carries.
    ///
    /// # Examples
    ///
    /// ```
    /// use nsproxy::proto::Request;
    /// let udp = Request::OpenSocket { domain: libc::AF_INET, ty: libc::SOCK_DGRAM, protocol: 0 };
    /// assert_eq!(udp.fd_count(), 0);
    /// assert_eq!(Request::OpenRelay { protocol: libc::NETLINK_ROUTE }.fd_count(), 1);
    /// ```
    pub fn fd_count(&self) -> usize {
        match self {
            Request::Hello { user_ns, .. } => 1 + usize::from(*user_ns),
            Request::OpenSocket { .. } => 0,
            Request::OpenRelay { .. } => 1,
            Request::Spawn(spec) => spec.fd_count(),
            Request::UserHello { create, .. } => usize::from(!*create),
            Request::NewNetNs { .. } => 0,
            Request::NameNetNs { .. } => 1,
            Request::OpenSocketIn { .. } => 1,
        }
    }

    /// The message's name, for errors.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(nsproxy::proto::Request::OpenRelay { protocol: 0 }.name(), "OpenRelay");
    /// ```
    pub fn name(&self) -> &'static str {
        match self {
            Request::Hello { .. } => "Hello",
            Request::OpenSocket { .. } => "OpenSocket",
            Request::OpenRelay { .. } => "OpenRelay",
            Request::Spawn(_) => "Spawn",
            Request::UserHello { .. } => "UserHello",
            Request::NewNetNs { .. } => "NewNetNs",
            Request::NameNetNs { .. } => "NameNetNs",
            Request::OpenSocketIn { .. } => "OpenSocketIn",
        }
    }
}

/// A message from the agent to the client.
///
/// # Examples
///
/// ```
/// use nsproxy::proto::Reply;
/// let reply = Reply::Spawned { pid: 42, stdio: [false, true, true] };
/// assert_eq!(reply.fd_count(), 3); // the pidfd and two pipes
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// The handshake succeeded: the agent is in the namespace.
    Ready {
        /// Protocol version of the agent.
        version: u32,
        /// The agent's pid (as the agent sees it).
        pid: u32,
    },
    /// The socket asked for (one fd).
    Socket,
    /// The relay is set up; the frame carries a dup of the relayed netlink
    /// socket.
    Relay,
    /// The program runs. The frame carries its pidfd, then the client ends of
    /// the pipes, in stdin, stdout, stderr order, for each `true` of `stdio`.
    Spawned {
        /// The child's pid.
        pid: i32,
        /// Which of stdin, stdout, stderr came back as a pipe.
        stdio: [bool; 3],
    },
    /// The program of the `Spawn` request with this frame's id exited.
    Exited {
        /// Its pid.
        pid: i32,
        /// The raw wait status.
        status: i32,
    },
    /// The request with this frame's id failed (id 0: the agent rejected a
    /// frame and closes the connection).
    Failed {
        /// The step that failed.
        step: Step,
        /// The errno.
        errno: i32,
        /// What it was about (a path, a program), possibly empty.
        detail: Vec<u8>,
    },
}

impl Reply {
    /// The fds a frame with this reply carries.
    ///
    /// # Examples
    ///
    /// ```
    /// use nsproxy::proto::Reply;
    /// assert_eq!(Reply::Socket.fd_count(), 1);
    /// assert_eq!(Reply::Spawned { pid: 7, stdio: [true, false, true] }.fd_count(), 3);
    /// assert_eq!(Reply::Exited { pid: 7, status: 0 }.fd_count(), 0);
    /// ```
    pub fn fd_count(&self) -> usize {
        match self {
            Reply::Ready { .. } | Reply::Exited { .. } | Reply::Failed { .. } => 0,
            Reply::Socket | Reply::Relay => 1,
            Reply::Spawned { stdio, .. } => 1 + stdio.iter().filter(|s| **s).count(),
        }
    }

    /// The message's name, for errors.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(nsproxy::proto::Reply::Socket.name(), "Socket");
    /// ```
    pub fn name(&self) -> &'static str {
        match self {
            Reply::Ready { .. } => "Ready",
            Reply::Socket => "Socket",
            Reply::Relay => "Relay",
            Reply::Spawned { .. } => "Spawned",
            Reply::Exited { .. } => "Exited",
            Reply::Failed { .. } => "Failed",
        }
    }
}

/// A frame of a relay channel.
///
/// # Examples
///
/// ```
/// use nsproxy::proto::{self, RelayFrame};
/// let mut buf = Vec::new();
/// proto::encode_relay(&RelayFrame::Errno(libc::ENOBUFS), &mut buf);
/// assert_eq!(proto::decode_relay(&buf, 0)?, RelayFrame::Errno(libc::ENOBUFS));
/// # Ok::<(), proto::ProtoError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayFrame {
    /// One netlink datagram. From the client: the destination address; from
    /// the agent: the sender's address.
    Datagram {
        /// Netlink port id.
        port: u32,
        /// Multicast groups bitmask.
        groups: u32,
        /// The datagram, whole.
        data: Vec<u8>,
    },
    /// The agent's `recvmsg` on the netlink socket failed with this errno
    /// (`ENOBUFS`: messages were lost).
    Errno(i32),
}

struct Writer<'a>(&'a mut Vec<u8>);

impl Writer<'_> {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn i32(&mut self, v: i32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn bytes(&mut self, v: &[u8]) {
        self.u32(v.len() as u32);
        self.0.extend_from_slice(v);
    }
    fn list(&mut self, v: &[Vec<u8>]) {
        self.u32(v.len() as u32);
        for item in v {
            self.bytes(item);
        }
    }
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], ProtoError> {
        if self.buf.len() < n {
            return Err(ProtoError::Truncated {
                what,
                need: n,
                have: self.buf.len(),
            });
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }
    fn u8(&mut self, what: &'static str) -> Result<u8, ProtoError> {
        Ok(self.take(1, what)?[0])
    }
    fn u16(&mut self, what: &'static str) -> Result<u16, ProtoError> {
        let b = self.take(2, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self, what: &'static str) -> Result<u32, ProtoError> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn i32(&mut self, what: &'static str) -> Result<i32, ProtoError> {
        Ok(self.u32(what)? as i32)
    }
    /// A length-prefixed byte string; `cstr` rejects a NUL inside.
    fn bytes(&mut self, what: &'static str, cstr: bool) -> Result<Vec<u8>, ProtoError> {
        let len = self.u32(what)? as usize;
        if len > MAX_FRAME {
            return Err(ProtoError::Oversized {
                what,
                len,
                max: MAX_FRAME,
            });
        }
        let v = self.take(len, what)?;
        if cstr && v.contains(&0) {
            return Err(ProtoError::Invalid {
                what,
                why: "contains a NUL byte",
            });
        }
        Ok(v.to_vec())
    }
    fn list(&mut self, what: &'static str) -> Result<Vec<Vec<u8>>, ProtoError> {
        let n = self.u32(what)? as usize;
        // Each entry takes at least its 4-byte length: bound n before allocating.
        if n > self.buf.len() / 4 {
            return Err(ProtoError::Truncated {
                what,
                need: n * 4,
                have: self.buf.len(),
            });
        }
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(self.bytes(what, true)?);
        }
        Ok(v)
    }
    fn finish(&self, message: &'static str) -> Result<(), ProtoError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(ProtoError::Trailing {
                message,
                extra: self.buf.len(),
            })
        }
    }
}

fn check_size(len: usize, what: &'static str) -> Result<(), ProtoError> {
    if len > MAX_FRAME {
        return Err(ProtoError::Oversized {
            what,
            len,
            max: MAX_FRAME,
        });
    }
    Ok(())
}

fn check_fds(message: &'static str, expected: usize, got: usize) -> Result<(), ProtoError> {
    if expected != got {
        return Err(ProtoError::UnexpectedFds {
            message,
            expected,
            got,
        });
    }
    Ok(())
}

/// A namespace name as the run directory takes it: 1-255 bytes, no `/`,
/// not `.` or `..` (NUL was rejected when it was read).
fn valid_name(name: &[u8]) -> bool {
    !(name.is_empty() || name.len() > 255 || name.contains(&b'/') || name == b"." || name == b"..")
}

fn header(w: &mut Writer<'_>, kind: u16, id: u32) {
    w.u16(kind);
    w.u16(0);
    w.u32(id);
}

fn read_header(r: &mut Reader<'_>) -> Result<(u16, u32), ProtoError> {
    let mut h = Reader {
        buf: r.take(HEADER_LEN, "header")?,
    };
    let kind = h.u16("header")?;
    let reserved = h.u16("header")?;
    let id = h.u32("header")?;
    if reserved != 0 {
        return Err(ProtoError::Invalid {
            what: "header",
            why: "reserved field is not zero",
        });
    }
    Ok((kind, id))
}

/// Encodes `req` with request id `id` into `out` (cleared first).
///
/// # Errors
///
/// [`ProtoError::Oversized`] if the frame would exceed [`MAX_FRAME`].
///
/// # Examples
///
/// ```
/// use nsproxy::proto::{self, Request};
/// let mut buf = Vec::new();
/// proto::encode_request(1, &Request::OpenRelay { protocol: 0 }, &mut buf)?;
/// assert_eq!(buf.len(), 12);
/// # Ok::<(), proto::ProtoError>(())
/// ```
pub fn encode_request(id: u32, req: &Request, out: &mut Vec<u8>) -> Result<(), ProtoError> {
    out.clear();
    let mut w = Writer(out);
    match req {
        Request::Hello {
            version,
            user_ns,
            exec_name,
        } => {
            header(&mut w, K_HELLO, id);
            w.u32(*version);
            w.u32(if *user_ns { HELLO_USERNS } else { 0 });
            match exec_name {
                Some(name) if name.is_empty() => w.u8(2),
                Some(name) => {
                    w.u8(1);
                    w.bytes(name);
                }
                None => w.u8(0),
            }
        }
        Request::OpenSocket {
            domain,
            ty,
            protocol,
        } => {
            header(&mut w, K_OPEN_SOCKET, id);
            w.i32(*domain);
            w.i32(*ty);
            w.i32(*protocol);
        }
        Request::OpenRelay { protocol } => {
            header(&mut w, K_OPEN_RELAY, id);
            w.i32(*protocol);
        }
        Request::Spawn(s) => {
            header(&mut w, K_SPAWN, id);
            let mut flags = 0;
            if s.arg0.is_some() {
                flags |= S_HAS_ARG0;
            }
            if s.cwd.is_some() {
                flags |= S_HAS_CWD;
            }
            if s.pgroup.is_some() {
                flags |= S_HAS_PGROUP;
            }
            if s.kill_on_drop {
                flags |= S_KILL_ON_DROP;
            }
            if s.in_netns {
                flags |= S_IN_NETNS;
            }
            w.u32(flags);
            for spec in s.stdio {
                w.u8(spec.code());
            }
            w.bytes(&s.program);
            if let Some(arg0) = &s.arg0 {
                w.bytes(arg0);
            }
            w.list(&s.args);
            w.list(&s.env);
            if let Some(cwd) = &s.cwd {
                w.bytes(cwd);
            }
            if let Some(pgroup) = s.pgroup {
                w.i32(pgroup);
            }
        }
        Request::UserHello {
            version,
            create,
            dir,
            detach,
        } => {
            header(&mut w, K_USER_HELLO, id);
            w.u32(*version);
            let mut flags = 0;
            if *create {
                flags |= U_CREATE;
            }
            if *detach {
                flags |= U_DETACH;
            }
            if dir.is_some() {
                flags |= U_HAS_DIR;
            }
            w.u32(flags);
            if let Some(dir) = dir {
                w.bytes(dir);
            }
        }
        Request::NewNetNs { name } => {
            header(&mut w, K_NEW_NETNS, id);
            match name {
                Some(name) => {
                    w.u8(1);
                    w.bytes(name);
                }
                None => w.u8(0),
            }
        }
        Request::NameNetNs { name } => {
            header(&mut w, K_NAME_NETNS, id);
            w.bytes(name);
        }
        Request::OpenSocketIn {
            domain,
            ty,
            protocol,
        } => {
            header(&mut w, K_OPEN_SOCKET_IN, id);
            w.i32(*domain);
            w.i32(*ty);
            w.i32(*protocol);
        }
    }
    check_size(out.len(), "request frame")
}

/// Decodes a request frame that came with `fds` fds, into its id and message.
///
/// # Errors
///
/// A [`ProtoError`] for a truncated, oversized, unknown or malformed frame, or
/// one with the wrong number of fds.
///
/// # Examples
///
/// ```
/// use nsproxy::proto::{self, ProtoError};
/// let mut buf = Vec::new();
/// proto::encode_request(1, &proto::Request::OpenRelay { protocol: 0 }, &mut buf)?;
/// assert!(matches!(proto::decode_request(&buf, 0), Err(ProtoError::UnexpectedFds { .. })));
/// # Ok::<(), ProtoError>(())
/// ```
pub fn decode_request(frame: &[u8], fds: usize) -> Result<(u32, Request), ProtoError> {
    check_size(frame.len(), "request frame")?;
    let mut r = Reader { buf: frame };
    let (kind, id) = read_header(&mut r)?;
    let req = match kind {
        K_HELLO => {
            let version = r.u32("Hello.version")?;
            if version != VERSION {
                return Err(ProtoError::Version {
                    expected: VERSION,
                    got: version,
                });
            }
            let flags = r.u32("Hello.flags")?;
            if flags & !HELLO_USERNS != 0 {
                return Err(ProtoError::Invalid {
                    what: "Hello.flags",
                    why: "unknown flag bits",
                });
            }
            let exec_name = match r.u8("Hello.exec_name")? {
                0 => None,
                1 => {
                    let name = r.bytes("Hello.exec_name", true)?;
                    if !valid_name(&name) {
                        return Err(ProtoError::Invalid {
                            what: "Hello.exec_name",
                            why: "not a valid namespace name",
                        });
                    }
                    Some(name)
                }
                2 => Some(Vec::new()),
                _ => {
                    return Err(ProtoError::Invalid {
                        what: "Hello.exec_name",
                        why: "presence byte is not 0, 1 or 2",
                    });
                }
            };
            Request::Hello {
                version,
                user_ns: flags & HELLO_USERNS != 0,
                exec_name,
            }
        }
        K_OPEN_SOCKET => Request::OpenSocket {
            domain: r.i32("OpenSocket.domain")?,
            ty: r.i32("OpenSocket.type")?,
            protocol: r.i32("OpenSocket.protocol")?,
        },
        K_OPEN_RELAY => Request::OpenRelay {
            protocol: r.i32("OpenRelay.protocol")?,
        },
        K_SPAWN => {
            let flags = r.u32("Spawn.flags")?;
            if flags & !S_KNOWN != 0 {
                return Err(ProtoError::Invalid {
                    what: "Spawn.flags",
                    why: "unknown flag bits",
                });
            }
            let mut stdio = [StdioSpec::Null; 3];
            for s in &mut stdio {
                *s = StdioSpec::from_code(r.u8("Spawn.stdio")?)?;
            }
            let program = r.bytes("Spawn.program", true)?;
            if program.is_empty() {
                return Err(ProtoError::Invalid {
                    what: "Spawn.program",
                    why: "empty",
                });
            }
            let arg0 = if flags & S_HAS_ARG0 != 0 {
                Some(r.bytes("Spawn.arg0", true)?)
            } else {
                None
            };
            let args = r.list("Spawn.args")?;
            let env = r.list("Spawn.env")?;
            let cwd = if flags & S_HAS_CWD != 0 {
                Some(r.bytes("Spawn.cwd", true)?)
            } else {
                None
            };
            let pgroup = if flags & S_HAS_PGROUP != 0 {
                let pg = r.i32("Spawn.pgroup")?;
                if pg < 0 {
                    return Err(ProtoError::Invalid {
                        what: "Spawn.pgroup",
                        why: "negative",
                    });
                }
                Some(pg)
            } else {
                None
            };
            Request::Spawn(SpawnSpec {
                program,
                arg0,
                args,
                env,
                cwd,
                pgroup,
                kill_on_drop: flags & S_KILL_ON_DROP != 0,
                stdio,
                in_netns: flags & S_IN_NETNS != 0,
            })
        }
        K_USER_HELLO => {
            let version = r.u32("UserHello.version")?;
            if version != VERSION {
                return Err(ProtoError::Version {
                    expected: VERSION,
                    got: version,
                });
            }
            let flags = r.u32("UserHello.flags")?;
            if flags & !(U_CREATE | U_HAS_DIR | U_DETACH) != 0 {
                return Err(ProtoError::Invalid {
                    what: "UserHello.flags",
                    why: "unknown flag bits",
                });
            }
            let dir = if flags & U_HAS_DIR != 0 {
                let dir = r.bytes("UserHello.dir", true)?;
                if !dir.starts_with(b"/") {
                    return Err(ProtoError::Invalid {
                        what: "UserHello.dir",
                        why: "not an absolute path",
                    });
                }
                Some(dir)
            } else {
                None
            };
            Request::UserHello {
                version,
                create: flags & U_CREATE != 0,
                dir,
                detach: flags & U_DETACH != 0,
            }
        }
        K_NEW_NETNS => {
            let name = match r.u8("NewNetNs.name")? {
                0 => None,
                1 => {
                    let name = r.bytes("NewNetNs.name", true)?;
                    if !valid_name(&name) {
                        return Err(ProtoError::Invalid {
                            what: "NewNetNs.name",
                            why: "not a valid namespace name",
                        });
                    }
                    Some(name)
                }
                _ => {
                    return Err(ProtoError::Invalid {
                        what: "NewNetNs.name",
                        why: "presence byte is not 0 or 1",
                    });
                }
            };
            Request::NewNetNs { name }
        }
        K_NAME_NETNS => {
            let name = r.bytes("NameNetNs.name", true)?;
            if !valid_name(&name) {
                return Err(ProtoError::Invalid {
                    what: "NameNetNs.name",
                    why: "not a valid namespace name",
                });
            }
            Request::NameNetNs { name }
        }
        K_OPEN_SOCKET_IN => Request::OpenSocketIn {
            domain: r.i32("OpenSocketIn.domain")?,
            ty: r.i32("OpenSocketIn.type")?,
            protocol: r.i32("OpenSocketIn.protocol")?,
        },
        _ => {
            return Err(ProtoError::UnknownKind {
                kind,
                channel: "request",
            });
        }
    };
    r.finish(req.name())?;
    check_fds(req.name(), req.fd_count(), fds)?;
    Ok((id, req))
}

/// Encodes `reply` for request id `id` into `out` (cleared first).
///
/// # Errors
///
/// [`ProtoError::Oversized`] if the frame would exceed [`MAX_FRAME`].
///
/// # Examples
///
/// ```
/// use nsproxy::proto::{self, Reply};
/// let mut buf = Vec::new();
/// proto::encode_reply(3, &Reply::Exited { pid: 10, status: 0 }, &mut buf)?;
/// assert_eq!(proto::decode_reply(&buf, 0)?, (3, Reply::Exited { pid: 10, status: 0 }));
/// # Ok::<(), proto::ProtoError>(())
/// ```
pub fn encode_reply(id: u32, reply: &Reply, out: &mut Vec<u8>) -> Result<(), ProtoError> {
    out.clear();
    let mut w = Writer(out);
    match reply {
        Reply::Ready { version, pid } => {
            header(&mut w, K_READY, id);
            w.u32(*version);
            w.u32(*pid);
        }
        Reply::Socket => header(&mut w, K_SOCKET, id),
        Reply::Relay => header(&mut w, K_RELAY, id),
        Reply::Spawned { pid, stdio } => {
            header(&mut w, K_SPAWNED, id);
            w.i32(*pid);
            let mask = stdio
                .iter()
                .enumerate()
                .fold(0u8, |m, (i, b)| m | (u8::from(*b) << i));
            w.u8(mask);
        }
        Reply::Exited { pid, status } => {
            header(&mut w, K_EXITED, id);
            w.i32(*pid);
            w.i32(*status);
        }
        Reply::Failed {
            step,
            errno,
            detail,
        } => {
            header(&mut w, K_FAILED, id);
            w.u16(step.code());
            w.i32(*errno);
            w.bytes(&detail[..detail.len().min(4096)]);
        }
    }
    check_size(out.len(), "reply frame")
}

/// Decodes a reply frame that came with `fds` fds, into its id and message.
///
/// # Errors
///
/// A [`ProtoError`] for a truncated, oversized, unknown or malformed frame, or
/// one with the wrong number of fds.
///
/// # Examples
///
/// ```
/// use nsproxy::proto::{self, Reply};
/// let mut buf = Vec::new();
/// proto::encode_reply(9, &Reply::Socket, &mut buf)?;
/// assert_eq!(proto::decode_reply(&buf, 1)?, (9, Reply::Socket));
/// # Ok::<(), proto::ProtoError>(())
/// ```
pub fn decode_reply(frame: &[u8], fds: usize) -> Result<(u32, Reply), ProtoError> {
    check_size(frame.len(), "reply frame")?;
    let mut r = Reader { buf: frame };
    let (kind, id) = read_header(&mut r)?;
    let reply = match kind {
        K_READY => Reply::Ready {
            version: r.u32("Ready.version")?,
            pid: r.u32("Ready.pid")?,
        },
        K_SOCKET => Reply::Socket,
        K_RELAY => Reply::Relay,
        K_SPAWNED => {
            let pid = r.i32("Spawned.pid")?;
            let mask = r.u8("Spawned.stdio")?;
            if mask & !7 != 0 {
                return Err(ProtoError::Invalid {
                    what: "Spawned.stdio",
                    why: "bits above 2 set",
                });
            }
            Reply::Spawned {
                pid,
                stdio: [mask & 1 != 0, mask & 2 != 0, mask & 4 != 0],
            }
        }
        K_EXITED => Reply::Exited {
            pid: r.i32("Exited.pid")?,
            status: r.i32("Exited.status")?,
        },
        K_FAILED => Reply::Failed {
            step: Step::from_code(r.u16("Failed.step")?),
            errno: r.i32("Failed.errno")?,
            detail: r.bytes("Failed.detail", false)?,
        },
        _ => {
            return Err(ProtoError::UnknownKind {
                kind,
                channel: "reply",
            });
        }
    };
    r.finish(reply.name())?;
    check_fds(reply.name(), reply.fd_count(), fds)?;
    Ok((id, reply))
}

/// Writes the relay header for a datagram into `out` (cleared first); the
/// caller appends the datagram. This lets the agent and the relay socket
/// build a frame without an intermediate copy.
///
/// # Examples
///
/// ```
/// let mut buf = Vec::new();
/// nsproxy::proto::encode_relay_header(0, 1, &mut buf);
/// buf.extend_from_slice(b"datagram");
/// let frame = nsproxy::proto::decode_relay(&buf, 0)?;
/// # Ok::<(), nsproxy::proto::ProtoError>(())
/// ```
pub fn encode_relay_header(port: u32, groups: u32, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&[R_DATAGRAM, 0, 0, 0]);
    out.extend_from_slice(&port.to_le_bytes());
    out.extend_from_slice(&groups.to_le_bytes());
}

/// Encodes a relay frame into `out` (cleared first).
///
/// # Examples
///
/// ```
/// use nsproxy::proto::{self, RelayFrame};
/// let frame = RelayFrame::Datagram { port: 0, groups: 1, data: b"nl".to_vec() };
/// let mut buf = Vec::new();
/// proto::encode_relay(&frame, &mut buf);
/// assert_eq!(proto::decode_relay(&buf, 0)?, frame);
/// # Ok::<(), proto::ProtoError>(())
/// ```
pub fn encode_relay(frame: &RelayFrame, out: &mut Vec<u8>) {
    match frame {
        RelayFrame::Datagram { port, groups, data } => {
            encode_relay_header(*port, *groups, out);
            out.extend_from_slice(data);
        }
        RelayFrame::Errno(errno) => {
            out.clear();
            out.extend_from_slice(&[R_ERRNO, 0, 0, 0]);
            out.extend_from_slice(&0u32.to_le_bytes());
            out.extend_from_slice(&0u32.to_le_bytes());
            out.extend_from_slice(&errno.to_le_bytes());
        }
    }
}

/// A decoded relay frame that borrows the datagram from the frame buffer.
///
/// # Examples
///
/// ```
/// use nsproxy::proto::{self, RelayView};
/// let mut buf = Vec::new();
/// proto::encode_relay_header(0, 4, &mut buf);
/// buf.extend_from_slice(b"abc");
/// assert_eq!(proto::view_relay(&buf, 0)?, RelayView::Datagram { port: 0, groups: 4, data: b"abc" });
/// # Ok::<(), proto::ProtoError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayView<'a> {
    /// See [`RelayFrame::Datagram`].
    Datagram {
        /// Netlink port id.
        port: u32,
        /// Multicast groups.
        groups: u32,
        /// The datagram.
        data: &'a [u8],
    },
    /// See [`RelayFrame::Errno`].
    Errno(i32),
}

/// Decodes a relay frame that came with `fds` fds without copying the datagram.
///
/// # Errors
///
/// A [`ProtoError`] for a truncated, oversized or unknown frame, an errno
/// frame carrying 0 or a negative errno, or any fd.
///
/// # Examples
///
/// ```
/// use nsproxy::proto::{self, RelayFrame, RelayView};
/// let mut buf = Vec::new();
/// proto::encode_relay(&RelayFrame::Errno(libc::ENOBUFS), &mut buf);
/// assert_eq!(proto::view_relay(&buf, 0)?, RelayView::Errno(libc::ENOBUFS));
/// assert!(proto::view_relay(&buf, 1).is_err(), "a relay frame carries no fd");
/// # Ok::<(), proto::ProtoError>(())
/// ```
pub fn view_relay(frame: &[u8], fds: usize) -> Result<RelayView<'_>, ProtoError> {
    check_size(frame.len(), "relay frame")?;
    let mut r = Reader { buf: frame };
    let mut h = Reader {
        buf: r.take(RELAY_HEADER_LEN, "relay header")?,
    };
    let kind = h.u8("relay header")?;
    let pad = h.take(3, "relay header")?;
    let port = h.u32("relay header")?;
    let groups = h.u32("relay header")?;
    if pad != [0, 0, 0] {
        return Err(ProtoError::Invalid {
            what: "relay header",
            why: "padding is not zero",
        });
    }
    let view = match kind {
        R_DATAGRAM => {
            check_fds("a relay datagram", 0, fds)?;
            RelayView::Datagram {
                port,
                groups,
                data: r.buf,
            }
        }
        R_ERRNO => {
            let errno = r.i32("relay errno")?;
            r.finish("a relay errno")?;
            check_fds("a relay errno", 0, fds)?;
            if errno <= 0 {
                return Err(ProtoError::Invalid {
                    what: "relay errno",
                    why: "not positive",
                });
            }
            RelayView::Errno(errno)
        }
        other => {
            return Err(ProtoError::UnknownKind {
                kind: u16::from(other),
                channel: "relay",
            });
        }
    };
    Ok(view)
}

/// Decodes a relay frame into an owned [`RelayFrame`].
///
/// # Errors
///
/// As [`view_relay`].
///
/// # Examples
///
/// ```
/// use nsproxy::proto::{self, RelayFrame};
/// let mut buf = Vec::new();
/// proto::encode_relay_header(0, 0, &mut buf);
/// buf.extend_from_slice(b"datagram");
/// let frame = proto::decode_relay(&buf, 0)?;
/// assert_eq!(frame, RelayFrame::Datagram { port: 0, groups: 0, data: b"datagram".to_vec() });
/// # Ok::<(), proto::ProtoError>(())
/// ```
pub fn decode_relay(frame: &[u8], fds: usize) -> Result<RelayFrame, ProtoError> {
    Ok(match view_relay(frame, fds)? {
        RelayView::Datagram { port, groups, data } => RelayFrame::Datagram {
            port,
            groups,
            data: data.to_vec(),
        },
        RelayView::Errno(errno) => RelayFrame::Errno(errno),
    })
}
