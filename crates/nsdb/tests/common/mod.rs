//! Helpers shared by the nsdb integration tests: namespaces made for one
//! test and removed by a guard, `ip` runs, view-vs-dump comparison.
#![allow(dead_code, unreachable_pub)]

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nsdb::{Namespace, NsState, View};
use nsfs::{NsName, OpenMode, RunDir};
pub use testkit::require_root;

/// Namespaces made for one test; removed on drop.
pub struct Namespaces {
    pub names: Vec<NsName>,
}

impl Namespaces {
    pub async fn create(names: &[&str]) -> Namespaces {
        require_root();
        let dir = RunDir::default();
        let mut out = Namespaces { names: Vec::new() };
        for n in names {
            let name = NsName::new(*n).unwrap();
            dir.create(&name, OpenMode::CreateExclusive).await.unwrap();
            out.names.push(name);
        }
        out
    }

    pub fn ns(&self, i: usize) -> Namespace {
        Namespace::Named(self.names[i].clone())
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for n in &self.names {
            let _ = Command::new("ip")
                .args(["netns", "del", n.as_str()])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Runs `ip -n NS -batch -` with `lines` on stdin (`-force`: keep going).
pub fn ip_batch(ns: &str, lines: &[String]) {
    let mut child = Command::new("ip")
        .args(["-n", ns, "-force", "-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ip -batch");
    {
        let mut stdin = child.stdin.take().unwrap();
        for l in lines {
            writeln!(stdin, "{l}").unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "ip -batch in {ns}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Turns IPv6 off in `ns` (all + default), so a test's state holds still.
pub async fn disable_ipv6(ns: &NsName) {
    let netns = RunDir::default().open(ns).unwrap();
    netns
        .run(|| {
            for f in ["all", "default"] {
                std::fs::write(format!("/proc/sys/net/ipv6/conf/{f}/disable_ipv6"), "1").unwrap();
            }
        })
        .await
        .unwrap();
}

/// Waits (up to 10 s) until the view of `ns` equals a fresh dump, taken
/// again each round; panics with the difference if it never does.
pub async fn assert_view_matches_dump(view: &View, ns: &Namespace) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let fresh = view.dump(ns).await.unwrap();
        let snap = view.snapshot();
        let v = snap.namespace(ns).expect("namespace in view");
        if v.status().is_live() && *v.state() == fresh {
            return;
        }
        if Instant::now() > deadline {
            panic!(
                "view of {ns} ({:?}) differs from a fresh dump:\n{}",
                v.status(),
                describe_diff(v.state(), &fresh)
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `state` without what the kernel settles on its own after a link is set
/// up or its peer moves: the operational state (`RUNNING`, `LOWER_UP`,
/// operstate), which linkwatch updates later (deferred up to a second), so
/// a dump taken right after a rollback may catch a port with its carrier
/// still down.
pub fn without_carrier(mut state: NsState) -> NsState {
    for l in state.links.values_mut() {
        l.flags &= !(libc::IFF_RUNNING as u32 | libc::IFF_LOWER_UP as u32);
        l.oper_state = None;
    }
    state
}

pub fn describe_diff(view: &NsState, fresh: &NsState) -> String {
    let mut out = String::new();
    diff_into(&mut out, "link", &view.links, &fresh.links);
    diff_into(&mut out, "addr", &view.addresses, &fresh.addresses);
    diff_into(&mut out, "route", &view.routes, &fresh.routes);
    out
}

/// Appends to `out` each entry of `view` that `fresh` lacks or has otherwise,
/// then each entry of `fresh` that `view` lacks.
fn diff_into<K: Ord, V: PartialEq + std::fmt::Debug>(
    out: &mut String,
    what: &str,
    view: &std::collections::BTreeMap<K, V>,
    fresh: &std::collections::BTreeMap<K, V>,
) {
    for (k, v) in view {
        if fresh.get(k) != Some(v) {
            out.push_str(&format!("view {what} {v:?}\n dump {:?}\n", fresh.get(k)));
        }
    }
    for (k, v) in fresh {
        if !view.contains_key(k) {
            out.push_str(&format!("missing {what} {v:?}\n"));
        }
    }
}

/// A view of exactly `namespaces`, with the builder's defaults.
pub async fn view_of(namespaces: &[&Namespace]) -> View {
    let mut builder = View::builder();
    for ns in namespaces {
        builder = builder.namespace((*ns).clone());
    }
    builder.build().await.unwrap()
}

/// A view of `ns` with the smallest receive buffer the kernel allows: a
/// burst of changes overruns it.
pub async fn overrunnable_view(ns: &Namespace) -> View {
    View::builder()
        .namespace(ns.clone())
        .receive_buffer(1)
        .build()
        .await
        .unwrap()
}

/// Runs `ip ARGS`; panics with its stderr on failure.
pub fn ip(args: &[&str]) {
    testkit::ip(args);
}

/// Adds the veth pair `a`/`b` in namespace `ns`.
pub fn add_veth(ns: &str, a: &str, b: &str) {
    ip(&[
        "-n", ns, "link", "add", a, "type", "veth", "peer", "name", b,
    ]);
}
