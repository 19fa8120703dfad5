//! Namespace ids: get, set (explicit and auto), list with names.

mod common;

use common::Ns;
use netns::Nsid;

both_transports! {
async fn set_get_and_list_ids(transport) {
    let home = Ns::new("idhome").await;
    let a = Ns::new("ida").await;
    let b = Ns::new("idb").await;
    let c = Ns::new("idc").await;
    let h = common::open(home.name(), transport).await;

    assert_eq!(h.nsid(a.name()).await.unwrap(), None);
    assert!(h.list_nsids().await.unwrap().is_empty());

    assert_eq!(h.set_nsid(a.name(), Nsid::Id(7)).await.unwrap(), 7);
    assert_eq!(h.nsid(a.name()).await.unwrap(), Some(7));
    let auto = h.set_nsid(b.name(), Nsid::Auto).await.unwrap();
    assert!(auto >= 0);
    assert_ne!(auto, 7);
    // Given as a NetNs and as a handle.
    assert_eq!(h.nsid(&b.netns).await.unwrap(), Some(auto));
    let hc = common::open(c.name(), transport).await;
    assert_eq!(h.nsid(&hc).await.unwrap(), None);

    // An id cannot be changed, nor given twice.
    let err = h.set_nsid(a.name(), Nsid::Id(8)).await.unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EEXIST), "{err}");
    let err = h.set_nsid(c.name(), Nsid::Id(7)).await.unwrap_err();
    assert!(err.raw_os_error().is_some(), "{err}");
    let err = h.set_nsid(c.name(), Nsid::Id(-5)).await.unwrap_err();
    assert!(
        matches!(err, netns::Error::InvalidNsid { nsid: -5 }),
        "{err}"
    );
    assert_eq!(h.nsid(c.name()).await.unwrap(), None);

    let mut list = h.list_nsids().await.unwrap();
    list.sort_by_key(|e| e.nsid);
    let got: Vec<(i32, Option<String>)> = list
        .iter()
        .map(|e| (e.nsid, e.name.as_ref().map(|n| n.to_string())))
        .collect();
    let mut want = vec![
        (7, Some(a.name().to_string())),
        (auto, Some(b.name().to_string())),
    ];
    want.sort();
    assert_eq!(got, want);

    // Ids are per namespace: `a` has not named anyone.
    let ha = common::open(a.name(), transport).await;
    assert!(ha.list_nsids().await.unwrap().is_empty());

    // A missing namespace is NotFound before anything is sent.
    let err = h.nsid(common::unique("nope").as_str()).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
}

async fn ids_match_iproute2(transport) {
    let home = Ns::new("idip").await;
    let peer = Ns::new("idpeer").await;
    let h = common::open(home.name(), transport).await;
    let id = h.set_nsid(peer.name(), Nsid::Auto).await.unwrap();
    let out = h
        .command("ip")
        .args(["netns", "list-id"])
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains(&format!("nsid {id} ")), "{text}");
    assert!(text.contains(peer.name()), "{text}");
}


async fn list_id_filters_and_dump_errors(transport) {
    let home = Ns::new("idfhome").await;
    let a = Ns::new("idfa").await;
    let b = Ns::new("idfb").await;
    let h = common::open(home.name(), transport).await;
    let ha = common::open(a.name(), transport).await;
    assert_eq!(h.set_nsid(a.name(), Nsid::Id(7)).await.unwrap(), 7);
    assert_eq!(h.set_nsid(b.name(), Nsid::Id(8)).await.unwrap(), 8);
    assert_eq!(ha.set_nsid(b.name(), Nsid::Id(3)).await.unwrap(), 3);

    // Without a target there is no current-nsid.
    let all = h.list_nsids().await.unwrap();
    assert_eq!(all.len(), 2, "{all:?}");
    assert!(all.iter().all(|e| e.current_nsid.is_none()), "{all:?}");

    // As `a` (id 7 here) sees its peers: `b` is 3 there, 8 here, and is
    // named by our id for it.
    let seen = h.nsid_list().target_nsid(7).execute().await.unwrap();
    let got: Vec<_> = seen
        .iter()
        .map(|e| (e.nsid, e.current_nsid, e.name.as_ref().map(|n| n.to_string())))
        .collect();
    assert_eq!(got, vec![(3, Some(8), Some(b.name().to_string()))]);

    // One id, with or without names.
    let one = h.nsid_list().nsid(7).execute().await.unwrap();
    assert_eq!(one.len(), 1, "{one:?}");
    assert_eq!((one[0].nsid, one[0].name.as_ref().map(|n| n.as_str())), (7, Some(a.name())));
    let bare = h.nsid_list().nsid(8).names(false).execute().await.unwrap();
    assert_eq!((bare[0].nsid, bare[0].name.is_none()), (8, true), "{bare:?}");
    let err = h.nsid_list().nsid(99).execute().await.unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOENT), "{err}");

    // A dump that fails says so in its NLMSG_DONE: surfaced, with the
    // kernel's message (it used to end empty).
    let err = h.nsid_list().target_nsid(99).execute().await.unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EINVAL), "{err}");
    assert_eq!(
        err.kernel_message().as_deref(),
        Some("Invalid target network namespace id"),
        "{err}"
    );
    // The handle's own rtnetlink handle is not affected by that connection.
    assert!(common::link_names(&h).await.contains(&"lo".to_string()));

    // Negative filters are refused before anything is sent.
    let err = h.nsid_list().target_nsid(-1).execute().await.unwrap_err();
    assert!(matches!(err, netns::Error::InvalidNsid { nsid: -1 }), "{err}");
    h.close().await;
}

}
