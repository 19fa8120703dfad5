//! What nsctl does beyond `ip netns`: `links`, `exec --fast`, help, and how
//! `exec` passes signals on. Each test runs a shell script in its own mount
//! and network namespace (empty `/run/netns` and `/etc/netns`), with `$N`
//! the nsctl binary.

mod common;

const PRELUDE: &str = r#"
set -u
mkdir -p /run/netns /etc/netns
mount -t tmpfs none /run/netns || exit 90
mount -t tmpfs none /etc/netns || exit 91
N="$1"
eval "$2"
"#;

/// Runs `script` in a sandbox; returns (exit status of the script, stdout, stderr).
fn sandbox(script: &str) -> (i32, String, String) {
    common::require_root();
    let mut cmd = common::unshare_sh(PRELUDE);
    cmd.arg(env!("CARGO_BIN_EXE_nsctl")).arg(script);
    common::run_sandbox(cmd)
}

#[test]
fn links_name_the_peer_namespaces() {
    let (code, out, err) = sandbox(
        "$N add a && $N add b && ip netns add c && \
         ip -n a link add va type veth peer name vb netns b && \
         ip -n a link add vc type veth peer name vc2 netns c && \
         ip -n a link add x1 type veth peer name x2 && \
         ip link add root0 type veth peer name r1 netns a && \
         ip -n a link add br0 type bridge && \
         $N -j links a && $N links a && $N -j -p links b",
    );
    assert_eq!(code, 0, "{err}");
    let mut lines = out.lines();
    let json: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    let links = json.as_array().unwrap();
    let by_name = |n: &str| {
        links
            .iter()
            .find(|l| l["ifname"] == n)
            .unwrap_or_else(|| panic!("{n} in {json}"))
    };
    assert_eq!(by_name("lo")["link_index"], serde_json::Value::Null);
    assert_eq!(by_name("va")["kind"], "veth");
    assert_eq!(by_name("va")["link_netns"], "b");
    assert_eq!(by_name("vc")["link_netns"], "c");
    assert_eq!(by_name("x1")["link_netns"], "a");
    assert_eq!(by_name("x1")["link_index"], by_name("x2")["ifindex"]);
    assert_eq!(by_name("r1")["link_netns_self"], true);
    assert_eq!(by_name("br0")["kind"], "bridge");
    let text = out.lines().skip(1).collect::<Vec<_>>().join("\n");
    assert!(text.contains(" va veth peer "), "{text}");
    assert!(text.contains(" netns b (nsid "), "{text}");
    assert!(text.contains("(this namespace)"), "{text}");
    assert!(
        out.contains("\"ifname\": \"vb\",\n        \"kind\": \"veth\""),
        "{out}"
    );
    assert!(out.contains("\"link_netns\": \"a\""), "{out}");
}

#[test]
fn links_bad_input() {
    let (code, out, err) = sandbox(
        "$N links nope; echo rc=$?; $N links; echo rc=$?; $N links a/b; echo rc=$?; \
         touch /run/netns/stale; $N links stale; echo rc=$?; ls -A /run/netns",
    );
    assert_eq!(code, 0);
    assert_eq!(out, "rc=1\nrc=1\nrc=255\nrc=1\nstale\n");
    assert!(
        err.contains("Cannot open network namespace \"nope\": No such file or directory"),
        "{err}"
    );
    assert!(err.contains("No netns name specified"), "{err}");
    assert!(err.contains("Invalid netns name \"a/b\""), "{err}");
}

#[test]
fn exec_fast_switches_only_the_network_namespace() {
    let (code, out, err) = sandbox(
        "$N add a && mkdir -p /etc/netns/a && echo 'nameserver 192.0.2.9' > /etc/netns/a/resolv.conf && \
         stat -L -c %i /run/netns/a && \
         $N exec --fast a stat -L -c %i /proc/self/ns/net && \
         $N exec a stat -L -c %i /proc/self/ns/net && \
         stat -L -c %i /proc/self/ns/mnt && \
         $N exec --fast a stat -L -c %i /proc/self/ns/mnt && \
         $N exec a stat -L -c %i /proc/self/ns/mnt && \
         { $N exec --fast a grep -c 192.0.2.9 /etc/resolv.conf; echo rc=$?; } && \
         $N exec a grep -c 192.0.2.9 /etc/resolv.conf && \
         { $N exec --fast a sh -c 'exit 9'; echo rc=$?; } && \
         { $N exec --fast a nonexistent-command; echo rc=$?; } && \
         { $N exec --fast nope true; echo rc=$?; } && \
         $N -all exec --fast cat /proc/net/dev | grep -c ':'",
    );
    assert_eq!(code, 0, "{out}\n{err}");
    let l: Vec<&str> = out.lines().collect();
    assert_eq!(l[0], l[1], "fast path: the namespace's netns\n{out}");
    assert_eq!(l[0], l[2], "ip-style path: the namespace's netns\n{out}");
    assert_eq!(l[3], l[4], "fast path: no new mount namespace\n{out}");
    assert_ne!(
        l[3], l[5],
        "ip-style path: a private mount namespace\n{out}"
    );
    assert_eq!(
        &l[6..],
        ["0", "rc=1", "1", "rc=9", "rc=1", "rc=255", "2"],
        "{out}\n{err}"
    );
    // The last count: the `netns: a` header and `lo:`, the namespace's only device.
    assert!(
        err.contains("exec of \"nonexistent-command\" failed: No such file or directory"),
        "{err}"
    );
}

#[test]
fn exec_passes_sigterm_on_and_dies_of_it() {
    let (code, out, err) = sandbox(
        "$N add a && for f in '' --fast; do { $N exec $f a sleep 30 & P=$!; } && sleep 0.5 && \
         test -n \"$($N pids a)\" && kill -TERM $P; wait $P; echo rc=$?; sleep 0.2; $N pids a | wc -l; done",
    );
    assert_eq!(code, 0, "{err}");
    // ip-style: the command is the process signalled; --fast: nsctl passes
    // the signal on and dies of it.
    assert_eq!(out, "rc=143\n0\nrc=143\n0\n", "{err}");
}

#[test]
fn help_and_parse_errors() {
    let (code, out, err) = sandbox(
        "$N help | grep -c '^Usage: nsctl'; $N --help >/dev/null; echo rc=$?; $N h >/dev/null; echo rc=$?; \
         $N exec --help | grep -c -- '--fast'; $N --bogus; echo rc=$?; $N add a --bogus; echo rc=$?; \
         ls -A /run/netns | wc -l; $N -V",
    );
    assert_eq!(code, 0, "{err}");
    let l: Vec<&str> = out.lines().collect();
    assert_eq!(
        &l[..6],
        ["1", "rc=0", "rc=0", "1", "rc=255", "rc=0"],
        "{out}"
    );
    // `add a --bogus` is ip's `add a` with an ignored extra argument.
    assert_eq!(l[6], "1", "{out}");
    assert!(l[7].starts_with("nsctl "), "{out}");
    // An unknown global option in ip's words.
    assert!(
        err.contains("Option \"-bogus\" is unknown, try \"nsctl -help\"."),
        "{err}"
    );
}

/// `--help` advertises `-V, --version`: both print the version and exit 0
/// (`--version` was once read as ip's unknown option `-version`, exit 255).
#[test]
fn version_prints_the_version() {
    let (code, out, err) = sandbox("$N --version; echo rc=$?; $N -V; echo rc=$?; $N --help");
    assert_eq!(code, 0, "{err}");
    let version = format!("nsctl {}", env!("CARGO_PKG_VERSION"));
    let l: Vec<&str> = out.lines().collect();
    assert_eq!(
        &l[..4],
        [&*version, "rc=0", &*version, "rc=0"],
        "{out}\n{err}"
    );
    assert!(out.contains("--version"), "--help advertises it: {out}");
    assert!(err.is_empty(), "{err}");
}
