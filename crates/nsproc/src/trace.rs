//! The tracing spans of this crate's public async operations.
//!
//! Each operation runs inside a DEBUG span named after it (`spawn`, `output`,
//! `status`, `wait`, `kill`, `wait_with_output`, `exec_agent_start`,
//! `exec_agent_close`) carrying `netns` (the namespace as given: name, path
//! or identity), `inode` (the namespace's inode, once opened), `outcome`
//! (`"ok"` or `"error"`) and, on failure, `error` (the error's message).

use std::future::Future;

use tracing::{Instrument, Span};

use crate::Result;

/// Runs `fut` inside `span` and records its outcome there.
pub(crate) async fn traced<T>(span: Span, fut: impl Future<Output = Result<T>>) -> Result<T> {
    let out = fut.instrument(span.clone()).await;
    match &out {
        Ok(_) => {
            span.record("outcome", "ok");
        }
        Err(err) => {
            span.record("outcome", "error");
            span.record("error", tracing::field::display(err));
        }
    }
    out
}

/// Records the inode of the namespace an operation opened in the current
/// span (a no-op in a span without an `inode` field).
pub(crate) fn record_inode(ino: u64) {
    Span::current().record("inode", ino);
}

/// A DEBUG span for operation `$name` on namespace `$netns` (Display).
macro_rules! op_span {
    ($name:literal, $netns:expr $(, $($field:tt)*)?) => {
        tracing::debug_span!(
            $name,
            netns = %$netns,
            inode = tracing::field::Empty,
            outcome = tracing::field::Empty,
            error = tracing::field::Empty,
            $($($field)*)?
        )
    };
}
pub(crate) use op_span;
