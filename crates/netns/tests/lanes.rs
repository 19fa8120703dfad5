//! Users' long closures never stall the toolkit: with every closure thread
//! of the global executor busy in a `NetNs::run` closure that does not end,
//! a handle opens (a new name and an existing one, on both transports), a
//! socket is made inside, a program is spawned on both launch paths, and the
//! name is removed. Each step is bounded: a stall fails the test instead of
//! hanging it.
//!
//! One test in this binary: it holds the process-wide executor.

mod common;

use std::time::Duration;

use netns::nsproc::ExecMode;
use netns::{Handle, OpenMode, RunDir, Transport};

const BOUND: Duration = Duration::from_secs(10);

async fn bounded<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(BOUND, f)
        .await
        .unwrap_or_else(|_| panic!("{what} waited behind users' long closures"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_closures_do_not_stall_handles_sockets_or_spawns() {
    testkit::require_root();
    let home = common::Ns::new("lanes-home").await;
    let existing = common::open(home.name(), Transport::Direct).await;
    let held = common::HeldClosures::hold(existing.netns()).await;

    let name = common::unique("lanes-new");
    let _remove = common::Remove(name.clone());
    let created = bounded(
        "Handle::open of a new name",
        Handle::open(name.as_str(), OpenMode::CreateExclusive),
    )
    .await
    .unwrap();
    let relay = bounded(
        "Handle::open of an existing name (relay)",
        Handle::builder(home.name())
            .transport(Transport::Relay)
            .open(),
    )
    .await
    .unwrap();
    assert_eq!(
        bounded("a get-link over the relay", relay.link_index("lo"))
            .await
            .unwrap(),
        1
    );
    let udp = bounded(
        "a UDP socket inside",
        created.udp_bind("127.0.0.1:0".parse().unwrap()),
    )
    .await
    .unwrap();
    assert!(udp.local_addr().unwrap().port() > 0);
    for mode in [ExecMode::Fast, ExecMode::IpNetnsExec] {
        let status = bounded("a spawn", created.command("true").exec_mode(mode).status())
            .await
            .unwrap();
        assert!(status.success(), "{mode:?}: {status}");
    }
    drop(udp);
    relay.close().await;
    created.close().await;
    bounded("remove", RunDir::default().remove(&name.parse().unwrap()))
        .await
        .unwrap();

    held.release().await;
    existing.close().await;
}
