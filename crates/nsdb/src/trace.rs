//! The tracing conventions of the toolkit, for nsdb's spans: each public
//! async operation runs in a DEBUG span named after it, carrying `netns`
//! (the namespace's name) and `inode` where known, and `outcome` ("ok" or
//! "error") and `error` (the error's Display) once it ends.

use std::fmt::Display;
use std::future::Future;

use tracing::{Instrument, Span};

/// Runs `fut` in `span` and records its outcome there.
pub(crate) async fn traced<T, E: Display>(
    span: Span,
    fut: impl Future<Output = Result<T, E>>,
) -> Result<T, E> {
    let res = fut.instrument(span.clone()).await;
    record(&span, &res);
    res
}

/// Records `outcome` (and `error`) of `res` on `span`.
pub(crate) fn record<T, E: Display>(span: &Span, res: &Result<T, E>) {
    match res {
        Ok(_) => {
            span.record("outcome", "ok");
        }
        Err(e) => {
            span.record("outcome", "error");
            span.record("error", tracing::field::display(e));
        }
    }
}
