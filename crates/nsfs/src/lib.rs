//! Linux network namespace lifecycle, the way `ip netns` does it, without fork.
//!
//! - [`NsName`]: a validated namespace name (checked before anything touches
//!   the filesystem).
//! - [`RunDir`]: the directory namespaces are named in (`/run/netns`), with
//!   [`create`](RunDir::create) (pyroute2's [`OpenMode`] flags),
//!   [`remove`](RunDir::remove), [`list`](RunDir::list) (each [`Entry`]
//!   mounted or stale), [`open`](RunDir::open), [`attach`](RunDir::attach),
//!   [`identify`](RunDir::identify), [`pids`](RunDir::pids) and
//!   [`monitor`](RunDir::monitor) (a `Stream` of [`RunDirEvent`]s).
//! - [`NetNs`]: an owned fd on a namespace, opened by name, path, pid, pidfd
//!   ([`NetNs::from_pidfd`]) or fd;
//!   [`NsId`] is its identity, [`NetNs::describe`] its description for
//!   messages.
//! - [`Target`]: which namespace, as a caller names it (a name, a path, a
//!   pid or a [`NetNs`]), with the one rule every crate of the toolkit
//!   applies to strings: a leading `/` makes a path, anything else is a
//!   validated name; [`Target::open`] opens it, or creates it, at a name or
//!   at a path.
//! - [`Executor`]: the namespace threads, where code runs inside a namespace
//!   ([`NetNs::run`]; [`NetNs::run_short`] for a job of microseconds, such as
//!   making a socket, which borrows the caller's CPU instead of waking another)
//!   without ever switching a runtime thread.
//! - [`Error`]: one error type; every variant names the operation and the
//!   name, path or pid, and keeps the errno queryable.
//!
//! Namespaces made here and by `ip netns add` are the same thing: each side
//! sees and uses the other's. The run directory is prepared exactly as
//! iproute2 prepares it (a shared mount, with its recursive-bind fallback,
//! under a `flock`), the entry is made with `O_EXCL`, and the namespace is
//! bind-mounted on it last.
//!
//! # No fork, no switch of a runtime thread
//!
//! A network namespace switch is per thread. This crate never forks and
//! never calls `setns` or `unshare` on a thread it does not own: creating a
//! namespace and running code in one happen on the [`Executor`]'s threads,
//! which switch into the namespace for one job and back home after it. There
//! is deliberately no way to switch the calling thread. `docs/architecture.md`
//! has the picture and the measurements behind the pool's shape.
//!
//! # Async and blocking
//!
//! Operations that create, remove or scan (`create`, `remove`, `attach`,
//! `pids`, `NetNs::run`) are `async` and run on a namespace thread, never on
//! a runtime thread. Each documents its cancel safety: the work is handed to
//! a thread at the first poll and, once handed over, completes even if the
//! future is dropped. Cheap reads of the run directory (`list`, `open`,
//! `identify`) are plain functions.
//!
//! The global executor ([`Executor::global`], behind [`NetNs::run`] and
//! every operation above) is made on first use and lives for the whole
//! process: its threads (parked when idle) and one fd (its home namespace)
//! stay after everything else of the toolkit is dropped. Users' closures
//! and the toolkit's own short jobs (sockets, create, remove, spawns) run in
//! separate lanes of it, so a long closure never stalls the toolkit.
//!
//! # Tracing
//!
//! The async operations (`create`, `attach`, `remove`, `pids`, and the
//! [`Executor`]'s `run_in`, `run_in_short`, `run_home` and `run_in_new`,
//! behind [`NetNs::run`] and [`NetNs::run_short`]) each run in a DEBUG span
//! named after the operation, with the fields `netns` (the
//! name), `inode` (where known), `outcome` (`ok` or `error`) and `error`
//! (its Display). A [`Monitor`] that overran (events lost, the directory
//! re-read) logs a WARN event.
//!
//! # Examples
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use nsfs::{NsName, OpenMode, RunDir};
//!
//! let dir = RunDir::default();
//! let name = NsName::new("blue")?;
//! let blue = dir.create(&name, OpenMode::CreateOrOpen).await?;
//! let dev = blue.run(|| std::fs::read_to_string("/proc/thread-self/net/dev")).await??;
//! assert!(dev.contains("lo:"));
//! assert_eq!(dir.identify(&blue)?, [name.clone()]);
//! dir.remove(&name).await?;
//! # Ok(()) }
//! ```
//!
//! # References
//!
//! `ip-netns(8)`, `namespaces(7)`, `network_namespaces(7)`, `setns(2)`,
//! `unshare(2)`, `inotify(7)`.

mod error;
mod monitor;
mod name;
mod netns;
mod proc;
mod rundir;
mod sys;
mod target;
mod thread;
mod trace;
mod user;

pub use error::{Error, Result};
pub use monitor::{Monitor, RunDirEvent};
pub use name::{NAME_MAX, NsName};
pub use netns::{NetNs, NsId, check_namespace_type};
pub use rundir::{DEFAULT_RUN_DIR, DOCKER_RUN_DIR, Entry, EntryState, OpenMode, RunDir};
pub use target::Target;
pub use thread::Executor;
pub use user::{force_rootless, privileged, user_namespaces_allowed};
