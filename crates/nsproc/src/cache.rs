//! The agents of the `ip netns exec` path, cached per runtime and namespace.
//!
//! Starting an agent costs about 1.5 ms (an exec of the application binary and
//! the mount setup), three times a spawn: so an agent is kept after a spawn
//! and reused by the next one for the same namespace, and closed after
//! [`IDLE`] without spawns by a small sweeper thread (which exits when the
//! cache is empty). An idle agent keeps its namespace alive (it is a process
//! inside it) for at most that long; [`crate::close_cached_agents`] closes
//! them at once.
//!
//! The key holds the tokio runtime's id: an agent's connection is driven by
//! the runtime that started it, so another runtime never borrows it (one that
//! is shut down would leave it undriven). An entry whose runtime is gone is
//! never looked up again and expires like any idle one.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use nsfs::{NsId, RunDir};
use tokio::sync::OnceCell;

use crate::namespace::Resolved;
use crate::{ExecAgent, Result, Target};

/// How long an unused agent is kept.
pub(crate) const IDLE: Duration = Duration::from_secs(1);

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    runtime: tokio::runtime::Id,
    ns: NsId,
    dir: PathBuf,
    /// The name the namespace was given by, if it was (it decides the
    /// `/etc/netns` binds).
    name: Option<String>,
}

struct Entry {
    agent: Arc<OnceCell<ExecAgent>>,
    last_used: Instant,
}

#[derive(Default)]
struct Cache {
    entries: HashMap<Key, Entry>,
    sweeping: bool,
}

static CACHE: LazyLock<Mutex<Cache>> = LazyLock::new(Mutex::default);

fn cache() -> MutexGuard<'static, Cache> {
    CACHE.lock().unwrap_or_else(|e| e.into_inner())
}

/// The cached agent for this runtime and namespace, started if needed.
pub(crate) async fn agent(ns: Target, resolved: Resolved, dir: &RunDir) -> Result<ExecAgent> {
    let key = Key {
        runtime: tokio::runtime::Handle::current().id(),
        ns: resolved.netns.id(),
        dir: dir.path().to_owned(),
        name: match &ns {
            Target::Name(name) => Some(name.clone()),
            _ => None,
        },
    };
    // The entry of a dead agent is replaced; it is dropped after the lock is
    // released (`_gone` outlives the block that holds the guard).
    let (cell, _gone) = {
        let mut cache = cache();
        let stale = cache
            .entries
            .get(&key)
            .is_some_and(|e| e.agent.get().is_some_and(|a| !a.is_alive()));
        let gone = if stale {
            cache.entries.remove(&key)
        } else {
            None
        };
        let entry = cache.entries.entry(key).or_insert_with(|| Entry {
            agent: Arc::default(),
            last_used: Instant::now(),
        });
        entry.last_used = Instant::now();
        let cell = Arc::clone(&entry.agent);
        if !cache.sweeping {
            cache.sweeping = start_sweeper();
        }
        (cell, gone)
    };
    // Concurrent spawns for one namespace share one start; a failed start
    // leaves the cell empty for the next try.
    let dir = dir.clone();
    cell.get_or_try_init(|| ExecAgent::start_resolved(ns, resolved, dir))
        .await
        .cloned()
}

/// Closes every cached agent now; returns how many there were.
pub(crate) fn close_all() -> usize {
    let entries: Vec<Entry> = cache().entries.drain().map(|(_, e)| e).collect();
    entries.iter().filter(|e| e.agent.initialized()).count()
}

fn start_sweeper() -> bool {
    std::thread::Builder::new()
        .name("nsproc-agents".into())
        .spawn(sweep)
        .is_ok()
}

/// Drops idle entries until the cache is empty. Dropping an `ExecAgent`
/// needs no runtime: it shuts the control socket down, and the agent exits.
fn sweep() {
    loop {
        std::thread::sleep(IDLE / 2);
        let expired: Vec<Entry> = {
            let mut cache = cache();
            let idle: Vec<Key> = cache
                .entries
                .iter()
                .filter(|(_, e)| e.last_used.elapsed() >= IDLE)
                .map(|(k, _)| k.clone())
                .collect();
            let expired = idle
                .iter()
                .filter_map(|k| cache.entries.remove(k))
                .collect();
            if cache.entries.is_empty() {
                cache.sweeping = false;
                drop(cache);
                drop(expired);
                return;
            }
            expired
        };
        drop(expired);
    }
}
