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

/// `unshare --mount --net --propagation private sh -c SCRIPT sh`: a shell
/// running `script` in a fresh mount and network namespace; the caller adds
/// the script's positional arguments (`$1`...) and runs it.
pub(crate) fn unshare_sh(script: &str) -> std::process::Command {
    let mut cmd = std::process::Command::new("unshare");
    cmd.args(["--mount", "--net", "--propagation", "private", "sh", "-c"])
        .arg(script)
        .arg("sh")
        .stdin(std::process::Stdio::null());
    cmd
}

/// Runs a sandbox shell made by [`unshare_sh`] (whose script exits 90 or
/// more when its own setup fails); returns (exit status of the script,
/// stdout, stderr).
#[allow(dead_code)]
pub(crate) fn run_sandbox(mut cmd: std::process::Command) -> (i32, String, String) {
    let out = cmd.output().expect("run unshare");
    let code = out.status.code().expect("the sandbox shell exits");
    assert!(
        code < 90,
        "sandbox setup failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        code,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
