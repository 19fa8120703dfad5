//! Rootless mode, for real: each scenario runs as uid 65534 (this test
//! binary run again under `setpriv`, with a private `XDG_RUNTIME_DIR`), in
//! network namespaces owned by a user namespace it made.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use futures::TryStreamExt;
use netns::{Handle, OpenMode, UserNs, UserNsTarget};

fn unprivileged(name: &str) {
    testkit::run_unprivileged(name, &[]);
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// What the inner scenarios check first: they really run unprivileged.
fn assert_unprivileged() {
    assert_eq!(nix::unistd::geteuid().as_raw(), testkit::UNPRIVILEGED);
    assert!(!nsfs::privileged());
    assert!(netns::rootless());
    let dir = nsfs::RunDir::default();
    let private = std::env::var(testkit::UNPRIVILEGED_DIR).unwrap();
    assert!(dir.path().starts_with(&private), "{}", dir.path().display());
}

async fn link_names(h: &Handle) -> Vec<String> {
    use netlink_packet_route::link::LinkAttribute;
    let mut names: Vec<String> = h
        .rtnetlink()
        .link()
        .get()
        .execute()
        .try_collect::<Vec<_>>()
        .await
        .unwrap()
        .into_iter()
        .filter_map(|m| {
            m.attributes.into_iter().find_map(|a| match a {
                LinkAttribute::IfName(n) => Some(n),
                _ => None,
            })
        })
        .collect();
    names.sort();
    names
}

async fn up(h: &Handle, link: &str) {
    let idx = h.link_index(link).await.unwrap();
    h.rtnetlink()
        .link()
        .set(rtnetlink::LinkUnspec::new_with_index(idx).up().build())
        .execute()
        .await
        .unwrap();
}

async fn address(h: &Handle, link: &str, ip: Ipv4Addr) {
    let idx = h.link_index(link).await.unwrap();
    h.rtnetlink()
        .address()
        .add(idx, IpAddr::V4(ip), 24)
        .execute()
        .await
        .unwrap();
}

#[test]
fn veth_pair_udp_and_spawn_as_nobody() {
    unprivileged("inner_veth_pair_udp_and_spawn");
}

#[test]
#[ignore = "run as uid 65534 by veth_pair_udp_and_spawn_as_nobody"]
fn inner_veth_pair_udp_and_spawn() {
    assert_unprivileged();
    rt().block_on(async {
        let a = Handle::open("ra", OpenMode::CreateExclusive).await.unwrap();
        let b = Handle::open("rb", OpenMode::CreateExclusive).await.unwrap();
        // Both owned by a user namespace of ours, not the initial one.
        assert_eq!(a.netns().owner_uid().unwrap(), testkit::UNPRIVILEGED);
        // `lo` up through the netlink socket the agent made and handed back.
        up(&a, "lo").await;
        up(&b, "lo").await;
        // Events from inside, on a socket the agent made.
        let mut events = b.events(&[netns::MulticastGroup::Link]).await.unwrap();
        // A veth pair, the peer moved into the other namespace by name.
        a.add_veth("va", "vb").execute().await.unwrap();
        a.move_link("vb", "rb").execute().await.unwrap();
        assert_eq!(link_names(&a).await, ["lo", "va"]);
        assert_eq!(link_names(&b).await, ["lo", "vb"]);
        let event = testkit::guard(futures::StreamExt::next(&mut events)).await;
        assert!(
            matches!(event, Some(Ok(netns::Event::Message(_)))),
            "{event:?}"
        );
        drop(events);
        address(&a, "va", Ipv4Addr::new(10, 9, 0, 1)).await;
        address(&b, "vb", Ipv4Addr::new(10, 9, 0, 2)).await;
        up(&a, "va").await;
        up(&b, "vb").await;

        // UDP across the pair, from sockets opened in each namespace.
        let rx = b
            .udp_bind(SocketAddr::from(([10, 9, 0, 2], 5000)))
            .await
            .unwrap();
        let tx = a
            .udp_bind(SocketAddr::from(([10, 9, 0, 1], 0)))
            .await
            .unwrap();
        // The link may take a moment to be up (carrier): retry the send.
        let mut buf = [0u8; 16];
        let start = std::time::Instant::now();
        let got = loop {
            tx.send_to(b"ping", "10.9.0.2:5000").await.unwrap();
            if let Ok(r) =
                tokio::time::timeout(Duration::from_millis(200), rx.recv_from(&mut buf)).await
            {
                break r.unwrap();
            }
            assert!(
                start.elapsed() < testkit::GUARD,
                "hang guard: UDP across the pair"
            );
        };
        assert_eq!(&buf[..got.0], b"ping");
        assert_eq!(
            got.1,
            SocketAddr::from(([10, 9, 0, 1], tx.local_addr().unwrap().port()))
        );

        // TCP too.
        let listener = b
            .tcp_listener(SocketAddr::from(([10, 9, 0, 2], 5001)))
            .await
            .unwrap();
        let (conn, accepted) = tokio::join!(
            a.tcp_connect(SocketAddr::from(([10, 9, 0, 2], 5001))),
            listener.accept()
        );
        conn.unwrap();
        accepted.unwrap();

        // A program spawned inside reads its own links, on both paths.
        for mode in [nsproc::ExecMode::Fast, nsproc::ExecMode::IpNetnsExec] {
            let out = nsproc::Command::new("ip")
                .args(["-o", "link", "show"])
                .netns("rb")
                .exec_mode(mode)
                .output()
                .await
                .unwrap();
            assert!(out.status.success(), "{mode:?}: {out:?}");
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(text.contains("vb@"), "{mode:?}: {text}");
            assert!(!text.contains("va@"), "{mode:?}: {text}");
        }

        // A second process of the same user opens the namespace by name.
        let exe = std::env::current_exe().unwrap();
        let out = std::process::Command::new(exe)
            .args([
                "inner_second_process",
                "--exact",
                "--ignored",
                "--nocapture",
            ])
            .env("ROOTLESS_NAME", "rb")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );

        let dir = nsfs::RunDir::default();
        for n in ["ra", "rb"] {
            dir.remove(&n.parse().unwrap()).await.unwrap();
        }
        assert!(dir.list().unwrap().is_empty());
    });
}

#[test]
#[ignore = "run by inner_veth_pair_udp_and_spawn, as a second process"]
fn inner_second_process() {
    assert_unprivileged();
    let name = std::env::var("ROOTLESS_NAME").unwrap();
    rt().block_on(async {
        let h = Handle::open(name.as_str(), OpenMode::OpenOnly)
            .await
            .unwrap();
        assert_eq!(link_names(&h).await, ["lo", "vb"]);
        let listed: Vec<String> = nsfs::RunDir::default()
            .list()
            .unwrap()
            .into_iter()
            .map(|e| e.name.to_string())
            .collect();
        assert!(listed.contains(&name), "{listed:?}");
    });
}

#[test]
fn bad_input_as_nobody() {
    unprivileged("inner_bad_input");
}

#[test]
#[ignore = "run as uid 65534 by bad_input_as_nobody"]
fn inner_bad_input() {
    assert_unprivileged();
    rt().block_on(async {
        let dir = nsfs::RunDir::default();
        let me = std::process::id() as i32;
        let before = testkit::children_of(me);
        // A pid that has exited.
        let err = UserNs::join(UserNsTarget::Pid(i32::MAX)).await.unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ESRCH), "{err}");
        // A path that is not a namespace.
        let err = UserNs::join(UserNsTarget::Path("/etc/hostname".into()))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                netns::Error::Namespace(nsfs::Error::NotNamespace { .. })
            ),
            "{err}"
        );
        // A namespace, but not a user namespace.
        let err = UserNs::join(UserNsTarget::Path("/proc/self/ns/net".into()))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                netns::Error::Namespace(nsfs::Error::WrongNamespaceType { .. })
            ),
            "{err}"
        );
        // A user namespace the agent may not enter: the initial one, which
        // it is already in (the kernel says EINVAL).
        let err = UserNs::join(UserNsTarget::Path("/proc/self/ns/user".into()))
            .await
            .unwrap_err();
        assert!(matches!(err, netns::Error::Rootless { .. }), "{err}");
        assert_eq!(err.raw_os_error(), Some(libc::EINVAL), "{err}");
        // One of another user (root's): not even opened.
        let err = UserNs::join(UserNsTarget::Pid(1)).await.unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EACCES), "{err}");
        // A namespace of another user (root's).
        let err = Handle::open(1, OpenMode::OpenOnly).await.unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EACCES), "{err}");
        // A name that does not exist, opened only.
        let err = Handle::open("nope", OpenMode::OpenOnly).await.unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOENT), "{err}");
        // None of the failures left a process (agents that failed are
        // reaped) or a name.
        testkit::eventually("failed agents reaped", || {
            testkit::children_of(me) == before
        })
        .await;
        assert!(dir.list().unwrap().is_empty());
        // Taken name, exclusive.
        let user = UserNs::new().await.unwrap();
        let name: nsfs::NsName = "taken".parse().unwrap();
        user.create(&name).await.unwrap();
        let err = Handle::open("taken", OpenMode::CreateExclusive)
            .await
            .unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EEXIST), "{err}");
        user.remove(&name).await.unwrap();
        // Nothing left: no entry, no process but the one agent kept.
        assert!(dir.list().unwrap().is_empty());
        let after = testkit::children_of(me);
        assert_eq!(after.len(), before.len() + 1, "{before:?} -> {after:?}");
    });
}

/// Fds of process `pid` numbered 1000 or more: the namespaces an agent
/// holds for names.
fn held(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|fd| *fd >= 1000)
        .count()
}

#[test]
fn create_remove_cycles_as_nobody() {
    unprivileged("inner_create_remove_cycles");
}

#[test]
#[ignore = "run as uid 65534 by create_remove_cycles_as_nobody"]
fn inner_create_remove_cycles() {
    assert_unprivileged();
    rt().block_on(async {
        let user = UserNs::new().await.unwrap();
        let fds = testkit::open_fds();
        let name: nsfs::NsName = "cycle".parse().unwrap();
        for _ in 0..1000 {
            let ns = user.create(&name).await.unwrap();
            drop(ns);
            user.remove(&name).await.unwrap();
        }
        assert!(user.run_dir().list().unwrap().is_empty());
        assert_eq!(testkit::open_fds(), fds);
        let pid = user.agent().pid();
        testkit::eventually("the agent lets the namespaces go", || held(pid) == 0).await;
    });
}

#[test]
fn disabled_user_namespaces_as_nobody() {
    unprivileged("inner_disabled_user_namespaces");
}

#[test]
#[ignore = "run as uid 65534 by disabled_user_namespaces_as_nobody"]
fn inner_disabled_user_namespaces() {
    assert_unprivileged();
    rt().block_on(async {
        // Make the condition for real: a user namespace of ours, where this
        // test binary runs again as its root and sets that namespace's own
        // `user.max_user_namespaces` to 0.
        let user = UserNs::new().await.unwrap();
        let ns = user.create_anonymous().await.unwrap();
        let exe = std::env::current_exe().unwrap();
        let out = nsproc::Command::new(exe)
            .args([
                "inner_disabled_inside",
                "--exact",
                "--ignored",
                "--nocapture",
            ])
            .netns(ns)
            .output()
            .await
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success() && text.contains("1 passed"), "{text}");
    });
}

#[test]
#[ignore = "run inside a user namespace by inner_disabled_user_namespaces"]
fn inner_disabled_inside() {
    // Root of a user namespace owned by uid 65534 (privileged there, not
    // on the host).
    assert_eq!(nix::unistd::geteuid().as_raw(), 0);
    std::fs::write("/proc/sys/user/max_user_namespaces", "0").unwrap();
    let err = nsfs::user_namespaces_allowed().unwrap_err();
    assert!(
        matches!(err, nsfs::Error::UserNamespacesDisabled { .. }),
        "{err}"
    );
    assert_eq!(err.raw_os_error(), Some(libc::ENOSPC));
    assert!(
        err.to_string().contains("user.max_user_namespaces"),
        "{err}"
    );
    rt().block_on(async {
        let dir = nsfs::RunDir::user().unwrap();
        let before = dir.list().unwrap();
        // Detected before anything is made.
        let err = UserNs::new().await.unwrap_err();
        assert!(
            matches!(
                err,
                netns::Error::Namespace(nsfs::Error::UserNamespacesDisabled { .. })
            ),
            "{err}"
        );
        // The kernel agrees: an agent asked to make one anyway fails at
        // unshare(CLONE_NEWUSER) with ENOSPC, and is reaped.
        let err = nsproxy::Agent::start_user(
            nsproxy::UserNamespace::New,
            None,
            nsproxy::AgentOptions::new(),
        )
        .await
        .unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENOSPC), "{err}");
        // Nothing left: no name, no process.
        assert_eq!(dir.list().unwrap(), before);
        let me = std::process::id() as i32;
        testkit::eventually("no child left", || testkit::children_of(me).is_empty()).await;
    });
}

#[test]
fn namespaces_of_other_tools_as_nobody() {
    unprivileged("inner_namespaces_of_other_tools");
}

#[test]
#[ignore = "run as uid 65534 by namespaces_of_other_tools_as_nobody"]
fn inner_namespaces_of_other_tools() {
    assert_unprivileged();
    // A namespace made the usual way, `unshare -Urn`, by a process of ours.
    let rt = rt();
    let (mut holder, pid) = rt.block_on(unshare_urn());
    rt.block_on(async {
        // By pid, by path, and by fd: rtnetlink inside through an agent that
        // joined its user namespace; `lo` goes up.
        let h = Handle::open(pid, OpenMode::OpenOnly).await.unwrap();
        up(&h, "lo").await;
        let by_path = format!("/proc/{pid}/ns/net");
        let h2 = Handle::open(by_path.as_str(), OpenMode::OpenOnly)
            .await
            .unwrap();
        assert_eq!(h2.netns(), h.netns());
        let fd = nsfs::NetNs::from_fd(std::fs::File::open(&by_path).unwrap().into()).unwrap();
        let h3 = Handle::open(fd, OpenMode::OpenOnly).await.unwrap();
        assert_eq!(link_names(&h3).await, ["lo"]);
        // The relay transport too.
        let relay = Handle::builder(pid)
            .mode(OpenMode::OpenOnly)
            .transport(netns::Transport::Relay)
            .open()
            .await
            .unwrap();
        assert_eq!(link_names(&relay).await, ["lo"]);
        // Its user namespace joined by pid and by pidfd.
        let by_pid = UserNs::join(UserNsTarget::Pid(pid)).await.unwrap();
        let pidfd = nix::unistd::Pid::from_raw(pid);
        let pidfd = pidfd_open(pidfd.as_raw());
        let by_pidfd = UserNs::join(UserNsTarget::Pidfd(pidfd)).await.unwrap();
        assert_eq!(by_pid.inode(), by_pidfd.inode());
        let anon = by_pid.create_anonymous().await.unwrap();
        assert_eq!(anon.owner_uid().unwrap(), testkit::UNPRIVILEGED);
    });
    holder.kill().unwrap();
    holder.wait().unwrap();
}

/// `unshare -Urn sleep 60`, a process of ours in namespaces of its own,
/// once it runs `sleep` (its namespaces made, its id maps written); its pid.
async fn unshare_urn() -> (std::process::Child, i32) {
    let holder = std::process::Command::new("unshare")
        .args(["-Urn", "sleep", "60"])
        .spawn()
        .unwrap();
    let pid = holder.id() as i32;
    testkit::eventually("unshare made its namespaces and ran sleep", || {
        std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c == "sleep\n")
    })
    .await;
    (holder, pid)
}

#[allow(unsafe_code)]
fn pidfd_open(pid: i32) -> std::os::fd::OwnedFd {
    use std::os::fd::FromRawFd;
    // SAFETY: pidfd_open returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    assert!(fd >= 0, "pidfd_open: {}", std::io::Error::last_os_error());
    // SAFETY: a new fd nothing else owns.
    unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) }
}

#[test]
fn attach_as_nobody() {
    unprivileged("inner_attach");
}

#[test]
#[ignore = "run as uid 65534 by attach_as_nobody"]
fn inner_attach() {
    assert_unprivileged();
    // A namespace of another tool: `unshare -Urn`, a process of ours.
    let rt = rt();
    let (mut holder, pid) = rt.block_on(unshare_urn());
    rt.block_on(async {
        let dir = nsfs::RunDir::default();
        let user = UserNs::new().await.unwrap();
        let agent = user.agent().pid();
        let name: nsfs::NsName = "theirs".parse().unwrap();
        let attached = user.attach(&name, pid).await.unwrap();
        assert_eq!(attached, nsfs::NetNs::from_pid(pid).unwrap());
        // The name opens it, in this process and through a handle (whose
        // rtnetlink works inside: its user namespace is ours too).
        assert_eq!(dir.open(&name).unwrap(), attached);
        let h = Handle::open("theirs", OpenMode::OpenOnly).await.unwrap();
        up(&h, "lo").await;
        assert_eq!(held(agent), 1);
        drop(h);
        // The name outlives the process: the agent holds the namespace.
        holder.kill().unwrap();
        holder.wait().unwrap();
        assert_eq!(dir.open(&name).unwrap(), attached);
        drop(attached);

        // Bad input: typed, and nothing named or held.
        let taken = user.attach(&name, std::process::id() as i32).await;
        let err = taken.unwrap_err();
        assert!(matches!(err, netns::Error::Rootless { .. }), "{err}");
        assert_eq!(err.raw_os_error(), Some(libc::EEXIST), "{err}");
        let other: nsfs::NsName = "other".parse().unwrap();
        let err = user.attach(&other, pid).await.unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ESRCH), "{err}");
        let root = nix::unistd::getppid().as_raw();
        let err = user.attach(&other, root).await.unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EACCES), "{err}");
        let names: Vec<_> = dir.list().unwrap().into_iter().map(|e| e.name).collect();
        assert_eq!(names, std::slice::from_ref(&name));
        assert_eq!(held(agent), 1);

        // By pidfd: a process in our own (host) namespace.
        let mut sleeper = std::process::Command::new("sleep")
            .arg("60")
            .spawn()
            .unwrap();
        let pidfd = pidfd_open(sleeper.id() as i32);
        let ns = nsfs::NetNs::from_pidfd(std::os::fd::AsFd::as_fd(&pidfd)).unwrap();
        user.name_netns(&other, &ns).await.unwrap();
        assert_eq!(
            dir.open(&other).unwrap(),
            nsfs::NetNs::current_thread().unwrap()
        );
        sleeper.kill().unwrap();
        sleeper.wait().unwrap();

        // Removing the names releases them.
        user.remove(&name).await.unwrap();
        user.remove(&other).await.unwrap();
        testkit::eventually("agent let the names go", || held(agent) == 0).await;
        assert!(dir.list().unwrap().is_empty());
    });
}
