//! `Target`: one rule for "name or path" (a leading `/` makes a path,
//! anything else is a validated name), and namespaces created at a path.
mod common;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use common::*;
use nix::sys::statfs::{NSFS_MAGIC, statfs};
use nsfs::{Error, NetNs, OpenMode, RunDir, Target};

const MODES: [OpenMode; 3] = [
    OpenMode::CreateOrOpen,
    OpenMode::CreateExclusive,
    OpenMode::OpenOnly,
];

/// Strings with a `/` that does not lead: names, and invalid ones.
const NOT_PATHS: [&str; 4] = ["a/b", "../x", "../../proc/1/ns/net", "./x"];

#[tokio::test]
async fn relative_strings_are_invalid_names_in_every_mode() {
    require_root();
    let tmp = TempRunDir::new("rel");
    let under_tmp = |lines: Vec<String>| -> Vec<String> {
        let tmp = tmp.path().to_str().unwrap().to_owned();
        lines.into_iter().filter(|l| l.contains(&tmp)).collect()
    };
    // Make the relative paths real, seen from the run directory and from
    // the current directory, so that following one would succeed.
    std::fs::create_dir_all(tmp.path().join("a")).unwrap();
    std::fs::create_dir_all(tmp.path().join("b")).unwrap();
    std::fs::write(tmp.path().join("a/b"), b"").unwrap();
    let before = under_tmp(mounts());
    for s in NOT_PATHS {
        for target in [Target::from(s), Target::from(s.to_owned())] {
            assert!(matches!(target, Target::Name(_)), "{s:?}: {target:?}");
            for mode in MODES {
                let err = target.open(&tmp.dir, mode).await.unwrap_err();
                assert!(
                    matches!(err, Error::InvalidName { .. }),
                    "{s:?} {mode:?}: {err}"
                );
            }
            let err = tmp.dir.identify(target.clone()).unwrap_err();
            assert!(matches!(err, Error::InvalidName { .. }), "{s:?}: {err}");
            let err = target.remove(&tmp.dir).await.unwrap_err();
            assert!(matches!(err, Error::InvalidName { .. }), "{s:?}: {err}");
        }
    }
    // Nothing was made, mounted or removed.
    assert_eq!(under_tmp(mounts()), before);
    assert!(tmp.path().join("a/b").exists());
    assert!(!tmp.path().join("x").exists());
    std::fs::remove_file(tmp.path().join("a/b")).unwrap();
    std::fs::remove_dir(tmp.path().join("a")).unwrap();
    std::fs::remove_dir(tmp.path().join("b")).unwrap();
}

#[tokio::test]
async fn absolute_strings_and_path_values_are_paths() {
    require_root();
    let dir = RunDir::default();
    let mine = NetNs::current_thread().unwrap();
    let by_str = Target::from("/proc/self/ns/net");
    assert!(matches!(by_str, Target::Path(_)));
    assert_eq!(by_str.open(&dir, OpenMode::OpenOnly).await.unwrap(), mine);
    assert_eq!(
        by_str.open(&dir, OpenMode::CreateOrOpen).await.unwrap(),
        mine
    );
    // A relative path is a path when the caller says so.
    let cwd = std::env::current_dir().unwrap();
    std::env::set_current_dir("/proc/self").unwrap();
    let relative = Target::from(Path::new("ns/net"));
    let opened = relative.open(&dir, OpenMode::OpenOnly).await;
    std::env::set_current_dir(cwd).unwrap();
    assert_eq!(opened.unwrap(), mine);
    assert!(matches!(
        Target::from(PathBuf::from("a/b")),
        Target::Path(_)
    ));
}

/// A temporary directory on the sandbox's tmpfs, removed with every mount in
/// it on drop.
struct TempDir(TempRunDir);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let tmp = TempRunDir::new(tag);
        std::fs::create_dir_all(tmp.path()).unwrap();
        TempDir(tmp)
    }
    fn join(&self, name: &str) -> PathBuf {
        self.0.path().join(name)
    }
}

fn is_mounted(path: &Path) -> bool {
    let path = path.to_str().unwrap();
    mounts()
        .iter()
        .any(|line| line.split(' ').nth(4) == Some(path))
}

#[tokio::test]
async fn create_at_a_path_makes_a_real_namespace_there() {
    require_root();
    let tmp = TempDir::new("at");
    let dir = RunDir::default();
    for mode in [OpenMode::CreateOrOpen, OpenMode::CreateExclusive] {
        let path = tmp.join(&format!("{mode:?}"));
        let target = Target::from(path.as_path());
        let ns = target.open(&dir, mode).await.unwrap();

        // A real namespace, mounted on the path, not ours.
        assert_eq!(statfs(&path).unwrap().filesystem_type(), NSFS_MAGIC);
        let md = std::fs::metadata(&path).unwrap();
        assert_eq!((md.dev(), md.ino()), (ns.id().dev, ns.id().ino));
        assert_ne!(ns, NetNs::current_thread().unwrap());
        assert!(is_mounted(&path));
        let dev = ns
            .run(|| std::fs::read_to_string("/proc/thread-self/net/dev"))
            .await
            .unwrap()
            .unwrap();
        assert!(dev.contains("lo:"));

        // Open again: the same namespace; exclusive: it exists.
        assert_eq!(target.open(&dir, OpenMode::OpenOnly).await.unwrap(), ns);
        assert_eq!(target.open(&dir, OpenMode::CreateOrOpen).await.unwrap(), ns);
        let err = target
            .open(&dir, OpenMode::CreateExclusive)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::AlreadyExists { .. }), "{err}");

        // Removed: nothing mounted, nothing left.
        target.remove(&dir).await.unwrap();
        assert!(!is_mounted(&path));
        assert!(!path.exists());
        let err = target.open(&dir, OpenMode::OpenOnly).await.unwrap_err();
        assert!(matches!(err, Error::NotFound { .. }), "{err}");
    }
}

#[tokio::test]
async fn create_at_a_path_that_cannot_be_made_leaves_nothing() {
    require_root();
    let tmp = TempDir::new("atfail");
    let missing_dir = tmp.join("no-such-dir/ns");
    let err = Target::from(missing_dir.as_path())
        .open(&RunDir::default(), OpenMode::CreateOrOpen)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Create { .. }), "{err}");
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    assert!(!is_mounted(&missing_dir));
    assert!(!tmp.join("no-such-dir").exists());
}

#[tokio::test]
async fn a_pid_or_open_namespace_cannot_be_created_or_removed() {
    require_root();
    let dir = RunDir::default();
    let me = std::process::id() as i32;
    for target in [Target::Pid(me), Target::NetNs(NetNs::from_pid(me).unwrap())] {
        let err = target
            .open(&dir, OpenMode::CreateExclusive)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::AlreadyExists { .. }), "{err}");
        let err = target.remove(&dir).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
        assert!(target.open(&dir, OpenMode::CreateOrOpen).await.is_ok());
    }
}

#[tokio::test]
async fn a_path_in_the_run_directory_is_created_as_its_name() {
    require_root();
    let tmp = TempRunDir::new("byname");
    let name = unique("entry");
    let path = tmp.dir.entry(&name);
    let ns = Target::from(path.as_path())
        .open(&tmp.dir, OpenMode::CreateExclusive)
        .await
        .unwrap();
    // Made as `create` makes a name: the directory prepared, listed.
    assert!(tmp.dir.list().unwrap().iter().any(|e| e.name == name));
    assert_eq!(tmp.dir.identify(&ns).unwrap(), std::slice::from_ref(&name));
    Target::from(path.as_path()).remove(&tmp.dir).await.unwrap();
    assert!(!path.exists());
}
