//! Command reuse and spawning without a namespace (fast path only).

mod common;

use common::TestNs;
use nsproc::{Command, Stdio};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_spawns_again() {
    let ns = TestNs::new("reuse").await;
    let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
    let mut cmd = Command::new("echo");
    cmd.arg("x").netns(&ns.name).stdout(write);
    for _ in 0..3 {
        assert!(cmd.status().await.unwrap().success());
    }
    drop(cmd);
    let mut buf = [0u8; 6];
    nix::unistd::read(&read, &mut buf).unwrap();
    assert_eq!(&buf, b"x\nx\nx\n");
    // Piped: a new pipe per spawn.
    let mut cmd = Command::new("echo");
    cmd.arg("y").netns(&ns.name).stdout(Stdio::piped());
    for _ in 0..3 {
        assert_eq!(cmd.output().await.unwrap().stdout, b"y\n");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_netns_runs_in_ours() {
    let out = Command::new("readlink")
        .arg("/proc/self/ns/net")
        .output()
        .await
        .unwrap();
    let ours = nsfs::NetNs::current_thread().unwrap();
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        ours.id().to_string()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn current_thread_runtime_works() {
    // The fast path enters the caller's runtime on the namespace thread; a
    // current-thread runtime must work too.
    let ns = TestNs::new("ct").await;
    let name = ns.name.clone();
    let status = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            Command::new("sh")
                .args(["-c", "exit 5"])
                .netns(name)
                .status()
                .await
                .unwrap()
        })
    })
    .join()
    .unwrap();
    assert_eq!(status.code(), Some(5));
}

/// One rule for "name or path" (nsfs's `Target`): a string is a path only if
/// it starts with `/`; `"a/b"`, `"../x"` and `"../../proc/1/ns/net"` are
/// invalid names on both launch paths, and in `ExecAgent::start`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relative_strings_are_invalid_names() {
    let invalid = |err: &nsproc::Error| {
        matches!(
            err,
            nsproc::Error::Namespace {
                source: nsfs::Error::InvalidName { .. },
                ..
            }
        )
    };
    for s in ["a/b", "../x", "../../proc/1/ns/net"] {
        assert!(matches!(nsproc::Target::from(s), nsproc::Target::Name(_)));
        for mode in [nsproc::ExecMode::Fast, nsproc::ExecMode::IpNetnsExec] {
            let err = Command::new("true")
                .netns(s)
                .exec_mode(mode)
                .status()
                .await
                .unwrap_err();
            assert!(invalid(&err), "{s:?} {mode:?}: {err}");
        }
        let err = nsproc::ExecAgent::start(s.to_owned()).await.unwrap_err();
        assert!(invalid(&err), "{s:?}: {err}");
    }
    // A leading `/`, or a path value, is a path.
    let mine = std::path::Path::new("/proc/self/ns/net");
    for target in [nsproc::Target::from("/proc/self/ns/net"), mine.into()] {
        let status = Command::new("true").netns(target).status().await.unwrap();
        assert!(status.success());
    }
}
