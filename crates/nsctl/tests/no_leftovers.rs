//! `nsctl exec` leaves no process behind: neither the command, nor the
//! nsctl child that `-all exec` starts per namespace, nor (`--fast`) the
//! command started from a namespace thread outlives nsctl. This test process becomes a
//! child subreaper, so anything orphaned below it is re-parented here, where
//! it can be seen (and reaped). One test in this binary: no other test's
//! children may be mistaken for leftovers.

mod common;

use std::time::Duration;

/// Processes whose parent is this process.
fn children() -> Vec<(i32, String)> {
    let me = std::process::id().to_string();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().filter_map(Result::ok) {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        if rest.split_whitespace().nth(1) == Some(me.as_str()) {
            found.push((pid, head.to_owned()));
        }
    }
    found
}

#[test]
fn exec_leaves_no_process() {
    common::require_root();
    nix::sys::prctl::set_child_subreaper(true).expect("PR_SET_CHILD_SUBREAPER");
    let script = r#"
        mkdir -p /run/netns /etc/netns
        mount -t tmpfs none /run/netns && mount -t tmpfs none /etc/netns || exit 90
        N="$1"
        $N add a && $N add b || exit 91
        $N exec a true; $N -all exec true; $N exec --fast a true; $N -all exec --fast true
        $N -all exec sh -c 'kill -9 $$'; $N exec nope true; $N -all exec nonexistent-command
        $N exec a sh -c 'kill -9 $$'; $N exec a nonexistent-command
        $N exec a sleep 30 & P=$!; sleep 0.3; kill -TERM $P; wait $P
        exit 0
    "#;
    let out = common::unshare_sh(script)
        .arg(env!("CARGO_BIN_EXE_nsctl"))
        .output()
        .expect("run unshare");
    assert!(
        out.status.success(),
        "{:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    // Anything orphaned is re-parented here at once; give it time to exit.
    std::thread::sleep(Duration::from_millis(1500));
    let left = children();
    for (pid, _) in &left {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(*pid), nix::sys::signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(*pid), None);
    }
    assert!(left.is_empty(), "processes left behind by nsctl: {left:?}");
}
