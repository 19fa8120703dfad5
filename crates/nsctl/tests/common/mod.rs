//! Helpers shared by nsctl's integration tests.

/// Fails the test with a clear message unless it runs as root (the tests
/// make mount and network namespaces).
pub(crate) fn require_root() {
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
        })
        .unwrap_or_default();
    assert_eq!(
        uid, "0",
        "these tests need root (mount and network namespaces); run them as root"
    );
}
