//! Reading topology files: line and column of malformed input, every
//! problem of a wrong declaration, compact and long forms, YAML and JSON.

use nstopo::{Destination, Error, ProblemKind, Topology};

#[test]
fn malformed_yaml_names_line_and_column() {
    let err = Topology::from_yaml_str("name: t\nnodes:\n  - a\n  - [b\n").unwrap_err();
    let Error::Parse { line, column, .. } = &err else {
        panic!("{err}")
    };
    assert!(*line >= 4, "{err}");
    assert!(*column > 0);

    // An unknown key is malformed too, at its place.
    let err =
        Topology::from_yaml_str("name: t\nnodes:\n  - name: a\n    sysctl: {}\n").unwrap_err();
    let Error::Parse {
        line,
        column,
        message,
        ..
    } = &err
    else {
        panic!("{err}")
    };
    assert_eq!((*line, *column), (4, 5), "{err}");
    assert!(message.contains("sysctl"), "{message}");
}

#[test]
fn from_path_names_the_file() {
    let dir = std::env::temp_dir().join(format!("nstopo-parse-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.yaml");
    std::fs::write(&path, "name: t\nnodes: [a, a]\nlinks: ['a:e0 <-> zz:e0']\n").unwrap();
    let err = Topology::from_path(&path).unwrap_err();
    let text = err.to_string();
    assert!(text.contains(&format!("{}:2:", path.display())), "{text}");
    assert!(text.contains(&format!("{}:3:", path.display())), "{text}");

    let json = dir.join("bad.json");
    std::fs::write(&json, "{\"name\": \"t\",\n \"nodes\": [\"a\",]}").unwrap();
    let err = Topology::from_path(&json).unwrap_err();
    assert!(matches!(err, Error::Parse { line: 2, .. }), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn every_problem_is_listed_with_its_place() {
    let yaml = r#"
name: t
nodes:
  - a
  - b
  - a
  - name: "bad/name"
  - name: c
    sysctls: { kernel.pid_max: 1 }
    routes:
      - "10.0.0.1/24 via 10.9.0.1"
      - "default dev nope"
links:
  - "a:eth0 <-> ghost:eth0"
  - "a:eth1 <-> b:eth1"
  - a: { node: a, name: eth1, addresses: [10.0.0.1/24] }
    b: { node: b, name: eth2, addresses: [10.0.0.1/24, "300.1.1.1/24"] }
  - a: { node: a, name: eth3, addresses: [10.0.0.1/24], master: br9 }
    b: { node: c, name: this-name-is-far-too-long }
"#;
    let err = Topology::from_yaml_str(yaml).unwrap_err();
    let Error::Invalid { problems, .. } = &err else {
        panic!("{err}")
    };
    let kinds: Vec<&ProblemKind> = problems.iter().map(|p| &p.kind).collect();
    let has = |f: &dyn Fn(&ProblemKind) -> bool| kinds.iter().any(|k| f(k));
    assert!(
        has(&|k| matches!(k, ProblemKind::DuplicateNode { name } if name == "a")),
        "{err}"
    );
    assert!(
        has(&|k| matches!(k, ProblemKind::InvalidName { what: "node", .. })),
        "{err}"
    );
    assert!(
        has(&|k| matches!(k, ProblemKind::InvalidSysctl { .. })),
        "{err}"
    );
    assert!(
        has(
            &|k| matches!(k, ProblemKind::InvalidRoute { reason, .. } if reason.contains("host bits"))
        ),
        "{err}"
    );
    assert!(
        has(&|k| matches!(k, ProblemKind::InvalidRoute { reason, .. } if reason.contains("nope"))),
        "{err}"
    );
    assert!(
        has(&|k| matches!(k, ProblemKind::UnknownNode { node } if node == "ghost")),
        "{err}"
    );
    assert!(
        has(&|k| matches!(k, ProblemKind::DuplicateInterface { name, .. } if name == "eth1")),
        "{err}"
    );
    assert!(
        has(&|k| matches!(k, ProblemKind::DuplicateAddress { .. })),
        "{err}"
    );
    assert!(
        has(&|k| matches!(k, ProblemKind::InvalidAddress { .. })),
        "{err}"
    );
    assert!(
        has(&|k| matches!(k, ProblemKind::InvalidLink { reason, .. } if reason.contains("br9"))),
        "{err}"
    );
    assert!(
        has(&|k| matches!(
            k,
            ProblemKind::InvalidName {
                what: "interface",
                ..
            }
        )),
        "{err}"
    );
    assert!(problems.len() >= 11, "{err}");
    // Each has a place: the duplicate node is the third item, line 6.
    let dup = problems
        .iter()
        .find(|p| matches!(p.kind, ProblemKind::DuplicateNode { .. }))
        .unwrap();
    assert_eq!(dup.location.as_ref().unwrap().line, 6);
    let ghost = problems
        .iter()
        .find(|p| matches!(p.kind, ProblemKind::UnknownNode { .. }))
        .unwrap();
    assert_eq!(ghost.location.as_ref().unwrap().line, 14);
    assert!(problems.iter().all(|p| p.location.is_some()), "{err}");
}

#[test]
fn compact_and_long_forms_agree_and_json_reads_the_same() {
    let yaml = r#"
name: t
nodes:
  - name: r1
    sysctls: { net.ipv4.ip_forward: 1, net.ipv6.conf.all.forwarding: "1" }
    loopback: [10.255.0.1/32]
    bridges:
      - name: br0
        addresses: [10.1.0.1/24]
    routes:
      - "default via 10.0.0.2 metric 5"
      - { to: 10.9.0.0/16, dev: eth0 }
      - { destination: "fd09::/64", gateway: "fd00::2" }
  - r2
links:
  - a: { node: r1, name: eth0, mtu: 9000, mac: "02:00:00:00:00:01", addresses: [10.0.0.1/24, "fd00::1/64"] }
    b: "r2:eth0"
  - "r1:p1 <-> r2:p1"
"#;
    let t = Topology::from_yaml_str(yaml).unwrap();
    assert_eq!(t.nodes[0].sysctls["net.ipv4.ip_forward"], "1");
    assert_eq!(t.nodes[0].routes[0].destination, Destination::Default);
    assert_eq!(t.nodes[0].routes[0].metric, Some(5));
    assert_eq!(t.links[0].a.mtu, Some(9000));
    assert_eq!(t.links[1].to_string(), "r1:p1 <-> r2:p1");
    // The JSON the model writes reads back to the same topology.
    assert_eq!(Topology::from_json_str(&t.to_json()).unwrap(), t);
}
