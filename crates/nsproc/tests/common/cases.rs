//! Test bodies run on both launch paths (see `tests/fast.rs`, `tests/exec.rs`).
#![allow(dead_code, unreachable_pub)]

use std::io::ErrorKind;
use std::os::unix::process::ExitStatusExt;

use nsproc::{Command, Error, ExecMode, Stdio};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{TestNs, alive, eventually};

/// Generates the `#[tokio::test]` functions for one mode.
#[macro_export]
macro_rules! tests_for_mode {
    ($mode:expr, $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                common::cases::$name($mode).await
            }
        )*
    };
}

/// Generates the tests every mode passes, then those named after the mode.
#[macro_export]
macro_rules! all_tests_for_mode {
    ($mode:expr $(, $name:ident)* $(,)?) => {
        tests_for_mode!(
            $mode,
            exit_code_3,
            sigterm_is_signal,
            cat_echoes_stdin,
            output_collects_both_streams,
            child_is_in_the_namespace,
            ip_link_lists_the_namespace_links,
            env_cwd_arg0_pgroup,
            missing_binary,
            not_executable,
            missing_namespace,
            only_stdio_fds_in_child,
            given_fd_as_stdout,
            kill_on_drop_kills,
            kill_kills,
            process_group_is_killable_as_a_whole,
            pidfd_names_the_child,
            concurrent_spawns_across_namespaces,
            $($name,)*
        );
    };
}

/// `program args` in `ns`, launched by `mode`.
pub fn cmd(mode: ExecMode, ns: &TestNs, program: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(program);
    cmd.args(args).netns(&ns.name).exec_mode(mode);
    cmd
}

pub async fn exit_code_3(mode: ExecMode) {
    let ns = TestNs::new("exit3").await;
    let status = cmd(mode, &ns, "sh", &["-c", "exit 3"])
        .status()
        .await
        .unwrap();
    assert_eq!(status.code(), Some(3));
    assert_eq!(status.signal(), None);
}

pub async fn sigterm_is_signal(mode: ExecMode) {
    let ns = TestNs::new("term").await;
    let mut child = cmd(mode, &ns, "sleep", &["60"]).spawn().await.unwrap();
    let pid = child.id().expect("pid of a running child");
    assert!(alive(pid));
    child.signal(libc::SIGTERM).unwrap();
    let status = child.wait().await.unwrap();
    assert_eq!(status.signal(), Some(libc::SIGTERM));
    assert_eq!(status.code(), None);
    assert_eq!(child.id(), None);
    // Waited: a further signal is ESRCH, kill is a no-op.
    let err = child.signal(libc::SIGTERM).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ESRCH), "{err}");
    child.kill().await.unwrap();
}

pub async fn cat_echoes_stdin(mode: ExecMode) {
    let ns = TestNs::new("cat").await;
    let mut child = cmd(mode, &ns, "cat", &[])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .await
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    stdin.write_all(b"hello, namespace\n").await.unwrap();
    let mut line = [0u8; 17];
    stdout.read_exact(&mut line).await.unwrap();
    assert_eq!(&line, b"hello, namespace\n");
    // The pipe ends are real fds of ours: fcntl works on them.
    let flags = nix::fcntl::fcntl(&stdout, nix::fcntl::FcntlArg::F_GETFL).unwrap();
    assert_ne!(
        flags & libc::O_NONBLOCK,
        0,
        "tokio pipe ends are non-blocking"
    );
    drop(stdin);
    let mut rest = Vec::new();
    stdout.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty());
    assert!(child.wait().await.unwrap().success());
}

pub async fn output_collects_both_streams(mode: ExecMode) {
    let ns = TestNs::new("out").await;
    let out = cmd(mode, &ns, "sh", &["-c", "echo out; echo err >&2; exit 4"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.stdout, b"out\n");
    assert_eq!(out.stderr, b"err\n");
    assert_eq!(out.status.code(), Some(4));
}

pub async fn child_is_in_the_namespace(mode: ExecMode) {
    let ns = TestNs::new("inode").await;
    let out = cmd(mode, &ns, "readlink", &["/proc/self/ns/net"])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        ns.ns.id().to_string()
    );
    // By path and by handle too.
    for target in [
        nsproc::Target::from(ns.path()),
        nsproc::Target::from(&ns.ns),
    ] {
        let out = Command::new("readlink")
            .arg("/proc/self/ns/net")
            .netns(target)
            .exec_mode(mode)
            .output()
            .await
            .unwrap();
        assert_eq!(
            String::from_utf8(out.stdout).unwrap().trim(),
            ns.ns.id().to_string()
        );
    }
}

pub async fn ip_link_lists_the_namespace_links(mode: ExecMode) {
    let ns = TestNs::new("iplink").await;
    ns.ip(&[
        "link", "add", "nsp-a", "type", "veth", "peer", "name", "nsp-b",
    ]);
    let out = cmd(mode, &ns, "ip", &["-o", "link"])
        .output()
        .await
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("nsp-a@nsp-b"), "{text}");
    assert!(text.contains("nsp-b@nsp-a"), "{text}");
    assert!(text.contains(" lo:"), "{text}");
}

pub async fn env_cwd_arg0_pgroup(mode: ExecMode) {
    let ns = TestNs::new("env").await;
    unsafe_free_env_check(mode, &ns).await;
    let out = cmd(
        mode,
        &ns,
        "sh",
        &["-c", "pwd; echo \"$0\"; ps -o pgid= -p $$; echo $$"],
    )
    .current_dir("/proc")
    .arg0("renamed-sh")
    .process_group(0)
    .output()
    .await
    .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    assert_eq!(
        lines.len(),
        4,
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(lines[0], "/proc");
    assert_eq!(lines[1], "renamed-sh");
    // A new process group whose id is the child's pid.
    assert_eq!(lines[2], lines[3]);
    assert_ne!(lines[2], nix::unistd::getpgrp().to_string());
}

async fn unsafe_free_env_check(mode: ExecMode, ns: &TestNs) {
    // Set, remove, clear; and a changed PATH with a bare program name.
    let out = cmd(mode, ns, "env", &[])
        .env_clear()
        .env("NSPROC_A", "1")
        .env("NSPROC_B", "2")
        .env_remove("NSPROC_B")
        .env("PATH", "/nonexistent:/usr/bin:/bin")
        .output()
        .await
        .unwrap();
    let mut vars: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    vars.sort();
    assert_eq!(vars, ["NSPROC_A=1", "PATH=/nonexistent:/usr/bin:/bin"]);
    // Without env_clear the parent's environment is inherited, minus removals.
    let home = std::env::var("PATH").unwrap();
    let out = cmd(mode, ns, "sh", &["-c", "echo \"$PATH|${NSPROC_C-unset}\""])
        .env("NSPROC_C", "x")
        .env_remove("NSPROC_C")
        .output()
        .await
        .unwrap();
    assert_eq!(
        String::from_utf8(out.stdout).unwrap().trim(),
        format!("{home}|unset")
    );
}

pub async fn missing_binary(mode: ExecMode) {
    let ns = TestNs::new("nobin").await;
    for program in ["/nonexistent/binary", "nsproc-no-such-program"] {
        let err = cmd(mode, &ns, program, &[]).spawn().await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
        assert!(
            matches!(&err, Error::Spawn { program: p, .. } if p == program),
            "{err:?}"
        );
        assert!(err.to_string().contains(program), "{err}");
    }
    // With a PATH set for the child, the lookup uses it.
    let err = cmd(mode, &ns, "sh", &[])
        .env("PATH", "/nonexistent")
        .spawn()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
}

pub async fn not_executable(mode: ExecMode) {
    let ns = TestNs::new("noexec").await;
    let dir = std::env::temp_dir().join(format!("nsproc-noexec-{}-{:?}", std::process::id(), mode));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("script");
    std::fs::write(&file, "#!/bin/sh\nexit 0\n").unwrap();
    let err = cmd(mode, &ns, file.to_str().unwrap(), &[])
        .spawn()
        .await
        .unwrap_err();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied, "{err}");
    assert!(err.to_string().contains("script"), "{err}");
}

/// The error of spawning `true` in `netns`, which must fail.
async fn spawn_true_in(netns: impl Into<nsproc::Target>, mode: ExecMode) -> Error {
    Command::new("true")
        .netns(netns)
        .exec_mode(mode)
        .spawn()
        .await
        .unwrap_err()
}

pub async fn missing_namespace(mode: ExecMode) {
    let err = spawn_true_in(format!("nsproc-missing-{}", std::process::id()), mode).await;
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(matches!(err, Error::Namespace { .. }), "{err:?}");
    let err = spawn_true_in("bad/name", mode).await;
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    let err = spawn_true_in("/nonexistent/ns", mode).await;
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
}

pub async fn only_stdio_fds_in_child(mode: ExecMode) {
    let ns = TestNs::new("fds").await;
    // Open something of ours that must not leak.
    let _held = std::fs::File::open("/proc/self/status").unwrap();
    let out = cmd(mode, &ns, "ls", &["/proc/self/fd"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .await
        .unwrap();
    let mut fds: Vec<i32> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    fds.sort();
    // 3 is the directory `ls` itself opened. Fds this process inherited
    // without close-on-exec from whoever started it (a CI harness's jobserver,
    // say) are passed on by any exec, as with std::process; none of ours is.
    let mut expected = vec![0, 1, 2, 3];
    if mode == ExecMode::Fast {
        expected.extend(super::inherited_fds());
    }
    expected.sort();
    expected.dedup();
    assert_eq!(fds, expected, "{}", String::from_utf8_lossy(&out.stderr));
}

pub async fn given_fd_as_stdout(mode: ExecMode) {
    let ns = TestNs::new("givenfd").await;
    let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
    let status = cmd(mode, &ns, "echo", &["via fd"])
        .stdout(write)
        .status()
        .await
        .unwrap();
    assert!(status.success());
    let mut buf = [0u8; 7];
    nix::unistd::read(&read, &mut buf).unwrap();
    assert_eq!(&buf, b"via fd\n");
}

pub async fn kill_on_drop_kills(mode: ExecMode) {
    let ns = TestNs::new("kod").await;
    let child = cmd(mode, &ns, "sleep", &["60"])
        .kill_on_drop(true)
        .spawn()
        .await
        .unwrap();
    let pid = child.id().unwrap();
    assert!(alive(pid));
    drop(child);
    eventually("the dropped child is killed and reaped", || {
        !std::path::Path::new(&format!("/proc/{pid}")).exists()
    })
    .await;
}

pub async fn kill_kills(mode: ExecMode) {
    let ns = TestNs::new("kill").await;
    let mut child = cmd(mode, &ns, "sleep", &["60"]).spawn().await.unwrap();
    assert!(child.try_wait().unwrap().is_none());
    child.kill().await.unwrap();
    let status = child.try_wait().unwrap().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGKILL));
}

pub async fn concurrent_spawns_across_namespaces(mode: ExecMode) {
    let mut nss = Vec::new();
    for _ in 0..10 {
        nss.push(TestNs::new("conc").await);
    }
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..100 {
        let ns = &nss[i % 10];
        let name = ns.name.clone();
        let expected = ns.ns.id().to_string();
        tasks.spawn(async move {
            let out = Command::new("readlink")
                .arg("/proc/self/ns/net")
                .netns(name)
                .exec_mode(mode)
                .output()
                .await
                .unwrap();
            assert!(out.status.success());
            assert_eq!(String::from_utf8(out.stdout).unwrap().trim(), expected);
        });
    }
    let mut done = 0;
    while let Some(res) = tasks.join_next().await {
        res.unwrap();
        done += 1;
    }
    assert_eq!(done, 100);
}

pub async fn nspopen_spawn(mode: ExecMode) {
    let ns = TestNs::new("popen").await;
    if mode == ExecMode::Fast {
        let mut child = nsproc::spawn(&ns.ns, ["sh", "-c", "exit 7"]).await.unwrap();
        assert_eq!(child.wait().await.unwrap().code(), Some(7));
        let err = nsproc::spawn(&ns.ns, Vec::<&str>::new()).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
    }
}

/// `process_group(0)`: the child leads a new group, its own children are in
/// it, and a supervisor's `killpg` ends them all.
pub async fn process_group_is_killable_as_a_whole(mode: ExecMode) {
    let ns = TestNs::new("pgrp").await;
    let mut child = cmd(mode, &ns, "sh", &["-c", "sleep 1000 & echo $!; wait"])
        .process_group(0)
        .stdout(Stdio::piped())
        .spawn()
        .await
        .unwrap();
    let pid = child.id().unwrap() as i32;
    let mut stdout = child.stdout.take().unwrap();
    let mut line = Vec::new();
    while !line.ends_with(b"\n") {
        let mut byte = [0u8];
        assert_eq!(stdout.read(&mut byte).await.unwrap(), 1, "sh said {line:?}");
        line.push(byte[0]);
    }
    let grandchild: i32 = String::from_utf8(line).unwrap().trim().parse().unwrap();
    let group = |p: i32| nix::unistd::getpgid(Some(nix::unistd::Pid::from_raw(p))).unwrap();
    assert_eq!(group(pid).as_raw(), pid);
    assert_eq!(group(grandchild).as_raw(), pid);
    assert_ne!(group(pid), nix::unistd::getpgrp());

    nix::sys::signal::killpg(group(pid), nix::sys::signal::Signal::SIGKILL).unwrap();
    assert_eq!(child.wait().await.unwrap().signal(), Some(libc::SIGKILL));
    eventually("the group's other member ends", || {
        !alive(grandchild as u32)
    })
    .await;
}

/// `Child::pidfd`: a pidfd on the child (signals through it reach it), and a
/// typed error once the child has been waited for.
pub async fn pidfd_names_the_child(mode: ExecMode) {
    let ns = TestNs::new("pidfd").await;
    let mut child = cmd(mode, &ns, "sleep", &["1000"]).spawn().await.unwrap();
    let pidfd = child.pidfd().unwrap();
    let same = |fd: &std::os::fd::OwnedFd| {
        let fdinfo = format!("/proc/self/fdinfo/{}", std::os::fd::AsRawFd::as_raw_fd(fd));
        std::fs::read_to_string(fdinfo)
            .unwrap()
            .lines()
            .any(|l| l == format!("Pid:\t{}", child.id().unwrap()))
    };
    assert!(same(&pidfd), "the pidfd is not the child's");
    #[allow(unsafe_code)]
    // SAFETY: pidfd_send_signal(2) on a pidfd we own; the info pointer is null.
    let sent = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            std::os::fd::AsRawFd::as_raw_fd(&pidfd),
            libc::SIGTERM,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    assert_eq!(sent, 0, "{}", std::io::Error::last_os_error());
    assert_eq!(child.wait().await.unwrap().signal(), Some(libc::SIGTERM));
    let err = child.pidfd().unwrap_err();
    assert!(matches!(err, Error::Pidfd { .. }), "{err}");
    assert_eq!(err.raw_os_error(), Some(libc::ESRCH));
}
