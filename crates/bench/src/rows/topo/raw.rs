//! The kernel floor of the topology rows: the same rtnetlink requests as the
//! other sides, encoded by hand and sent over plain netlink sockets from
//! threads of our own, with no parsing beyond reading each ack's error code.
//!
//! Each thread creates its share of the namespaces with `unshare` (and binds
//! each to its name, as `ip netns add` does), makes one netlink socket inside
//! each, and then, phase by phase, sends each node's requests in one
//! `sendmsg` and reads their acks. The kernel handles a netlink request
//! inside the sender's `sendmsg`, so the acks are queued when it returns and
//! a socket never has more than one node's requests in flight: concurrency
//! comes from the threads alone. Every veth is created by its first node with
//! the peer born in the second one (`VETH_INFO_PEER` carrying
//! `IFLA_NET_NS_FD`), and both ends get a chosen ifindex, so no request has
//! to look anything up.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Barrier, Mutex, OnceLock};
use std::time::{Duration, Instant};

use netlink_sys::{Socket, protocols::NETLINK_ROUTE};
use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;

use super::{Link, Topo};
use crate::harness::{BResult, BoxError, err};

const RTM_NEWLINK: u16 = 16;
const RTM_NEWADDR: u16 = 20;
const RTM_NEWROUTE: u16 = 24;
const RTM_NEWNSID: u16 = 88;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const IFLA_IFNAME: u16 = 3;
const IFLA_LINKINFO: u16 = 18;
const IFLA_NET_NS_FD: u16 = 28;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const VETH_INFO_PEER: u16 = 1;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const RTA_DST: u16 = 1;
const RTA_GATEWAY: u16 = 5;
const NETNSA_NSID: u16 = 1;
const NETNSA_FD: u16 = 3;
const IFF_UP: u32 = 1;
const AF_INET: u8 = 2;
const RT_TABLE_MAIN: u8 = 254;
const RTPROT_BOOT: u8 = 3;
const RTN_UNICAST: u8 = 1;
const CREATE: u16 = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;

/// Netlink requests, encoded into one buffer (sans-IO: no fds, no sockets).
#[derive(Debug, Default)]
pub(crate) struct Requests {
    buf: Vec<u8>,
    /// What each request was (kind, ifindex), for errors.
    what: Vec<(&'static str, u32)>,
}

impl Requests {
    pub(crate) fn clear(&mut self) {
        self.buf.clear();
        self.what.clear();
    }

    fn begin(&mut self, ty: u16, flags: u16, seq: u32, what: (&'static str, u32)) -> usize {
        let start = self.buf.len();
        self.buf.extend_from_slice(&0u32.to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(&flags.to_ne_bytes());
        self.buf.extend_from_slice(&seq.to_ne_bytes());
        self.buf.extend_from_slice(&0u32.to_ne_bytes());
        self.what.push(what);
        start
    }

    fn end(&mut self, start: usize) {
        let len = (self.buf.len() - start) as u32;
        self.buf[start..start + 4].copy_from_slice(&len.to_ne_bytes());
    }

    fn pad(&mut self) {
        self.buf.resize(self.buf.len().next_multiple_of(4), 0);
    }

    fn attr(&mut self, ty: u16, data: &[u8]) {
        self.buf
            .extend_from_slice(&((4 + data.len()) as u16).to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(data);
        self.pad();
    }

    fn name(&mut self, ty: u16, name: &str) {
        let mut s = Vec::with_capacity(name.len() + 1);
        s.extend_from_slice(name.as_bytes());
        s.push(0);
        self.attr(ty, &s);
    }

    fn nest(&mut self, ty: u16) -> usize {
        let start = self.buf.len();
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        start
    }

    fn unnest(&mut self, start: usize) {
        let len = (self.buf.len() - start) as u16;
        self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
    }

    /// struct ifinfomsg.
    fn ifinfo(&mut self, index: u32, flags: u32, change: u32) {
        self.buf.extend_from_slice(&[0, 0, 0, 0]);
        self.buf.extend_from_slice(&index.to_ne_bytes());
        self.buf.extend_from_slice(&flags.to_ne_bytes());
        self.buf.extend_from_slice(&change.to_ne_bytes());
    }

    /// `ip link add NAME index I type veth peer name PEER index J netns FD`.
    pub(crate) fn veth(&mut self, seq: u32, l: &Link, peer_netns: i32) {
        let m = self.begin(RTM_NEWLINK, CREATE, seq, ("add veth", l.a_index));
        self.ifinfo(l.a_index, 0, 0);
        self.name(IFLA_IFNAME, l.a_if);
        let info = self.nest(IFLA_LINKINFO);
        self.name(IFLA_INFO_KIND, "veth");
        let data = self.nest(IFLA_INFO_DATA);
        let peer = self.nest(VETH_INFO_PEER);
        self.ifinfo(l.b_index, 0, 0);
        self.name(IFLA_IFNAME, l.b_if);
        self.attr(IFLA_NET_NS_FD, &(peer_netns as u32).to_ne_bytes());
        self.unnest(peer);
        self.unnest(data);
        self.unnest(info);
        self.end(m);
    }

    /// `ip link set INDEX up`.
    pub(crate) fn up(&mut self, seq: u32, index: u32) {
        let m = self.begin(
            RTM_NEWLINK,
            NLM_F_REQUEST | NLM_F_ACK,
            seq,
            ("set up", index),
        );
        self.ifinfo(index, IFF_UP, IFF_UP);
        self.end(m);
    }

    /// `ip addr add ADDR/LEN dev INDEX`.
    pub(crate) fn addr(&mut self, seq: u32, index: u32, addr: [u8; 4], len: u8) {
        let m = self.begin(RTM_NEWADDR, CREATE, seq, ("add address", index));
        self.buf.extend_from_slice(&[AF_INET, len, 0, 0]);
        self.buf.extend_from_slice(&index.to_ne_bytes());
        self.attr(IFA_LOCAL, &addr);
        self.attr(IFA_ADDRESS, &addr);
        self.end(m);
    }

    /// `ip route add DST/LEN via GW`.
    pub(crate) fn route(&mut self, seq: u32, dst: [u8; 4], len: u8, gw: [u8; 4]) {
        let m = self.begin(RTM_NEWROUTE, CREATE, seq, ("add route", 0));
        self.buf.extend_from_slice(&[
            AF_INET,
            len,
            0,
            0,
            RT_TABLE_MAIN,
            RTPROT_BOOT,
            0,
            RTN_UNICAST,
        ]);
        self.buf.extend_from_slice(&0u32.to_ne_bytes());
        self.attr(RTA_DST, &dst);
        self.attr(RTA_GATEWAY, &gw);
        self.end(m);
    }

    /// `ip netns set NAME ID`: gives the namespace `fd` the nsid `id` in
    /// the socket's namespace.
    pub(crate) fn nsid(&mut self, seq: u32, id: i32, fd: i32) {
        let m = self.begin(
            RTM_NEWNSID,
            NLM_F_REQUEST | NLM_F_ACK,
            seq,
            ("set nsid", id as u32),
        );
        // struct rtgenmsg, padded.
        self.buf.extend_from_slice(&[0; 4]);
        self.attr(NETNSA_NSID, &id.to_ne_bytes());
        self.attr(NETNSA_FD, &(fd as u32).to_ne_bytes());
        self.end(m);
    }

    /// Sends every request in one `sendmsg` and reads one ack per request
    /// (skipping notifications); the first refusal is the error (naming the
    /// request and `ns`).
    pub(crate) fn send(&self, socket: &Socket, ns: &str) -> BResult<()> {
        socket.send(&self.buf, 0)?;
        let mut rb = [0u8; 8192];
        let mut acked = 0;
        while acked < self.what.len() {
            let n = socket.recv(&mut &mut rb[..], 0)?;
            let mut off = 0;
            while off + 20 <= n {
                let len = u32::from_ne_bytes(rb[off..off + 4].try_into()?) as usize;
                let ty = u16::from_ne_bytes(rb[off + 4..off + 6].try_into()?);
                if len < 16 {
                    return Err(err(format!(
                        "raw netlink: bad message length {len} in {ns}"
                    )));
                }
                if ty != NLMSG_ERROR {
                    // A notification of a group the socket listens to.
                    off += (len + 3) & !3;
                    continue;
                }
                let code = i32::from_ne_bytes(rb[off + 16..off + 20].try_into()?);
                if code != 0 {
                    let (kind, index) = self.what.get(acked).copied().unwrap_or(("?", 0));
                    return Err(err(format!(
                        "raw netlink: {kind} (ifindex {index}) in {ns}: {}",
                        std::io::Error::from_raw_os_error(-code)
                    )));
                }
                acked += 1;
                off += (len + 3) & !3;
            }
        }
        Ok(())
    }
}

/// A netlink socket made inside the calling thread's namespace.
pub(crate) fn socket() -> BResult<Socket> {
    let mut s = Socket::new(NETLINK_ROUTE)?;
    s.bind_auto()?;
    Ok(s)
}

/// How long each phase of a raw build took.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Phases {
    /// Namespaces created and named, one socket in each.
    pub(crate) create: Duration,
    /// Every veth pair created.
    pub(crate) veths: Duration,
    /// Addresses, links up (`lo` too) and routes.
    pub(crate) config: Duration,
}

impl Phases {
    pub(crate) fn total(&self) -> Duration {
        self.create + self.veths + self.config
    }
}

/// One node's namespace and socket, made by one thread and used by another.
struct Node {
    netns: OwnedFd,
    socket: Socket,
}

fn thread_netns() -> std::io::Result<OwnedFd> {
    Ok(File::open("/proc/thread-self/ns/net")?.into())
}

/// Creates a namespace on this thread and binds it to `path` (like
/// `ip netns add`); the thread is left inside it.
fn create_named(path: &Path) -> BResult<OwnedFd> {
    nix::sched::unshare(CloneFlags::CLONE_NEWNET)?;
    std::fs::OpenOptions::new()
        .read(true)
        .create_new(true)
        .write(true)
        .mode(0o0)
        .open(path)
        .map_err(|e| err(format!("{}: {e}", path.display())))?;
    nix::mount::mount(
        Some("/proc/thread-self/ns/net"),
        path,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|e| err(format!("bind {}: {e}", path.display())))?;
    Ok(thread_netns()?)
}

/// Builds `topo` with raw netlink from `threads` threads of our own
/// (blocking: call it on a blocking thread). On error, what was made is left
/// for the caller's teardown (every name is registered).
pub(crate) fn build(topo: &Topo, threads: usize) -> BResult<Phases> {
    let n = topo.names.len();
    let threads = threads.clamp(1, n);
    let nodes: Vec<OnceLock<Node>> = (0..n).map(|_| OnceLock::new()).collect();
    let barrier = Barrier::new(threads + 1);
    let failure: Mutex<Option<BoxError>> = Mutex::new(None);
    let failed = || failure.lock().map(|f| f.is_some()).unwrap_or(true);
    let fail = |e: BoxError| {
        if let Ok(mut f) = failure.lock() {
            f.get_or_insert(e);
        }
    };
    let seq = AtomicU32::new(1);
    let dir = nsfs::RunDir::default();
    let mut phases = Phases::default();
    std::thread::scope(|s| {
        for t in 0..threads {
            let (nodes, barrier, dir, seq) = (&nodes, &barrier, &dir, &seq);
            let (failed, fail) = (&failed, &fail);
            s.spawn(move || {
                let mine = (t..n).step_by(threads);
                // Phase 1: namespaces, named, with a socket inside each.
                let res = (|| -> BResult<()> {
                    let home = thread_netns()?;
                    let made = mine.clone().try_for_each(|i| -> BResult<()> {
                        let netns = create_named(&dir.path().join(&topo.names[i]))?;
                        let socket = socket()?;
                        let _ = nodes[i].set(Node { netns, socket });
                        Ok(())
                    });
                    nix::sched::setns(home.as_fd(), CloneFlags::CLONE_NEWNET)?;
                    made
                })();
                if let Err(e) = res {
                    fail(e);
                }
                barrier.wait();
                // Phase 2: the veths, each sent by its first node.
                let mut req = Requests::default();
                if !failed() {
                    let res = mine.clone().try_for_each(|i| -> BResult<()> {
                        let node = nodes[i].get().ok_or_else(|| err("node not made"))?;
                        req.clear();
                        for l in topo.links_from(i) {
                            let peer = nodes[l.b].get().ok_or_else(|| err("node not made"))?;
                            let next = seq.fetch_add(1, Ordering::Relaxed);
                            req.veth(next, l, peer.netns.as_raw_fd());
                        }
                        req.send(&node.socket, &topo.names[i])
                    });
                    if let Err(e) = res {
                        fail(e);
                    }
                }
                barrier.wait();
                // Phase 3: addresses, links up, the route.
                if !failed() {
                    let res = mine.clone().try_for_each(|i| -> BResult<()> {
                        let node = nodes[i].get().ok_or_else(|| err("node not made"))?;
                        req.clear();
                        let ends = topo.ends(i);
                        for e in &ends {
                            let next = seq.fetch_add(1, Ordering::Relaxed);
                            req.addr(next, e.index, e.addr.octets(), super::LINK_PREFIX);
                        }
                        for e in &ends {
                            req.up(seq.fetch_add(1, Ordering::Relaxed), e.index);
                        }
                        req.up(seq.fetch_add(1, Ordering::Relaxed), super::LO_INDEX);
                        let (dst, len) = super::ROUTE;
                        let next = seq.fetch_add(1, Ordering::Relaxed);
                        req.route(next, dst.octets(), len, topo.gateway(i).octets());
                        req.send(&node.socket, &topo.names[i])
                    });
                    if let Err(e) = res {
                        fail(e);
                    }
                }
                barrier.wait();
            });
        }
        let start = Instant::now();
        barrier.wait();
        phases.create = start.elapsed();
        barrier.wait();
        phases.veths = start.elapsed() - phases.create;
        barrier.wait();
        phases.config = start.elapsed() - phases.create - phases.veths;
    });
    drop(nodes);
    match failure.into_inner().ok().flatten() {
        Some(e) => Err(e),
        None => Ok(phases),
    }
}

/// Removes the names of `names` from `threads` threads of our own: unmount
/// (detached) and unlink, like `ip netns del`. Missing names are skipped
/// (a failed build may have made only some). Blocking.
pub(crate) fn remove_names(names: &[String], threads: usize) -> BResult<()> {
    let dir = nsfs::RunDir::default();
    let threads = threads.clamp(1, names.len().max(1));
    let errors: Mutex<Vec<String>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for t in 0..threads {
            let (dir, errors) = (&dir, &errors);
            s.spawn(move || {
                for name in names.iter().skip(t).step_by(threads) {
                    let path = dir.path().join(name);
                    let res = match nix::mount::umount2(&path, MntFlags::MNT_DETACH) {
                        Ok(()) | Err(nix::errno::Errno::EINVAL) => nix::unistd::unlink(&path),
                        Err(e) => Err(e),
                    };
                    match res {
                        Ok(()) | Err(nix::errno::Errno::ENOENT) => {}
                        Err(e) => {
                            if let Ok(mut v) = errors.lock() {
                                v.push(format!("{name}: {e}"));
                            }
                        }
                    }
                }
            });
        }
    });
    let errors = errors.into_inner().unwrap_or_default();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(err(format!("removing names: {}", errors.join("; "))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_aligned_and_sized() {
        let mut r = Requests::default();
        r.up(1, 10);
        assert_eq!(r.buf.len(), 32);
        assert_eq!(u32::from_ne_bytes(r.buf[0..4].try_into().unwrap()), 32);
        r.addr(2, 10, [10, 0, 0, 1], 31);
        r.route(3, [172, 16, 0, 0], 12, [10, 0, 0, 0]);
        let l = Link {
            a: 0,
            b: 1,
            a_if: "e0",
            b_if: "e1",
            a_index: 10,
            b_index: 11,
            a_addr: [10, 0, 0, 0].into(),
            b_addr: [10, 0, 0, 1].into(),
        };
        r.veth(4, &l, 7);
        // Walk the messages by their headers: lengths add up, all aligned.
        let mut off = 0;
        let mut seqs = Vec::new();
        while off < r.buf.len() {
            let len = u32::from_ne_bytes(r.buf[off..off + 4].try_into().unwrap()) as usize;
            assert_eq!(len % 4, 0, "message at {off} not padded");
            seqs.push(u32::from_ne_bytes(
                r.buf[off + 8..off + 12].try_into().unwrap(),
            ));
            off += len;
        }
        assert_eq!(off, r.buf.len());
        assert_eq!(seqs, [1, 2, 3, 4]);
        assert_eq!(r.what.len(), 4);
    }
}
