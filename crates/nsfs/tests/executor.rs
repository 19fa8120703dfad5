//! The namespace threads: a closure run in a namespace sees that namespace
//! while every runtime thread stays in its own; panics reach the caller and
//! the pool keeps working; anonymous namespaces; the home namespace.
#![allow(unsafe_code)]
mod common;

use std::time::Duration;

use common::*;
use nsfs::{Executor, NetNs, OpenMode, RunDir};

fn here() -> nsfs::NsId {
    NetNs::current_thread().unwrap().id()
}

/// Every thread of this process is in `home`. Runtime threads must be there
/// at every moment; a namespace thread is allowed the instant between
/// answering and switching back, so it is given a moment.
fn assert_all_threads_home(home: nsfs::NsId) {
    for (tid, comm, ino) in thread_namespaces() {
        if ino == home.ino {
            continue;
        }
        assert_eq!(
            comm, "netns-exec",
            "thread {tid} ({comm}) is in net:[{ino}], not home"
        );
        let path = format!("/proc/self/task/{tid}/ns/net");
        let back = (0..5000).any(|_| {
            std::thread::sleep(Duration::from_millis(1));
            std::fs::metadata(&path).map_or(true, |md| {
                std::os::unix::fs::MetadataExt::ino(&md) == home.ino
            })
        });
        assert!(back, "namespace thread {tid} never came home");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closures_see_their_namespace_and_runtime_threads_stay_home() {
    require_root();
    let home = here();
    let dir = RunDir::default();
    let names: Vec<_> = (0..4).map(|_| unique("exec")).collect();
    let _g: Vec<_> = names.iter().map(|n| NameGuard::new(&dir, n)).collect();
    let mut spaces = Vec::new();
    for name in &names {
        spaces.push(dir.create(name, OpenMode::CreateExclusive).await.unwrap());
    }
    // Many closures at once, over several namespaces, from several tasks.
    let mut tasks = Vec::new();
    for i in 0..200 {
        let ns = spaces[i % spaces.len()].clone();
        tasks.push(tokio::spawn(async move {
            let (thread_ns, name, dev) = ns
                .run(|| {
                    let link = std::fs::read_link("/proc/thread-self/ns/net").unwrap();
                    let comm = std::fs::read_to_string("/proc/thread-self/comm").unwrap();
                    let dev = std::fs::read_to_string("/proc/thread-self/net/dev").unwrap();
                    (link, comm, dev)
                })
                .await
                .unwrap();
            assert_eq!(
                thread_ns.to_str().unwrap(),
                format!("net:[{}]", ns.id().ino)
            );
            assert_eq!(
                name.trim(),
                "netns-exec",
                "ran on a thread the toolkit does not own"
            );
            assert!(dev.contains("lo:"));
            // The task's own thread (a runtime worker) is still home.
            assert_eq!(here(), home);
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(here(), home);
    assert_all_threads_home(home);
    // tokio's blocking pool, grown now, is born home too.
    let blocking = tokio::task::spawn_blocking(here).await.unwrap();
    assert_eq!(blocking, home);
    for name in &names {
        dir.remove(name).await.unwrap();
    }
}

#[tokio::test]
async fn a_panic_reaches_the_caller_and_the_pool_goes_on() {
    require_root();
    let exec = Executor::new(1).unwrap();
    let (ns, ()) = exec.run_in_new(|| ()).await.unwrap();
    let exec2 = exec.clone();
    let ns2 = ns.clone();
    let joined =
        tokio::spawn(async move { exec2.run_in(&ns2, || panic!("boom in a namespace")).await })
            .await;
    let panic = joined.unwrap_err().into_panic();
    assert_eq!(panic.downcast_ref::<&str>(), Some(&"boom in a namespace"));
    let joined = tokio::spawn({
        let exec = exec.clone();
        async move { exec.run_home(|| panic!("boom at home")).await }
    })
    .await;
    assert!(joined.unwrap_err().is_panic());
    // The one thread survived both, and went home after the first.
    assert_eq!(exec.run_home(here).await.unwrap(), exec.home().id());
    assert_eq!(exec.run_in(&ns, here).await.unwrap(), ns.id());
    assert_eq!(exec.run_home(here).await.unwrap(), exec.home().id());
}

#[tokio::test]
async fn run_in_new_makes_a_fresh_namespace_each_time() {
    require_root();
    let exec = Executor::global().unwrap();
    let (a, ida) = exec.run_in_new(here).await.unwrap();
    let (b, idb) = exec.run_in_new(here).await.unwrap();
    assert_eq!(a.id(), ida);
    assert_eq!(b.id(), idb);
    assert_ne!(a, b);
    assert_ne!(a.id(), here());
    assert!(
        a.path().is_none() || a.path() == Some(std::path::Path::new("/proc/thread-self/ns/net"))
    );
    // It lives on as long as the handle: still usable after the job.
    let dev = a
        .run(|| std::fs::read_to_string("/proc/thread-self/net/dev").unwrap())
        .await;
    assert!(dev.unwrap().contains("lo:"));
    let panic =
        tokio::spawn(async { Executor::global().unwrap().run_in_new(|| panic!("x")).await })
            .await
            .unwrap_err();
    assert!(panic.is_panic());
}

#[tokio::test]
async fn executors_have_a_home_and_a_size() {
    require_root();
    let exec = Executor::new(0).unwrap();
    assert_eq!(exec.size(), 1, "a pool has at least one thread");
    assert_eq!(exec.home().id(), here());
    assert!(Executor::global().unwrap().size() >= 2);
    // An executor made on a thread inside another namespace has that home.
    let (ns, other) = Executor::global()
        .unwrap()
        .run_in_new(|| Executor::new(1).map(|e| e.home().id()))
        .await
        .unwrap();
    assert_eq!(other.unwrap(), ns.id());
}

#[tokio::test]
async fn jobs_run_concurrently_up_to_the_pool_size() {
    require_root();
    let exec = Executor::new(3).unwrap();
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(3));
    // Three jobs that can only finish together: they need three threads.
    let jobs: Vec<_> = (0..3)
        .map(|_| {
            let (exec, barrier) = (exec.clone(), barrier.clone());
            tokio::spawn(async move { exec.run_home(move || barrier.wait().is_leader()).await })
        })
        .collect();
    let mut leaders = 0;
    for job in jobs {
        leaders += usize::from(job.await.unwrap().unwrap());
    }
    assert_eq!(leaders, 1);
}

#[tokio::test]
async fn dropped_futures_still_run_their_closure() {
    require_root();
    let exec = Executor::new(1).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let fut = exec.run_home(move || tx.send(42).unwrap());
    // Polled once (submitted), then dropped.
    let _ = tokio::time::timeout(Duration::ZERO, fut).await;
    assert_eq!(rx.recv_timeout(Duration::from_secs(20)).unwrap(), 42);
    // Never polled: never submitted, never run.
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    drop(exec.run_home(move || tx.send(()).unwrap()));
    assert!(rx.recv().is_err());
}

/// The CPUs a thread may run on (0: the calling thread), and the one it is on.
fn affinity() -> (Vec<usize>, usize) {
    let set = nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0)).unwrap();
    let cpus = (0..nix::sched::CpuSet::count())
        .filter(|&c| set.is_set(c).unwrap())
        .collect();
    (cpus, nix::sched::sched_getcpu().unwrap())
}

/// An executor of one thread (started), an anonymous namespace, and the
/// CPUs this thread may run on (the thread's own affinity).
async fn one_thread() -> (Executor, NetNs, Vec<usize>) {
    require_root();
    let exec = Executor::new(1).unwrap();
    let (ns, ()) = exec.run_in_new(|| ()).await.unwrap();
    (exec, ns, affinity().0)
}

/// Lets the executor's threads finish answering and park.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(20)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_closure_runs_in_its_namespace_on_the_lent_cpu_and_the_thread_gives_it_back() {
    let (exec, ns, own) = one_thread().await;
    // Once the one thread is idle (parked: this test cannot see when, so it
    // tries again after a pause, up to 10 s), it is confined to the caller's
    // CPU and runs there.
    let mut confined = false;
    for _ in 0..500 {
        settle().await;
        let (id, (cpus, on)) = exec
            .run_in_short(&ns, || (here(), affinity()))
            .await
            .unwrap();
        assert_eq!(id, ns.id());
        if cpus == vec![on] {
            confined = true;
            break;
        }
        assert_eq!(cpus, own, "neither confined nor its own affinity");
    }
    assert!(
        confined,
        "the short job's thread was never confined to one CPU"
    );
    // Any other job gets the thread's own affinity back first, and the
    // thread went home in between.
    settle().await;
    let (id, (cpus, _)) = exec.run_home(|| (here(), affinity())).await.unwrap();
    assert_eq!(id, exec.home().id());
    assert_eq!(cpus, own);
    settle().await;
    let (cpus, _) = exec.run_in(&ns, affinity).await.unwrap();
    assert_eq!(cpus, own);
    // A panic reaches the caller and the thread goes on.
    settle().await;
    let exec2 = exec.clone();
    let ns2 = ns.clone();
    let joined =
        tokio::spawn(async move { exec2.run_in_short(&ns2, || panic!("short boom")).await }).await;
    assert_eq!(
        joined.unwrap_err().into_panic().downcast_ref::<&str>(),
        Some(&"short boom")
    );
    assert_eq!(exec.run_in_short(&ns, here).await.unwrap(), ns.id());
}

/// Runs a job on `exec` that blocks its thread until the sender returned is
/// used or dropped; returns once the job runs, with its task.
async fn occupy(
    exec: &Executor,
) -> (
    std::sync::mpsc::Sender<()>,
    tokio::task::JoinHandle<nsfs::Result<()>>,
) {
    let (release, wait) = std::sync::mpsc::channel::<()>();
    let (started, running) = tokio::sync::oneshot::channel();
    let busy = tokio::spawn({
        let exec = exec.clone();
        async move {
            exec.run_home(move || {
                started.send(()).unwrap();
                let _ = wait.recv();
            })
            .await
        }
    });
    running.await.unwrap();
    (release, busy)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_closure_with_no_idle_thread_waits_its_turn_unconfined() {
    let (exec, ns, own) = one_thread().await;
    // Both threads (the closure's and the reserved one) are busy until
    // released: nothing is idle to lend to.
    let (release, busy) = occupy(&exec).await;
    let (release_toolkit, busy_toolkit) = occupy(&exec.toolkit()).await;
    let short = tokio::spawn({
        let (exec, ns) = (exec.clone(), ns.clone());
        async move { exec.run_in_short(&ns, || (here(), affinity())).await }
    });
    settle().await;
    assert!(!short.is_finished());
    release_toolkit.send(()).unwrap();
    busy_toolkit.await.unwrap().unwrap();
    let (id, (cpus, _)) = short.await.unwrap().unwrap();
    assert_eq!(id, ns.id());
    assert_eq!(cpus, own, "a queued short job must not confine a thread");
    release.send(()).unwrap();
    busy.await.unwrap().unwrap();
}

/// Closures beyond the pool's size wait for a running one to finish, while
/// jobs of the toolkit lane run at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closures_are_capped_at_the_size_and_toolkit_jobs_go_past_them() {
    require_root();
    let exec = Executor::new(1).unwrap();
    let (release, busy) = occupy(&exec).await;
    let queued = tokio::spawn({
        let exec = exec.clone();
        async move { exec.run_home(|| ()).await }
    });
    let in_lane = tokio::time::timeout(Duration::from_secs(10), exec.toolkit().run_home(|| 7))
        .await
        .expect("a toolkit job waited behind a closure");
    assert_eq!(in_lane.unwrap(), 7);
    settle().await;
    assert!(!queued.is_finished(), "a second closure ran past the size");
    release.send(()).unwrap();
    busy.await.unwrap().unwrap();
    queued.await.unwrap().unwrap();
}

/// Regression (hardening issue, "long closures starve everything"): with
/// every closure thread of the global executor busy in a long `NetNs::run`,
/// the toolkit's own jobs (create, a socket made with `run_short`, a spawn
/// with `run_toolkit`, pids, remove) waited behind them without bound. They
/// now run in the toolkit lane. Runs in a process of its own, since it
/// occupies the process-wide executor.
#[test]
fn long_closures_do_not_stall_toolkit_jobs() {
    run_role("role_long_closures_do_not_stall_toolkit_jobs", "TOOLKIT-OK");
}

#[test]
#[ignore = "the process of long_closures_do_not_stall_toolkit_jobs (which runs it)"]
fn role_long_closures_do_not_stall_toolkit_jobs() {
    require_root();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let exec = Executor::global().unwrap();
        let (ns, ()) = exec.run_in_new(|| ()).await.unwrap();
        // Every closure thread blocks until released, and one more closure
        // waits behind them.
        let mut held = Vec::new();
        for _ in 0..exec.size() {
            let (release, wait) = std::sync::mpsc::channel::<()>();
            let (started, running) = tokio::sync::oneshot::channel();
            let ns = ns.clone();
            let busy = tokio::spawn(async move {
                ns.run(move || {
                    started.send(()).unwrap();
                    let _ = wait.recv();
                })
                .await
            });
            running.await.unwrap();
            held.push((release, busy));
        }
        let queued = tokio::spawn({
            let ns = ns.clone();
            async move { ns.run(|| ()).await }
        });

        let bounded = Duration::from_secs(10);
        let tmp = TempRunDir::new("starve");
        let name = unique("starve");
        let created =
            tokio::time::timeout(bounded, tmp.dir.create(&name, OpenMode::CreateExclusive))
                .await
                .expect("create waited behind long closures")
                .unwrap();
        let socket = tokio::time::timeout(
            bounded,
            created.run_short(|| std::net::UdpSocket::bind("127.0.0.1:0")),
        )
        .await
        .expect("run_short (a socket) waited behind long closures")
        .unwrap()
        .unwrap();
        drop(socket);
        let child = tokio::time::timeout(
            bounded,
            created.run_toolkit(|| std::process::Command::new("true").spawn()),
        )
        .await
        .expect("run_toolkit (a spawn) waited behind long closures")
        .unwrap();
        assert!(child.unwrap().wait().unwrap().success());
        let pids = tokio::time::timeout(bounded, tmp.dir.pids(&name))
            .await
            .expect("pids waited behind long closures")
            .unwrap();
        assert_eq!(pids, Vec::<i32>::new());
        tokio::time::timeout(bounded, tmp.dir.remove(&name))
            .await
            .expect("remove waited behind long closures")
            .unwrap();
        assert!(!queued.is_finished(), "a closure ran past the pool's size");

        for (release, busy) in held {
            release.send(()).unwrap();
            busy.await.unwrap().unwrap();
        }
        queued.await.unwrap().unwrap();
    });
    println!("TOOLKIT-OK");
}

#[test]
fn a_real_time_caller_does_not_lend_its_cpu() {
    let (rt, ns) = runtime_and_namespace();
    // The thread is started (and parks) from this normal thread.
    let exec = Executor::new(1).unwrap();
    rt.block_on(exec.run_home(|| ())).unwrap();
    let (own, _) = affinity();
    std::thread::scope(|s| {
        s.spawn(|| {
            let param = libc::sched_param { sched_priority: 1 };
            // SAFETY: sets the calling thread's policy from a valid sched_param.
            let set = unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) };
            assert_eq!(set, 0, "{}", std::io::Error::last_os_error());
            std::thread::sleep(Duration::from_millis(20));
            let (id, (cpus, _)) = rt
                .block_on(exec.run_in_short(&ns, || (here(), affinity())))
                .unwrap();
            assert_eq!(id, ns.id());
            assert_eq!(cpus, own, "a SCHED_FIFO caller lent its CPU");
        });
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_short_closures_at_once_all_run_in_their_namespace() {
    require_root();
    let home = here();
    let exec = Executor::new(2).unwrap();
    let (ns, ()) = exec.run_in_new(|| ()).await.unwrap();
    let (own, _) = affinity();
    let tasks: Vec<_> = (0..500)
        .map(|i| {
            let (exec, ns) = (exec.clone(), ns.clone());
            tokio::spawn(async move {
                if i % 3 == 0 {
                    exec.run_home(here).await.map(|id| (id, false))
                } else {
                    exec.run_in_short(&ns, here).await.map(|id| (id, true))
                }
            })
        })
        .collect();
    for task in tasks {
        let (id, short) = task.await.unwrap().unwrap();
        assert_eq!(id, if short { ns.id() } else { home });
    }
    assert_eq!(here(), home);
    // Both threads end up with their own affinity once given a plain job.
    settle().await;
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
    let jobs: Vec<_> = (0..2)
        .map(|_| {
            let (exec, barrier) = (exec.clone(), barrier.clone());
            tokio::spawn(async move {
                exec.run_home(move || {
                    barrier.wait();
                    affinity().0
                })
                .await
            })
        })
        .collect();
    for job in jobs {
        assert_eq!(job.await.unwrap().unwrap(), own);
    }
}

/// Runs the ignored test `role` in a process of its own (this binary run
/// again) and checks that it passed and printed `marker`.
fn run_role(role: &str, marker: &str) {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            role,
            "--nocapture",
            "--test-threads=1",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains(marker),
        "{role}: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Regression: a failed first use of `Executor::global` (here: no fd left to
/// open the home namespace) was remembered for the life of the process, so
/// every later `NetNs::run` failed too. Now a later call tries again. Runs in
/// a process of its own (this binary, `--ignored --exact`), since the global
/// executor and the fd limit are process-wide.
#[test]
fn global_executor_survives_a_failed_first_use() {
    run_role("role_global_executor_after_a_failed_first_use", "GLOBAL-OK");
}

#[test]
#[ignore = "the process of global_executor_survives_a_failed_first_use (which runs it)"]
fn role_global_executor_after_a_failed_first_use() {
    let set_soft_limit = |soft: libc::rlim_t, hard: libc::rlim_t| {
        let lim = libc::rlimit {
            rlim_cur: soft,
            rlim_max: hard,
        };
        // SAFETY: setrlimit reads a valid, initialised rlimit.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) }, 0);
    };
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into a valid rlimit.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut old) }, 0);
    set_soft_limit(0, old.rlim_max);
    let first = Executor::global().map(|_| ());
    set_soft_limit(old.rlim_cur, old.rlim_max);
    assert!(first.is_err(), "no fd could be opened, yet: {first:?}");
    let exec = Executor::global().expect("the global executor once fds are available again");
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    assert_eq!(rt.block_on(exec.run_home(|| 7)).unwrap(), 7);
    println!("GLOBAL-OK");
}

/// Regression: a job whose `setns` into its namespace failed (here: the
/// thread lacks `CAP_SYS_ADMIN`, as after a service drops privileges) marked
/// its thread as away; switching "back" failed the same way, so the thread
/// exited after every such job, taking with it any agent it had started
/// (`PR_SET_PDEATHSIG`), and a job queued meanwhile could wait for ever. A
/// thread that never left stays. Runs in a process of its own (capabilities).
#[test]
fn a_failed_enter_keeps_its_thread() {
    run_role("role_a_failed_enter_keeps_its_thread", "SAME-THREAD-OK");
}

#[test]
#[ignore = "the process of a_failed_enter_keeps_its_thread (which runs it)"]
fn role_a_failed_enter_keeps_its_thread() {
    let (rt, other) = runtime_and_namespace();
    drop_cap_sys_admin();
    // Threads of this executor are started from this thread: without
    // CAP_SYS_ADMIN, so every setns fails with EPERM.
    let exec = Executor::new(1).unwrap();
    let tid = || nix::unistd::gettid().as_raw();
    let before = within_rt(&rt, exec.run_home(tid)).unwrap();
    let failed = within_rt(&rt, exec.run_in(&other, || ()));
    match failed {
        Err(nsfs::Error::Enter { source, .. }) => {
            assert_eq!(source.raw_os_error(), Some(libc::EPERM), "{source}")
        }
        other => panic!("expected Error::Enter (EPERM), got {other:?}"),
    }
    // The same through the CPU-lending path.
    std::thread::sleep(Duration::from_millis(20));
    match within_rt(&rt, exec.run_in_short(&other, || ())) {
        Err(nsfs::Error::Enter { source, .. }) => {
            assert_eq!(source.raw_os_error(), Some(libc::EPERM), "{source}")
        }
        other => panic!("expected Error::Enter (EPERM), got {other:?}"),
    }
    let after = within_rt(&rt, exec.run_home(tid)).unwrap();
    assert_eq!(
        before, after,
        "the namespace thread exited after a failed enter"
    );
    println!("SAME-THREAD-OK");
}

/// A current-thread runtime on this thread, and a new anonymous namespace.
fn runtime_and_namespace() -> (tokio::runtime::Runtime, NetNs) {
    require_root();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (ns, ()) = rt
        .block_on(Executor::global().unwrap().run_in_new(|| ()))
        .unwrap();
    (rt, ns)
}

/// Runs `f` on `rt`, failing after 20 s instead of hanging.
fn within_rt<F: std::future::Future>(rt: &tokio::runtime::Runtime, f: F) -> F::Output {
    rt.block_on(async { tokio::time::timeout(Duration::from_secs(20), f).await })
        .expect("hang guard: a job never ran")
}

/// Clears `CAP_SYS_ADMIN` from the calling thread's effective set.
fn drop_cap_sys_admin() {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const VERSION_3: u32 = 0x2008_0522;
    const CAP_SYS_ADMIN: u32 = 21;
    let mut header = Header {
        version: VERSION_3,
        pid: 0,
    };
    let mut data = [Data::default(); 2];
    // SAFETY: capget fills a version-3 header and two data structs, which
    // both point at and outlive the call.
    let ret = unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) };
    assert_eq!(ret, 0, "capget: {}", std::io::Error::last_os_error());
    data[0].effective &= !(1 << CAP_SYS_ADMIN);
    // SAFETY: as above; capset only reads them.
    let ret = unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) };
    assert_eq!(ret, 0, "capset: {}", std::io::Error::last_os_error());
}

/// Regression: when the pool's last thread left it (here: born in a foreign
/// namespace from a submitter without `CAP_SYS_ADMIN`, it cannot switch home),
/// the job it was started for stayed queued for ever. It now fails with
/// `Error::Thread`. Runs in a process of its own (capabilities).
#[test]
fn a_job_left_without_a_thread_fails_instead_of_hanging() {
    run_role("role_a_job_left_without_a_thread_fails", "NO-HANG-OK");
}

#[test]
#[ignore = "the process of a_job_left_without_a_thread_fails_instead_of_hanging (which runs it)"]
fn role_a_job_left_without_a_thread_fails() {
    let (_rt, other) = runtime_and_namespace();
    // Home is this thread's namespace; no thread is started yet.
    let exec = Executor::new(1).unwrap();
    let submitter = std::thread::spawn(move || {
        nix::sched::setns(&other, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        drop_cap_sys_admin();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        within_rt(&rt, exec.run_home(|| ()))
    });
    match submitter.join().unwrap() {
        Err(nsfs::Error::Thread { .. }) => println!("NO-HANG-OK"),
        other => panic!("expected Error::Thread, got {other:?}"),
    }
}
