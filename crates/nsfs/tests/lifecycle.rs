//! Every lifecycle operation on a real kernel: create (each mode against a
//! missing, existing and stale entry), open, remove, list, attach, identify,
//! pids, and the bad-input cases, which must get a typed error and change
//! nothing.
mod common;

use std::fs;
use std::os::fd::OwnedFd;

use common::*;
use nsfs::{EntryState, Error, NetNs, OpenMode, RunDir};

/// Makes a stale entry: a mode-0 plain file, as a creator that died leaves it.
fn make_stale(dir: &RunDir, name: &nsfs::NsName) {
    dir.prepare().unwrap();
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(dir.entry(name))
        .unwrap();
}

fn state_of(dir: &RunDir, name: &nsfs::NsName) -> Option<EntryState> {
    dir.list()
        .unwrap()
        .into_iter()
        .find(|e| &e.name == name)
        .map(|e| e.state)
}

#[tokio::test]
async fn create_each_mode_on_a_missing_entry() {
    require_root();
    let dir = RunDir::default();
    for mode in [OpenMode::CreateOrOpen, OpenMode::CreateExclusive] {
        let name = unique("missing");
        let _g = NameGuard::new(&dir, &name);
        let ns = dir.create(&name, mode).await.unwrap();
        assert_eq!(state_of(&dir, &name), Some(EntryState::Mounted));
        assert_eq!(dir.open(&name).unwrap(), ns);
        assert_ne!(
            ns,
            NetNs::current_thread().unwrap(),
            "{mode:?} made no new namespace"
        );
        assert_eq!(ns.path(), Some(dir.entry(&name).as_path()));
        dir.remove(&name).await.unwrap();
    }
    let name = unique("missing");
    let err = dir.create(&name, OpenMode::OpenOnly).await.unwrap_err();
    assert!(
        matches!(err, Error::NotFound { ref path } if *path == dir.entry(&name)),
        "{err:?}"
    );
    assert_eq!(err.raw_os_error(), Some(libc::ENOENT));
    assert!(!dir.entry(&name).exists(), "OpenOnly created something");
}

#[tokio::test]
async fn open_only_never_prepares_a_missing_run_dir() {
    require_root();
    let tmp = TempRunDir::new("noprep");
    let err = tmp
        .dir
        .create(&unique("x"), OpenMode::OpenOnly)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    assert!(!tmp.path().exists(), "OpenOnly made the run directory");
}

#[tokio::test]
async fn create_each_mode_on_an_existing_entry() {
    let (dir, name, _g) = fresh_name("exists");
    let ns = dir.create(&name, OpenMode::CreateExclusive).await.unwrap();

    assert_eq!(dir.create(&name, OpenMode::CreateOrOpen).await.unwrap(), ns);
    assert_eq!(dir.create(&name, OpenMode::OpenOnly).await.unwrap(), ns);
    let err = dir
        .create(&name, OpenMode::CreateExclusive)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { ref path } if *path == dir.entry(&name)));
    assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
    // The failed exclusive create changed nothing.
    assert_eq!(dir.open(&name).unwrap(), ns);
    dir.remove(&name).await.unwrap();
}

#[tokio::test]
async fn create_each_mode_on_a_stale_entry() {
    let (dir, name, _g) = fresh_name("stale");
    make_stale(&dir, &name);
    assert_eq!(state_of(&dir, &name), Some(EntryState::Stale));

    let err = dir
        .create(&name, OpenMode::CreateExclusive)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err:?}");
    for mode in [OpenMode::CreateOrOpen, OpenMode::OpenOnly] {
        // Waits a moment for a creator to finish, then calls it stale.
        let err = dir.create(&name, mode).await.unwrap_err();
        assert!(
            matches!(err, Error::Stale { ref path } if *path == dir.entry(&name)),
            "{err:?}"
        );
        assert_eq!(err.raw_os_error(), Some(libc::EINVAL));
    }
    let err = dir.open(&name).unwrap_err();
    assert!(matches!(err, Error::Stale { .. }), "{err:?}");
    // Nothing above touched the entry: still a plain, stale file.
    assert_eq!(state_of(&dir, &name), Some(EntryState::Stale));
    // remove cleans a stale entry up, as `ip netns delete` does.
    dir.remove(&name).await.unwrap();
    assert_eq!(state_of(&dir, &name), None);
    // And the name can be used again.
    let ns = dir.create(&name, OpenMode::CreateExclusive).await.unwrap();
    assert_eq!(dir.open(&name).unwrap(), ns);
    dir.remove(&name).await.unwrap();
}

#[tokio::test]
async fn remove_missing_is_not_found_and_removal_keeps_open_handles_usable() {
    let (dir, name, _g) = fresh_name("rm");
    let err = dir.remove(&name).await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");

    let ns = dir.create(&name, OpenMode::CreateExclusive).await.unwrap();
    dir.remove(&name).await.unwrap();
    assert!(!dir.entry(&name).exists());
    assert!(matches!(dir.open(&name), Err(Error::NotFound { .. })));
    // The handle keeps the namespace alive and usable.
    let (inside, dev) = ns
        .run(|| {
            let id = NetNs::current_thread().unwrap().id();
            (id, fs::read_to_string("/proc/thread-self/net/dev").unwrap())
        })
        .await
        .unwrap();
    assert_eq!(inside, ns.id());
    assert!(dev.contains("lo:"), "{dev}");
    assert!(!dev.contains("eth"), "a fresh namespace has only lo: {dev}");
    let err = dir.remove(&name).await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
}

#[tokio::test]
async fn list_reports_mounted_and_stale_sorted() {
    require_root();
    let tmp = TempRunDir::new("list");
    let dir = &tmp.dir;
    assert!(
        dir.list().unwrap().is_empty(),
        "a missing run directory has no entries"
    );
    let b = nsfs::NsName::new("b").unwrap();
    let a = nsfs::NsName::new("a").unwrap();
    let c = nsfs::NsName::new("c").unwrap();
    dir.create(&b, OpenMode::CreateExclusive).await.unwrap();
    dir.create(&a, OpenMode::CreateExclusive).await.unwrap();
    make_stale(dir, &c);
    let entries = dir.list().unwrap();
    let got: Vec<_> = entries.iter().map(|e| (e.name.as_str(), e.state)).collect();
    assert_eq!(
        got,
        [
            ("a", EntryState::Mounted),
            ("b", EntryState::Mounted),
            ("c", EntryState::Stale)
        ]
    );
    for name in [&a, &b, &c] {
        dir.remove(name).await.unwrap();
    }
    assert!(dir.list().unwrap().is_empty());
}

#[tokio::test]
async fn netns_open_rejects_what_is_not_a_network_namespace() {
    require_root();
    let tmp = TempRunDir::new("notns");
    tmp.dir.prepare().unwrap();
    let file = tmp.path().join("plain");
    fs::write(&file, b"x").unwrap();

    let err = NetNs::open(&file).unwrap_err();
    assert!(
        matches!(err, Error::NotNamespace { ref path } if *path == file),
        "{err:?}"
    );
    let err = NetNs::open(tmp.path()).unwrap_err();
    assert!(
        matches!(err, Error::NotNamespace { .. }),
        "directory: {err:?}"
    );
    let err = NetNs::open("/proc/self/ns/mnt").unwrap_err();
    assert!(matches!(err, Error::WrongNamespaceType { .. }), "{err:?}");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    let err = NetNs::open(tmp.path().join("missing")).unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");

    let fd: OwnedFd = fs::File::open(&file).unwrap().into();
    assert!(matches!(
        NetNs::from_fd(fd),
        Err(Error::NotNamespace { .. })
    ));
    let fd: OwnedFd = fs::File::open("/proc/self/ns/uts").unwrap().into();
    assert!(matches!(
        NetNs::from_fd(fd),
        Err(Error::WrongNamespaceType { .. })
    ));
    let fd: OwnedFd = fs::File::open("/proc/self/ns/net").unwrap().into();
    assert_eq!(
        NetNs::from_fd(fd).unwrap(),
        NetNs::from_pid(std::process::id() as i32).unwrap()
    );
    fs::remove_file(&file).unwrap();
}

#[tokio::test]
async fn from_pid_rejects_missing_processes() {
    require_root();
    for pid in [0, -1, i32::MAX, dead_pid()] {
        let err = NetNs::from_pid(pid).unwrap_err();
        assert!(
            matches!(err, Error::NoSuchProcess { pid: p } if p == pid),
            "{pid}: {err:?}"
        );
        assert_eq!(err.raw_os_error(), Some(libc::ESRCH));
    }
    let me = std::process::id() as i32;
    let path = format!("/proc/{me}/ns/net");
    assert_eq!(
        NetNs::from_pid(me).unwrap().path(),
        Some(std::path::Path::new(&path))
    );
}

/// The pid of a process that has exited and been reaped.
fn dead_pid() -> i32 {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id() as i32;
    child.wait().unwrap();
    pid
}

#[tokio::test]
async fn create_in_a_run_dir_that_cannot_be_prepared_changes_nothing() {
    require_root();
    let tmp = TempRunDir::new("noprep");
    tmp.dir.prepare().unwrap();
    let file = tmp.path().join("file");
    fs::write(&file, b"").unwrap();
    let before = mounts();
    // Below a plain file, and a plain file itself.
    for path in [file.join("sub"), file.clone()] {
        let dir = RunDir::new(&path);
        let err = dir
            .create(&unique("x"), OpenMode::CreateOrOpen)
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::PrepareRunDir { path: ref p, .. } if *p == path),
            "{err:?}"
        );
        assert_eq!(err.raw_os_error(), Some(libc::ENOTDIR), "{err:?}");
        let err = dir
            .attach(&unique("x"), std::process::id() as i32)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::PrepareRunDir { .. }), "{err:?}");
    }
    assert_eq!(fs::read(&file).unwrap(), b"");
    assert_eq!(mounts(), before, "a failed prepare left a mount");
    fs::remove_file(&file).unwrap();
}

#[tokio::test]
async fn attach_names_a_process_namespace() {
    require_root();
    let dir = RunDir::default();
    let (orig, named) = (unique("att-src"), unique("att"));
    let _g = (NameGuard::new(&dir, &orig), NameGuard::new(&dir, &named));
    let ns = dir.create(&orig, OpenMode::CreateExclusive).await.unwrap();
    let child = ChildGuard::sleep_in(&orig);
    child.wait_exec();

    let attached = dir.attach(&named, child.pid()).await.unwrap();
    assert_eq!(attached, ns);
    assert_eq!(dir.open(&named).unwrap(), ns);
    assert_eq!(
        dir.identify(child.pid()).unwrap(),
        sorted([orig.clone(), named.clone()])
    );

    // Attaching a taken name fails and leaves the entry as it was.
    let err = dir
        .attach(&named, std::process::id() as i32)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err:?}");
    assert_eq!(dir.open(&named).unwrap(), ns);
    drop(child);
    dir.remove(&named).await.unwrap();
    dir.remove(&orig).await.unwrap();
}

#[tokio::test]
async fn attach_to_a_dead_pid_leaves_no_entry() {
    let (dir, name, _g) = fresh_name("att-dead");
    for pid in [dead_pid(), 0, -5] {
        let err = dir.attach(&name, pid).await.unwrap_err();
        assert!(
            matches!(err, Error::NoSuchProcess { pid: p } if p == pid),
            "{err:?}"
        );
        assert!(
            !dir.entry(&name).exists(),
            "attach to dead pid {pid} left an entry"
        );
    }
}

fn sorted<const N: usize>(mut names: [nsfs::NsName; N]) -> Vec<nsfs::NsName> {
    names.sort();
    names.to_vec()
}

#[tokio::test]
async fn identify_by_pid_and_by_handle() {
    require_root();
    let tmp = TempRunDir::new("ident");
    let dir = &tmp.dir;
    let me = std::process::id() as i32;
    assert!(
        dir.identify(me).unwrap().is_empty(),
        "missing run directory: no names"
    );

    let (x, y, here) = (
        nsfs::NsName::new("x").unwrap(),
        nsfs::NsName::new("y").unwrap(),
        nsfs::NsName::new("here").unwrap(),
    );
    let xs = dir.create(&x, OpenMode::CreateExclusive).await.unwrap();
    dir.create(&y, OpenMode::CreateExclusive).await.unwrap();
    dir.attach(&here, me).await.unwrap();
    make_stale(dir, &nsfs::NsName::new("stale").unwrap());

    assert_eq!(dir.identify(me).unwrap(), vec![here.clone()]);
    assert_eq!(
        dir.identify(NetNs::current_thread().unwrap()).unwrap(),
        vec![here.clone()]
    );
    assert_eq!(dir.identify(&xs).unwrap(), vec![x.clone()]);
    assert_eq!(dir.identify(xs.clone()).unwrap(), vec![x.clone()]);
    let (other, ()) = nsfs::Executor::global()
        .unwrap()
        .run_in_new(|| ())
        .await
        .unwrap();
    assert!(
        dir.identify(&other).unwrap().is_empty(),
        "an unnamed namespace has no name"
    );

    let dead = dead_pid();
    let err = dir.identify(dead).unwrap_err();
    assert!(
        matches!(err, Error::NoSuchProcess { pid } if pid == dead),
        "{err:?}"
    );
    assert!(matches!(
        dir.identify(0),
        Err(Error::NoSuchProcess { pid: 0 })
    ));
}

#[tokio::test]
async fn pids_lists_the_processes_inside() {
    let (dir, name, _g) = fresh_name("pids");
    let ns = dir.create(&name, OpenMode::CreateExclusive).await.unwrap();
    assert!(
        dir.pids(&name).await.unwrap().is_empty(),
        "no process is inside yet"
    );
    // A namespace thread switched in is a thread, not a process: not counted.
    let during = ns.run(|| ()).await;
    during.unwrap();

    let a = ChildGuard::sleep_in(&name);
    let b = ChildGuard::sleep_in(&name);
    let outside = ChildGuard::sleep_here();
    a.wait_exec();
    b.wait_exec();
    let mut want = vec![a.pid(), b.pid()];
    want.sort();
    assert_eq!(dir.pids(&name).await.unwrap(), want);
    assert!(!dir.pids(&name).await.unwrap().contains(&outside.pid()));
    drop((a, b, outside));
    assert!(dir.pids(&name).await.unwrap().is_empty());

    dir.remove(&name).await.unwrap();
    assert!(matches!(dir.pids(&name).await, Err(Error::NotFound { .. })));
    make_stale(&dir, &name);
    assert!(matches!(dir.pids(&name).await, Err(Error::Stale { .. })));
    dir.remove(&name).await.unwrap();
}
