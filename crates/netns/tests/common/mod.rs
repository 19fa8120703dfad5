//! Helpers shared by this crate's integration tests.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};

use futures::TryStreamExt;
use netlink_packet_route::link::LinkAttribute;
use netns::{Handle, NetNs, NsName, OpenMode, RunDir};

/// A name unique to this test process and call.
pub(crate) fn unique(tag: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "nt-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Removes a named namespace when dropped.
pub(crate) struct Remove(pub(crate) String);

impl Drop for Remove {
    fn drop(&mut self) {
        let name: NsName = self.0.parse().unwrap();
        let path = RunDir::default().entry(&name);
        let _ = nix::mount::umount2(&path, nix::mount::MntFlags::MNT_DETACH);
        let _ = std::fs::remove_file(&path);
    }
}

/// A named namespace for one test, removed when dropped.
pub(crate) struct Ns {
    pub(crate) netns: NetNs,
    guard: Remove,
}

impl Ns {
    pub(crate) async fn new(tag: &str) -> Ns {
        let name = unique(tag);
        let netns = RunDir::default()
            .create(&name.parse().unwrap(), OpenMode::CreateExclusive)
            .await
            .expect("create a test namespace (are we root?)");
        Ns {
            netns,
            guard: Remove(name),
        }
    }

    pub(crate) fn name(&self) -> &str {
        &self.guard.0
    }
}

/// The names of the links of `h`'s namespace, sorted.
pub(crate) async fn link_names(h: &Handle) -> Vec<String> {
    let links: Vec<_> = h
        .rtnetlink()
        .link()
        .get()
        .execute()
        .try_collect()
        .await
        .unwrap();
    let mut names: Vec<String> = links
        .iter()
        .filter_map(|l| {
            l.attributes.iter().find_map(|a| match a {
                LinkAttribute::IfName(n) => Some(n.clone()),
                _ => None,
            })
        })
        .collect();
    names.sort();
    names
}

/// Open fds and threads of this process.
pub(crate) fn fds_and_threads() -> (usize, usize) {
    let fds = std::fs::read_dir("/proc/self/fd").unwrap().count();
    let threads = std::fs::read_dir("/proc/self/task").unwrap().count();
    (fds, threads)
}
