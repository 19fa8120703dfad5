//! Test support shared by the toolkit's tests (not published): a `tracing`
//! layer that records spans and events, and small process helpers.
//!
//! ```
//! use tracing_subscriber::layer::SubscriberExt;
//!
//! let collector = testkit::Collector::default();
//! let subscriber = tracing_subscriber::registry().with(collector.clone());
//! tracing::subscriber::with_default(subscriber, || {
//!     tracing::debug_span!("create", netns = "blue").in_scope(|| ());
//! });
//! assert_eq!(collector.spans("create")[0].field("netns"), Some("blue"));
//! ```

mod spans;

pub use spans::{Collector, Seen};

/// Asserts that the test runs as root (it makes network namespaces).
///
/// ```
/// # if nix::unistd::geteuid().is_root() {
/// testkit::require_root();
/// # }
/// ```
pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root (network namespaces): run it as root"
    );
}

/// How long a test waits for what must happen before it calls it a hang:
/// a hang guard, not a timing assertion.
pub const GUARD: std::time::Duration = std::time::Duration::from_secs(20);

/// Awaits `f`, panicking if it has not finished within [`GUARD`].
///
/// Cancel safety: dropping it drops `f`.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// assert_eq!(testkit::guard(async { 7 }).await, 7);
/// # });
/// ```
pub async fn guard<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(GUARD, f)
        .await
        .expect("hang guard: the operation never finished")
}

/// Waits until `cond` holds, polling every 5 ms, panicking with `what`
/// after [`GUARD`].
///
/// Cancel safety: it holds nothing but `cond`; dropping it stops the wait.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// testkit::eventually("always", || true).await;
/// # });
/// ```
pub async fn eventually(what: &str, cond: impl Fn() -> bool) {
    let start = std::time::Instant::now();
    while !cond() {
        assert!(start.elapsed() < GUARD, "hang guard: {what}");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

/// How many file descriptors this process has open.
///
/// ```
/// assert!(testkit::open_fds() >= 3);
/// ```
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("read /proc/self/fd")
        .count()
}

/// The pids of the children of every thread of `pid` (zombies included).
///
/// ```
/// let mine = testkit::children_of(std::process::id() as i32);
/// # drop(mine);
/// ```
pub fn children_of(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let path = task.unwrap().path().join("children");
        if let Ok(list) = std::fs::read_to_string(path) {
            out.extend(list.split_whitespace().map(|p| p.parse::<i32>().unwrap()));
        }
    }
    out
}

/// Runs `ip ARGS`, asserting success; returns its stdout.
///
/// ```
/// # if nix::unistd::geteuid().is_root() {
/// assert!(testkit::ip(&["link", "show", "lo"]).contains("lo"));
/// # }
/// ```
pub fn ip(args: &[&str]) -> String {
    let out = std::process::Command::new("ip")
        .args(args)
        .output()
        .expect("cannot run ip (install iproute2)");
    assert!(
        out.status.success(),
        "ip {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// Compiles only if the value (typically a future) is `Send`.
///
/// ```
/// testkit::send(&async { 1 });
/// ```
pub fn send<T: Send>(_: &T) {}

/// Compiles only if `T` is `Send` and `Sync`.
///
/// ```
/// testkit::send_sync::<String>();
/// ```
pub fn send_sync<T: Send + Sync>() {}

/// Compiles only if `T` is `Unpin`.
///
/// ```
/// testkit::unpin::<String>();
/// ```
pub fn unpin<T: Unpin>() {}

/// The uid (and gid) rootless tests run as: `nobody`.
pub const UNPRIVILEGED: u32 = 65534;

/// The environment variable that holds the private run directory of a test
/// re-executed by [`run_unprivileged`] (also its `XDG_RUNTIME_DIR`).
pub const UNPRIVILEGED_DIR: &str = "TESTKIT_UNPRIVILEGED_DIR";

/// Runs the test `name` of this test binary again as uid and gid 65534
/// (`setpriv --reuid 65534 --regid 65534 --clear-groups`), with a private
/// `XDG_RUNTIME_DIR` (mode 0700, owned by 65534) made here and removed
/// afterwards, and panics with its output unless it passed. The test run
/// this way is an `#[ignore]`d test (it is run with `--ignored --exact`),
/// so that a plain `cargo test` runs it only through this function.
///
/// Needs root (to make the directory and switch uid) and `setpriv`
/// (util-linux, installed by scripts/setup).
///
/// # Panics
///
/// When not root, without `setpriv`, or when the inner test fails.
///
/// # Examples
///
/// ```no_run
/// #[test]
/// fn veth_as_nobody() {
///     testkit::run_unprivileged("inner_veth_as_nobody", &[]);
/// }
///
/// #[test]
/// #[ignore = "run as uid 65534 by veth_as_nobody"]
/// fn inner_veth_as_nobody() {
///     assert_ne!(nix::unistd::geteuid().as_raw(), 0);
/// }
/// ```
pub fn run_unprivileged(name: &str, env: &[(&str, &str)]) -> String {
    use std::os::unix::fs::PermissionsExt;
    require_root();
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("testkit-rootless-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir).expect("make the private run directory");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).expect("chmod");
    nix::unistd::chown(
        &dir,
        Some(nix::unistd::Uid::from_raw(UNPRIVILEGED)),
        Some(nix::unistd::Gid::from_raw(UNPRIVILEGED)),
    )
    .expect("chown the private run directory");
    let exe = std::env::current_exe().expect("current_exe");
    let id = UNPRIVILEGED.to_string();
    let out = std::process::Command::new("setpriv")
        .args(["--reuid", &id, "--regid", &id, "--clear-groups", "--"])
        .arg(&exe)
        .args([
            name,
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("XDG_RUNTIME_DIR", &dir)
        .env(UNPRIVILEGED_DIR, &dir)
        .env("HOME", &dir)
        .envs(env.iter().copied())
        .current_dir(&dir)
        .output()
        .expect("run setpriv (util-linux: run scripts/setup)");
    let _ = std::fs::remove_dir_all(&dir);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{name} as uid {UNPRIVILEGED} failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    stdout
}
