//! Every error path the spec defines answers with the spec's error JSON and
//! the right code, and a failed ADD leaves nothing half made: no veth on
//! either side, no lease, no bridge it created.

mod common;

use common::*;
use serde_json::{Value, json};

fn conf(data: &TmpDir, subnet: &str) -> Value {
    json!({"cniVersion": "1.0.0", "name": "errnet", "type": "netns-bridge", "bridge": "cni0",
        "isGateway": true,
        "ipam": {"type": "host-local", "subnet": subnet, "dataDir": data.path()}})
}

fn host_links(host: &Ns) -> Vec<String> {
    let mut v: Vec<String> = host
        .ip_json(&["link", "show"])
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["ifname"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

fn assert_error(out: &Out, code: u64) {
    assert!(!out.ok, "expected an error, got {}", out.raw);
    assert_eq!(out.json["code"], code, "{}", out.raw);
    assert!(
        out.json["msg"].as_str().is_some_and(|m| !m.is_empty()),
        "{}",
        out.raw
    );
}

#[test]
fn unknown_version_is_code_1_and_changes_nothing() {
    let host = Ns::new("h-ever");
    let cont = Ns::new("c-ever");
    let data = TmpDir::new("ever");
    for v in ["0.2.0", "9.9.9"] {
        let mut c = conf(&data, "10.70.0.0/24");
        c["cniVersion"] = json!(v);
        let out = Call::new(ours(), &host, "ADD", "ctr1", &cont).run(&c);
        assert_error(&out, 1);
        assert_eq!(out.json["cniVersion"], v);
    }
    assert_eq!(host_links(&host), ["lo"]);
    assert!(leases(&data.path(), "errnet").is_empty());
}

#[test]
fn missing_or_bad_environment_is_code_4() {
    let host = Ns::new("h-eenv");
    let cont = Ns::new("c-eenv");
    let data = TmpDir::new("eenv");
    let c = conf(&data, "10.70.1.0/24");
    let mut call = Call::new(ours(), &host, "ADD", "ctr1", &cont);
    call.netns = None;
    let out = call.run(&c);
    assert_error(&out, 4);
    assert!(out.json["msg"].as_str().unwrap().contains("CNI_NETNS"));
    let mut call = Call::new(ours(), &host, "ADD", "ctr1", &cont);
    call.ifname = "a/b";
    assert_error(&call.run(&c), 4);
    let call = Call::new(ours(), &host, "FROB", "ctr1", &cont);
    assert_error(&call.run(&c), 4);
    // DEL needs no CNI_NETNS.
    let mut call = Call::new(ours(), &host, "DEL", "ctr1", &cont);
    call.netns = None;
    assert!(call.run(&c).ok);
    assert_eq!(host_links(&host), ["lo"]);
}

#[test]
fn a_path_that_is_not_a_namespace_is_code_3() {
    let host = Ns::new("h-ens");
    let cont = Ns::new("c-ens");
    let data = TmpDir::new("ens");
    let file = data.0.join("not-a-netns");
    std::fs::write(&file, "x").unwrap();
    let c = conf(&data, "10.70.2.0/24");
    for path in [file.display().to_string(), "/run/netns/nonexistent".into()] {
        let mut call = Call::new(ours(), &host, "ADD", "ctr1", &cont);
        call.netns = Some(path);
        assert_error(&call.run(&c), 3);
        // Idempotent DEL: a namespace that is not there is nothing to undo.
        let mut call = Call::new(ours(), &host, "DEL", "ctr1", &cont);
        call.netns = Some("/run/netns/nonexistent".into());
        assert!(call.run(&c).ok);
    }
    assert_eq!(host_links(&host), ["lo"]);
    assert!(leases(&data.path(), "errnet").is_empty());
}

#[test]
fn invalid_configurations() {
    let host = Ns::new("h-econf");
    let cont = Ns::new("c-econf");
    let data = TmpDir::new("econf");
    let call = Call::new(ours(), &host, "ADD", "ctr1", &cont);
    // Not JSON: decoding failure.
    let out = {
        let mut cmd = std::process::Command::new("ip");
        cmd.args(["netns", "exec", &host.name, ours()])
            .env_clear()
            .env("CNI_COMMAND", "ADD")
            .env("CNI_CONTAINERID", "ctr1")
            .env("CNI_NETNS", cont.path())
            .env("CNI_IFNAME", "eth0")
            .env("CNI_PATH", REF_DIR)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(b"{not json").unwrap();
        child.wait_with_output().unwrap()
    };
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(!out.status.success());
    assert_eq!(json["code"], 6);
    // No name, a subnet with host bits, an unsupported key.
    let mut no_name = conf(&data, "10.70.3.0/24");
    no_name.as_object_mut().unwrap().remove("name");
    assert_error(&call.run(&no_name), 7);
    assert_error(&call.run(&conf(&data, "10.70.3.1/24")), 7);
    let mut vlan = conf(&data, "10.70.3.0/24");
    vlan["vlan"] = json!(10);
    let out = call.run(&vlan);
    assert_error(&out, 2);
    assert!(out.json["msg"].as_str().unwrap().contains("vlan"));
    let mut both = conf(&data, "10.70.3.0/24");
    both["hairpinMode"] = json!(true);
    both["promiscMode"] = json!(true);
    assert_error(&call.run(&both), 7);
    assert_eq!(host_links(&host), ["lo"]);
    assert!(leases(&data.path(), "errnet").is_empty());
}

#[test]
fn ipam_failure_leaves_nothing() {
    let host = Ns::new("h-eipam");
    let c1 = Ns::new("c-eipam1");
    let c2 = Ns::new("c-eipam2");
    let data = TmpDir::new("eipam");
    // A /30 with its gateway at .1 has one address to give.
    let c = conf(&data, "10.70.4.0/30");
    assert!(Call::new(ours(), &host, "ADD", "ctr1", &c1).run(&c).ok);
    let before = host_links(&host);
    let out = Call::new(ours(), &host, "ADD", "ctr2", &c2).run(&c);
    assert_error(&out, 999);
    assert!(
        out.json["msg"]
            .as_str()
            .unwrap()
            .contains("no IP addresses available"),
        "{}",
        out.raw
    );
    assert_eq!(host_links(&host), before, "a host veth was left");
    assert_eq!(
        c2.ip(&["-br", "link"]).lines().count(),
        1,
        "a container veth was left"
    );
    assert_eq!(leases(&data.path(), "errnet"), ["10.70.4.2"]);
    // A delegated IPAM plugin that does not exist: same, through delegation.
    let mut d = c.clone();
    d["ipam"]["type"] = json!("no-such-ipam");
    assert!(!Call::new(ours(), &host, "ADD", "ctr3", &c2).run(&d).ok);
    assert_eq!(host_links(&host), before);
    assert!(Call::new(ours(), &host, "DEL", "ctr1", &c1).run(&c).ok);
    assert!(leases(&data.path(), "errnet").is_empty());
}

#[test]
fn failed_add_removes_the_bridge_it_made() {
    let host = Ns::new("h-ebr");
    let cont = Ns::new("c-ebr");
    let data = TmpDir::new("ebr");
    let mut c = conf(&data, "10.70.5.0/24");
    c["ipam"]["type"] = json!("no-such-ipam");
    let out = Call::new(ours(), &host, "ADD", "ctr1", &cont).run(&c);
    assert!(!out.ok);
    assert_eq!(
        host_links(&host),
        ["lo"],
        "the bridge made by the failed ADD is left"
    );
}

#[test]
fn interface_name_taken_in_the_container() {
    let host = Ns::new("h-etaken");
    let cont = Ns::new("c-etaken");
    let data = TmpDir::new("etaken");
    cont.ip(&[
        "link", "add", "eth0", "type", "veth", "peer", "name", "other0",
    ]);
    let c = conf(&data, "10.70.6.0/24");
    let out = Call::new(ours(), &host, "ADD", "ctr1", &cont).run(&c);
    assert_error(&out, 999);
    assert!(
        out.json["msg"].as_str().unwrap().contains("already exists"),
        "{}",
        out.raw
    );
    assert_eq!(host_links(&host), ["lo"]);
    assert!(leases(&data.path(), "errnet").is_empty());
    // The container's own eth0 is untouched.
    assert!(cont.ip(&["link", "show", "eth0"]).contains("other0"));
}

#[test]
fn del_after_the_namespace_was_removed() {
    let host = Ns::new("h-egone");
    let cont = Ns::new("c-egone");
    let data = TmpDir::new("egone");
    let c = conf(&data, "10.70.7.0/24");
    assert!(Call::new(ours(), &host, "ADD", "ctr1", &cont).run(&c).ok);
    let path = cont.path();
    drop(cont);
    // Removing the namespace took the pair with it.
    eventually("the host veth to go", || {
        host_links(&host) == ["cni0", "lo"]
    });
    let mut del = Call::new(ours(), &host, "DEL", "ctr1", &host);
    del.netns = Some(path);
    assert!(del.run(&c).ok);
    assert!(del.run(&c).ok, "a second DEL");
    assert!(leases(&data.path(), "errnet").is_empty());
}

#[test]
fn check_detects_a_removed_address() {
    let host = Ns::new("h-echeck");
    let cont = Ns::new("c-echeck");
    let data = TmpDir::new("echeck");
    let c = conf(&data, "10.70.8.0/24");
    let add = Call::new(ours(), &host, "ADD", "ctr1", &cont).run(&c);
    assert!(add.ok);
    let mut with_prev = c.clone();
    with_prev["prevResult"] = add.json.clone();
    assert!(
        Call::new(ours(), &host, "CHECK", "ctr1", &cont)
            .run(&with_prev)
            .ok
    );
    cont.ip(&["addr", "del", "10.70.8.2/24", "dev", "eth0"]);
    let out = Call::new(ours(), &host, "CHECK", "ctr1", &cont).run(&with_prev);
    assert!(!out.ok);
    assert!(
        out.json["msg"].as_str().unwrap().contains("10.70.8.2/24"),
        "{}",
        out.raw
    );
    // Without prevResult CHECK cannot work.
    assert!(!Call::new(ours(), &host, "CHECK", "ctr1", &cont).run(&c).ok);
    assert!(Call::new(ours(), &host, "DEL", "ctr1", &cont).run(&c).ok);
}

#[test]
fn version_answers_the_supported_versions() {
    let host = Ns::new("h-ever2");
    let mut call = Call::new(ours(), &host, "VERSION", "", &host);
    call.netns = None;
    let out = call.run(&json!({"cniVersion": "0.4.0"}));
    assert!(out.ok);
    assert_eq!(
        out.json,
        json!({"cniVersion": "0.4.0", "supportedVersions": ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]})
    );
}
