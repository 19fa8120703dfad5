//! Throwaway timing of the executor's hand-off (a no-op closure there and
//! back), seen from the places a caller can await it. Not a benchmark row and
//! not a test: run it by hand, in release:
//!
//! ```text
//! cargo run --release -p nsfs --example measure_handoff
//! ```
//!
//! Prints medians (and p90) of `Executor::run_home(|| ())`,
//! `Executor::run_in(&ns, || ())` and `Executor::run_in_short(&ns, || ())`,
//! and of `tokio::task::spawn_blocking` for reference, awaited
//! - from `block_on` of a current-thread runtime;
//! - from `block_on` of a multi-thread runtime (the main thread, which is not
//!   a worker: what `#[tokio::main]`'s body is);
//! - from a task spawned on a multi-thread runtime (a worker), idle;
//! - the same with another task keeping the other worker busy.
//!
//! Last, what a DEBUG span around each submission would add with no
//! subscriber (made and entered around a ready future, per call).
//!
//! The numbers are in `docs/architecture.md`.
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nsfs::{Executor, NetNs};

const N: usize = 5_000;

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 - 1.0) * p) as usize]
}

fn report(what: &str, v: &mut [Duration]) {
    println!(
        "{what:<62} median {:>8.1?}  p90 {:>8.1?}",
        pct(v, 0.5),
        pct(v, 0.9)
    );
}

/// Times `N` sequential awaits of `op` (after 500 for warm-up).
async fn time<F, Fut>(op: F) -> Vec<Duration>
where
    F: Fn() -> Fut,
    Fut: Future<Output = ()>,
{
    for _ in 0..500 {
        op().await;
    }
    let mut v = Vec::with_capacity(N);
    for _ in 0..N {
        let t = Instant::now();
        op().await;
        v.push(t.elapsed());
    }
    v
}

/// The three operations, timed from wherever this future runs.
async fn all(exec: Executor, ns: NetNs, label: &str) {
    let e = exec.clone();
    report(
        &format!("{label}: run_home"),
        &mut time(|| {
            let e = e.clone();
            async move { e.run_home(|| ()).await.unwrap() }
        })
        .await,
    );
    let e = exec.clone();
    report(
        &format!("{label}: run_in (setns there and back)"),
        &mut time(|| {
            let (e, ns) = (e.clone(), ns.clone());
            async move { e.run_in(&ns, || ()).await.unwrap() }
        })
        .await,
    );
    let e = exec.clone();
    report(
        &format!("{label}: run_in_short (the caller's CPU lent)"),
        &mut time(|| {
            let (e, ns) = (e.clone(), ns.clone());
            async move { e.run_in_short(&ns, || ()).await.unwrap() }
        })
        .await,
    );
    report(
        &format!("{label}: tokio spawn_blocking (reference)"),
        &mut time(|| async { tokio::task::spawn_blocking(|| ()).await.unwrap() }).await,
    );
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let exec = Executor::new(2)?;
    let ns = {
        let rt = tokio::runtime::Builder::new_current_thread().build()?;
        rt.block_on(exec.run_in_new(|| ()))?.0
    };

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(all(exec.clone(), ns.clone(), "current-thread block_on"));
    drop(rt);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(all(exec.clone(), ns.clone(), "multi-thread block_on"));
    let (e, n) = (exec.clone(), ns.clone());
    rt.block_on(rt.spawn(async move {
        all(e, n, "multi-thread task, idle").await;
    }))?;
    let stop = Arc::new(AtomicBool::new(false));
    let busy = {
        let stop = Arc::clone(&stop);
        rt.spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                while t.elapsed() < Duration::from_micros(200) {
                    std::hint::spin_loop();
                }
                tokio::task::yield_now().await;
            }
        })
    };
    let (e, n) = (exec.clone(), ns.clone());
    rt.block_on(rt.spawn(async move {
        all(e, n, "multi-thread task, other worker busy").await;
    }))?;
    stop.store(true, Ordering::Relaxed);
    rt.block_on(busy)?;

    use tracing::Instrument;
    const M: u32 = 1_000_000;
    let rt = tokio::runtime::Builder::new_current_thread().build()?;
    let (plain, spanned) = rt.block_on(async {
        let t = Instant::now();
        for i in 0..M {
            std::hint::black_box(std::future::ready(i).await);
        }
        let plain = t.elapsed();
        let t = Instant::now();
        for i in 0..M {
            let span = tracing::debug_span!(
                "run",
                netns = %ns.describe().display(),
                inode = ns.id().ino,
                outcome = tracing::field::Empty,
            );
            std::hint::black_box(std::future::ready(i).instrument(span).await);
        }
        (plain, t.elapsed())
    });
    println!(
        "a DEBUG span per submission, no subscriber: {:.1?} per call (future alone {:.1?})",
        spanned / M,
        plain / M
    );
    Ok(())
}
