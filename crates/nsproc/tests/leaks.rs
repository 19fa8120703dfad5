//! Spawn/wait cycles and dropped children leave fds and process tables as
//! they were. One test function, so no other test's children run meanwhile.

mod common;

use common::{TestNs, children, eventually, fd_count};
use nsproc::{Command, ExecMode, Stdio};

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

async fn dropped_children(mode: ExecMode, ns: &TestNs) {
    // Dropped while running, without kill_on_drop: runs on, reaped when it exits.
    let child = Command::new("sleep")
        .arg("0.2")
        .netns(&ns.name)
        .exec_mode(mode)
        .spawn()
        .await
        .unwrap();
    let pid = child.id().unwrap();
    drop(child);
    eventually("the dropped child is reaped after it exits", || {
        !std::path::Path::new(&format!("/proc/{pid}")).exists()
    })
    .await;
    // Dropped after it exited, never waited.
    let child = Command::new("/bin/true")
        .netns(&ns.name)
        .exec_mode(mode)
        .spawn()
        .await
        .unwrap();
    let pid = child.id().unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    drop(child);
    eventually("the exited, dropped child is reaped", || {
        !std::path::Path::new(&format!("/proc/{pid}")).exists()
    })
    .await;
    // Killed and waited.
    let mut child = Command::new("sleep")
        .arg("60")
        .netns(&ns.name)
        .exec_mode(mode)
        .spawn()
        .await
        .unwrap();
    child.kill().await.unwrap();
}

async fn check(mode: ExecMode) {
    let ns = TestNs::new("leaks").await;
    // Warm up: namespace threads, tokio's pidfd and signal machinery, agents.
    cycles(mode, &ns, 5).await;
    let fds = fd_count();
    let kids = children();
    cycles(mode, &ns, 1000).await;
    dropped_children(mode, &ns).await;
    eventually("no zombie children of ours", || {
        children().iter().all(|&(_, s)| s != 'Z')
    })
    .await;
    assert_eq!(children(), kids, "process table changed");
    assert_eq!(fd_count(), fds, "fd count changed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_leaks() {
    check(ExecMode::Fast).await;
}
