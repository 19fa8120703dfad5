//! A CNI runtime drives the plugin as in production: `cnirun`
//! (tests/runtime/cnirun.go, a cnitool on libcni, the library containerd,
//! CRI-O and podman's CNI backend use), built here with Debian's Go from
//! Debian's libcni source (scripts/setup installs both), runs a conflist
//! of `netns-bridge` chained with the reference `tuning` for several pods:
//! ADD (libcni caches each result), CHECK (libcni hands the cached result
//! down the chain as prevResult), DEL.

mod common;

use std::os::unix::fs::symlink;
use std::process::Command;

use common::*;
use serde_json::json;

const GOPATH: &str = "/usr/share/gocode";

/// Builds cnirun into `dir`.
fn build_cnirun(dir: &TmpDir) -> String {
    let libcni = format!("{GOPATH}/src/github.com/containernetworking/cni/libcni");
    assert!(
        std::path::Path::new(&libcni).exists()
            && Command::new("go").arg("version").output().is_ok(),
        "Go and libcni's source are missing: run scripts/setup (golang-go, golang-github-appc-cni-dev)"
    );
    let out = format!("{}/cnirun", dir.path());
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/runtime/cnirun.go");
    let st = Command::new("go")
        .args(["build", "-o", &out, src])
        .env("GO111MODULE", "off")
        .env("GOPATH", GOPATH)
        .env("GOCACHE", format!("{}/gocache", dir.path()))
        .env("GOFLAGS", "")
        .status()
        .unwrap();
    assert!(st.success(), "go build of cnirun failed");
    out
}

struct Runtime<'a> {
    bin: String,
    host: &'a Ns,
    dir: &'a TmpDir,
}

impl Runtime<'_> {
    fn run(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.host.name, &self.bin])
            .args(args)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("NETCONFPATH", format!("{}/net.d", self.dir.path()))
            .env("CNI_PATH", format!("{}/bin", self.dir.path()))
            .env("CNI_CACHE_DIR", format!("{}/cache", self.dir.path()))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text)
    }
}

#[test]
fn libcni_runtime_with_several_pods() {
    let dir = TmpDir::new("runtime");
    let bin = build_cnirun(&dir);
    let host = Ns::new("h-rt");
    let pods: Vec<Ns> = (0..5).map(|i| Ns::new(&format!("pod-rt{i}"))).collect();
    // The plugin directory: ours and the reference plugins it chains with.
    std::fs::create_dir_all(format!("{}/bin", dir.path())).unwrap();
    symlink(ours(), format!("{}/bin/netns-bridge", dir.path())).unwrap();
    for p in ["tuning", "host-local"] {
        symlink(reference(p), format!("{}/bin/{p}", dir.path())).unwrap();
    }
    std::fs::create_dir_all(format!("{}/net.d", dir.path())).unwrap();
    let conflist = json!({
        "cniVersion": "1.0.0",
        "name": "podnet",
        "plugins": [
            {"type": "netns-bridge", "bridge": "cni0", "isDefaultGateway": true,
             "ipam": {"type": "host-local", "subnet": "10.66.0.0/24",
                      "dataDir": format!("{}/leases", dir.path())}},
            {"type": "tuning", "sysctl": {"net.ipv4.conf.eth0.arp_filter": "1"}}
        ]
    });
    std::fs::write(
        format!("{}/net.d/10-podnet.conflist", dir.path()),
        conflist.to_string(),
    )
    .unwrap();
    let rt = Runtime {
        bin,
        host: &host,
        dir: &dir,
    };
    let mut addrs = Vec::new();
    for (i, pod) in pods.iter().enumerate() {
        let (ok, out) = rt.run(&["add", "podnet", &pod.path(), &format!("pod{i}")]);
        assert!(ok, "cnirun add: {out}");
        let result: serde_json::Value = serde_json::from_str(&out).unwrap();
        addrs.push(result["ips"][0]["address"].as_str().unwrap().to_string());
        assert_eq!(
            pod.sh("cat /proc/sys/net/ipv4/conf/eth0/arp_filter").trim(),
            "1"
        );
        assert!(pod.ip(&["route"]).contains("default via 10.66.0.1"));
    }
    let expect: Vec<String> = (2..7).map(|i| format!("10.66.0.{i}/24")).collect();
    assert_eq!(addrs, expect);
    let ports = host
        .ip(&["link", "show", "master", "cni0"])
        .lines()
        .filter(|l| l.contains("veth"))
        .count();
    assert_eq!(ports, 5);
    for (i, pod) in pods.iter().enumerate() {
        let (ok, out) = rt.run(&["check", "podnet", &pod.path(), &format!("pod{i}")]);
        assert!(ok, "cnirun check: {out}");
    }
    // CHECK through the runtime sees a pod's address removed.
    pods[0].ip(&["addr", "flush", "dev", "eth0"]);
    let (ok, _) = rt.run(&["check", "podnet", &pods[0].path(), "pod0"]);
    assert!(!ok, "CHECK missed a removed address");
    for (i, pod) in pods.iter().enumerate() {
        let (ok, out) = rt.run(&["del", "podnet", &pod.path(), &format!("pod{i}")]);
        assert!(ok, "cnirun del: {out}");
    }
    assert!(leases(&format!("{}/leases", dir.path()), "podnet").is_empty());
    assert_eq!(
        host.ip(&["-br", "link"])
            .lines()
            .filter(|l| l.contains("veth"))
            .count(),
        0
    );
}
