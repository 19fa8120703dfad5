//! Scratch namespaces and the clean-up registry.
//!
//! Every namespace the benchmark names is registered here when it is made and
//! unregistered when its row removes it. Whatever is still registered when a
//! row fails, or when the run is interrupted (SIGINT/SIGTERM), is removed by
//! [`cleanup`]. Links are only ever made inside these namespaces, so they go
//! with them. (The cargo runner's private mount namespace also drops every
//! name when the run exits, whatever happens.)

use std::process::Stdio;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use nsfs::{NetNs, NsName, OpenMode, RunDir};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::harness::{BResult, err};

static NAMES: Mutex<Vec<String>> = Mutex::new(Vec::new());
static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A fresh name for a namespace of this run: `nsb<pid>-<tag><n>`.
pub(crate) fn unique_name(tag: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("nsb{}-{tag}{n}", std::process::id())
}

/// Remembers `name` for [`cleanup`].
pub(crate) fn register(name: &str) {
    NAMES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(name.to_owned());
}

/// Forgets `name` (it was removed by its row).
pub(crate) fn unregister(name: &str) {
    NAMES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|n| n != name);
}

/// Removes every registered namespace that still exists; returns how many
/// were removed and the failures.
pub(crate) async fn cleanup() -> (usize, Vec<String>) {
    let names = std::mem::take(&mut *NAMES.lock().unwrap_or_else(|e| e.into_inner()));
    let dir = RunDir::default();
    let mut removed = 0;
    let mut failed = Vec::new();
    for n in names {
        if !dir.path().join(&n).exists() {
            continue;
        }
        let res = match NsName::new(n.clone()) {
            Ok(name) => dir.remove(&name).await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match res {
            Ok(()) => removed += 1,
            Err(e) => failed.push(format!("{n}: {e}")),
        }
    }
    (removed, failed)
}

/// A named namespace made for a row, removed by [`Scratch::remove`] (or by
/// [`cleanup`] if the row fails).
#[derive(Debug)]
pub(crate) struct Scratch {
    pub(crate) name: String,
    pub(crate) ns: NetNs,
}

impl Scratch {
    /// Makes a new named namespace (through nsfs) and registers it.
    pub(crate) async fn new(tag: &str) -> BResult<Scratch> {
        let name = unique_name(tag);
        register(&name);
        let ns = RunDir::default()
            .create(&NsName::new(name.clone())?, OpenMode::CreateExclusive)
            .await?;
        Ok(Scratch { name, ns })
    }

    /// Runs `ip -n NAME -batch -` with `commands` (one per line).
    pub(crate) async fn ip_batch(&self, commands: &str) -> BResult<()> {
        ip_batch(&self.name, commands).await
    }

    /// Runs `ip -n NAME ARGS...` and fails if it fails.
    pub(crate) async fn ip(&self, args: &[&str]) -> BResult<()> {
        let mut all = vec!["-n", &self.name];
        all.extend_from_slice(args);
        ip(&all).await
    }

    /// Removes the namespace's name (the namespace goes when nothing holds it).
    pub(crate) async fn remove(self) -> BResult<()> {
        drop(self.ns);
        RunDir::default()
            .remove(&NsName::new(self.name.clone())?)
            .await?;
        unregister(&self.name);
        Ok(())
    }
}

/// Runs `ip ARGS...` to completion and fails with its stderr if it fails.
pub(crate) async fn ip(args: &[&str]) -> BResult<()> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await?;
    if !out.status.success() {
        return Err(err(format!(
            "ip {}: {}: {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// Runs `ip -n NS -batch -` with `commands` on its stdin.
pub(crate) async fn ip_batch(ns: &str, commands: &str) -> BResult<()> {
    ip_with_input(&["-n", ns, "-batch", "-"], commands).await
}

/// Runs `ip ARGS...` (a `-batch -` form) with `input` on its stdin and
/// fails with its stderr if it fails.
pub(crate) async fn ip_with_input(args: &[&str], input: &str) -> BResult<()> {
    let mut child = Command::new("ip")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let mut stdin = child.stdin.take().ok_or_else(|| err("ip: no stdin"))?;
    stdin.write_all(input.as_bytes()).await?;
    drop(stdin);
    let out = child.wait_with_output().await?;
    if !out.status.success() {
        return Err(err(format!(
            "ip {}: {}: {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// Runs a program to completion with no stdio and checks its exit status
/// (a reference side: `ip netns add NAME`, `ip -n NAME -o link`, ...).
pub(crate) async fn run_quiet(program: &str, args: &[&str]) -> BResult<()> {
    let status = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await?;
    if !status.success() {
        return Err(err(format!("{program} {}: {status}", args.join(" "))));
    }
    Ok(())
}
