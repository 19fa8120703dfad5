//! The syscalls this crate makes that need `unsafe`: frames with fds over a
//! `SOCK_SEQPACKET` socket, pidfds, and the agent's process setup. Every other
//! module is free of `unsafe`.
#![allow(unsafe_code)]

use std::io;
use std::mem;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use crate::proto::MAX_FDS;

/// Turns a syscall's `-1`/value return into a `Result`.
fn cvt(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// The one place a returned fd becomes an `OwnedFd`.
fn owned(ret: libc::c_long) -> io::Result<OwnedFd> {
    let fd = cvt(ret)? as RawFd;
    // SAFETY: the kernel just returned this fd to us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Control-message space for `MAX_FDS` fds, aligned for `cmsghdr`.
#[repr(C, align(8))]
struct CmsgBuf([u8; 64]);

/// Sends `buf` as one frame with `fds` in one `SCM_RIGHTS` message.
/// `MSG_NOSIGNAL` always; `MSG_DONTWAIT` if `nonblock`.
pub(crate) fn send_frame(
    sock: BorrowedFd<'_>,
    buf: &[u8],
    fds: &[BorrowedFd<'_>],
    nonblock: bool,
) -> io::Result<usize> {
    assert!(fds.len() <= MAX_FDS);
    let mut cmsg = CmsgBuf([0; 64]);
    let mut iov = libc::iovec {
        iov_base: buf.as_ptr() as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // SAFETY: msghdr is plain old data; all-zero is a valid empty header.
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if !fds.is_empty() {
        let data_len = mem::size_of_val(fds) as u32;
        // SAFETY: CMSG_SPACE only computes a size.
        let space = unsafe { libc::CMSG_SPACE(data_len) } as usize;
        debug_assert!(space <= cmsg.0.len());
        msg.msg_control = cmsg.0.as_mut_ptr().cast();
        msg.msg_controllen = space as _;
        // SAFETY: msg_control points at `space` zeroed, aligned bytes, enough
        // for one header and `fds.len()` ints; CMSG_FIRSTHDR returns its start.
        unsafe {
            let hdr = libc::CMSG_FIRSTHDR(&msg);
            (*hdr).cmsg_level = libc::SOL_SOCKET;
            (*hdr).cmsg_type = libc::SCM_RIGHTS;
            (*hdr).cmsg_len = libc::CMSG_LEN(data_len) as _;
            let data = libc::CMSG_DATA(hdr).cast::<RawFd>();
            for (i, fd) in fds.iter().enumerate() {
                data.add(i).write_unaligned(fd.as_raw_fd());
            }
        }
    }
    let mut flags = libc::MSG_NOSIGNAL;
    if nonblock {
        flags |= libc::MSG_DONTWAIT;
    }
    // SAFETY: msg points at live buffers (iov, cmsg) for the duration of the call.
    let n = unsafe { libc::sendmsg(sock.as_raw_fd(), &msg, flags) };
    cvt(n as libc::c_long).map(|n| n as usize)
}

/// What one `recvmsg` of a frame brought.
#[derive(Debug)]
pub(crate) struct Received {
    /// Bytes of the frame (0 with no fds: end of file).
    pub(crate) len: usize,
    /// Its fds, already owned (closed on drop), close-on-exec.
    pub(crate) fds: Vec<OwnedFd>,
    /// The frame was larger than the buffer (`MSG_TRUNC`).
    pub(crate) truncated: bool,
    /// Fds were dropped by the kernel (`MSG_CTRUNC`), or several control
    /// messages came: a protocol error.
    pub(crate) bad_control: bool,
}

/// Receives one frame into `buf` with `MSG_CMSG_CLOEXEC`.
pub(crate) fn recv_frame(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
    nonblock: bool,
) -> io::Result<Received> {
    let mut cmsg = CmsgBuf([0; 64]);
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: msghdr is plain old data; all-zero is a valid empty header.
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cmsg.0.as_mut_ptr().cast();
    // SAFETY: CMSG_SPACE only computes a size.
    msg.msg_controllen = unsafe { libc::CMSG_SPACE((MAX_FDS * 4) as u32) } as _;
    let mut flags = libc::MSG_CMSG_CLOEXEC;
    if nonblock {
        flags |= libc::MSG_DONTWAIT;
    }
    // SAFETY: msg points at live buffers (iov, cmsg) for the duration of the call.
    let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, flags) };
    let len = cvt(n as libc::c_long)? as usize;
    let mut fds = Vec::new();
    let mut messages = 0;
    // SAFETY: the kernel filled msg_control with msg_controllen bytes of
    // well-formed control messages; the CMSG_* macros walk exactly those.
    unsafe {
        let mut hdr = libc::CMSG_FIRSTHDR(&msg);
        while !hdr.is_null() {
            messages += 1;
            if (*hdr).cmsg_level == libc::SOL_SOCKET && (*hdr).cmsg_type == libc::SCM_RIGHTS {
                let data = libc::CMSG_DATA(hdr).cast::<RawFd>();
                let bytes = (*hdr).cmsg_len as usize - (data as usize - hdr as usize);
                for i in 0..bytes / mem::size_of::<RawFd>() {
                    fds.push(OwnedFd::from_raw_fd(data.add(i).read_unaligned()));
                }
            }
            hdr = libc::CMSG_NXTHDR(&msg, hdr);
        }
    }
    Ok(Received {
        len,
        fds,
        truncated: msg.msg_flags & libc::MSG_TRUNC != 0,
        bad_control: msg.msg_flags & libc::MSG_CTRUNC != 0 || messages > 1,
    })
}

/// `pidfd_open(pid, 0)`: a close-on-exec pidfd.
pub(crate) fn pidfd_open(pid: i32) -> io::Result<OwnedFd> {
    // SAFETY: plain syscall with integer arguments.
    owned(unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) })
}

/// `pidfd_send_signal(pidfd, sig, NULL, 0)`.
pub(crate) fn pidfd_send_signal(pidfd: BorrowedFd<'_>, sig: i32) -> io::Result<()> {
    // SAFETY: plain syscall; a NULL siginfo is allowed.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    })
    .map(drop)
}

/// `waitid(P_PIDFD, pidfd, WEXITED | flags)`: the raw wait status (as
/// `waitpid` gives it) of an exited child, or `None` with `WNOHANG` if it
/// still runs.
pub(crate) fn waitid_pidfd(pidfd: BorrowedFd<'_>, nohang: bool) -> io::Result<Option<i32>> {
    // SAFETY: siginfo_t is plain old data; all-zero is valid.
    let mut info: libc::siginfo_t = unsafe { mem::zeroed() };
    let mut flags = libc::WEXITED;
    if nohang {
        flags |= libc::WNOHANG;
    }
    // SAFETY: info is a valid out-parameter; P_PIDFD takes the fd as id.
    let ret = unsafe {
        libc::waitid(
            libc::P_PIDFD,
            pidfd.as_raw_fd() as libc::id_t,
            &mut info,
            flags,
        )
    };
    cvt(ret as libc::c_long)?;
    // SAFETY: waitid filled info for a child (or left si_pid 0 with WNOHANG).
    let (pid, code, status) = unsafe { (info.si_pid(), info.si_code, info.si_status()) };
    if pid == 0 {
        return Ok(None);
    }
    Ok(Some(match code {
        libc::CLD_EXITED => (status & 0xff) << 8,
        libc::CLD_DUMPED => (status & 0x7f) | 0x80,
        _ => status & 0x7f,
    }))
}

/// `waitpid(pid, WNOHANG)`: the raw status of an exited child, `None` if it
/// still runs.
pub(crate) fn waitpid_nohang(pid: i32) -> io::Result<Option<i32>> {
    let mut status = 0;
    // SAFETY: status is a valid out-parameter; pid is a child of ours.
    let ret = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
    match cvt(ret as libc::c_long)? {
        0 => Ok(None),
        _ => Ok(Some(status)),
    }
}

/// `waitpid(pid, 0)`, blocking.
pub(crate) fn waitpid_blocking(pid: i32) -> io::Result<i32> {
    let mut status = 0;
    loop {
        // SAFETY: status is a valid out-parameter; pid is a child of ours.
        let ret = unsafe { libc::waitpid(pid, &mut status, 0) };
        match cvt(ret as libc::c_long) {
            Ok(_) => return Ok(status),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// `socket(domain, ty | SOCK_CLOEXEC, protocol)`.
pub(crate) fn socket(domain: i32, ty: i32, protocol: i32) -> io::Result<OwnedFd> {
    // SAFETY: plain syscall with integer arguments.
    owned(unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, protocol) } as libc::c_long)
}

/// A close-on-exec duplicate of `fd` numbered `min` or above
/// (`F_DUPFD_CLOEXEC`).
pub(crate) fn dup_min(fd: BorrowedFd<'_>, min: i32) -> io::Result<OwnedFd> {
    // SAFETY: fcntl on a borrowed, open fd; the result is a new fd or -1.
    owned(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, min) } as libc::c_long)
}

/// `prctl(PR_SET_PDEATHSIG, 0)`: no signal when the parent dies.
pub(crate) fn no_death_signal() {
    // SAFETY: plain prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, 0) };
}

/// `shutdown(fd, SHUT_RDWR)`, errors ignored (the peer may be gone).
pub(crate) fn shutdown(fd: BorrowedFd<'_>) {
    // SAFETY: plain syscall on a borrowed, open fd.
    unsafe { libc::shutdown(fd.as_raw_fd(), libc::SHUT_RDWR) };
}

/// Sets or clears `O_NONBLOCK`.
pub(crate) fn set_nonblocking(fd: BorrowedFd<'_>, on: bool) -> io::Result<()> {
    // SAFETY: fcntl on a borrowed, open fd with integer arguments.
    let flags = cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) } as libc::c_long)? as i32;
    let new = if on {
        flags | libc::O_NONBLOCK
    } else {
        flags & !libc::O_NONBLOCK
    };
    // SAFETY: as above.
    cvt(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, new) } as libc::c_long).map(drop)
}

/// Receives one netlink datagram into `buf`, non-blocking: its real length
/// (`MSG_TRUNC`: larger than `buf` if it did not fit) and the sender's
/// (port, groups).
pub(crate) fn recv_netlink(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<(usize, u32, u32)> {
    // SAFETY: sockaddr_nl is plain old data.
    let mut addr: libc::sockaddr_nl = unsafe { mem::zeroed() };
    let mut alen = mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t;
    // SAFETY: buf and addr are valid for the lengths given.
    let n = unsafe {
        libc::recvfrom(
            fd.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_DONTWAIT | libc::MSG_TRUNC,
            (&mut addr as *mut libc::sockaddr_nl).cast(),
            &mut alen,
        )
    };
    let n = cvt(n as libc::c_long)? as usize;
    Ok((n, addr.nl_pid, addr.nl_groups))
}

/// Sends one netlink datagram to (port, groups).
pub(crate) fn send_netlink(
    fd: BorrowedFd<'_>,
    buf: &[u8],
    port: u32,
    groups: u32,
) -> io::Result<()> {
    // SAFETY: sockaddr_nl is plain old data.
    let mut addr: libc::sockaddr_nl = unsafe { mem::zeroed() };
    addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    addr.nl_pid = port;
    addr.nl_groups = groups;
    // SAFETY: buf and addr are valid for the lengths given.
    let n = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            buf.as_ptr().cast(),
            buf.len(),
            libc::MSG_NOSIGNAL,
            (&addr as *const libc::sockaddr_nl).cast(),
            mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    };
    cvt(n as libc::c_long).map(drop)
}

/// `poll(2)` over `fds`, retrying on `EINTR`.
pub(crate) fn poll(fds: &mut [libc::pollfd], timeout_ms: i32) -> io::Result<usize> {
    loop {
        // SAFETY: fds is a valid, exclusively borrowed array of pollfd.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
        match cvt(n as libc::c_long) {
            Ok(n) => return Ok(n as usize),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// The agent's process setup, first thing before anything else runs:
/// die with the parent, reset signals, keep only the control socket.
///
/// Returns the control socket (moved to a close-on-exec fd), or `None` if
/// the parent is already gone.
pub(crate) fn agent_setup(expected_ppid: i32) -> io::Result<Option<OwnedFd>> {
    // SAFETY: prctl with integer arguments; the agent is single-threaded.
    let ret = unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) };
    cvt(ret as libc::c_long)?;
    // SAFETY: getppid cannot fail.
    if unsafe { libc::getppid() } != expected_ppid {
        return Ok(None);
    }
    // Signals: default dispositions, empty mask (Rust ignores SIGPIPE, the
    // application may have installed handlers or blocked signals).
    // Through the raw syscall: glibc's wrappers refuse its internal signals
    // (32, 33), whose ignored state would otherwise pass on to programs.
    for sig in 1..=64 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // An all-zero kernel `struct sigaction` is SIG_DFL, no flags, empty
        // mask, whatever the architecture's layout.
        let dfl = [0u64; 4];
        // SAFETY: `dfl` outlives the call and is at least as large as the
        // kernel's struct sigaction; old action not requested; sigsetsize 8.
        unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig,
                dfl.as_ptr(),
                std::ptr::null_mut::<u64>(),
                8,
            )
        };
    }
    // SAFETY: an empty, initialised set; SIG_SETMASK with it unblocks all.
    unsafe {
        let mut set: libc::sigset_t = mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
    // Close every inherited fd above stdio, then move the control socket off
    // stdin to a close-on-exec fd so that programs we spawn never hold it.
    close_from(3)?;
    // SAFETY: fcntl on fd 0 with integer arguments.
    let ctl = owned(unsafe { libc::fcntl(0, libc::F_DUPFD_CLOEXEC, 3) } as libc::c_long)?;
    // SAFETY: a NUL-terminated path literal.
    let null = owned(
        unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) }
            as libc::c_long,
    )?;
    for target in 0..3 {
        // SAFETY: dup2 onto stdio fds, which this process owns; dup2 clears
        // close-on-exec on the new fd.
        cvt(unsafe { libc::dup2(null.as_raw_fd(), target) } as libc::c_long)?;
    }
    Ok(Some(ctl))
}

/// Makes the program `cmd` starts die (`SIGKILL`) when this process dies:
/// `PR_SET_PDEATHSIG` in the child between fork and exec. For the agent,
/// which is single-threaded, so the thread that forks is the one whose death
/// the kernel watches, and it outlives the child.
pub(crate) fn die_with_parent(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: getpid cannot fail; read before the fork.
    let parent = unsafe { libc::getpid() };
    // SAFETY: the closure runs between fork and exec and makes only raw,
    // async-signal-safe syscalls (prctl, getppid), allocating nothing.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The parent died before the prctl: the signal will never come.
            if libc::getppid() != parent {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        })
    };
}

/// Closes every fd from `first` up: `close_range` (Linux 5.9), or on a
/// kernel without it (`ENOSYS`, Linux 5.8) one by one up to the fd limit.
/// For the agent before `main`: nothing in the process owns those fds yet.
fn close_from(first: u32) -> io::Result<()> {
    // SAFETY: closes fds nothing in this process owns (see above).
    match cvt(unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, 0u32) }) {
        Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {
            close_each(first, fd_limit());
            Ok(())
        }
        other => other.map(drop),
    }
}

/// An end for the fds to close: the larger `RLIMIT_NOFILE` limit (an fd can
/// sit above a soft limit lowered after it was opened), capped at 2^20 (the
/// kernel's default `nr_open`, the most any process can have).
fn fd_limit() -> u32 {
    // SAFETY: rlimit is plain old data; getrlimit fills it.
    let mut lim: libc::rlimit = unsafe { mem::zeroed() };
    // SAFETY: lim is a valid out-parameter.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return 1 << 20;
    }
    lim.rlim_cur.max(lim.rlim_max).min(1 << 20) as u32
}

/// Closes fds `first..end` one by one (`EBADF` for the unused ones is
/// expected). Raw syscalls only, no allocation: async-signal-safe.
fn close_each(first: u32, end: u32) {
    for fd in first..end {
        // SAFETY: see `close_from`; a closed fd gives EBADF, ignored.
        unsafe { libc::close(fd as RawFd) };
    }
}

/// `getenv` before `main` (std's environment is not set up yet).
pub(crate) fn getenv(name: &std::ffi::CStr) -> Option<Vec<u8>> {
    // SAFETY: name is NUL-terminated; no other thread exists yet, so the
    // returned pointer stays valid while we copy it.
    unsafe {
        let p = libc::getenv(name.as_ptr());
        if p.is_null() {
            None
        } else {
            Some(std::ffi::CStr::from_ptr(p).to_bytes().to_vec())
        }
    }
}

/// Whether the process runs with `AT_SECURE` set: the kernel set it up as
/// setuid, setgid or with file capabilities (or a security module asked for
/// it), so its environment and argv come from a less privileged caller.
pub(crate) fn secure_mode() -> bool {
    // SAFETY: getauxval only reads the auxiliary vector; AT_SECURE is a
    // valid key (0 if absent, which only an ancient kernel gives).
    unsafe { libc::getauxval(libc::AT_SECURE) != 0 }
}

/// Writes `msg` to fd 2, best effort (before `main`, without std's stderr).
pub(crate) fn write_stderr(msg: &[u8]) {
    // SAFETY: msg is valid for its length; fd 2 may be closed (EBADF, ignored).
    unsafe { libc::write(2, msg.as_ptr().cast(), msg.len()) };
}

/// Ends the process without running destructors or atexit handlers.
pub(crate) fn exit(code: i32) -> ! {
    // SAFETY: _exit never returns and is always sound to call.
    unsafe { libc::_exit(code) }
}

/// Wraps an owned netlink socket fd in a `netlink_sys::Socket`, which closes
/// it on drop (and must therefore never be cloned).
pub(crate) fn netlink_socket(fd: OwnedFd) -> netlink_sys::Socket {
    use std::os::fd::IntoRawFd;
    // SAFETY: we give up ownership of an open fd; the Socket closes it once.
    unsafe { <netlink_sys::Socket as FromRawFd>::from_raw_fd(fd.into_raw_fd()) }
}

/// Registers an fd with the tokio reactor of the current runtime.
pub(crate) fn async_fd(fd: OwnedFd) -> io::Result<tokio::io::unix::AsyncFd<OwnedFd>> {
    // SAFETY: an OwnedFd is open, and stays open and the same fd for its whole
    // life inside the AsyncFd (we never swap it out).
    unsafe { tokio::io::unix::AsyncFd::register(fd) }.map_err(|e| e.into_parts().1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `close_range` fallback (which this kernel never needs: it runs on
    /// `ENOSYS`, Linux 5.8) closes every fd of its range and nothing else.
    #[test]
    fn close_each_closes_the_range_only() {
        let null = std::fs::File::open("/dev/null").unwrap();
        // Fds far above anything the test harness uses.
        let base = 5000;
        let mut fds = Vec::new();
        for target in [base, base + 7, base + 63, base + 64] {
            // SAFETY: F_DUPFD_CLOEXEC of an open fd onto a free slot >= target.
            let fd = unsafe { libc::fcntl(null.as_raw_fd(), libc::F_DUPFD_CLOEXEC, target) };
            assert_eq!(fd, target, "{}", io::Error::last_os_error());
            fds.push(fd);
        }
        close_each(base as u32, (base + 64) as u32);
        // SAFETY: F_GETFD only queries.
        let open = |fd: RawFd| unsafe { libc::fcntl(fd, libc::F_GETFD) } != -1;
        assert!(!open(base) && !open(base + 7) && !open(base + 63));
        assert!(open(base + 64), "the end of the range is left open");
        // SAFETY: ours, opened above and not closed by the range.
        unsafe { libc::close(base + 64) };
        assert!(fd_limit() > 3);
    }
}
