//! Tracing spans of the crate's public async operations: named by the
//! operation, carrying the namespace (`netns`, `inode`) and, once it ends,
//! its `outcome` ("ok" or "error") and `error` (Display).

use std::fmt::Display;
use std::future::Future;

use tracing::{Instrument, Span};

/// A DEBUG span for operation `$name` on the namespace of handle `$h`.
macro_rules! handle_span {
    ($h:expr, $name:literal) => {
        tracing::debug_span!(
            $name,
            netns = %$h.describe().display(),
            inode = $h.netns().id().ino,
            outcome = tracing::field::Empty,
            error = tracing::field::Empty,
        )
    };
}

/// A DEBUG span for operation `$name` on the [`NetNs`](nsfs::NetNs) `$ns`.
macro_rules! netns_span {
    ($ns:expr, $name:literal) => {
        tracing::debug_span!(
            $name,
            netns = %$ns.describe().display(),
            inode = $ns.id().ino,
            outcome = tracing::field::Empty,
            error = tracing::field::Empty,
        )
    };
}

pub(crate) use {handle_span, netns_span};

/// Runs `fut` inside `span` and records its outcome there.
pub(crate) async fn traced<T, E: Display>(
    span: Span,
    fut: impl Future<Output = Result<T, E>>,
) -> Result<T, E> {
    let res = fut.instrument(span.clone()).await;
    match &res {
        Ok(_) => {
            span.record("outcome", "ok");
        }
        Err(e) => {
            span.record("outcome", "error");
            span.record("error", tracing::field::display(e));
        }
    }
    res
}
