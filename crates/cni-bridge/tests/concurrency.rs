//! 100 ADDs at once against one bridge (which none of them finds made),
//! then 100 DELs at once: every pod gets its own address, and afterwards no
//! veth, no lease and no fd is left.

mod common;

use common::*;
use serde_json::json;

#[test]
fn hundred_concurrent_adds_and_dels_on_one_bridge() {
    const N: usize = 100;
    let fds_before = testkit::open_fds();
    let host = Ns::new("h-conc");
    let data = TmpDir::new("conc");
    let pods: Vec<Ns> = (0..N).map(|i| Ns::new(&format!("pod-conc{i}"))).collect();
    let conf = json!({"cniVersion": "1.0.0", "name": "concnet", "type": "netns-bridge",
        "bridge": "cni0", "isDefaultGateway": true,
        "ipam": {"type": "host-local", "subnet": "10.60.0.0/16", "dataDir": data.path()}});
    let results: Vec<Out> = std::thread::scope(|s| {
        let handles: Vec<_> = pods
            .iter()
            .enumerate()
            .map(|(i, pod)| {
                let (host, conf) = (&host, &conf);
                s.spawn(move || Call::new(ours(), host, "ADD", &format!("pod{i}"), pod).run(conf))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut addrs: Vec<String> = results
        .iter()
        .map(|r| {
            assert!(r.ok, "ADD failed: {}", r.raw);
            r.json["ips"][0]["address"].as_str().unwrap().to_string()
        })
        .collect();
    addrs.sort();
    addrs.dedup();
    assert_eq!(addrs.len(), N, "an address was given twice");
    assert_eq!(leases(&data.path(), "concnet").len(), N);
    let ports = host
        .ip(&["link", "show", "master", "cni0"])
        .lines()
        .filter(|l| l.contains("veth"))
        .count();
    assert_eq!(ports, N);
    // One gateway address on the bridge, however many ADDs raced to put it.
    assert_eq!(
        host.ip(&["-4", "-br", "addr", "show", "cni0"])
            .matches("10.60.0.1/16")
            .count(),
        1
    );
    std::thread::scope(|s| {
        for (i, pod) in pods.iter().enumerate() {
            let (host, conf) = (&host, &conf);
            s.spawn(move || {
                let out = Call::new(ours(), host, "DEL", &format!("pod{i}"), pod).run(conf);
                assert!(out.ok, "DEL failed: {}", out.raw);
            });
        }
    });
    assert!(leases(&data.path(), "concnet").is_empty(), "leases left");
    assert_eq!(
        host.ip(&["-br", "link"])
            .lines()
            .filter(|l| l.contains("veth"))
            .count(),
        0,
        "veths left on the host"
    );
    for pod in &pods {
        assert_eq!(
            pod.ip(&["-br", "link"]).lines().count(),
            1,
            "a pod kept its eth0"
        );
    }
    drop(pods);
    drop(host);
    assert_eq!(testkit::open_fds(), fds_before, "fds leaked");
}
