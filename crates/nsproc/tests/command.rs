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
