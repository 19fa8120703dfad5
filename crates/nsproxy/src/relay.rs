//! The relay transport: a netlink socket inside the namespace, driven by the
//! agent, seen through a `SOCK_SEQPACKET` channel as a [`netlink_sys::AsyncSocket`].

use std::fmt;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};

use netlink_sys::{AsyncSocket, Socket, SocketAddr};
use tokio::io::unix::AsyncFd;

use crate::client::Keep;
use crate::proto::{self, MAX_FRAME, RelayView};
use crate::{Error, Result, sys};

/// A netlink socket inside a namespace, relayed by an agent.
///
/// Made by [`Agent::netlink`](crate::Agent::netlink). It implements
/// [`netlink_sys::AsyncSocket`] for `rtnetlink::from_socket` (or
/// `netlink_proto::from_socket_with_codec`):
///
/// - `poll_send_to` sends the buffer as one datagram to the address given
///   (the agent's `sendto`), and wakes the task after each send (netlink-proto
///   0.14 otherwise stalls after a `notify`);
/// - `poll_recv_from` returns exactly one kernel datagram and
///   `SocketAddr::new(0, groups)`: port 0, as netlink-proto matches replies on
///   sequence and port; `ENOBUFS` from the kernel comes back as an error, which
///   netlink-proto turns into an overrun message;
/// - `socket_ref`/`socket_mut` give a dup of the agent's netlink socket, so
///   `bind` (multicast groups), `add_membership` and socket options act on the
///   socket that really relays;
/// - `new` is unsupported (it cannot know the namespace).
///
/// The direct transport (a socket made in the namespace, used in place) is
/// faster; the relay is for when a process must hold the socket.
///
/// Dropping it closes the relay channel; the agent then closes its socket.
///
/// # Examples
///
/// ```no_run
/// # async fn demo(agent: nsproxy::Agent) -> nsproxy::Result<()> {
/// let relay = agent.netlink(netlink_sys::protocols::NETLINK_ROUTE).await?;
/// // let (conn, handle, _) = rtnetlink::from_socket(relay);
/// // tokio::spawn(conn);
/// # Ok(()) }
/// ```
pub struct RelaySocket {
    data: AsyncFd<OwnedFd>,
    nl: Socket,
    rbuf: Mutex<Vec<u8>>,
    wbuf: Mutex<Vec<u8>>,
    _keep: Arc<Keep>,
}

impl fmt::Debug for RelaySocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RelaySocket")
            .field("agent", &self._keep)
            .finish_non_exhaustive()
    }
}

fn lock(m: &Mutex<Vec<u8>>) -> std::sync::MutexGuard<'_, Vec<u8>> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl RelaySocket {
    pub(crate) fn new(data: OwnedFd, nl: Socket, keep: Arc<Keep>) -> Result<RelaySocket> {
        let register = |source| Error::Io {
            op: "register relay channel",
            source,
        };
        sys::set_nonblocking(data.as_fd(), true).map_err(register)?;
        let data = sys::async_fd(data).map_err(register)?;
        Ok(RelaySocket {
            data,
            nl,
            rbuf: Mutex::new(vec![0; MAX_FRAME + 1]),
            wbuf: Mutex::new(Vec::with_capacity(4096)),
            _keep: keep,
        })
    }

    fn poll_recv_frame<B: bytes::BufMut>(
        &self,
        cx: &mut Context<'_>,
        buf: &mut B,
    ) -> Poll<io::Result<SocketAddr>> {
        loop {
            let mut guard = ready!(self.data.poll_read_ready(cx))?;
            let mut rbuf = lock(&self.rbuf);
            let got =
                match guard.try_io(|fd| sys::recv_frame(fd.get_ref().as_fd(), &mut rbuf, true)) {
                    Ok(got) => got?,
                    Err(_would_block) => continue,
                };
            if got.len == 0 && got.fds.is_empty() {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::ConnectionReset,
                    "nsproxy agent closed the relay",
                )));
            }
            if got.truncated || got.bad_control {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "nsproxy relay: oversized frame or unexpected fds",
                )));
            }
            return Poll::Ready(match proto::view_relay(&rbuf[..got.len], got.fds.len()) {
                Ok(RelayView::Datagram { groups, data, .. }) => {
                    if buf.remaining_mut() < data.len() {
                        return Poll::Ready(Err(io::Error::from_raw_os_error(libc::EMSGSIZE)));
                    }
                    buf.put_slice(data);
                    Ok(SocketAddr::new(0, groups))
                }
                Ok(RelayView::Errno(errno)) => Err(io::Error::from_raw_os_error(errno)),
                Err(e) => Err(io::Error::new(io::ErrorKind::InvalidData, Error::from(e))),
            });
        }
    }
}

impl AsyncSocket for RelaySocket {
    fn socket_ref(&self) -> &Socket {
        &self.nl
    }

    fn socket_mut(&mut self) -> &mut Socket {
        &mut self.nl
    }

    fn new(_protocol: isize) -> io::Result<Self> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "a RelaySocket is made by nsproxy::Agent::netlink, not AsyncSocket::new",
        ))
    }

    fn poll_send(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.poll_send_to(cx, buf, &SocketAddr::new(0, 0))
    }

    fn poll_send_to(
        &self,
        cx: &mut Context<'_>,
        buf: &[u8],
        addr: &SocketAddr,
    ) -> Poll<io::Result<usize>> {
        if buf.len() > proto::MAX_DATAGRAM {
            return Poll::Ready(Err(io::Error::from_raw_os_error(libc::EMSGSIZE)));
        }
        let mut frame = lock(&self.wbuf);
        proto::encode_relay_header(addr.port_number(), addr.multicast_groups(), &mut frame);
        frame.extend_from_slice(buf);
        loop {
            let mut guard = ready!(self.data.poll_write_ready(cx))?;
            match guard.try_io(|fd| sys::send_frame(fd.get_ref().as_fd(), &frame, &[], true)) {
                Ok(Ok(_)) => {
                    // netlink-proto 0.14 sends one batch per poll and does not
                    // wake itself: wake it so queued requests go out.
                    cx.waker().wake_by_ref();
                    return Poll::Ready(Ok(buf.len()));
                }
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => continue,
            }
        }
    }

    fn poll_recv<B>(&self, cx: &mut Context<'_>, buf: &mut B) -> Poll<io::Result<()>>
    where
        B: bytes::BufMut,
    {
        self.poll_recv_frame(cx, buf).map_ok(drop)
    }

    fn poll_recv_from<B>(&self, cx: &mut Context<'_>, buf: &mut B) -> Poll<io::Result<SocketAddr>>
    where
        B: bytes::BufMut,
    {
        self.poll_recv_frame(cx, buf)
    }

    fn poll_recv_from_full(&self, cx: &mut Context<'_>) -> Poll<io::Result<(Vec<u8>, SocketAddr)>> {
        let mut buf = Vec::new();
        let addr = ready!(self.poll_recv_frame(cx, &mut buf))?;
        Poll::Ready(Ok((buf, addr)))
    }
}
