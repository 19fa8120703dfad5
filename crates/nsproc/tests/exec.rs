//! The `ip netns exec` path (`ExecMode::IpNetnsExec`): through the nsproxy
//! agent, with a private mount namespace, /sys remounted and /etc/netns binds.

mod common;

use nsproc::ExecMode;

all_tests_for_mode!(ExecMode::IpNetnsExec);

use common::TestNs;
use nsproc::{Command, ExecAgent};

fn exec(ns: &TestNs, program: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .netns(&ns.name)
        .exec_mode(ExecMode::IpNetnsExec);
    cmd
}

/// `sleep 60` through `agent`.
async fn sleep_on(agent: &ExecAgent, kill_on_drop: bool) -> nsproc::Child {
    Command::new("sleep")
        .arg("60")
        .kill_on_drop(kill_on_drop)
        .exec_agent(agent)
        .spawn()
        .await
        .unwrap()
}

async fn stdout_of(cmd: &mut Command) -> String {
    let out = cmd.output().await.unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sys_class_net_shows_the_namespace_devices() {
    let ns = TestNs::new("sys").await;
    ns.ip(&[
        "link", "add", "nsx-a", "type", "veth", "peer", "name", "nsx-b",
    ]);
    let mut devices: Vec<String> = stdout_of(&mut exec(&ns, "ls", &["/sys/class/net"]))
        .await
        .lines()
        .map(String::from)
        .collect();
    devices.sort();
    assert_eq!(devices, ["lo", "nsx-a", "nsx-b"]);
    // The fast path only changes the network namespace: /sys is the caller's.
    let fast = stdout_of(Command::new("ls").arg("/sys/class/net").netns(&ns.name)).await;
    assert!(!fast.lines().any(|l| l == "nsx-a"), "{fast}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etc_netns_files_replace_etc() {
    let ns = TestNs::new("etc").await;
    let dir = std::path::Path::new("/etc/netns").join(ns.name.as_str());
    std::fs::create_dir_all(&dir).unwrap();
    let conf = format!("nameserver 192.0.2.53 # {}\n", ns.name);
    std::fs::write(dir.join("resolv.conf"), &conf).unwrap();
    let seen = stdout_of(&mut exec(&ns, "cat", &["/etc/resolv.conf"])).await;
    // The same through a path and a handle (the name is found in the run dir).
    let by_path = stdout_of(
        Command::new("cat")
            .arg("/etc/resolv.conf")
            .netns(ns.path())
            .exec_mode(ExecMode::IpNetnsExec),
    )
    .await;
    let by_handle = stdout_of(
        Command::new("cat")
            .arg("/etc/resolv.conf")
            .netns(&ns.ns)
            .exec_mode(ExecMode::IpNetnsExec),
    )
    .await;
    let fast = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(seen, conf);
    assert_eq!(by_path, conf);
    assert_eq!(by_handle, conf);
    // Our own /etc is untouched: the binds live in the agent's mount namespace.
    assert_ne!(fast, conf);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unnamed_namespace_gets_sys_but_no_etc() {
    let exec_threads = nsfs::Executor::global().unwrap();
    let (anon, ()) = exec_threads.run_in_new(|| ()).await.unwrap();
    let agent = ExecAgent::start(&anon).await.unwrap();
    assert_eq!(agent.name(), None, "no placeholder name");
    let devices = stdout_of(Command::new("ls").arg("/sys/class/net").exec_agent(&agent)).await;
    assert_eq!(devices.trim(), "lo");
    let inode = stdout_of(
        Command::new("readlink")
            .arg("/proc/self/ns/net")
            .exec_agent(&agent),
    )
    .await;
    assert_eq!(inode.trim(), anon.id().to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_agent_is_reused() {
    let ns = TestNs::new("reuse").await;
    let agent = ExecAgent::start(&ns.name).await.unwrap();
    assert_eq!(agent.netns().id(), ns.ns.id());
    for _ in 0..3 {
        // The child's parent is the agent.
        let ppid = stdout_of(
            Command::new("sh")
                .args(["-c", "echo $PPID"])
                .exec_agent(&agent),
        )
        .await;
        assert_eq!(ppid.trim(), agent.pid().to_string());
    }
    assert!(agent.is_alive());
    // A child outlives the handle; the agent outlives the child's handle.
    let mut child = sleep_on(&agent, false).await;
    let agent_pid = agent.pid();
    drop(agent);
    assert!(common::alive(agent_pid as u32));
    child.kill().await.unwrap();
    drop(child);
    common::eventually(
        "the agent exits and is reaped once nothing holds it",
        || !std::path::Path::new(&format!("/proc/{agent_pid}")).exists(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_namespace_for_exec_agent() {
    let err = ExecAgent::start(format!("nsproc-missing-agent-{}", std::process::id()))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_returns_once_the_agent_is_reaped() {
    let ns = TestNs::new("close").await;
    for _ in 0..5 {
        let agent = ExecAgent::start(&ns.name).await.unwrap();
        // A command that ends at once, as `nsctl exec NAME true` runs it.
        let status = Command::new("true")
            .exec_agent(&agent)
            .status()
            .await
            .unwrap();
        assert!(status.success());
        let pid = agent.pid();
        let clone = agent.clone();
        let closed = agent.close().await.unwrap();
        assert!(closed.success(), "the agent exits cleanly: {closed:?}");
        // Reaped by the time close returns: no polling.
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "agent {pid} still in /proc after close"
        );
        // Clones see the agent gone.
        assert!(!clone.is_alive());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_with_children_running() {
    let ns = TestNs::new("closekids").await;
    let agent = ExecAgent::start(&ns.name).await.unwrap();
    let mut killed = sleep_on(&agent, true).await;
    let mut kept = sleep_on(&agent, false).await;
    let (killed_pid, kept_pid) = (killed.id().unwrap(), kept.id().unwrap());
    let agent_pid = agent.pid();
    assert!(agent.close().await.unwrap().success());
    assert!(!std::path::Path::new(&format!("/proc/{agent_pid}")).exists());
    // The handles can no longer reach their processes through the agent.
    let err = kept.wait().await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}");
    let err = killed.wait().await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}");
    common::eventually("the kill_on_drop child is killed", || {
        !common::alive(killed_pid)
    })
    .await;
    assert!(common::alive(kept_pid), "the other child keeps running");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(kept_pid as i32),
        nix::sys::signal::SIGKILL,
    )
    .unwrap();
}
