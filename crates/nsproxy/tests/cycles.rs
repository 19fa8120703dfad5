//! 1,000 agent start/stop cycles leave no process, zombie or fd behind.
//!
//! Alone in their binary, one at a time: they count this process's fds and
//! children, which parallel tests would disturb. Also: starts and requests
//! cancelled at every stage leave nothing behind either.

use std::time::{Duration, Instant};

mod common;

use nsproxy::{Agent, AgentOptions, SpawnRequest};
use testkit::open_fds as fd_count;

const GUARD: Duration = Duration::from_secs(300);

/// The tests of this binary count the process's fds and children: one at a time.
static ALONE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Root checked, the other test of this binary kept out, an anonymous
/// namespace, and what lives for the whole process (namespace threads,
/// runtime) warmed up by three agent start/stop cycles, so that counts taken
/// next are a baseline.
async fn alone_and_warm() -> (tokio::sync::MutexGuard<'static, ()>, nsfs::NetNs) {
    let alone = ALONE.lock().await;
    let ns = common::anon_ns().await;
    for _ in 0..3 {
        let agent = Agent::start(&ns, AgentOptions::new()).await.unwrap();
        agent.close().await.unwrap();
    }
    (alone, ns)
}

/// Children of every thread of this process (zombies included).
fn children() -> Vec<i32> {
    testkit::children_of(std::process::id() as i32)
}

async fn settle(want_fds: usize) {
    let start = Instant::now();
    while fd_count() != want_fds || !children().is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "hang guard: fds {} (want {want_fds}), children {:?}",
            fd_count(),
            children()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_start_stop_cycles_leave_nothing_behind() {
    let (_alone, ns) = alone_and_warm().await;
    let fds = fd_count();
    assert!(children().is_empty());

    let run = async {
        for i in 0..1000 {
            let agent = Agent::start(&ns, AgentOptions::new()).await.unwrap();
            if i % 100 == 0 {
                // Exercise every kind of request now and then.
                let relay = agent
                    .netlink(netlink_sys::protocols::NETLINK_ROUTE)
                    .await
                    .unwrap();
                let sock = agent
                    .open_socket(libc::AF_INET, libc::SOCK_DGRAM, 0)
                    .await
                    .unwrap();
                let mut child = agent.spawn(SpawnRequest::new("/bin/true")).await.unwrap();
                assert!(child.wait().await.unwrap().success());
                drop((relay, sock, child));
            }
            if i % 2 == 0 {
                assert!(agent.close().await.unwrap().success());
            } else {
                // Dropping also stops the agent; it is reaped in the background.
                drop(agent);
            }
        }
    };
    tokio::time::timeout(GUARD, run)
        .await
        .expect("hang guard: cycles never finished");
    settle(fds).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_starts_and_requests_leave_nothing_behind() {
    let (_alone, ns) = alone_and_warm().await;
    let fds = fd_count();
    let run = async {
        // Drop `start` at every stage: before the spawn, while the agent
        // starts, during the handshake.
        for i in 0..300u64 {
            let start = Agent::start(&ns, AgentOptions::new());
            if let Ok(agent) = tokio::time::timeout(Duration::from_micros(i * 10), start).await {
                let agent = agent.unwrap();
                // And requests dropped before their answer.
                let spawn = agent.spawn(SpawnRequest::new("/bin/true").kill_on_drop(true));
                let _ = tokio::time::timeout(Duration::from_micros(i % 50), spawn).await;
                let relay = agent.netlink(netlink_sys::protocols::NETLINK_ROUTE);
                let _ = tokio::time::timeout(Duration::from_micros(i % 50), relay).await;
                drop(agent);
            }
        }
    };
    tokio::time::timeout(GUARD, run)
        .await
        .expect("hang guard: cycles never finished");
    settle(fds).await;
}
