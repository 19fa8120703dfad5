//! Helpers shared by this crate's integration tests.
#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

pub mod cases;

use nsfs::{NetNs, NsName, OpenMode, RunDir};

/// A named namespace made for one test, removed when dropped (the sandbox
/// runner's private /run/netns is the backstop).
#[derive(Debug)]
pub struct TestNs {
    pub name: NsName,
    pub ns: NetNs,
}

impl TestNs {
    pub async fn new(tag: &str) -> TestNs {
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let name = NsName::new(format!("nsproc-{tag}-{}-{n}", std::process::id())).unwrap();
        let ns = RunDir::default()
            .create(&name, OpenMode::CreateExclusive)
            .await
            .unwrap_or_else(|e| {
                panic!("cannot create test namespace {name}: {e} (tests need root)")
            });
        TestNs { name, ns }
    }

    pub fn path(&self) -> PathBuf {
        RunDir::default().entry(&self.name)
    }

    /// Runs `ip -n NAME args...` and panics with its stderr if it fails.
    pub fn ip(&self, args: &[&str]) {
        testkit::ip(&[&["-n", self.name.as_str()], args].concat());
    }
}

impl Drop for TestNs {
    fn drop(&mut self) {
        let path = self.path();
        let _ = nix::mount::umount2(&path, nix::mount::MntFlags::MNT_DETACH);
        let _ = std::fs::remove_file(&path);
    }
}

/// The entries of `dir` whose names are numbers (pids, fds), as numbers.
fn numbered<T: std::str::FromStr>(dir: &str) -> Vec<T> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
        .collect()
}

/// Our children as (pid, state) from /proc: state 'Z' is a zombie.
pub fn children() -> Vec<(u32, char)> {
    let me = std::process::id();
    let mut out = Vec::new();
    for pid in numbered::<u32>("/proc") {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // pid (comm) state ppid ...: comm may hold spaces, so parse after the last ')'.
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        let state = fields.next().and_then(|s| s.chars().next()).unwrap_or('?');
        let ppid: u32 = fields.next().and_then(|s| s.parse().ok()).unwrap_or(0);
        if ppid == me {
            out.push((pid, state));
        }
    }
    out
}

/// Our open fds (names in /proc/self/fd).
pub fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Polls `cond` every 10 ms for up to 20 s; a bound, not a timing assertion.
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..2000 {
        if cond() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("never happened: {what}");
}

/// Whether a process `pid` exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rfind(')').map(|i| &stat[i + 2..i + 3]) != Some("Z"),
        Err(_) => false,
    }
}

/// Fds above 2 that this process holds without close-on-exec: inherited from
/// whoever started it, never opened by the toolkit.
pub fn inherited_fds() -> Vec<i32> {
    let mut fds = Vec::new();
    for fd in numbered::<i32>("/proc/self/fd") {
        let Ok(info) = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")) else {
            continue;
        };
        let flags = info
            .lines()
            .find_map(|l| l.strip_prefix("flags:"))
            .and_then(|f| i32::from_str_radix(f.trim(), 8).ok())
            .unwrap_or(0);
        if fd > 2 && flags & libc::O_CLOEXEC == 0 {
            fds.push(fd);
        }
    }
    fds
}

/// Our fds and what they point at, for failure messages.
pub fn fd_list() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
        let target = std::fs::read_link(entry.path())
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        out.push((entry.file_name().to_string_lossy().into_owned(), target));
    }
    out.sort();
    out
}
