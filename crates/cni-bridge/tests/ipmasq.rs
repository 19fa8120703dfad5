//! `ipMasq: true` through the reference `bridge` plugin and through
//! `netns-bridge`, each in fresh namespaces (one standing in for the host,
//! where both plugins run `iptables`): the `nat` tables (`iptables-save`,
//! `ip6tables-save`) must match after ADD, after DEL and after a second
//! DEL. Both runs use the same network name and container id, so the chain
//! names and comments match as they are; only the dump's timestamps and
//! packet counters are normalized.

mod common;

use common::*;
use serde_json::{Value, json};

/// The host's `nat` tables, v4 and v6, without what differs by chance.
fn nat(host: &Ns) -> (String, String) {
    let dump = |cmd: &str| {
        host.sh(&format!("{cmd} -t nat"))
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| match l.split_once(" [") {
                // ":CHAIN POLICY [packets:bytes]"
                Some((chain, _)) if l.starts_with(':') => format!("{chain} [counters]"),
                _ => l.to_string(),
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    (dump("iptables-save"), dump("ip6tables-save"))
}

struct Run {
    add: Out,
    after_add: (String, String),
    del: Out,
    after_del: (String, String),
    del_again: Out,
    after_del_again: (String, String),
}

fn run(plugin: &str, tag: &str, conf: &Value) -> Run {
    let host = Ns::new(&format!("h-{tag}"));
    let cont = Ns::new(&format!("c-{tag}"));
    let data = TmpDir::new(tag);
    let mut conf = conf.clone();
    conf["ipam"]["dataDir"] = json!(data.path());
    let add = Call::new(plugin, &host, "ADD", "ctr1", &cont).run(&conf);
    let after_add = nat(&host);
    let del = Call::new(plugin, &host, "DEL", "ctr1", &cont).run(&conf);
    let after_del = nat(&host);
    let del_again = Call::new(plugin, &host, "DEL", "ctr1", &cont).run(&conf);
    let after_del_again = nat(&host);
    assert!(leases(&data.path(), conf["name"].as_str().unwrap()).is_empty());
    Run {
        add,
        after_add,
        del,
        after_del,
        del_again,
        after_del_again,
    }
}

fn conf(ipam: Value) -> Value {
    json!({
        "cniVersion": "1.0.0",
        "name": "masqnet",
        "type": "bridge",
        "bridge": "cni0",
        "isGateway": true,
        "ipMasq": true,
        "ipam": ipam,
    })
}

fn differential(tag: &str, conf: Value, v6: bool) {
    let theirs = run(&reference("bridge"), tag, &conf);
    let ours = run(ours(), tag, &conf);
    assert!(theirs.add.ok, "reference ADD failed: {}", theirs.add.raw);
    assert!(ours.add.ok, "our ADD failed: {}", ours.add.raw);
    assert_eq!(
        norm_result(&ours.add.json, false),
        norm_result(&theirs.add.json, false),
        "ADD results differ"
    );
    // The rules are there (not two empty tables compared).
    assert!(
        ours.after_add.0.contains("-j MASQUERADE"),
        "{}",
        ours.after_add.0
    );
    assert!(
        ours.after_add
            .0
            .contains(r#"--comment "name: \"masqnet\" id: \"ctr1\"""#),
        "{}",
        ours.after_add.0
    );
    assert_eq!(
        ours.after_add.1.contains("-j MASQUERADE"),
        v6,
        "{}",
        ours.after_add.1
    );
    assert_eq!(ours.after_add.0, theirs.after_add.0, "iptables after ADD");
    assert_eq!(ours.after_add.1, theirs.after_add.1, "ip6tables after ADD");
    assert!(ours.del.ok, "our DEL failed: {}", ours.del.raw);
    assert!(theirs.del.ok, "reference DEL failed: {}", theirs.del.raw);
    assert_eq!(ours.del.raw, theirs.del.raw);
    assert!(!ours.after_del.0.contains("CNI-"), "{}", ours.after_del.0);
    assert!(!ours.after_del.1.contains("CNI-"), "{}", ours.after_del.1);
    assert_eq!(ours.after_del, theirs.after_del, "nat tables after DEL");
    // A second DEL: nothing left to remove, not an error.
    assert!(ours.del_again.ok, "{}", ours.del_again.raw);
    assert!(theirs.del_again.ok, "{}", theirs.del_again.raw);
    assert_eq!(ours.after_del_again, ours.after_del);
    assert_eq!(ours.after_del_again, theirs.after_del_again);
}

#[test]
fn ipmasq_ipv4() {
    differential(
        "mq4",
        conf(json!({"type": "host-local", "subnet": "10.77.0.0/16"})),
        false,
    );
}

#[test]
fn ipmasq_dual_stack() {
    differential(
        "mqds",
        conf(json!({"type": "host-local",
            "ranges": [[{"subnet": "10.78.0.0/24"}], [{"subnet": "fd00:78::/64"}]]})),
        true,
    );
}

#[test]
fn ipmasq_two_containers_then_del_one() {
    // Two containers on one network: each has its own chain; DEL of one
    // leaves the other's rules as they were.
    let host = Ns::new("h-mq2");
    let c1 = Ns::new("c-mq2a");
    let c2 = Ns::new("c-mq2b");
    let data = TmpDir::new("mq2");
    let mut conf = conf(json!({"type": "host-local", "subnet": "10.79.0.0/16"}));
    conf["ipam"]["dataDir"] = json!(data.path());
    let a = Call::new(ours(), &host, "ADD", "ctr1", &c1).run(&conf);
    assert!(a.ok, "{}", a.raw);
    let only_first = nat(&host);
    let b = Call::new(ours(), &host, "ADD", "ctr2", &c2).run(&conf);
    assert!(b.ok, "{}", b.raw);
    assert_eq!(nat(&host).0.matches("-j MASQUERADE").count(), 2);
    let d = Call::new(ours(), &host, "DEL", "ctr2", &c2).run(&conf);
    assert!(d.ok, "{}", d.raw);
    assert_eq!(nat(&host), only_first);
    for _ in 0..2 {
        let d = Call::new(ours(), &host, "DEL", "ctr1", &c1).run(&conf);
        assert!(d.ok, "{}", d.raw);
        assert!(!nat(&host).0.contains("CNI-"));
    }
}

#[test]
fn ipmasq_failed_add_leaves_nothing() {
    // ip6tables fails (a stand-in on PATH exits 1 with a message) after
    // the IPv4 rules were made: the ADD fails and removes its IPv4 rules,
    // the veth pair and the lease.
    let host = Ns::new("h-mqf");
    let cont = Ns::new("c-mqf");
    let data = TmpDir::new("mqf");
    let bin = TmpDir::new("mqf-bin");
    let fake = format!("{}/ip6tables", bin.path());
    std::fs::write(
        &fake,
        "#!/bin/sh\necho 'ip6tables: broken on purpose' >&2\nexit 4\n",
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut conf = conf(json!({"type": "host-local",
        "ranges": [[{"subnet": "10.80.0.0/24"}], [{"subnet": "fd00:80::/64"}]]}));
    conf["ipam"]["dataDir"] = json!(data.path());
    let before = nat(&host);
    let mut call = Call::new(ours(), &host, "ADD", "ctr1", &cont);
    call.extra.push((
        "PATH".into(),
        format!("{}:/usr/sbin:/usr/bin:/sbin:/bin", bin.path()),
    ));
    let out = call.run(&conf);
    assert!(!out.ok, "{}", out.raw);
    assert!(
        out.json["msg"]
            .as_str()
            .unwrap_or("")
            .contains("broken on purpose"),
        "{}",
        out.raw
    );
    assert_eq!(nat(&host), before);
    assert!(leases(&data.path(), "masqnet").is_empty());
    let veths = host.ip(&["-o", "link", "show", "type", "veth"]);
    assert!(veths.trim().is_empty(), "{veths}");
    assert!(cont.ip(&["-o", "link", "show", "eth0"]).trim().is_empty());
}

/// ADD, the container's namespace removed, DEL: what is left in `nat`.
fn del_after_netns_gone(plugin: &str, tag: &str) -> (Out, (String, String)) {
    let host = Ns::new(&format!("h-{tag}"));
    let cont = Ns::new(&format!("c-{tag}"));
    let data = TmpDir::new(tag);
    let mut conf = conf(json!({"type": "host-local", "subnet": "10.81.0.0/16"}));
    conf["ipam"]["dataDir"] = json!(data.path());
    let add = Call::new(plugin, &host, "ADD", "ctr1", &cont).run(&conf);
    assert!(add.ok, "{}", add.raw);
    let path = cont.path();
    drop(cont);
    let mut call = Call::new(plugin, &host, "DEL", "ctr1", &host);
    call.netns = Some(path);
    let del = call.run(&conf);
    assert!(leases(&data.path(), "masqnet").is_empty());
    (del, nat(&host))
}

#[test]
fn ipmasq_del_after_netns_gone() {
    // The reference tears masquerading down for the addresses the
    // container's interface had; with the namespace gone it has none, so
    // its DEL succeeds and leaves the rules (docs/cni.md). Ours does the
    // same: the same tables after DEL.
    let (theirs, theirs_nat) = del_after_netns_gone(&reference("bridge"), "mqg");
    let (ours, ours_nat) = del_after_netns_gone(ours(), "mqg");
    assert!(theirs.ok, "{}", theirs.raw);
    assert!(ours.ok, "{}", ours.raw);
    assert!(ours_nat.0.contains("-j MASQUERADE"), "{}", ours_nat.0);
    assert_eq!(ours_nat, theirs_nat);
}
