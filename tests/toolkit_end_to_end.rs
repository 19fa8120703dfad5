//! The crates used together, the way a service would: namespaces made with
//! `netns`, a program run inside one with `nsproc` changes the network, the
//! `nsdb` view follows it, a link is moved by name, traffic crosses, an
//! `ip netns exec`-style program sees the namespace's own `/sys`, iproute2
//! agrees with all of it; and afterwards nothing is left: no namespace name,
//! no child process, no fd.
//!
//! One test in this binary, so that the fd and process counts are its own.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use netns::nsproc::ExecMode;
use netns::{Handle, NsName, OpenMode, RunDir};
use rtnetlink::LinkUnspec;
use testkit::{ip, open_fds};

/// Processes whose parent is this test process (agents, spawned programs,
/// zombies alike).
fn children() -> Vec<String> {
    let me = std::process::id().to_string();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("read /proc").flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid ...: comm may hold spaces, so split after ')'.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        let state = fields.next().unwrap_or("?");
        if fields.next() == Some(me.as_str()) {
            found.push(format!("{} ({state})", entry.file_name().to_string_lossy()));
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_compose_and_leave_nothing_behind() {
    assert_eq!(
        nix::unistd::geteuid().as_raw(),
        0,
        "this test makes network namespaces: run it as root"
    );
    // Warm up what lives for the whole process (the namespace threads), so
    // that the counts below compare like with like.
    nsfs::Executor::global()
        .unwrap()
        .run_home(|| ())
        .await
        .unwrap();
    let fds_before = open_fds();
    let children_before = children();

    let pid = std::process::id();
    let left = NsName::new(format!("e2e-left-{pid}")).unwrap();
    let right = NsName::new(format!("e2e-right-{pid}")).unwrap();
    let dir = RunDir::default();

    {
        let l = Handle::open(&left, OpenMode::CreateExclusive)
            .await
            .unwrap();
        let r = Handle::open(&right, OpenMode::CreateExclusive)
            .await
            .unwrap();

        // iproute2 sees the namespaces made here.
        let listed = ip(&["netns", "list"]);
        assert!(
            listed.contains(left.as_str()) && listed.contains(right.as_str()),
            "{listed}"
        );

        let view = nsdb::View::builder()
            .namespace(nsdb::Namespace::Named(left.clone()))
            .namespace(nsdb::Namespace::Named(right.clone()))
            .build()
            .await
            .unwrap();

        // A program run inside `left` (fast path) changes its network...
        let status = l
            .command("ip")
            .args([
                "link", "add", "e2e0", "type", "veth", "peer", "name", "e2e1",
            ])
            .status()
            .await
            .unwrap();
        assert!(status.success(), "ip link add inside {left}: {status}");
        // ...and the live view follows it.
        let left_ns = nsdb::Namespace::Named(left.clone());
        let right_ns = nsdb::Namespace::Named(right.clone());
        view.wait_for("veth pair in left", Duration::from_secs(10), |s| {
            s.link(&left_ns, "e2e0").is_some() && s.link(&left_ns, "e2e1").is_some()
        })
        .await
        .unwrap();

        // Move one end by namespace name; the view sees it leave and arrive,
        // and resolves the pair across the two namespaces.
        l.move_link("e2e1", right.as_str()).execute().await.unwrap();
        let snap = view
            .wait_for("e2e1 moved to right", Duration::from_secs(10), |s| {
                s.link(&left_ns, "e2e1").is_none()
                    && s.namespace(&right_ns).is_some_and(|v| {
                        v.link("e2e1")
                            .and_then(|link| v.peer(link))
                            .is_some_and(|p| p.namespace.is_some())
                    })
            })
            .await
            .unwrap();
        let right_view = snap.namespace(&right_ns).unwrap();
        let moved = right_view.link("e2e1").unwrap();
        let peer = right_view.peer(moved).expect("the moved veth has a peer");
        assert_eq!(
            peer.namespace.as_ref(),
            Some(&left_ns),
            "peer resolved by name"
        );
        assert_eq!(
            Some(peer.index),
            snap.link(&left_ns, "e2e0").map(|link| link.index)
        );

        // Addresses on both sides, then traffic through sockets made inside
        // each namespace.
        let (a, b) = (Ipv4Addr::new(10, 77, 0, 1), Ipv4Addr::new(10, 77, 0, 2));
        for (h, link, addr) in [(&l, "e2e0", a), (&r, "e2e1", b)] {
            let index = h.link_index(link).await.unwrap();
            h.rtnetlink()
                .address()
                .add(index, IpAddr::V4(addr), 24)
                .execute()
                .await
                .unwrap();
            h.rtnetlink()
                .link()
                .set(LinkUnspec::new_with_index(index).up().build())
                .execute()
                .await
                .unwrap();
        }
        let rx = r.udp_bind(SocketAddr::new(b.into(), 7000)).await.unwrap();
        let tx = l.udp_bind(SocketAddr::new(a.into(), 0)).await.unwrap();
        tx.send_to(b"across", rx.local_addr().unwrap())
            .await
            .unwrap();
        let mut buf = [0u8; 16];
        let (n, from) = tokio::time::timeout(Duration::from_secs(10), rx.recv_from(&mut buf))
            .await
            .expect("a datagram crosses the veth pair")
            .unwrap();
        assert_eq!(&buf[..n], b"across");
        assert_eq!(from.ip(), IpAddr::V4(a));

        // An `ip netns exec`-style program sees right's own /sys...
        let out = r
            .command("ls")
            .arg("/sys/class/net")
            .exec_mode(ExecMode::IpNetnsExec)
            .output()
            .await
            .unwrap();
        let sys: Vec<&str> = std::str::from_utf8(&out.stdout).unwrap().lines().collect();
        assert_eq!(sys, ["e2e1", "lo"], "/sys/class/net inside {right}");
        // ...and iproute2 agrees with the view about right's links.
        let links = ip(&["-n", right.as_str(), "-o", "link"]);
        let view_names: Vec<String> = view
            .snapshot()
            .namespace(&right_ns)
            .unwrap()
            .links()
            .map(|link| link.name.clone())
            .collect();
        for name in &view_names {
            assert!(
                links.contains(&format!(": {name}")),
                "{name} not in `ip -n` output: {links}"
            );
        }
        assert_eq!(
            links.lines().count(),
            view_names.len(),
            "{links} vs {view_names:?}"
        );

        drop(view);
        l.close().await;
        r.close().await;
    }

    dir.remove(&left).await.unwrap();
    dir.remove(&right).await.unwrap();
    netns::nsproc::close_cached_agents();

    // Nothing is left: names, children, fds. Agents and connection tasks end
    // asynchronously, so give them a moment (a bound, not a timing claim).
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (fds, kids) = (open_fds(), children());
        if (fds <= fds_before && kids == children_before) || std::time::Instant::now() > deadline {
            assert_eq!(kids, children_before, "child processes left behind");
            assert!(
                fds <= fds_before,
                "fds left open: {fds_before} before, {fds} after"
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let names: Vec<String> = dir
        .list()
        .unwrap()
        .into_iter()
        .map(|e| e.name.to_string())
        .collect();
    assert!(
        !names.iter().any(|n| n.starts_with("e2e-")),
        "names left: {names:?}"
    );
}
