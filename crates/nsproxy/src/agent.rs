//! The agent side: what runs in the agent process, before `main`.
//!
//! The agent is single-threaded. After its setup (see [`crate::sys::agent_setup`])
//! it reads the handshake, enters the namespaces, and then serves the control
//! channel, its relays and its children from one `poll(2)` loop. It never
//! returns: [`run`] ends the process.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, setns, unshare};
use nix::sys::statvfs::{FsFlags, statvfs};

use crate::proto::{self, MAX_FRAME, Reply, Request, SpawnSpec, StdioSpec, Step};
use crate::sys;

/// The environment variable that turns a process into an agent; its value is
/// the protocol version.
pub(crate) const MARKER: &std::ffi::CStr = c"NSPROXY_AGENT";
/// The environment variable carrying the pid the agent's parent must have.
pub(crate) const PPID: &std::ffi::CStr = c"NSPROXY_AGENT_PPID";
/// The argument the agent is started with, so that a binary where the hook is
/// missing fails its argument parsing instead of running its `main` quietly.
pub(crate) const ARG: &str = "--nsproxy-agent";

/// Exit codes of the agent (the client sees them in the reaped status).
pub(crate) const EXIT_OK: i32 = 0;
pub(crate) const EXIT_PARENT_GONE: i32 = 2;
pub(crate) const EXIT_PROTOCOL: i32 = 3;
pub(crate) const EXIT_SETUP: i32 = 4;
pub(crate) const EXIT_PANIC: i32 = 5;
/// A privileged (`AT_SECURE`) process was asked to be an agent.
pub(crate) const EXIT_REFUSED: i32 = 6;

/// Called by the init hook when the marker is set. Never returns.
pub(crate) fn run(marker: &[u8]) -> ! {
    let code = std::panic::catch_unwind(|| main(marker)).unwrap_or(EXIT_PANIC);
    sys::exit(code)
}

fn main(marker: &[u8]) -> i32 {
    if marker != proto::VERSION.to_string().as_bytes() {
        return EXIT_SETUP;
    }
    let ppid = sys::getenv(PPID)
        .and_then(|v| {
            std::str::from_utf8(&v)
                .ok()
                .and_then(|s| s.parse::<i32>().ok())
        })
        .unwrap_or(-1);
    let ctl = match sys::agent_setup(ppid) {
        Ok(Some(ctl)) => ctl,
        Ok(None) => return EXIT_PARENT_GONE,
        Err(_) => return EXIT_SETUP,
    };
    let mut agent = Agent {
        ctl,
        buf: vec![0; MAX_FRAME + 1],
        nlbuf: vec![0; MAX_FRAME],
        out: Vec::with_capacity(4096),
        relays: Vec::new(),
        children: HashMap::new(),
        home: None,
        watch: None,
        pins: HashMap::new(),
        detached: false,
    };
    let code = match agent.handshake() {
        Ok(()) => agent.serve(),
        Err(code) => code,
    };
    agent.shutdown();
    code
}

struct Relay {
    data: OwnedFd,
    nl: OwnedFd,
    /// A frame for the client that did not fit in the socket yet.
    pending: Option<Vec<u8>>,
}

struct Child {
    id: u32,
    pidfd: OwnedFd,
    kill_on_drop: bool,
}

struct Agent {
    ctl: OwnedFd,
    /// Frames from the client.
    buf: Vec<u8>,
    /// Frames to the client on a relay: header, then the kernel datagram.
    nlbuf: Vec<u8>,
    out: Vec<u8>,
    relays: Vec<Relay>,
    children: HashMap<i32, Child>,
    /// The network namespace the agent returns to after a request made in
    /// another one (`OpenSocketIn`, `NewNetNs`, a `Spawn` with `in_netns`).
    home: Option<OwnedFd>,
    /// A user-namespace agent's name directory, watched for deletions.
    watch: Option<Watch>,
    /// Namespaces this agent holds, by name (their symlinks point at these
    /// fds through /proc/AGENT/fd/N).
    pins: HashMap<Vec<u8>, OwnedFd>,
    /// Outlives the client while it holds names (`UserHello` `detach`).
    detached: bool,
}

struct Watch {
    inotify: nix::sys::inotify::Inotify,
    dir: std::path::PathBuf,
}

/// Fds the agent holds for named namespaces start here, away from the fds a
/// short-lived request uses, so that a stale symlink to a reused pid is
/// unlikely to meet a namespace fd at that number.
const PIN_FD_MIN: i32 = 1000;

fn errno(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

impl Agent {
    fn reply(&mut self, id: u32, reply: &Reply, fds: &[BorrowedFd<'_>]) -> io::Result<()> {
        proto::encode_reply(id, reply, &mut self.out).map_err(io::Error::other)?;
        sys::send_frame(self.ctl.as_fd(), &self.out, fds, false).map(drop)
    }

    fn fail(&mut self, id: u32, step: Step, err: &io::Error, detail: &[u8]) -> io::Result<()> {
        let reply = Reply::Failed {
            step,
            errno: errno(err),
            detail: detail.to_vec(),
        };
        self.reply(id, &reply, &[])
    }

    /// Reports a bad frame (as `Failed` with id 0) and gives the exit code.
    fn protocol_error(&mut self, err: &proto::ProtoError) -> i32 {
        let detail = err.to_string();
        let _ = self.fail(
            0,
            Step::Protocol,
            &io::Error::from_raw_os_error(libc::EPROTO),
            detail.as_bytes(),
        );
        EXIT_PROTOCOL
    }

    /// Reads one control frame. `Ok(None)` is end of file.
    fn recv_request(&mut self) -> Result<Option<(u32, Request, Vec<OwnedFd>)>, i32> {
        let got = match sys::recv_frame(self.ctl.as_fd(), &mut self.buf, false) {
            Ok(got) => got,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return self.recv_request(),
            Err(_) => return Ok(None),
        };
        if got.len == 0 && got.fds.is_empty() {
            return Ok(None);
        }
        if got.bad_control {
            let e = proto::ProtoError::Invalid {
                what: "control message",
                why: "fds truncated or several control messages",
            };
            return Err(self.protocol_error(&e));
        }
        if got.truncated || got.len > MAX_FRAME {
            let e = proto::ProtoError::Oversized {
                what: "request frame",
                len: got.len,
                max: MAX_FRAME,
            };
            return Err(self.protocol_error(&e));
        }
        match proto::decode_request(&self.buf[..got.len], got.fds.len()) {
            Ok((id, req)) => Ok(Some((id, req, got.fds))),
            Err(e) => Err(self.protocol_error(&e)),
        }
    }

    fn handshake(&mut self) -> Result<(), i32> {
        let Some((id, req, fds)) = self.recv_request()? else {
            return Err(EXIT_OK);
        };
        if let Request::UserHello {
            create,
            dir,
            detach,
            ..
        } = req
        {
            self.detached = detach;
            return self.user_handshake(id, create, dir, fds);
        }
        let Request::Hello {
            user_ns, exec_name, ..
        } = req
        else {
            let e = proto::ProtoError::Unexpected {
                expected: "Hello",
                got: req.name(),
            };
            return Err(self.protocol_error(&e));
        };
        let mut fds = fds.into_iter();
        let netns = fds.next().expect("decode_request checked the fd count");
        if user_ns {
            let userns = fds.next().expect("decode_request checked the fd count");
            if let Err(e) = setns(&userns, CloneFlags::CLONE_NEWUSER) {
                let _ = self.fail(id, Step::SetnsUser, &e.into(), b"");
                return Err(EXIT_SETUP);
            }
        }
        if let Err(e) = setns(&netns, CloneFlags::CLONE_NEWNET) {
            let _ = self.fail(id, Step::SetnsNet, &e.into(), b"");
            return Err(EXIT_SETUP);
        }
        drop(netns);
        if let Some(name) = exec_name {
            // The client sends an `NsName`; anything else (a `/`, `..`) must
            // not reach outside /etc/netns.
            let valid = name.is_empty()
                || std::str::from_utf8(&name).is_ok_and(|s| nsfs::NsName::new(s).is_ok());
            if !valid {
                let e = proto::ProtoError::Invalid {
                    what: "exec name",
                    why: "not a valid namespace name",
                };
                return Err(self.protocol_error(&e));
            }
            if let Err((step, e, detail)) = exec_mounts(&name) {
                let _ = self.fail(id, step, &e, detail.as_bytes());
                return Err(EXIT_SETUP);
            }
        }
        let ready = Reply::Ready {
            version: proto::VERSION,
            pid: std::process::id(),
        };
        self.reply(id, &ready, &[]).map_err(|_| EXIT_OK)
    }

    /// The handshake of a user-namespace agent: make or join the user
    /// namespace, make an empty network namespace of it as home, watch the
    /// name directory.
    fn user_handshake(
        &mut self,
        id: u32,
        create: bool,
        dir: Option<Vec<u8>>,
        fds: Vec<OwnedFd>,
    ) -> Result<(), i32> {
        let fail = |agent: &mut Agent, step, e: io::Error, detail: &[u8]| {
            let _ = agent.fail(id, step, &e, detail);
            Err(EXIT_SETUP)
        };
        if create {
            // Read before the unshare: inside, our ids show as the overflow id.
            let (uid, gid) = (nix::unistd::geteuid(), nix::unistd::getegid());
            if let Err(e) = unshare(CloneFlags::CLONE_NEWUSER) {
                return fail(self, Step::UnshareUser, e.into(), b"");
            }
            let maps: [(&str, String); 3] = [
                ("/proc/self/setgroups", "deny".to_string()),
                ("/proc/self/uid_map", format!("0 {uid} 1")),
                ("/proc/self/gid_map", format!("0 {gid} 1")),
            ];
            for (file, content) in maps {
                if let Err(e) = std::fs::write(file, content) {
                    return fail(self, Step::UserMap, e, file.as_bytes());
                }
            }
        } else {
            let userns = fds
                .into_iter()
                .next()
                .expect("decode_request checked the fd count");
            if let Err(e) = setns(&userns, CloneFlags::CLONE_NEWUSER) {
                return fail(self, Step::SetnsUser, e.into(), b"");
            }
        }
        if let Err(e) = unshare(CloneFlags::CLONE_NEWNET) {
            return fail(self, Step::UnshareNet, e.into(), b"");
        }
        match open_own_netns() {
            Ok(home) => self.home = Some(home),
            Err(e) => return fail(self, Step::UnshareNet, e, b"/proc/thread-self/ns/net"),
        }
        if let Some(dir) = dir {
            use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
            let path = std::path::PathBuf::from(OsStr::from_bytes(&dir));
            let watched =
                Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK).and_then(|inotify| {
                    inotify.add_watch(
                        &path,
                        AddWatchFlags::IN_DELETE | AddWatchFlags::IN_MOVED_FROM,
                    )?;
                    Ok(inotify)
                });
            match watched {
                Ok(inotify) => self.watch = Some(Watch { inotify, dir: path }),
                Err(e) => return fail(self, Step::Watch, e.into(), &dir),
            }
        }
        if self.detached {
            // Outlive the client: no parent-death signal, and out of its
            // session (a terminal's hangup is not for us).
            sys::no_death_signal();
            let _ = nix::unistd::setsid();
        }
        let ready = Reply::Ready {
            version: proto::VERSION,
            pid: std::process::id(),
        };
        self.reply(id, &ready, &[]).map_err(|_| EXIT_OK)
    }

    /// After the control connection ended, a detached agent stays while it
    /// holds names: until the last is removed (or it is killed).
    fn linger(&mut self) -> i32 {
        let mut pfds: Vec<libc::pollfd> = Vec::new();
        loop {
            self.drain_watch();
            let children: Vec<i32> = self.children.keys().copied().collect();
            for pid in &children {
                self.reap(*pid);
            }
            let Some(watch) = &self.watch else {
                return EXIT_OK;
            };
            if self.pins.is_empty() {
                return EXIT_OK;
            }
            pfds.clear();
            pfds.push(pollfd(watch.inotify.as_fd(), libc::POLLIN));
            for child in self.children.values() {
                pfds.push(pollfd(child.pidfd.as_fd(), libc::POLLIN));
            }
            if sys::poll(&mut pfds, -1).is_err() {
                return EXIT_SETUP;
            }
        }
    }

    /// Lets go of the namespaces whose names were removed (the inotify
    /// events queued so far).
    fn drain_watch(&mut self) {
        let Some(watch) = &self.watch else {
            return;
        };
        while let Ok(events) = watch.inotify.read_events() {
            if events.is_empty() {
                break;
            }
            for ev in events {
                if let Some(name) = ev.name {
                    self.pins.remove(name.as_bytes());
                }
            }
        }
    }

    /// Remembers the current network namespace as home before a request
    /// goes elsewhere (a user-namespace agent has one from its handshake).
    fn ensure_home(&mut self) -> io::Result<()> {
        if self.home.is_none() {
            self.home = Some(open_own_netns()?);
        }
        Ok(())
    }

    /// Back to the home network namespace after a request made elsewhere.
    fn go_home(&self) -> io::Result<()> {
        match &self.home {
            Some(home) => setns(home, CloneFlags::CLONE_NEWNET).map_err(io::Error::from),
            None => Ok(()),
        }
    }

    /// `NewNetNs`: a new network namespace, held and named if asked.
    fn new_netns(&mut self, id: u32, name: Option<Vec<u8>>) -> io::Result<()> {
        self.drain_watch();
        if name.is_some() && self.watch.is_none() {
            let e = io::Error::from_raw_os_error(libc::EINVAL);
            return self.fail(id, Step::Name, &e, b"no name directory");
        }
        if let Err(e) = unshare(CloneFlags::CLONE_NEWNET) {
            return self.fail(id, Step::UnshareNet, &e.into(), b"");
        }
        let made = open_own_netns();
        if let Err(e) = self.go_home() {
            return self.fail(id, Step::SetnsHome, &e, b"");
        }
        let ns = match made {
            Ok(ns) => ns,
            Err(e) => return self.fail(id, Step::UnshareNet, &e, b"/proc/thread-self/ns/net"),
        };
        if let Some(name) = name
            && let Err(e) = self.pin(&name, &ns)
        {
            return self.fail(id, Step::Name, &e, &name);
        }
        self.reply(id, &Reply::Socket, &[ns.as_fd()])
    }

    /// `NameNetNs`: hold the namespace `ns` (checked to be a network
    /// namespace) and name it.
    fn name_netns(&mut self, id: u32, name: &[u8], ns: OwnedFd) -> io::Result<()> {
        self.drain_watch();
        if self.watch.is_none() {
            let e = io::Error::from_raw_os_error(libc::EINVAL);
            return self.fail(id, Step::Name, &e, b"no name directory");
        }
        let path = std::path::Path::new("fd");
        if let Err(e) = nsfs::check_namespace_type(ns.as_fd(), libc::CLONE_NEWNET, path) {
            let e = io::Error::from(e);
            return self.fail(id, Step::Name, &e, b"not a network namespace");
        }
        if let Err(e) = self.pin(name, &ns) {
            return self.fail(id, Step::Name, &e, name);
        }
        self.reply(id, &Reply::Socket, &[ns.as_fd()])
    }

    /// Holds `ns` under `name`: an fd of ours and a symlink to it.
    fn pin(&mut self, name: &[u8], ns: &OwnedFd) -> io::Result<()> {
        let dir = &self.watch.as_ref().expect("checked by the caller").dir;
        let held = sys::dup_min(ns.as_fd(), PIN_FD_MIN)?;
        let link = dir.join(OsStr::from_bytes(name));
        let target = format!("/proc/{}/fd/{}", std::process::id(), held.as_raw_fd());
        match std::os::unix::fs::symlink(&target, &link) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dangling(&link) => {
                // The name of a holder that is gone: replace it.
                std::fs::remove_file(&link)?;
                std::os::unix::fs::symlink(&target, &link)?;
            }
            Err(e) => return Err(e),
        }
        self.pins.insert(name.to_vec(), held);
        Ok(())
    }

    /// On the way out: remove the names of the namespaces we hold (only
    /// those still pointing at us).
    fn unname_all(&mut self) {
        let Some(watch) = &self.watch else {
            return;
        };
        for (name, fd) in self.pins.drain() {
            let link = watch.dir.join(OsStr::from_bytes(&name));
            let ours = format!("/proc/{}/fd/{}", std::process::id(), fd.as_raw_fd());
            if std::fs::read_link(&link).is_ok_and(|t| t.as_os_str().as_bytes() == ours.as_bytes())
            {
                let _ = std::fs::remove_file(&link);
            }
        }
    }

    /// `OpenSocketIn`: a socket made in the namespace `ns`.
    fn socket_in(
        &mut self,
        id: u32,
        ns: OwnedFd,
        domain: i32,
        ty: i32,
        protocol: i32,
    ) -> io::Result<()> {
        if let Err(e) = self.ensure_home() {
            return self.fail(id, Step::SetnsHome, &e, b"");
        }
        if let Err(e) = setns(&ns, CloneFlags::CLONE_NEWNET) {
            return self.fail(id, Step::SetnsNet, &e.into(), b"");
        }
        let made = sys::socket(domain, ty, protocol);
        if let Err(e) = self.go_home() {
            return self.fail(id, Step::SetnsHome, &e, b"");
        }
        match made {
            Ok(sock) => self.reply(id, &Reply::Socket, &[sock.as_fd()]),
            Err(e) => self.fail(id, Step::Socket, &e, b""),
        }
    }

    fn serve(&mut self) -> i32 {
        let mut pfds: Vec<libc::pollfd> = Vec::new();
        loop {
            pfds.clear();
            pfds.push(pollfd(self.ctl.as_fd(), libc::POLLIN));
            for r in &self.relays {
                pfds.push(pollfd(
                    r.data.as_fd(),
                    if r.pending.is_some() {
                        libc::POLLIN | libc::POLLOUT
                    } else {
                        libc::POLLIN
                    },
                ));
                pfds.push(pollfd(
                    r.nl.as_fd(),
                    if r.pending.is_some() { 0 } else { libc::POLLIN },
                ));
            }
            let child_pids: Vec<i32> = self.children.keys().copied().collect();
            for pid in &child_pids {
                pfds.push(pollfd(self.children[pid].pidfd.as_fd(), libc::POLLIN));
            }
            if let Some(watch) = &self.watch {
                pfds.push(pollfd(watch.inotify.as_fd(), libc::POLLIN));
            }
            if sys::poll(&mut pfds, -1).is_err() {
                return EXIT_SETUP;
            }
            if self.watch.is_some() && pfds[pfds.len() - 1].revents != 0 {
                self.drain_watch();
            }
            // Children first, so an exit is reported before a later EOF ends us.
            let base = 1 + 2 * self.relays.len();
            for (i, pid) in child_pids.iter().enumerate() {
                if pfds[base + i].revents != 0 {
                    self.reap(*pid);
                }
            }
            // Relays, back to front so that removal keeps indices valid.
            for i in (0..self.relays.len()).rev() {
                let data_ev = pfds[1 + 2 * i].revents;
                let nl_ev = pfds[2 + 2 * i].revents;
                if !self.service_relay(i, data_ev, nl_ev) {
                    self.relays.swap_remove(i);
                }
            }
            let ctl_ev = pfds[0].revents;
            if ctl_ev != 0 {
                match self.recv_request() {
                    Ok(Some((id, req, fds))) => {
                        if let Err(code) = self.handle(id, req, fds) {
                            return code;
                        }
                    }
                    Ok(None) if self.detached => return self.linger(),
                    Ok(None) => return EXIT_OK,
                    Err(code) => return code,
                }
            }
        }
    }

    fn handle(&mut self, id: u32, req: Request, fds: Vec<OwnedFd>) -> Result<(), i32> {
        let sent = match req {
            Request::Hello { .. } | Request::UserHello { .. } => {
                let e = proto::ProtoError::Unexpected {
                    expected: "a request after the handshake",
                    got: req.name(),
                };
                return Err(self.protocol_error(&e));
            }
            Request::NewNetNs { name } => self.new_netns(id, name),
            Request::NameNetNs { name } => {
                let ns = fds
                    .into_iter()
                    .next()
                    .expect("decode_request checked the fd count");
                self.name_netns(id, &name, ns)
            }
            Request::OpenSocketIn {
                domain,
                ty,
                protocol,
            } => {
                let ns = fds
                    .into_iter()
                    .next()
                    .expect("decode_request checked the fd count");
                self.socket_in(id, ns, domain, ty, protocol)
            }
            Request::OpenSocket {
                domain,
                ty,
                protocol,
            } => match sys::socket(domain, ty, protocol) {
                Ok(sock) => self.reply(id, &Reply::Socket, &[sock.as_fd()]),
                Err(e) => self.fail(id, Step::Socket, &e, b""),
            },
            Request::OpenRelay { protocol } => {
                let data = fds
                    .into_iter()
                    .next()
                    .expect("decode_request checked the fd count");
                match self.open_relay(protocol, data) {
                    Ok(nl) => self.reply(id, &Reply::Relay, &[nl.as_fd()]),
                    Err(e) => self.fail(id, Step::Netlink, &e, b""),
                }
            }
            Request::Spawn(spec) => self.spawn(id, spec, fds),
        };
        sent.map_err(|_| EXIT_OK)
    }

    /// Sets up a relay and returns a dup of its netlink socket for the client.
    fn open_relay(&mut self, protocol: i32, data: OwnedFd) -> io::Result<OwnedFd> {
        let nl = sys::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK,
            protocol,
        )?;
        sys::set_nonblocking(data.as_fd(), true)?;
        let dup = nl.try_clone()?;
        self.relays.push(Relay {
            data,
            nl,
            pending: None,
        });
        Ok(dup)
    }

    /// Moves what is ready on relay `i`. `false`: the relay is finished.
    fn service_relay(&mut self, i: usize, data_ev: i16, nl_ev: i16) -> bool {
        let Agent {
            relays, buf, nlbuf, ..
        } = self;
        let r = &mut relays[i];
        if data_ev & libc::POLLOUT != 0
            && let Some(frame) = r.pending.take()
        {
            match sys::send_frame(r.data.as_fd(), &frame, &[], true) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => r.pending = Some(frame),
                Err(_) => return false,
            }
        }
        let mut drain = nl_ev & (libc::POLLIN | libc::POLLERR) != 0;
        if data_ev & libc::POLLIN != 0 {
            // Client to kernel: one frame, one datagram.
            match sys::recv_frame(r.data.as_fd(), buf, true) {
                Ok(got) if got.len == 0 && got.fds.is_empty() => return false,
                Ok(got) if got.truncated || got.bad_control || got.len > MAX_FRAME => return false,
                Ok(got) => match proto::view_relay(&buf[..got.len], got.fds.len()) {
                    Ok(proto::RelayView::Datagram { port, groups, data }) => {
                        match sys::send_netlink(r.nl.as_fd(), data, port, groups) {
                            // The kernel answers most requests inside sendmsg:
                            // read the answer now rather than after another poll.
                            Ok(()) => drain = true,
                            Err(e) => {
                                // Tell the client: its request will get no answer.
                                let mut frame = Vec::new();
                                proto::encode_relay(
                                    &proto::RelayFrame::Errno(errno(&e)),
                                    &mut frame,
                                );
                                let _ = sys::send_frame(r.data.as_fd(), &frame, &[], true);
                            }
                        }
                    }
                    Ok(proto::RelayView::Errno(_)) | Err(_) => return false,
                },
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => return false,
            }
        } else if data_ev & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0 {
            return false;
        }
        if drain {
            // Kernel to client: a bounded batch, one datagram per frame, read
            // straight behind the frame header.
            for _ in 0..64 {
                if r.pending.is_some() {
                    break;
                }
                let len =
                    match sys::recv_netlink(r.nl.as_fd(), &mut nlbuf[proto::RELAY_HEADER_LEN..]) {
                        Ok((n, _, _)) if n > proto::MAX_DATAGRAM => {
                            // Never relay a truncated datagram: answer its
                            // request with EMSGSIZE instead (from the kernel's
                            // port), so that request fails and the
                            // connection goes on.
                            let mut answer = Vec::with_capacity(64);
                            crate::netlink::truncated_answer(
                                &nlbuf[proto::RELAY_HEADER_LEN..],
                                &mut answer,
                            );
                            let mut header = Vec::with_capacity(proto::RELAY_HEADER_LEN);
                            proto::encode_relay_header(0, 0, &mut header);
                            nlbuf[..proto::RELAY_HEADER_LEN].copy_from_slice(&header);
                            let end = proto::RELAY_HEADER_LEN + answer.len();
                            nlbuf[proto::RELAY_HEADER_LEN..end].copy_from_slice(&answer);
                            end
                        }
                        Ok((n, port, groups)) => {
                            let mut header = Vec::with_capacity(proto::RELAY_HEADER_LEN);
                            proto::encode_relay_header(port, groups, &mut header);
                            nlbuf[..proto::RELAY_HEADER_LEN].copy_from_slice(&header);
                            proto::RELAY_HEADER_LEN + n
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => encode_errno(nlbuf, errno(&e)),
                    };
                let frame = &nlbuf[..len];
                match sys::send_frame(r.data.as_fd(), frame, &[], true) {
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        r.pending = Some(frame.to_vec())
                    }
                    Err(_) => return false,
                }
            }
        }
        true
    }

    fn spawn(&mut self, id: u32, spec: SpawnSpec, fds: Vec<OwnedFd>) -> io::Result<()> {
        let program = OsStr::from_bytes(&spec.program);
        let mut cmd = Command::new(program);
        if let Some(arg0) = &spec.arg0 {
            cmd.arg0(OsStr::from_bytes(arg0));
        }
        cmd.args(spec.args.iter().map(|a| OsStr::from_bytes(a)));
        cmd.env_clear();
        for entry in &spec.env {
            // `KEY=VALUE`; a leading `=` belongs to the key (as in execve).
            let split = entry.iter().skip(1).position(|b| *b == b'=').map(|p| p + 1);
            match split {
                Some(p) => cmd.env(
                    OsStr::from_bytes(&entry[..p]),
                    OsStr::from_bytes(&entry[p + 1..]),
                ),
                None => cmd.env(OsStr::from_bytes(entry), ""),
            };
        }
        if let Some(cwd) = &spec.cwd {
            cmd.current_dir(Path::new(OsStr::from_bytes(cwd)));
        }
        if let Some(pg) = spec.pgroup {
            cmd.process_group(pg);
        }
        if spec.kill_on_drop {
            // Dies with us even when we are SIGKILLed (with the application,
            // through our own PDEATHSIG) and `shutdown` never runs.
            sys::die_with_parent(&mut cmd);
        }
        let mut fds = fds;
        let netns = if spec.in_netns { fds.pop() } else { None };
        let mut given = fds.into_iter();
        let mut stdio = spec.stdio.iter().map(|s| match s {
            StdioSpec::Null => Stdio::null(),
            StdioSpec::Pipe => Stdio::piped(),
            StdioSpec::Fd => {
                Stdio::from(given.next().expect("decode_request checked the fd count"))
            }
        });
        cmd.stdin(stdio.next().expect("three stdio specs"));
        cmd.stdout(stdio.next().expect("three stdio specs"));
        cmd.stderr(stdio.next().expect("three stdio specs"));
        if netns.is_some()
            && let Err(e) = self.ensure_home()
        {
            return self.fail(id, Step::SetnsHome, &e, &spec.program);
        }
        if let Some(ns) = &netns
            && let Err(e) = setns(ns, CloneFlags::CLONE_NEWNET)
        {
            return self.fail(id, Step::SetnsNet, &e.into(), &spec.program);
        }
        let spawned = cmd.spawn();
        if netns.is_some()
            && let Err(e) = self.go_home()
        {
            if let Ok(mut child) = spawned {
                let _ = child.kill();
                let _ = child.wait();
            }
            return self.fail(id, Step::SetnsHome, &e, &spec.program);
        }
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) => return self.fail(id, Step::Exec, &e, &spec.program),
        };
        drop(cmd);
        let pid = child.id() as i32;
        let pidfd = match sys::pidfd_open(pid) {
            Ok(fd) => fd,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return self.fail(id, Step::Pidfd, &e, &spec.program);
            }
        };
        let pipes: [Option<OwnedFd>; 3] = [
            child.stdin.take().map(OwnedFd::from),
            child.stdout.take().map(OwnedFd::from),
            child.stderr.take().map(OwnedFd::from),
        ];
        let mut send: Vec<BorrowedFd<'_>> = vec![pidfd.as_fd()];
        send.extend(pipes.iter().flatten().map(|fd| fd.as_fd()));
        let reply = Reply::Spawned {
            pid,
            stdio: [pipes[0].is_some(), pipes[1].is_some(), pipes[2].is_some()],
        };
        proto::encode_reply(id, &reply, &mut self.out).map_err(io::Error::other)?;
        let sent = sys::send_frame(self.ctl.as_fd(), &self.out, &send, false);
        drop(send);
        self.children.insert(
            pid,
            Child {
                id,
                pidfd,
                kill_on_drop: spec.kill_on_drop,
            },
        );
        sent.map(drop)
    }

    fn reap(&mut self, pid: i32) {
        match sys::waitpid_nohang(pid) {
            Ok(None) => {}
            Ok(Some(status)) => {
                if let Some(child) = self.children.remove(&pid) {
                    let _ = self.reply(child.id, &Reply::Exited { pid, status }, &[]);
                }
            }
            Err(_) => {
                self.children.remove(&pid);
            }
        }
    }

    /// On the way out: kill the children asked to die with us and reap them;
    /// the others keep running and are adopted by init (or a subreaper) when
    /// we exit, so none stays a zombie of ours.
    fn shutdown(&mut self) {
        for (pid, child) in self.children.drain() {
            if child.kill_on_drop
                && sys::pidfd_send_signal(child.pidfd.as_fd(), libc::SIGKILL).is_ok()
            {
                let _ = sys::waitpid_blocking(pid);
            }
        }
        self.relays.clear();
        self.unname_all();
    }
}

/// The calling thread's network namespace, opened (close-on-exec).
fn open_own_netns() -> io::Result<OwnedFd> {
    std::fs::File::open("/proc/thread-self/ns/net").map(OwnedFd::from)
}

/// Whether `link` is a symlink whose target is gone (its holder exited).
fn dangling(link: &Path) -> bool {
    std::fs::symlink_metadata(link).is_ok_and(|md| md.file_type().is_symlink())
        && std::fs::metadata(link).is_err_and(|e| e.kind() == io::ErrorKind::NotFound)
}

/// Writes an errno relay frame at the start of `buf`; its length.
fn encode_errno(buf: &mut [u8], errno: i32) -> usize {
    let mut frame = Vec::with_capacity(16);
    proto::encode_relay(&proto::RelayFrame::Errno(errno), &mut frame);
    buf[..frame.len()].copy_from_slice(&frame);
    frame.len()
}

fn pollfd(fd: BorrowedFd<'_>, events: i16) -> libc::pollfd {
    libc::pollfd {
        fd: fd.as_raw_fd(),
        events,
        revents: 0,
    }
}

/// `ip netns exec`'s mount setup (iproute2 `netns_switch` and `bind_etc`):
/// a private mount namespace with / a recursive slave, a sysfs of this
/// network namespace on /sys, and each file of /etc/netns/NAME bound over
/// /etc/FILE (none for an empty name: a namespace without a name).
fn exec_mounts(name: &[u8]) -> Result<(), (Step, io::Error, String)> {
    let name_os = OsStr::from_bytes(name);
    let source = if name.is_empty() {
        OsStr::new("sysfs")
    } else {
        name_os
    };
    let fail = |step, e: nix::Error, detail: &str| (step, io::Error::from(e), detail.to_string());
    unshare(CloneFlags::CLONE_NEWNS).map_err(|e| fail(Step::UnshareMount, e, ""))?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_SLAVE | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(|e| fail(Step::MountSlave, e, "/"))?;
    // As iproute2: a read-only /sys gets a read-only sysfs; if /sys cannot
    // be unmounted (nothing there, or a mount locked by a user namespace),
    // the new sysfs is mounted over it.
    let mut flags = MsFlags::empty();
    if statvfs("/sys").is_ok_and(|st| st.flags().contains(FsFlags::ST_RDONLY)) {
        flags |= MsFlags::MS_RDONLY;
    }
    let _ = umount2("/sys", MntFlags::MNT_DETACH);
    mount(Some(source), "/sys", Some("sysfs"), flags, None::<&str>)
        .map_err(|e| fail(Step::MountSys, e, "/sys"))?;
    if name.is_empty() {
        return Ok(());
    }
    let dir = Path::new("/etc/netns").join(name_os);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let src = entry.path();
        let dst = Path::new("/etc").join(entry.file_name());
        // Like iproute2, a file that cannot be bound is skipped, not fatal.
        let _ = mount(
            Some(&src),
            &dst,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        );
    }
    Ok(())
}
