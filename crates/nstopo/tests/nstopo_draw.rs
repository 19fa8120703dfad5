//! Drawing a live network built with `ip`: three namespaces, a veth pair
//! between the first two, a bridge in the second with a port whose peer is
//! in the third. The drawing follows the kernel (a link deleted by hand
//! disappears from it), restricts to the namespaces asked for, and renders
//! to SVG through Graphviz.

use std::process::{Command, Stdio};
use std::time::Duration;

use nsdb::{Namespace, View};
use nsfs::{NsName, OpenMode, RunDir};
use nstopo::{DrawFormat, Drawing};

/// Namespaces made for one test; removed on drop.
struct Namespaces(Vec<NsName>);

impl Namespaces {
    async fn create(names: &[&str]) -> Namespaces {
        testkit::require_root();
        let dir = RunDir::default();
        let mut out = Namespaces(Vec::new());
        for n in names {
            let name = NsName::new(*n).unwrap();
            dir.create(&name, OpenMode::CreateExclusive).await.unwrap();
            out.0.push(name);
        }
        out
    }

    fn ns(&self, i: usize) -> Namespace {
        Namespace::Named(self.0[i].clone())
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = Command::new("ip")
                .args(["netns", "del", n.as_str()])
                .stderr(Stdio::null())
                .status();
        }
    }
}

fn ip(ns: &str, args: &str) {
    let mut all = vec!["-n", ns];
    all.extend(args.split_whitespace());
    testkit::ip(&all);
}

#[tokio::test]
async fn draws_what_the_kernel_has() {
    let nss = Namespaces::create(&["dr-a", "dr-b", "dr-c"]).await;
    let (a, b, c) = (nss.ns(0), nss.ns(1), nss.ns(2));
    ip("dr-a", "link add eth1 type veth peer name eth1 netns dr-b");
    ip("dr-a", "addr add 10.0.0.1/30 dev eth1");
    ip("dr-a", "addr add 10.255.0.1/32 dev lo");
    ip("dr-a", "link set eth1 up");
    ip("dr-b", "addr add 10.0.0.2/30 dev eth1");
    ip("dr-b", "link set eth1 up");
    ip("dr-b", "link add br0 type bridge");
    ip("dr-b", "addr add 192.168.7.1/24 dev br0");
    ip("dr-b", "link add p0 type veth peer name eth0 netns dr-c");
    ip("dr-b", "link set p0 master br0");
    ip("dr-b", "link set p0 up");
    ip("dr-b", "link set br0 up");
    ip("dr-c", "addr add 192.168.7.2/24 dev eth0");
    ip("dr-c", "link set eth0 up");

    let view = testkit::guard(
        View::builder()
            .namespace(a.clone())
            .namespace(b.clone())
            .namespace(c.clone())
            .build(),
    )
    .await
    .unwrap();
    let all = Drawing::of_namespaces(&view.snapshot(), &[a.clone(), b.clone(), c.clone()]);
    let dot = all.dot();
    assert_eq!((all.namespace_count(), all.veth_count()), (3, 2), "{dot}");
    for want in [
        r#""ns:dr-a" [label="dr-a\nlo 10.255.0.1/32""#,
        r#""br:dr-b:br0" [label="br0\n192.168.7.1/24""#,
        r#""ns:dr-b" -- "br:dr-b:br0" [style=dotted]"#,
        r#""ns:dr-a" -- "ns:dr-b" [label="eth1 10.0.0.1/30\neth1 10.0.0.2/30"]"#,
        r#""br:dr-b:br0" -- "ns:dr-c" [label="p0\neth0 192.168.7.2/24"]"#,
    ] {
        assert!(dot.contains(want), "missing {want} in\n{dot}");
    }
    // Listed twice, drawn once.
    let twice = Drawing::of_namespaces(&view.snapshot(), &[a.clone(), b.clone(), a.clone()]);
    assert_eq!(
        (twice.namespace_count(), twice.veth_count()),
        (2, 2),
        "{}",
        twice.dot()
    );
    assert_eq!(twice.dot().matches("\"br:dr-b:br0\" [label").count(), 1);
    let mermaid = all.mermaid();
    assert!(
        mermaid.contains(r#"n0 ---|"eth1 10.0.0.1/30 ~ eth1 10.0.0.2/30"| n1"#),
        "{mermaid}"
    );

    // Restricted to two of them: the bridge port's other end is named
    // (the view covers dr-c) but not drawn as a namespace.
    let two = Drawing::of_namespaces(&view.snapshot(), &[a.clone(), b.clone()]);
    let dot = two.dot();
    assert_eq!(two.namespace_count(), 2, "{dot}");
    assert!(
        dot.contains(r#""outside:dr-c" [label="dr-c\n(not drawn)""#),
        "{dot}"
    );
    assert!(!dot.contains("\"ns:dr-c\""), "{dot}");

    // A link deleted by hand leaves the picture.
    ip("dr-a", "link del eth1");
    view.wait_for("eth1 gone from dr-b", Duration::from_secs(10), |s| {
        s.link(&b, "eth1").is_none()
    })
    .await
    .unwrap();
    let after = Drawing::of_namespaces(&view.snapshot(), &[a, b, c]);
    assert_eq!(after.veth_count(), 1, "{}", after.dot());
    assert!(!after.dot().contains("10.0.0.1/30"));

    let svg = testkit::guard(after.render(DrawFormat::Svg)).await.unwrap();
    let svg = String::from_utf8(svg).unwrap();
    assert!(svg.starts_with("<?xml") && svg.contains("<svg"), "{svg}");
    assert!(svg.contains("192.168.7.2/24"), "{svg}");
}
