//! User-namespace agents (`Agent::start_user`), run by root here (the
//! unprivileged runs are in crates/netns/tests/rootless.rs): namespaces
//! made and named, released when the name goes, sockets and programs in a
//! namespace other than the agent's, detached agents that outlive their
//! connection while they hold names, and the requests any agent serves.

mod common;

use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use nsfs::{NetNs, NsName};
use nsproxy::{Agent, AgentOptions, AgentStdio, SpawnRequest, UserNamespace};
use testkit::{eventually, guard};

/// A directory for names, removed on drop.
struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Dir {
        let dir = std::env::temp_dir().join(format!("nsproxy-user-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        Dir(dir)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Fds numbered 1000 or above of process `pid`: the namespaces it holds.
fn held(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
                .filter(|fd| *fd >= 1000)
                .count()
        })
        .unwrap_or(0)
}

fn links_of(out: OwnedFd) -> String {
    let mut s = String::new();
    std::fs::File::from(out).read_to_string(&mut s).unwrap();
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_sockets_and_spawns_in_namespaces_of_a_new_user_namespace() {
    testkit::require_root();
    let dir = Dir::new("a");
    let agent = guard(Agent::start_user(
        UserNamespace::New,
        Some(&dir.0),
        AgentOptions::new(),
    ))
    .await
    .unwrap();
    let pid = agent.pid();
    let ours = std::fs::read_link("/proc/self/ns/user").unwrap();
    assert_ne!(
        std::fs::read_link(format!("/proc/{pid}/ns/user")).unwrap(),
        ours
    );

    // Named: a symlink to the fd the agent holds, which opens the namespace.
    let name: NsName = "blue".parse().unwrap();
    let blue = guard(agent.new_netns(Some(&name))).await.unwrap();
    let link = dir.0.join("blue");
    let target = std::fs::read_link(&link).unwrap();
    assert!(target.starts_with(format!("/proc/{pid}/fd/")), "{target:?}");
    assert_eq!(NetNs::open(&link).unwrap(), blue);
    assert_eq!(held(pid), 1);
    // Taken: EEXIST, nothing more held.
    let err = guard(agent.new_netns(Some(&name))).await.unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EEXIST), "{err}");
    assert_eq!(held(pid), 1);

    // A socket inside it, made by the agent and used here.
    let udp = guard(agent.open_socket_in(&blue, libc::AF_INET, libc::SOCK_DGRAM, 0))
        .await
        .unwrap();
    let udp = std::net::UdpSocket::from(udp);
    assert_eq!(udp.local_addr().unwrap().port(), 0);
    // A program inside it sees only its `lo`.
    let mut child = guard(
        agent.spawn(
            SpawnRequest::new("/bin/ip")
                .args(["-o", "link", "show"])
                .netns(&blue)
                .stdout(AgentStdio::Pipe),
        ),
    )
    .await
    .unwrap();
    let out = links_of(child.take_stdout().unwrap());
    assert!(guard(child.wait()).await.unwrap().success());
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.contains(": lo:"), "{out}");

    // Anonymous: not held.
    let anon = guard(agent.new_netns(None)).await.unwrap();
    assert_ne!(anon, blue);
    assert_eq!(held(pid), 1);

    // Removing the name lets the namespace go.
    std::fs::remove_file(&link).unwrap();
    eventually("the agent lets blue go", || held(pid) == 0).await;

    // A second agent joining the same user namespace (by its file) works
    // in the first one's namespaces.
    let userns: OwnedFd = std::fs::File::open(format!("/proc/{pid}/ns/user"))
        .unwrap()
        .into();
    let second = guard(Agent::start_user(
        UserNamespace::Join(userns),
        None,
        AgentOptions::new(),
    ))
    .await
    .unwrap();
    guard(second.open_socket_in(&anon, libc::AF_INET6, libc::SOCK_DGRAM, 0))
        .await
        .unwrap();
    // ... and the registry knows the agent of anon's user namespace.
    let found = guard(Agent::for_user_ns_of(&anon)).await.unwrap();
    assert!(found.pid() == pid || found.pid() == second.pid());
    // Without a name directory, a name is refused.
    let err = guard(second.new_netns(Some(&name))).await.unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EINVAL), "{err}");
    guard(second.close()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_removes_its_names_when_it_exits() {
    testkit::require_root();
    let dir = Dir::new("b");
    let agent = guard(Agent::start_user(
        UserNamespace::New,
        Some(&dir.0),
        AgentOptions::new(),
    ))
    .await
    .unwrap();
    guard(agent.new_netns(Some(&"gone".parse().unwrap())))
        .await
        .unwrap();
    assert!(dir.0.join("gone").exists());
    assert!(guard(agent.close()).await.unwrap().success());
    assert!(std::fs::symlink_metadata(dir.0.join("gone")).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_detached_agent_stays_while_it_holds_names() {
    testkit::require_root();
    let dir = Dir::new("c");
    let opts = AgentOptions::new().detach_names(true);
    let agent = guard(Agent::start_user(UserNamespace::New, Some(&dir.0), opts))
        .await
        .unwrap();
    let pid = agent.pid();
    guard(agent.new_netns(Some(&"kept".parse().unwrap())))
        .await
        .unwrap();
    // The connection ends; the agent stays, and so does the name.
    let closing = tokio::spawn(agent.close());
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    let kept = dir.0.join("kept");
    NetNs::open(&kept).unwrap();
    // Removing the last name ends it; we reap it.
    std::fs::remove_file(&kept).unwrap();
    let status = guard(closing).await.unwrap().unwrap();
    assert!(status.success(), "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_agent_makes_sockets_and_programs_in_another_namespace() {
    let (_home, agent) = common::ns_and_agent().await;
    let other = common::anon_ns().await;
    let fds = std::fs::read_dir(format!("/proc/{}/fd", agent.pid()))
        .unwrap()
        .count();
    guard(agent.open_socket_in(&other, libc::AF_INET, libc::SOCK_STREAM, 0))
        .await
        .unwrap();
    let mut child = guard(
        agent.spawn(
            SpawnRequest::new("/bin/sh")
                .args(["-c", "readlink /proc/self/ns/net"])
                .netns(&other)
                .stdout(AgentStdio::Pipe),
        ),
    )
    .await
    .unwrap();
    let out = links_of(child.take_stdout().unwrap());
    assert!(guard(child.wait()).await.unwrap().success());
    assert_eq!(out.trim(), format!("net:[{}]", other.id().ino));
    // The agent went back home: its own namespace is unchanged, and it
    // keeps one more fd (home) than before, whatever the requests.
    let home = std::fs::read_link(format!("/proc/{}/ns/net", agent.pid())).unwrap();
    assert_eq!(home, PathBuf::from(format!("net:[{}]", _home.id().ino)));
    // (Request fds close just after the answer: look until they have.)
    for _ in 0..3 {
        guard(agent.open_socket_in(&other, libc::AF_INET, libc::SOCK_STREAM, 0))
            .await
            .unwrap();
    }
    let pid = agent.pid();
    let count = || {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .count()
    };
    eventually("the agent keeps only its home fd more", || {
        count() == fds + 1
    })
    .await;
}

/// `NameNetNs`: a namespace the client opened (of another user namespace,
/// here the host's) held and named, as `ip netns attach` would; a taken
/// name and an agent without a name directory are refused, holding
/// nothing; removing the name releases it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_a_namespace_the_client_opened() {
    testkit::require_root();
    let dir = Dir::new("attach");
    let agent = guard(Agent::start_user(
        UserNamespace::New,
        Some(&dir.0),
        AgentOptions::new(),
    ))
    .await
    .unwrap();
    let pid = agent.pid();
    let here = NetNs::current_thread().unwrap();
    let name: NsName = "here".parse().unwrap();
    guard(agent.name_netns(&here, &name)).await.unwrap();
    let link = dir.0.join("here");
    assert_eq!(NetNs::open(&link).unwrap(), here);
    assert_eq!(held(pid), 1);
    let err = guard(agent.name_netns(&here, &name)).await.unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EEXIST), "{err}");
    assert_eq!(held(pid), 1);
    std::fs::remove_file(&link).unwrap();
    eventually("the name released", || held(pid) == 0).await;

    // An agent without a name directory names nothing.
    let plain = guard(Agent::start_user(
        UserNamespace::New,
        None,
        AgentOptions::new(),
    ))
    .await
    .unwrap();
    let err = guard(plain.name_netns(&here, &name)).await.unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EINVAL), "{err}");
    assert_eq!(held(plain.pid()), 0);
    assert_eq!(std::fs::read_dir(&dir.0).unwrap().count(), 0);
}
