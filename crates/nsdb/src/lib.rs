//! A live, transactional view of links, addresses and routes across network
//! namespaces: what pyroute2's IPDB (and later NDB) is on top of `NetNS`,
//! async and over any number of namespaces at once.
//!
//! - [`View`]: one namespace, several, or every namespace of the run
//!   directory, kept current from rtnetlink events in each; resynced by a
//!   full dump after an overrun or an interrupted dump, never silently stale.
//! - Reading: [`View::snapshot`] (a consistent [`Snapshot`]), look-ups by
//!   namespace and name or index, [`View::changes`] (a `Stream` of typed
//!   [`Change`]s), [`View::wait_for`] (a condition, with a timeout).
//! - Writing: [`View::transaction`] edits links and addresses the way IPDB
//!   did; [`Transaction::plan`] lists the requests, [`Transaction::commit`]
//!   sends them, waits until the view shows the result, and rolls back what
//!   it had applied if a step fails.
//!
//! See `docs/nsdb.md` for the model and its guarantees.
//!
//! # Tracing
//!
//! Each operation runs in a DEBUG span of the `tracing` crate, named after
//! it: `build` (a view's creation), `add` (a namespace joins the view),
//! `resync` (a full dump after an overrun), `commit` (with one `step` span
//! per request, and `rollback`). They carry `netns` (the namespace's name)
//! and `inode` where they concern one namespace, and `outcome` (`ok` or
//! `error`) and `error` (the error's Display) when they end. An overrun of
//! a namespace's event socket is a WARN event (`netns`, `inode`): events
//! were lost, and a resync follows.
//!
//! # Examples
//!
//! ```no_run
//! # async fn demo() -> nsdb::Result<()> {
//! use std::time::Duration;
//! use nsdb::{Namespace, View};
//!
//! let main = Namespace::named("main").unwrap();
//! let test = Namespace::named("test").unwrap();
//! let view = View::builder().namespace(main.clone()).namespace(test.clone()).build().await?;
//!
//! let mut tx = view.transaction();
//! tx.create_veth(&main, "v0p0", "v0p1")?;
//! tx.commit().await?;
//!
//! // The namespace move is its own transaction: the kernel clears a link's
//! // addresses when it changes namespace.
//! let mut tx = view.transaction();
//! tx.link(&main, "v0p1")?.move_to(&test);
//! tx.commit().await?;
//!
//! let mut tx = view.transaction();
//! tx.link(&main, "v0p0")?.add_address("10.0.0.1".parse().unwrap(), 24).up();
//! tx.link(&test, "v0p1")?.add_address("10.0.0.2".parse().unwrap(), 24).up();
//! println!("{:#?}", tx.plan()?);
//! tx.commit().await?;
//!
//! view.wait_for("v0p1 up in test", Duration::from_secs(5), |s| {
//!     s.link(&test, "v0p1").is_some_and(|l| l.is_up())
//! })
//! .await?;
//! # Ok(()) }
//! ```

mod apply;
mod error;
mod follow;
mod model;
mod nl;
mod peers;
mod plan;
mod snapshot;
mod trace;
mod txn;
mod view;

pub use error::{Error, NetlinkError, Result, RollbackFailure};
pub use model::{Address, AddressKey, IFF_UP, Link, NsState, Object, Route, RouteKey};
pub use plan::Step;
pub use snapshot::{Change, Changes, NsStatus, NsView, Peer, ResyncReason, Snapshot};
pub use txn::{LinkEdit, Transaction};
pub use view::{Builder, Namespace, View};
