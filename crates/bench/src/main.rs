//! `nsbench`: the toolkit's benchmark. Every performance row against its
//! reference, measured side by side (interleaved) in one run.
//!
//! ```text
//! cargo run --release -p nsbench -- [--quick] [--rows PATTERN] [--json PATH]
//! ```
//!
//! Runs as root, in the private mount namespace the cargo runner
//! (`scripts/sandbox`) gives it. See docs/performance.md for what each row
//! measures and the table of a real run.

mod compare;
mod harness;
mod load;
mod rawnl;
mod rows;
mod scratch;
mod worker;

use std::io::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Parser;

use harness::{Config, Outcome, RowResult};

/// The toolkit's benchmark: every row measures ours and its reference side
/// by side, interleaved, after warm-up, and reports medians, p90s and the
/// ratio ours/reference (lower is better: below 1 means ours is faster).
///
/// Run it as root through cargo, which runs it in a private mount namespace
/// with its own /run/netns (scripts/sandbox):
///
///     cargo run --release -p nsbench -- [--quick] [--rows PATTERN] [--json PATH]
///
/// The table goes to stdout; the same rows go to the JSON file as a list of
/// objects with name, ours, ours_us, reference, reference_us, ratio (plus p90s,
/// sample counts, targets and notes). Everything the run creates is removed
/// when a row fails or the run is interrupted (Ctrl-C).
#[derive(Debug, Parser)]
#[command(name = "nsbench", verbatim_doc_comment)]
struct Args {
    /// Fewer samples and smaller sizes (a run of a few minutes).
    #[arg(long)]
    quick: bool,
    /// Run only the rows whose name contains one of these comma-separated
    /// patterns (e.g. `nsfs/`, `spawn,dump`). See --list.
    #[arg(long, value_name = "PATTERN")]
    rows: Option<String>,
    /// Where to write the JSON results.
    #[arg(long, value_name = "PATH", default_value = "target/nsbench.json")]
    json: PathBuf,
    /// Compare two JSON files of earlier runs (OLD NEW) and exit: each row's
    /// median of ours in both, its change, and both runs' ratios.
    #[arg(long, num_args = 2, value_names = ["OLD", "NEW"])]
    compare: Option<Vec<PathBuf>>,
    /// List the rows (name, goal, what it measures) and exit.
    #[arg(long)]
    list: bool,
    /// Size of the big parent's touched memory, in MiB.
    #[arg(long, value_name = "MIB", default_value_t = 2048)]
    ballast_mib: usize,
    /// Multiply every row's sample count by this factor.
    #[arg(long, value_name = "FACTOR", default_value_t = 1.0)]
    samples_scale: f64,
    /// Before each row, wait (up to this many seconds) until other processes
    /// use less than 0.1 core for a second. 0: do not wait.
    #[arg(long, value_name = "SECONDS", default_value_t = 0)]
    wait_quiet: u64,
    /// Run the selected rows this many times, one pass after another, and
    /// report each row's samples of all passes pooled (the notes give each
    /// pass's ratio). Shows whether a row is stable from run to run.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    runs: u32,
    /// A row that takes longer than this is stopped and reported as failed.
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    row_timeout: u64,
    /// Internal (tests): make the named row fail at once.
    #[arg(long, hide = true, value_name = "ROW")]
    inject_failure: Option<String>,
    /// Internal: run as a measuring worker process (see worker.rs).
    #[arg(long, hide = true)]
    worker: bool,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("nsbench: cannot start the runtime: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    if args.worker {
        return runtime.block_on(worker::serve(args.ballast_mib));
    }
    runtime.block_on(run(args))
}

async fn run(args: Args) -> std::process::ExitCode {
    if let Some(files) = &args.compare {
        return match compare::compare(&files[0], &files[1]) {
            Ok(table) => {
                let _ = writeln!(std::io::stdout(), "{table}");
                std::process::ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("nsbench: --compare: {e}");
                std::process::ExitCode::from(2)
            }
        };
    }
    let all = rows::all();
    if args.list {
        // A closed stdout (`nsbench --list | head`) just ends the listing.
        let mut out = std::io::stdout().lock();
        for r in &all {
            let line = format!(
                "{}\n    {}\n    goal: {}\n",
                r.name,
                r.about,
                r.target.describe()
            );
            if writeln!(out, "{line}").is_err() {
                break;
            }
        }
        return std::process::ExitCode::SUCCESS;
    }
    if !nix::unistd::geteuid().is_root() {
        eprintln!("nsbench: must run as root (it makes network namespaces, links and mounts)");
        return std::process::ExitCode::from(77);
    }
    let patterns: Vec<String> = args
        .rows
        .as_deref()
        .map(|p| {
            p.split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let selected: Vec<_> = all
        .into_iter()
        .filter(|r| patterns.is_empty() || patterns.iter().any(|p| r.name.contains(p.as_str())))
        .collect();
    if selected.is_empty() {
        eprintln!("nsbench: no row matches {patterns:?} (see --list)");
        return std::process::ExitCode::from(2);
    }
    let cfg = Config {
        quick: args.quick,
        ballast_mib: args.ballast_mib,
        scale: args.samples_scale,
    };
    let loadavg_start = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let started = Instant::now();
    let mut cleanup_failures: Vec<String> = Vec::new();

    let mut sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt());
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
    let interrupted = async {
        match (&mut sigint, &mut sigterm) {
            (Ok(i), Ok(t)) => {
                tokio::select! { _ = i.recv() => "SIGINT", _ = t.recv() => "SIGTERM" }
            }
            _ => std::future::pending().await,
        }
    };
    let mut passes: Vec<Vec<RowResult>> = selected.iter().map(|_| Vec::new()).collect();
    let measure = async {
        for (pass, spec) in
            (0..args.runs).flat_map(|p| selected.iter().enumerate().map(move |s| (p, s)))
        {
            let (index, spec) = spec;
            if args.wait_quiet > 0 {
                let got = load::wait_quiet(0.1, Duration::from_secs(args.wait_quiet)).await;
                eprintln!(
                    "nsbench: foreign CPU before {}: {:.2} cores",
                    spec.name,
                    got.unwrap_or(f64::NAN)
                );
            }
            if args.runs > 1 {
                eprintln!(
                    "nsbench: pass {}/{}: {} ...",
                    pass + 1,
                    args.runs,
                    spec.name
                );
            } else {
                eprintln!("nsbench: {} ...", spec.name);
            }
            let start = Instant::now();
            let mark = load::CpuMark::now();
            let limit = Duration::from_secs(args.row_timeout);
            let measured = if args.inject_failure.as_deref() == Some(spec.name) {
                Err(harness::err("failure injected with --inject-failure"))
            } else {
                match tokio::time::timeout(limit, (spec.run)(&cfg)).await {
                    Ok(res) => res,
                    Err(_) => Err(harness::err(format!(
                        "timed out after {} s",
                        limit.as_secs()
                    ))),
                }
            };
            let foreign_cpu = mark.and_then(|m| m.foreign_since());
            let outcome = match measured {
                Ok(m) => Outcome::Measured(Box::new(m)),
                Err(e) => match e.downcast_ref::<rows::NotYet>() {
                    Some(n) => Outcome::NotYet(n.0.clone()),
                    None => Outcome::Failed(e.to_string()),
                },
            };
            let (removed, failed) = scratch::cleanup().await;
            if removed > 0 || !failed.is_empty() {
                eprintln!(
                    "nsbench: {}: cleaned up {removed} namespaces; failures: {failed:?}",
                    spec.name
                );
            }
            cleanup_failures.extend(failed);
            let row = RowResult {
                name: spec.name,
                target: spec.target,
                outcome,
                seconds: start.elapsed().as_secs_f64(),
                foreign_cpu,
            };
            eprintln!(
                "{}",
                harness::table(std::slice::from_ref(&row))
                    .lines()
                    .nth(2)
                    .unwrap_or("")
            );
            passes[index].push(row);
        }
    };
    // The signal first: Ctrl-C reaches the whole process group, so a worker
    // or an `ip` child may die of it at the same moment and fail the row.
    let stopped_by = tokio::select! {
        biased;
        sig = interrupted => Some(sig),
        () = measure => None,
    };
    let results: Vec<RowResult> = passes.into_iter().filter_map(harness::pool).collect();
    let (removed, failed) = scratch::cleanup().await;
    cleanup_failures.extend(failed.iter().cloned());
    if let Some(sig) = stopped_by {
        eprintln!("nsbench: {sig}: stopped; removed {removed} namespaces; failures: {failed:?}");
    }

    let _ = writeln!(std::io::stdout(), "\n{}", harness::table(&results));
    let meta = serde_json::json!({
        "quick": cfg.quick,
        "ballast_mib": cfg.ballast_mib,
        "samples_scale": cfg.scale,
        "runs": args.runs,
        "interrupted": stopped_by,
        "seconds": started.elapsed().as_secs_f64(),
        "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "loadavg_start": loadavg_start.trim(),
        "loadavg_end": std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim(),
        "unix_time": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0),
        "git": git_head(),
        "ratio": "ours / reference, medians: lower is better, below 1 ours is faster",
    });
    let written = match harness::write_json(&args.json, &results, meta) {
        Ok(()) => {
            eprintln!("nsbench: wrote {}", args.json.display());
            true
        }
        Err(e) => {
            eprintln!("nsbench: cannot write {}: {e}", args.json.display());
            false
        }
    };
    let failed_rows = results
        .iter()
        .filter(|r| matches!(r.outcome, Outcome::Failed(_)))
        .count();
    if stopped_by.is_some() {
        std::process::ExitCode::from(130)
    } else if failed_rows > 0 || !cleanup_failures.is_empty() || !written {
        std::process::ExitCode::FAILURE
    } else {
        std::process::ExitCode::SUCCESS
    }
}

/// The commit the benchmark was built from, if it runs in a git checkout.
fn git_head() -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}
