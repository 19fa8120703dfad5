//! Throwaway timing behind the executor's defaults (pool size, switching
//! there and back after every job). Not a benchmark row and not a test: run
//! it by hand, in release, on an idle machine:
//!
//! ```text
//! cargo run --release -p nsfs --example measure_executor
//! ```
//!
//! Prints medians (and p90) of:
//! - one closure in a namespace (`run_in`, switch there and back) vs. in the
//!   home namespace (`run_home`: what a thread that stays in, or lives in, the
//!   namespace would cost), for pools of 1, 2 and 4 threads;
//! - a bare `setns` there and back on a plain thread;
//! - 64 closures in flight at once, for pools of 1, 2, 4 and 8 threads;
//! - what 1,000 idle threads (one per namespace) cost in memory;
//! - a create+remove pair against `ip netns add` + `ip netns del`, interleaved;
//! - toolkit jobs (`run_in_short`, create+remove) on the global executor,
//!   all idle and with every closure thread held by a long `NetNs::run` (the
//!   toolkit lane: without it, the second case never finishes).
use std::time::{Duration, Instant};

use nix::sched::{CloneFlags, setns};
use nsfs::{Executor, NetNs};

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 - 1.0) * p) as usize]
}

fn report(what: &str, v: &mut [Duration]) {
    println!(
        "{what:<58} median {:>9.1?}  p90 {:>9.1?}",
        pct(v, 0.5),
        pct(v, 0.9)
    );
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    const N: usize = 20_000;
    let (ns, ()) = Executor::global()?.run_in_new(|| ()).await?;

    for size in [1, 2, 4] {
        let exec = Executor::new(size)?;
        for _ in 0..1000 {
            exec.run_in(&ns, || ()).await?;
        }
        let (mut away, mut home) = (Vec::with_capacity(N), Vec::with_capacity(N));
        for _ in 0..N {
            let t = Instant::now();
            exec.run_in(&ns, || ()).await?;
            away.push(t.elapsed());
            let t = Instant::now();
            exec.run_home(|| ()).await?;
            home.push(t.elapsed());
        }
        report(
            &format!("pool {size}: run_in (setns there and back)"),
            &mut away,
        );
        report(
            &format!("pool {size}: run_home (no switch: a thread that stays)"),
            &mut home,
        );
    }

    let target = ns.try_clone_fd()?;
    let pair = std::thread::spawn(move || {
        let home = NetNs::current_thread().unwrap();
        let mut v = Vec::with_capacity(N);
        for _ in 0..N {
            let t = Instant::now();
            setns(&target, CloneFlags::CLONE_NEWNET).unwrap();
            setns(&home, CloneFlags::CLONE_NEWNET).unwrap();
            v.push(t.elapsed());
        }
        v
    })
    .join()
    .unwrap();
    report(
        "bare setns there and back (plain thread)",
        &mut pair.clone(),
    );

    for size in [1, 2, 4, 8] {
        let exec = Executor::new(size)?;
        let mut per_batch = Vec::new();
        for _ in 0..200 {
            let t = Instant::now();
            let jobs: Vec<_> = (0..64)
                .map(|_| {
                    let (exec, ns) = (exec.clone(), ns.clone());
                    tokio::spawn(async move { exec.run_in(&ns, || ()).await })
                })
                .collect();
            for job in jobs {
                job.await??;
            }
            per_batch.push(t.elapsed() / 64);
        }
        report(
            &format!("pool {size}: 64 in flight, time per closure"),
            &mut per_batch,
        );
    }

    let before = rss_kib();
    let t = Instant::now();
    let gate = std::sync::Arc::new(std::sync::Barrier::new(1001));
    let threads: Vec<_> = (0..1000)
        .map(|_| {
            let gate = gate.clone();
            std::thread::spawn(move || {
                gate.wait();
            })
        })
        .collect();
    let spawn = t.elapsed();
    std::thread::sleep(Duration::from_millis(200));
    let after = rss_kib();
    gate.wait();
    for t in threads {
        t.join().unwrap();
    }
    println!(
        "1,000 threads (one per namespace): spawn {spawn:.1?}, RSS +{} KiB (+{} KiB each)",
        after.saturating_sub(before),
        after.saturating_sub(before) / 1000
    );

    let dir = nsfs::RunDir::default();
    let name = nsfs::NsName::new("measure-executor")?;
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for _ in 0..100 {
        let t = Instant::now();
        dir.create(&name, nsfs::OpenMode::CreateExclusive).await?;
        dir.remove(&name).await?;
        ours.push(t.elapsed());
        let t = Instant::now();
        for verb in ["add", "del"] {
            let status = std::process::Command::new("ip")
                .args(["netns", verb, name.as_str()])
                .status()?;
            assert!(status.success());
        }
        theirs.push(t.elapsed());
    }
    report("create + remove (RunDir)", &mut ours);
    report("ip netns add + ip netns del (two processes)", &mut theirs);

    let global = Executor::global()?;
    for held in [false, true] {
        let mut releases = Vec::new();
        let mut busy = Vec::new();
        if held {
            for _ in 0..global.size() {
                let (release, wait) = std::sync::mpsc::channel::<()>();
                let (started, running) = tokio::sync::oneshot::channel();
                let ns = ns.clone();
                busy.push(tokio::spawn(async move {
                    ns.run(move || {
                        let _ = started.send(());
                        let _ = wait.recv();
                    })
                    .await
                }));
                running.await?;
                releases.push(release);
            }
        }
        let label = if held {
            "every closure thread held"
        } else {
            "all idle"
        };
        let mut short = Vec::with_capacity(N);
        for _ in 0..N {
            let t = Instant::now();
            global.run_in_short(&ns, || ()).await?;
            short.push(t.elapsed());
        }
        report(&format!("global, {label}: run_in_short"), &mut short);
        let mut pair = Vec::new();
        for _ in 0..100 {
            let t = Instant::now();
            dir.create(&name, nsfs::OpenMode::CreateExclusive).await?;
            dir.remove(&name).await?;
            pair.push(t.elapsed());
        }
        report(&format!("global, {label}: create + remove"), &mut pair);
        drop(releases);
        for job in busy {
            job.await??;
        }
    }
    Ok(())
}
