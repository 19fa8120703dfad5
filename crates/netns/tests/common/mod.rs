//! Helpers shared by this crate's integration tests.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};

use futures::TryStreamExt;
use netlink_packet_route::link::{LinkAttribute, LinkMessage};
use netns::{Handle, NetNs, NsName, OpenMode, RunDir};
use tokio::io::AsyncWriteExt;

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

/// Adds `n` ifb links to `ns` with one `ip -batch`.
pub(crate) async fn add_ifbs(ns: &Ns, n: usize) {
    let batch: String = (0..n)
        .map(|i| format!("link add ifb{i} type ifb\n"))
        .collect();
    let mut ip = tokio::process::Command::new("ip")
        .args(["-n", ns.name(), "-batch", "-"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = ip.stdin.take().unwrap();
    stdin.write_all(batch.as_bytes()).await.unwrap();
    drop(stdin);
    assert!(ip.wait().await.unwrap().success());
}

/// Every link of `h`'s namespace, in the order of the dump.
pub(crate) async fn links(h: &Handle) -> Vec<LinkMessage> {
    h.rtnetlink()
        .link()
        .get()
        .execute()
        .try_collect()
        .await
        .unwrap()
}

/// The names of the links of `h`'s namespace, sorted.
pub(crate) async fn link_names(h: &Handle) -> Vec<String> {
    let mut names: Vec<String> = links(h)
        .await
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

/// A handle on an existing namespace, on `transport`.
pub(crate) async fn open(target: impl Into<netns::Target>, transport: netns::Transport) -> Handle {
    Handle::builder(target)
        .mode(OpenMode::OpenOnly)
        .transport(transport)
        .open()
        .await
        .unwrap()
}

/// Defines each test twice, in `mod direct` and `mod relay`, with the named
/// variable bound to the transport.
#[macro_export]
macro_rules! both_transports {
    ($( $(#[$meta:meta])* async fn $name:ident($t:ident) $body:block )*) => {
        both_transports!(@in direct Direct $( $(#[$meta])* async fn $name($t) $body )*);
        both_transports!(@in relay Relay $( $(#[$meta])* async fn $name($t) $body )*);
    };
    (@in $module:ident $transport:ident
        $( $(#[$meta:meta])* async fn $name:ident($t:ident) $body:block )*) => {
        mod $module {
            #[allow(unused_imports)]
            use super::*;
            $(
                $(#[$meta])*
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let $t = netns::Transport::$transport;
                    $body
                }
            )*
        }
    };
}

/// `Handle::open(target, mode)` on `transport`.
pub(crate) async fn open_mode(
    target: impl Into<netns::Target>,
    mode: OpenMode,
    transport: netns::Transport,
) -> netns::Result<Handle> {
    Handle::builder(target)
        .mode(mode)
        .transport(transport)
        .open()
        .await
}

/// The answer to get-link `index` on `rtnl`, which must answer.
pub(crate) async fn get_link(
    rtnl: &netns::rtnetlink::Handle,
    index: u32,
) -> netlink_packet_route::link::LinkMessage {
    rtnl.link()
        .get()
        .match_index(index)
        .execute()
        .try_next()
        .await
        .unwrap()
        .expect("a reply")
}

/// Every closure thread of the global executor (`Executor::size()` of
/// them) busy in a `NetNs::run` closure that waits for [`release`].
///
/// [`release`]: HeldClosures::release
pub(crate) struct HeldClosures {
    releases: Vec<std::sync::mpsc::Sender<()>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl HeldClosures {
    /// Returns once every closure thread runs one of the held closures.
    pub(crate) async fn hold(ns: &NetNs) -> HeldClosures {
        let size = nsfs::Executor::global().unwrap().size();
        let (started_tx, mut started) = tokio::sync::mpsc::unbounded_channel();
        let mut held = HeldClosures {
            releases: Vec::new(),
            tasks: Vec::new(),
        };
        for _ in 0..size {
            let (release, wait) = std::sync::mpsc::channel::<()>();
            held.releases.push(release);
            let started_tx = started_tx.clone();
            let ns = ns.clone();
            held.tasks.push(tokio::spawn(async move {
                ns.run(move || {
                    started_tx.send(()).unwrap();
                    let _ = wait.recv();
                })
                .await
                .unwrap()
            }));
        }
        for _ in 0..size {
            started.recv().await.unwrap();
        }
        held
    }

    /// Lets the closures end and waits for them.
    pub(crate) async fn release(self) {
        drop(self.releases);
        for task in self.tasks {
            task.await.unwrap();
        }
    }
}
