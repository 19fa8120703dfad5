//! Deadlines on an agent's start and requests, with a real agent stopped by
//! a real SIGSTOP. Counts this process's fds: the tests of this file run one
//! at a time.

use std::time::Duration;

mod common;

use common::{anon_ns, ns_and_agent};
use nsproxy::{Agent, AgentOptions, Error, SpawnRequest};
use testkit::{children_of, eventually, guard, open_fds as fd_count};

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The process state letter of `pid` (`T`: stopped).
fn state(pid: i32) -> char {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let (_, rest) = stat.rsplit_once(") ").unwrap();
    rest.chars().next().unwrap()
}

fn signal(pid: i32, sig: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig).unwrap();
}

fn assert_timeout(err: &Error, op: &str, after: Duration) {
    match err {
        Error::Timeout { op: o, after: a } => assert_eq!((*o, *a), (op, after), "{err}"),
        other => panic!("expected a timeout of {op}, got {other:?}"),
    }
    assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
    assert_eq!(err.raw_os_error(), Some(libc::ETIMEDOUT));
}

/// Regression: a stopped agent left `open_socket`, relay requests and spawns
/// pending forever. With a deadline (per agent, or per call) they fail with
/// a typed timeout; the answers that come after SIGCONT are thrown away (the
/// socket and relay fds closed, the program killed), and the agent still
/// works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_to_a_stopped_agent_time_out_and_leave_nothing() {
    let _serial = SERIAL.lock().await;
    let ns = anon_ns().await;
    let limit = Duration::from_millis(200);
    let opts = AgentOptions::new().request_timeout(Some(limit));
    let agent = guard(Agent::start(&ns, opts)).await.unwrap();
    // Everything that is made once (the runtime's, the executor's) exists now.
    drop(
        guard(agent.open_socket(libc::AF_INET, libc::SOCK_DGRAM, 0))
            .await
            .unwrap(),
    );
    let before = fd_count();
    let pid = agent.pid();

    signal(pid, nix::sys::signal::Signal::SIGSTOP);
    eventually("the agent stops", || state(pid) == 'T').await;
    let err = guard(agent.open_socket(libc::AF_INET, libc::SOCK_DGRAM, 0))
        .await
        .unwrap_err();
    assert_timeout(&err, "open_socket", limit);
    let err = guard(agent.netlink(netlink_sys::protocols::NETLINK_ROUTE))
        .await
        .unwrap_err();
    assert_timeout(&err, "netlink", limit);
    // A per-call deadline.
    let quick = Duration::from_millis(100);
    let err = guard(
        agent
            .with_request_timeout(Some(quick))
            .spawn(SpawnRequest::new("/bin/sleep").arg("100")),
    )
    .await
    .unwrap_err();
    assert_timeout(&err, "spawn", quick);
    assert!(agent.is_alive(), "a timeout does not end the connection");

    signal(pid, nix::sys::signal::Signal::SIGCONT);
    // The agent answers in order: once this answer is here, the late ones
    // have been dealt with.
    let sock = guard(agent.open_socket(libc::AF_INET, libc::SOCK_DGRAM, 0))
        .await
        .unwrap();
    drop(sock);
    // The late program (no kill_on_drop asked) was killed all the same: the
    // caller was told the spawn failed.
    eventually("the late program is killed and reaped", || {
        children_of(pid).is_empty()
    })
    .await;
    assert_eq!(fd_count(), before, "no fd left behind");
    assert!(guard(agent.close()).await.unwrap().success());
}

/// The start deadline is the caller's: past it, a typed timeout, and the
/// agent (if already spawned) is killed and reaped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_start_deadline_is_configurable() {
    let _serial = SERIAL.lock().await;
    let (ns, agent) = ns_and_agent().await;
    assert!(guard(agent.close()).await.unwrap().success());
    let before = fd_count();
    let limit = Duration::from_nanos(1);
    // tokio's timers tick in milliseconds: a start that finishes within the
    // tick the deadline rounds up to succeeds. It rarely does; try until one
    // start is past its deadline, closing any that made it.
    let mut timed_out = None;
    for _ in 0..20 {
        match guard(Agent::start(
            &ns,
            AgentOptions::new().start_timeout(Some(limit)),
        ))
        .await
        {
            Err(err) => {
                timed_out = Some(err);
                break;
            }
            Ok(fast) => assert!(guard(fast.close()).await.unwrap().success()),
        }
    }
    let err = timed_out.expect("20 starts all beat a 1 ns deadline");
    assert_timeout(&err, "agent start", limit);
    let me = std::process::id() as i32;
    eventually("no agent is left", || children_of(me).is_empty()).await;
    eventually("no fd is left", || fd_count() == before).await;
}
