//! What happens to children when the application is killed with SIGKILL, and
//! the way out a supervisor has: the child's own process group.
//!
//! A harness-less test: run as a test, it plays the supervisor and starts
//! itself again as "the application" (role in the environment), which
//! spawns `sleep` through nsproc with `process_group(0)` and `kill_on_drop`,
//! reports the child's pid, and waits to be killed.

use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::{Pid, getpgid};

const ROLE: &str = "NSPROC_APP_DEATH_ROLE";
const NS: &str = "NSPROC_APP_DEATH_NS";

fn main() {
    match std::env::var(ROLE) {
        Ok(mode) => application(&mode),
        Err(_) => supervisor(),
    }
}

/// The application: spawns a child in the namespace, prints its pid, waits
/// to be killed.
fn application(mode: &str) {
    let mode = match mode {
        "fast" => nsproc::ExecMode::Fast,
        _ => nsproc::ExecMode::IpNetnsExec,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let ns = std::env::var(NS).unwrap();
        let child = nsproc::Command::new("sleep")
            .arg("1000")
            .netns(ns)
            .exec_mode(mode)
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .await
            .unwrap();
        println!("{}", child.id().unwrap());
        // Killed here by the supervisor; `child` is never dropped.
        std::future::pending::<()>().await;
    });
}

/// Whether `pid` exists and is not a zombie.
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rfind(')').map(|i| &stat[i + 2..i + 3]) != Some("Z"),
        Err(_) => false,
    }
}

/// Polls `cond` every 10 ms for up to 20 s (a bound, not a timing claim).
fn eventually(what: &str, cond: impl Fn() -> bool) {
    for _ in 0..2000 {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("never happened: {what}");
}

/// The process group this test's application made, ended on drop even if an
/// assertion fails first (nothing the test starts may outlive it).
struct Group(Pid);

impl Drop for Group {
    fn drop(&mut self) {
        let _ = killpg(self.0, Signal::SIGKILL);
    }
}

/// The application, killed on drop.
struct App(std::process::Child);

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn supervisor() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root (network namespaces); run it through `cargo test`"
    );
    let name = format!("nsproc-death-{}", std::process::id());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = nsfs::RunDir::default();
    let ns_name = nsfs::NsName::new(name.as_str()).unwrap();
    rt.block_on(dir.create(&ns_name, nsfs::OpenMode::CreateExclusive))
        .unwrap();

    for mode in ["fast", "exec"] {
        let mut app = App(Command::new(std::env::current_exe().unwrap())
            .env(ROLE, mode)
            .env(NS, &name)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap());
        let mut line = String::new();
        BufReader::new(app.0.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let pid: i32 = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{mode}: the application reported {line:?}"));
        // The child leads its own group (checked below): end it if we fail.
        let group = Group(Pid::from_raw(pid));

        // The child leads its own group: not ours, not the application's.
        let pgid = getpgid(Some(Pid::from_raw(pid))).unwrap();
        assert_eq!(pgid.as_raw(), pid, "{mode}");
        assert_ne!(
            pgid,
            getpgid(Some(Pid::from_raw(app.0.id() as i32))).unwrap(),
            "{mode}"
        );

        // The application dies without running any destructor.
        app.0.kill().unwrap();
        assert_eq!(app.0.wait().unwrap().signal(), Some(libc::SIGKILL));

        if mode == "fast" {
            // Nothing ties a fast-path child to the application's life: it
            // runs on, orphaned (what the crate docs say).
            assert!(alive(pid), "{mode}: the orphan is gone");
        }
        // The supervisor ends the group; the child is gone.
        match killpg(pgid, Signal::SIGKILL) {
            Ok(()) => {}
            // The exec path's agent may already have ended it.
            Err(nix::errno::Errno::ESRCH) if mode != "fast" => {}
            Err(e) => panic!("{mode}: killpg: {e}"),
        }
        eventually(&format!("{mode}: the child ends"), || !alive(pid));
        // Ended: its pid may be reused, so the guard must not signal it again.
        std::mem::forget(group);
    }
    nsproc::close_cached_agents();
    rt.block_on(dir.remove(&ns_name)).unwrap();
    println!("app_death: ok");
}
