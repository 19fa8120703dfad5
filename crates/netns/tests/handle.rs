//! Handle basics against the real kernel: open modes, the rtnetlink handle,
//! kernel errors with their extended-ack message, the notify() regression.

mod common;

use common::{Ns, link_names};
use futures::TryStreamExt;
use netns::{OpenMode, Target};

both_transports! {
async fn fresh_namespace_dump_is_exactly_lo(transport) {
    let ns = Ns::new("fresh").await;
    let h = common::open(ns.name(), transport).await;
    assert_eq!(link_names(&h).await, vec!["lo".to_string()]);
    assert_eq!(h.name().map(|n| n.as_str()), Some(ns.name()));
    assert_eq!(h.netns(), &ns.netns);
    // Debug output stays short (no buffers).
    assert!(format!("{h:?}").len() < 2000, "{h:?}");
}

async fn open_modes_follow_pyroute2(transport) {
    let name = common::unique("modes");
    let missing = common::open_mode(name.as_str(), OpenMode::OpenOnly, transport)
        .await
        .unwrap_err();
    assert_eq!(missing.kind(), std::io::ErrorKind::NotFound, "{missing}");

    let created = common::open_mode(name.as_str(), OpenMode::CreateExclusive, transport)
        .await
        .unwrap();
    let _guard = common::Remove(name.clone());
    let again = common::open_mode(name.as_str(), OpenMode::CreateExclusive, transport)
        .await
        .unwrap_err();
    assert_eq!(again.kind(), std::io::ErrorKind::AlreadyExists, "{again}");
    let opened = common::open_mode(name.as_str(), OpenMode::CreateOrOpen, transport)
        .await
        .unwrap();
    assert_eq!(opened.netns(), created.netns());

    // By path, by NetNs, by pid.
    let path = format!("/run/netns/{name}");
    let by_path = common::open_mode(path.as_str(), OpenMode::OpenOnly, transport)
        .await
        .unwrap();
    assert_eq!(by_path.netns(), created.netns());
    // A path in the run directory is that name.
    assert_eq!(by_path.name().map(|n| n.as_str()), Some(name.as_str()));
    let by_ns = common::open_mode(created.netns().clone(), OpenMode::OpenOnly, transport)
        .await
        .unwrap();
    assert_eq!(by_ns.netns(), created.netns());
    let init = common::open_mode(Target::Pid(std::process::id() as i32), OpenMode::OpenOnly, transport)
        .await
        .unwrap();
    assert_ne!(init.netns(), created.netns());

    // An existing path, a pid or an open namespace exists already.
    let err = common::open_mode(path.as_str(), OpenMode::CreateExclusive, transport)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists, "{err}");
    let err = common::open_mode(Target::Pid(std::process::id() as i32), OpenMode::CreateExclusive, transport)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists, "{err}");
}

async fn bad_targets_are_typed_errors(transport) {
    for bad in ["", ".", ".."] {
        let err = common::open_mode(bad, OpenMode::CreateOrOpen, transport).await.unwrap_err();
        assert!(
            matches!(
                err,
                netns::Error::Namespace(nsfs::Error::InvalidName { .. })
            ),
            "{bad:?}: {err}"
        );
    }
    let long = "x".repeat(300);
    let err = common::open_mode(long.as_str(), OpenMode::CreateOrOpen, transport)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    let err = common::open_mode("/nonexistent/netns", OpenMode::OpenOnly, transport)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    let err = common::open_mode("/proc/self/status", OpenMode::OpenOnly, transport)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
    let err = common::open_mode(Target::Pid(-5), OpenMode::OpenOnly, transport)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
}

async fn kernel_rejection_carries_errno_and_ext_ack_message(transport) {
    let ns = Ns::new("extack").await;
    let h = common::open(ns.name(), transport).await;
    // Prefix length 33 on IPv4: the kernel rejects it and says why.
    let err = h
        .rtnetlink()
        .address()
        .add(1, std::net::Ipv4Addr::new(10, 9, 9, 9).into(), 33)
        .execute()
        .await
        .unwrap_err();
    assert_eq!(netns::error_code(&err), Some(libc::EINVAL), "{err}");
    let msg = netns::error_message(&err).expect("an extended-ack message");
    assert!(!msg.is_empty());

    // Our own verbs carry it in the typed error.
    let err = h
        .move_link(1u32, "/proc/1/ns/net")
        .rename("a/b")
        .execute()
        .await
        .unwrap_err();
    assert!(err.raw_os_error().is_some(), "{err}");
}

/// netlink-proto 0.14 sends one batch per poll: without the transport's wake
/// after each send, a request queued behind notify()s sits unsent.
async fn requests_after_notifies_do_not_stall(transport) {
    use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST, NetlinkMessage};
    use netlink_packet_route::RouteNetlinkMessage;
    use rtnetlink::LinkVeth;

    let ns = Ns::new("notify").await;
    let h = common::open(ns.name(), transport).await;
    let mut rtnl = h.rtnetlink().clone();
    for i in 0..5 {
        let msg = LinkVeth::new(&format!("n{i}a"), &format!("n{i}b")).build();
        let mut req = NetlinkMessage::from(RouteNetlinkMessage::NewLink(msg));
        req.header.flags = NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL;
        rtnl.notify(req).unwrap();
    }
    let names = tokio::time::timeout(std::time::Duration::from_secs(20), link_names(&h))
        .await
        .expect("the dump after notify() stalled");
    assert_eq!(names.len(), 11, "{names:?}");
}

async fn namespace_removed_while_open_keeps_working(transport) {
    let ns = Ns::new("removed").await;
    let h = common::open(ns.name(), transport).await;
    netns::RunDir::default()
        .remove(&ns.name().parse().unwrap())
        .await
        .unwrap();
    assert_eq!(link_names(&h).await, vec!["lo".to_string()]);
    h.add_veth("r0", "r1").execute().await.unwrap();
    assert_eq!(link_names(&h).await.len(), 3);
}

async fn connection_triple_is_driven_by_the_caller(transport) {
    let ns = Ns::new("triple").await;
    // The free function (direct) and the handle's (on its transport).
    let (connection, rtnl, _messages) = netns::connection(&ns.netns).await.unwrap();
    let task = tokio::spawn(connection);
    let links: Vec<_> = rtnl.link().get().execute().try_collect().await.unwrap();
    assert_eq!(links.len(), 1);
    task.abort();
    let h = common::open(ns.name(), transport).await;
    let (connection, rtnl, _messages) = h.connection().await.unwrap();
    drop(h);
    let task = tokio::spawn(connection);
    let links: Vec<_> = rtnl.link().get().execute().try_collect().await.unwrap();
    assert_eq!(links.len(), 1);
    task.abort();
}


async fn programs_run_inside_the_namespace(transport) {
    let ns = Ns::new("spawn").await;
    let h = common::open(ns.name(), transport).await;
    h.add_veth("p0", "p1").execute().await.unwrap();
    let out = h.command("ip").args(["-o", "link"]).output().await.unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().count(), 3, "{text}");
    // The namespace given to nsproc as the handle itself.
    let out = netns::nsproc::Command::new("readlink").arg("/proc/self/ns/net").netns(&h).output().await.unwrap();
    let link = String::from_utf8_lossy(&out.stdout);
    assert_eq!(link.trim(), format!("net:[{}]", h.netns().id().ino));
    let status = h.spawn(["true"]).await.unwrap().wait().await.unwrap();
    assert!(status.success());
    // Handle::spawn fails with the facade's error, like every Handle method.
    let err: netns::Error = h.spawn(["/nonexistent/program"]).await.unwrap_err();
    assert!(matches!(err, netns::Error::Spawn(netns::nsproc::Error::Spawn { .. })), "{err}");
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    assert_eq!(err.raw_os_error(), Some(libc::ENOENT));
}
}
