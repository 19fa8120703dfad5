//! Regression: a commit dropped while its namespace move was queued let go of
//! the destination's fd; with the destination also dropped from the view,
//! the next file opened got that fd number and the kernel moved the link
//! into it. On a current-thread runtime the connection task cannot run
//! between the drop and the next open, so without the fix the reuse is
//! certain.

mod common;

use std::time::Duration;

use common::{Namespaces, ip, view_of};
use futures::FutureExt;

#[tokio::test(flavor = "current_thread")]
async fn a_dropped_move_never_lands_in_a_namespace_opened_after_it() {
    let nss = Namespaces::create(&["nsdb-cm-a", "nsdb-cm-b", "nsdb-cm-decoy"]).await;
    let (a, b) = (nss.ns(0), nss.ns(1));
    ip(&[
        "-n",
        "nsdb-cm-a",
        "link",
        "add",
        "cm0",
        "type",
        "veth",
        "peer",
        "name",
        "cm1",
    ]);
    let view = view_of(&[&a, &b]).await;
    let mut tx = view.transaction();
    tx.link(&a, "cm1").unwrap().move_to(&b);
    let pending = tx.commit().now_or_never();
    assert!(pending.is_none(), "the commit ended in one poll");
    assert!(view.remove(&b));
    let decoy = nsfs::RunDir::default().open(&nss.names[2]).unwrap();
    // Let the connection send the move and the kernel carry it out.
    let links = |ns: &str| {
        let out = std::process::Command::new("ip")
            .args(["-n", ns, "-o", "link"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    for _ in 0..200 {
        if !links("nsdb-cm-a").contains("cm1") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        !links("nsdb-cm-decoy").contains("cm1"),
        "moved into the namespace opened after the drop"
    );
    assert!(links("nsdb-cm-b").contains("cm1"));
    drop(decoy);
}
