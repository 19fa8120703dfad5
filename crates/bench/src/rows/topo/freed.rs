//! When has the kernel really freed a set of namespaces?
//!
//! Removing a namespace's name only drops a reference: the kernel tears the
//! namespace down later, in `cleanup_net` on its ordered `netns` workqueue,
//! which takes every namespace queued since its last run in one batch:
//! unhash it (`net_rwsem`), run every pernet exit method (devices
//! unregistered under `rtnl_mutex`), `rcu_barrier`, drop the last
//! reference. A harness that builds again right away pays for that backlog,
//! so the rows time a removal until it is over.
//!
//! The machine-wide `net_namespace` slab count (`/proc/slabinfo`) cannot
//! tell: since Linux 6.13 the last 4 KiB shell of a `struct net` is freed
//! only by the *next* `cleanup_net` run (after one more `rcu_barrier`), so
//! the count stays above its baseline until some other namespace dies; and
//! it counts every program's namespaces, so anything else running moves it.
//!
//! Instead a watcher namespace W of our own gives every namespace to be
//! removed an nsid (`RTM_NEWNSID` with the namespace's fd, which holds no
//! reference) and listens to W's `RTNLGRP_NSID`: `cleanup_net` announces
//! `RTM_DELNSID` for each namespace it unhashes, at the start of the batch
//! that tears it down. Once every namespace has been announced, the batch
//! holding the last of them has started; the watcher then drops a probe
//! namespace (also with an nsid in W), whose announcement can only come
//! from the next run of the ordered workqueue, after that batch has
//! finished. That moment is when the namespaces are freed; only other
//! programs' namespaces are not involved.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use netlink_sys::Socket;
use nix::sched::CloneFlags;
use nix::sys::socket::sockopt;
use nix::sys::time::TimeVal;

use super::raw::{Requests, socket};
use crate::harness::{BResult, err};
use crate::scratch::Scratch;

const RTM_DELNSID: u16 = 89;
const RTNLGRP_NSID: u32 = 28;
const NETNSA_NSID: u16 = 1;
const ENOBUFS: i32 = 105;
/// Requests per `sendmsg` when giving nsids (their acks must fit the
/// receive buffer).
const CHUNK: usize = 64;
/// The bounded wait for the kernel to free the namespaces.
const LIMIT: Duration = Duration::from_secs(120);

/// The watcher namespace and its socket (see the module docs).
#[derive(Debug)]
pub(crate) struct Watcher {
    ns: Scratch,
    socket: Socket,
    seq: u32,
}

impl Watcher {
    /// Makes the watcher namespace and its socket.
    pub(crate) async fn new() -> BResult<Watcher> {
        let ns = Scratch::new("w").await?;
        let socket = ns
            .ns
            .run(|| -> BResult<Socket> {
                let s = socket()?;
                nix::sys::socket::setsockopt(&s, sockopt::RcvBufForce, &(4 << 20))?;
                nix::sys::socket::setsockopt(
                    &s,
                    sockopt::ReceiveTimeout,
                    &TimeVal::new(0, 100_000),
                )?;
                Ok(s)
            })
            .await??;
        Ok(Watcher { ns, socket, seq: 1 })
    }

    /// Removes the watcher namespace.
    pub(crate) async fn remove(self) -> BResult<()> {
        drop(self.socket);
        self.ns.remove().await
    }

    /// Gives each of `names` that exists an nsid (0, 1, ...) in W and starts
    /// listening; returns how many there were. Blocking.
    pub(crate) fn track(&mut self, names: &[String]) -> BResult<usize> {
        let dir = nsfs::RunDir::default();
        let mut fds: Vec<OwnedFd> = Vec::with_capacity(names.len());
        for name in names {
            match File::open(dir.path().join(name)) {
                Ok(f) => fds.push(f.into()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(err(format!("{name}: {e}"))),
            }
        }
        let mut req = Requests::default();
        for (c, chunk) in fds.chunks(CHUNK).enumerate() {
            req.clear();
            for (k, fd) in chunk.iter().enumerate() {
                req.nsid(self.next_seq(), (c * CHUNK + k) as i32, fd.as_raw_fd());
            }
            req.send(&self.socket, &self.ns.name)?;
        }
        self.socket.add_membership(RTNLGRP_NSID)?;
        Ok(fds.len())
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    /// Waits (bounded) until the `count` namespaces given nsids by
    /// [`Watcher::track`] are freed (see the module docs); returns how long
    /// after `since` that was. Blocking.
    pub(crate) fn wait(&mut self, count: usize, since: Instant) -> BResult<Duration> {
        let res = self.wait_inner(count, since);
        let _ = self.socket.drop_membership(RTNLGRP_NSID);
        // Drain whatever is left (nothing should be).
        let _ = self.socket.set_non_blocking(true);
        let mut buf = [0u8; 8192];
        while self.socket.recv(&mut &mut buf[..], 0).is_ok() {}
        let _ = self.socket.set_non_blocking(false);
        res
    }

    fn wait_inner(&mut self, count: usize, since: Instant) -> BResult<Duration> {
        let probe = count as i32;
        let mut seen = vec![false; count];
        let mut left = count;
        let mut probe_sent = false;
        let mut buf = vec![0u8; 64 << 10];
        loop {
            if left == 0 && !probe_sent {
                self.drop_probe(probe)?;
                probe_sent = true;
            }
            let n = match self.socket.recv(&mut &mut buf[..], 0) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => 0,
                Err(e) if e.raw_os_error() == Some(ENOBUFS) => {
                    return Err(err("the nsid watcher's socket overflowed"));
                }
                Err(e) => return Err(e.into()),
            };
            for id in deleted_nsids(&buf[..n]) {
                if probe_sent && id == probe {
                    return Ok(since.elapsed());
                }
                if let Some(s) = usize::try_from(id).ok().and_then(|i| seen.get_mut(i))
                    && !*s
                {
                    *s = true;
                    left -= 1;
                }
            }
            if since.elapsed() > LIMIT {
                return Err(err(format!(
                    "the kernel did not free the namespaces within {} s ({left} of {count} not yet unhashed)",
                    LIMIT.as_secs()
                )));
            }
        }
    }

    /// Makes a namespace (on a thread of its own, which exits), gives it the
    /// nsid `id` in W and lets it go.
    fn drop_probe(&mut self, id: i32) -> BResult<()> {
        let fd = std::thread::spawn(|| -> BResult<OwnedFd> {
            nix::sched::unshare(CloneFlags::CLONE_NEWNET)?;
            Ok(File::open("/proc/thread-self/ns/net")?.into())
        })
        .join()
        .map_err(|_| err("probe thread panicked"))??;
        let mut req = Requests::default();
        req.nsid(self.next_seq(), id, fd.as_fd().as_raw_fd());
        req.send(&self.socket, &self.ns.name)?;
        drop(fd);
        Ok(())
    }
}

/// The nsids announced deleted in a datagram (`RTM_DELNSID` messages'
/// `NETNSA_NSID`); anything else is skipped.
fn deleted_nsids(d: &[u8]) -> Vec<i32> {
    let mut out = Vec::new();
    let mut off = 0;
    while off + 16 <= d.len() {
        let len = u32::from_ne_bytes([d[off], d[off + 1], d[off + 2], d[off + 3]]) as usize;
        if len < 16 || off + len > d.len() {
            break;
        }
        let ty = u16::from_ne_bytes([d[off + 4], d[off + 5]]);
        if ty == RTM_DELNSID {
            // struct rtgenmsg (padded to 4), then the attributes.
            let mut a = off + 20;
            while a + 4 <= off + len {
                let alen = u16::from_ne_bytes([d[a], d[a + 1]]) as usize;
                let aty = u16::from_ne_bytes([d[a + 2], d[a + 3]]);
                if alen < 4 || a + alen > off + len {
                    break;
                }
                if aty == NETNSA_NSID && alen >= 8 {
                    out.push(i32::from_ne_bytes([d[a + 4], d[a + 5], d[a + 6], d[a + 7]]));
                }
                a += (alen + 3) & !3;
            }
        }
        off += (len + 3) & !3;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_nsid_of_delnsid_messages_only() {
        let msg = |ty: u16, id: i32| {
            let mut m = Vec::new();
            m.extend_from_slice(&28u32.to_ne_bytes());
            m.extend_from_slice(&ty.to_ne_bytes());
            m.extend_from_slice(&[0; 10]);
            m.extend_from_slice(&[0; 4]);
            m.extend_from_slice(&8u16.to_ne_bytes());
            m.extend_from_slice(&NETNSA_NSID.to_ne_bytes());
            m.extend_from_slice(&id.to_ne_bytes());
            m
        };
        let mut d = msg(RTM_DELNSID, 7);
        d.extend(msg(88, 9));
        d.extend(msg(RTM_DELNSID, 1000));
        assert_eq!(deleted_nsids(&d), [7, 1000]);
        assert!(deleted_nsids(&d[..20]).is_empty());
    }
}
