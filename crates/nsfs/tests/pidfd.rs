//! `NetNs::from_pidfd`: the namespace of the process a pidfd refers to, as
//! root and as uid 65534 (a process of its own), with typed errors for a
//! process that has exited, one of another user, and an fd that is not a
//! pidfd.

use std::os::fd::{AsFd, FromRawFd, OwnedFd};

use nsfs::{Error, NetNs};

#[allow(unsafe_code)]
fn pidfd_open(pid: u32) -> OwnedFd {
    // SAFETY: pidfd_open takes plain integers and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    assert!(fd >= 0, "pidfd_open: {}", std::io::Error::last_os_error());
    // SAFETY: a new fd nothing else owns.
    unsafe { OwnedFd::from_raw_fd(fd as i32) }
}

/// The checks both modes share: a process of the caller's own (in a
/// network namespace of its own where it can make one, `unshare -Urn` as
/// an unprivileged user), then after it exited; an fd that is no pidfd.
fn own_process_then_exited(unshare: &[&str]) {
    let mut child = std::process::Command::new("unshare")
        .args(unshare)
        .args(["sleep", "60"])
        .spawn()
        .unwrap();
    let pid = child.id();
    let pidfd = pidfd_open(pid);
    let here = NetNs::current_thread().unwrap();
    // Wait until `unshare` has made its namespace and become `sleep`.
    let start = std::time::Instant::now();
    while NetNs::from_pid(pid as i32).unwrap() == here {
        assert!(start.elapsed() < testkit::GUARD, "unshare did not unshare");
        std::thread::yield_now();
    }
    let ns = NetNs::from_pidfd(pidfd.as_fd()).unwrap();
    assert_eq!(ns, NetNs::from_pid(pid as i32).unwrap());
    assert_ne!(ns, here);
    assert_eq!(ns.path(), None);
    child.kill().unwrap();
    child.wait().unwrap();
    // Exited and reaped: ESRCH, typed.
    let err = NetNs::from_pidfd(pidfd.as_fd()).unwrap_err();
    assert!(matches!(err, Error::NoSuchProcess { .. }), "{err}");
    assert_eq!(err.raw_os_error(), Some(libc::ESRCH));
    // Not a pidfd: a namespace fd, a plain file. Typed, and the fd is
    // untouched.
    for fd in [
        OwnedFd::from(std::fs::File::open("/proc/self/ns/net").unwrap()),
        OwnedFd::from(std::fs::File::open("/proc/self/status").unwrap()),
    ] {
        let err = NetNs::from_pidfd(fd.as_fd()).unwrap_err();
        assert!(matches!(err, Error::NotPidfd { .. }), "{err}");
        assert_eq!(err.raw_os_error(), Some(libc::EBADF));
        assert!(err.to_string().contains("is not a pidfd"), "{err}");
    }
}

#[test]
fn pidfd_as_root() {
    testkit::require_root();
    own_process_then_exited(&["-n"]);
    // A process of another user, for root.
    let id = testkit::UNPRIVILEGED.to_string();
    let mut other = std::process::Command::new("setpriv")
        .args([
            "--reuid",
            &id,
            "--regid",
            &id,
            "--clear-groups",
            "sleep",
            "60",
        ])
        .spawn()
        .unwrap();
    let pidfd = pidfd_open(other.id());
    assert_eq!(
        NetNs::from_pidfd(pidfd.as_fd()).unwrap(),
        NetNs::current_thread().unwrap()
    );
    other.kill().unwrap();
    other.wait().unwrap();
}

#[test]
fn pidfd_as_nobody() {
    testkit::run_unprivileged("inner_pidfd_as_nobody", &[]);
}

#[test]
#[ignore = "run as uid 65534 by pidfd_as_nobody"]
fn inner_pidfd_as_nobody() {
    assert_eq!(nix::unistd::geteuid().as_raw(), testkit::UNPRIVILEGED);
    own_process_then_exited(&["-Urn"]);
    // A process of another user (root's: the test that ran this one):
    // EACCES, as for its /proc/PID/ns/net.
    let parent = pidfd_open(nix::unistd::getppid().as_raw() as u32);
    let err = NetNs::from_pidfd(parent.as_fd()).unwrap_err();
    assert!(matches!(err, Error::Open { .. }), "{err}");
    assert_eq!(err.raw_os_error(), Some(libc::EACCES), "{err}");
}
