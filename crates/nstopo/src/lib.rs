//! Declared network topologies of namespaces: nodes (network namespaces)
//! joined by veth pairs, with addresses, routes, bridges and sysctls, read
//! from YAML or JSON or built in Rust, checked before anything is touched.
//!
//! See `docs/topology.md` for the file format.
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

mod apply;
mod diff;
mod draw;
mod error;
mod model;
mod state;
mod validate;

pub use apply::{Event, OnError, Options, Report, apply, destroy, diff, plan};
pub use diff::{Change, LinkAttrs, Plan};
pub use draw::{DrawFormat, Drawing, GRAPHVIZ_DOT};
pub use state::{LiveLink, LiveNode, LiveState, link_group, marker, read_state};

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
