//! Two processes creating the same name at the same moment, 20 times (and
//! the same with many tasks of one process): nobody ever sees EINVAL, a stale
//! or half-made entry, or a doubled mount.
//!
//! The second process is this test binary run again with
//! `--ignored --exact child_role_in_the_creation_race`: that ignored "test"
//! is the child's role, driven line by line over its stdin.
mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use common::*;
use nsfs::{EntryState, Error, NsName, OpenMode, RunDir};

const ROUNDS: usize = 20;

/// What one process got from `create`, as a line: `ok DEV INO` or `err ...`.
fn outcome(result: &nsfs::Result<nsfs::NetNs>) -> String {
    match result {
        Ok(ns) => format!("ok {} {}", ns.id().dev, ns.id().ino),
        Err(Error::AlreadyExists { .. }) => "exists".to_owned(),
        Err(e) => format!("err {e:?} (errno {:?})", e.raw_os_error()),
    }
}

fn mode_arg(mode: OpenMode) -> &'static str {
    match mode {
        OpenMode::CreateExclusive => "exclusive",
        _ => "create-or-open",
    }
}

#[test]
#[ignore = "the second process of two_processes_create_the_same_name_20_times (which runs it)"]
fn child_role_in_the_creation_race() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let stdout = std::io::stdout();
    for line in std::io::stdin().lock().lines() {
        let line = line.unwrap();
        let mut words = line.split_whitespace();
        let (Some("go"), Some(dir), Some(mode)) = (words.next(), words.next(), words.next()) else {
            break;
        };
        let mode = if mode == "exclusive" {
            OpenMode::CreateExclusive
        } else {
            OpenMode::CreateOrOpen
        };
        let name = NsName::new("race").unwrap();
        let result = rt.block_on(RunDir::new(dir).create(&name, mode));
        let mut out = stdout.lock();
        writeln!(out, "RACE {}", outcome(&result)).unwrap();
        out.flush().unwrap();
    }
}

/// How many mounts have `path` as their mount point.
fn mounts_at(path: &Path) -> usize {
    let path = path.to_str().unwrap();
    mounts()
        .iter()
        .filter(|line| line.split(' ').nth(4) == Some(path))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_create_the_same_name_20_times() {
    require_root();
    let mut child = ChildGuard(
        Command::new(std::env::current_exe().unwrap())
            .args([
                "--ignored",
                "--exact",
                "child_role_in_the_creation_race",
                "--nocapture",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut to_child = child.0.stdin.take().unwrap();
    let mut from_child = BufReader::new(child.0.stdout.take().unwrap());
    let name = NsName::new("race").unwrap();

    for round in 0..ROUNDS {
        // A fresh run directory each round: both also race to prepare it.
        let tmp = TempRunDir::new("race");
        let dir = tmp.dir.clone();
        let mode = if round % 4 == 3 {
            OpenMode::CreateExclusive
        } else {
            OpenMode::CreateOrOpen
        };
        writeln!(to_child, "go {} {}", dir.path().display(), mode_arg(mode)).unwrap();
        to_child.flush().unwrap();
        // Sweep our start across the child's wake-up time.
        spin(std::time::Duration::from_micros((round % 5) as u64 * 60));
        let mine = outcome(&dir.create(&name, mode).await);
        let theirs = loop {
            let mut line = String::new();
            assert!(from_child.read_line(&mut line).unwrap() > 0, "child died");
            if let Some(rest) = line.strip_prefix("RACE ") {
                break rest.trim().to_owned();
            }
        };

        let open = dir.open(&name).expect("no usable namespace after the race");
        let id = format!("ok {} {}", open.id().dev, open.id().ino);
        match mode {
            OpenMode::CreateExclusive => {
                let mut both = [mine.as_str(), theirs.as_str()];
                both.sort();
                assert_eq!(both, ["exists", id.as_str()], "round {round}");
            }
            _ => assert_eq!([&mine, &theirs], [&id, &id], "round {round}"),
        }
        let entries = dir.list().unwrap();
        assert_eq!(entries.len(), 1, "round {round}: {entries:?}");
        assert_eq!(entries[0].state, EntryState::Mounted, "round {round}");
        assert_eq!(
            mounts_at(&dir.entry(&name)),
            1,
            "round {round}: namespace mounted twice"
        );
        assert!(
            mounts_at(dir.path()) <= 1,
            "round {round}: run directory bind-mounted twice"
        );
        dir.remove(&name).await.unwrap();
        drop(open);
    }
    drop(to_child);
    let status = child.0.wait().unwrap();
    assert!(status.success(), "child failed: {status}");
}

fn spin(d: std::time::Duration) {
    let t = std::time::Instant::now();
    while t.elapsed() < d {
        std::hint::spin_loop();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_tasks_create_the_same_name() {
    require_root();
    let tmp = TempRunDir::new("race-tasks");
    let name = NsName::new("same").unwrap();
    for round in 0..10 {
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let (dir, name) = (tmp.dir.clone(), name.clone());
                let mode = if i % 2 == 0 {
                    OpenMode::CreateOrOpen
                } else {
                    OpenMode::CreateExclusive
                };
                tokio::spawn(async move { (mode, dir.create(&name, mode).await) })
            })
            .collect();
        let mut ids = Vec::new();
        for task in tasks {
            match task.await.unwrap() {
                (_, Ok(ns)) => ids.push(ns.id()),
                (OpenMode::CreateExclusive, Err(Error::AlreadyExists { .. })) => {}
                (mode, Err(e)) => panic!("round {round}: {mode:?}: {e:?}"),
            }
        }
        let first = ids[0];
        assert!(ids.iter().all(|id| *id == first), "round {round}: {ids:?}");
        assert!(ids.len() >= 4, "every create-or-open must succeed");
        assert_eq!(tmp.dir.open(&name).unwrap().id(), first);
        tmp.dir.remove(&name).await.unwrap();
    }
}
