//! 1,000 create/remove cycles leave the fd table and the mount table as they
//! were; a dropped executor's threads exit and close their fds. One test,
//! alone in its binary: parallel tests would move the counts.
mod common;

use common::*;
use nsfs::OpenMode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_cycles_leave_fds_and_mounts_as_they_were() {
    require_root();
    let tmp = TempRunDir::new("cycles");
    let dir = &tmp.dir;
    let name = nsfs::NsName::new("cycle").unwrap();
    // Warm up: the run dir prepared, the executor's threads started.
    dir.create(&name, OpenMode::CreateExclusive).await.unwrap();
    dir.remove(&name).await.unwrap();
    let (fds, table) = (fd_count(), mounts());
    for _ in 0..1000 {
        let ns = dir.create(&name, OpenMode::CreateExclusive).await.unwrap();
        drop(ns);
        dir.remove(&name).await.unwrap();
    }
    // A leak is an fd more than before; one fewer can happen when something
    // transient at the baseline (a runtime-internal fd) has since closed.
    let after = fd_count();
    assert!(after <= fds, "fds leaked: {fds} before, {after} after");
    assert_eq!(mounts(), table, "mounts leaked");
    assert!(dir.list().unwrap().is_empty());

    // A private executor: its threads exit once it is dropped.
    let threads = || thread_namespaces().len();
    let (before_threads, before_fds) = (threads(), fd_count());
    let exec = nsfs::Executor::new(3).unwrap();
    let (ns, ()) = exec.run_in_new(|| ()).await.unwrap();
    let gate = std::sync::Arc::new(std::sync::Barrier::new(3));
    let jobs: Vec<_> = (0..3)
        .map(|_| {
            let (exec, ns, gate) = (exec.clone(), ns.clone(), gate.clone());
            tokio::spawn(async move { exec.run_in(&ns, move || gate.wait()).await })
        })
        .collect();
    for job in jobs {
        job.await.unwrap().unwrap();
    }
    assert_eq!(threads(), before_threads + 3);
    drop((exec, ns));
    let gone = (0..5000).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(1));
        threads() == before_threads
    });
    assert!(gone, "a dropped executor's threads did not exit");
    let after = fd_count();
    assert!(
        after <= before_fds,
        "a dropped executor left fds open: {before_fds} before, {after} after"
    );
}
