//! A view of 1,000 namespaces joined in a ring by veth pairs (each pair's
//! ends born in their namespaces): built with `all_namespaces()`, it sees
//! every link and names every peer, follows changes (an MTU, a new pair
//! between two far namespaces, namespaces made and removed), holds at most two fds per namespace and no
//! thread per namespace, and gives every fd back when dropped.
//!
//! Alone in its binary: `all_namespaces()` covers the whole (sandboxed) run
//! directory.

use std::time::Duration;

use futures::StreamExt;
use nsdb::{Namespace, View};
use nsfs::{NsName, OpenMode, RunDir};

/// How many namespaces (`NSDB_SCALE_N` overrides it for a quick run).
fn size() -> usize {
    std::env::var("NSDB_SCALE_N")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1000)
}

/// How many set-up operations run at once.
const AT_ONCE: usize = 32;

fn name(i: usize) -> NsName {
    NsName::new(format!("nsdb-scale-{i}")).unwrap()
}

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (the view holds two
/// fds per namespace; a soft limit of 1024 would not do).
#[allow(unsafe_code)]
fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the valid rlimit it is given.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
    lim.rlim_cur = lim.rlim_max;
    // SAFETY: setrlimit reads the valid, initialised rlimit it is given.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) }, 0);
}

/// The ring's namespaces; removed on drop if the test did not remove them.
struct Ring {
    n: usize,
    removed: bool,
}

impl Ring {
    /// Creates `n` namespaces and a veth pair from each to the next: `r{i}`
    /// in namespace i, `l{i+1}` in namespace i+1, born there.
    async fn create(n: usize) -> Ring {
        let dir = RunDir::default();
        let ring = Ring { n, removed: false };
        futures::stream::iter(0..n)
            .map(|i| {
                let dir = dir.clone();
                async move { dir.create(&name(i), OpenMode::CreateExclusive).await }
            })
            .buffer_unordered(AT_ONCE)
            .for_each(|r| async move {
                r.expect("create namespace");
            })
            .await;
        futures::stream::iter(0..n)
            .map(|i| async move {
                let h = netns::Handle::open(name(i), OpenMode::OpenOnly).await?;
                let next = (i + 1) % n;
                h.add_veth(format!("r{i}"), format!("l{next}"))
                    .peer_netns(name(next))
                    .execute()
                    .await?;
                h.close().await;
                Ok::<_, netns::Error>(())
            })
            .buffer_unordered(AT_ONCE)
            .for_each(|r| async move {
                r.expect("create veth pair");
            })
            .await;
        ring
    }

    async fn remove(mut self) {
        let dir = RunDir::default();
        futures::stream::iter(0..self.n)
            .map(|i| {
                let dir = dir.clone();
                async move { dir.remove(&name(i)).await }
            })
            .buffer_unordered(AT_ONCE)
            .for_each(|r| async move {
                r.expect("remove namespace");
            })
            .await;
        self.removed = true;
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        if self.removed {
            return;
        }
        for i in 0..self.n {
            let _ = std::process::Command::new("ip")
                .args(["netns", "del", name(i).as_str()])
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}

fn ns(i: usize) -> Namespace {
    Namespace::Named(name(i))
}

/// Whether namespace `i` of the view has both ring links and each names
/// its peer: `r{i}` the link `l{i+1}` of namespace i+1, `l{i}` the link
/// `r{i-1}` of namespace i-1.
fn ring_whole(s: &nsdb::Snapshot, n: usize, i: usize) -> bool {
    let (next, prev) = ((i + 1) % n, (i + n - 1) % n);
    let tied = |here: usize, link: &str, there: usize, peer: &str| {
        let Some(v) = s.namespace(&ns(here)) else {
            return false;
        };
        let Some(l) = v.link(link) else {
            return false;
        };
        let Some(p) = v.peer(l) else { return false };
        p.namespace == Some(ns(there))
            && s.link(&ns(there), peer).is_some_and(|x| x.index == p.index)
    };
    tied(i, &format!("r{i}"), next, &format!("l{next}"))
        && tied(i, &format!("l{i}"), prev, &format!("r{prev}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_view_of_a_thousand_namespaces_sees_every_link_and_peer() {
    testkit::require_root();
    raise_fd_limit();
    let n = size();
    assert!(n >= 3, "a ring needs three namespaces");
    let ring = Ring::create(n).await;
    // After the set-up, so the toolkit's own threads (namespace threads,
    // tokio's blocking pool) are already there.
    let (fds, tasks) = (testkit::open_fds(), threads());

    let start = std::time::Instant::now();
    let view = testkit::guard(View::builder().all_namespaces().build())
        .await
        .expect("build the view");
    let snap = view
        .wait_for("every ring link tied", Duration::from_secs(20), |s| {
            s.namespaces().count() == n && (0..n).all(|i| ring_whole(s, n, i))
        })
        .await
        .expect("every namespace, link and peer in the view");
    assert!(snap.namespaces().all(|v| v.status().is_live()));
    // Printed for the curious (timing lives in nsbench's `topo/view`).
    eprintln!(
        "view of {n} namespaces built and tied in {:?}",
        start.elapsed()
    );
    let held = testkit::open_fds() - fds;
    assert!(
        held <= 2 * n + 8,
        "{held} fds for {n} namespaces: more than two per namespace"
    );
    assert!(
        threads() <= tasks + 4,
        "threads grew from {tasks} to {} with the view",
        threads()
    );

    // A change made from outside shows.
    let far = n / 2;
    testkit::ip(&[
        "-n",
        name(far).as_str(),
        "link",
        "set",
        &format!("r{far}"),
        "mtu",
        "1400",
    ]);
    view.wait_for("the new mtu", Duration::from_secs(20), |s| {
        s.link(&ns(far), &format!("r{far}"))
            .is_some_and(|l| l.mtu == Some(1400))
    })
    .await
    .expect("the view follows the mtu");

    // A new pair between two namespaces that had none: both ends name
    // their peer (ids the namespaces give each other only now).
    let h = netns::Handle::open(name(0), OpenMode::OpenOnly)
        .await
        .unwrap();
    h.add_veth("x0", "x1")
        .peer_netns(name(far))
        .execute()
        .await
        .unwrap();
    h.close().await;
    view.wait_for("the new pair tied", Duration::from_secs(20), |s| {
        let end = |here: usize, link: &str, there: usize, peer: &str| {
            s.namespace(&ns(here))
                .and_then(|v| v.peer(v.link(link)?))
                .is_some_and(|p| {
                    p.namespace == Some(ns(there))
                        && s.link(&ns(there), peer).is_some_and(|x| x.index == p.index)
                })
        };
        end(0, "x0", far, "x1") && end(far, "x1", 0, "x0")
    })
    .await
    .expect("the view names the peers of a new pair");

    // Namespaces that come and go while it watches: each is checked alone
    // (the monitor names it), not by a scan of the whole view.
    let extra: Vec<NsName> = (0..50)
        .map(|i| NsName::new(format!("nsdb-scale-extra-{i}")).unwrap())
        .collect();
    let dir = RunDir::default();
    for name in &extra {
        dir.create(name, OpenMode::CreateExclusive).await.unwrap();
    }
    view.wait_for("the new namespaces added", Duration::from_secs(20), |s| {
        s.namespaces().count() == n + extra.len()
    })
    .await
    .expect("the view adds namespaces made while it watches");
    for name in &extra {
        dir.remove(name).await.unwrap();
    }
    view.wait_for("the new namespaces dropped", Duration::from_secs(20), |s| {
        s.namespaces().count() == n
    })
    .await
    .expect("the view drops namespaces removed while it watches");

    drop(snap);
    drop(view);
    testkit::eventually("the view's fds closed", || testkit::open_fds() <= fds).await;
    assert!(threads() <= tasks, "threads left behind by the view");
    ring.remove().await;
}
