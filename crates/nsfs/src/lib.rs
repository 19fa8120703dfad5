//! Linux network namespace lifecycle, the way `ip netns` does it, without fork.
//!
//! - [`NsName`]: a validated namespace name.
//! - [`RunDir`]: the directory namespaces are named in (`/run/netns`), with
//!   [`create`](RunDir::create), [`remove`](RunDir::remove),
//!   [`list`](RunDir::list), [`open`](RunDir::open),
//!   [`attach`](RunDir::attach), [`identify`](RunDir::identify),
//!   [`pids`](RunDir::pids) and [`monitor`](RunDir::monitor).
//! - [`NetNs`]: an owned fd on a namespace, opened by name, path or pid.
//! - [`Executor`]: the namespace threads, where code runs inside a namespace
//!   ([`NetNs::run`]) without ever switching a runtime thread.
//!
//! Namespaces made here and by `ip netns add` are the same thing: each side
//! sees and uses the other's.
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
//! dir.remove(&name).await?;
//! # Ok(()) }
//! ```

mod error;
mod monitor;
mod name;
mod netns;
mod proc;
mod rundir;
mod sys;
mod thread;

pub use error::{Error, Result};
pub use monitor::{Event, Monitor};
pub use name::{NAME_MAX, NsName};
pub use netns::{NetNs, NsId};
pub use proc::Target;
pub use rundir::{DEFAULT_RUN_DIR, DOCKER_RUN_DIR, Entry, EntryState, OpenMode, RunDir};
pub use thread::Executor;
