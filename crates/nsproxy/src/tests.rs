//! Bad frames sent to a live agent, through the raw control socket (which the
//! public API never exposes): a typed protocol error, the connection closed,
//! the agent exiting normally (not crashed).

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use nix::sys::socket::{AddressFamily, SockFlag, SockType, setsockopt, socketpair, sockopt};

use crate::agent::{EXIT_OK, EXIT_PROTOCOL};
use crate::proto::{self, MAX_FRAME, Reply, Request, Step};
use crate::sys;

/// A connected pair of SEQPACKET Unix sockets, close-on-exec.
fn seqpacket_pair() -> (OwnedFd, OwnedFd) {
    socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .unwrap()
}

/// A request for an IPv4 UDP socket.
fn udp_socket() -> Request {
    Request::OpenSocket {
        domain: libc::AF_INET,
        ty: libc::SOCK_DGRAM,
        protocol: 0,
    }
}

struct Raw {
    ctl: OwnedFd,
    pidfd: OwnedFd,
}

impl Raw {
    async fn spawn() -> Raw {
        assert!(
            nix::unistd::geteuid().is_root(),
            "these tests need root: run them as root"
        );
        let (ours, theirs) = seqpacket_pair();
        let ppid = std::process::id();
        let (_, pidfd) = nsfs::Executor::global()
            .unwrap()
            .run_home(move || crate::client::spawn_agent(theirs, ppid))
            .await
            .unwrap()
            .unwrap();
        Raw { ctl: ours, pidfd }
    }

    fn send(&self, bytes: &[u8], fds: &[BorrowedFd<'_>]) {
        sys::send_frame(self.ctl.as_fd(), bytes, fds, false).unwrap();
    }

    fn request(&self, id: u32, req: &Request, fds: &[BorrowedFd<'_>]) {
        let mut buf = Vec::new();
        proto::encode_request(id, req, &mut buf).unwrap();
        self.send(&buf, fds);
    }

    /// The next reply, or `None` at end of file.
    fn recv(&self) -> Option<(u32, Reply, Vec<OwnedFd>)> {
        let mut buf = vec![0; MAX_FRAME + 1];
        let got = sys::recv_frame(self.ctl.as_fd(), &mut buf, false).unwrap();
        if got.len == 0 && got.fds.is_empty() {
            return None;
        }
        let (id, reply) = proto::decode_reply(&buf[..got.len], got.fds.len()).unwrap();
        Some((id, reply, got.fds))
    }

    fn hello(&self) {
        let ns = nsfs::NetNs::current_thread().unwrap();
        let hello = Request::Hello {
            version: proto::VERSION,
            user_ns: false,
            exec_name: None,
        };
        self.request(1, &hello, &[ns.as_fd()]);
        assert!(matches!(self.recv(), Some((1, Reply::Ready { .. }, _))));
    }

    /// Expects the protocol complaint, then end of file, then a normal exit
    /// with the protocol exit code: the agent did not crash.
    fn expect_protocol_error(self, about: &str) {
        match self.recv() {
            Some((
                0,
                Reply::Failed {
                    step: Step::Protocol,
                    errno,
                    detail,
                },
                _,
            )) => {
                assert_eq!(errno, libc::EPROTO);
                let detail = String::from_utf8_lossy(&detail);
                assert!(
                    detail.contains(about),
                    "{detail:?} should mention {about:?}"
                );
            }
            other => panic!("expected a protocol error, got {other:?}"),
        }
        assert!(self.recv().is_none(), "the agent closes the connection");
        let status = sys::waitid_pidfd(self.pidfd.as_fd(), false)
            .unwrap()
            .unwrap();
        assert!(
            libc::WIFEXITED(status),
            "the agent exited normally, status {status:#x}"
        );
        assert_eq!(libc::WEXITSTATUS(status), EXIT_PROTOCOL);
    }
}

#[tokio::test]
async fn truncated_frame_before_hello() {
    let raw = Raw::spawn().await;
    raw.send(&[1, 0, 0], &[]);
    raw.expect_protocol_error("truncated");
}

#[tokio::test]
async fn wrong_protocol_version() {
    let raw = Raw::spawn().await;
    let ns = nsfs::NetNs::current_thread().unwrap();
    let mut buf = Vec::new();
    let hello = Request::Hello {
        version: proto::VERSION,
        user_ns: false,
        exec_name: None,
    };
    proto::encode_request(1, &hello, &mut buf).unwrap();
    buf[8] = 99;
    raw.send(&buf, &[ns.as_fd()]);
    raw.expect_protocol_error("version 99");
}

#[tokio::test]
async fn request_before_hello() {
    let raw = Raw::spawn().await;
    raw.request(1, &udp_socket(), &[]);
    raw.expect_protocol_error("Hello");
}

#[tokio::test]
async fn unknown_kind_after_hello() {
    let raw = Raw::spawn().await;
    raw.hello();
    raw.send(&[0x55, 0, 0, 0, 2, 0, 0, 0], &[]);
    raw.expect_protocol_error("unknown message kind");
}

#[tokio::test]
async fn fd_where_none_is_expected() {
    let raw = Raw::spawn().await;
    raw.hello();
    let stray = std::fs::File::open("/dev/null").unwrap();
    let req = udp_socket();
    raw.request(2, &req, &[stray.as_fd()]);
    raw.expect_protocol_error("fds");
}

#[tokio::test]
async fn too_many_fds() {
    let raw = Raw::spawn().await;
    raw.hello();
    let files: Vec<std::fs::File> = (0..proto::MAX_FDS + 1)
        .map(|_| std::fs::File::open("/dev/null").unwrap())
        .collect();
    let fds: Vec<BorrowedFd<'_>> = files.iter().map(|f| f.as_fd()).collect();
    let req = udp_socket();
    let mut buf = Vec::new();
    proto::encode_request(2, &req, &mut buf).unwrap();
    raw.send_many(&buf, &fds);
    raw.expect_protocol_error("control message");
}

#[tokio::test]
async fn oversized_frame() {
    let raw = Raw::spawn().await;
    raw.hello();
    setsockopt(&raw.ctl, sockopt::SndBufForce, &(4 * MAX_FRAME)).unwrap();
    let mut buf = Vec::new();
    proto::encode_request(2, &Request::OpenRelay { protocol: 0 }, &mut buf).unwrap();
    buf.resize(MAX_FRAME + 100, 0);
    raw.send(&buf, &[]);
    raw.expect_protocol_error("oversized");
}

#[tokio::test]
async fn second_hello() {
    let raw = Raw::spawn().await;
    raw.hello();
    let ns = nsfs::NetNs::current_thread().unwrap();
    let hello = Request::Hello {
        version: proto::VERSION,
        user_ns: false,
        exec_name: None,
    };
    raw.request(2, &hello, &[ns.as_fd()]);
    raw.expect_protocol_error("Hello");
}

#[tokio::test]
async fn garbage_on_a_relay_closes_only_that_relay() {
    let raw = Raw::spawn().await;
    raw.hello();
    let (ours, theirs) = seqpacket_pair();
    raw.request(
        2,
        &Request::OpenRelay {
            protocol: libc::NETLINK_ROUTE,
        },
        &[theirs.as_fd()],
    );
    drop(theirs);
    assert!(matches!(raw.recv(), Some((2, Reply::Relay, fds)) if fds.len() == 1));
    sys::send_frame(ours.as_fd(), &[7, 7, 7], &[], false).unwrap();
    let mut buf = vec![0; 64];
    let got = sys::recv_frame(ours.as_fd(), &mut buf, false).unwrap();
    assert_eq!(got.len, 0, "the agent closed the relay");
    // The control channel still works.
    raw.request(3, &udp_socket(), &[]);
    assert!(matches!(raw.recv(), Some((3, Reply::Socket, fds)) if fds.len() == 1));
    sys::shutdown(raw.ctl.as_fd());
    let status = sys::waitid_pidfd(raw.pidfd.as_fd(), false)
        .unwrap()
        .unwrap();
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == EXIT_OK);
}

impl Raw {
    /// Sends more fds than `send_frame` allows, in one SCM_RIGHTS message.
    fn send_many(&self, bytes: &[u8], fds: &[BorrowedFd<'_>]) {
        use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
        use std::os::fd::AsRawFd;
        let raw: Vec<i32> = fds.iter().map(|f| f.as_raw_fd()).collect();
        let iov = [std::io::IoSlice::new(bytes)];
        sendmsg::<()>(
            self.ctl.as_raw_fd(),
            &iov,
            &[ControlMessage::ScmRights(&raw)],
            MsgFlags::empty(),
            None,
        )
        .unwrap();
    }
}

/// A fake agent: the other endpoint of a real socketpair, speaking the
/// framed protocol from a thread. It answers the Hello with `ready`, then
/// each request with what `answer` makes of it, until end of file.
fn fake_agent(
    ready: Reply,
    answer: impl Fn(u32, &Request) -> Reply + Send + 'static,
) -> (OwnedFd, std::thread::JoinHandle<()>) {
    let (ours, theirs) = seqpacket_pair();
    let peer = std::thread::spawn(move || {
        let mut buf = vec![0; MAX_FRAME + 1];
        let mut out = Vec::new();
        let mut first = true;
        loop {
            let Ok(got) = sys::recv_frame(theirs.as_fd(), &mut buf, false) else {
                return;
            };
            if got.len == 0 && got.fds.is_empty() {
                return;
            }
            let (id, req) = proto::decode_request(&buf[..got.len], got.fds.len()).unwrap();
            let reply = if first {
                ready.clone()
            } else {
                answer(id, &req)
            };
            first = false;
            proto::encode_reply(id, &reply, &mut out).unwrap();
            if sys::send_frame(theirs.as_fd(), &out, &[], false).is_err() {
                return;
            }
        }
    });
    (ours, peer)
}

fn ready() -> Reply {
    Reply::Ready {
        version: proto::VERSION,
        pid: 4242,
    }
}

async fn connect(ctl: OwnedFd) -> crate::Result<crate::Agent> {
    let ns = nsfs::NetNs::current_thread().unwrap();
    let reaper = crate::client::Reaper {
        pidfd: None,
        detached: false,
    };
    crate::Agent::handshake(&ns, &crate::AgentOptions::new(), ctl, 4242, reaper).await
}

async fn guard<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(std::time::Duration::from_secs(20), f)
        .await
        .expect("hang guard: the request never finished")
}

/// Regression: an `Exited` answering an `OpenSocket` was routed to the exit
/// watchers and left the request pending forever. A reply of the wrong kind
/// is now a protocol error: it fails the request and closes the connection
/// (the peer cannot be trusted any more), failing what comes after too.
#[tokio::test]
async fn a_reply_of_the_wrong_kind_fails_the_request_and_the_connection() {
    let (ctl, peer) = fake_agent(ready(), |_, _| Reply::Exited { pid: 1, status: 0 });
    let agent = connect(ctl).await.unwrap();
    let err = guard(agent.open_socket(libc::AF_INET, libc::SOCK_DGRAM, 0))
        .await
        .unwrap_err();
    match &err {
        crate::Error::Protocol { expected, got } => {
            assert!(expected.starts_with("Socket or Failed"), "{err}");
            assert!(got.starts_with("Exited"), "{err}");
        }
        other => panic!("expected a protocol error, got {other:?}"),
    }
    assert!(!agent.is_alive(), "the connection is closed");
    let again = guard(agent.spawn(crate::SpawnRequest::new("/bin/true")))
        .await
        .unwrap_err();
    assert!(matches!(again, crate::Error::Protocol { .. }), "{again}");
    drop(agent);
    peer.join().unwrap();

    // Another wrong kind for another verb: a Ready answering a Spawn.
    let (ctl, peer) = fake_agent(ready(), |_, _| ready());
    let agent = connect(ctl).await.unwrap();
    let err = guard(agent.spawn(crate::SpawnRequest::new("/bin/true")))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("Spawned or Failed"), "{err}");
    assert_eq!(err.raw_os_error(), Some(libc::EPROTO));
    drop(agent);
    peer.join().unwrap();
}

/// Regression: a `Ready` of another protocol version was reported as
/// "expected Ready, got Ready"; the error now names both versions.
#[tokio::test]
async fn a_version_mismatch_names_both_versions() {
    let other = proto::VERSION + 1;
    let (ctl, peer) = fake_agent(
        Reply::Ready {
            version: other,
            pid: 1,
        },
        |_, _| unreachable!("no request after a failed handshake"),
    );
    let err = guard(connect(ctl)).await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, crate::Error::Protocol { .. }), "{msg}");
    assert!(
        msg.contains(&format!("protocol version {}", proto::VERSION))
            && msg.contains(&format!("version {other}")),
        "{msg}"
    );
    peer.join().unwrap();
}

/// A process that takes the Hello and never answers fails the start with a
/// timeout (the start deadline) instead of hanging it.
#[tokio::test]
async fn a_silent_agent_times_out_the_start() {
    let (ours, silent) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
    )
    .unwrap();
    // Long enough that a loaded machine still sends the Hello before it.
    let within = std::time::Duration::from_millis(500);
    let shook = guard(crate::client::within(
        Some(within),
        "agent start",
        connect(ours),
    ))
    .await;
    match shook {
        Err(crate::Error::Timeout { op, after }) => {
            assert_eq!((op, after), ("agent start", within));
        }
        other => panic!("expected a start timeout, got {other:?}"),
    }
    // The Hello did go out, with its fd; then the connection was closed.
    let mut rbuf = vec![0; MAX_FRAME + 1];
    let got = sys::recv_frame(silent.as_fd(), &mut rbuf, true).unwrap();
    assert_eq!(got.fds.len(), 1);
    let eof = sys::recv_frame(silent.as_fd(), &mut rbuf, true).unwrap();
    assert_eq!((eof.len, eof.fds.len()), (0, 0));
}
