//! The live state of a topology, read from the kernel (never from a state
//! file): the namespaces it declares or owns, their links, addresses, routes
//! and the sysctls it declares.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use futures::TryStreamExt;
use netlink_packet_route::AddressFamily;
use netlink_packet_route::address::AddressAttribute;
use netlink_packet_route::link::{InfoKind, LinkAttribute, LinkFlags, LinkInfo};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteProtocol, RouteType};
use netns::{Handle, NsName, OpenMode, RunDir};
use serde::Serialize;

use crate::model::{Destination, IfAddr, MacAddr, Route, Topology};
use crate::{Error, Result};

/// The marker a topology writes on what it owns: the alias of the `lo` of
/// every namespace it creates.
///
/// # Examples
///
/// ```
/// assert_eq!(nstopo::marker("ring"), "nstopo:ring");
/// ```
pub fn marker(topology: &str) -> String {
    format!("nstopo:{topology}")
}

/// The link group (`IFLA_GROUP`) a topology gives every link it creates:
/// set in the creating request itself, so a link is never without it.
/// FNV-1a of [`marker`], never 0 (the default group).
///
/// # Examples
///
/// ```
/// assert_ne!(nstopo::link_group("ring"), 0);
/// assert_ne!(nstopo::link_group("ring"), nstopo::link_group("fabric"));
/// ```
pub fn link_group(topology: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in marker(topology).bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h.max(1)
}

/// A link as the kernel shows it.
///
/// # Examples
///
/// ```
/// # fn demo(s: &nstopo::LiveState) {
/// for (node, n) in &s.nodes {
///     for (name, l) in &n.links {
///         println!("{node}:{name} mtu {} up {}", l.mtu, l.up);
///     }
/// }
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct LiveLink {
    /// The interface index in its namespace.
    pub index: u32,
    /// The link kind (`veth`, `bridge`), `None` for `lo`.
    pub kind: Option<String>,
    /// Whether the topology owns it (its group is [`link_group`]).
    pub owned: bool,
    /// The MTU.
    pub mtu: u32,
    /// The MAC address.
    pub mac: Option<MacAddr>,
    /// Administratively up.
    pub up: bool,
    /// The bridge it is a port of.
    pub master: Option<String>,
    /// The peer's index (veth: in the peer's namespace).
    pub peer_index: Option<u32>,
    /// Its addresses (IPv6 link-local ones left out).
    pub addresses: Vec<IfAddr>,
}

/// A namespace as the kernel shows it.
///
/// # Examples
///
/// ```
/// # fn demo(s: &nstopo::LiveState) {
/// let owned = s.nodes.values().filter(|n| n.owned).count();
/// # }
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct LiveNode {
    /// Whether the topology owns the namespace (its `lo` carries the marker).
    pub owned: bool,
    /// Its links by name.
    pub links: BTreeMap<String, LiveLink>,
    /// Its routes in the main table that were not made by the kernel for an
    /// address.
    pub routes: Vec<Route>,
    /// The values of the sysctls the topology declares for it.
    pub sysctls: BTreeMap<String, String>,
}

/// The live state of a topology: each namespace it declares that exists,
/// and each other namespace of the run directory it owns.
///
/// # Examples
///
/// ```no_run
/// # async fn demo(topo: nstopo::Topology) -> nstopo::Result<()> {
/// let state = nstopo::read_state(&topo).await?;
/// println!("{}", serde_json::to_string(&state).unwrap());
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct LiveState {
    /// The topology's name.
    pub topology: String,
    /// Namespaces by name.
    pub nodes: BTreeMap<String, LiveNode>,
}

/// Open handles on the namespaces read, kept for the apply.
pub(crate) type Handles = HashMap<String, Handle>;

fn req_err(object: String, op: &'static str) -> impl FnOnce(rtnetlink::Error) -> Error {
    move |source| Error::Request {
        object,
        op,
        source: Box::new(source),
    }
}

/// Reads one namespace.
pub(crate) async fn read_node(
    h: &Handle,
    node: &str,
    topology: &str,
    sysctls: Vec<String>,
) -> Result<LiveNode> {
    let group = link_group(topology);
    let rt = h.rtnetlink();
    let mut links: BTreeMap<String, LiveLink> = BTreeMap::new();
    let mut names: HashMap<u32, String> = HashMap::new();
    let mut masters: Vec<(String, u32)> = Vec::new();
    let mut owned = false;
    let mut dump = rt.link().get().execute();
    while let Some(msg) = dump
        .try_next()
        .await
        .map_err(req_err(node.to_owned(), "dump links of"))?
    {
        let mut l = LiveLink {
            index: msg.header.index,
            kind: None,
            owned: false,
            mtu: 0,
            mac: None,
            up: msg.header.flags.contains(LinkFlags::Up),
            master: None,
            peer_index: None,
            addresses: Vec::new(),
        };
        let mut name = String::new();
        let mut alias = None;
        let mut controller = None;
        for a in msg.attributes {
            match a {
                LinkAttribute::IfName(n) => name = n,
                LinkAttribute::IfAlias(s) => alias = Some(s),
                LinkAttribute::Mtu(m) => l.mtu = m,
                LinkAttribute::Group(g) => l.owned = g == group,
                LinkAttribute::Link(p) => l.peer_index = Some(p),
                LinkAttribute::Controller(m) => controller = Some(m),
                LinkAttribute::Address(mac) if mac.len() == 6 => {
                    let mut b = [0u8; 6];
                    b.copy_from_slice(&mac);
                    l.mac = Some(MacAddr(b));
                }
                LinkAttribute::LinkInfo(infos) => {
                    for i in infos {
                        if let LinkInfo::Kind(k) = i {
                            l.kind = Some(match k {
                                InfoKind::Veth => "veth".into(),
                                InfoKind::Bridge => "bridge".into(),
                                other => other.to_string(),
                            });
                        }
                    }
                }
                _ => {}
            }
        }
        if name == "lo" {
            owned = alias.as_deref() == Some(marker(topology).as_str());
            l.mac = None;
        }
        if let Some(m) = controller {
            masters.push((name.clone(), m));
        }
        names.insert(l.index, name.clone());
        links.insert(name, l);
    }
    for (name, m) in masters {
        let master = names.get(&m).cloned();
        if let Some(l) = links.get_mut(&name) {
            l.master = master;
        }
    }

    let mut dump = rt.address().get().execute();
    while let Some(msg) = dump
        .try_next()
        .await
        .map_err(req_err(node.to_owned(), "dump addresses of"))?
    {
        let Some(name) = names.get(&msg.header.index) else {
            continue;
        };
        let addr = msg.attributes.iter().find_map(|a| match a {
            AddressAttribute::Local(ip) => Some(*ip),
            _ => None,
        });
        let addr = addr.or_else(|| {
            msg.attributes.iter().find_map(|a| match a {
                AddressAttribute::Address(ip) => Some(*ip),
                _ => None,
            })
        });
        let Some(addr) = addr else { continue };
        if let IpAddr::V6(v6) = addr
            && (v6.segments()[0] & 0xffc0) == 0xfe80
        {
            continue;
        }
        if let Some(l) = links.get_mut(name) {
            l.addresses.push(IfAddr {
                addr,
                prefix_len: msg.header.prefix_len,
            });
        }
    }
    for l in links.values_mut() {
        l.addresses.sort();
    }

    let mut routes = Vec::new();
    // One dump of every family (AF_UNSPEC): IPv4 and IPv6 together.
    {
        let mut msg = rtnetlink::RouteMessageBuilder::<IpAddr>::new().build();
        msg.header.address_family = AddressFamily::Unspec;
        let mut dump = rt.route().get(msg).execute();
        while let Some(r) = dump
            .try_next()
            .await
            .map_err(req_err(node.to_owned(), "dump routes of"))?
        {
            if r.header.protocol == RouteProtocol::Kernel
                || r.header.kind != RouteType::Unicast
                || r.header.table != 254
            {
                continue;
            }
            let mut dst = None;
            let mut gateway = None;
            let mut device = None;
            let mut metric = None;
            let mut table = 254;
            for a in &r.attributes {
                match a {
                    RouteAttribute::Destination(d) => dst = route_addr(d),
                    RouteAttribute::Gateway(g) => gateway = route_addr(g),
                    RouteAttribute::Oif(i) => device = names.get(i).cloned(),
                    RouteAttribute::Priority(p) => metric = Some(*p),
                    RouteAttribute::Table(t) => table = *t,
                    _ => {}
                }
            }
            if table != 254 {
                continue;
            }
            let v6 = r.header.address_family == AddressFamily::Inet6;
            if !v6 && r.header.address_family != AddressFamily::Inet {
                continue;
            }
            let prefix_len = r.header.destination_prefix_length;
            let destination = match dst {
                Some(addr) => Destination::Prefix(IfAddr { addr, prefix_len }),
                None if prefix_len == 0 => Destination::Default,
                None => continue,
            };
            // An IPv6 default route without a gateway would read as IPv4.
            if v6 && destination == Destination::Default && gateway.is_none() {
                continue;
            }
            routes.push(Route {
                destination,
                gateway,
                device,
                metric: metric.filter(|m| *m != 0),
            });
        }
    }

    let mut values = BTreeMap::new();
    if !sysctls.is_empty() {
        let read = netns::nsfs::Executor::global()
            .map_err(|e| Error::Sysctl {
                node: node.to_owned(),
                key: String::new(),
                source: std::io::Error::other(e),
            })?
            .run_in(h.netns(), move || {
                sysctls
                    .into_iter()
                    .map(|k| {
                        let v = std::fs::read_to_string(sysctl_path(&k));
                        (k, v)
                    })
                    .collect::<Vec<_>>()
            })
            .await
            .map_err(|e| Error::Sysctl {
                node: node.to_owned(),
                key: String::new(),
                source: std::io::Error::other(e),
            })?;
        for (k, v) in read {
            match v {
                Ok(v) => {
                    values.insert(k, v.trim().to_owned());
                }
                Err(source) => {
                    return Err(Error::Sysctl {
                        node: node.to_owned(),
                        key: k,
                        source,
                    });
                }
            }
        }
    }
    Ok(LiveNode {
        owned,
        links,
        routes,
        sysctls: values,
    })
}

pub(crate) fn sysctl_path(key: &str) -> String {
    format!("/proc/sys/{}", key.replace('.', "/"))
}

fn route_addr(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

/// Whether a namespace without the marker may be taken over: only `lo`,
/// down, no address or route (a namespace whose creation was interrupted
/// before its marker was written, or one nobody configured).
pub(crate) fn adoptable(n: &LiveNode) -> bool {
    n.links.len() == 1
        && n.links
            .get("lo")
            .is_some_and(|l| !l.up && l.addresses.is_empty())
        && n.routes.is_empty()
}

/// Reads the live state, keeping the handles opened (bounded concurrency).
pub(crate) async fn read(
    topo: &Topology,
    run_dir: &RunDir,
    concurrency: usize,
) -> Result<(LiveState, Handles)> {
    // Declared namespaces, and the other namespaces of the run directory
    // (an owned one no longer declared is to be removed).
    let mut names: Vec<(String, Vec<String>)> = topo
        .nodes
        .iter()
        .map(|n| (n.name.clone(), n.sysctls.keys().cloned().collect()))
        .collect();
    let declared: std::collections::HashSet<&str> =
        topo.nodes.iter().map(|n| n.name.as_str()).collect();
    let entries = run_dir.list().map_err(|source| Error::Namespace {
        node: run_dir.path().display().to_string(),
        op: "list",
        source: Box::new(netns::Error::Namespace(source)),
    })?;
    let mut existing = std::collections::HashSet::new();
    for e in entries {
        let name = e.name.to_string();
        if !declared.contains(name.as_str()) {
            names.push((name.clone(), Vec::new()));
        }
        existing.insert(name);
    }
    let results: Vec<Result<Option<(String, LiveNode, Handle)>>> = crate::apply::bounded(
        names
            .into_iter()
            .map(|(name, sysctls)| {
                let run_dir = run_dir.clone();
                let present = existing.contains(&name);
                async move {
                    if !present {
                        return Ok(None);
                    }
                    let Ok(ns) = NsName::new(name.clone()) else {
                        return Ok(None);
                    };
                    let h = match Handle::builder(ns)
                        .run_dir(run_dir)
                        .mode(OpenMode::OpenOnly)
                        .open()
                        .await
                    {
                        Ok(h) => h,
                        // Removed meanwhile, or not a namespace: not ours.
                        Err(_) => return Ok(None),
                    };
                    let node = read_node(&h, &name, &topo.name, sysctls).await?;
                    Ok(Some((name, node, h)))
                }
            })
            .collect(),
        concurrency,
    )
    .await;
    let mut state = LiveState {
        topology: topo.name.clone(),
        nodes: BTreeMap::new(),
    };
    let mut handles = Handles::new();
    for r in results {
        if let Some((name, node, h)) = r? {
            if declared.contains(name.as_str()) || node.owned {
                state.nodes.insert(name.clone(), node);
                handles.insert(name, h);
            } else {
                h.close().await;
            }
        }
    }
    Ok((state, handles))
}

/// Reads the live state of a topology from the kernel: every namespace it
/// declares that exists, and every namespace of the default run directory
/// it owns (for drawing, or to see what [`diff`](crate::diff) compares).
///
/// # Cancel safety
///
/// Cancel safe: it only reads.
///
/// # Errors
///
/// [`Error::Request`] if a dump fails, [`Error::Sysctl`] if a declared
/// sysctl cannot be read.
///
/// # Examples
///
/// ```no_run
/// # async fn demo(topo: nstopo::Topology) -> nstopo::Result<()> {
/// let state = nstopo::read_state(&topo).await?;
/// for (name, node) in &state.nodes {
///     println!("{name}: {} links", node.links.len());
/// }
/// # Ok(()) }
/// ```
pub async fn read_state(topo: &Topology) -> Result<LiveState> {
    read_state_with(topo, crate::Options::default()).await
}

/// [`read_state`] with options: the run directory and the number of
/// namespaces read at once ([`Options::concurrency`](crate::Options::concurrency)).
///
/// # Cancel safety
///
/// Cancel safe: it only reads.
///
/// # Errors
///
/// As [`read_state`].
///
/// # Examples
///
/// ```no_run
/// # async fn demo(topo: nstopo::Topology) -> nstopo::Result<()> {
/// let opts = nstopo::Options::default().run_dir(netns::RunDir::new("/run/netns"));
/// let state = nstopo::read_state_with(&topo, opts).await?;
/// # Ok(()) }
/// ```
pub async fn read_state_with(topo: &Topology, options: crate::Options) -> Result<LiveState> {
    let (run_dir, concurrency) = options.read_params();
    let (state, handles) = read(topo, &run_dir, concurrency).await?;
    futures::future::join_all(handles.into_values().map(Handle::close)).await;
    Ok(state)
}
