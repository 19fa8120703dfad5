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
