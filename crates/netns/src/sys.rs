//! The crate's few raw system calls and fd hand-overs: the only module
//! allowed `unsafe`.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{FromRawFd, IntoRawFd, OwnedFd};

use netlink_sys::Socket;
use tokio::io::unix::AsyncFd;

/// `socket(2)` with `SOCK_CLOEXEC`, as an `OwnedFd`.
pub(crate) fn socket(domain: i32, ty: i32, protocol: i32) -> io::Result<OwnedFd> {
    // SAFETY: socket(2) takes plain integers and touches no memory of ours.
    let fd = unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, protocol) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by socket(2), is open, and nothing else
    // owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A netlink `Socket` owning `fd` (which must be a netlink socket).
pub(crate) fn netlink_socket(fd: OwnedFd) -> Socket {
    // SAFETY: `into_raw_fd` gives up the OwnedFd's ownership of an open fd
    // nothing else holds; the `Socket` takes it over and closes it.
    unsafe { Socket::from_raw_fd(fd.into_raw_fd()) }
}

/// Registers a netlink socket with the current runtime's reactor.
pub(crate) fn register(socket: Socket) -> io::Result<AsyncFd<Socket>> {
    // SAFETY: the `Socket` owns its fd (it closes it on drop, and nothing
    // else holds it); the AsyncFd owns the `Socket` for its whole life, so
    // the fd stays open and names the same socket until the AsyncFd is
    // dropped, and `as_raw_fd` always returns it.
    unsafe { AsyncFd::register(socket) }.map_err(|e| e.into_parts().1)
}
