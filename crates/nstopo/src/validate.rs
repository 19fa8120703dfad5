//! Reading a topology file (YAML or JSON) and checking a topology: every
//! problem is collected, each with its place in the file where known.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::net::IpAddr;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;

use crate::model::{Bridge, Destination, Endpoint, IfAddr, Link, MacAddr, Node, Route, Topology};
use crate::{Error, Result};

/// A place in a topology file.
///
/// # Examples
///
/// ```
/// let err = nstopo::Topology::from_yaml_str("name: t\nnodes: [a, a]\n").unwrap_err();
/// let nstopo::Error::Invalid { problems, .. } = err else { panic!() };
/// let loc = problems[0].location.as_ref().unwrap();
/// assert_eq!((loc.line, loc.column), (2, 12));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Location {
    /// The file, if the topology was read from one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// The line, from 1.
    pub line: u64,
    /// The column, from 1.
    pub column: u64,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.file {
            Some(file) => write!(f, "{file}:{}:{}", self.line, self.column),
            None => write!(f, "line {}, column {}", self.line, self.column),
        }
    }
}

/// What is wrong with a declaration: one item of [`Error::Invalid`].
///
/// # Examples
///
/// ```
/// use nstopo::ProblemKind;
/// let err = nstopo::Topology::from_yaml_str("name: t\nnodes: [a]\nlinks: ['a:e0 <-> b:e0']\n").unwrap_err();
/// let nstopo::Error::Invalid { problems, .. } = err else { panic!() };
/// assert!(matches!(&problems[0].kind, ProblemKind::UnknownNode { node } if node == "b"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
#[non_exhaustive]
#[serde(tag = "problem", rename_all = "snake_case")]
pub enum ProblemKind {
    /// Two nodes have one name.
    #[error("node {name:?} is declared twice")]
    DuplicateNode {
        /// The node's name.
        name: String,
    },
    /// A link or route names a node that is not declared.
    #[error("node {node:?} is not declared")]
    UnknownNode {
        /// The name used.
        node: String,
    },
    /// One interface name is used twice in one node.
    #[error("interface {node}:{name} is used twice")]
    DuplicateInterface {
        /// The node.
        node: String,
        /// The interface name.
        name: String,
    },
    /// One address is given twice in one node (or on both ends of a link).
    #[error("address {address} is given twice in {node}")]
    DuplicateAddress {
        /// The node.
        node: String,
        /// The address.
        address: String,
    },
    /// One route (destination and metric) is given twice in one node.
    #[error("route {route} is given twice in {node}")]
    DuplicateRoute {
        /// The node.
        node: String,
        /// The route.
        route: String,
    },
    /// A name (topology, node, interface) is not valid.
    #[error("invalid {what} name {name:?}: {reason}")]
    InvalidName {
        /// What the name is of (`node`, `interface`, `topology`).
        what: &'static str,
        /// The name.
        name: String,
        /// Why it is not valid.
        reason: String,
    },
    /// An address, prefix or MAC address is not valid.
    #[error("invalid address: {reason}")]
    InvalidAddress {
        /// Why.
        reason: String,
    },
    /// A sysctl key or value is not valid.
    #[error("invalid sysctl {key:?}: {reason}")]
    InvalidSysctl {
        /// The key.
        key: String,
        /// Why.
        reason: String,
    },
    /// A route is not valid (family mismatch, unknown device, host bits).
    #[error("invalid route {route}: {reason}")]
    InvalidRoute {
        /// The route as written.
        route: String,
        /// Why.
        reason: String,
    },
    /// A link is not valid (compact form not understood, MTU 0, a `master`
    /// that is not a bridge of the node).
    #[error("invalid link {link}: {reason}")]
    InvalidLink {
        /// The link as written.
        link: String,
        /// Why.
        reason: String,
    },
}

/// One problem of a declaration, with its place in the file where known.
///
/// # Examples
///
/// ```
/// let err = nstopo::Topology::from_yaml_str("name: t\nnodes: [a, a]\n").unwrap_err();
/// let nstopo::Error::Invalid { problems, .. } = err else { panic!() };
/// assert_eq!(problems[0].to_string(), "line 2, column 12: node \"a\" is declared twice");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Problem {
    /// Where, if known (declarations made with the builder have none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    /// What.
    #[serde(flatten)]
    pub kind: ProblemKind,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.location {
            Some(l) => write!(f, "{l}: {}", self.kind),
            None => write!(f, "{}", self.kind),
        }
    }
}

/// The interface names the kernel accepts (`dev_valid_name`).
pub(crate) fn check_ifname(name: &str) -> std::result::Result<(), String> {
    if name.is_empty() {
        return Err("empty".into());
    }
    if name.len() > 15 {
        return Err("longer than 15 bytes".into());
    }
    if name == "." || name == ".." {
        return Err("reserved".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| *c == '/' || *c == ':' || c.is_whitespace() || c.is_control())
    {
        return Err(format!("contains {c:?}"));
    }
    Ok(())
}

fn check_node_name(name: &str) -> std::result::Result<(), String> {
    netns::NsName::new(name).map_err(|e| e.to_string())?;
    if name.contains(':') {
        return Err("contains ':'".into());
    }
    Ok(())
}

fn check_sysctl(key: &str, value: &str) -> std::result::Result<(), String> {
    if !key.starts_with("net.") {
        return Err("only net.* sysctls belong to a network namespace".into());
    }
    if key.split('.').any(|c| {
        c.is_empty()
            || !c
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '-')
    }) {
        return Err("a key is dot-separated words of letters, digits, '_' and '-'".into());
    }
    if value.is_empty() || value.contains(['\n', '\0']) {
        return Err(format!("invalid value {value:?}"));
    }
    Ok(())
}

/// Where the parts of a topology were written, if it was read from a file.
#[derive(Debug, Default)]
pub(crate) struct Spans {
    file: Option<String>,
    topo: Option<Location>,
    nodes: Vec<Option<Location>>,
    routes: Vec<Vec<Option<Location>>>,
    bridges: Vec<Vec<Option<Location>>>,
    links: Vec<Option<Location>>,
}

impl Spans {
    fn loc(&self, s: &serde_saphyr::Location) -> Option<Location> {
        (s.line() > 0).then(|| Location {
            file: self.file.clone(),
            line: s.line(),
            column: s.column(),
        })
    }
    fn node(&self, i: usize) -> Option<Location> {
        self.nodes.get(i).cloned().flatten()
    }
    fn link(&self, i: usize) -> Option<Location> {
        self.links.get(i).cloned().flatten()
    }
    fn route(&self, n: usize, i: usize) -> Option<Location> {
        self.routes
            .get(n)
            .and_then(|r| r.get(i).cloned().flatten())
            .or_else(|| self.node(n))
    }
    fn bridge(&self, n: usize, i: usize) -> Option<Location> {
        self.bridges
            .get(n)
            .and_then(|r| r.get(i).cloned().flatten())
            .or_else(|| self.node(n))
    }
}

/// Checks a topology; every problem is returned.
pub(crate) fn check(topo: &Topology, spans: &Spans) -> Vec<Problem> {
    let mut out = Vec::new();
    let mut push = |location: Option<Location>, kind| out.push(Problem { location, kind });

    if let Err(reason) = netns::NsName::new(&topo.name)
        .map_err(|e| e.to_string())
        .and_then(|_| {
            if topo.name.len() > 64 {
                Err("longer than 64 bytes".into())
            } else {
                Ok(())
            }
        })
    {
        push(
            spans.topo.clone(),
            ProblemKind::InvalidName {
                what: "topology",
                name: topo.name.clone(),
                reason,
            },
        );
    }

    // Interfaces per node: name -> is a bridge.
    let mut nodes: HashMap<&str, usize> = HashMap::new();
    let mut ifaces: Vec<HashMap<&str, bool>> = vec![HashMap::new(); topo.nodes.len()];
    let mut addrs: Vec<HashSet<IpAddr>> = vec![HashSet::new(); topo.nodes.len()];

    for (i, node) in topo.nodes.iter().enumerate() {
        let loc = spans.node(i);
        if let Err(reason) = check_node_name(&node.name) {
            push(
                loc.clone(),
                ProblemKind::InvalidName {
                    what: "node",
                    name: node.name.clone(),
                    reason,
                },
            );
        }
        if nodes.insert(&node.name, i).is_some() {
            push(
                loc.clone(),
                ProblemKind::DuplicateNode {
                    name: node.name.clone(),
                },
            );
            continue;
        }
        for (k, v) in &node.sysctls {
            if let Err(reason) = check_sysctl(k, v) {
                push(
                    loc.clone(),
                    ProblemKind::InvalidSysctl {
                        key: k.clone(),
                        reason,
                    },
                );
            }
        }
        ifaces[i].insert("lo", false);
        for a in &node.loopback {
            if !addrs[i].insert(a.addr) {
                push(
                    loc.clone(),
                    ProblemKind::DuplicateAddress {
                        node: node.name.clone(),
                        address: a.to_string(),
                    },
                );
            }
        }
        for (b, bridge) in node.bridges.iter().enumerate() {
            let loc = spans.bridge(i, b);
            if let Err(reason) = check_ifname(&bridge.name) {
                push(
                    loc.clone(),
                    ProblemKind::InvalidName {
                        what: "interface",
                        name: bridge.name.clone(),
                        reason,
                    },
                );
            }
            if ifaces[i].insert(&bridge.name, true).is_some() {
                push(
                    loc.clone(),
                    ProblemKind::DuplicateInterface {
                        node: node.name.clone(),
                        name: bridge.name.clone(),
                    },
                );
            }
            for a in &bridge.addresses {
                if !addrs[i].insert(a.addr) {
                    push(
                        loc.clone(),
                        ProblemKind::DuplicateAddress {
                            node: node.name.clone(),
                            address: a.to_string(),
                        },
                    );
                }
            }
        }
    }

    for (l, link) in topo.links.iter().enumerate() {
        let loc = spans.link(l);
        if link.a.addresses.iter().any(|a| {
            link.b
                .addresses
                .iter()
                .any(|b| b.addr == a.addr && link.a.node != link.b.node)
        }) {
            push(
                loc.clone(),
                ProblemKind::InvalidLink {
                    link: link.to_string(),
                    reason: "both ends have the same address".into(),
                },
            );
        }
        for end in link.ends() {
            let Some(&n) = nodes.get(end.node.as_str()) else {
                push(
                    loc.clone(),
                    ProblemKind::UnknownNode {
                        node: end.node.clone(),
                    },
                );
                continue;
            };
            if let Err(reason) = check_ifname(&end.name) {
                push(
                    loc.clone(),
                    ProblemKind::InvalidName {
                        what: "interface",
                        name: end.name.clone(),
                        reason,
                    },
                );
            }
            if ifaces[n].insert(&end.name, false).is_some() {
                push(
                    loc.clone(),
                    ProblemKind::DuplicateInterface {
                        node: end.node.clone(),
                        name: end.name.clone(),
                    },
                );
            }
            if end.mtu == Some(0) {
                push(
                    loc.clone(),
                    ProblemKind::InvalidLink {
                        link: link.to_string(),
                        reason: format!("{end} has MTU 0"),
                    },
                );
            }
            for a in &end.addresses {
                if !addrs[n].insert(a.addr) {
                    push(
                        loc.clone(),
                        ProblemKind::DuplicateAddress {
                            node: end.node.clone(),
                            address: a.to_string(),
                        },
                    );
                }
            }
        }
    }
    // Masters, once every interface is known.
    for (l, link) in topo.links.iter().enumerate() {
        for end in link.ends() {
            let (Some(master), Some(&n)) = (&end.master, nodes.get(end.node.as_str())) else {
                continue;
            };
            if ifaces[n].get(master.as_str()) != Some(&true) {
                push(
                    spans.link(l),
                    ProblemKind::InvalidLink {
                        link: link.to_string(),
                        reason: format!("{end}: master {master:?} is not a bridge of {}", end.node),
                    },
                );
            }
        }
    }

    for (i, node) in topo.nodes.iter().enumerate() {
        if nodes.get(node.name.as_str()) != Some(&i) {
            continue;
        }
        let mut seen = HashSet::new();
        for (r, route) in node.routes.iter().enumerate() {
            let loc = spans.route(i, r);
            let bad = |reason: String| ProblemKind::InvalidRoute {
                route: route.to_string(),
                reason,
            };
            if route.gateway.is_none() && route.device.is_none() {
                push(
                    loc.clone(),
                    bad("a route needs a gateway or a device".into()),
                );
            }
            if let (Destination::Prefix(p), Some(g)) = (route.destination, route.gateway)
                && p.addr.is_ipv6() != g.is_ipv6()
            {
                push(
                    loc.clone(),
                    bad("destination and gateway families differ".into()),
                );
            }
            if let Destination::Prefix(p) = route.destination
                && p.network() != p
            {
                push(
                    loc.clone(),
                    bad(format!("host bits are set (the prefix is {})", p.network())),
                );
            }
            if let Some(dev) = &route.device
                && !ifaces[i].contains_key(dev.as_str())
            {
                push(
                    loc.clone(),
                    bad(format!("{dev:?} is not an interface of {}", node.name)),
                );
            }
            if !seen.insert((route.prefix(), route.metric.unwrap_or(0))) {
                push(
                    loc.clone(),
                    ProblemKind::DuplicateRoute {
                        node: node.name.clone(),
                        route: route.to_string(),
                    },
                );
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------
// The file form. Scalars that can be wrong are read as strings (with their
// place) and converted after the whole file is read, so that every problem
// is found in one pass.

type S<T> = Spanned<T>;

/// A scalar of any type, as a string (sysctl values: `1`, `"1"`, `true`).
#[derive(Debug)]
struct Scalar(String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Scalar, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, number or boolean")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Scalar, E> {
                Ok(Scalar(v.into()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> std::result::Result<Scalar, E> {
                Ok(Scalar(if v { "1" } else { "0" }.into()))
            }
        }
        d.deserialize_any(V)
    }
}

/// Either a string (a compact form) or a map (the long form).
#[derive(Debug)]
enum StrOr<T> {
    Str(String),
    Map(T),
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for StrOr<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<StrOr<T>, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = StrOr<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or a map")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<StrOr<T>, E> {
                Ok(StrOr::Str(v.into()))
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                map: A,
            ) -> std::result::Result<StrOr<T>, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map)).map(StrOr::Map)
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTopology {
    name: S<String>,
    #[serde(default)]
    nodes: Vec<S<StrOr<RawNode>>>,
    #[serde(default)]
    links: Vec<S<StrOr<RawLink>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    name: String,
    #[serde(default)]
    sysctls: BTreeMap<String, Scalar>,
    #[serde(default)]
    bridges: Vec<S<StrOr<RawBridge>>>,
    #[serde(default)]
    loopback: Vec<String>,
    #[serde(default)]
    routes: Vec<S<StrOr<RawRoute>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBridge {
    name: String,
    mtu: Option<u32>,
    mac: Option<String>,
    #[serde(default)]
    addresses: Vec<String>,
    #[serde(default = "yes")]
    up: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    #[serde(alias = "to", alias = "dst")]
    destination: String,
    #[serde(alias = "via")]
    gateway: Option<String>,
    #[serde(alias = "dev")]
    device: Option<String>,
    metric: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLink {
    a: StrOr<RawEnd>,
    b: StrOr<RawEnd>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEnd {
    node: String,
    name: String,
    mtu: Option<u32>,
    mac: Option<String>,
    #[serde(default)]
    addresses: Vec<String>,
    #[serde(default = "yes")]
    up: bool,
    master: Option<String>,
}

/// Converts what was read; conversion problems go to `problems`.
struct Convert<'a> {
    spans: Spans,
    problems: Vec<Problem>,
    _p: std::marker::PhantomData<&'a ()>,
}

impl Convert<'_> {
    fn addr(&mut self, s: &str, loc: &Option<Location>) -> Option<IfAddr> {
        match s.parse() {
            Ok(a) => Some(a),
            Err(reason) => {
                self.problems.push(Problem {
                    location: loc.clone(),
                    kind: ProblemKind::InvalidAddress { reason },
                });
                None
            }
        }
    }
    fn addrs(&mut self, v: &[String], loc: &Option<Location>) -> Vec<IfAddr> {
        v.iter().filter_map(|s| self.addr(s, loc)).collect()
    }
    fn mac(&mut self, s: &Option<String>, loc: &Option<Location>) -> Option<MacAddr> {
        match s.as_deref()?.parse() {
            Ok(m) => Some(m),
            Err(reason) => {
                self.problems.push(Problem {
                    location: loc.clone(),
                    kind: ProblemKind::InvalidAddress { reason },
                });
                None
            }
        }
    }

    fn route(&mut self, raw: StrOr<RawRoute>, loc: &Option<Location>) -> Option<Route> {
        let raw = match raw {
            StrOr::Map(m) => m,
            StrOr::Str(s) => match parse_route(&s) {
                Ok(r) => r,
                Err(reason) => {
                    self.problems.push(Problem {
                        location: loc.clone(),
                        kind: ProblemKind::InvalidRoute { route: s, reason },
                    });
                    return None;
                }
            },
        };
        let text = raw.destination.clone();
        let mut bad = |reason: String| {
            self.problems.push(Problem {
                location: loc.clone(),
                kind: ProblemKind::InvalidRoute {
                    route: text.clone(),
                    reason,
                },
            });
        };
        let destination: Destination = match raw.destination.parse() {
            Ok(d) => d,
            Err(e) => {
                bad(e);
                return None;
            }
        };
        let gateway = match raw.gateway.as_deref().map(str::parse::<IpAddr>) {
            None => None,
            Some(Ok(g)) => Some(g),
            Some(Err(_)) => {
                bad(format!(
                    "gateway {:?} is not an address",
                    raw.gateway.unwrap_or_default()
                ));
                return None;
            }
        };
        Some(Route {
            destination,
            gateway,
            device: raw.device,
            metric: raw.metric,
        })
    }

    fn end(&mut self, raw: StrOr<RawEnd>, loc: &Option<Location>) -> Option<Endpoint> {
        match raw {
            StrOr::Str(s) => match crate::model::split_endpoint(&s) {
                Ok((n, i)) => Some(Endpoint::new(n, i)),
                Err(reason) => {
                    self.problems.push(Problem {
                        location: loc.clone(),
                        kind: ProblemKind::InvalidLink { link: s, reason },
                    });
                    None
                }
            },
            StrOr::Map(m) => Some(Endpoint {
                mtu: m.mtu,
                mac: self.mac(&m.mac, loc),
                addresses: self.addrs(&m.addresses, loc),
                up: m.up,
                master: m.master,
                node: m.node,
                name: m.name,
            }),
        }
    }
}

fn parse_route(s: &str) -> std::result::Result<RawRoute, String> {
    let mut words = s.split_whitespace();
    let destination = words.next().ok_or("empty route")?.to_owned();
    let mut r = RawRoute {
        destination,
        gateway: None,
        device: None,
        metric: None,
    };
    while let Some(w) = words.next() {
        let v = words.next().ok_or_else(|| format!("{w:?} needs a value"))?;
        match w {
            "via" => r.gateway = Some(v.into()),
            "dev" => r.device = Some(v.into()),
            "metric" => r.metric = Some(v.parse().map_err(|_| format!("{v:?} is not a metric"))?),
            _ => return Err(format!("unknown word {w:?} (via, dev, metric)")),
        }
    }
    Ok(r)
}

fn convert(raw: RawTopology, file: Option<String>) -> Result<Topology> {
    let mut c = Convert {
        spans: Spans {
            file: file.clone(),
            ..Spans::default()
        },
        problems: Vec::new(),
        _p: std::marker::PhantomData,
    };
    c.spans.topo = c.spans.loc(&raw.name.referenced);
    let mut topo = Topology::builder(raw.name.value).topo_unchecked();
    for item in raw.nodes {
        let loc = c.spans.loc(&item.referenced);
        c.spans.nodes.push(loc.clone());
        let mut routes = Vec::new();
        let mut bridges = Vec::new();
        let node = match item.value {
            StrOr::Str(name) => Node::new(name),
            StrOr::Map(raw) => {
                let mut node = Node::new(raw.name);
                node.sysctls = raw.sysctls.into_iter().map(|(k, v)| (k, v.0)).collect();
                node.loopback = c.addrs(&raw.loopback, &loc);
                for b in raw.bridges {
                    let bloc = c.spans.loc(&b.referenced).or(loc.clone());
                    bridges.push(bloc.clone());
                    node.bridges.push(match b.value {
                        StrOr::Str(name) => Bridge::new(name),
                        StrOr::Map(m) => Bridge {
                            mtu: m.mtu,
                            mac: c.mac(&m.mac, &bloc),
                            addresses: c.addrs(&m.addresses, &bloc),
                            up: m.up,
                            name: m.name,
                        },
                    });
                }
                for r in raw.routes {
                    let rloc = c.spans.loc(&r.referenced).or(loc.clone());
                    if let Some(route) = c.route(r.value, &rloc) {
                        routes.push(rloc);
                        node.routes.push(route);
                    }
                }
                node
            }
        };
        c.spans.routes.push(routes);
        c.spans.bridges.push(bridges);
        topo.nodes.push(node);
    }
    for item in raw.links {
        let loc = c.spans.loc(&item.referenced);
        let link = match item.value {
            StrOr::Str(s) => match s.parse::<Link>() {
                Ok(l) => Some(l),
                Err(reason) => {
                    c.problems.push(Problem {
                        location: loc.clone(),
                        kind: ProblemKind::InvalidLink { link: s, reason },
                    });
                    None
                }
            },
            StrOr::Map(m) => match (c.end(m.a, &loc), c.end(m.b, &loc)) {
                (Some(a), Some(b)) => Some(Link::new(a, b)),
                _ => None,
            },
        };
        if let Some(link) = link {
            c.spans.links.push(loc);
            topo.links.push(link);
        }
    }
    let mut problems = c.problems;
    problems.extend(check(&topo, &c.spans));
    if problems.is_empty() {
        Ok(topo)
    } else {
        Err(Error::Invalid { file, problems })
    }
}

pub(crate) fn from_yaml(text: &str, file: Option<String>) -> Result<Topology> {
    let raw: RawTopology = serde_saphyr::from_str(text).map_err(|e| {
        let (line, column) = e
            .location()
            .map(|l| (l.line(), l.column()))
            .unwrap_or((0, 0));
        Error::Parse {
            file: file.clone(),
            line,
            column,
            message: first_line(&e.to_string()),
        }
    })?;
    convert(raw, file)
}

pub(crate) fn from_json(text: &str, file: Option<String>) -> Result<Topology> {
    let raw: RawTopology = serde_json::from_str(text).map_err(|e| Error::Parse {
        file: file.clone(),
        line: e.line() as u64,
        column: e.column() as u64,
        message: e.to_string(),
    })?;
    convert(raw, file)
}

/// The parser's message without its own "error: line L column C: " prefix
/// (the error carries the place).
fn first_line(s: &str) -> String {
    let line = s.lines().next().unwrap_or_default().trim();
    let line = line.strip_prefix("error: ").unwrap_or(line);
    match line.strip_prefix("line ").and_then(|r| r.split_once(": ")) {
        Some((_, msg)) => msg.to_owned(),
        None => line.to_owned(),
    }
}

impl crate::model::Builder {
    /// The topology as built so far, unchecked (the file reader checks it
    /// with the places of its parts).
    pub(crate) fn topo_unchecked(self) -> Topology {
        self.into_inner()
    }
}

pub(crate) const NO_SPANS: Spans = Spans {
    file: None,
    topo: None,
    nodes: Vec::new(),
    routes: Vec::new(),
    bridges: Vec::new(),
    links: Vec::new(),
};
