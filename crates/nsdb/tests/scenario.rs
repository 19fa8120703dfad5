//! The reference doc's IPDB scenario, transactions and their rollback.

mod common;

use std::time::Duration;

use common::{Namespaces, add_veth, assert_view_matches_dump, disable_ipv6, ip, view_of};
use nsdb::Error;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipdb_scenario_veth_moved_by_name_addresses_through_each_view() {
    let nss = Namespaces::create(&["sc-main", "sc-test"]).await;
    let (main, test) = (nss.ns(0), nss.ns(1));
    let view = view_of(&[&main, &test]).await;

    // ipdb.create(ifname='v0p0', kind='veth', peer='v0p1').commit()
    let mut tx = view.transaction();
    tx.create_veth(&main, "v0p0", "v0p1").unwrap();
    tx.commit().await.unwrap();
    let snap = view.snapshot();
    let v0p0 = snap
        .link(&main, "v0p0")
        .expect("v0p0 in the view after commit");
    assert_eq!(v0p0.kind.as_deref(), Some("veth"));

    // with ipdb.interfaces.v0p1 as veth: veth.net_ns_fd = 'test'
    let mut tx = view.transaction();
    tx.link(&main, "v0p1").unwrap().move_to(&test);
    assert_eq!(tx.plan().unwrap().len(), 1);
    tx.commit().await.unwrap();
    let snap = view.snapshot();
    assert!(snap.link(&main, "v0p1").is_none());
    let v0p1 = snap
        .link(&test, "v0p1")
        .expect("v0p1 moved to test")
        .clone();

    // The veth's peer, named through the view: v0p0's peer is v0p1 in test.
    let snap = view
        .wait_for("v0p0's peer named", Duration::from_secs(5), |s| {
            let v = s.namespace(&main).unwrap();
            v.link("v0p0")
                .and_then(|l| v.peer(l))
                .is_some_and(|p| p.namespace.is_some())
        })
        .await
        .unwrap();
    let v = snap.namespace(&main).unwrap();
    let peer = v.peer(v.link("v0p0").unwrap()).unwrap();
    assert_eq!(peer.namespace.as_ref(), Some(&test));
    assert_eq!(peer.index, v0p1.index);

    // Addresses on each side, each through the view of its namespace.
    let mut tx = view.transaction();
    tx.link(&main, "v0p0")
        .unwrap()
        .add_address("10.0.0.1".parse().unwrap(), 24)
        .up();
    tx.link(&test, "v0p1")
        .unwrap()
        .add_address("10.0.0.2".parse().unwrap(), 24)
        .up();
    let plan = tx.plan().unwrap();
    assert_eq!(plan.len(), 4, "{plan:#?}");
    tx.commit().await.unwrap();

    let snap = view.snapshot();
    let t = snap.namespace(&test).unwrap();
    let l = t.link("v0p1").unwrap();
    assert!(l.is_up());
    assert!(
        t.addresses_of(l.index)
            .any(|a| a.local.to_string() == "10.0.0.2" && a.prefix_len == 24)
    );
    let out = std::process::Command::new("ip")
        .args(["-n", "sc-test", "-4", "-o", "addr", "show", "dev", "v0p1"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("10.0.0.2/24"));

    assert_view_matches_dump(&view, &main).await;
    assert_view_matches_dump(&view, &test).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_rejected_part_way_rolls_back_to_the_state_before() {
    let nss = Namespaces::create(&["rb-a"]).await;
    disable_ipv6(&nss.names[0]).await;
    let a = nss.ns(0);
    add_veth("rb-a", "rb0", "rb1");
    ip(&["-n", "rb-a", "link", "set", "rb0", "up"]);
    ip(&["-n", "rb-a", "addr", "add", "192.168.5.1/24", "dev", "rb0"]);
    let view = view_of(&[&a]).await;
    assert_view_matches_dump(&view, &a).await;
    let before = view.dump(&a).await.unwrap();

    // An address added, then an invalid MTU (veth's maximum is 65535), then
    // more: the MTU step fails, the address is taken back.
    let mut tx = view.transaction();
    tx.link(&a, "rb0")
        .unwrap()
        .add_address("10.7.0.1".parse().unwrap(), 24)
        .remove_address("192.168.5.1".parse().unwrap(), 24);
    tx.link(&a, "rb0")
        .unwrap()
        .set_mtu(100_000)
        .set_name("renamed");
    let plan = tx.plan().unwrap();
    assert_eq!(plan.len(), 3, "{plan:#?}");
    let err = tx.commit().await.unwrap_err();
    match &err {
        Error::Commit {
            step,
            source,
            rollback_failures,
            ..
        } => {
            assert_eq!(*step, 2, "{err}");
            assert_eq!(source.errno, libc::EINVAL, "{err}");
            assert!(
                source.message.is_some(),
                "the kernel's ext-ack message: {err}"
            );
            assert!(rollback_failures.is_empty(), "{rollback_failures:?}");
        }
        other => panic!("expected Error::Commit, got {other:?}"),
    }
    assert_eq!(err.raw_os_error(), Some(libc::EINVAL));

    let after = view.dump(&a).await.unwrap();
    assert_eq!(before, after, "{}", common::describe_diff(&after, &before));
    assert_view_matches_dump(&view, &a).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_step_after_a_move_moves_the_link_back_and_restores_it() {
    let nss = Namespaces::create(&["mv-a", "mv-b"]).await;
    disable_ipv6(&nss.names[0]).await;
    disable_ipv6(&nss.names[1]).await;
    let (a, b) = (nss.ns(0), nss.ns(1));
    add_veth("mv-a", "mv0", "mv1");
    ip(&["-n", "mv-a", "link", "set", "mv1", "up"]);
    ip(&["-n", "mv-a", "link", "set", "mv0", "up"]);
    ip(&["-n", "mv-a", "addr", "add", "10.8.0.1/24", "dev", "mv1"]);
    let view = view_of(&[&a, &b]).await;
    let before_a = view.dump(&a).await.unwrap();
    let before_b = view.dump(&b).await.unwrap();

    let mut tx = view.transaction();
    tx.link(&a, "mv1").unwrap().move_to(&b).set_mtu(70_000);
    let err = tx.commit().await.unwrap_err();
    assert!(matches!(err, Error::Commit { step: 1, .. }), "{err}");

    view.wait_for("mv1 back in mv-a", Duration::from_secs(5), |s| {
        s.link(&a, "mv1").is_some()
    })
    .await
    .unwrap();
    assert_view_matches_dump(&view, &a).await;
    let after_a = common::without_carrier(view.dump(&a).await.unwrap());
    let after_b = view.dump(&b).await.unwrap();
    let before_a = common::without_carrier(before_a);
    assert_eq!(before_b, after_b);
    // Same links (same indexes, names, flags, mtu), same addresses and
    // routes; not the carrier, which the kernel settles later (see
    // `without_carrier`).
    assert_eq!(
        before_a,
        after_a,
        "{}",
        common::describe_diff(&after_a, &before_a)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn editing_what_is_not_there_is_a_clear_error() {
    let nss = Namespaces::create(&["ed-a"]).await;
    let a = nss.ns(0);
    add_veth("ed-a", "ed0", "ed1");
    let view = view_of(&[&a]).await;

    let mut tx = view.transaction();
    assert!(
        matches!(tx.link(&a, "nope"), Err(Error::LinkNotFound { ref link, .. }) if link == "nope")
    );
    let other = nsdb::Namespace::named("not-viewed").unwrap();
    assert!(matches!(
        tx.link(&other, "lo"),
        Err(Error::NotViewed { .. })
    ));
    let mut tx = view.transaction();
    tx.link(&a, "ed0")
        .unwrap()
        .remove_address("10.1.1.1".parse().unwrap(), 24);
    let err = tx.plan().unwrap_err();
    assert!(
        matches!(err, Error::AddressNotFound { ref link, prefix_len: 24, .. } if link == "ed0"),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!("address 10.1.1.1/24 not found on link ed0 in {a}")
    );

    // The link disappears between the edit and the commit.
    let mut tx = view.transaction();
    tx.link(&a, "ed0").unwrap().set_mtu(1400);
    ip(&["-n", "ed-a", "link", "del", "ed0"]);
    view.wait_for("ed0 gone", Duration::from_secs(5), |s| {
        s.link(&a, "ed0").is_none()
    })
    .await
    .unwrap();
    let err = tx.commit().await.unwrap_err();
    assert!(matches!(err, Error::Commit { step: 0, .. }), "{err}");
    assert_eq!(err.raw_os_error(), Some(libc::ENODEV));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_skips_what_is_already_so() {
    let nss = Namespaces::create(&["sk-a"]).await;
    let a = nss.ns(0);
    add_veth("sk-a", "sk0", "sk1");
    ip(&["-n", "sk-a", "link", "set", "sk0", "mtu", "1400"]);
    let view = view_of(&[&a]).await;
    let mut tx = view.transaction();
    tx.link(&a, "sk0").unwrap().set_mtu(1400).down();
    assert!(tx.plan().unwrap().is_empty());
    tx.commit().await.unwrap();

    let mut tx = view.transaction();
    tx.link(&a, "sk0").unwrap().set_mtu(1300).up().set_mtu(1200);
    let plan = tx.plan().unwrap();
    assert_eq!(plan.len(), 1, "{plan:#?}");
    tx.commit().await.unwrap();
    let snap = view.snapshot();
    let l = snap.link(&a, "sk0").unwrap();
    assert_eq!((l.mtu, l.is_up()), (Some(1200), true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bridge_master_rename_in_one_transaction_then_undone_on_failure() {
    let nss = Namespaces::create(&["br-a"]).await;
    disable_ipv6(&nss.names[0]).await;
    let a = nss.ns(0);
    let view = view_of(&[&a]).await;

    let mut tx = view.transaction();
    tx.create_bridge(&a, "br0").unwrap();
    tx.create_veth(&a, "p0", "p1").unwrap();
    tx.link(&a, "br0").unwrap().up();
    tx.link(&a, "p0")
        .unwrap()
        .set_master(Some("br0"))
        .set_name("port0")
        .up();
    let plan = tx.plan().unwrap();
    assert_eq!(plan.len(), 4, "{plan:#?}");
    tx.commit().await.unwrap();
    let snap = view.snapshot();
    let br = snap.link(&a, "br0").unwrap();
    let port = snap.link(&a, "port0").expect("renamed");
    assert_eq!(port.master, Some(br.index));
    assert!(port.is_up() && br.is_up());
    assert_view_matches_dump(&view, &a).await;

    // Free the port, rename it back, then fail: all of it is undone.
    let before = view.dump(&a).await.unwrap();
    let mut tx = view.transaction();
    tx.link(&a, "port0")
        .unwrap()
        .set_master(None)
        .set_name("p0")
        .down();
    tx.link(&a, "p1").unwrap().set_mtu(1_000_000);
    let err = tx.commit().await.unwrap_err();
    assert!(matches!(err, Error::Commit { step: 1, .. }), "{err}");
    // What the rollback restores; not the carrier (see `without_carrier`).
    let settled = common::without_carrier;
    let after = settled(view.dump(&a).await.unwrap());
    let before = settled(before);
    assert_eq!(before, after, "{}", common::describe_diff(&after, &before));
    let snap = view.snapshot();
    assert_eq!(snap.link(&a, "port0").unwrap().master, Some(br.index));
}
