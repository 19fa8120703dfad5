//! The client side: starting an agent and talking to it, one job per file.
//!
//! - [`launch`]: [`AgentOptions`], the spawn of the agent process, the
//!   handshake, the reaper;
//! - [`conn`]: the connection multiplexer (requests in flight, deadlines,
//!   the reader task), over the sans-IO [`crate::pending`] table;
//! - [`handle`]: the [`Agent`] handle and its verbs;
//! - [`spawn`]: the [`SpawnRequest`] builder;
//! - [`child`]: [`AgentChild`], a program the agent started.

use std::io;

mod child;
mod conn;
mod handle;
mod launch;
mod spawn;
mod users;

pub use child::AgentChild;
pub(crate) use conn::Keep;
pub use handle::Agent;
pub use launch::{AgentOptions, DEFAULT_START_TIMEOUT, UserNamespace};
#[cfg(test)]
pub(crate) use launch::{Reaper, spawn_agent, within};
pub use spawn::{AgentStdio, SpawnRequest};

use crate::Error;
use crate::proto::{Reply, Step};

/// The error of a `Failed` reply.
fn remote(step: Step, errno: i32, detail: &[u8]) -> Error {
    Error::Remote {
        step,
        detail: String::from_utf8_lossy(detail).into_owned(),
        source: io::Error::from_raw_os_error(errno),
    }
}

/// A reply the request table accepted but the verb cannot use.
fn unexpected(expected: &str, got: &Reply) -> Error {
    Error::Protocol {
        expected: expected.into(),
        got: got.name().into(),
    }
}

/// Records an operation's outcome (and error) in its span.
fn finish<T>(span: &tracing::Span, result: &Result<T, Error>) {
    match result {
        Ok(_) => {
            span.record("outcome", "ok");
        }
        Err(e) => {
            span.record("outcome", "error");
            span.record("error", tracing::field::display(e));
        }
    }
}
