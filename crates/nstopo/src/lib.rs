//! Declared network topologies of namespaces: nodes (network namespaces)
//! joined by veth pairs, with addresses, routes, bridges and sysctls, read
//! from YAML or JSON or built in Rust, checked before anything is touched.
//!
//! - [`apply`] brings the kernel to the declaration from any starting point:
//!   it reads the live state ([`read_state`]), diffs ([`diff`], typed
//!   [`Change`]s), plans ([`plan`], printable and serializable) and executes
//!   phase by phase with every change of a phase in flight at once; each veth
//!   is created with both ends born in their namespaces. A failure rolls back
//!   what that apply did (or stops, see [`OnError`]).
//! - [`Live`] watches a running topology through an nsdb view: its diff
//!   reads no namespace, its apply sends only what differs and waits for
//!   the view to show it.
//! - [`destroy`] removes every namespace the topology owns, concurrently.
//! - Ownership lives in the kernel: the alias `nstopo:NAME` on `lo` of each
//!   namespace it creates ([`marker`]), the link group [`link_group`] on
//!   each link, set in the creating request.
//!
//! See `docs/topology.md` for the file format and the algorithm.
//!
//! # Tracing
//!
//! `apply`, `destroy` and `plan` run in DEBUG spans of those names, with the
//! field `topology`, and `outcome` / `error` when they end.
//!
//! # Examples
//!
//! ```
//! let topo = nstopo::Topology::from_yaml_str(r#"
//! name: pair
//! nodes:
//!   - name: a
//!     sysctls: { net.ipv4.ip_forward: 1 }
//!     routes: ["default via 10.0.0.2"]
//!   - b
//! links:
//!   - a: { node: a, name: eth0, addresses: [10.0.0.1/24] }
//!     b: { node: b, name: eth0, addresses: [10.0.0.2/24, "fd00::2/64"] }
//! "#)?;
//! assert_eq!(topo.links[0].to_string(), "a:eth0 <-> b:eth0");
//! # Ok::<(), nstopo::Error>(())
//! ```
//!
//! Applying it, and tearing it down:
//!
//! ```no_run
//! # async fn demo(topo: nstopo::Topology) -> nstopo::Result<()> {
//! use nstopo::Options;
//! print!("{}", nstopo::plan(&topo, Options::default()).await?);
//! let report = nstopo::apply(&topo, Options::default()).await?;
//! println!("{} created, {} requests", report.created, report.requests);
//! assert!(nstopo::diff(&topo, Options::default()).await?.is_empty());
//! nstopo::destroy(&topo, Options::default()).await?;
//! # Ok(()) }
//! ```

mod apply;
mod diff;
mod draw;
mod error;
mod live;
mod model;
mod owner;
mod state;
mod validate;

pub use apply::{Event, OnError, Options, Report, apply, destroy, diff, plan};
pub use diff::{Change, LinkAttrs, Plan};
pub use draw::{DrawFormat, Drawing, GRAPHVIZ_DOT};
pub use live::Live;
pub use state::{LiveLink, LiveNode, LiveState, link_group, marker, read_state, read_state_with};

pub use error::{Error, Result};
pub use model::{
    Bridge, Builder, Destination, Endpoint, IfAddr, Link, MacAddr, Node, Route, Topology,
};
pub use validate::{Location, Problem, ProblemKind};

/// Records a span's outcome (`ok` or `error`, with the error's Display).
pub(crate) fn trace_outcome<T>(span: &tracing::Span, res: &Result<T>) {
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
