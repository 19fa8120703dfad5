//! Links moved into namespaces given by name, path, NetNs, handle or pid; veth
//! peers created directly in another namespace; typed errors for a missing
//! destination or link.

mod common;

use common::{Ns, link_names};
use netns::{Handle, Target};

async fn pair(transport: netns::Transport) -> (Ns, Ns, Handle, Handle) {
    let a = Ns::new("la").await;
    let b = Ns::new("lb").await;
    let ha = common::open(a.name(), transport).await;
    let hb = common::open(b.name(), transport).await;
    (a, b, ha, hb)
}

both_transports! {
async fn move_by_name_index_and_rename(transport) {
    let (_a, b, ha, hb) = pair(transport).await;
    ha.add_veth("m0", "m1").execute().await.unwrap();
    ha.add_veth("m2", "m3").execute().await.unwrap();

    // By link name, to a namespace name.
    ha.move_link("m1", b.name()).execute().await.unwrap();
    // By index, to a path, renamed in the same request.
    let idx = ha.link_index("m3").await.unwrap();
    let path = format!("/run/netns/{}", b.name());
    ha.move_link(idx, path.as_str())
        .rename("eth7")
        .execute()
        .await
        .unwrap();

    assert_eq!(link_names(&ha).await, ["lo", "m0", "m2"]);
    assert_eq!(link_names(&hb).await, ["eth7", "lo", "m1"]);

    // Back, to a NetNs and to a Handle.
    hb.move_link("m1", ha.netns().clone())
        .execute()
        .await
        .unwrap();
    hb.move_link("eth7", &ha)
        .rename("m3")
        .execute()
        .await
        .unwrap();
    assert_eq!(link_names(&ha).await, ["lo", "m0", "m1", "m2", "m3"]);
    assert_eq!(link_names(&hb).await, ["lo"]);
}

async fn move_to_the_namespace_of_a_pid(transport) {
    let (_a, _b, ha, hb) = pair(transport).await;
    ha.add_veth("p0", "p1").execute().await.unwrap();
    let mut child = hb.spawn(["sleep", "30"]).await.unwrap();
    let pid = child.id().expect("a running child") as i32;
    ha.move_link("p1", Target::Pid(pid))
        .execute()
        .await
        .unwrap();
    child.kill().await.unwrap();
    let _ = child.wait().await;
    assert_eq!(link_names(&hb).await, ["lo", "p1"]);
}

async fn veth_peer_created_in_another_namespace(transport) {
    let (_a, b, ha, hb) = pair(transport).await;
    ha.add_veth("v0", "v1")
        .peer_netns(b.name())
        .execute()
        .await
        .unwrap();
    assert_eq!(link_names(&ha).await, ["lo", "v0"]);
    assert_eq!(link_names(&hb).await, ["lo", "v1"]);
    // And given as a handle.
    ha.add_veth("w0", "w1")
        .peer_netns(&hb)
        .execute()
        .await
        .unwrap();
    assert_eq!(link_names(&hb).await, ["lo", "v1", "w1"]);
    // The same name again is the kernel's EEXIST.
    let err = ha.add_veth("v0", "x1").execute().await.unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EEXIST), "{err}");
}

async fn veth_attributes_set_in_the_creating_request(transport) {
    use futures::TryStreamExt;
    use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
    async fn get(h: &Handle, name: &str) -> LinkMessage {
        h.rtnetlink()
            .link()
            .get()
            .match_name(name.to_string())
            .execute()
            .try_next()
            .await
            .unwrap()
            .unwrap()
    }
    fn find<T>(m: &LinkMessage, f: impl Fn(&LinkAttribute) -> Option<T>) -> Option<T> {
        m.attributes.iter().find_map(f)
    }
    let (_a, b, ha, hb) = pair(transport).await;
    ha.rtnetlink()
        .link()
        .add(rtnetlink::LinkBridge::new("br0").build())
        .execute()
        .await
        .unwrap();
    let br = ha.link_index("br0").await.unwrap();
    let mac = vec![0x02, 0x11, 0x22, 0x33, 0x44, 0x55];
    ha.add_veth("s0", "s1")
        .peer_netns(b.name())
        .mtu(1400)
        .peer_address(mac.clone())
        .controller(br)
        .up()
        .execute()
        .await
        .unwrap();
    let here = get(&ha, "s0").await;
    let there = get(&hb, "s1").await;
    let mtu = |a: &LinkAttribute| match a {
        LinkAttribute::Mtu(m) => Some(*m),
        _ => None,
    };
    assert_eq!(find(&here, mtu), Some(1400));
    assert_eq!(find(&there, mtu), Some(1400));
    let master = |a: &LinkAttribute| match a {
        LinkAttribute::Controller(i) => Some(*i),
        _ => None,
    };
    assert_eq!(find(&here, master), Some(br));
    assert_eq!(find(&there, master), None);
    assert!(here.header.flags.contains(LinkFlags::Up));
    assert!(!there.header.flags.contains(LinkFlags::Up));
    let address = |a: &LinkAttribute| match a {
        LinkAttribute::Address(m) => Some(m.clone()),
        _ => None,
    };
    assert_eq!(find(&there, address), Some(mac));
    // Without the setters: the kernel's defaults, as before.
    ha.add_veth("d0", "d1").execute().await.unwrap();
    let d0 = get(&ha, "d0").await;
    assert_eq!(find(&d0, mtu), Some(1500));
    assert_eq!(find(&d0, master), None);
    assert!(!d0.header.flags.contains(LinkFlags::Up));
}

async fn missing_destination_is_not_found_before_sending(transport) {
    let (_a, _b, ha, _hb) = pair(transport).await;
    ha.add_veth("n0", "n1").execute().await.unwrap();
    let missing = common::unique("missing");
    let err = ha
        .move_link("n1", missing.as_str())
        .execute()
        .await
        .unwrap_err();
    assert!(
        matches!(err, netns::Error::Namespace(nsfs::Error::NotFound { .. })),
        "{err}"
    );
    let err = ha
        .add_veth("n2", "n3")
        .peer_netns(missing.as_str())
        .execute()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound, "{err}");
    let err = ha
        .move_link("n1", Target::Pid(i32::MAX))
        .execute()
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            netns::Error::Namespace(nsfs::Error::NoSuchProcess { .. })
        ),
        "{err}"
    );
    let err = ha.move_link("n1", "bad\0name").execute().await.unwrap_err();
    assert!(
        matches!(
            err,
            netns::Error::Namespace(nsfs::Error::InvalidName { .. })
        ),
        "{err}"
    );
    // Nothing was sent: the link is still here, nothing was created.
    assert_eq!(link_names(&ha).await, ["lo", "n0", "n1"]);
}

async fn missing_link_is_typed(transport) {
    let (_a, b, ha, _hb) = pair(transport).await;
    let err = ha.move_link("nope0", b.name()).execute().await.unwrap_err();
    assert!(matches!(err, netns::Error::LinkNotFound { .. }), "{err}");
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    let err = ha.move_link(4242u32, b.name()).execute().await.unwrap_err();
    assert!(matches!(err, netns::Error::LinkNotFound { .. }), "{err}");
    let err = ha.link_index("nope0").await.unwrap_err();
    assert!(matches!(err, netns::Error::LinkNotFound { .. }), "{err}");
    assert_eq!(ha.link_index("lo").await.unwrap(), 1);
}

async fn rejected_move_carries_the_kernel_message(transport) {
    let (_a, b, ha, hb) = pair(transport).await;
    ha.add_veth("c0", "c1").execute().await.unwrap();
    hb.add_veth("c1", "c2").execute().await.unwrap();
    // b already has a c1: the kernel refuses the move.
    let err = ha.move_link("c1", b.name()).execute().await.unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EEXIST), "{err}");
    // lo cannot change namespace.
    let err = ha.move_link("lo", b.name()).execute().await.unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EINVAL), "{err}");
    let said = err.kernel_message().expect("the kernel's extended-ack message");
    assert!(err.to_string().contains(&said), "{err}");
}

}

// Regression: a move whose future was dropped after its request was queued
// closed the destination's fd at once, before the connection task sent the
// request: a namespace opened meanwhile got the same fd number, and the
// kernel moved the link into it. On a current-thread runtime the connection
// task cannot run between the drop and the next open, so the reuse is
// certain without the fix.
#[tokio::test(flavor = "current_thread")]
async fn a_dropped_move_never_lands_in_a_namespace_opened_after_it() {
    use futures::FutureExt;
    let (a, b) = (Ns::new("ca").await, Ns::new("cb").await);
    let decoy = Ns::new("cdecoy").await;
    let ha = common::open(a.name(), netns::Transport::Direct).await;
    ha.add_veth("c0", "c1").execute().await.unwrap();
    let index = ha.link_index("c1").await.unwrap();
    // By index: the first poll sends nothing but the move itself.
    let pending = ha.move_link(index, b.name()).execute().now_or_never();
    assert!(pending.is_none(), "the move was answered in one poll");
    let opened = netns::RunDir::default()
        .open(&decoy.name().parse().unwrap())
        .unwrap();
    // Let the connection send the request and the kernel answer it.
    let hb = common::open(b.name(), netns::Transport::Direct).await;
    let hd = common::open(opened.clone(), netns::Transport::Direct).await;
    for _ in 0..100 {
        if link_names(&hb).await.contains(&"c1".to_string()) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(link_names(&hd).await, ["lo"], "moved into the decoy");
    assert_eq!(link_names(&hb).await, ["c1", "lo"]);
    drop(opened);
}
