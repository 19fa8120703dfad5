//! The agent process: start/stop, sockets, spawned programs, exec-mode mounts,
//! and what happens when the agent or the application dies.
//!
//! Every test runs as root in the sandbox of `scripts/sandbox` (private
//! /run/netns and /etc/netns). Each test binary only calls `Agent::start`: that
//! the agent runs at all proves the init hook was linked into it.
#![allow(unsafe_code)]

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

mod common;

use common::{anon_ns, ns_and_agent};
use nsfs::{NetNs, NsName, OpenMode, RunDir};
use nsproxy::proto::Step;
use nsproxy::{Agent, AgentOptions, AgentStdio, Error, SpawnRequest};
use testkit::{GUARD, children_of, guard, require_root};

/// `sleep 100` in the agent's namespace, killed when its `AgentChild` is dropped.
async fn spawn_sleeper(agent: &Agent) -> nsproxy::AgentChild {
    guard(
        agent.spawn(
            SpawnRequest::new("/bin/sleep")
                .arg("100")
                .kill_on_drop(true),
        ),
    )
    .await
    .unwrap()
}

/// Asserts that `err` is the agent's failure at `step`, with errno `errno`.
fn assert_remote(err: &Error, step: Step, errno: i32) {
    assert!(
        matches!(err, Error::Remote { step: s, .. } if *s == step),
        "{err}"
    );
    assert_eq!(err.raw_os_error(), Some(errno));
}

/// The stdout of `sh -c SCRIPT` run by `agent`, which must succeed.
async fn sh_output(agent: &Agent, script: &str) -> String {
    let req = SpawnRequest::new("/bin/sh")
        .args(["-c", script])
        .stdout(AgentStdio::Pipe);
    let mut child = guard(agent.spawn(req)).await.unwrap();
    let out = read_all(child.take_stdout().unwrap());
    assert!(guard(child.wait()).await.unwrap().success());
    out
}

fn read_all(fd: OwnedFd) -> String {
    let mut s = String::new();
    std::fs::File::from(fd).read_to_string(&mut s).unwrap();
    s
}

fn netns_of_pid(pid: i32) -> nsfs::NsId {
    NetNs::from_pid(pid).unwrap().id()
}

/// `SO_NETNS_COOKIE` of a socket: which namespace it belongs to.
fn netns_cookie(fd: &OwnedFd) -> u64 {
    let mut cookie = 0u64;
    let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
    // SAFETY: cookie and len are valid out-parameters of the right size.
    let ret = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            71, // SO_NETNS_COOKIE
            (&mut cookie as *mut u64).cast(),
            &mut len,
        )
    };
    assert_eq!(
        ret,
        0,
        "getsockopt(SO_NETNS_COOKIE): {}",
        std::io::Error::last_os_error()
    );
    cookie
}

fn is_dead(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // A zombie is dead; it only waits for its (new) parent to reap it.
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z')),
    }
}

async fn wait_dead(pid: i32) {
    let start = Instant::now();
    while !is_dead(pid) {
        assert!(
            start.elapsed() < GUARD,
            "hang guard: process {pid} still alive"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_enters_namespace_and_close_reaps() {
    let (ns, agent) = ns_and_agent().await;
    let pid = agent.pid();
    assert!(pid > 0);
    assert_eq!(
        netns_of_pid(pid),
        ns.id(),
        "the agent runs inside the namespace"
    );
    assert_ne!(netns_of_pid(pid), NetNs::current_thread().unwrap().id());
    // The agent is a re-exec of this binary, not a fork: a fresh process image.
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    assert!(
        cmdline.starts_with(b"nsproxy-agent\0--nsproxy-agent"),
        "{cmdline:?}"
    );
    // It keeps only stdio and its control socket.
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count();
    assert_eq!(fds, 4, "agent fds: stdio + control socket");
    // Signals reset: this process ignores SIGPIPE (Rust does), the agent not;
    // nothing blocked, no handler.
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    for field in ["SigBlk:", "SigIgn:", "SigCgt:"] {
        let line = status.lines().find(|l| l.starts_with(field)).unwrap();
        assert!(
            line.trim_end().ends_with("0000000000000000"),
            "agent {line}"
        );
    }
    let ours = std::fs::read_to_string("/proc/self/status").unwrap();
    assert!(
        !ours.lines().any(|l| l == "SigIgn:\t0000000000000000"),
        "this process ignores SIGPIPE"
    );
    let status = guard(agent.close()).await.unwrap();
    assert!(status.success(), "clean exit on end of file");
    assert!(std::fs::metadata(format!("/proc/{pid}")).is_err(), "reaped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_stops_the_agent() {
    let (_ns, agent) = ns_and_agent().await;
    let pid = agent.pid();
    drop(agent);
    wait_dead(pid).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_socket_belongs_to_the_namespace() {
    let (ns, agent) = ns_and_agent().await;
    let from_agent = guard(agent.open_socket(libc::AF_INET, libc::SOCK_DGRAM, 0))
        .await
        .unwrap();
    let from_thread = ns
        .run(|| OwnedFd::from(std::net::UdpSocket::bind("127.0.0.1:0").unwrap()))
        .await
        .unwrap();
    let here = OwnedFd::from(std::net::UdpSocket::bind("127.0.0.1:0").unwrap());
    assert_eq!(netns_cookie(&from_agent), netns_cookie(&from_thread));
    assert_ne!(netns_cookie(&from_agent), netns_cookie(&here));
    // Close-on-exec, as every fd we receive.
    let flags = nix::fcntl::fcntl(&from_agent, nix::fcntl::FcntlArg::F_GETFD).unwrap();
    assert_ne!(flags & libc::FD_CLOEXEC, 0);

    let err = guard(agent.open_socket(12345, libc::SOCK_DGRAM, 0))
        .await
        .unwrap_err();
    assert_remote(&err, Step::Socket, libc::EAFNOSUPPORT);
    // The agent survives a failed request.
    guard(agent.open_socket(libc::AF_INET6, libc::SOCK_STREAM, 0))
        .await
        .unwrap();
    assert!(guard(agent.close()).await.unwrap().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawn_with_pipes_and_exit_status() {
    let (ns, agent) = ns_and_agent().await;
    let req = SpawnRequest::new("sh")
        .args([
            "-c",
            "read line; echo \"got $line in $PWD $FOO\"; echo oops >&2; exit 3",
        ])
        .env("PATH", "/usr/bin:/bin")
        .env("FOO", "bar")
        .current_dir("/tmp")
        .stdin(AgentStdio::Pipe)
        .stdout(AgentStdio::Pipe)
        .stderr(AgentStdio::Pipe);
    let mut child = guard(agent.spawn(req)).await.unwrap();
    assert!(child.pid() > 0);
    assert_eq!(netns_of_pid(child.pid()), ns.id());
    let mut stdin = std::fs::File::from(child.take_stdin().unwrap());
    stdin.write_all(b"hello\n").unwrap();
    drop(stdin);
    let out = read_all(child.take_stdout().unwrap());
    let err = read_all(child.take_stderr().unwrap());
    assert_eq!(out, "got hello in /tmp bar\n");
    assert_eq!(err, "oops\n");
    let status = guard(child.wait()).await.unwrap();
    assert_eq!(status.code(), Some(3));
    // wait is repeatable.
    assert_eq!(guard(child.wait()).await.unwrap(), status);
    drop(child);
    assert!(guard(agent.close()).await.unwrap().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawn_with_fd_stdio_arg0_and_process_group() {
    let (_ns, agent) = ns_and_agent().await;
    let (r, w) = nix::unistd::pipe().unwrap();
    let req = SpawnRequest::new("/bin/sh")
        .arg0("custom-name")
        .args(["-c", "echo $0 $(cut -d' ' -f5 /proc/self/stat) $$"])
        .process_group(0)
        .stdout(AgentStdio::Fd(w));
    let mut child = guard(agent.spawn(req)).await.unwrap();
    let out = read_all(r);
    let status = guard(child.wait()).await.unwrap();
    assert!(status.success());
    let fields: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(fields[0], "custom-name");
    // Process group 0: a new group led by the child (pgid == pid of the shell;
    // $(...) runs in a subshell whose stat shows the group).
    assert_eq!(fields[1], fields[2], "pgid is the child's pid: {out}");
    drop(child);
    guard(agent.close()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawn_missing_or_non_executable_fails_promptly() {
    let (_ns, agent) = ns_and_agent().await;
    let err = guard(agent.spawn(SpawnRequest::new("/no/such/program")))
        .await
        .unwrap_err();
    match &err {
        Error::Remote {
            step: Step::Exec,
            detail,
            ..
        } => assert_eq!(detail, "/no/such/program"),
        other => panic!("unexpected error {other}"),
    }
    assert_eq!(err.raw_os_error(), Some(libc::ENOENT));
    // A name not in the (empty) PATH.
    let err = guard(agent.spawn(SpawnRequest::new("no-such-program-xyz").env("PATH", "/bin")))
        .await
        .unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOENT), "{err}");
    // A file that is not executable.
    let file = std::env::temp_dir().join(format!("nsproxy-noexec-{}", std::process::id()));
    std::fs::write(&file, "#!/bin/sh\n").unwrap();
    let err = guard(agent.spawn(SpawnRequest::new(&file)))
        .await
        .unwrap_err();
    std::fs::remove_file(&file).unwrap();
    assert_eq!(err.raw_os_error(), Some(libc::EACCES), "{err}");
    // Bad input never reaches the agent.
    let err = guard(agent.spawn(SpawnRequest::new("/bin/true").arg("a\0b")))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err}");
    // And the agent still works.
    let mut child = guard(agent.spawn(SpawnRequest::new("/bin/true")))
        .await
        .unwrap();
    assert!(guard(child.wait()).await.unwrap().success());
    drop(child);
    guard(agent.close()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_through_pidfd_and_kill_on_drop() {
    let (_ns, agent) = ns_and_agent().await;
    let mut child = guard(agent.spawn(SpawnRequest::new("/bin/sleep").arg("100")))
        .await
        .unwrap();
    assert_eq!(child.try_wait().unwrap(), None);
    child.signal(libc::SIGTERM).unwrap();
    let status = guard(child.wait()).await.unwrap();
    assert_eq!(status.signal(), Some(libc::SIGTERM));
    let err = child.signal(libc::SIGTERM).unwrap_err();
    assert_eq!(
        err.raw_os_error(),
        Some(libc::ESRCH),
        "reaped: the pidfd refuses"
    );
    drop(child);

    let child = spawn_sleeper(&agent).await;
    let pid = child.pid();
    drop(child);
    wait_dead(pid).await;

    // Without kill_on_drop, the program outlives its AgentChild and the agent.
    let child = guard(agent.spawn(SpawnRequest::new("/bin/sleep").arg("100")))
        .await
        .unwrap();
    let pid = child.pid();
    drop(child);
    guard(agent.close()).await.unwrap();
    assert!(
        !is_dead(pid),
        "a program without kill_on_drop keeps running"
    );
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL).unwrap();
    wait_dead(pid).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_the_agent_kills_kill_on_drop_children() {
    let (_ns, agent) = ns_and_agent().await;
    let mut child = spawn_sleeper(&agent).await;
    let pid = child.pid();
    guard(agent.close()).await.unwrap();
    wait_dead(pid).await;
    let err = guard(child.wait()).await.unwrap_err();
    assert!(matches!(err, Error::AgentGone { .. }), "{err}");
}

/// A named namespace in the sandbox's private run directory, removed on drop.
struct Named {
    name: NsName,
    ns: NetNs,
}

impl Named {
    async fn new(tag: &str) -> Named {
        require_root();
        let name = NsName::new(format!("nsproxy-{tag}-{}", std::process::id())).unwrap();
        let ns = RunDir::default()
            .create(&name, OpenMode::CreateExclusive)
            .await
            .unwrap();
        Named { name, ns }
    }
}

impl Drop for Named {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(format!("/etc/netns/{}", self.name.as_str()));
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap()
                .block_on(RunDir::default().remove(&name))
        })
        .join();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_mounts_show_the_namespace_sys_and_etc() {
    let named = Named::new("exec").await;
    assert!(
        std::path::Path::new("/etc/resolv.conf").exists(),
        "this test needs /etc/resolv.conf to bind over"
    );
    let etc = format!("/etc/netns/{}", named.name.as_str());
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::write(format!("{etc}/resolv.conf"), "nameserver 192.0.2.53\n").unwrap();
    // A link only this namespace has.
    let link = format!("nsp{}", std::process::id() % 100000);
    let st = std::process::Command::new("ip")
        .args([
            "-n",
            named.name.as_str(),
            "link",
            "add",
            &link,
            "type",
            "bridge",
        ])
        .status()
        .unwrap();
    assert!(st.success(), "ip link add in the namespace");

    let opts = AgentOptions::new().exec_mounts(Some(named.name.clone()));
    let agent = guard(Agent::start(&named.ns, opts)).await.unwrap();
    let out = sh_output(&agent, "ls /sys/class/net; cat /etc/resolv.conf").await;
    let mut lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.pop(), Some("nameserver 192.0.2.53"), "{out}");
    lines.sort();
    let mut want = vec![link.as_str(), "lo"];
    want.sort();
    assert_eq!(lines, want, "/sys/class/net shows the namespace's devices");
    // The application's own view is unchanged.
    assert!(!std::path::Path::new(&format!("/sys/class/net/{link}")).exists());
    assert_ne!(
        std::fs::read_to_string("/etc/resolv.conf").unwrap(),
        "nameserver 192.0.2.53\n"
    );
    guard(agent.close()).await.unwrap();

    // Without exec mounts, /sys is the application's.
    let agent = guard(Agent::start(&named.ns, AgentOptions::new()))
        .await
        .unwrap();
    let req = SpawnRequest::new("/bin/ls")
        .arg(format!("/sys/class/net/{link}"))
        .stderr(AgentStdio::Null);
    let mut child = guard(agent.spawn(req)).await.unwrap();
    assert!(!guard(child.wait()).await.unwrap().success());
    drop(child);
    guard(agent.close()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_namespace_is_entered() {
    require_root();
    // A user namespace owning a network namespace, as a rootless container has.
    let mut holder = std::process::Command::new("unshare")
        .args(["-U", "-n", "--map-root-user", "sleep", "100"])
        .spawn()
        .unwrap();
    let pid = holder.id() as i32;
    // Wait until unshare has exec'd sleep inside its new namespaces.
    let start = Instant::now();
    while std::fs::read_link(format!("/proc/{pid}/ns/user")).unwrap()
        == std::fs::read_link("/proc/self/ns/user").unwrap()
        || std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .unwrap()
            .trim()
            != "sleep"
    {
        assert!(start.elapsed() < GUARD, "hang guard: unshare never started");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let userns: OwnedFd = std::fs::File::open(format!("/proc/{pid}/ns/user"))
        .unwrap()
        .into();
    let netns = NetNs::from_pid(pid).unwrap();
    let agent = guard(Agent::start(
        &netns,
        AgentOptions::new().user_namespace(userns),
    ))
    .await;
    let result = async move {
        let agent = agent.unwrap();
        let apid = agent.pid();
        assert_eq!(
            std::fs::read_link(format!("/proc/{apid}/ns/user")).unwrap(),
            std::fs::read_link(format!("/proc/{pid}/ns/user")).unwrap(),
            "the agent is in the user namespace"
        );
        assert_eq!(netns_of_pid(apid), netns.id());
        // Inside, the agent is root of the user namespace and can make sockets.
        let out = sh_output(&agent, "id -u").await;
        assert_eq!(out.trim(), "0");
        guard(agent.open_socket(libc::AF_NETLINK, libc::SOCK_RAW, 0))
            .await
            .unwrap();
        guard(agent.close()).await.unwrap();

        // Exec mode inside the user namespace: its own sysfs on /sys.
        let userns: OwnedFd = std::fs::File::open(format!("/proc/{pid}/ns/user"))
            .unwrap()
            .into();
        let opts = AgentOptions::new()
            .user_namespace(userns)
            .exec_mounts(Some(NsName::new(format!("nsproxy-userns-{pid}")).unwrap()));
        let agent = guard(Agent::start(&netns, opts)).await.unwrap();
        let req = SpawnRequest::new("/bin/ls")
            .arg("/sys/class/net")
            .stdout(AgentStdio::Pipe);
        let mut child = guard(agent.spawn(req)).await.unwrap();
        let out = read_all(child.take_stdout().unwrap());
        assert!(guard(child.wait()).await.unwrap().success());
        assert_eq!(
            out, "lo\n",
            "the user namespace's network namespace has only lo"
        );
        drop(child);
        guard(agent.close()).await.unwrap();
    };
    let outcome = tokio::spawn(result).await;
    holder.kill().unwrap();
    holder.wait().unwrap();
    outcome.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_killed_mid_request_fails_pending_and_a_new_agent_works() {
    let (ns, agent) = ns_and_agent().await;
    let mut child = spawn_sleeper(&agent).await;
    let sleeper = child.pid();
    let waiter = tokio::spawn(async move { child.wait().await });
    tokio::time::sleep(Duration::from_millis(20)).await;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(agent.pid()),
        nix::sys::signal::SIGKILL,
    )
    .unwrap();
    let killed = Instant::now();
    let err = guard(waiter).await.unwrap().unwrap_err();
    let took = killed.elapsed();
    assert!(matches!(err, Error::AgentGone { .. }), "{err}");
    eprintln!("pending wait failed {took:?} after SIGKILL of the agent");
    let err = guard(agent.open_socket(libc::AF_INET, libc::SOCK_DGRAM, 0))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::AgentGone { .. }), "{err}");
    assert!(!agent.is_alive());
    let status = guard(agent.close()).await.unwrap();
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    // The orphaned program was not killed (the agent could not), clean it up.
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(sleeper),
        nix::sys::signal::SIGKILL,
    );
    wait_dead(sleeper).await;

    let agent = guard(Agent::start(&ns, AgentOptions::new())).await.unwrap();
    guard(agent.open_socket(libc::AF_INET, libc::SOCK_DGRAM, 0))
        .await
        .unwrap();
    guard(agent.close()).await.unwrap();
}

/// Run by `application_killed_takes_its_agents_along` in a child process:
/// starts agents, prints their pids, then waits to be killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "helper process of application_killed_takes_its_agents_along"]
async fn helper_start_agents_and_wait() {
    let ns = anon_ns().await;
    let mut agents = Vec::new();
    for _ in 0..3 {
        agents.push(Agent::start(&ns, AgentOptions::new()).await.unwrap());
    }
    let pids: Vec<i32> = agents.iter().map(Agent::pid).collect();
    print_pids_and_wait("AGENTS", &pids).await
}

/// In a helper process: prints `tag` and `pids` on one line for the test
/// that runs it, then waits to be killed.
async fn print_pids_and_wait(tag: &str, pids: &[i32]) -> ! {
    let pids: Vec<String> = pids.iter().map(i32::to_string).collect();
    println!("{tag} {}", pids.join(" "));
    std::io::stdout().flush().unwrap();
    tokio::time::sleep(Duration::from_secs(100)).await;
    panic!("helper was not killed");
}

/// Runs the ignored test `helper` of this binary in a child process (a real
/// application) and returns it with the pids it printed after `tag`.
async fn run_helper(helper: &str, tag: &str) -> (std::process::Child, Vec<i32>) {
    require_root();
    let exe = std::env::current_exe().unwrap();
    let mut app = std::process::Command::new(exe)
        .args([
            "--exact",
            helper,
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = app.stdout.take().unwrap();
    let tag = format!("{tag} ");
    let line = tokio::task::spawn_blocking(move || {
        use std::io::BufRead;
        std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find_map(|l| l.split_once(&tag).map(|(_, pids)| pids.to_string()))
    });
    let line = guard(line)
        .await
        .unwrap()
        .expect("the helper printed its pids");
    let pids = line
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    (app, pids)
}

/// Runs `helper` (see [`run_helper`]), checks that the `n` processes it
/// printed after `tag` run, SIGKILLs it and waits for each of them to die;
/// returns when the kill was.
async fn kill_helper_and_wait_for_its_pids(helper: &str, tag: &str, n: usize) -> Instant {
    let (mut app, pids) = run_helper(helper, tag).await;
    assert_eq!(pids.len(), n);
    for pid in &pids {
        assert!(!is_dead(*pid), "process {pid} runs before the kill");
    }
    app.kill().unwrap();
    app.wait().unwrap();
    let killed = Instant::now();
    for pid in &pids {
        wait_dead(*pid).await;
    }
    killed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn application_killed_takes_its_agents_along() {
    let killed =
        kill_helper_and_wait_for_its_pids("helper_start_agents_and_wait", "AGENTS", 3).await;
    eprintln!(
        "all agents dead {:?} after SIGKILL of the application",
        killed.elapsed()
    );
}

/// Run by `application_killed_takes_kill_on_drop_children_along` in a child
/// process: spawns a `kill_on_drop` program through an agent (with and
/// without `ip netns exec` mounts), prints the agents' and programs' pids,
/// then waits to be killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "helper process of application_killed_takes_kill_on_drop_children_along"]
async fn helper_spawn_kill_on_drop_and_wait() {
    let ns = anon_ns().await;
    let plain = Agent::start(&ns, AgentOptions::new()).await.unwrap();
    let name = NsName::new("pdeathsig").unwrap();
    let exec = Agent::start(&ns, AgentOptions::new().exec_mounts(Some(name)))
        .await
        .unwrap();
    let a = spawn_sleeper(&plain).await;
    let b = spawn_sleeper(&exec).await;
    print_pids_and_wait("PIDS", &[plain.pid(), exec.pid(), a.pid(), b.pid()]).await
}

/// Regression: after SIGKILL of the application its agents died, but their
/// `kill_on_drop` children lived on (the agent's own cleanup never ran). They
/// now have `PR_SET_PDEATHSIG` tied to the agent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn application_killed_takes_kill_on_drop_children_along() {
    kill_helper_and_wait_for_its_pids("helper_spawn_kill_on_drop_and_wait", "PIDS", 4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_is_this_binary_run_again() {
    let (_ns, agent) = ns_and_agent().await;
    // This test binary only calls Agent::start: the init hook was linked in.
    let exe = std::fs::read_link(format!("/proc/{}/exe", agent.pid())).unwrap();
    assert_eq!(exe, std::fs::read_link("/proc/self/exe").unwrap());
    let environ = std::fs::read(format!("/proc/{}/environ", agent.pid())).unwrap();
    let environ: Vec<&[u8]> = environ
        .split(|b| *b == 0)
        .filter(|e| !e.is_empty())
        .collect();
    assert!(
        environ
            .iter()
            .all(|e| e.starts_with(b"NSPROXY_AGENT") || e.starts_with(b"LD_LIBRARY_PATH="))
    );
    guard(agent.close()).await.unwrap();
}

#[test]
fn the_marker_alone_does_not_make_an_agent() {
    // The variable without the agent argument: main runs as usual.
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .arg("--list")
        .env("NSPROXY_AGENT", "1")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("the_marker_alone_does_not_make_an_agent")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_handshake_names_the_step() {
    let ns = anon_ns().await;
    // Not a user namespace: setns(CLONE_NEWUSER) refuses it.
    let not_userns: OwnedFd = std::fs::File::open("/proc/self/ns/net").unwrap().into();
    let err = guard(Agent::start(
        &ns,
        AgentOptions::new().user_namespace(not_userns),
    ))
    .await
    .unwrap_err();
    assert_remote(&err, Step::SetnsUser, libc::EINVAL);
}

/// Run under strace by `no_process_is_forked`: starts an agent, spawns a
/// program through it, stops it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "helper process of no_process_is_forked"]
async fn helper_start_spawn_close() {
    let ns = anon_ns().await;
    let agent = Agent::start(&ns, AgentOptions::new()).await.unwrap();
    let mut child = agent.spawn(SpawnRequest::new("/bin/true")).await.unwrap();
    assert!(child.wait().await.unwrap().success());
    drop(child);
    agent.close().await.unwrap();
}

#[test]
fn no_process_is_forked() {
    require_root();
    // Every process made, by the application or by the agent, is made with
    // CLONE_VM|CLONE_VFORK (posix_spawn): nothing copies a process image.
    let log = std::env::temp_dir().join(format!("nsproxy-strace-{}", std::process::id()));
    let status = std::process::Command::new("strace")
        .args(["-f", "-qq", "-e", "trace=clone,clone3,fork,vfork", "-o"])
        .arg(&log)
        .arg(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "helper_start_spawn_close",
            "--ignored",
            "--test-threads=1",
        ])
        .stdout(std::process::Stdio::null())
        .status()
        .expect("this test needs strace (apt-get install strace) to see how processes are made");
    let trace = std::fs::read_to_string(&log).unwrap();
    std::fs::remove_file(&log).unwrap();
    assert!(status.success(), "helper failed under strace: {trace}");
    let processes: Vec<&str> = trace
        .lines()
        .filter(|l| l.contains("flags=") && !l.contains("CLONE_THREAD"))
        .collect();
    assert!(
        processes.len() >= 2,
        "the agent and its program were made: {trace}"
    );
    for line in processes {
        assert!(
            line.contains("CLONE_VM") && line.contains("CLONE_VFORK"),
            "a process was forked: {line}"
        );
    }
    assert!(!trace.lines().any(|l| l.contains("fork(")), "{trace}");
}

/// Regression: a request frame larger than the socket's default send buffer
/// (about 208 KiB here) but within `MAX_FRAME` failed with `EMSGSIZE`; the
/// control socket's buffers now hold a whole `MAX_FRAME`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_near_max_frame_goes_through() {
    let (_ns, agent) = ns_and_agent().await;
    // Two arguments of 110 KiB (execve takes at most 128 KiB per string).
    let big = "x".repeat(110 * 1024);
    let req = SpawnRequest::new("/bin/sh")
        .args(["-c", "exit $(( ${#1} + ${#2} == 225280 ? 7 : 1 ))", "sh"])
        .args([&big, &big]);
    let mut child = guard(agent.spawn(req)).await.unwrap();
    let status = guard(child.wait()).await.unwrap();
    assert_eq!(status.code(), Some(7));
    drop(child);
    assert!(guard(agent.close()).await.unwrap().success());
}

/// Regression: a `kill_on_drop` spawn dropped before its answer came left the
/// program running until the agent exited (for ever, with an agent kept for
/// reuse). It is now killed when the answer comes, or at once if the answer
/// is already there, as a dropped `AgentChild` would be.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_kill_on_drop_spawn_kills_its_program() {
    let (_ns, agent) = ns_and_agent().await;
    // Dropped before the answer comes, and after it came but was not read.
    for settle in [Duration::ZERO, Duration::from_millis(300)] {
        let req = SpawnRequest::new("/bin/sleep")
            .arg("1000")
            .kill_on_drop(true);
        let mut spawn = Box::pin(agent.spawn(req));
        // One poll sends the request. Starting a program takes longer than
        // that, so the answer is almost always not there yet (the case under
        // test); on a loaded machine it can be, and then dropping the
        // finished child must kill the program just the same.
        let first = futures::poll!(spawn.as_mut());
        tokio::time::sleep(settle).await;
        drop(first);
        drop(spawn);
        // The agent answers in order: once this answer is here, the spawn's
        // has been handled too.
        let sock = guard(agent.open_socket(libc::AF_INET, libc::SOCK_DGRAM, 0))
            .await
            .unwrap();
        drop(sock);
        let start = Instant::now();
        while !children_of(agent.pid()).is_empty() {
            assert!(
                start.elapsed() < GUARD,
                "the program of a dropped kill_on_drop spawn (settle {settle:?}) still runs"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    assert!(agent.is_alive());
    assert!(guard(agent.close()).await.unwrap().success());
}
