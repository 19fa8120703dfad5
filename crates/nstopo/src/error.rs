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
            Error::Read { source, .. } => source.raw_os_error(),
            Error::RenderSpawn { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}
