//! The same configurations through the reference `bridge` plugin and
//! through `netns-bridge`, each in fresh namespaces (one standing in for
//! the host, one for the container): the results of ADD, CHECK and DEL and
//! the kernel state on both sides must match. What differs by chance (the
//! host veth's random name, MACs, ifindexes) is normalized; what differs on
//! purpose is named where it is checked.

mod common;

use common::*;
use serde_json::{Value, json};

struct Run {
    add: Out,
    after_add: (Value, Value),
    check: Out,
    del: Out,
    after_del: (Value, Value),
    del_again: Out,
}

/// ADD, CHECK (with the ADD's result as prevResult), DEL, DEL again.
fn run(plugin: &str, tag: &str, conf: &Value, keep_mac: bool) -> Run {
    let host = Ns::new(&format!("h-{tag}"));
    let cont = Ns::new(&format!("c-{tag}"));
    let data = TmpDir::new(tag);
    let mut conf = conf.clone();
    if conf.get("ipam").is_some() {
        conf["ipam"]["dataDir"] = json!(data.path());
    }
    let keep = keep_mac.then_some("eth0");
    let add = Call::new(plugin, &host, "ADD", "ctr1", &cont).run(&conf);
    let after_add = (snapshot(&host, None), snapshot(&cont, keep));
    // The bridge's own IPv6 address (the gateway) goes through DAD once
    // the first port brings its carrier up; a DEL that takes the carrier
    // away before DAD ends leaves it tentative, one after leaves it done.
    // That is the plugin's speed, not its behaviour: both go on once DAD
    // is over.
    eventually("the host's addresses past DAD", || {
        !host
            .ip_json(&["addr", "show"])
            .as_array()
            .into_iter()
            .flatten()
            .any(|l| {
                l["addr_info"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|a| a["tentative"] == json!(true))
            })
    });
    let mut with_prev = conf.clone();
    with_prev["prevResult"] = add.json.clone();
    let check = Call::new(plugin, &host, "CHECK", "ctr1", &cont).run(&with_prev);
    let del = Call::new(plugin, &host, "DEL", "ctr1", &cont).run(&conf);
    let after_del = (snapshot(&host, None), snapshot(&cont, keep));
    let del_again = Call::new(plugin, &host, "DEL", "ctr1", &cont).run(&conf);
    assert!(leases(&data.path(), conf["name"].as_str().unwrap()).is_empty());
    Run {
        add,
        after_add,
        check,
        del,
        after_del,
        del_again,
    }
}

/// Difference on purpose (docs/cni.md): the reference's veths get a
/// transmit queue length of 0 (its netlink library sends IFLA_TXQLEN 0 for
/// an unset value; its own bridge code avoids that for the bridge, "a
/// zero-length TX queue messes up FIFO traffic shapers"), ours keep the
/// kernel's default of 1000. Checked, then dropped from the comparison.
fn veth_txqlen_differs_on_purpose(ours: &mut Value, theirs: &mut Value) {
    for (v, want) in [(ours, Some(1000)), (theirs, None)] {
        for l in v["links"].as_array_mut().unwrap() {
            if l["kind"] == "veth" {
                let q = l["txqlen"].as_u64();
                assert!(
                    q == want || (want.is_none() && q == Some(0)),
                    "veth txqlen {q:?}"
                );
                l.as_object_mut().unwrap().remove("txqlen");
            }
        }
    }
}

/// How CHECK is expected to end for a configuration.
#[derive(Clone, Copy, PartialEq)]
enum Check {
    /// Both succeed, with the same (empty) output.
    Same,
    /// Both refuse with this spec error code.
    BothFail(u64),
    /// Difference on purpose: the reference's CHECK fails on its own ADD's
    /// result (a reference bug, named at the call), ours succeeds.
    OnlyReferenceFails,
}

fn differential(tag: &str, conf: Value) {
    differential_check(tag, conf, Check::Same)
}

fn differential_check(tag: &str, conf: Value, expect: Check) {
    let keep_mac = conf.pointer("/runtimeConfig/mac").is_some();
    let mut theirs = run(&reference("bridge"), tag, &conf, keep_mac);
    let mut ours = run(ours(), tag, &conf, keep_mac);
    veth_txqlen_differs_on_purpose(&mut ours.after_add.0, &mut theirs.after_add.0);
    veth_txqlen_differs_on_purpose(&mut ours.after_add.1, &mut theirs.after_add.1);
    assert!(theirs.add.ok, "reference ADD failed: {}", theirs.add.raw);
    assert!(ours.add.ok, "our ADD failed: {}", ours.add.raw);
    assert_eq!(
        norm_result(&ours.add.json, keep_mac),
        norm_result(&theirs.add.json, keep_mac),
        "ADD results differ"
    );
    assert_eq!(
        ours.after_add.0, theirs.after_add.0,
        "host state after ADD differs"
    );
    assert_eq!(
        ours.after_add.1, theirs.after_add.1,
        "container state after ADD differs"
    );
    match expect {
        Check::Same => {
            assert!(ours.check.ok, "our CHECK failed: {}", ours.check.raw);
            assert!(
                theirs.check.ok,
                "reference CHECK failed: {}",
                theirs.check.raw
            );
            assert_eq!(ours.check.raw, theirs.check.raw);
        }
        Check::BothFail(code) => {
            assert!(!ours.check.ok && !theirs.check.ok);
            assert_eq!(ours.check.json["code"], code, "{}", ours.check.raw);
            assert_eq!(theirs.check.json["code"], code, "{}", theirs.check.raw);
        }
        Check::OnlyReferenceFails => {
            assert!(ours.check.ok, "our CHECK failed: {}", ours.check.raw);
            assert!(
                !theirs.check.ok,
                "reference CHECK passed: {}",
                theirs.check.raw
            );
        }
    }
    assert!(
        ours.del.ok && theirs.del.ok,
        "DEL: {} / {}",
        ours.del.raw,
        theirs.del.raw
    );
    assert_eq!(ours.del.raw, theirs.del.raw);
    assert_eq!(
        ours.after_del.0, theirs.after_del.0,
        "host state after DEL differs"
    );
    assert_eq!(
        ours.after_del.1, theirs.after_del.1,
        "container state after DEL differs"
    );
    assert!(ours.del_again.ok && theirs.del_again.ok);
}

fn v4(extra: Value, version: &str) -> Value {
    let mut c = json!({
        "cniVersion": version,
        "name": "testnet",
        "type": "bridge",
        "bridge": "cni0",
        "ipam": {"type": "host-local", "subnet": "10.88.0.0/16"}
    });
    if let (Some(c), Some(e)) = (c.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            c.insert(k.clone(), v.clone());
        }
    }
    c
}

#[test]
fn ipv4_plain() {
    differential("v4", v4(json!({}), "1.0.0"));
}

#[test]
fn ipv4_is_gateway() {
    differential("gw", v4(json!({"isGateway": true}), "1.0.0"));
}

#[test]
fn ipv4_is_default_gateway() {
    differential("dgw", v4(json!({"isDefaultGateway": true}), "1.0.0"));
}

#[test]
fn ipv4_spec_0_4_0() {
    differential("v040", v4(json!({"isGateway": true}), "0.4.0"));
}

#[test]
fn ipv4_spec_0_3_1() {
    // CHECK came with 0.4.0: both refuse it with "incompatible version".
    differential_check(
        "v031",
        v4(json!({"isDefaultGateway": true}), "0.3.1"),
        Check::BothFail(1),
    );
}

#[test]
fn ipv6_is_gateway() {
    differential(
        "v6",
        v4(
            json!({"isGateway": true, "ipam": {"type": "host-local", "subnet": "fd00:88::/64"}}),
            "1.0.0",
        ),
    );
}

#[test]
fn ipv6_with_dad_and_default_gateway() {
    // enabledad: the container's address goes through DAD (tentative) before
    // the default route through the gateway is added.
    differential(
        "dad",
        v4(
            json!({"isDefaultGateway": true, "enabledad": true,
                "ipam": {"type": "host-local", "subnet": "fd00:90::/64"}}),
            "1.0.0",
        ),
    );
}

#[test]
fn dual_stack_default_gateway() {
    differential(
        "ds",
        v4(
            json!({"isDefaultGateway": true, "ipam": {"type": "host-local",
                "ranges": [[{"subnet": "10.89.0.0/24"}], [{"subnet": "fd00:89::/64"}]]}}),
            "1.0.0",
        ),
    );
}

#[test]
fn mtu() {
    differential("mtu", v4(json!({"mtu": 1400, "isGateway": true}), "1.0.0"));
}

#[test]
fn hairpin() {
    differential("hp", v4(json!({"hairpinMode": true}), "1.0.0"));
}

#[test]
fn promiscuous_bridge() {
    differential("pm", v4(json!({"promiscMode": true}), "1.0.0"));
}

#[test]
fn ipam_routes_and_dns() {
    // Difference on purpose: the reference's CHECK looks for a result's
    // route without `gw` as a route without gateway, but its ADD installed
    // it through the address's gateway (as the spec says), so its CHECK
    // fails on its own ADD. Ours accepts the gateway ADD used.
    differential_check(
        "rt",
        v4(
            json!({"dns": {"nameservers": ["10.88.0.53"], "search": ["example.test"]},
                "ipam": {"type": "host-local", "subnet": "10.88.0.0/16", "gateway": "10.88.0.254",
                "routes": [{"dst": "192.168.0.0/16"}, {"dst": "172.16.0.0/12", "gw": "10.88.0.254"}]}}),
            "1.0.0",
        ),
        Check::OnlyReferenceFails,
    );
}

#[test]
fn layer2_only() {
    let mut c = v4(json!({}), "1.0.0");
    c.as_object_mut().unwrap().remove("ipam");
    // Difference on purpose: with no IPAM, the reference's CHECK runs an
    // IPAM plugin of no name and fails ("no plugin name provided"); ours
    // checks the links.
    differential_check("l2", c, Check::OnlyReferenceFails);
}

#[test]
fn mac_from_runtime_config() {
    differential(
        "mac",
        v4(
            json!({"runtimeConfig": {"mac": "02:42:ac:11:00:42"}}),
            "1.0.0",
        ),
    );
}

#[test]
fn delegated_host_local() {
    // Ours runs the reference host-local as a separate process here.
    differential(
        "dl",
        v4(json!({"isGateway": true, "delegateIPAM": true}), "1.0.0"),
    );
}

/// A chained plugin after ours: the reference `tuning` takes our result as
/// prevResult and must pass it on unchanged, as it does the reference's.
#[test]
fn chained_tuning_after_bridge() {
    let tuning = reference("tuning");
    let mut outs = Vec::new();
    for (plugin, tag) in [(reference("bridge"), "ch"), (ours().to_string(), "ch")] {
        let host = Ns::new(&format!("h-{tag}"));
        let cont = Ns::new(&format!("c-{tag}"));
        let data = TmpDir::new(tag);
        let mut conf = v4(json!({"isGateway": true}), "1.0.0");
        conf["ipam"]["dataDir"] = json!(data.path());
        let add = Call::new(&plugin, &host, "ADD", "ctr1", &cont).run(&conf);
        assert!(add.ok, "{}", add.raw);
        let tconf = json!({"cniVersion": "1.0.0", "name": "testnet", "type": "tuning",
            "sysctl": {"net.ipv4.conf.eth0.arp_filter": "1"}, "prevResult": add.json});
        let tadd = Call::new(&tuning, &host, "ADD", "ctr1", &cont).run(&tconf);
        assert!(tadd.ok, "{}", tadd.raw);
        let arp_filter = cont.sh("cat /proc/sys/net/ipv4/conf/eth0/arp_filter");
        let mut tcheck_conf = tconf.clone();
        tcheck_conf["prevResult"] = tadd.json.clone();
        let tcheck = Call::new(&tuning, &host, "CHECK", "ctr1", &cont).run(&tcheck_conf);
        let mut check_conf = conf.clone();
        check_conf["prevResult"] = tadd.json.clone();
        let check = Call::new(&plugin, &host, "CHECK", "ctr1", &cont).run(&check_conf);
        assert!(tcheck.ok && check.ok, "{} {}", tcheck.raw, check.raw);
        let tdel = Call::new(&tuning, &host, "DEL", "ctr1", &cont).run(&tconf);
        let del = Call::new(&plugin, &host, "DEL", "ctr1", &cont).run(&conf);
        assert!(tdel.ok && del.ok);
        outs.push((
            norm_result(&tadd.json, false),
            arp_filter,
            snapshot(&cont, None),
        ));
    }
    assert_eq!(outs[0], outs[1]);
}

/// Our in-plugin host-local and the reference host-local, alternating on
/// one lease directory: no address is given twice, both release.
#[test]
fn shares_leases_with_reference_host_local() {
    let host = Ns::new("h-share");
    let data = TmpDir::new("share");
    let conts: Vec<Ns> = (0..6).map(|i| Ns::new(&format!("c-share{i}"))).collect();
    let conf = json!({"cniVersion": "1.0.0", "name": "sharenet", "type": "bridge", "bridge": "cni9",
        "ipam": {"type": "host-local", "subnet": "10.77.0.0/24", "dataDir": data.path()}});
    let mut seen = Vec::new();
    for (i, c) in conts.iter().enumerate() {
        let id = format!("ctr{i}");
        let mut call = Call::new(ours(), &host, "ADD", &id, c);
        if i % 2 == 1 {
            // Our plugin, delegating to the reference host-local.
            call.extra
                .push(("NETNS_BRIDGE_DELEGATE_IPAM".into(), "1".into()));
        }
        let out = call.run(&conf);
        assert!(out.ok, "{}", out.raw);
        seen.push(out.json["ips"][0]["address"].as_str().unwrap().to_string());
    }
    let mut uniq = seen.clone();
    uniq.sort();
    uniq.dedup();
    assert_eq!(
        uniq.len(),
        seen.len(),
        "an address was given twice: {seen:?}"
    );
    assert_eq!(seen[0], "10.77.0.2/24");
    assert_eq!(seen[5], "10.77.0.7/24");
    assert_eq!(leases(&data.path(), "sharenet").len(), 6);
    // Each releases what the other allocated.
    for (i, c) in conts.iter().enumerate() {
        let id = format!("ctr{i}");
        let mut call = Call::new(ours(), &host, "DEL", &id, c);
        if i % 2 == 0 {
            call.extra
                .push(("NETNS_BRIDGE_DELEGATE_IPAM".into(), "1".into()));
        }
        assert!(call.run(&conf).ok);
    }
    assert!(leases(&data.path(), "sharenet").is_empty());
}

/// `forceAddress` with a bridge that already has another address in the
/// subnet: without it both refuse, with it both replace the address.
/// Difference on purpose: the refused ADD leaves the reference's veth pair
/// behind (it only releases the lease); ours removes it.
#[test]
fn force_address_on_a_bridge_with_another_address() {
    for (force, tag) in [(false, "fa0"), (true, "fa1")] {
        let mut seen = Vec::new();
        for plugin in [reference("bridge"), ours().to_string()] {
            let host = Ns::new(&format!("h-{tag}"));
            let cont = Ns::new(&format!("c-{tag}"));
            let data = TmpDir::new(tag);
            host.ip(&["link", "add", "cni0", "type", "bridge"]);
            host.ip(&["addr", "add", "10.88.0.254/16", "dev", "cni0"]);
            let mut conf = v4(json!({"isGateway": true, "forceAddress": force}), "1.0.0");
            conf["ipam"]["dataDir"] = json!(data.path());
            let add = Call::new(&plugin, &host, "ADD", "ctr1", &cont).run(&conf);
            let bridge_addrs: Vec<String> = host
                .ip(&["-4", "-br", "addr", "show", "cni0"])
                .split_whitespace()
                .filter(|w| w.contains('/'))
                .map(String::from)
                .collect();
            let veths = host.ip(&["-br", "link"]).matches("veth").count();
            assert!(leases(&data.path(), "testnet").len() == usize::from(add.ok));
            seen.push((add.ok, add.json["code"].clone(), bridge_addrs, veths));
        }
        let (theirs, ours) = (&seen[0], &seen[1]);
        assert_eq!(ours.0, force, "ours: {ours:?}");
        assert_eq!((ours.0, &ours.1, &ours.2), (theirs.0, &theirs.1, &theirs.2));
        if force {
            assert_eq!(ours.2, ["10.88.0.1/16"]);
            assert_eq!((ours.3, theirs.3), (1, 1));
        } else {
            assert_eq!((ours.3, theirs.3), (0, 1), "the failed ADD's veth");
        }
    }
}
