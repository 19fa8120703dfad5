//! The crate's error type.

use std::path::PathBuf;

use crate::validate::Problem;

/// The result of this crate's operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong reading, checking or applying a topology.
///
/// # Examples
///
/// ```
/// let err = nstopo::Topology::from_yaml_str("name: t\nnodes: [a\n").unwrap_err();
/// match err {
///     nstopo::Error::Parse { line, column, .. } => assert!(line >= 2 && column > 0),
///     other => panic!("{other}"),
/// }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A topology file could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A topology file is malformed (not YAML/JSON, or not of the topology's
    /// shape: an unknown key, a list where a map belongs...).
    #[error("{}:{line}:{column}: {message}", file.as_deref().unwrap_or("<input>"))]
    Parse {
        /// The file, if read from one.
        file: Option<String>,
        /// The line, from 1 (0 if unknown).
        line: u64,
        /// The column, from 1 (0 if unknown).
        column: u64,
        /// What the parser says.
        message: String,
    },
    /// A declaration that cannot be right: every problem found, each with
    /// its place in the file where known. Nothing was touched.
    #[error("{} problem{} in {}:{}", problems.len(), if problems.len() == 1 { "" } else { "s" },
        file.as_deref().unwrap_or("the topology"),
        problems.iter().map(|p| format!("\n  {p}")).collect::<String>())]
    Invalid {
        /// The file, if read from one.
        file: Option<String>,
        /// Every problem.
        problems: Vec<Problem>,
    },
    /// A namespace could not be listed, opened, created or removed.
    #[error("cannot {op} namespace {node}")]
    Namespace {
        /// The node (or the run directory, for a listing).
        node: String,
        /// What was being done (`open`, `create`, `remove`, `list`).
        op: &'static str,
        /// Why.
        #[source]
        source: Box<netns::Error>,
    },
    /// The kernel refused a request (or the request failed): the object,
    /// what was asked; [`Error::raw_os_error`] and [`Error::kernel_message`]
    /// give the errno and the kernel's extended-ack message.
    #[error("cannot {op}: {object}")]
    Request {
        /// The object (the change being made, or the namespace read).
        object: String,
        /// What was being done.
        op: &'static str,
        /// The request's error.
        #[source]
        source: Box<rtnetlink::Error>,
    },
    /// A namespace the apply was working in disappeared (removed by
    /// someone else meanwhile).
    #[error("namespace {node} disappeared during the apply")]
    NamespaceGone {
        /// The node.
        node: String,
    },
    /// The watch of a running topology ([`Live`](crate::Live)) failed: its
    /// view could not be built or extended, or did not confirm a change.
    #[error("watched topology: cannot {op}")]
    Watch {
        /// What was being done.
        op: String,
        /// The view's error.
        #[source]
        source: Box<nsdb::Error>,
    },
    /// A [`Live`](crate::Live) was given another topology than the one it
    /// watches (their ownership markers differ).
    #[error("watching topology {watched}, given {given}")]
    OtherTopology {
        /// The watched topology.
        watched: String,
        /// The topology given.
        given: String,
    },
    /// A sysctl could not be read or written inside a namespace.
    #[error("cannot access sysctl {key} in {node}")]
    Sysctl {
        /// The node.
        node: String,
        /// The key.
        key: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Declared objects exist but the topology does not own them (no
    /// marker): nothing was touched.
    #[error("not owned by the topology (remove them or rename the topology's): {}", objects.join(", "))]
    NotOwned {
        /// The objects (`namespace r1`, `link r1:eth0`).
        objects: Vec<String>,
    },
    /// An apply failed part-way: what it had done was rolled back (the
    /// default; `rollback_errors` lists what could not be undone) or, with
    /// [`OnError::Stop`](crate::OnError::Stop), left as `applied` says.
    #[error("apply failed after {} change{}{}", applied.len(), if applied.len() == 1 { "" } else { "s" },
        if *rolled_back { " (rolled back)" } else { " (left in place)" })]
    Apply {
        /// The failure.
        #[source]
        source: Box<Error>,
        /// The changes made before the failure (with `Stop`: what exists).
        applied: Vec<crate::Change>,
        /// Whether they were rolled back.
        rolled_back: bool,
        /// Failures of the rollback itself.
        rollback_errors: Vec<Error>,
    },
    /// A drawing format that is not `dot`, `mermaid` or `svg`.
    #[error("unknown drawing format {format:?} (dot, mermaid or svg)")]
    DrawFormat {
        /// What was asked for.
        format: String,
    },
    /// Graphviz could not be run (not installed: ENOENT), or its pipes
    /// failed.
    #[error("cannot run Graphviz `{program}` (is the graphviz package installed?)")]
    RenderSpawn {
        /// The program.
        program: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Graphviz ran and failed.
    #[error("Graphviz `{program}` failed ({status}): {stderr}")]
    Render {
        /// The program.
        program: String,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// What it wrote on standard error.
        stderr: String,
    },
}

impl Error {
    /// The OS error number behind this error, if there is one (an I/O
    /// error, or the kernel's refusal of a request).
    ///
    /// # Examples
    ///
    /// ```
    /// let err = nstopo::Topology::from_path("/nonexistent.yaml").unwrap_err();
    /// assert_eq!(err.raw_os_error(), Some(libc::ENOENT));
    /// ```
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            Error::Read { source, .. }
            | Error::Sysctl { source, .. }
            | Error::RenderSpawn { source, .. } => source.raw_os_error(),
            Error::Namespace { source, .. } => source.raw_os_error(),
            Error::Request { source, .. } => netns::error_code(source),
            Error::Apply { source, .. } => source.raw_os_error(),
            Error::Watch { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }

    /// The kernel's extended-ack message for a refused request, if it gave
    /// one.
    ///
    /// # Examples
    ///
    /// ```
    /// let err = nstopo::Topology::from_yaml_str("name: t\nnodes: [a, a]\n").unwrap_err();
    /// assert!(err.kernel_message().is_none());
    /// ```
    pub fn kernel_message(&self) -> Option<String> {
        match self {
            Error::Request { source, .. } => netns::error_message(source),
            Error::Namespace { source, .. } => source.kernel_message(),
            Error::Apply { source, .. } => source.kernel_message(),
            _ => None,
        }
    }
}
