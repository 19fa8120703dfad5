//! A privileged binary that links nsproxy must not become an agent for an
//! unprivileged caller.
//!
//! A real capability-bearing binary (this test binary, copied and given file
//! capabilities with `setcap`) run as a real unprivileged uid (`setpriv`),
//! with the agent's environment and argv, and a control socket on stdin.
//! Needs root, `setcap` (libcap2-bin) and `setpriv` (util-linux): see
//! `scripts/setup`.

use std::io::Read;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
use nsproxy::proto::{self, Reply, Request};

/// A temporary directory that uid 65534 can enter, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        // Tests of this binary run at once: one directory each.
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("nsproxy-at-secure-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn require(tool: &str) {
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .any(|dir| dir.join(tool).exists());
    assert!(found, "this test needs `{tool}`: run scripts/setup");
}

/// A copy of this test binary with file capabilities, in a temporary
/// directory uid 65534 can enter.
fn privileged_copy() -> (TempDir, PathBuf) {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root (setcap, setpriv): run it as root"
    );
    require("setcap");
    require("setpriv");
    let dir = TempDir::new();
    let bin = dir.0.join("privileged-cli");
    std::fs::copy(std::env::current_exe().unwrap(), &bin).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    setcap(&bin);
    (dir, bin)
}

/// `setpriv` as uid/gid 65534, no groups: it execs what follows in place.
fn as_nobody() -> Command {
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid", "65534", "--regid", "65534", "--clear-groups"]);
    cmd
}

fn setcap(file: &Path) {
    let status = Command::new("setcap")
        .arg("cap_sys_admin,cap_net_admin+ep")
        .arg(file)
        .status()
        .expect("run setcap");
    assert!(status.success(), "setcap failed on {}", file.display());
}

/// Regression: the init hook turned any binary linking nsproxy into an agent
/// when its environment and argv said so, even one running with file
/// capabilities (`AT_SECURE`) started by an unprivileged user, who could then
/// enter namespaces and relay netlink with the binary's capabilities. It now
/// refuses: a message, a non-zero exit, and no answer to the handshake.
#[test]
fn a_binary_with_file_capabilities_refuses_agent_mode() {
    let (_dir, bin) = privileged_copy();
    let (ours, theirs) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .unwrap();
    // setpriv execs the binary in place: its parent is this process.
    let mut agent = as_nobody()
        .arg(&bin)
        .arg("--nsproxy-agent")
        .env_clear()
        .env("NSPROXY_AGENT", proto::VERSION.to_string())
        .env("NSPROXY_AGENT_PPID", std::process::id().to_string())
        .stdin(Stdio::from(theirs))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // What a caller would do next: ask it to enter a namespace (this one).
    let ns = nsfs::NetNs::current_thread().unwrap();
    let hello = Request::Hello {
        version: proto::VERSION,
        user_ns: false,
        exec_name: None,
    };
    let mut buf = Vec::new();
    proto::encode_request(1, &hello, &mut buf).unwrap();
    // EPIPE if it already exited: that is the point.
    let _ = nix::sys::socket::sendmsg::<()>(
        ours.as_raw_fd(),
        &[std::io::IoSlice::new(&buf)],
        &[nix::sys::socket::ControlMessage::ScmRights(&[ns
            .as_fd()
            .as_raw_fd()])],
        nix::sys::socket::MsgFlags::MSG_NOSIGNAL,
        None,
    );

    // Its answer, if any: a bounded wait, not a timing assertion.
    let mut rbuf = vec![0u8; proto::MAX_FRAME + 1];
    let start = Instant::now();
    let answer = loop {
        match nix::sys::socket::recv(
            ours.as_raw_fd(),
            &mut rbuf,
            nix::sys::socket::MsgFlags::MSG_DONTWAIT,
        ) {
            // End of file; a reset if it exited with our Hello unread.
            Ok(0) | Err(nix::errno::Errno::ECONNRESET) => break None,
            Ok(n) => break Some(proto::decode_reply(&rbuf[..n], 0)),
            Err(nix::errno::Errno::EAGAIN) => {
                assert!(
                    start.elapsed() < Duration::from_secs(20),
                    "hang guard: neither an answer nor an exit"
                );
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => {
                break Some(Err(proto::ProtoError::Invalid {
                    what: "recv",
                    why: e.desc(),
                }));
            }
        }
    };
    // End of file for an agent that did serve, so that it exits too.
    drop(ours);
    let status = agent.wait().unwrap();
    let mut stderr = String::new();
    agent
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(
        !matches!(answer, Some(Ok((_, Reply::Ready { .. })))),
        "the privileged binary served as an agent: {answer:?}"
    );
    assert_eq!(answer, None, "no answer at all, only end of file");
    assert!(!status.success(), "it exits with an error: {status:?}");
    assert!(
        stderr.contains("refusing agent mode") && stderr.contains("AT_SECURE"),
        "it says why: {stderr:?}"
    );
}

/// Run by `a_privileged_application_is_told_why_it_gets_no_agent`, as uid
/// 65534 in a copy of this binary with file capabilities.
#[tokio::test]
#[ignore = "helper process of a_privileged_application_is_told_why_it_gets_no_agent"]
async fn helper_start_in_secure_mode() {
    let ns = nsfs::NetNs::current_thread().unwrap();
    let err = nsproxy::Agent::start(&ns, nsproxy::AgentOptions::new())
        .await
        .unwrap_err();
    assert!(
        matches!(err, nsproxy::Error::Start { step, .. } if step.contains("AT_SECURE")),
        "{err:?}"
    );
    assert_eq!(err.raw_os_error(), Some(libc::EPERM));
    println!("REFUSED: {err}");
}

/// An application running with file capabilities cannot have agents (they
/// are the same executable, which refuses agent mode under `AT_SECURE`):
/// `Agent::start` says so at once with a typed error, rather than an agent
/// that dies during the handshake.
#[test]
fn a_privileged_application_is_told_why_it_gets_no_agent() {
    let (_dir, bin) = privileged_copy();
    let out = as_nobody()
        .arg(&bin)
        .args([
            "--exact",
            "helper_start_in_secure_mode",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env_clear()
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("REFUSED: "),
        "{out:?}"
    );
}
