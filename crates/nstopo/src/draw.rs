//! Drawing the live network: namespaces as nodes, veth pairs as edges
//! labelled with their interfaces and addresses, bridges as nodes of their
//! own with their ports as edges. Text output (DOT, Mermaid) is built here
//! from an nsdb [`Snapshot`], without I/O; SVG is Graphviz's `dot -Tsvg`,
//! run as a child process.
//!
//! What a drawing shows is what the kernel has, not what a file declares:
//! a link deleted by hand is missing from it, an address added by hand is on
//! it. Restricted to a set of namespaces (a topology's nodes), a veth whose
//! other end lives outside that set ends on a dashed node naming where the
//! other end is.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::{self, Write as _};
use std::net::IpAddr;
use std::process::Stdio;
use std::str::FromStr;

use nsdb::{Link, Namespace, NsState, Snapshot};
use tokio::io::AsyncWriteExt;
use tracing::Instrument;
use tracing::field::Empty;

use crate::error::{Error, Result};

/// The program [`Drawing::svg`] runs.
pub const GRAPHVIZ_DOT: &str = "dot";

/// An output format of a [`Drawing`].
///
/// Parsed from `dot`, `mermaid` or `svg` (any case).
///
/// # Examples
///
/// ```
/// use nstopo::DrawFormat;
/// assert_eq!("mermaid".parse::<DrawFormat>().unwrap(), DrawFormat::Mermaid);
/// assert!("png".parse::<DrawFormat>().is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DrawFormat {
    /// Graphviz DOT text ([`Drawing::dot`]).
    Dot,
    /// Mermaid flowchart text ([`Drawing::mermaid`]), which GitHub and many
    /// wikis render inline.
    Mermaid,
    /// SVG, rendered by Graphviz ([`Drawing::svg`]).
    Svg,
}

impl FromStr for DrawFormat {
    type Err = Error;
    fn from_str(s: &str) -> Result<DrawFormat> {
        match s.to_ascii_lowercase().as_str() {
            "dot" | "gv" => Ok(DrawFormat::Dot),
            "mermaid" | "mmd" => Ok(DrawFormat::Mermaid),
            "svg" => Ok(DrawFormat::Svg),
            _ => Err(Error::DrawFormat { format: s.into() }),
        }
    }
}

impl fmt::Display for DrawFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DrawFormat::Dot => "dot",
            DrawFormat::Mermaid => "mermaid",
            DrawFormat::Svg => "svg",
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum NodeKind {
    /// A network namespace.
    Namespace,
    /// A bridge, inside a namespace.
    Bridge,
    /// Where the other end of a veth lives, outside what is drawn.
    Outside,
}

#[derive(Clone, Debug)]
struct Node {
    /// DOT node id (unique, stable for the same state).
    id: String,
    /// First line: the name.
    name: String,
    /// Further lines (addresses of loopback and other interfaces).
    details: Vec<String>,
    kind: NodeKind,
}

#[derive(Clone, Debug)]
struct End {
    node: usize,
    /// Interface name.
    iface: String,
    /// Addresses, `10.0.0.1/31`.
    addresses: Vec<String>,
    up: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum EdgeKind {
    /// A veth pair (or another link tied to a peer).
    Veth,
    /// A bridge and the namespace it lives in.
    Contains,
    /// A bridge port that has no peer to draw (not a veth).
    Port,
}

#[derive(Clone, Debug)]
struct Edge {
    a: End,
    b: End,
    kind: EdgeKind,
}

/// A picture of the live network: namespaces, bridges, and the veth pairs
/// and ports between them, ready to print as DOT or Mermaid, or to render
/// as SVG through Graphviz.
///
/// Built from an nsdb [`Snapshot`] (what the kernel has, not what a file
/// declares). Namespaces are boxes (with the addresses of their loopback
/// and of interfaces that are neither veths nor bridges), bridges are
/// ellipses joined to their namespace by a dotted line, and a veth pair is a
/// line whose ends carry the interface name and addresses on that side (a
/// veth enslaved to a bridge starts at the bridge). A link that is down is
/// drawn dashed. IPv6 link-local addresses are left out. The output is
/// deterministic: the same state draws the same text.
///
/// # Examples
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let view = nsdb::View::builder().all_namespaces().build().await?;
/// let drawing = nstopo::Drawing::from_snapshot(&view.snapshot());
/// println!("{}", drawing.dot());
/// std::fs::write("net.svg", drawing.svg().await?)?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, Default)]
pub struct Drawing {
    title: String,
    nodes: Vec<Node>,
    edges: Vec<Edge>,
}

/// The other end of a link, as the snapshot resolves it.
struct PeerEnd {
    index: u32,
    /// `None`: a namespace the snapshot does not cover.
    namespace: Option<Namespace>,
}

impl Drawing {
    /// Draws every namespace of `snapshot`, in name order.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn demo(view: nsdb::View) {
    /// let dot = nstopo::Drawing::from_snapshot(&view.snapshot()).dot();
    /// # }
    /// ```
    pub fn from_snapshot(snapshot: &Snapshot) -> Drawing {
        let order: Vec<Namespace> = snapshot
            .namespaces()
            .map(|v| v.namespace().clone())
            .collect();
        Drawing::of_namespaces(snapshot, &order)
    }

    /// Draws the namespaces `order` names (those the snapshot covers), in
    /// that order (a namespace listed twice is drawn once): Graphviz ranks
    /// a line's first end above its second, so listing the upper tiers first
    /// (spines, then leaves, then hosts) draws them on top. A veth whose other end is in a namespace not listed ends
    /// on a dashed node naming that namespace (or `?` when the snapshot does
    /// not cover it).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn demo(view: nsdb::View) {
    /// use nsdb::Namespace;
    /// let order = [Namespace::named("spine1").unwrap(), Namespace::named("leaf1").unwrap()];
    /// let mermaid = nstopo::Drawing::of_namespaces(&view.snapshot(), &order).mermaid();
    /// # }
    /// ```
    pub fn of_namespaces(snapshot: &Snapshot, order: &[Namespace]) -> Drawing {
        let mut listed = BTreeSet::new();
        let states: Vec<(&Namespace, &NsState)> = order
            .iter()
            .filter(|ns| listed.insert(*ns))
            .filter_map(|ns| Some((ns, snapshot.namespace(ns)?.state())))
            .collect();
        build(&states, |ns, link| {
            let p = snapshot.namespace(ns)?.peer(link)?;
            Some(PeerEnd {
                index: p.index,
                namespace: p.namespace,
            })
        })
    }

    /// Sets the graph's title (DOT graph label, Mermaid title).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn demo(view: nsdb::View) {
    /// let d = nstopo::Drawing::from_snapshot(&view.snapshot()).title("fabric");
    /// # }
    /// ```
    pub fn title(mut self, title: impl Into<String>) -> Drawing {
        self.title = title.into();
        self
    }

    /// How many namespaces the drawing shows.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(nstopo::Drawing::default().namespace_count(), 0);
    /// ```
    pub fn namespace_count(&self) -> usize {
        self.nodes
            .iter()
            .filter(|n| n.kind == NodeKind::Namespace)
            .count()
    }

    /// How many veth pairs the drawing shows.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(nstopo::Drawing::default().veth_count(), 0);
    /// ```
    pub fn veth_count(&self) -> usize {
        self.edges
            .iter()
            .filter(|e| e.kind == EdgeKind::Veth)
            .count()
    }

    /// The drawing as Graphviz DOT text (an undirected `graph`).
    ///
    /// # Examples
    ///
    /// ```
    /// let dot = nstopo::Drawing::default().dot();
    /// assert!(dot.starts_with("graph topology {"));
    /// ```
    pub fn dot(&self) -> String {
        let mut out = String::new();
        out.push_str("graph topology {\n");
        out.push_str("  graph [fontname=\"Helvetica\", nodesep=0.6, ranksep=1.1, ordering=out");
        if !self.title.is_empty() {
            let _ = write!(out, ", label={}, labelloc=t", dot_quote(&self.title));
        }
        out.push_str("];\n");
        out.push_str("  node [fontname=\"Helvetica\", fontsize=11];\n");
        out.push_str("  edge [fontname=\"Helvetica\", fontsize=9];\n");
        for n in &self.nodes {
            let mut label = n.name.clone();
            for d in &n.details {
                label.push('\n');
                label.push_str(d);
            }
            let style = match n.kind {
                NodeKind::Namespace => "shape=box, style=\"rounded,filled\", fillcolor=\"#e8f0fe\"",
                NodeKind::Bridge => "shape=ellipse, style=filled, fillcolor=\"#fef7e0\"",
                NodeKind::Outside => "shape=box, style=\"rounded,dashed\", fontcolor=gray40",
            };
            let _ = writeln!(
                out,
                "  {} [label={}, {style}];",
                dot_quote(&n.id),
                dot_quote(&label)
            );
        }
        for e in &self.edges {
            let (a, b) = (&self.nodes[e.a.node], &self.nodes[e.b.node]);
            let mut attrs = Vec::new();
            match e.kind {
                EdgeKind::Veth => attrs.push(format!(
                    "label={}",
                    dot_quote(&format!("{}\n{}", end_label(&e.a), end_label(&e.b)))
                )),
                EdgeKind::Contains => attrs.push("style=dotted".into()),
                EdgeKind::Port => attrs.push(format!("label={}", dot_quote(&end_label(&e.b)))),
            }
            if e.kind != EdgeKind::Contains && !(e.a.up && e.b.up) {
                attrs.push("style=dashed".into());
            }
            let _ = writeln!(
                out,
                "  {} -- {} [{}];",
                dot_quote(&a.id),
                dot_quote(&b.id),
                attrs.join(", ")
            );
        }
        out.push_str("}\n");
        out
    }

    /// The drawing as a Mermaid flowchart (top to bottom). Mermaid puts one
    /// label on a line, so a veth's reads `eth1 10.0.0.1/31 ~ eth2 10.0.0.2/31`
    /// (first end, then second).
    ///
    /// # Examples
    ///
    /// ```
    /// let m = nstopo::Drawing::default().mermaid();
    /// assert!(m.starts_with("flowchart TB"));
    /// ```
    pub fn mermaid(&self) -> String {
        let mut out = String::new();
        if !self.title.is_empty() {
            let _ = write!(out, "---\ntitle: {}\n---\n", mermaid_text(&self.title));
        }
        out.push_str("flowchart TB\n");
        for (i, n) in self.nodes.iter().enumerate() {
            let mut label = mermaid_text(&n.name);
            for d in &n.details {
                label.push_str("<br/>");
                label.push_str(&mermaid_text(d));
            }
            let _ = match n.kind {
                NodeKind::Namespace => writeln!(out, "  n{i}[\"{label}\"]"),
                NodeKind::Bridge => writeln!(out, "  n{i}([\"{label}\"])"),
                NodeKind::Outside => writeln!(out, "  n{i}[/\"{label}\"/]"),
            };
        }
        for e in &self.edges {
            let (a, b) = (e.a.node, e.b.node);
            let line = if e.a.up && e.b.up { "---" } else { "-.-" };
            let _ = match e.kind {
                EdgeKind::Veth => writeln!(
                    out,
                    "  n{a} {line}|\"{} ~ {}\"| n{b}",
                    mermaid_text(&end_label(&e.a)),
                    mermaid_text(&end_label(&e.b)),
                ),
                EdgeKind::Contains => writeln!(out, "  n{a} -.- n{b}"),
                EdgeKind::Port => writeln!(
                    out,
                    "  n{a} {line}|\"{}\"| n{b}",
                    mermaid_text(&end_label(&e.b))
                ),
            };
        }
        out
    }

    /// The drawing rendered as SVG by Graphviz: [`dot`](Drawing::dot)'s
    /// text piped through `dot -Tsvg` (found on `PATH`; `scripts/setup`
    /// installs the `graphviz` package).
    ///
    /// Runs in a DEBUG span `render_svg` (fields `outcome`, `error`).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future kills the `dot` process (tokio reaps it); nothing
    /// else has happened.
    ///
    /// # Errors
    ///
    /// [`Error::RenderSpawn`] when `dot` cannot be started (ENOENT, queryable
    /// with `raw_os_error()`, when Graphviz is not installed) or its pipes
    /// fail; [`Error::Render`] when it exits with a failure (its standard
    /// error is in the error).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(d: nstopo::Drawing) -> nstopo::Result<()> {
    /// let svg = d.svg().await?;
    /// assert!(String::from_utf8_lossy(&svg).contains("<svg"));
    /// # Ok(()) }
    /// ```
    pub async fn svg(&self) -> Result<Vec<u8>> {
        let span = tracing::debug_span!("render_svg", outcome = Empty, error = Empty);
        let res = render(GRAPHVIZ_DOT, &["-Tsvg"], self.dot().into_bytes())
            .instrument(span.clone())
            .await;
        match &res {
            Ok(_) => span.record("outcome", "ok"),
            Err(e) => span
                .record("outcome", "error")
                .record("error", tracing::field::display(e)),
        };
        res
    }

    /// The drawing in `format`, as bytes to write out.
    ///
    /// # Cancel safety
    ///
    /// As [`svg`](Drawing::svg) (the text formats do not wait).
    ///
    /// # Errors
    ///
    /// As [`svg`](Drawing::svg), for [`DrawFormat::Svg`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(d: nstopo::Drawing) -> nstopo::Result<()> {
    /// let text = d.render(nstopo::DrawFormat::Mermaid).await?;
    /// # Ok(()) }
    /// ```
    pub async fn render(&self, format: DrawFormat) -> Result<Vec<u8>> {
        match format {
            DrawFormat::Dot => Ok(self.dot().into_bytes()),
            DrawFormat::Mermaid => Ok(self.mermaid().into_bytes()),
            DrawFormat::Svg => self.svg().await,
        }
    }
}

/// Runs `program args`, feeding `input` on its standard input, and returns
/// its standard output.
async fn render(program: &str, args: &[&str], input: Vec<u8>) -> Result<Vec<u8>> {
    let spawn_err = |source| Error::RenderSpawn {
        program: program.into(),
        source,
    };
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(spawn_err)?;
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| spawn_err(std::io::Error::other("no stdin pipe")))?;
    // Write while the child's output is read, or a large graph fills both
    // pipes and each side waits for the other.
    let write = async move {
        let res = stdin.write_all(&input).await;
        drop(stdin);
        res
    };
    let (written, output) = tokio::join!(write, child.wait_with_output());
    let output = output.map_err(spawn_err)?;
    if !output.status.success() {
        return Err(Error::Render {
            program: program.into(),
            status: output.status,
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    // A write error with a successful exit (dot stopped reading early) is
    // still a failure: the picture may be of part of the graph.
    written.map_err(spawn_err)?;
    Ok(output.stdout)
}

/// `iface` and its addresses, on one line.
fn end_label(end: &End) -> String {
    let mut s = end.iface.clone();
    for a in &end.addresses {
        s.push(' ');
        s.push_str(a);
    }
    s
}

fn dot_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Text safe inside a quoted Mermaid label (entity codes for what Mermaid
/// would read as markup).
fn mermaid_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("#quot;"),
            '<' => out.push_str("#lt;"),
            '>' => out.push_str("#gt;"),
            '#' => out.push_str("#35;"),
            '|' => out.push_str("#124;"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

fn is_link_local(a: &IpAddr) -> bool {
    match a {
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
        IpAddr::V4(_) => false,
    }
}

/// The addresses of link `index` as `addr/len`, link-local IPv6 left out,
/// in the state's (key) order.
fn addresses_of(state: &NsState, index: u32) -> Vec<String> {
    state
        .addresses
        .values()
        .filter(|a| a.index == index && !is_link_local(&a.local))
        .map(|a| format!("{}/{}", a.local, a.prefix_len))
        .collect()
}

fn is_kind(link: &Link, kind: &str) -> bool {
    link.kind.as_deref() == Some(kind)
}

fn ns_id(ns: &Namespace) -> String {
    match ns {
        Namespace::Host => "ns:(host)".into(),
        Namespace::Named(n) => format!("ns:{n}"),
    }
}

/// The drawing of `states` (in this order); `peer` resolves the other end
/// of a link (a snapshot's `NsView::peer`), for links tied to another
/// namespace.
fn build(
    states: &[(&Namespace, &NsState)],
    peer: impl Fn(&Namespace, &Link) -> Option<PeerEnd>,
) -> Drawing {
    let mut d = Drawing::default();
    // Node of each drawn namespace, and of each bridge (namespace, index).
    let mut ns_node: HashMap<&Namespace, usize> = HashMap::new();
    let mut bridge_node: HashMap<(&Namespace, u32), usize> = HashMap::new();
    let mut outside_node: BTreeMap<String, usize> = BTreeMap::new();
    for (ns, state) in states {
        let mut details = Vec::new();
        for link in state.links.values() {
            if is_kind(link, "veth") || is_kind(link, "bridge") {
                continue;
            }
            let mut addrs = addresses_of(state, link.index);
            if link.name == "lo" {
                addrs.retain(|a| a != "127.0.0.1/8" && a != "::1/128");
            }
            if addrs.is_empty() {
                continue;
            }
            details.push(format!("{} {}", link.name, addrs.join(" ")));
        }
        ns_node.insert(ns, d.nodes.len());
        d.nodes.push(Node {
            id: ns_id(ns),
            name: ns.to_string(),
            details,
            kind: NodeKind::Namespace,
        });
    }
    for (ns, state) in states {
        for link in state.links.values().filter(|l| is_kind(l, "bridge")) {
            let node = d.nodes.len();
            bridge_node.insert((ns, link.index), node);
            d.nodes.push(Node {
                id: format!("br:{ns}:{}", link.name),
                name: link.name.clone(),
                details: addresses_of(state, link.index),
                kind: NodeKind::Bridge,
            });
            d.edges.push(Edge {
                a: End {
                    node: ns_node[ns],
                    iface: String::new(),
                    addresses: Vec::new(),
                    up: true,
                },
                b: End {
                    node,
                    iface: String::new(),
                    addresses: Vec::new(),
                    up: link.is_up(),
                },
                kind: EdgeKind::Contains,
            });
        }
    }
    let end = |ns: &Namespace, state: &NsState, link: &Link| {
        let node = link
            .master
            .and_then(|m| bridge_node.get(&(ns, m)).copied())
            .unwrap_or(ns_node[ns]);
        End {
            node,
            iface: link.name.clone(),
            addresses: addresses_of(state, link.index),
            up: link.is_up(),
        }
    };
    let drawn: HashMap<&Namespace, &NsState> = states.iter().copied().collect();
    // Each pair once: (namespace rank, index) of both ends, smaller first.
    let rank: HashMap<&Namespace, usize> = states
        .iter()
        .enumerate()
        .map(|(i, (ns, _))| (*ns, i))
        .collect();
    let mut seen: BTreeSet<((usize, u32), (usize, u32))> = BTreeSet::new();
    let mut outside_edges = Vec::new();
    for (ns, state) in states {
        for link in state.links.values() {
            let here = (rank[ns], link.index);
            // A link tied to a peer in another namespace, or a veth whose
            // peer is in this one.
            let other = match peer(ns, link) {
                Some(p) => Some((p.namespace, p.index)),
                None if is_kind(link, "veth") => link.link.map(|i| (Some((*ns).clone()), i)),
                None => None,
            };
            match other {
                Some((Some(pns), pindex)) if drawn.contains_key(&pns) => {
                    let (pns, pstate) = drawn
                        .get_key_value(&pns)
                        .map(|(k, v)| (*k, *v))
                        .expect("checked above");
                    let there = (rank[pns], pindex);
                    let key = (here.min(there), here.max(there));
                    if !seen.insert(key) {
                        continue;
                    }
                    let Some(plink) = pstate.links.get(&pindex) else {
                        continue;
                    };
                    let (a, b) = (end(ns, state, link), end(pns, pstate, plink));
                    let (a, b) = if here <= there { (a, b) } else { (b, a) };
                    d.edges.push(Edge {
                        a,
                        b,
                        kind: EdgeKind::Veth,
                    });
                }
                Some((pns, pindex)) => {
                    let name = pns.map_or_else(|| "?".to_owned(), |n| n.to_string());
                    outside_edges.push((end(ns, state, link), name, pindex));
                }
                None => {
                    if let Some(&br) = link.master.and_then(|m| bridge_node.get(&(*ns, m))) {
                        let mut b = end(ns, state, link);
                        b.node = ns_node[ns];
                        d.edges.push(Edge {
                            a: End {
                                node: br,
                                iface: String::new(),
                                addresses: Vec::new(),
                                up: true,
                            },
                            b,
                            kind: EdgeKind::Port,
                        });
                    }
                }
            }
        }
    }
    for (a, name, pindex) in outside_edges {
        let node = *outside_node.entry(name.clone()).or_insert_with(|| {
            d.nodes.push(Node {
                id: format!("outside:{name}"),
                name: name.clone(),
                details: vec!["(not drawn)".into()],
                kind: NodeKind::Outside,
            });
            d.nodes.len() - 1
        });
        d.edges.push(Edge {
            a,
            b: End {
                node,
                iface: format!("ifindex {pindex}"),
                addresses: Vec::new(),
                up: true,
            },
            kind: EdgeKind::Veth,
        });
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_route::address::{AddressAttribute, AddressMessage};
    use netlink_packet_route::link::{InfoKind, LinkAttribute, LinkFlags, LinkInfo, LinkMessage};

    /// A link as the kernel would report it.
    fn link(index: u32, name: &str, kind: &str, up: bool) -> LinkMessage {
        let mut m = LinkMessage::default();
        m.header.index = index;
        if up {
            m.header.flags = LinkFlags::Up;
        }
        m.attributes.push(LinkAttribute::IfName(name.into()));
        if !kind.is_empty() {
            let kind = match kind {
                "veth" => InfoKind::Veth,
                "bridge" => InfoKind::Bridge,
                other => InfoKind::Other(other.into()),
            };
            m.attributes
                .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(kind)]));
        }
        m
    }

    fn veth(index: u32, name: &str, peer: u32, nsid: Option<i32>) -> LinkMessage {
        let mut m = link(index, name, "veth", true);
        m.attributes.push(LinkAttribute::Link(peer));
        if let Some(id) = nsid {
            m.attributes.push(LinkAttribute::LinkNetNsId(id));
        }
        m
    }

    fn state(links: Vec<LinkMessage>, addrs: &[(u32, &str, u8)]) -> NsState {
        let mut s = NsState::default();
        for l in links {
            let l = nsdb::Link::from_message(&l);
            s.links.insert(l.index, l);
        }
        for (index, ip, len) in addrs {
            let mut m = AddressMessage::default();
            m.header.index = *index;
            m.header.prefix_len = *len;
            m.attributes
                .push(AddressAttribute::Local(ip.parse().unwrap()));
            let a = nsdb::Address::from_message(&m).unwrap();
            s.addresses.insert(a.key(), a);
        }
        s
    }

    fn named(n: &str) -> Namespace {
        Namespace::named(n).unwrap()
    }

    /// spine (lo 10.255.0.1/32) --eth1/eth1-- leaf; leaf's eth2 is a port
    /// of its bridge br0, whose other end is host's eth0; host also has a
    /// veth to a namespace that is not drawn, and one that is down.
    fn fixed() -> Drawing {
        let (spine, leaf, host) = (named("spine"), named("leaf"), named("host"));
        // nsids as seen from each namespace: spine sees leaf as 0; leaf
        // sees spine as 0 and host as 1; host sees leaf as 0, other as 5.
        let s_spine = state(
            vec![link(1, "lo", "", true), veth(2, "eth1", 2, Some(0))],
            &[
                (1, "127.0.0.1", 8),
                (1, "10.255.0.1", 32),
                (2, "10.0.0.0", 31),
                (2, "fe80::1", 64),
            ],
        );
        let s_leaf = state(
            vec![
                link(1, "lo", "", true),
                veth(2, "eth1", 2, Some(0)),
                link(3, "br0", "bridge", true),
                {
                    let mut m = veth(4, "eth2", 2, Some(1));
                    m.attributes.push(LinkAttribute::Controller(3));
                    m
                },
            ],
            &[(2, "10.0.0.1", 31), (3, "192.168.1.1", 24)],
        );
        let s_host = state(
            vec![
                link(1, "lo", "", false),
                veth(2, "eth0", 4, Some(0)),
                veth(3, "up0", 9, Some(5)),
                {
                    let mut m = veth(4, "down0", 5, None);
                    m.header.flags = LinkFlags::empty();
                    m
                },
                veth(5, "down1", 4, None),
            ],
            &[(2, "192.168.1.10", 24), (2, "2001:db8::10", 64)],
        );
        let nsids: HashMap<Namespace, BTreeMap<i32, Namespace>> = [
            (spine.clone(), [(0, leaf.clone())].into()),
            (leaf.clone(), [(0, spine.clone()), (1, host.clone())].into()),
            (host.clone(), [(0, leaf.clone())].into()),
        ]
        .into();
        let states = [(&spine, &s_spine), (&leaf, &s_leaf), (&host, &s_host)];
        build(&states, |ns, l| {
            let id = l.link_netnsid?;
            Some(PeerEnd {
                index: l.link?,
                namespace: nsids[ns].get(&id).cloned(),
            })
        })
        .title("fixed")
    }

    #[test]
    fn dot_of_a_fixed_snapshot() {
        let want = r##"graph topology {
  graph [fontname="Helvetica", nodesep=0.6, ranksep=1.1, ordering=out, label="fixed", labelloc=t];
  node [fontname="Helvetica", fontsize=11];
  edge [fontname="Helvetica", fontsize=9];
  "ns:spine" [label="spine\nlo 10.255.0.1/32", shape=box, style="rounded,filled", fillcolor="#e8f0fe"];
  "ns:leaf" [label="leaf", shape=box, style="rounded,filled", fillcolor="#e8f0fe"];
  "ns:host" [label="host", shape=box, style="rounded,filled", fillcolor="#e8f0fe"];
  "br:leaf:br0" [label="br0\n192.168.1.1/24", shape=ellipse, style=filled, fillcolor="#fef7e0"];
  "outside:?" [label="?\n(not drawn)", shape=box, style="rounded,dashed", fontcolor=gray40];
  "ns:leaf" -- "br:leaf:br0" [style=dotted];
  "ns:spine" -- "ns:leaf" [label="eth1 10.0.0.0/31\neth1 10.0.0.1/31"];
  "br:leaf:br0" -- "ns:host" [label="eth2\neth0 192.168.1.10/24 2001:db8::10/64"];
  "ns:host" -- "ns:host" [label="down0\ndown1", style=dashed];
  "ns:host" -- "outside:?" [label="up0\nifindex 9"];
}
"##;
        assert_eq!(fixed().dot(), want);
    }

    #[test]
    fn mermaid_of_a_fixed_snapshot() {
        let want = r##"---
title: fixed
---
flowchart TB
  n0["spine<br/>lo 10.255.0.1/32"]
  n1["leaf"]
  n2["host"]
  n3(["br0<br/>192.168.1.1/24"])
  n4[/"?<br/>(not drawn)"/]
  n1 -.- n3
  n0 ---|"eth1 10.0.0.0/31 ~ eth1 10.0.0.1/31"| n1
  n3 ---|"eth2 ~ eth0 192.168.1.10/24 2001:db8::10/64"| n2
  n2 -.-|"down0 ~ down1"| n2
  n2 ---|"up0 ~ ifindex 9"| n4
"##;
        assert_eq!(fixed().mermaid(), want);
    }

    #[test]
    fn counts_and_order() {
        let d = fixed();
        assert_eq!(d.namespace_count(), 3);
        assert_eq!(d.veth_count(), 4);
        // An empty drawing is still a valid graph.
        assert_eq!(
            Drawing::default().mermaid(),
            "flowchart TB\n",
            "no title, no nodes"
        );
    }

    #[test]
    fn quoting() {
        assert_eq!(dot_quote("a\"b\\c\nd"), "\"a\\\"b\\\\c\\nd\"");
        assert_eq!(mermaid_text("a\"<b>#|"), "a#quot;#lt;b#gt;#35;#124;");
    }

    #[test]
    fn formats_parse() {
        assert_eq!("DOT".parse::<DrawFormat>().unwrap(), DrawFormat::Dot);
        assert_eq!("svg".parse::<DrawFormat>().unwrap(), DrawFormat::Svg);
        let e = "png".parse::<DrawFormat>().unwrap_err();
        assert!(e.to_string().contains("png"), "{e}");
    }

    #[tokio::test]
    async fn svg_through_graphviz() {
        let svg = fixed()
            .svg()
            .await
            .expect("dot -Tsvg (scripts/setup installs graphviz)");
        let svg = String::from_utf8(svg).unwrap();
        assert!(svg.contains("<svg"), "{svg}");
        assert!(svg.contains("10.255.0.1/32"), "{svg}");
    }

    #[tokio::test]
    async fn missing_program_is_a_typed_error() {
        let e = render("/nonexistent/dot", &["-Tsvg"], b"graph {}".to_vec())
            .await
            .unwrap_err();
        assert!(matches!(e, Error::RenderSpawn { .. }), "{e:?}");
        assert_eq!(e.raw_os_error(), Some(libc::ENOENT));
        let e = render(GRAPHVIZ_DOT, &["-Tsvg"], b"graph {".to_vec())
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Render { .. }), "{e:?}");
    }
}
