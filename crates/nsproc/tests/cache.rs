//! The exec path keeps one agent per runtime and namespace, and lets it go.

mod common;

use common::{TestNs, eventually};
use nsproc::{Command, ExecMode};

async fn parent_of_child(ns: &TestNs) -> u32 {
    let out = Command::new("sh")
        .args(["-c", "echo $PPID"])
        .netns(&ns.name)
        .exec_mode(ExecMode::IpNetnsExec)
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

fn gone(pid: u32) -> bool {
    !std::path::Path::new(&format!("/proc/{pid}")).exists()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_is_reused_then_closed() {
    let ns = TestNs::new("cache").await;
    let agent = parent_of_child(&ns).await;
    assert_ne!(agent, std::process::id());
    // The next spawn in the namespace goes through the same agent.
    assert_eq!(parent_of_child(&ns).await, agent);
    assert!(nsproc::close_cached_agents() >= 1);
    eventually("a closed agent exits and is reaped", || gone(agent)).await;
    // A new one is started on demand.
    let second = parent_of_child(&ns).await;
    assert_ne!(second, agent);
    // Unused, it is closed by itself.
    eventually("an idle agent is closed", || gone(second)).await;
}

#[test]
fn runtimes_do_not_share_agents() {
    let ns = std::thread::spawn(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let ns = rt.block_on(TestNs::new("cache-rt"));
        let first = rt.block_on(parent_of_child(&ns));
        drop(rt);
        (ns, first)
    })
    .join()
    .unwrap();
    let (ns, first) = ns;
    // The first runtime is gone, with the connection it drove; a new runtime
    // gets its own agent and works.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let second = rt.block_on(parent_of_child(&ns));
    assert_ne!(first, second);
    rt.block_on(eventually("the first runtime's agent is gone", || {
        gone(first)
    }));
}
