//! Run-directory entries that are not what they should be: FIFOs, symlinks.
//!
//! Regression (hardening issue, "blocking syscalls in async functions"): a
//! FIFO planted as an entry of the run directory made every open of that
//! entry wait for a writer, inside async fns, on the runtime thread: on a
//! current-thread runtime not even a timeout could fire. Entries are now
//! opened with `O_PATH` and type-checked first: a FIFO (or a directory) is a
//! typed error at once, and the operations that do not open it just work.
//!
//! Every operation runs on a current-thread runtime under a timeout (the
//! sync ones on a thread of their own, waited for with a bound), so these
//! tests fail, rather than hang, if an open blocks again.
mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use nsfs::{Error, NetNs, OpenMode};

const BOUND: Duration = Duration::from_secs(10);

/// Runs `f` on a thread of its own and waits for it for at most [`BOUND`].
fn bounded<R: Send + 'static>(what: &str, f: impl FnOnce() -> R + Send + 'static) -> R {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(BOUND)
        .unwrap_or_else(|_| panic!("{what} blocked on a FIFO entry"))
}

/// Awaits `f` on `rt` (a current-thread runtime) for at most [`BOUND`].
fn bounded_async<F: std::future::Future>(
    rt: &tokio::runtime::Runtime,
    what: &str,
    f: F,
) -> F::Output {
    rt.block_on(async { tokio::time::timeout(BOUND, f).await })
        .unwrap_or_else(|_| panic!("{what} blocked on a FIFO entry"))
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A private run directory holding a FIFO entry named `fifo`.
fn dir_with_fifo(rt: &tokio::runtime::Runtime) -> (TempRunDir, nsfs::NsName) {
    require_root();
    let tmp = TempRunDir::new("fifo");
    // A real name in it too, so the directory is prepared as a run dir.
    let other = unique("other");
    bounded_async(
        rt,
        "create",
        tmp.dir.create(&other, OpenMode::CreateExclusive),
    )
    .unwrap();
    let name = nsfs::NsName::new("fifo").unwrap();
    nix::unistd::mkfifo(
        &tmp.dir.entry(&name),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    (tmp, name)
}

fn is_fifo(path: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::symlink_metadata(path).is_ok_and(|md| md.file_type().is_fifo())
}

#[test]
fn opening_a_fifo_entry_is_a_typed_error_at_once() {
    let rt = current_thread();
    let (tmp, name) = dir_with_fifo(&rt);
    let path = tmp.dir.entry(&name);

    let dir = tmp.dir.clone();
    let n = name.clone();
    match bounded("RunDir::open", move || dir.open(&n)) {
        Err(Error::NotNamespace { path: p }) => assert_eq!(p, path),
        other => panic!("RunDir::open: expected NotNamespace, got {other:?}"),
    }
    let p = path.clone();
    match bounded("NetNs::open", move || NetNs::open(&p)) {
        Err(Error::NotNamespace { .. }) => {}
        other => panic!("NetNs::open: expected NotNamespace, got {other:?}"),
    }
    for mode in [OpenMode::CreateOrOpen, OpenMode::OpenOnly] {
        match bounded_async(&rt, "RunDir::create", tmp.dir.create(&name, mode)) {
            Err(Error::NotNamespace { .. }) => {}
            other => panic!("create {mode:?}: expected NotNamespace, got {other:?}"),
        }
    }
    match bounded_async(
        &rt,
        "RunDir::create",
        tmp.dir.create(&name, OpenMode::CreateExclusive),
    ) {
        Err(Error::AlreadyExists { .. }) => {}
        other => panic!("create exclusive: expected AlreadyExists, got {other:?}"),
    }
    match bounded_async(&rt, "RunDir::pids", tmp.dir.pids(&name)) {
        Err(Error::NotNamespace { .. }) => {}
        other => panic!("pids: expected NotNamespace, got {other:?}"),
    }
    // Nothing was changed by any of it.
    assert!(is_fifo(&path));
}

#[test]
fn a_fifo_entry_does_not_block_the_operations_that_never_open_it() {
    let rt = current_thread();
    let (tmp, name) = dir_with_fifo(&rt);
    let here = NetNs::current_thread().unwrap();

    let dir = tmp.dir.clone();
    let names = bounded("RunDir::identify", move || dir.identify(&here)).unwrap();
    assert!(names.is_empty(), "{names:?}");
    let dir = tmp.dir.clone();
    let pid = std::process::id() as i32;
    bounded("RunDir::identify (pid)", move || dir.identify(pid)).unwrap();
    let dir = tmp.dir.clone();
    let listed = bounded("RunDir::list", move || dir.list()).unwrap();
    assert!(
        listed
            .iter()
            .any(|e| e.name == name && e.state == nsfs::EntryState::Stale),
        "{listed:?}"
    );
    // The FIFO is removed as an entry, like a stale one.
    bounded_async(&rt, "RunDir::remove", tmp.dir.remove(&name)).unwrap();
    assert!(!tmp.dir.entry(&name).exists());
}

/// Regression (hardening issue, "`remove` follows symlinks when
/// unmounting"): an entry that is a symlink to another name's entry got that
/// other namespace detached (as `ip netns del` does). Now the unmount never
/// follows a symlink: the link is removed, its target stays mounted and named.
#[test]
fn removing_a_symlink_entry_never_detaches_its_target() {
    let rt = current_thread();
    require_root();
    let tmp = TempRunDir::new("symlink");
    let target = unique("target");
    let ns = bounded_async(
        &rt,
        "create",
        tmp.dir.create(&target, OpenMode::CreateExclusive),
    )
    .unwrap();
    let link = nsfs::NsName::new("link").unwrap();
    std::os::unix::fs::symlink(tmp.dir.entry(&target), tmp.dir.entry(&link)).unwrap();
    // Opening follows the link, as `ip -n link` does.
    assert_eq!(tmp.dir.open(&link).unwrap(), ns);

    bounded_async(&rt, "RunDir::remove", tmp.dir.remove(&link)).unwrap();
    assert!(std::fs::symlink_metadata(tmp.dir.entry(&link)).is_err());
    let listed = tmp.dir.list().unwrap();
    assert_eq!(
        listed
            .iter()
            .map(|e| (e.name.clone(), e.state))
            .collect::<Vec<_>>(),
        [(target.clone(), nsfs::EntryState::Mounted)],
        "the link's target lost its mount"
    );
    assert_eq!(tmp.dir.open(&target).unwrap(), ns);
    assert_eq!(
        tmp.dir.identify(&ns).unwrap(),
        std::slice::from_ref(&target)
    );
    bounded_async(&rt, "RunDir::remove", tmp.dir.remove(&target)).unwrap();
}
