//! nsproc rows: spawn+wait `/bin/true` on the fast path and the exec path,
//! against `tokio::process::Command` in the root netns and `ip netns exec`,
//! and the fast path in a parent holding 2 GiB of touched memory.

use std::time::{Duration, Instant};

use nsproc::{Command, ExecMode};

use super::{NotYet, RowSpec};
use crate::harness::{BResult, Config, Measurement, Target, err, pair};
use crate::scratch::{Scratch, run_quiet};
use crate::worker::Worker;

pub(super) fn rows() -> Vec<RowSpec> {
    vec![
        RowSpec {
            name: "nsproc/spawn-fast-vs-tokio",
            about: "spawn+wait /bin/true in a named netns with nsproc::Command (fast path: posix_spawn from a namespace thread) vs tokio::process::Command in the root netns",
            target: Target::RatioAtMost(1.15),
            run: |c| Box::pin(fast_vs_tokio(c)),
        },
        RowSpec {
            name: "nsproc/spawn-fast-vs-ip-netns-exec",
            about: "spawn+wait /bin/true in a named netns with nsproc::Command (fast path) vs `ip netns exec NAME /bin/true` run as a process",
            target: Target::RatioAtMost(1.0 / 3.0),
            run: |c| Box::pin(fast_vs_ip(c)),
        },
        RowSpec {
            name: "nsproc/spawn-exec-vs-tokio",
            about: "spawn+wait /bin/true with nsproc::Command on the `ip netns exec` path (through the nsproxy agent: private mount ns, /sys, /etc/netns) vs tokio::process::Command in the root netns",
            target: Target::RatioAtMost(2.0),
            run: |c| Box::pin(exec_vs_tokio(c)),
        },
        RowSpec {
            name: "nsproc/spawn-exec-cold-vs-tokio",
            about: "as nsproc/spawn-exec-vs-tokio, but with nsproc's cached exec-path agents closed before each sample (untimed), so every spawn starts its agent first",
            target: Target::None,
            run: |c| Box::pin(exec_cold_vs_tokio(c)),
        },
        RowSpec {
            name: "nsproc/spawn-fast-2gib-parent",
            about: "spawn+wait /bin/true on the fast path from a worker process holding 2 GiB of touched memory vs from a small worker (both this binary, asked in turn)",
            target: Target::RatioAtMost(1.2),
            run: |c| Box::pin(fast_big_parent(c)),
        },
        RowSpec {
            name: "tokio/spawn-2gib-parent",
            about: "for context: spawn+wait /bin/true with tokio::process::Command (root netns) from a worker holding 2 GiB of touched memory vs from a small worker",
            target: Target::None,
            run: |c| Box::pin(tokio_big_parent(c)),
        },
    ]
}

/// Operations the rows of this module ask worker processes for.
pub(super) async fn worker_op(op: &str, arg: &str) -> Option<BResult<Duration>> {
    let mode = match op {
        "spawn-fast" => ExecMode::Fast,
        "spawn-exec" => ExecMode::IpNetnsExec,
        _ => return None,
    };
    Some(spawn_true(arg, mode).await)
}

/// One spawn+wait of `/bin/true` in the namespace named `name`.
async fn spawn_true(name: &str, mode: ExecMode) -> BResult<Duration> {
    let start = Instant::now();
    let status = match Command::new("/bin/true")
        .netns(name)
        .exec_mode(mode)
        .status()
        .await
    {
        Ok(s) => s,
        Err(e) if mode == ExecMode::IpNetnsExec && e.kind() == std::io::ErrorKind::Unsupported => {
            return Err(Box::new(NotYet(e.to_string())));
        }
        Err(e) => return Err(e.into()),
    };
    let t = start.elapsed();
    if !status.success() {
        return Err(err(format!("/bin/true: {status}")));
    }
    Ok(t)
}

async fn tokio_true() -> BResult<Duration> {
    let start = Instant::now();
    let status = tokio::process::Command::new("/bin/true").status().await?;
    let t = start.elapsed();
    if !status.success() {
        return Err(err(format!("/bin/true: {status}")));
    }
    Ok(t)
}

async fn fast_vs_tokio(cfg: &Config) -> BResult<Measurement> {
    versus_tokio(cfg, ExecMode::Fast, false).await
}

async fn exec_vs_tokio(cfg: &Config) -> BResult<Measurement> {
    versus_tokio(cfg, ExecMode::IpNetnsExec, false).await
}

async fn exec_cold_vs_tokio(cfg: &Config) -> BResult<Measurement> {
    let m = versus_tokio(cfg, ExecMode::IpNetnsExec, true).await?;
    Ok(m.note("each sample starts the namespace's agent: nsproc::close_cached_agents() before it"))
}

async fn versus_tokio(cfg: &Config, mode: ExecMode, cold: bool) -> BResult<Measurement> {
    let s = Scratch::new("sp").await?;
    let name = s.name.clone();
    let mut ours = async || {
        if cold {
            nsproc::close_cached_agents();
        }
        Ok(vec![spawn_true(&name, mode).await?])
    };
    let mut reference = async || Ok(vec![tokio_true().await?]);
    let res = pair(cfg.plan(400, 80), &mut ours, &mut reference).await;
    nsproc::close_cached_agents();
    s.remove().await?;
    let [o, r] = res?;
    let label = match (mode, cold) {
        (ExecMode::IpNetnsExec, false) => "nsproc IpNetnsExec (agent cached)".to_owned(),
        (ExecMode::IpNetnsExec, true) => "nsproc IpNetnsExec (agent started)".to_owned(),
        (other, _) => format!("nsproc {other:?}"),
    };
    Measurement::versus(&label, &o, "tokio::process, root netns", &r)
}

async fn fast_vs_ip(cfg: &Config) -> BResult<Measurement> {
    let s = Scratch::new("sp").await?;
    let name = s.name.clone();
    let mut ours = async || Ok(vec![spawn_true(&name, ExecMode::Fast).await?]);
    let mut reference = async || {
        let start = Instant::now();
        run_quiet("ip", &["netns", "exec", &name, "/bin/true"]).await?;
        Ok(vec![start.elapsed()])
    };
    let res = pair(cfg.plan(200, 40), &mut ours, &mut reference).await;
    s.remove().await?;
    let [o, r] = res?;
    Measurement::versus("nsproc Fast", &o, "ip netns exec NAME /bin/true", &r)
}

/// Runs `op` in a big and a small worker in turn, `BATCH` samples at a time.
pub(super) async fn big_vs_small(
    cfg: &Config,
    op: &str,
    arg: &str,
    calls: (usize, usize),
) -> BResult<(Vec<f64>, Vec<f64>, String)> {
    const BATCH: usize = 5;
    let mut small = Worker::start(0).await?;
    let mut big = Worker::start(cfg.ballast_mib).await?;
    let note = format!(
        "parents: big worker VmRSS {} MiB, small worker VmRSS {} MiB; {BATCH} samples per turn",
        big.rss_kib / 1024,
        small.rss_kib / 1024
    );
    let res = {
        let mut ours = async || big.run(op, arg, BATCH).await;
        let mut reference = async || small.run(op, arg, BATCH).await;
        pair(cfg.plan(calls.0, calls.1), &mut ours, &mut reference).await
    };
    let (a, b) = (big.stop().await, small.stop().await);
    let [o, r] = res?;
    a?;
    b?;
    Ok((o, r, note))
}

async fn fast_big_parent(cfg: &Config) -> BResult<Measurement> {
    let s = Scratch::new("sp").await?;
    let res = big_vs_small(cfg, "spawn-fast", &s.name, (60, 12)).await;
    s.remove().await?;
    let (o, r, note) = res?;
    let gib = cfg.ballast_mib as f64 / 1024.0;
    Ok(Measurement::versus(
        &format!("Fast, {gib} GiB parent"),
        &o,
        "Fast, small parent",
        &r,
    )?
    .note(note))
}

async fn tokio_big_parent(cfg: &Config) -> BResult<Measurement> {
    let (o, r, note) = big_vs_small(cfg, "tokio-spawn", "-", (60, 12)).await?;
    let gib = cfg.ballast_mib as f64 / 1024.0;
    Ok(Measurement::versus(
        &format!("tokio::process, {gib} GiB parent"),
        &o,
        "tokio::process, small parent",
        &r,
    )?
    .note(note))
}
