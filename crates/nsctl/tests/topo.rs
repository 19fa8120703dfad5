//! `nsctl topo`: apply, diff (drift found and repaired), destroy, show,
//! draw, and the bad-input paths, against the real kernel. Each test runs a shell script in its own mount and network
//! namespace (empty `/run/netns`), with `$N` the nsctl binary and `$D` a
//! scratch directory holding the test's topology files.

mod common;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

const PRELUDE: &str = r#"
set -u
mkdir -p /run/netns /etc/netns
mount -t tmpfs none /run/netns || exit 90
mount -t tmpfs none /etc/netns || exit 91
N="$1"
D="$2"
eval "$3"
"#;

/// A pair of nodes, one with a bridge whose port leads to a third.
const TRIO: &str = "\
name: trio
nodes:
  - name: ta
    sysctls: { net.ipv4.ip_forward: 1 }
    loopback: [10.255.9.1/32]
    routes: [10.9.2.0/24 via 10.9.0.2]
  - name: tb
    bridges: [{ name: br0, addresses: [10.9.2.1/24] }]
  - tc
links:
  - a: { node: ta, name: eth1, addresses: [10.9.0.1/30] }
    b: { node: tb, name: eth1, addresses: [10.9.0.2/30] }
  - a: { node: tb, name: p0, master: br0 }
    b: { node: tc, name: eth0, addresses: [10.9.2.2/24] }
";

/// Runs `script` in a sandbox with `files` written into `$D`; returns
/// (exit status of the script, stdout, stderr).
fn sandbox(files: &[(&str, &str)], script: &str) -> (i32, String, String) {
    common::require_root();
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "nsctl-topo-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    // Removed however the test ends.
    struct Scratch(PathBuf);
    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let dir = Scratch(dir);
    for (name, text) in files {
        std::fs::write(dir.0.join(name), text).unwrap();
    }
    let mut cmd = common::unshare_sh(PRELUDE);
    cmd.arg(env!("CARGO_BIN_EXE_nsctl")).arg(&dir.0).arg(script);
    common::run_sandbox(cmd)
}

/// The trio built by hand with `ip`, as the topology declares it.
const BUILD_TRIO_WITH_IP: &str = "\
ip netns add ta && ip netns add tb && ip netns add tc && \
ip -n ta link add eth1 type veth peer name eth1 netns tb && \
ip -n ta addr add 10.9.0.1/30 dev eth1 && ip -n ta link set eth1 up && \
ip -n ta addr add 10.255.9.1/32 dev lo && ip -n ta link set lo up && \
ip -n tb addr add 10.9.0.2/30 dev eth1 && ip -n tb link set eth1 up && \
ip -n tb link add br0 type bridge && ip -n tb addr add 10.9.2.1/24 dev br0 && \
ip -n tb link add p0 type veth peer name eth0 netns tc && \
ip -n tb link set p0 master br0 && ip -n tb link set p0 up && ip -n tb link set br0 up && \
ip -n tc addr add 10.9.2.2/24 dev eth0 && ip -n tc link set eth0 up";

#[test]
fn show_prints_the_topology_as_text_and_json() {
    let (code, out, err) = sandbox(
        &[("trio.yaml", TRIO)],
        "$N topo show $D/trio.yaml && $N -j topo show $D/trio.yaml",
    );
    assert_eq!(code, 0, "{err}");
    let (text, json) = out.split_once("{").expect("text then JSON");
    for want in [
        "topology trio: 3 nodes, 2 links",
        "node ta\n    sysctl net.ipv4.ip_forward = 1\n    lo 10.255.9.1/32\n    route 10.9.2.0/24 via 10.9.0.2\n",
        "node tb\n    bridge br0 10.9.2.1/24\n",
        "link ta:eth1 10.9.0.1/30 <-> tb:eth1 10.9.0.2/30\n",
        "link tb:p0 master br0 <-> tc:eth0 10.9.2.2/24\n",
    ] {
        assert!(text.contains(want), "missing {want:?} in\n{text}");
    }
    let json: serde_json::Value = serde_json::from_str(&format!("{{{json}")).unwrap();
    assert_eq!(json["name"], "trio");
    assert_eq!(json["nodes"].as_array().unwrap().len(), 3);
}

#[test]
fn bad_files_are_reported_with_their_place_and_exit_255() {
    let bad = "name: bad\nnodes: [a, a]\nlinks:\n  - 'a:e0 <-> zz:e0'\n";
    let (code, out, err) = sandbox(
        &[("bad.yaml", bad), ("broken.yaml", "name: x\nnodes: [a\n")],
        "$N topo show $D/bad.yaml; echo \"rc=$?\"; \
         $N -j topo show $D/bad.yaml; echo \"rc=$?\"; \
         $N topo draw $D/broken.yaml; echo \"rc=$?\"; \
         $N topo draw --format png $D/bad.yaml; echo \"rc=$?\"; \
         $N topo show $D/missing.yaml; echo \"rc=$?\"",
    );
    assert_eq!(code, 0, "{err}");
    let rcs: Vec<&str> = out.lines().filter(|l| l.starts_with("rc=")).collect();
    assert_eq!(
        rcs,
        ["rc=255", "rc=255", "rc=255", "rc=255", "rc=1"],
        "{out}\n{err}"
    );
    // Every problem, each with file, line and column.
    let bad_path = "bad.yaml:2:";
    assert!(err.contains("2 problems in"), "{err}");
    assert!(err.contains(bad_path), "{err}");
    assert!(err.contains("bad.yaml:4:"), "{err}");
    // As JSON on standard output too.
    let json_line = out.lines().find(|l| l.starts_with('{')).expect("JSON");
    let json: serde_json::Value = serde_json::from_str(json_line).unwrap();
    assert_eq!(json["problems"].as_array().unwrap().len(), 2, "{json}");
    assert!(err.contains("broken.yaml:2:8: unclosed bracket"), "{err}");
    assert!(err.contains("png"), "{err}");
    assert!(
        err.contains("missing.yaml") && err.contains("No such file or directory"),
        "{err}"
    );
}

#[test]
fn draw_shows_the_live_namespaces_in_three_formats() {
    let (code, out, err) = sandbox(
        &[("trio.yaml", TRIO)],
        &format!(
            "{BUILD_TRIO_WITH_IP} && \
             $N topo draw $D/trio.yaml && \
             $N topo draw -f mermaid $D/trio.yaml && \
             $N topo draw --format svg -o $D/trio.svg $D/trio.yaml && \
             head -c 5 $D/trio.svg && echo && grep -c '<svg' $D/trio.svg && \
             ip netns del tc && $N topo draw $D/trio.yaml"
        ),
    );
    assert_eq!(code, 0, "{err}");
    let (dot, rest) = out.split_once("flowchart TB").expect("DOT then Mermaid");
    for want in [
        r#"label="trio""#,
        r#""ns:ta" [label="ta\nlo 10.255.9.1/32""#,
        r#""ns:ta" -- "ns:tb" [label="eth1 10.9.0.1/30\neth1 10.9.0.2/30"]"#,
        r#""br:tb:br0" -- "ns:tc" [label="p0\neth0 10.9.2.2/24"]"#,
    ] {
        assert!(dot.contains(want), "missing {want} in\n{dot}");
    }
    assert!(
        rest.contains(r#"n0 ---|"eth1 10.9.0.1/30 ~ eth1 10.9.0.2/30"| n1"#),
        "{rest}"
    );
    assert!(rest.contains("<?xml\n1\n"), "{rest}");
    // tc gone: said on stderr, and not drawn.
    assert!(
        err.contains("1 of 3 nodes do not exist and are not drawn: tc"),
        "{err}"
    );
    let last = rest.rsplit("graph topology {").next().unwrap();
    assert!(!last.contains("\"ns:tc\""), "{last}");
}

#[test]
fn apply_diff_repair_and_destroy() {
    let (code, out, err) = sandbox(
        &[("trio.yaml", TRIO)],
        "echo '== dry'; $N topo apply --dry-run $D/trio.yaml && ip netns list && \
         echo '== apply'; $N topo apply $D/trio.yaml && \
         echo '== again'; $N topo apply $D/trio.yaml && \
         echo '== diff'; $N topo diff $D/trio.yaml && \
         ip -n tc addr add 10.9.2.77/24 dev eth0 && ip -n ta link del eth1 && \
         echo '== drift'; $N topo diff $D/trio.yaml && \
         echo '== json'; $N -j topo diff $D/trio.yaml && \
         { $N topo diff --exit-code $D/trio.yaml >/dev/null; echo \"== drift-code $?\"; } && \
         echo '== repair'; $N -j topo apply $D/trio.yaml && \
         echo '== diff2'; $N topo diff --exit-code $D/trio.yaml && \
         echo '== destroy'; $N topo destroy $D/trio.yaml && \
         echo '== left'; ip netns list",
    );
    assert_eq!(code, 0, "{out}\n{err}");
    let part = |name: &str| {
        let start = out.find(&format!("== {name}\n")).expect(name) + name.len() + 4;
        let rest = &out[start..];
        rest[..rest.find("== ").unwrap_or(rest.len())].to_owned()
    };
    // The dry run plans and touches nothing.
    let dry = part("dry");
    assert!(dry.contains("created:\n    create namespace ta\n"), "{dry}");
    assert!(dry.contains("create veth tb:p0 <-> tc:eth0"), "{dry}");
    // ... and `ip netns list` after it printed nothing.
    assert!(dry.ends_with(" 0 removed\n"), "{dry}");
    let applied = part("apply");
    assert!(applied.contains("applied: "), "{applied}");
    assert!(!applied.contains("applied: 0 created"), "{applied}");
    // Progress went to stderr as plain lines (not a terminal).
    assert!(err.contains("apply: ") && err.contains(" changes"), "{err}");
    // The second apply has nothing to do and sends nothing.
    assert_eq!(
        part("again"),
        "applied: 0 created, 0 changed, 0 removed (0 requests)\n"
    );
    assert_eq!(part("diff"), "no differences\n");
    let drift = part("drift");
    for want in [
        "tc: delete address 10.9.2.77/24 dev eth0",
        "create veth ta:eth1 <-> tb:eth1",
        "ta: add address 10.9.0.1/30 dev eth1",
        "ta: add route 10.9.2.0/24 via 10.9.0.2",
    ] {
        assert!(drift.contains(want), "missing {want} in\n{drift}");
    }
    let json: serde_json::Value = serde_json::from_str(part("json").trim()).unwrap();
    assert_eq!(
        json.as_array().unwrap().len(),
        drift.lines().count(),
        "{json}"
    );
    // --exit-code: 3 with differences, 0 without (diff2 ran with it).
    assert!(out.contains("== drift-code 3\n"), "{out}");
    let repair: serde_json::Value = serde_json::from_str(part("repair").trim()).unwrap();
    assert_eq!(repair["removed"], 1, "{repair}");
    assert!(repair["created"].as_u64().unwrap() >= 3, "{repair}");
    assert_eq!(part("diff2"), "no differences\n");
    let destroyed = part("destroy");
    assert!(
        destroyed.ends_with("destroyed: 0 created, 0 changed, 3 removed (3 requests)\n"),
        "{destroyed}"
    );
    assert_eq!(part("left"), "");
}

#[test]
fn a_refused_request_rolls_back_and_exits_2() {
    // The kernel refuses a veth MTU above 65535 (EINVAL), after the
    // namespaces were made: the apply undoes them.
    let bad = "\
name: badmtu
nodes: [nx, ny]
links:
  - a: { node: nx, name: eth0, mtu: 70000, addresses: [10.8.0.1/30] }
    b: { node: ny, name: eth0 }
";
    let (code, out, err) = sandbox(
        &[("badmtu.yaml", bad)],
        "$N topo apply $D/badmtu.yaml; echo \"rc=$?\"; ip netns list",
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "rc=2\n", "{err}");
    assert!(err.contains("(rolled back)"), "{err}");
    assert!(err.contains("create veth nx:eth0 <-> ny:eth0"), "{err}");
    assert!(err.contains("rolled back: remove namespace nx"), "{err}");
}

#[test]
fn an_apply_killed_by_sigint_is_completed_by_the_next_and_destroy_leaves_nothing() {
    // A ring of 40 nodes, written by the script; the apply is interrupted
    // with SIGINT (the shell's Ctrl-C) at several points of its work. Every
    // object it made carries its owner's marker from the request that made
    // it (a namespace it had no time to mark is empty, and adopted), so the
    // next apply completes the ring, and destroy removes all of it.
    let script = r#"
{
  echo 'name: sigring'
  echo 'nodes:'
  i=0; while [ $i -lt 40 ]; do echo "  - name: sr$i"; i=$((i+1)); done
  echo 'links:'
  i=0; while [ $i -lt 40 ]; do
    j=$(( (i+1) % 40 ))
    echo "  - a: { node: sr$i, name: right, addresses: [10.77.$i.1/30] }"
    echo "    b: { node: sr$j, name: left, addresses: [10.77.$i.2/30] }"
    i=$((i+1))
  done
} > $D/ring.yaml
for delay in 0.02 0.08 0.15 0.25 0.4; do
  # A background job of a non-interactive shell starts with SIGINT
  # ignored: env gives the apply the default disposition back.
  env --default-signal=INT $N topo apply $D/ring.yaml >/dev/null 2>&1 &
  pid=$!
  sleep $delay
  kill -INT $pid 2>/dev/null
  wait $pid
  rc=$?
  echo "interrupted rc=$rc" >&2
  echo "interrupted rc=$rc"
  ip netns list | wc -l >&2
  $N topo apply $D/ring.yaml >/dev/null 2>$D/err || { echo "apply failed"; cat $D/err; }
  $N topo diff $D/ring.yaml
  $N topo destroy $D/ring.yaml >/dev/null || echo "destroy failed"
  echo "left: $(ip netns list | wc -l) namespaces, $(ip -o link | wc -l) links"
done
"#;
    let (code, out, err) = sandbox(&[], script);
    assert_eq!(code, 0, "{out}\n{err}");
    let mut rounds = 0;
    for line in out.lines() {
        if let Some(rc) = line.strip_prefix("interrupted rc=") {
            // Killed by SIGINT (130), or finished before the signal came.
            assert!(rc == "130" || rc == "0", "{out}");
            rounds += 1;
        } else {
            assert!(
                line == "no differences" || line == "left: 0 namespaces, 1 links",
                "unexpected line {line:?} in\n{out}\n{err}"
            );
        }
    }
    assert_eq!(rounds, 5, "{out}\n{err}");
    // The first signal comes 20 ms after the start: well before a 40-node
    // apply can end.
    assert!(out.contains("interrupted rc=130"), "{out}\n{err}");
    assert_eq!(out.matches("no differences").count(), 5, "{out}");
    assert_eq!(
        out.matches("left: 0 namespaces, 1 links").count(),
        5,
        "{out}"
    );
}
