//! Helpers shared by this crate's integration tests.
//!
//! Every test binary runs through `scripts/sandbox` (a private mount namespace
//! with its own tmpfs on `/run/netns` and `/etc/netns`), so what a test names
//! there vanishes with it; the guards below clean up anyway.
#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use nsfs::{NsName, RunDir};
#[allow(unused_imports)] // each test binary uses some of them
pub use testkit::{ip, open_fds as fd_count};

/// Fails loudly (never skips) when the test cannot run.
pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "these tests need root (network and mount namespaces); run them as root through \
         `cargo test` (the scripts/sandbox runner)"
    );
}

/// A name unique to this test process and call: `<tag>-<pid>-<n>`.
pub fn unique(tag: &str) -> NsName {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    NsName::new(format!("{tag}-{}-{n}", std::process::id())).unwrap()
}

/// Removes a namespace name on drop (ignoring "not found").
pub struct NameGuard {
    pub dir: RunDir,
    pub name: NsName,
}

impl NameGuard {
    pub fn new(dir: &RunDir, name: &NsName) -> NameGuard {
        NameGuard {
            dir: dir.clone(),
            name: name.clone(),
        }
    }
}

impl Drop for NameGuard {
    fn drop(&mut self) {
        let path = self.dir.entry(&self.name);
        let _ = nix::mount::umount2(&path, nix::mount::MntFlags::MNT_DETACH);
        let _ = std::fs::remove_file(&path);
    }
}

/// For a test that needs root: the default run directory and a unique name
/// in it (`unique(tag)`), whose entry the guard removes when dropped.
pub fn fresh_name(tag: &str) -> (RunDir, NsName, NameGuard) {
    require_root();
    let dir = RunDir::default();
    let name = unique(tag);
    let guard = NameGuard::new(&dir, &name);
    (dir, name, guard)
}

/// A private run directory on the sandbox's `/etc/netns` tmpfs (so it never
/// shows in the default run directory other tests list), removed with every
/// mount in it on drop.
pub struct TempRunDir {
    pub dir: RunDir,
}

impl TempRunDir {
    pub fn new(tag: &str) -> TempRunDir {
        let path = PathBuf::from(format!("/etc/netns/.nsfs-{}", unique(tag)));
        TempRunDir {
            dir: RunDir::new(path),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for TempRunDir {
    fn drop(&mut self) {
        let path = self.dir.path();
        if let Ok(read) = std::fs::read_dir(path) {
            for entry in read.flatten() {
                let _ = nix::mount::umount2(&entry.path(), nix::mount::MntFlags::MNT_DETACH);
                let _ = std::fs::remove_file(entry.path());
                let _ = std::fs::remove_dir(entry.path());
            }
        }
        // prepare() may have bind-mounted the directory on itself.
        while nix::mount::umount2(path, nix::mount::MntFlags::MNT_DETACH).is_ok() {}
        let _ = std::fs::remove_dir(path);
    }
}

/// The mount table of this process's mount namespace, one line per mount.
pub fn mounts() -> Vec<String> {
    let table = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mut lines: Vec<String> = table.lines().map(str::to_owned).collect();
    lines.sort();
    lines
}

/// The inode of each thread's network namespace: (tid, comm, inode).
pub fn thread_namespaces() -> Vec<(i32, String, u64)> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let tid: i32 = task.file_name().to_str().unwrap().parse().unwrap();
        let Ok(md) = std::fs::metadata(task.path().join("ns/net")) else {
            continue;
        };
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        out.push((tid, comm.trim().to_owned(), md.ino()));
    }
    out
}

/// A child process in a namespace, killed and reaped on drop.
pub struct ChildGuard(pub std::process::Child);

impl ChildGuard {
    /// `ip netns exec NAME sleep 1000` (the process execs `sleep` in place).
    pub fn sleep_in(name: &NsName) -> ChildGuard {
        let child = Command::new("ip")
            .args(["netns", "exec", name.as_str(), "sleep", "1000"])
            .spawn()
            .expect("cannot run ip netns exec");
        ChildGuard(child)
    }

    /// `sleep 1000` in this namespace.
    pub fn sleep_here() -> ChildGuard {
        ChildGuard(
            Command::new("sleep")
                .arg("1000")
                .spawn()
                .expect("cannot run sleep"),
        )
    }

    pub fn pid(&self) -> i32 {
        self.0.id() as i32
    }

    /// Waits until the child runs `sleep` (after `ip netns exec` set it up).
    pub fn wait_exec(&self) {
        let comm = format!("/proc/{}/comm", self.pid());
        for _ in 0..10_000 {
            if std::fs::read_to_string(&comm).is_ok_and(|c| c.trim() == "sleep") {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        panic!("child {} never exec'd sleep", self.pid());
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
