//! The few syscalls nix does not wrap. Every other module is free of `unsafe`.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// `NS_GET_NSTYPE` from `<linux/nsfs.h>`: `_IO(0xb7, 0x3)`.
const NS_GET_NSTYPE: libc::c_ulong = 0xb703;

/// The `CLONE_NEW*` type of the namespace behind an nsfs fd.
pub(crate) fn ns_type(fd: BorrowedFd<'_>) -> io::Result<libc::c_int> {
    // SAFETY: NS_GET_NSTYPE takes no argument and only reads the fd, which the
    // borrow keeps open for the duration of the call.
    let ret = unsafe { libc::ioctl(fd.as_raw_fd(), NS_GET_NSTYPE) };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// `PIDFD_GET_NET_NAMESPACE` from `<linux/pidfd.h>`: `_IO(0xff, 4)`
/// (Linux 6.11).
const PIDFD_GET_NET_NAMESPACE: libc::c_ulong = 0xff04;

/// `ioctl(PIDFD_GET_NET_NAMESPACE)`: an fd on the network namespace of the
/// process behind `pidfd`. The caller has checked that `pidfd` is a pidfd
/// (on another fd this request number could mean something else).
pub(crate) fn pidfd_net_ns(pidfd: BorrowedFd<'_>) -> io::Result<std::os::fd::OwnedFd> {
    // SAFETY: the request takes no argument (0) and returns a new fd or -1;
    // the borrow keeps the pidfd open for the call.
    let ret = unsafe { libc::ioctl(pidfd.as_raw_fd(), PIDFD_GET_NET_NAMESPACE, 0) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel returned a new fd that nothing else owns.
    Ok(unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(ret) })
}

/// `pidfd_send_signal(pidfd, 0, NULL, 0)`: whether the process is still
/// there (`ESRCH` once it has exited; `EPERM` means it is there).
pub(crate) fn pidfd_alive(pidfd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: signal 0 with a null info pointer sends nothing and reads no
    // memory of ours; the borrow keeps the pidfd open for the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            0,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `NS_GET_USERNS` from `<linux/nsfs.h>`: `_IO(0xb7, 0x1)`.
const NS_GET_USERNS: libc::c_ulong = 0xb701;
/// `NS_GET_OWNER_UID` from `<linux/nsfs.h>`: `_IO(0xb7, 0x4)`.
const NS_GET_OWNER_UID: libc::c_ulong = 0xb704;

/// `ioctl(NS_GET_USERNS)`: the user namespace owning the namespace `fd`.
pub(crate) fn owner_user_ns(fd: BorrowedFd<'_>) -> io::Result<std::os::fd::OwnedFd> {
    // SAFETY: NS_GET_USERNS takes no argument and returns a new fd or -1.
    let ret = unsafe { libc::ioctl(fd.as_raw_fd(), NS_GET_USERNS) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel returned a new fd that nothing else owns.
    Ok(unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(ret) })
}

/// `ioctl(NS_GET_OWNER_UID)` on a user namespace fd.
pub(crate) fn owner_uid(userns: BorrowedFd<'_>) -> io::Result<u32> {
    let mut uid: libc::uid_t = 0;
    // SAFETY: NS_GET_OWNER_UID writes one uid_t through the valid pointer.
    let ret = unsafe {
        libc::ioctl(
            userns.as_raw_fd(),
            NS_GET_OWNER_UID,
            &mut uid as *mut libc::uid_t,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(uid)
}

/// A type that owns exactly one fd for its whole life: `as_raw_fd` always
/// returns that fd, and it stays open until the value drops.
pub(crate) trait OwnsFd: AsRawFd {}

impl OwnsFd for std::fs::File {}

/// nix's `Inotify` (it is `AsFd` only; `AsyncFd` wants `AsRawFd`).
pub(crate) struct InotifyFd(pub(crate) nix::sys::inotify::Inotify);

impl AsRawFd for InotifyFd {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsFd;
        self.0.as_fd().as_raw_fd()
    }
}

impl OwnsFd for InotifyFd {}

/// Registers `inner` with the current Tokio reactor for `interest`.
/// Must be called within a runtime.
pub(crate) fn register<T: OwnsFd>(
    inner: T,
    interest: tokio::io::Interest,
) -> io::Result<tokio::io::unix::AsyncFd<T>> {
    // SAFETY: `OwnsFd` types own their fd, which stays open and the same until
    // the value drops, and the `AsyncFd` owns the value; this crate never uses
    // `get_mut` to swap what is inside.
    unsafe { tokio::io::unix::AsyncFd::register_with_interest(inner, interest) }
        .map_err(io::Error::from)
}

/// Whether the calling thread runs under a normal (time-shared) scheduling
/// policy, where `sched_yield` lets any other runnable thread of its CPU run.
/// A real-time thread yields only to real-time threads of its priority.
pub(crate) fn time_shared() -> bool {
    // SAFETY: sched_getscheduler(0) reads the calling thread's policy and
    // touches no memory of ours.
    let policy = unsafe { libc::sched_getscheduler(0) };
    matches!(
        policy,
        libc::SCHED_OTHER | libc::SCHED_BATCH | libc::SCHED_IDLE
    )
}

/// `pidfd_open(pid, 0)`, for tests.
#[cfg(test)]
pub(crate) fn pidfd_open(pid: i32) -> io::Result<std::os::fd::OwnedFd> {
    // SAFETY: pidfd_open takes plain integers and returns a new fd or -1.
    let ret = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel returned a new fd that nothing else owns.
    Ok(unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(ret as i32) })
}

/// `_LINUX_CAPABILITY_VERSION_3` from `<linux/capability.h>`.
const CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// `struct __user_cap_header_struct`.
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

/// `struct __user_cap_data_struct`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// `capget(2)` of the calling thread: its effective capability set, as
/// one 64-bit mask (bit N is capability N), in one syscall.
pub(crate) fn effective_caps() -> io::Result<u64> {
    let mut header = CapHeader {
        version: CAPABILITY_VERSION_3,
        pid: 0,
    };
    // Version 3 fills two of these: capabilities 0-31, then 32-63.
    let mut data = [CapData::default(); 2];
    // SAFETY: the header and the two data structs are the layout the kernel
    // reads and writes for version 3, and live for the whole call.
    let ret = unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(u64::from(data[0].effective) | (u64::from(data[1].effective) << 32))
}
