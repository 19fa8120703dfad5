//! Worker processes: the same binary run with `--worker`, holding a ballast
//! of touched memory (or none), measuring one operation on request.
//!
//! Rows that compare a small parent with one holding 2 GiB of touched memory
//! start two workers, a small one and a big one, and ask each in turn for a
//! small batch of samples, so both are measured interleaved in the same run.
//! The protocol is one line each way over the worker's stdin and stdout:
//!
//! ```text
//! -> OP ARG N            e.g. "spawn-fast nsb123-sp4 10"
//! <- ok V V ...          N values: durations in nanoseconds, or for memory
//!                        operations ("mem-..."), sizes in KiB
//! <- err MESSAGE
//! ```
//!
//! The worker starts by touching its ballast (one write per 4 KiB page: THP is
//! `madvise` here, so these are 4 KiB pages) and prints `ready RSS_KIB`. It
//! exits when its stdin closes; it is started with kill-on-drop, so an
//! interrupted run ends it too.

use std::hint::black_box;
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use crate::harness::{BResult, err};

/// The worker's main: touch the ballast, then serve requests until EOF.
pub(crate) async fn serve(ballast_mib: usize) -> ExitCode {
    let mut ballast = vec![0u8; ballast_mib << 20];
    for page in ballast.chunks_mut(4096) {
        page[0] = 1;
    }
    black_box(&mut ballast);
    let rss = vm_rss_kib(std::process::id()).unwrap_or(0);
    let mut out = tokio::io::stdout();
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    if out
        .write_all(format!("ready {rss}\n").as_bytes())
        .await
        .is_err()
    {
        return ExitCode::FAILURE;
    }
    let _ = out.flush().await;
    while let Ok(Some(line)) = lines.next_line().await {
        let reply = match handle(&line).await {
            Ok(values) => {
                let mut s = String::from("ok");
                for v in values {
                    s.push(' ');
                    s.push_str(&v.to_string());
                }
                s
            }
            Err(e) => format!("err {}", e.to_string().replace('\n', " ")),
        };
        if out
            .write_all(format!("{reply}\n").as_bytes())
            .await
            .is_err()
            || out.flush().await.is_err()
        {
            break;
        }
    }
    black_box(&ballast);
    ExitCode::SUCCESS
}

async fn handle(line: &str) -> BResult<Vec<u64>> {
    let mut parts = line.split_whitespace();
    let (Some(op), Some(arg), Some(n)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(err(format!("bad request {line:?}")));
    };
    let n: usize = n.parse()?;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        if op.starts_with("mem-") {
            out.push(crate::rows::worker_value(op, arg).await?);
        } else {
            out.push(u64::try_from(op_once(op, arg).await?.as_nanos())?);
        }
    }
    Ok(out)
}

/// One timed run of operation `op` (in a worker).
async fn op_once(op: &str, arg: &str) -> BResult<Duration> {
    match op {
        "tokio-spawn" => {
            let start = Instant::now();
            let status = Command::new("/bin/true").status().await?;
            let t = start.elapsed();
            if !status.success() {
                return Err(err(format!("/bin/true: {status}")));
            }
            Ok(t)
        }
        "closure" => {
            let ns = nsfs::RunDir::default().open(&nsfs::NsName::new(arg)?)?;
            let start = Instant::now();
            black_box(ns.run(|| black_box(1u8)).await?);
            Ok(start.elapsed())
        }
        other => crate::rows::worker_op(other, arg).await,
    }
}

/// Resident memory of a process, in KiB.
pub(crate) fn vm_rss_kib(pid: u32) -> Option<u64> {
    status_field(pid, "VmRSS:")
}

/// Resident anonymous memory of a process (its heap, mostly), in KiB.
pub(crate) fn rss_anon_kib(pid: u32) -> Option<u64> {
    status_field(pid, "RssAnon:")
}

fn status_field(pid: u32, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// A running worker process.
#[derive(Debug)]
pub(crate) struct Worker {
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
    /// Its resident memory once the ballast was touched, in KiB.
    pub(crate) rss_kib: u64,
}

impl Worker {
    /// Starts a worker holding `ballast_mib` MiB of touched memory and waits
    /// until it is ready.
    pub(crate) async fn start(ballast_mib: usize) -> BResult<Worker> {
        let exe = std::env::current_exe()?;
        let mut cmd = Command::new(exe);
        cmd.args(["--worker", "--ballast-mib", &ballast_mib.to_string()]);
        Worker::spawn(cmd).await
    }

    /// A worker without ballast running as `uid` (and gid `uid`, no
    /// supplementary groups: `setpriv`), with `dir` (which `uid` owns) as its
    /// `XDG_RUNTIME_DIR`, home and working directory: the rootless rows'
    /// unprivileged side.
    pub(crate) async fn start_as(uid: u32, dir: &std::path::Path) -> BResult<Worker> {
        let exe = std::env::current_exe()?;
        let id = uid.to_string();
        let mut cmd = Command::new("setpriv");
        cmd.args(["--reuid", &id, "--regid", &id, "--clear-groups", "--"])
            .arg(exe)
            .args(["--worker", "--ballast-mib", "0"])
            .env("XDG_RUNTIME_DIR", dir)
            .env("HOME", dir)
            .current_dir(dir);
        Worker::spawn(cmd).await
    }

    async fn spawn(mut cmd: Command) -> BResult<Worker> {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()?;
        let stdin = child.stdin.take().ok_or_else(|| err("worker: no stdin"))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| err("worker: no stdout"))?;
        let mut stdout = BufReader::new(stdout).lines();
        let line = stdout
            .next_line()
            .await?
            .ok_or_else(|| err("worker exited before ready"))?;
        let rss_kib = line
            .strip_prefix("ready ")
            .and_then(|r| r.parse().ok())
            .ok_or_else(|| err(format!("worker: unexpected {line:?}")))?;
        Ok(Worker {
            child,
            stdin,
            stdout,
            rss_kib,
        })
    }

    /// Asks the worker for `n` timed runs of `op` with `arg`.
    pub(crate) async fn run(&mut self, op: &str, arg: &str, n: usize) -> BResult<Vec<Duration>> {
        Ok(self
            .values(op, arg, n)
            .await?
            .into_iter()
            .map(Duration::from_nanos)
            .collect())
    }

    /// Asks the worker for `n` runs of `op` with `arg` and returns the raw
    /// values (nanoseconds, or KiB for "mem-" operations).
    pub(crate) async fn values(&mut self, op: &str, arg: &str, n: usize) -> BResult<Vec<u64>> {
        self.stdin
            .write_all(format!("{op} {arg} {n}\n").as_bytes())
            .await?;
        self.stdin.flush().await?;
        let line = self
            .stdout
            .next_line()
            .await?
            .ok_or_else(|| err("worker exited"))?;
        if let Some(e) = line.strip_prefix("err ") {
            return Err(err(format!("worker ({op}): {e}")));
        }
        let rest = line
            .strip_prefix("ok")
            .ok_or_else(|| err(format!("worker: unexpected {line:?}")))?;
        rest.split_whitespace().map(|t| Ok(t.parse()?)).collect()
    }

    /// Closes the worker's stdin and waits for it to exit.
    pub(crate) async fn stop(self) -> BResult<()> {
        let Worker {
            mut child, stdin, ..
        } = self;
        drop(stdin);
        let status = child.wait().await?;
        if !status.success() {
            return Err(err(format!("worker: {status}")));
        }
        Ok(())
    }
}
