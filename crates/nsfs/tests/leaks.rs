//! 1,000 create/remove cycles leave the fd table and the mount table as they
//! were. Alone in its binary: parallel tests would move the fd count.
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
    assert_eq!(fd_count(), fds, "fds leaked");
    assert_eq!(mounts(), table, "mounts leaked");
    assert!(dir.list().unwrap().is_empty());
}
