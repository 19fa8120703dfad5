//! The difference between a declaration and the live state, as typed
//! changes; sans-IO (it reads a [`LiveState`], however it was read).

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use serde::Serialize;

use crate::model::{Bridge, Endpoint, IfAddr, Link, MacAddr, Node, Route, Topology};
use crate::state::{LiveLink, LiveNode, LiveState, adoptable};

/// Attributes of a link to set (`None`: leave as is).
///
/// # Examples
///
/// ```
/// let a = nstopo::LinkAttrs { mtu: Some(9000), ..Default::default() };
/// assert_eq!(a.to_string(), "mtu 9000");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LinkAttrs {
    /// MTU.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// MAC address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac: Option<MacAddr>,
    /// Up or down.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub up: Option<bool>,
    /// The bridge (name, index), or `Some(None)` for none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub master: Option<Option<(String, u32)>>,
}

impl fmt::Display for LinkAttrs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(m) = self.mtu {
            parts.push(format!("mtu {m}"));
        }
        if let Some(m) = self.mac {
            parts.push(format!("address {m}"));
        }
        if let Some(m) = &self.master {
            parts.push(match m {
                Some((n, _)) => format!("master {n}"),
                None => "nomaster".into(),
            });
        }
        if let Some(u) = self.up {
            parts.push(if u { "up" } else { "down" }.into());
        }
        f.write_str(&parts.join(" "))
    }
}

/// One difference between the declaration and the kernel, and the change
/// that repairs it. [`diff`](crate::diff) lists them; a [`Plan`] orders
/// them.
///
/// # Examples
///
/// ```
/// let c = nstopo::Change::CreateNamespace { node: "r1".into() };
/// assert_eq!(c.to_string(), "create namespace r1");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    /// A declared namespace is missing.
    CreateNamespace {
        /// The node.
        node: String,
    },
    /// A namespace the topology owns is no longer declared.
    RemoveNamespace {
        /// The node.
        node: String,
    },
    /// A declared sysctl has another value.
    SetSysctl {
        /// The node.
        node: String,
        /// The key.
        key: String,
        /// The declared value.
        value: String,
        /// The live value (empty if it was not read: a new namespace).
        old: String,
    },
    /// A declared bridge is missing.
    CreateBridge {
        /// The node.
        node: String,
        /// The bridge.
        bridge: Bridge,
        /// The index it is given.
        index: u32,
    },
    /// A declared veth pair is missing (or only half of it exists).
    CreateVeth {
        /// End a, created in its node.
        a: Endpoint,
        /// Its index.
        a_index: u32,
        /// End b, born directly in its node.
        b: Endpoint,
        /// Its index.
        b_index: u32,
    },
    /// An owned link is not declared (or is half of a broken pair).
    DeleteLink {
        /// The node.
        node: String,
        /// The link's name.
        name: String,
        /// Its index.
        index: u32,
    },
    /// A link's attributes differ (MTU, MAC, up, master).
    SetLink {
        /// The node.
        node: String,
        /// The link's name.
        name: String,
        /// Its index.
        index: u32,
        /// What to set.
        set: LinkAttrs,
        /// What it was (for a rollback).
        old: LinkAttrs,
    },
    /// A declared address is missing.
    AddAddress {
        /// The node.
        node: String,
        /// The interface.
        device: String,
        /// Its index.
        index: u32,
        /// The address.
        address: IfAddr,
    },
    /// An address on an owned link is not declared.
    DeleteAddress {
        /// The node.
        node: String,
        /// The interface.
        device: String,
        /// Its index.
        index: u32,
        /// The address.
        address: IfAddr,
    },
    /// A declared route is missing (or differs).
    AddRoute {
        /// The node.
        node: String,
        /// The route.
        route: Route,
        /// The index of its device, if it has one.
        oif: Option<u32>,
    },
    /// A route of an owned namespace is not declared (or differs).
    DeleteRoute {
        /// The node.
        node: String,
        /// The route.
        route: Route,
        /// The index of its device, if it has one.
        oif: Option<u32>,
    },
}

impl Change {
    /// The namespace the change is made in (for a veth, end a's).
    ///
    /// # Examples
    ///
    /// ```
    /// let c = nstopo::Change::CreateNamespace { node: "r1".into() };
    /// assert_eq!(c.node(), "r1");
    /// ```
    pub fn node(&self) -> &str {
        match self {
            Change::CreateNamespace { node }
            | Change::RemoveNamespace { node }
            | Change::SetSysctl { node, .. }
            | Change::CreateBridge { node, .. }
            | Change::DeleteLink { node, .. }
            | Change::SetLink { node, .. }
            | Change::AddAddress { node, .. }
            | Change::DeleteAddress { node, .. }
            | Change::AddRoute { node, .. }
            | Change::DeleteRoute { node, .. } => node,
            Change::CreateVeth { a, .. } => &a.node,
        }
    }

    /// The order of execution: changes of one phase run concurrently.
    pub(crate) fn phase(&self) -> u8 {
        match self {
            Change::DeleteRoute { .. } => 0,
            Change::DeleteAddress { .. } => 1,
            Change::DeleteLink { .. } => 2,
            Change::RemoveNamespace { .. } => 3,
            Change::CreateNamespace { .. } => 4,
            Change::CreateBridge { .. } => 5,
            // After the links: a key may name an interface
            // (net.ipv6.conf.eth1.*) the same apply creates.
            Change::SetSysctl { .. } => 7,
            Change::CreateVeth { .. } => 6,
            Change::SetLink { .. } => 7,
            Change::AddAddress { .. } => 7,
            Change::AddRoute { .. } => 8,
        }
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::CreateNamespace { node } => write!(f, "create namespace {node}"),
            Change::RemoveNamespace { node } => write!(f, "remove namespace {node}"),
            Change::SetSysctl {
                node,
                key,
                value,
                old,
            } => write!(f, "{node}: sysctl {key} = {value} (was {old:?})"),
            Change::CreateBridge { node, bridge, .. } => {
                write!(f, "{node}: create bridge {}", bridge.name)
            }
            Change::CreateVeth { a, b, .. } => write!(f, "create veth {a} <-> {b}"),
            Change::DeleteLink { node, name, .. } => write!(f, "{node}: delete link {name}"),
            Change::SetLink {
                node, name, set, ..
            } => write!(f, "{node}: set {name} {set}"),
            Change::AddAddress {
                node,
                device,
                address,
                ..
            } => write!(f, "{node}: add address {address} dev {device}"),
            Change::DeleteAddress {
                node,
                device,
                address,
                ..
            } => write!(f, "{node}: delete address {address} dev {device}"),
            Change::AddRoute { node, route, .. } => write!(f, "{node}: add route {route}"),
            Change::DeleteRoute { node, route, .. } => write!(f, "{node}: delete route {route}"),
        }
    }
}

/// The ordered changes an apply makes: deletions first, then namespaces,
/// bridges, veths, link attributes, addresses and sysctls, routes.
///
/// # Examples
///
/// ```
/// let plan = nstopo::Plan::default();
/// assert!(plan.is_empty());
/// assert_eq!(plan.to_string(), "nothing to do\n");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// The changes, in execution order.
    pub changes: Vec<Change>,
}

impl Plan {
    /// Whether there is nothing to do.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(nstopo::Plan::default().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.changes.is_empty() {
            return writeln!(f, "nothing to do");
        }
        for c in &self.changes {
            writeln!(f, "{c}")?;
        }
        Ok(())
    }
}

/// What a conflict is: a declared object exists but the topology does not
/// own it.
pub(crate) type Conflicts = Vec<String>;

/// Index allocation for new links of one node.
struct Indices(u32);

impl Indices {
    fn new(n: Option<&LiveNode>) -> Indices {
        Indices(
            n.map(|n| n.links.values().map(|l| l.index).max().unwrap_or(1))
                .unwrap_or(1)
                .max(1),
        )
    }
    fn next(&mut self) -> u32 {
        self.0 += 1;
        self.0
    }
}

const VETH_MTU: u32 = 1500;

fn v6_metric(r: &Route) -> u32 {
    match r.metric {
        Some(m) => m,
        None if r.is_ipv6() => 1024,
        None => 0,
    }
}

pub(crate) fn route_matches(want: &Route, have: &Route) -> bool {
    want.prefix() == have.prefix()
        && v6_metric(want) == v6_metric(have)
        && want.gateway == have.gateway
        && (want.device.is_none() || want.device == have.device)
}

/// The part of a declaration a diff covers when not all of it may differ:
/// the `dirty` nodes (whose declaration or live state changed, or that the
/// last plan named), and `near`, the dirty nodes with the other end of
/// every link of theirs (read for those links: indices, bridges).
///
/// A diff in a scope equals the whole diff when every node outside `dirty`
/// contributes nothing to the whole diff: then the changes it leaves out
/// are none. [`crate::Live`] keeps that true (see `Live::scope`).
#[derive(Debug, Default)]
pub(crate) struct Scope<'a> {
    pub(crate) dirty: HashSet<&'a str>,
    pub(crate) near: HashSet<&'a str>,
    /// The positions of the `near` nodes in the declaration, in order.
    nodes: Vec<usize>,
    /// The positions of the links that end in a dirty node, in order.
    links: Vec<usize>,
}

impl<'a> Scope<'a> {
    /// The scope of the `dirty` nodes of `topo`: `near` adds the other end
    /// of each of their links.
    pub(crate) fn new(topo: &'a Topology, dirty: HashSet<&'a str>) -> Scope<'a> {
        let mut near = dirty.clone();
        let mut links = Vec::new();
        // A few names are quicker to compare than to hash.
        let few: Vec<&str> = if dirty.len() <= 8 {
            dirty.iter().copied().collect()
        } else {
            Vec::new()
        };
        let is_dirty = |n: &str| {
            if few.is_empty() {
                dirty.contains(n)
            } else {
                few.contains(&n)
            }
        };
        if !dirty.is_empty() {
            for (i, link) in topo.links.iter().enumerate() {
                if is_dirty(&link.a.node) || is_dirty(&link.b.node) {
                    near.insert(&link.a.node);
                    near.insert(&link.b.node);
                    links.push(i);
                }
            }
        }
        let nodes = if near.is_empty() {
            Vec::new()
        } else {
            (0..topo.nodes.len())
                .filter(|&i| near.contains(topo.nodes[i].name.as_str()))
                .collect()
        };
        Scope {
            dirty,
            near,
            nodes,
            links,
        }
    }
}

/// Compares; `Err` lists the conflicts (declared objects the topology does
/// not own).
pub(crate) fn compute(topo: &Topology, live: &LiveState) -> std::result::Result<Plan, Conflicts> {
    compute_in(topo, live, None)
}

/// [`compute`], in a scope (`None`: everything). `live` must hold every
/// node of the scope's `near` that exists; others are not read.
pub(crate) fn compute_in(
    topo: &Topology,
    live: &LiveState,
    scope: Option<&Scope<'_>>,
) -> std::result::Result<Plan, Conflicts> {
    let dirty = |n: &str| scope.is_none_or(|s| s.dirty.contains(n));
    let mut changes = Vec::new();
    let mut conflicts = Vec::new();
    // Nodes in conflict: their links are not compared.
    let mut conflicted: HashSet<&str> = HashSet::new();
    let empty = LiveNode::default();
    let mut idx: BTreeMap<&str, Indices> = BTreeMap::new();
    // Bridge indices per node (live or new), for masters.
    let mut bridge_idx: BTreeMap<(&str, &str), u32> = BTreeMap::new();

    // The nodes and links compared, in declaration order.
    let nodes: Vec<&Node> = match scope {
        Some(s) => s.nodes.iter().map(|&i| &topo.nodes[i]).collect(),
        None => topo.nodes.iter().collect(),
    };
    let links: Vec<&Link> = match scope {
        Some(s) => s.links.iter().map(|&i| &topo.links[i]).collect(),
        None => topo.links.iter().collect(),
    };
    let declared: HashSet<&str> = nodes
        .iter()
        .map(|n| n.name.as_str())
        .filter(|n| dirty(n))
        .collect();
    for (name, n) in &live.nodes {
        if dirty(name) && n.owned && !declared.contains(name.as_str()) {
            changes.push(Change::RemoveNamespace { node: name.clone() });
        }
    }

    for &node in &nodes {
        let live_node = live.nodes.get(&node.name);
        let new_ns = live_node.is_none();
        if let Some(l) = live_node
            && !l.owned
            && !adoptable(l)
        {
            conflicts.push(format!("namespace {}", node.name));
            conflicted.insert(&node.name);
            continue;
        }
        let ln = live_node.unwrap_or(&empty);
        idx.insert(&node.name, Indices::new(live_node));
        if new_ns || !ln.owned {
            // Creating it writes the marker on lo (and brings lo up).
            changes.push(Change::CreateNamespace {
                node: node.name.clone(),
            });
        } else if let Some(lo) = ln.links.get("lo")
            && !lo.up
        {
            changes.push(Change::SetLink {
                node: node.name.clone(),
                name: "lo".into(),
                index: lo.index,
                set: LinkAttrs {
                    up: Some(true),
                    ..Default::default()
                },
                old: LinkAttrs {
                    up: Some(false),
                    ..Default::default()
                },
            });
        }
        for (k, v) in &node.sysctls {
            let have = ln.sysctls.get(k);
            if have != Some(v) {
                changes.push(Change::SetSysctl {
                    node: node.name.clone(),
                    key: k.clone(),
                    value: v.clone(),
                    old: have.cloned().unwrap_or_default(),
                });
            }
        }
        // lo addresses (the kernel's own are not the topology's).
        let lo_index = ln.links.get("lo").map(|l| l.index).unwrap_or(1);
        let lo_have: Vec<IfAddr> = ln
            .links
            .get("lo")
            .map(|l| {
                l.addresses
                    .iter()
                    .filter(|a| !(a.to_string() == "127.0.0.1/8" || a.to_string() == "::1/128"))
                    .copied()
                    .collect()
            })
            .unwrap_or_default();
        addresses(
            &mut changes,
            &node.name,
            "lo",
            lo_index,
            &node.loopback,
            &lo_have,
        );
        for b in &node.bridges {
            match ln.links.get(&b.name) {
                Some(l) if !l.owned || l.kind.as_deref() != Some("bridge") => {
                    conflicts.push(format!("link {}:{}", node.name, b.name));
                }
                Some(l) => {
                    bridge_idx.insert((&node.name, &b.name), l.index);
                    let set = LinkAttrs {
                        mtu: b.mtu.filter(|m| *m != l.mtu),
                        mac: b.mac.filter(|m| Some(*m) != l.mac),
                        up: (b.up != l.up).then_some(b.up),
                        master: None,
                    };
                    set_link(&mut changes, &node.name, &b.name, l, set);
                    addresses(
                        &mut changes,
                        &node.name,
                        &b.name,
                        l.index,
                        &b.addresses,
                        &l.addresses,
                    );
                }
                None => {
                    let index = idx
                        .get_mut(node.name.as_str())
                        .map(Indices::next)
                        .unwrap_or(0);
                    bridge_idx.insert((&node.name, &b.name), index);
                    changes.push(Change::CreateBridge {
                        node: node.name.clone(),
                        bridge: b.clone(),
                        index,
                    });
                    addresses(&mut changes, &node.name, &b.name, index, &b.addresses, &[]);
                }
            }
        }
    }

    // Links: declared ends by node, to find stray owned links.
    // (Only the dirty nodes' are looked for.)
    let mut declared_ifs: HashSet<(&str, &str)> = HashSet::new();
    for node in &nodes {
        if !dirty(&node.name) {
            continue;
        }
        declared_ifs.insert((&node.name, "lo"));
        for b in &node.bridges {
            declared_ifs.insert((&node.name, &b.name));
        }
    }
    for link in &links {
        for e in link.ends() {
            if dirty(&e.node) {
                declared_ifs.insert((&e.node, &e.name));
            }
        }
    }
    for &link in &links {
        let ends = link.ends();
        if ends.iter().any(|e| conflicted.contains(e.node.as_str())) {
            continue;
        }
        let have = |e: &Endpoint| -> Option<&LiveLink> {
            live.nodes.get(&e.node).and_then(|n| n.links.get(&e.name))
        };
        let (ha, hb) = (have(&link.a), have(&link.b));
        let mut bad = false;
        for (e, h) in [(&link.a, ha), (&link.b, hb)] {
            if let Some(h) = h
                && (!h.owned || h.kind.as_deref() != Some("veth"))
            {
                conflicts.push(format!("link {e}"));
                bad = true;
            }
        }
        if bad {
            continue;
        }
        match (ha, hb) {
            (Some(la), Some(lb))
                if la.peer_index == Some(lb.index) && lb.peer_index == Some(la.index) =>
            {
                for (e, l) in [(&link.a, la), (&link.b, lb)] {
                    let want_master = e.master.as_ref().map(|m| {
                        (
                            m.clone(),
                            bridge_idx.get(&(&*e.node, &**m)).copied().unwrap_or(0),
                        )
                    });
                    let set = LinkAttrs {
                        mtu: (e.mtu.unwrap_or(VETH_MTU) != l.mtu)
                            .then_some(e.mtu.unwrap_or(VETH_MTU)),
                        mac: e.mac.filter(|m| Some(*m) != l.mac),
                        up: (e.up != l.up).then_some(e.up),
                        master: (want_master.as_ref().map(|m| &m.0) != l.master.as_ref())
                            .then_some(want_master),
                    };
                    set_link(&mut changes, &e.node, &e.name, l, set);
                    addresses(
                        &mut changes,
                        &e.node,
                        &e.name,
                        l.index,
                        &e.addresses,
                        &l.addresses,
                    );
                }
            }
            _ => {
                for (e, h) in [(&link.a, ha), (&link.b, hb)] {
                    if let Some(h) = h {
                        changes.push(Change::DeleteLink {
                            node: e.node.clone(),
                            name: e.name.clone(),
                            index: h.index,
                        });
                    }
                }
                let a_index = idx
                    .get_mut(link.a.node.as_str())
                    .map(Indices::next)
                    .unwrap_or(0);
                let b_index = idx
                    .get_mut(link.b.node.as_str())
                    .map(Indices::next)
                    .unwrap_or(0);
                changes.push(Change::CreateVeth {
                    a: link.a.clone(),
                    a_index,
                    b: link.b.clone(),
                    b_index,
                });
                for (e, index, peer) in [(&link.a, a_index, false), (&link.b, b_index, true)] {
                    // End a is brought up by the creating request unless it
                    // has a master; the peer never is (see CreateVeth).
                    if e.master.is_some() || (peer && e.up) {
                        let master = e.master.as_ref().map(|m| {
                            let mi = bridge_idx.get(&(&*e.node, &**m)).copied().unwrap_or(0);
                            Some((m.clone(), mi))
                        });
                        changes.push(Change::SetLink {
                            node: e.node.clone(),
                            name: e.name.clone(),
                            index,
                            set: LinkAttrs {
                                master,
                                up: e.up.then_some(true),
                                ..Default::default()
                            },
                            old: LinkAttrs::default(),
                        });
                    }
                    addresses(&mut changes, &e.node, &e.name, index, &e.addresses, &[]);
                }
            }
        }
    }
    // Stray owned links in declared namespaces (a veth removed from the
    // declaration); its peer goes with it.
    let mut gone: HashSet<(String, u32)> = HashSet::new();
    for node in &nodes {
        if !dirty(&node.name) {
            continue;
        }
        let Some(ln) = live.nodes.get(&node.name) else {
            continue;
        };
        if conflicted.contains(node.name.as_str()) {
            continue;
        }
        for (name, l) in &ln.links {
            if l.owned && !declared_ifs.contains(&(node.name.as_str(), name.as_str())) {
                if gone.contains(&(node.name.clone(), l.index)) {
                    continue;
                }
                gone.insert((node.name.clone(), l.index));
                changes.push(Change::DeleteLink {
                    node: node.name.clone(),
                    name: name.clone(),
                    index: l.index,
                });
            }
        }
    }
    // Routes, for every declared node (new ones have none).
    for node in &nodes {
        if !dirty(&node.name) || conflicted.contains(node.name.as_str()) {
            continue;
        }
        let ln = live.nodes.get(&node.name).unwrap_or(&empty);
        let find_index = |dev: &str| -> Option<u32> {
            ln.links.get(dev).map(|l| l.index).or_else(|| {
                changes.iter().find_map(|c| match c {
                    Change::CreateVeth {
                        a,
                        a_index,
                        b,
                        b_index,
                        ..
                    } => {
                        if a.node == node.name && a.name == dev {
                            Some(*a_index)
                        } else if b.node == node.name && b.name == dev {
                            Some(*b_index)
                        } else {
                            None
                        }
                    }
                    Change::CreateBridge {
                        node: n,
                        bridge,
                        index,
                    } if *n == node.name && bridge.name == dev => Some(*index),
                    _ => None,
                })
            })
        };
        let mut adds = Vec::new();
        let mut dels = Vec::new();
        for want in &node.routes {
            if !ln.routes.iter().any(|h| route_matches(want, h)) {
                let oif = want.device.as_deref().and_then(find_index);
                adds.push(Change::AddRoute {
                    node: node.name.clone(),
                    route: want.clone(),
                    oif,
                });
            }
        }
        for have in &ln.routes {
            if !node.routes.iter().any(|w| route_matches(w, have)) {
                let oif = have
                    .device
                    .as_deref()
                    .and_then(|d| ln.links.get(d).map(|l| l.index));
                dels.push(Change::DeleteRoute {
                    node: node.name.clone(),
                    route: have.clone(),
                    oif,
                });
            }
        }
        changes.extend(dels);
        changes.extend(adds);
    }
    if !conflicts.is_empty() {
        return Err(conflicts);
    }
    changes.sort_by_key(Change::phase);
    Ok(Plan { changes })
}

fn set_link(changes: &mut Vec<Change>, node: &str, name: &str, l: &LiveLink, set: LinkAttrs) {
    if set == LinkAttrs::default() {
        return;
    }
    let old = LinkAttrs {
        mtu: set.mtu.map(|_| l.mtu),
        mac: set.mac.and(l.mac),
        up: set.up.map(|_| l.up),
        master: set.master.as_ref().map(|_| None),
    };
    changes.push(Change::SetLink {
        node: node.into(),
        name: name.into(),
        index: l.index,
        set,
        old,
    });
}

fn addresses(
    changes: &mut Vec<Change>,
    node: &str,
    device: &str,
    index: u32,
    want: &[IfAddr],
    have: &[IfAddr],
) {
    for a in have {
        if !want.contains(a) {
            changes.push(Change::DeleteAddress {
                node: node.into(),
                device: device.into(),
                index,
                address: *a,
            });
        }
    }
    for a in want {
        if !have.contains(a) {
            changes.push(Change::AddAddress {
                node: node.into(),
                device: device.into(),
                index,
                address: *a,
            });
        }
    }
}
