//! The benchmark command itself: its listing, its JSON, a failed row, and an
//! interrupted run (nothing left behind). Timing is not asserted here: the
//! rows are tiny runs, only their shape is checked.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_nsbench");

fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "these tests run the benchmark, which needs root (namespaces, mounts): run them as root"
    );
}

fn scratch_json(test: &str) -> PathBuf {
    std::env::temp_dir().join(format!("nsbench-test-{}-{test}.json", std::process::id()))
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run nsbench")
}

fn rows(json: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(json).expect("the JSON file");
    let doc: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    doc["rows"].as_array().expect("a list of rows").clone()
}

/// Names this benchmark process left in /run/netns (the test runs in the
/// cargo runner's private /run/netns, which the benchmark shares).
fn leftovers(pid: u32) -> Vec<String> {
    let prefix = format!("nsb{pid}-");
    std::fs::read_dir("/run/netns")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(&prefix))
                .collect()
        })
        .unwrap_or_default()
}

/// The rows of a run that must have succeeded (its JSON file removed) and
/// their names.
fn finished_rows(out: &Output, json: &Path) -> (Vec<serde_json::Value>, Vec<String>) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = rows(json);
    let _ = std::fs::remove_file(json);
    let names = rows
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_owned())
        .collect();
    (rows, names)
}

#[test]
fn list_names_every_group_of_rows() {
    let out = run(&["--list"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    for row in [
        "nsfs/create-remove",
        "nsfs/closure",
        "netns/get-link-direct",
        "netns/dump-links-direct",
        "nsproc/spawn-fast-vs-tokio",
        "nsproc/spawn-fast-2gib-parent",
        "nsproxy/agent-private-dirty",
        "nsdb/commit-vs-rtnetlink",
        "cni/add",
        "cni/del",
        "cni/burst-100",
        "cni/startup",
        "topo/build",
        "topo/destroy",
    ] {
        assert!(text.contains(row), "--list lacks {row}:\n{text}");
    }
}

#[test]
fn help_gives_the_command() {
    let out = run(&["--help"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("cargo run --release -p nsbench"), "{text}");
    assert!(text.contains("--json"), "{text}");
}

#[test]
fn unknown_row_pattern_is_an_error() {
    let out = run(&["--rows", "no-such-row"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

#[test]
fn quick_run_writes_rows_as_json() {
    require_root();
    let json = scratch_json("json");
    let out = run(&[
        "--quick",
        "--rows",
        "nsfs/",
        "--samples-scale",
        "0.05",
        "--json",
        json.to_str().unwrap(),
    ]);
    let (rows, names) = finished_rows(&out, &json);
    assert_eq!(names, ["nsfs/create-remove", "nsfs/closure"]);
    for r in &rows {
        assert_eq!(r["status"], "ok", "{r}");
        let ours = r["ours_us"].as_f64().expect("ours_us");
        let reference = r["reference_us"].as_f64().expect("reference_us");
        assert!(ours > 0.0 && reference > 0.0, "{r}");
        let ratio = r["ratio"].as_f64().expect("ratio");
        assert!((ratio - ours / reference).abs() < 1e-9, "{r}");
        assert!(
            r["reference"].as_str().is_some_and(|s| !s.is_empty()),
            "{r}"
        );
        assert!(r["ours_n"].as_u64().unwrap() >= 5, "{r}");
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("| nsfs/create-remove |"), "{stdout}");
}

#[test]
fn topology_rows_measure_five_nodes_and_leave_nothing() {
    require_root();
    let json = scratch_json("topo");
    let child = Command::new(BIN)
        .args([
            "--quick",
            "--rows",
            "topo/",
            "--samples-scale",
            "0.34",
            "--json",
        ])
        .arg(&json)
        .env("NSBENCH_TOPO_NODES", "5")
        // `topo/` also names the nsdb view row (rows/scale.rs).
        .env("NSBENCH_VIEW_N", "5")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run nsbench");
    let pid = child.id();
    let out = child.wait_with_output().expect("nsbench output");
    let (rows, names) = finished_rows(&out, &json);
    assert_eq!(
        names,
        [
            "topo/view",
            "topo/build",
            "topo/destroy",
            "topo/live-change",
            "topo/build-phases"
        ]
    );
    for r in &rows {
        assert_eq!(r["status"], "ok", "{r}");
        assert!(r["ours_us"].as_f64().is_some_and(|v| v > 0.0), "{r}");
        assert!(r["reference_us"].as_f64().is_some_and(|v| v > 0.0), "{r}");
    }
    assert!(leftovers(pid).is_empty(), "{:?}", leftovers(pid));
}

#[test]
fn a_failed_row_is_reported_and_the_run_goes_on() {
    require_root();
    let json = scratch_json("fail");
    let out = run(&[
        "--quick",
        "--rows",
        "nsfs/",
        "--samples-scale",
        "0.05",
        "--inject-failure",
        "nsfs/create-remove",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = rows(&json);
    let _ = std::fs::remove_file(&json);
    assert_eq!(rows[0]["status"], "failed");
    assert!(rows[0]["error"].as_str().unwrap().contains("injected"));
    assert_eq!(
        rows[1]["status"], "ok",
        "the run went on after the failed row"
    );
}

/// Children of `pid` (from /proc), with their command lines.
fn children(pid: u32) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().filter_map(|e| e.ok()) {
        let Ok(child) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let ppid: u32 = rest
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        if ppid == pid {
            let cmd = std::fs::read_to_string(format!("/proc/{child}/cmdline")).unwrap_or_default();
            out.push((child, cmd.replace('\0', " ")));
        }
    }
    out
}

#[test]
fn sigint_stops_the_run_and_leaves_nothing_behind() {
    require_root();
    let json = scratch_json("sigint");
    let mut bench = Command::new(BIN)
        .args([
            "--rows",
            "nsproc/spawn-fast-2gib-parent",
            "--ballast-mib",
            "64",
            "--samples-scale",
            "100",
            "--json",
            json.to_str().unwrap(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start nsbench");
    let pid = bench.id();
    // Wait until both workers run and the row's namespace exists.
    let deadline = Instant::now() + Duration::from_secs(60);
    let workers = loop {
        let w: Vec<u32> = children(pid)
            .into_iter()
            .filter(|(_, c)| c.contains("--worker"))
            .map(|(p, _)| p)
            .collect();
        if w.len() == 2 && !leftovers(pid).is_empty() {
            break w;
        }
        assert!(
            Instant::now() < deadline,
            "the row did not start its workers"
        );
        assert!(bench.try_wait().unwrap().is_none(), "nsbench exited early");
        std::thread::sleep(Duration::from_millis(50));
    };
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let status = bench.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let _ = std::fs::remove_file(&json);
    assert_eq!(doc["meta"]["interrupted"], "SIGINT");
    assert!(
        leftovers(pid).is_empty(),
        "names left: {:?}",
        leftovers(pid)
    );
    // The workers were killed with the run (kill-on-drop); give the kernel a
    // moment to tear them down.
    let deadline = Instant::now() + Duration::from_secs(5);
    for w in workers {
        while Path::new(&format!("/proc/{w}")).exists() {
            let stat = std::fs::read_to_string(format!("/proc/{w}/stat")).unwrap_or_default();
            if stat
                .rsplit_once(')')
                .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
            {
                break; // a zombie of init's, already dead
            }
            assert!(Instant::now() < deadline, "worker {w} still alive");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn compare_matches_rows_of_two_runs_by_name() {
    let (old, new) = (scratch_json("cmp-old"), scratch_json("cmp-new"));
    let row = |name: &str, ours: f64, ratio: f64| serde_json::json!({ "name": name, "unit": "us", "ours_value": ours, "ratio": ratio });
    let doc =
        |rows: Vec<serde_json::Value>| serde_json::json!({ "meta": {}, "rows": rows }).to_string();
    std::fs::write(
        &old,
        doc(vec![row("a/x", 10.0, 1.0), row("a/gone", 5.0, 0.5)]),
    )
    .unwrap();
    std::fs::write(
        &new,
        doc(vec![row("a/x", 20.0, 1.5), row("a/new", 7.0, 0.7)]),
    )
    .unwrap();
    let out = run(&["--compare", old.to_str().unwrap(), new.to_str().unwrap()]);
    let _ = (std::fs::remove_file(&old), std::fs::remove_file(&new));
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("| a/x | us | 10.00 | 20.00 | 2.00 | 1.00 | 1.50 |"),
        "{text}"
    );
    assert!(
        text.contains("| a/gone | us | 5.00 | - | - | 0.50 | - |"),
        "{text}"
    );
    assert!(
        text.contains("| a/new | us | - | 7.00 | - | - | 0.70 |"),
        "{text}"
    );
}
