//! Spawn/wait cycles and dropped children leave fds and process tables as
//! they were. One test function, so no other test's children run meanwhile.

mod common;

use common::cases::cmd;
use common::{TestNs, children, eventually, fd_count};
use nsproc::{Command, ExecAgent, ExecMode, Stdio};

async fn cycles(mode: ExecMode, ns: &TestNs, n: usize) {
    for i in 0..n {
        let mut cmd = Command::new("/bin/true");
        cmd.netns(&ns.name).exec_mode(mode);
        // Alternate plain spawns and piped ones.
        if i % 2 == 1 {
            cmd.stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
        }
        let status = cmd.spawn().await.unwrap().wait().await.unwrap();
        assert!(status.success());
    }
}

/// Waits until process `pid` is gone (reaped).
async fn reaped(pid: u32, what: &str) {
    eventually(what, || {
        !std::path::Path::new(&format!("/proc/{pid}")).exists()
    })
    .await;
}

async fn dropped_children(mode: ExecMode, ns: &TestNs) {
    // Dropped while running, without kill_on_drop: runs on, reaped when it exits.
    let child = cmd(mode, ns, "sleep", &["0.2"]).spawn().await.unwrap();
    let pid = child.id().unwrap();
    drop(child);
    reaped(pid, "the dropped child is reaped after it exits").await;
    // Dropped after it exited, never waited.
    let child = cmd(mode, ns, "/bin/true", &[]).spawn().await.unwrap();
    let pid = child.id().unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    drop(child);
    reaped(pid, "the exited, dropped child is reaped").await;
    // Killed and waited.
    let mut child = cmd(mode, ns, "sleep", &["60"]).spawn().await.unwrap();
    child.kill().await.unwrap();
}

/// Spawn futures dropped after their first poll: the spawn may have happened;
/// the process must still be reaped.
async fn cancelled_spawns(mode: ExecMode, ns: &TestNs) {
    for i in 0..50 {
        let mut cmd = Command::new("sleep");
        cmd.arg("0.05")
            .netns(&ns.name)
            .exec_mode(mode)
            .kill_on_drop(i % 2 == 0);
        if i % 3 == 0 {
            cmd.stdout(Stdio::piped());
        }
        tokio::select! {
            biased;
            _ = cmd.spawn() => {}
            () = std::future::ready(()) => {}
        }
    }
}

/// Waits (bounded) until our children are `kids` again, then asserts it,
/// naming what is left and its command line.
async fn assert_children_back(kids: &[(u32, char)], what: &str) {
    for _ in 0..500 {
        if children() == kids {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let now: Vec<_> = children()
        .into_iter()
        .map(|(pid, st)| {
            let cmdline = std::fs::read_to_string(format!("/proc/{pid}/cmdline"));
            (pid, st, cmdline.unwrap_or_default())
        })
        .collect();
    assert_eq!(children(), kids, "{what}: process table changed: {now:?}");
}

async fn check(mode: ExecMode) {
    let ns = TestNs::new("leaks").await;
    // Warm up: namespace threads, tokio's pidfd and signal machinery, agents.
    cycles(mode, &ns, 5).await;
    // The warm-up's agents are reaped just after their children: let them go.
    eventually("no children at rest", || children().is_empty()).await;
    let fds = fd_count();
    let before = common::fd_list();
    let kids = children();
    cycles(mode, &ns, 1000).await;
    dropped_children(mode, &ns).await;
    cancelled_spawns(mode, &ns).await;
    eventually("no zombie children of ours", || {
        children().iter().all(|&(_, s)| s != 'Z')
    })
    .await;
    // Agents of the exec path are reaped by their reader tasks, just after
    // their last child handle is dropped: allow them that moment.
    assert_children_back(&kids, &format!("{mode:?}")).await;
    for _ in 0..200 {
        if fd_count() <= fds {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    // A leak is an fd that was not there before (one transient at the
    // baseline may have closed since: that is not a leak).
    let new: Vec<_> = common::fd_list()
        .into_iter()
        .filter(|fd| !before.contains(fd))
        .collect();
    assert!(new.is_empty(), "{mode:?}: fds left open: {new:?}");
}

/// The same through one reused agent.
async fn check_reused_agent() {
    let ns = TestNs::new("leaks-agent").await;
    let fds = fd_count();
    let kids = children();
    let agent = ExecAgent::start(&ns.name).await.unwrap();
    for i in 0..1000 {
        let mut cmd = Command::new("/bin/true");
        cmd.exec_agent(&agent);
        if i % 2 == 1 {
            cmd.stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
        }
        assert!(cmd.spawn().await.unwrap().wait().await.unwrap().success());
    }
    let agent_pid = agent.pid() as u32;
    assert_eq!(children().len(), kids.len() + 1, "only the agent is new");
    drop(agent);
    eventually("the agent is reaped", || {
        !std::path::Path::new(&format!("/proc/{agent_pid}")).exists()
    })
    .await;
    assert_children_back(&kids, "reused agent").await;
    eventually("no fd more than before", || fd_count() <= fds).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_leaks() {
    check(ExecMode::Fast).await;
    check(ExecMode::IpNetnsExec).await;
    check_reused_agent().await;
}
