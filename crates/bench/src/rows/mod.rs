//! The rows, one module per group, and the registry of all of them.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use crate::harness::{BResult, Config, Measurement, Target};

mod agent;
mod lifecycle;
mod nsdb;
mod rtnl;
mod spawn;
mod topo;

/// A future measuring one row.
pub(crate) type RowFuture<'a> = Pin<Box<dyn Future<Output = BResult<Measurement>> + 'a>>;

/// A row: its name (what `--rows` matches), what it measures, its goal, and
/// the function that measures it.
pub(crate) struct RowSpec {
    pub(crate) name: &'static str,
    pub(crate) about: &'static str,
    pub(crate) target: Target,
    pub(crate) run: for<'a> fn(&'a Config) -> RowFuture<'a>,
}

impl fmt::Debug for RowSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RowSpec")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// A row that cannot be measured yet (the crate it needs has not landed):
/// reported as "not yet measured", never faked.
#[derive(Debug)]
pub(crate) struct NotYet(pub(crate) String);

impl fmt::Display for NotYet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NotYet {}

/// Every row, in the order they run.
pub(crate) fn all() -> Vec<RowSpec> {
    let mut rows = Vec::new();
    rows.extend(lifecycle::rows());
    rows.extend(rtnl::rows());
    rows.extend(spawn::rows());
    rows.extend(agent::rows());
    rows.extend(nsdb::rows());
    rows.extend(topo::rows());
    rows
}

/// Operations a worker process measures for rows (see `worker.rs`), other
/// than the worker's built-in ones.
pub(crate) async fn worker_op(op: &str, arg: &str) -> BResult<std::time::Duration> {
    if let Some(res) = spawn::worker_op(op, arg).await {
        return res;
    }
    if let Some(res) = agent::worker_op(op, arg).await {
        return res;
    }
    Err(crate::harness::err(format!(
        "unknown worker operation {op:?}"
    )))
}

/// Memory operations ("mem-...") a worker process measures for rows.
pub(crate) async fn worker_value(op: &str, arg: &str) -> BResult<u64> {
    if let Some(res) = nsdb::worker_value(op, arg).await {
        return res;
    }
    Err(crate::harness::err(format!(
        "unknown worker operation {op:?}"
    )))
}
