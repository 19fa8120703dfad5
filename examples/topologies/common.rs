//! What the topology examples share (through `#[path]`; not an example of
//! its own): UDP round trips between namespaces with sockets opened inside
//! each, an apply's report in a few lines, and the live drawing.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use netns::{Handle, NsName, OpenMode};
use nsdb::{Namespace, View};
use nstopo::{Drawing, Options, Report, Topology};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// How long a datagram may take before the check calls the path broken.
const PATIENCE: Duration = Duration::from_secs(5);

/// Handles on the topology's namespaces, each opened once.
#[derive(Default)]
pub(crate) struct Sockets {
    handles: HashMap<String, Handle>,
}

impl Sockets {
    async fn handle(&mut self, ns: &str) -> Result<&Handle> {
        if !self.handles.contains_key(ns) {
            let h = Handle::open(NsName::new(ns)?, OpenMode::OpenOnly).await?;
            self.handles.insert(ns.to_owned(), h);
        }
        Ok(&self.handles[ns])
    }

    /// Sends a datagram from `from_ip` in namespace `from` to `to_ip` in
    /// namespace `to`, and its echo back; fails if either is lost.
    pub(crate) async fn round_trip(
        &mut self,
        (from, from_ip): (&str, IpAddr),
        (to, to_ip): (&str, IpAddr),
    ) -> Result<()> {
        let server = self
            .handle(to)
            .await?
            .udp_bind(SocketAddr::new(to_ip, 0))
            .await?;
        let client = self
            .handle(from)
            .await?
            .udp_bind(SocketAddr::new(from_ip, 0))
            .await?;
        let msg = format!("{from} -> {to}");
        client.send_to(msg.as_bytes(), server.local_addr()?).await?;
        let mut buf = [0; 128];
        let (n, peer) = tokio::time::timeout(PATIENCE, server.recv_from(&mut buf))
            .await
            .map_err(|_| format!("{msg}: {from_ip} -> {to_ip} never arrived"))??;
        if &buf[..n] != msg.as_bytes() || peer != client.local_addr()? {
            return Err(format!("{msg}: got {:?} from {peer}", &buf[..n]).into());
        }
        server.send_to(&buf[..n], peer).await?;
        let (n, _) = tokio::time::timeout(PATIENCE, client.recv_from(&mut buf))
            .await
            .map_err(|_| format!("{msg}: the echo from {to_ip} never came back"))??;
        if &buf[..n] != msg.as_bytes() {
            return Err(format!("{msg}: echo was {:?}", &buf[..n]).into());
        }
        Ok(())
    }

    /// Closes every handle.
    pub(crate) async fn close(self) {
        for (_, h) in self.handles {
            h.close().await;
        }
    }
}

/// Reads the topology in `file`, runs `f` on it, then destroys whatever
/// the topology owns, whether `f` succeeded or not.
pub(crate) async fn with_topology(
    file: &str,
    f: impl AsyncFnOnce(&Topology) -> Result<()>,
) -> Result<()> {
    let topo = Topology::from_path(file)?;
    println!(
        "{file}: topology {}, {} nodes, {} links",
        topo.name,
        topo.nodes.len(),
        topo.links.len()
    );
    let result = f(&topo).await;
    let report = nstopo::destroy(&topo, Options::default()).await?;
    println!("destroy: removed {} namespaces", report.removed);
    result
}

/// What an apply did, in a few lines (each change, when there are few).
pub(crate) fn summary(what: &str, report: &Report) {
    println!(
        "{what}: created {}, changed {}, removed {} ({} requests)",
        report.created, report.changed, report.removed, report.requests
    );
    if report.plan.changes.len() <= 4 {
        for change in &report.plan.changes {
            println!("    {change}");
        }
    }
}

/// The topology's namespaces as the kernel has them now, drawn in the
/// order the topology declares them.
pub(crate) async fn live_drawing(topo: &Topology) -> Result<Drawing> {
    let order: Vec<Namespace> = topo
        .nodes
        .iter()
        .map(|n| Namespace::named(&n.name))
        .collect::<std::result::Result<_, _>>()?;
    let mut view = View::builder();
    for ns in &order {
        view = view.namespace(ns.clone());
    }
    let view = view.build().await?;
    Ok(Drawing::of_namespaces(&view.snapshot(), &order).title(&topo.name))
}
