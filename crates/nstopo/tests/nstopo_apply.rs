//! apply / diff / destroy against the real kernel (in the sandbox's own
//! run directory): from nothing, again (no request), after drift, failing
//! part-way (rolled back), and destroy leaving the host as it was.

use nstopo::{Change, Error, OnError, Options, Topology};

fn topo(prefix: &str) -> Topology {
    let yaml = format!(
        r#"
name: {prefix}
nodes:
  - name: {prefix}-a
    sysctls: {{ net.ipv4.ip_forward: 1 }}
    loopback: [10.255.0.1/32]
    routes:
      - "10.0.2.0/24 via 10.0.1.2"
  - name: {prefix}-b
    sysctls: {{ net.ipv4.ip_forward: 1, net.ipv6.conf.all.forwarding: 1 }}
  - name: {prefix}-c
    bridges:
      - {{ name: br0, addresses: [10.0.2.1/24] }}
    routes:
      - "default via 10.0.2.254"
      - {{ to: "fd00:1::/64", via: "fd00:2::2", metric: 7 }}
links:
  - a: {{ node: {prefix}-a, name: eth1, mtu: 9000, mac: "02:00:00:00:0a:01", addresses: [10.0.1.1/24, "fd00:1::1/64"] }}
    b: {{ node: {prefix}-b, name: eth1, mtu: 9000, addresses: [10.0.1.2/24, "fd00:1::2/64"] }}
  - a: {{ node: {prefix}-b, name: eth2, addresses: [10.0.2.254/24, "fd00:2::2/64"] }}
    b: {{ node: {prefix}-c, name: eth1, master: br0 }}
  - a: {{ node: {prefix}-c, name: eth2, addresses: ["fd00:2::3/64"] }}
    b: {{ node: {prefix}-a, name: eth2, up: false }}
"#
    );
    Topology::from_yaml_str(&yaml).unwrap()
}

/// The namespaces of the run directory whose names start with `prefix`
/// (the tests of this file run concurrently, each with its own prefix).
fn run_dir_names(prefix: &str) -> Vec<String> {
    let mut v: Vec<String> = netns::RunDir::default()
        .list()
        .unwrap()
        .into_iter()
        .map(|e| e.name.to_string())
        .filter(|n| n.starts_with(prefix))
        .collect();
    v.sort();
    v
}

/// The mount points, but other tests' namespaces.
fn mounts(prefix: &str) -> String {
    let mut v: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .map(|l| l.split_whitespace().nth(4).unwrap_or("").to_owned())
        .filter(|m| !m.contains("/netns/") || m.contains(prefix))
        .collect();
    v.sort();
    v.join("\n")
}

async fn assert_declared(t: &Topology) {
    let state = nstopo::read_state(t).await.unwrap();
    for node in &t.nodes {
        let n = &state.nodes[&node.name];
        assert!(n.owned, "{} not owned", node.name);
        assert!(n.links["lo"].up);
        for a in &node.loopback {
            assert!(n.links["lo"].addresses.contains(a));
        }
        for (k, v) in &node.sysctls {
            assert_eq!(&n.sysctls[k], v, "{}: {k}", node.name);
        }
        for b in &node.bridges {
            let l = &n.links[&b.name];
            assert_eq!(l.kind.as_deref(), Some("bridge"));
            assert_eq!(l.addresses, b.addresses);
        }
        for r in &node.routes {
            assert!(
                n.routes
                    .iter()
                    .any(|h| h.prefix() == r.prefix() && h.gateway == r.gateway),
                "{}: route {r} missing in {:?}",
                node.name,
                n.routes
            );
        }
    }
    for link in &t.links {
        let la = &state.nodes[&link.a.node].links[&link.a.name];
        let lb = &state.nodes[&link.b.node].links[&link.b.name];
        assert_eq!(la.peer_index, Some(lb.index), "{link}");
        for (e, l) in [(&link.a, la), (&link.b, lb)] {
            assert!(l.owned, "{e}");
            assert_eq!(l.kind.as_deref(), Some("veth"));
            assert_eq!(l.mtu, e.mtu.unwrap_or(1500), "{e}");
            assert_eq!(l.up, e.up, "{e}");
            assert_eq!(l.master, e.master, "{e}");
            if let Some(m) = e.mac {
                assert_eq!(l.mac, Some(m));
            }
            let mut want = e.addresses.clone();
            want.sort();
            assert_eq!(l.addresses, want, "{e}");
        }
    }
}

#[tokio::test]
async fn apply_from_nothing_then_again_then_destroy() {
    testkit::require_root();
    let (names, mounts_before) = (run_dir_names("tpa-"), mounts("tpa-"));
    let links_before = testkit::ip(&["-br", "link", "show"]);
    let t = topo("tpa");
    // A dry run plans and touches nothing.
    let dry = nstopo::apply(&t, Options::default().dry_run(true))
        .await
        .unwrap();
    assert!(dry.dry_run);
    assert_eq!(dry.requests, 0);
    assert!(matches!(
        dry.plan.changes[0],
        Change::CreateNamespace { .. }
    ));
    assert!(run_dir_names("tpa-").is_empty());
    let json = serde_json::to_value(&dry.plan).unwrap();
    assert_eq!(json["changes"][0]["change"], "create_namespace");
    let report = nstopo::apply(&t, Options::default()).await.unwrap();
    assert_eq!(report.plan, dry.plan);
    assert!(report.requests > 0);
    assert_eq!(report.removed, 0);
    assert_declared(&t).await;
    let via_opts = nstopo::read_state_with(&t, Options::default().concurrency(2))
        .await
        .unwrap();
    assert_eq!(via_opts, nstopo::read_state(&t).await.unwrap());

    // A second apply sends nothing.
    let again = nstopo::apply(&t, Options::default()).await.unwrap();
    assert!(again.plan.is_empty(), "{}", again.plan);
    assert_eq!(again.requests, 0);
    assert!(
        nstopo::diff(&t, Options::default())
            .await
            .unwrap()
            .is_empty()
    );

    let gone = nstopo::destroy(&t, Options::default()).await.unwrap();
    assert_eq!(gone.removed, 3);
    assert_eq!(run_dir_names("tpa-"), names);
    assert_eq!(mounts("tpa-"), mounts_before);
    // The test's own namespace (standing in for the host) is untouched.
    assert_eq!(testkit::ip(&["-br", "link", "show"]), links_before);
}

#[tokio::test]
async fn every_drift_is_found_and_repaired() {
    testkit::require_root();
    let names = run_dir_names("tpd-");
    let t = topo("tpd");
    nstopo::apply(&t, Options::default()).await.unwrap();
    let ip = testkit::ip;
    ip(&["-n", "tpd-a", "link", "del", "eth2"]); // a link deleted by hand
    ip(&["-n", "tpd-a", "addr", "add", "10.9.9.9/24", "dev", "eth1"]); // an address added
    ip(&["-n", "tpd-a", "link", "set", "eth1", "mtu", "1400"]); // MTU changed
    ip(&["-n", "tpd-b", "link", "set", "eth1", "down"]); // set down
    ip(&["-n", "tpd-a", "route", "del", "10.0.2.0/24"]); // route removed
    ip(&[
        "netns",
        "exec",
        "tpd-b",
        "sysctl",
        "-qw",
        "net.ipv4.ip_forward=0",
    ]);
    ip(&["netns", "del", "tpd-c"]); // a namespace removed
    // The kernel tears the namespace (and the veths into it) down
    // asynchronously: wait until its peers are gone.
    testkit::eventually("the veths into tpd-c are gone", || {
        !ip(&["-n", "tpd-b", "link", "show"]).contains("eth2")
            && !ip(&["-n", "tpd-a", "link", "show"]).contains("eth2")
    })
    .await;

    let diff = nstopo::diff(&t, Options::default()).await.unwrap();
    let text: Vec<String> = diff.iter().map(|c| c.to_string()).collect();
    let has = |f: &dyn Fn(&Change) -> bool| diff.iter().any(f);
    assert!(
        has(&|c| matches!(c, Change::CreateVeth { a, .. } if a.node == "tpd-c")),
        "{text:#?}"
    );
    assert!(
        has(
            &|c| matches!(c, Change::DeleteAddress { address, .. } if address.to_string() == "10.9.9.9/24")
        ),
        "{text:#?}"
    );
    assert!(
        has(
            &|c| matches!(c, Change::SetLink { node, name, set, .. } if node == "tpd-a" && name == "eth1" && set.mtu == Some(9000))
        ),
        "{text:#?}"
    );
    assert!(
        has(
            &|c| matches!(c, Change::SetLink { name, set, .. } if name == "eth1" && set.up == Some(true))
        ),
        "{text:#?}"
    );
    assert!(
        has(&|c| matches!(c, Change::AddRoute { node, .. } if node == "tpd-a")),
        "{text:#?}"
    );
    assert!(
        has(&|c| matches!(c, Change::SetSysctl { key, .. } if key == "net.ipv4.ip_forward")),
        "{text:#?}"
    );
    assert!(
        has(&|c| matches!(c, Change::CreateNamespace { node } if node == "tpd-c")),
        "{text:#?}"
    );

    let report = nstopo::apply(&t, Options::default()).await.unwrap();
    assert_eq!(report.plan.changes, diff);
    assert_declared(&t).await;
    let after = nstopo::apply(&t, Options::default()).await.unwrap();
    assert_eq!(after.requests, 0, "{}", after.plan);

    // A change of one address touches only that address.
    let mut t2 = t.clone();
    t2.links[0]
        .a
        .addresses
        .push("10.0.1.10/24".parse().unwrap());
    let one = nstopo::apply(&t2, Options::default()).await.unwrap();
    assert_eq!(one.requests, 1, "{}", one.plan);
    assert_eq!(one.plan.changes.len(), 1);

    nstopo::destroy(&t2, Options::default()).await.unwrap();
    assert_eq!(run_dir_names("tpd-"), names);
}

#[tokio::test]
async fn a_failing_apply_rolls_back_to_the_state_before() {
    testkit::require_root();
    let names = run_dir_names("tpf-");
    let t = topo("tpf");
    nstopo::apply(&t, Options::default()).await.unwrap();
    let before = nstopo::read_state(&t).await.unwrap();

    // A new node and link, an address on an existing link, and a route the
    // kernel refuses (its gateway is unreachable): all undone.
    let mut bad = t.clone();
    bad.links[0]
        .b
        .addresses
        .push("10.0.1.20/24".parse().unwrap());
    let extra = Topology::from_yaml_str(
        r#"
name: tpf
nodes:
  - name: tpf-d
    routes: ["10.7.0.0/16 via 192.0.2.1"]
  - tpf-x
links:
  - a: { node: tpf-d, name: eth1, addresses: [10.0.3.2/24] }
    b: { node: tpf-x, name: eth3, addresses: [10.0.3.1/24] }
"#,
    )
    .unwrap();
    let mut extra = extra;
    extra.nodes.pop();
    extra.links[0].b.node = "tpf-a".into();
    bad.nodes.extend(extra.nodes);
    bad.links.extend(extra.links);
    let err = nstopo::apply(&bad, Options::default()).await.unwrap_err();
    let Error::Apply {
        source,
        rolled_back,
        rollback_errors,
        ..
    } = &err
    else {
        panic!("{err}")
    };
    assert!(rolled_back);
    assert!(rollback_errors.is_empty(), "{rollback_errors:?}");
    assert_eq!(source.raw_os_error(), Some(libc::ENETUNREACH), "{source:?}");
    assert!(source.to_string().contains("192.0.2.1"), "{source}");
    assert_eq!(nstopo::read_state(&t).await.unwrap(), before);
    assert!(!run_dir_names("tpf-").contains(&"tpf-d".to_owned()));

    // An MTU the kernel refuses: named, with the kernel's message; and with
    // Stop, what was done is reported and left.
    let mut bad = t.clone();
    bad.links[2].a.mtu = Some(70000);
    let err = nstopo::apply(&bad, Options::default().on_error(OnError::Stop))
        .await
        .unwrap_err();
    let Error::Apply {
        source,
        applied,
        rolled_back,
        ..
    } = &err
    else {
        panic!("{err}")
    };
    assert!(!rolled_back);
    assert!(applied.is_empty(), "{applied:?}");
    assert_eq!(source.raw_os_error(), Some(libc::EINVAL));
    assert!(
        source.kernel_message().is_some_and(|m| m.contains("mtu")),
        "{source:?}"
    );
    assert!(source.to_string().contains("tpf-c"), "{source}");
    assert_eq!(nstopo::read_state(&t).await.unwrap(), before);

    nstopo::destroy(&t, Options::default()).await.unwrap();
    assert_eq!(run_dir_names("tpf-"), names);
}

#[tokio::test]
async fn an_unowned_namespace_is_never_touched() {
    testkit::require_root();
    testkit::ip(&["netns", "add", "tpo-a"]);
    testkit::ip(&["-n", "tpo-a", "link", "set", "lo", "up"]);
    let t = Topology::from_yaml_str(
        "name: tpo\nnodes: [tpo-a, tpo-b]\nlinks: ['tpo-a:e0 <-> tpo-b:e0']\n",
    )
    .unwrap();
    let err = nstopo::apply(&t, Options::default()).await.unwrap_err();
    assert!(
        matches!(&err, Error::NotOwned { objects } if objects == &["namespace tpo-a"]),
        "{err}"
    );
    assert!(!run_dir_names("tpo-").contains(&"tpo-b".to_owned()));
    let gone = nstopo::destroy(&t, Options::default()).await.unwrap();
    assert_eq!(gone.removed, 0);
    assert!(run_dir_names("tpo-").contains(&"tpo-a".to_owned()));
    testkit::ip(&["netns", "del", "tpo-a"]);
}

#[tokio::test]
async fn destroy_removes_what_the_marker_says_and_nothing_else() {
    testkit::require_root();
    // Owned but no longer declared (tpk-old), another topology's
    // (tpq-a, marked for tpq), and one nobody owns (tpk-plain).
    let all = Topology::from_yaml_str("name: tpk\nnodes: [tpk-a, tpk-old]\n").unwrap();
    nstopo::apply(&all, Options::default()).await.unwrap();
    let other = Topology::from_yaml_str("name: tpq\nnodes: [tpq-a]\n").unwrap();
    nstopo::apply(&other, Options::default()).await.unwrap();
    testkit::ip(&["netns", "add", "tpk-plain"]);
    testkit::ip(&[
        "-n",
        "tpk-plain",
        "link",
        "set",
        "lo",
        "alias",
        "nstopo:tpkx",
    ]);
    let now = Topology::from_yaml_str("name: tpk\nnodes: [tpk-a]\n").unwrap();

    let dry = nstopo::destroy(&now, Options::default().dry_run(true))
        .await
        .unwrap();
    assert_eq!(dry.removed, 2);
    assert_eq!(run_dir_names("tpk-"), ["tpk-a", "tpk-old", "tpk-plain"]);

    let gone = nstopo::destroy(&now, Options::default()).await.unwrap();
    assert_eq!(gone.removed, 2);
    let removed: Vec<String> = gone
        .plan
        .changes
        .iter()
        .map(|c| c.node().to_owned())
        .collect();
    assert_eq!(removed, ["tpk-a", "tpk-old"]);
    assert_eq!(run_dir_names("tpk-"), ["tpk-plain"]);
    assert_eq!(run_dir_names("tpq-"), ["tpq-a"]);
    testkit::ip(&["netns", "del", "tpk-plain"]);
    nstopo::destroy(&other, Options::default()).await.unwrap();
    assert!(run_dir_names("tpq-").is_empty());
}

#[tokio::test]
async fn a_stale_entry_left_by_a_killed_create_is_replaced_and_destroyed() {
    testkit::require_root();
    // What a process killed between the placeholder and the mount of
    // `ip netns add` (or of an apply) leaves: an empty file, nothing
    // mounted.
    let dir = netns::RunDir::default();
    let stale = |name: &str| {
        std::fs::create_dir_all(dir.path()).unwrap();
        std::fs::File::create(dir.path().join(name)).unwrap();
    };
    let t = Topology::from_yaml_str("name: tpl\nnodes: [tpl-a, tpl-b]\n").unwrap();
    stale("tpl-a");
    nstopo::apply(&t, Options::default()).await.unwrap();
    assert_declared(&t).await;
    assert!(
        nstopo::diff(&t, Options::default())
            .await
            .unwrap()
            .is_empty()
    );

    // destroy removes a declared node's stale entry too.
    assert!(run_dir_names("tpl-").contains(&"tpl-b".to_owned()));
    testkit::ip(&["netns", "del", "tpl-b"]);
    stale("tpl-b");
    let gone = nstopo::destroy(&t, Options::default()).await.unwrap();
    assert_eq!(gone.removed, 2);
    assert!(run_dir_names("tpl-").is_empty());
    // An undeclared stale entry is not the topology's.
    stale("tpl-z");
    let gone = nstopo::destroy(&t, Options::default()).await.unwrap();
    assert_eq!(gone.removed, 0);
    assert_eq!(run_dir_names("tpl-"), ["tpl-z"]);
    std::fs::remove_file(dir.path().join("tpl-z")).unwrap();
}

#[tokio::test]
async fn a_dropped_apply_is_completed_by_the_next_and_nothing_is_orphaned() {
    testkit::require_root();
    let t = topo("tpi");
    for stop_after in [1usize, 4, 9, 15] {
        // Drop the apply once `stop_after` changes are done.
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let opts = Options::default().progress(move |e| {
            if let nstopo::Event::Applied { done, .. } = e
                && *done >= stop_after
            {
                let _ = tx.send(());
            }
        });
        tokio::select! {
            r = nstopo::apply(&t, opts) => { r.unwrap(); }
            _ = rx.recv() => {}
        }
        // Whatever exists is owned: the next apply completes it.
        nstopo::apply(&t, Options::default()).await.unwrap();
        assert_declared(&t).await;
        nstopo::destroy(&t, Options::default()).await.unwrap();
        assert!(run_dir_names("tpi-").is_empty(), "after {stop_after}");
    }
}

#[test]
fn public_futures_are_send() {
    let t = topo("tps");
    testkit::send(&nstopo::apply(&t, Options::default()));
    testkit::send(&nstopo::destroy(&t, Options::default()));
    testkit::send(&nstopo::plan(&t, Options::default()));
    testkit::send(&nstopo::diff(&t, Options::default()));
    testkit::send(&nstopo::read_state(&t));
}
