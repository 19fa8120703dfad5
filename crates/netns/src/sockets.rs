//! Sockets that live inside a namespace, as tokio types.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{Backlog, SockaddrIn, SockaddrIn6, bind, listen, setsockopt, sockopt};

use tokio::net::{TcpListener, TcpSocket, TcpStream, UdpSocket};

use crate::{Error, Handle, Result};

impl Handle {
    /// Makes a socket of `(domain, ty)` inside the namespace and runs
    /// `then` on it: both on a namespace thread, or, in rootless mode, the
    /// socket made by the agent of the namespace's user namespace and
    /// `then` run here (what `then` does, bind or listen, acts on the
    /// socket's namespace wherever it runs).
    async fn in_ns<R, F>(&self, op: &'static str, domain: i32, ty: i32, then: F) -> Result<R>
    where
        F: FnOnce(OwnedFd) -> io::Result<R> + Send + 'static,
        R: Send + 'static,
    {
        let made = if crate::rootless() {
            let fd = crate::rootless::socket_in(self.netns(), domain, ty, 0).await?;
            then(fd)
        } else {
            self.netns()
                .run_short(move || then(crate::sys::socket(domain, ty, 0)?))
                .await?
        };
        made.map_err(|source| Error::Socket {
            op,
            ns: self.describe(),
            source,
        })
    }

    /// A TCP listener bound to `addr` inside the namespace, registered with
    /// the current tokio runtime (like `TcpListener::bind` run under
    /// `ip netns exec`). Accepted connections belong to the namespace too.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: if dropped, a socket made so far is closed.
    ///
    /// # Errors
    ///
    /// [`Error::Socket`] with the bind error (`EADDRINUSE`,
    /// `EADDRNOTAVAIL`...).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(h: netns::Handle) -> netns::Result<()> {
    /// let listener = h.tcp_listener("127.0.0.1:8080".parse().unwrap()).await?;
    /// let (stream, peer) = listener.accept().await.unwrap();
    /// # Ok(()) }
    /// ```
    pub async fn tcp_listener(&self, addr: SocketAddr) -> Result<TcpListener> {
        let span = crate::trace::handle_span!(self, "tcp_listener");
        crate::trace::traced(span, async move {
            let std = self
                .in_ns(
                    "bind TCP listener",
                    family(addr),
                    libc::SOCK_STREAM,
                    move |fd| {
                        // What std's TcpListener::bind does.
                        setsockopt(&fd, sockopt::ReuseAddr, &true)?;
                        bind_to(&fd, addr)?;
                        listen(&fd, Backlog::new(128).map_err(io::Error::from)?)?;
                        let l = std::net::TcpListener::from(fd);
                        l.set_nonblocking(true)?;
                        Ok(l)
                    },
                )
                .await?;
            TcpListener::from_std(std).map_err(|source| Error::Socket {
                op: "register TCP listener",
                ns: self.describe(),
                source,
            })
        })
        .await
    }

    /// A TCP connection to `addr` from inside the namespace. The socket is
    /// made on a namespace thread; the connect runs on the caller's runtime.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: if dropped, the socket is closed (a connection attempt in
    /// progress is abandoned).
    ///
    /// # Errors
    ///
    /// [`Error::Socket`] with the socket or connect error
    /// (`ECONNREFUSED`, `ENETUNREACH`...).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(h: netns::Handle) -> netns::Result<()> {
    /// let stream = h.tcp_connect("10.0.0.2:80".parse().unwrap()).await?;
    /// # Ok(()) }
    /// ```
    pub async fn tcp_connect(&self, addr: SocketAddr) -> Result<TcpStream> {
        let span = crate::trace::handle_span!(self, "tcp_connect");
        crate::trace::traced(span, async move {
            let ty = libc::SOCK_STREAM | libc::SOCK_NONBLOCK;
            let fd = self
                .in_ns("create TCP socket", family(addr), ty, Ok)
                .await?;
            let socket = TcpSocket::from_std_stream(std::net::TcpStream::from(fd));
            socket.connect(addr).await.map_err(|source| Error::Socket {
                op: "connect TCP socket",
                ns: self.describe(),
                source,
            })
        })
        .await
    }

    /// A UDP socket bound to `addr` inside the namespace, registered with the
    /// current tokio runtime.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: if dropped, a socket made so far is closed.
    ///
    /// # Errors
    ///
    /// [`Error::Socket`] with the bind error.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(h: netns::Handle) -> netns::Result<()> {
    /// let udp = h.udp_bind("0.0.0.0:5353".parse().unwrap()).await?;
    /// udp.send_to(b"hello", "10.0.0.2:5353").await.unwrap();
    /// # Ok(()) }
    /// ```
    pub async fn udp_bind(&self, addr: SocketAddr) -> Result<UdpSocket> {
        let span = crate::trace::handle_span!(self, "udp_bind");
        crate::trace::traced(span, async move {
            let std = self
                .in_ns(
                    "bind UDP socket",
                    family(addr),
                    libc::SOCK_DGRAM,
                    move |fd| {
                        bind_to(&fd, addr)?;
                        let s = std::net::UdpSocket::from(fd);
                        s.set_nonblocking(true)?;
                        Ok(s)
                    },
                )
                .await?;
            UdpSocket::from_std(std).map_err(|source| Error::Socket {
                op: "register UDP socket",
                ns: self.describe(),
                source,
            })
        })
        .await
    }

    /// Any socket, made inside the namespace: `socket(domain, type,
    /// protocol)` with `SOCK_CLOEXEC` added (raw, packet, netlink of another
    /// family...), like pyroute2's `netns.create_socket`. Flags such as
    /// `SOCK_NONBLOCK` may be or-ed into `ty`.
    ///
    /// The socket belongs to the namespace for its whole life, whichever
    /// thread uses it.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: if dropped, the socket is closed.
    ///
    /// # Errors
    ///
    /// [`Error::Socket`] with the `socket(2)` error.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(h: netns::Handle) -> netns::Result<()> {
    /// // A packet socket seeing every frame of the namespace.
    /// let fd = h
    ///     .socket(libc::AF_PACKET, libc::SOCK_RAW, (libc::ETH_P_ALL as u16).to_be() as i32)
    ///     .await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # References
    ///
    /// `socket(2)`, `packet(7)`, `raw(7)`.
    pub async fn socket(&self, domain: i32, ty: i32, protocol: i32) -> Result<OwnedFd> {
        let span = crate::trace::handle_span!(self, "socket");
        crate::trace::traced(span, async move {
            if crate::rootless() {
                return crate::rootless::socket_in(self.netns(), domain, ty, protocol).await;
            }
            self.netns()
                .run_short(move || crate::sys::socket(domain, ty, protocol))
                .await?
                .map_err(|source| Error::Socket {
                    op: "create socket",
                    ns: self.describe(),
                    source,
                })
        })
        .await
    }
}

/// The address family of `addr`.
fn family(addr: SocketAddr) -> i32 {
    if addr.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    }
}

/// `bind(2)` of `fd` to `addr`.
fn bind_to(fd: &OwnedFd, addr: SocketAddr) -> io::Result<()> {
    match addr {
        SocketAddr::V4(a) => bind(fd.as_raw_fd(), &SockaddrIn::from(a)),
        SocketAddr::V6(a) => bind(fd.as_raw_fd(), &SockaddrIn6::from(a)),
    }
    .map_err(io::Error::from)
}
