//! Spec 1.1.0: results in the 1.0.0 shape, GC (leases of attachments not
//! in `cni.dev/valid-attachments` released) and STATUS (code 50 when a
//! range set has no address left); both refused for older configurations.

mod common;

use common::*;
use serde_json::{Value, json};

fn conf(data: &TmpDir, subnet: &str, version: &str) -> Value {
    json!({"cniVersion": version, "name": "net11", "type": "netns-bridge", "bridge": "cni0",
        "ipam": {"type": "host-local", "subnet": subnet, "dataDir": data.path()}})
}

fn plain(host: &Ns, cmd: &str, conf: &Value) -> Out {
    let mut call = Call::new(ours(), host, cmd, "", host);
    call.netns = None;
    call.run(conf)
}

#[test]
fn gc_releases_the_leases_of_attachments_that_are_gone() {
    let host = Ns::new("h-gc");
    let data = TmpDir::new("gc");
    let pods: Vec<Ns> = (0..3).map(|i| Ns::new(&format!("pod-gc{i}"))).collect();
    let c = conf(&data, "10.55.0.0/24", "1.1.0");
    for (i, pod) in pods.iter().enumerate() {
        let out = Call::new(ours(), &host, "ADD", &format!("pod{i}"), pod).run(&c);
        assert!(out.ok, "{}", out.raw);
        assert_eq!(out.json["cniVersion"], "1.1.0");
        assert_eq!(
            out.json["ips"][0].get("version"),
            None,
            "1.1.0 results have 1.0.0's shape"
        );
    }
    assert_eq!(leases(&data.path(), "net11").len(), 3);
    let mut gc = c.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "pod1", "ifname": "eth0"}]);
    let out = plain(&host, "GC", &gc);
    assert!(out.ok, "{}", out.raw);
    assert_eq!(leases(&data.path(), "net11"), ["10.55.0.3"]);
    // A 1.0.0 configuration does not know GC.
    let mut old = gc.clone();
    old["cniVersion"] = json!("1.0.0");
    let out = plain(&host, "GC", &old);
    assert!(!out.ok);
    assert_eq!(out.json["code"], 1);
    assert!(Call::new(ours(), &host, "DEL", "pod1", &pods[1]).run(&c).ok);
}

#[test]
fn status_reports_an_exhausted_range() {
    let host = Ns::new("h-status");
    let data = TmpDir::new("status");
    let pod = Ns::new("pod-status");
    // Two addresses to give: .2 and .3 (.1 is the gateway).
    let c = conf(&data, "10.56.0.0/29", "1.1.0");
    let mut c = c;
    c["ipam"]["rangeEnd"] = json!("10.56.0.3");
    let out = plain(&host, "STATUS", &c);
    assert!(out.ok, "{}", out.raw);
    assert!(Call::new(ours(), &host, "ADD", "a", &pod).run(&c).ok);
    assert!(plain(&host, "STATUS", &c).ok);
    let mut call = Call::new(ours(), &host, "ADD", "b", &pod);
    call.ifname = "eth1";
    assert!(call.run(&c).ok);
    let out = plain(&host, "STATUS", &c);
    assert!(!out.ok);
    assert_eq!(out.json["code"], 50, "{}", out.raw);
    let mut old = c.clone();
    old["cniVersion"] = json!("0.4.0");
    assert_eq!(plain(&host, "STATUS", &old).json["code"], 1);
}
