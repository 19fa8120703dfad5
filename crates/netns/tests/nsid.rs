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

}
