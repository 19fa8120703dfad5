//! Test support: namespaces standing in for the host and for containers,
//! plugin calls as a runtime makes them, kernel state as `ip -j` shows it.
#![allow(dead_code, unreachable_pub)]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::{Map, Value, json};

/// Our plugin: the binary cargo built for these tests, or the one
/// `PLUGIN_UNDER_TEST` names (CI runs the differential and runtime tests
/// again on the installable build of `scripts/build-cni-plugin`).
pub fn ours() -> &'static str {
    static PATH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PATH.get_or_init(|| {
        std::env::var("PLUGIN_UNDER_TEST")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_netns-bridge").to_string())
    })
}
/// The reference plugins (Debian's containernetworking-plugins).
pub const REF_DIR: &str = "/usr/lib/cni";

pub fn reference(name: &str) -> String {
    let p = format!("{REF_DIR}/{name}");
    assert!(
        std::path::Path::new(&p).exists(),
        "{p} is missing: run scripts/setup (it installs containernetworking-plugins)"
    );
    p
}

/// A named namespace (in the sandbox's private /run/netns), removed on drop.
pub struct Ns {
    pub name: String,
}

impl Ns {
    pub fn new(name: &str) -> Ns {
        let _ = Command::new("ip")
            .args(["netns", "del", name])
            .stderr(Stdio::null())
            .status();
        let st = Command::new("ip")
            .args(["netns", "add", name])
            .status()
            .unwrap();
        assert!(st.success(), "ip netns add {name}");
        Ns { name: name.into() }
    }

    pub fn path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }

    /// Runs `ip -n NAME ARGS` and returns stdout.
    pub fn ip(&self, args: &[&str]) -> String {
        let mut a = vec!["-n", &self.name];
        a.extend_from_slice(args);
        let out = Command::new("ip").args(&a).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn ip_json(&self, args: &[&str]) -> Value {
        let mut a = vec!["-j"];
        a.extend_from_slice(args);
        serde_json::from_str(&self.ip(&a)).unwrap_or(Value::Array(vec![]))
    }

    pub fn sh(&self, script: &str) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.name, "sh", "-c", script])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Waits (bounded, 20 s) until `cond` holds: for what the kernel does
/// after the fact (a removed namespace's links go in a work queue).
pub fn eventually(what: &str, cond: impl Fn() -> bool) {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !cond() {
        assert!(
            std::time::Instant::now() < until,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// A temporary directory removed on drop (lease stores).
pub struct TmpDir(pub PathBuf);

impl TmpDir {
    pub fn new(name: &str) -> TmpDir {
        let p = std::env::temp_dir().join(format!("cni-bridge-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TmpDir(p)
    }

    pub fn path(&self) -> String {
        self.0.display().to_string()
    }
}

impl Drop for TmpDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One plugin call's answer.
#[derive(Debug)]
pub struct Out {
    pub ok: bool,
    pub json: Value,
    pub raw: String,
}

/// A plugin call as a runtime makes it, run inside `host`.
pub struct Call<'a> {
    pub plugin: &'a str,
    pub host: &'a Ns,
    pub cmd: &'a str,
    pub id: &'a str,
    pub netns: Option<String>,
    pub ifname: &'a str,
    pub path: String,
    pub extra: Vec<(String, String)>,
}

impl<'a> Call<'a> {
    pub fn new(plugin: &'a str, host: &'a Ns, cmd: &'a str, id: &'a str, netns: &Ns) -> Call<'a> {
        Call {
            plugin,
            host,
            cmd,
            id,
            netns: Some(netns.path()),
            ifname: "eth0",
            path: REF_DIR.into(),
            extra: Vec::new(),
        }
    }

    pub fn run(&self, conf: &Value) -> Out {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.host.name, self.plugin]);
        c.env_clear();
        c.env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
        c.env("CNI_COMMAND", self.cmd);
        c.env("CNI_CONTAINERID", self.id);
        if let Some(n) = &self.netns {
            c.env("CNI_NETNS", n);
        }
        c.env("CNI_IFNAME", self.ifname);
        c.env("CNI_PATH", &self.path);
        for (k, v) in &self.extra {
            c.env(k, v);
        }
        c.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(conf.to_string().as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let raw = String::from_utf8_lossy(&out.stdout).into_owned();
        let json = serde_json::from_str(&raw).unwrap_or(Value::Null);
        Out {
            ok: out.status.success(),
            json,
            raw,
        }
    }
}

fn norm_name(n: &str) -> String {
    if n.starts_with("veth") {
        "veth*".into()
    } else {
        n.to_string()
    }
}

/// Whether every link that is up has the operational state its carrier
/// gives (`LOWER_UP` is the carrier; the state follows by the link watch).
fn links_settled(links: &Value) -> bool {
    links.as_array().into_iter().flatten().all(|l| {
        let flags: Vec<&str> = l["flags"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        if !flags.contains(&"UP") {
            return true;
        }
        let carrier = flags.contains(&"LOWER_UP");
        let oper_up = !matches!(l["operstate"].as_str(), Some("DOWN" | "LOWERLAYERDOWN"));
        carrier == oper_up
    })
}

/// Links, addresses (no link-local ones: they follow MACs), routes and
/// the sysctls the bridge plugin touches, names of host veths (random)
/// normalized, MACs kept only if `keep_mac` names the link.
pub fn snapshot(ns: &Ns, keep_mac: Option<&str>) -> Value {
    // The kernel's link watch derives a link's operational state (and
    // IFF_RUNNING, and what addrconf does on a carrier change, such as an
    // IPv6 address going back to tentative) from its carrier a moment
    // after the fact: a fast plugin's state is read before it settled, a
    // slow one's after. Both are compared once settled.
    eventually("the link watch to settle", || {
        links_settled(&ns.ip_json(&["link", "show"]))
    });
    let links = ns.ip_json(&["-d", "link", "show"]);
    let mut out_links = Vec::new();
    for l in links.as_array().cloned().unwrap_or_default() {
        let name = l["ifname"].as_str().unwrap_or("").to_string();
        let info = &l["linkinfo"];
        let mut m = Map::new();
        m.insert("name".into(), json!(norm_name(&name)));
        m.insert("kind".into(), info["info_kind"].clone());
        m.insert("slave_kind".into(), info["info_slave_kind"].clone());
        m.insert("hairpin".into(), info["info_slave_data"]["hairpin"].clone());
        m.insert("master".into(), json!(l["master"].as_str().map(norm_name)));
        for k in ["mtu", "operstate", "flags", "promiscuity", "txqlen"] {
            m.insert(k.into(), l[k].clone());
        }
        // A bridge's carrier follows its ports a moment later (the kernel's
        // link watch): not the plugins' doing, and racy to compare.
        if info["info_kind"] == "bridge" {
            m.remove("operstate");
            if let Some(f) = m.get_mut("flags").and_then(Value::as_array_mut) {
                f.retain(|x| x != "NO-CARRIER" && x != "LOWER_UP");
            }
        }
        if keep_mac == Some(name.as_str()) {
            m.insert("address".into(), l["address"].clone());
        }
        out_links.push(Value::Object(m));
    }
    out_links.sort_by_key(|v| v.to_string());
    let mut addrs = Vec::new();
    for l in ns
        .ip_json(&["addr", "show"])
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        let name = norm_name(l["ifname"].as_str().unwrap_or(""));
        for a in l["addr_info"].as_array().cloned().unwrap_or_default() {
            if a["scope"] == "link" {
                continue;
            }
            addrs.push(
                json!({"dev": name, "family": a["family"], "local": a["local"],
                "prefixlen": a["prefixlen"], "scope": a["scope"],
                "tentative": a["tentative"], "dadfailed": a["dadfailed"]}),
            );
        }
    }
    addrs.sort_by_key(|v| v.to_string());
    let mut routes = Vec::new();
    for fam in ["-4", "-6"] {
        for r in ns
            .ip_json(&[fam, "route", "show", "table", "main"])
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            let dst = r["dst"].as_str().unwrap_or("");
            if dst.starts_with("fe80") {
                continue;
            }
            let mut r = r.clone();
            // "linkdown" follows the carrier (see the bridge above).
            if let Some(f) = r.get_mut("flags").and_then(Value::as_array_mut) {
                f.retain(|x| x != "linkdown");
            }
            if let Some(d) = r["dev"].as_str().map(norm_name) {
                r["dev"] = json!(d);
            }
            routes.push(r);
        }
    }
    routes.sort_by_key(|v| v.to_string());
    let sysctls = ns.sh(
        "cd /proc/sys/net; echo ip_forward=$(cat ipv4/ip_forward); \
         echo v6forwarding=$(cat ipv6/conf/all/forwarding); \
         for d in ipv6/conf/*; do i=${d##*/}; case $i in all|default) continue;; esac; \
           echo $i.accept_ra=$(cat $d/accept_ra) $i.accept_dad=$(cat $d/accept_dad) $i.disable_ipv6=$(cat $d/disable_ipv6) $i.arp_notify=$(cat ipv4/conf/$i/arp_notify); done",
    );
    let mut sys: Vec<String> = sysctls
        .split_whitespace()
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            let (iface, key) = k.split_once('.').unwrap_or(("", k));
            if iface.is_empty() {
                format!("{k}={v}")
            } else {
                format!("{}.{key}={v}", norm_name(iface))
            }
        })
        .collect();
    sys.sort();
    json!({"links": out_links, "addrs": addrs, "routes": routes, "sysctls": sys})
}

/// A result with the host veth's name and the MACs that differ by chance
/// normalized (the container's kept if `keep_mac`).
pub fn norm_result(v: &Value, keep_mac: bool) -> Value {
    let mut v = v.clone();
    if let Some(ifs) = v.get_mut("interfaces").and_then(Value::as_array_mut) {
        for i in ifs {
            let sandboxed = i.get("sandbox").is_some();
            if let Some(n) = i["name"].as_str().map(norm_name) {
                i["name"] = json!(n);
            }
            if i.get("mac").is_some() && !(keep_mac && sandboxed) {
                i["mac"] = json!("(mac)");
            }
        }
    }
    v
}

/// Whether a plugin left no lease in `dir`.
pub fn leases(dir: &str, net: &str) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(format!("{dir}/{net}")) else {
        return Vec::new();
    };
    let mut v: Vec<String> = rd
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.parse::<std::net::IpAddr>().is_ok())
        .collect();
    v.sort();
    v
}
