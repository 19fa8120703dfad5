//! Spans of this crate's public async operations.
//!
//! Each operation (`create`, `attach`, `remove`, `pids`, and the
//! executor's `run_in`, `run_in_short`, `run_home`, `run_in_new`) runs in a
//! DEBUG span named after it, with the fields `netns` (the name), `inode` (the
//! namespace's inode, where known), `outcome` (`"ok"` or `"error"`) and
//! `error` (the error's Display, on failure). With no subscriber, a span
//! costs a check of a cached flag: about 4 ns a call (`measure_handoff`),
//! and its fields are not even evaluated.

use tracing::Span;

use crate::Result;

/// A DEBUG span named `$op` for the namespace `$netns` (Display), with
/// `inode`, `outcome` and `error` to be recorded.
macro_rules! op_span {
    ($op:literal, $netns:expr) => {
        tracing::debug_span!(
            $op,
            netns = %$netns,
            inode = tracing::field::Empty,
            outcome = tracing::field::Empty,
            error = tracing::field::Empty,
        )
    };
}
pub(crate) use op_span;

/// Records how the operation of `span` ended: the inode `inode` finds in a
/// success, `outcome`, and the error's Display on failure.
pub(crate) fn finish<T>(span: &Span, result: &Result<T>, inode: impl FnOnce(&T) -> Option<u64>) {
    match result {
        Ok(value) => {
            if let Some(ino) = inode(value) {
                span.record("inode", ino);
            }
            span.record("outcome", "ok");
        }
        Err(err) => {
            span.record("outcome", "error");
            span.record("error", tracing::field::display(err));
        }
    }
}
