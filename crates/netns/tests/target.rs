//! One rule for "name or path" across the crates (a leading `/` makes a path,
//! anything else is a validated name), and handles created at a path.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use netns::{Handle, NetNs, OpenMode, RunDir, Target};

const MODES: [OpenMode; 3] = [
    OpenMode::CreateOrOpen,
    OpenMode::CreateExclusive,
    OpenMode::OpenOnly,
];

/// Strings with a `/` that does not lead: invalid names, never paths.
const NOT_PATHS: [&str; 3] = ["a/b", "../x", "../../proc/1/ns/net"];

fn is_invalid_name(err: &netns::Error) -> bool {
    matches!(
        err,
        netns::Error::Namespace(nsfs::Error::InvalidName { .. })
    )
}

fn nsproc_invalid_name(err: &nsproc::Error) -> bool {
    matches!(
        err,
        nsproc::Error::Namespace {
            source: nsfs::Error::InvalidName { .. },
            ..
        }
    )
}

/// A working directory from which every relative string above names a real
/// namespace file (so following one as a path would succeed): `a/b`, `x`
/// and `proc/1/ns/net` are symlinks to our namespace.
struct Trap {
    root: PathBuf,
}

impl Trap {
    fn new() -> Trap {
        let root = PathBuf::from(format!("/etc/netns/.trap-{}", common::unique("t")));
        let deep = root.join("d1/d2");
        std::fs::create_dir_all(deep.join("a")).unwrap();
        std::fs::create_dir_all(root.join("proc/1/ns")).unwrap();
        std::os::unix::fs::symlink("/proc/self/ns/net", root.join("proc/1/ns/net")).unwrap();
        std::os::unix::fs::symlink("/proc/self/ns/net", root.join("d1/x")).unwrap();
        std::os::unix::fs::symlink("/proc/self/ns/net", deep.join("a/b")).unwrap();
        Trap { root }
    }

    /// The directory to run from: `d1/d2` (`../x` is `d1/x`,
    /// `../../proc/1/ns/net` is `proc/1/ns/net`).
    fn cwd(&self) -> PathBuf {
        self.root.join("d1/d2")
    }
}

impl Drop for Trap {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

#[tokio::test]
async fn relative_strings_are_invalid_names_in_every_crate() {
    let trap = Trap::new();
    std::env::set_current_dir(trap.cwd()).unwrap();
    // Each relative string names a real namespace file from here.
    for s in NOT_PATHS {
        let opened = NetNs::open(s);
        assert!(
            opened.is_ok(),
            "{s:?} does not resolve from the trap: {opened:?}"
        );
    }

    let h = Handle::open(Target::Pid(std::process::id() as i32), OpenMode::OpenOnly)
        .await
        .unwrap();
    for s in NOT_PATHS {
        // nsfs
        for mode in MODES {
            let err = Target::from(s)
                .open(&RunDir::default(), mode)
                .await
                .unwrap_err();
            assert!(
                matches!(err, nsfs::Error::InvalidName { .. }),
                "nsfs {s:?} {mode:?}: {err}"
            );
        }
        let err = RunDir::default().identify(s).unwrap_err();
        assert!(
            matches!(err, nsfs::Error::InvalidName { .. }),
            "identify {s:?}: {err}"
        );
        // netns
        for mode in MODES {
            let err = Handle::open(s, mode).await.unwrap_err();
            assert!(is_invalid_name(&err), "Handle::open {s:?} {mode:?}: {err}");
            let err = Handle::open(s.to_owned(), mode).await.unwrap_err();
            assert!(is_invalid_name(&err), "Handle::open {s:?} {mode:?}: {err}");
        }
        let err = h.move_link("lo", s).execute().await.unwrap_err();
        assert!(is_invalid_name(&err), "move_link {s:?}: {err}");
        let err = h.nsid(s).await.unwrap_err();
        assert!(is_invalid_name(&err), "nsid {s:?}: {err}");
        // nsproc, both launch paths
        for mode in [nsproc::ExecMode::Fast, nsproc::ExecMode::IpNetnsExec] {
            let err = nsproc::Command::new("true")
                .netns(s)
                .exec_mode(mode)
                .status()
                .await
                .unwrap_err();
            assert!(nsproc_invalid_name(&err), "nsproc {s:?} {mode:?}: {err}");
        }
        let err = nsproc::spawn(s, ["true"]).await.unwrap_err();
        assert!(nsproc_invalid_name(&err), "nsproc::spawn {s:?}: {err}");
        let err = nsproc::ExecAgent::start(s).await.unwrap_err();
        assert!(nsproc_invalid_name(&err), "ExecAgent::start {s:?}: {err}");
    }
    h.close().await;
    std::env::set_current_dir("/").unwrap();
}

#[tokio::test]
async fn absolute_strings_and_path_values_are_paths_in_every_crate() {
    let mine = NetNs::current_thread().unwrap();
    let paths: [Target; 3] = [
        Target::from("/proc/self/ns/net"),
        Target::from(String::from("/proc/self/ns/net")),
        Target::from(Path::new("/proc/self/ns/net")),
    ];
    for target in paths {
        assert!(matches!(target, Target::Path(_)), "{target:?}");
        let ns = target
            .open(&RunDir::default(), OpenMode::OpenOnly)
            .await
            .unwrap();
        assert_eq!(ns, mine);
        let h = Handle::open(target.clone(), OpenMode::OpenOnly)
            .await
            .unwrap();
        assert_eq!(h.netns(), &mine);
        h.close().await;
        let status = nsproc::Command::new("true")
            .netns(target.clone())
            .status()
            .await
            .unwrap();
        assert!(status.success());
    }
}

fn is_mounted(path: &Path) -> bool {
    let path = path.to_str().unwrap();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|line| line.split(' ').nth(4) == Some(path))
}

/// A directory on the sandbox's tmpfs, removed (with any mount in it) on drop.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Ok(read) = std::fs::read_dir(&self.0) {
            for entry in read.flatten() {
                let _ = nix::mount::umount2(&entry.path(), nix::mount::MntFlags::MNT_DETACH);
                let _ = std::fs::remove_file(entry.path());
            }
        }
        let _ = std::fs::remove_dir(&self.0);
    }
}

#[tokio::test]
async fn handles_are_created_at_a_path() {
    let tmp = TempDir(PathBuf::from(format!(
        "/etc/netns/.at-{}",
        common::unique("h")
    )));
    std::fs::create_dir_all(&tmp.0).unwrap();
    for mode in [OpenMode::CreateOrOpen, OpenMode::CreateExclusive] {
        let path = tmp.0.join(format!("{mode:?}"));
        let h = Handle::open(path.as_path(), mode).await.unwrap();

        // A new namespace, mounted at the path: nsfs, the handle's inode.
        let st = nix::sys::statfs::statfs(&path).unwrap();
        assert_eq!(st.filesystem_type(), nix::sys::statfs::NSFS_MAGIC);
        let md = std::fs::metadata(&path).unwrap();
        assert_eq!(md.ino(), h.netns().id().ino);
        assert_ne!(h.netns(), &NetNs::current_thread().unwrap());
        assert!(is_mounted(&path));
        assert_eq!(common::link_names(&h).await, ["lo"]);
        // Its programs run there too.
        let out = h
            .command("readlink")
            .arg("/proc/self/ns/net")
            .output()
            .await
            .unwrap();
        let ino = h.netns().id().ino;
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            format!("net:[{ino}]")
        );

        let err = Handle::open(path.as_path(), OpenMode::CreateExclusive)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists, "{err}");
        let again = Handle::open(path.as_path(), OpenMode::CreateOrOpen)
            .await
            .unwrap();
        assert_eq!(again.netns(), h.netns());
        again.close().await;
        h.close().await;

        Target::from(path.as_path())
            .remove(&RunDir::default())
            .await
            .unwrap();
        assert!(!is_mounted(&path));
        assert!(!path.exists());
    }
}
