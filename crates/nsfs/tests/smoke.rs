//! A first check that the core works end to end.
use nsfs::{NetNs, NsName, OpenMode, RunDir};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_run_remove() {
    let dir = RunDir::default();
    let name = NsName::new("nsfs-smoke").unwrap();
    let ns = dir.create(&name, OpenMode::CreateExclusive).await.unwrap();
    let inside = ns.run(|| NetNs::current_thread().unwrap().id()).await.unwrap();
    assert_eq!(inside, ns.id());
    assert_ne!(NetNs::current_thread().unwrap().id(), ns.id());
    let out = std::process::Command::new("ip").args(["-n", "nsfs-smoke", "-o", "link"]).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("lo"));
    assert!(matches!(dir.create(&name, OpenMode::CreateExclusive).await, Err(nsfs::Error::AlreadyExists { .. })));
    let t = std::time::Instant::now();
    for _ in 0..1000 { ns.run(|| ()).await.unwrap(); }
    eprintln!("closure: {:?}", t.elapsed() / 1000);
    dir.remove(&name).await.unwrap();
    assert!(matches!(dir.create(&name, OpenMode::OpenOnly).await, Err(nsfs::Error::NotFound { .. })));
}
