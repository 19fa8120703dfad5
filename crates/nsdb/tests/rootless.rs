//! A view of namespaces owned by a user namespace, as uid 65534 for real
//! (this test binary run again under `setpriv`, see testkit).

use std::time::Duration;

use nsdb::{Namespace, View};

#[test]
fn view_of_rootless_namespaces_as_nobody() {
    testkit::run_unprivileged("inner_view_of_rootless_namespaces", &[]);
}

#[test]
#[ignore = "run as uid 65534 by view_of_rootless_namespaces_as_nobody"]
fn inner_view_of_rootless_namespaces() {
    assert_eq!(nix::unistd::geteuid().as_raw(), testkit::UNPRIVILEGED);
    assert!(!nsfs::privileged());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut handles = Vec::new();
        for n in ["va", "vb"] {
            handles.push(
                netns::Handle::open(n, netns::OpenMode::CreateExclusive)
                    .await
                    .unwrap(),
            );
        }
        let (a, b) = (
            Namespace::named("va").unwrap(),
            Namespace::named("vb").unwrap(),
        );
        let view = View::builder()
            .namespace(a.clone())
            .namespace(b.clone())
            .build()
            .await
            .unwrap();
        let mut tx = view.transaction();
        tx.create_veth(&a, "x0", "x1").unwrap();
        tx.commit().await.unwrap();
        let mut tx = view.transaction();
        tx.link(&a, "x1").unwrap().move_to(&b);
        tx.commit().await.unwrap();
        let mut tx = view.transaction();
        tx.link(&a, "x0")
            .unwrap()
            .add_address("10.7.0.1".parse().unwrap(), 24)
            .up();
        tx.commit().await.unwrap();
        let snap = view
            .wait_for("x1 in vb, x0 addressed", Duration::from_secs(5), |s| {
                s.link(&b, "x1").is_some()
                    && s.link(&a, "x1").is_none()
                    && s.namespace(&a).is_some_and(|v| {
                        v.link("x0")
                            .is_some_and(|l| v.addresses_of(l.index).next().is_some())
                    })
            })
            .await
            .unwrap();
        assert!(snap.link(&a, "x0").is_some());
        drop(view);
        drop(handles);
        let dir = nsfs::RunDir::default();
        for n in ["va", "vb"] {
            dir.remove(&n.parse().unwrap()).await.unwrap();
        }
    });
}
