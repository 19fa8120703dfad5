//! The typed model of a topology and its builder API.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::Serialize;

use crate::validate;
use crate::{Error, Result};

/// An address on an interface with its prefix length, like `10.0.0.1/24` or
/// `fd00::1/64`.
///
/// # Examples
///
/// ```
/// let a: nstopo::IfAddr = "10.0.0.1/24".parse().unwrap();
/// assert_eq!(a.prefix_len, 24);
/// assert_eq!(a.to_string(), "10.0.0.1/24");
/// assert!("10.0.0.1/33".parse::<nstopo::IfAddr>().is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IfAddr {
    /// The address.
    pub addr: IpAddr,
    /// The prefix length (0..=32 for IPv4, 0..=128 for IPv6).
    pub prefix_len: u8,
}

impl IfAddr {
    /// An address with a prefix length; `None` if the length is too long
    /// for the family.
    ///
    /// # Examples
    ///
    /// ```
    /// let a = nstopo::IfAddr::new("10.0.0.1".parse().unwrap(), 24).unwrap();
    /// assert_eq!(a.to_string(), "10.0.0.1/24");
    /// ```
    pub fn new(addr: IpAddr, prefix_len: u8) -> Option<IfAddr> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        (prefix_len <= max).then_some(IfAddr { addr, prefix_len })
    }

    /// The network this address is in (host bits cleared).
    ///
    /// # Examples
    ///
    /// ```
    /// let a: nstopo::IfAddr = "10.0.0.9/24".parse().unwrap();
    /// assert_eq!(a.network().to_string(), "10.0.0.0/24");
    /// ```
    pub fn network(&self) -> IfAddr {
        let addr = match self.addr {
            IpAddr::V4(v4) => {
                let bits = u32::from(v4);
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix_len))
                    .unwrap_or(0);
                IpAddr::V4((bits & mask).into())
            }
            IpAddr::V6(v6) => {
                let bits = u128::from(v6);
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix_len))
                    .unwrap_or(0);
                IpAddr::V6((bits & mask).into())
            }
        };
        IfAddr {
            addr,
            prefix_len: self.prefix_len,
        }
    }
}

impl fmt::Display for IfAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

impl FromStr for IfAddr {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<IfAddr, String> {
        let (a, p) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?} has no prefix length (write ADDRESS/LEN)"))?;
        let addr: IpAddr = a
            .parse()
            .map_err(|_| format!("{a:?} is not an IPv4 or IPv6 address"))?;
        let prefix_len: u8 = p
            .parse()
            .map_err(|_| format!("{p:?} is not a prefix length"))?;
        IfAddr::new(addr, prefix_len)
            .ok_or_else(|| format!("prefix length {prefix_len} is too long for {addr}"))
    }
}

impl Serialize for IfAddr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A link-layer (MAC) address, written `02:00:00:00:00:01`.
///
/// # Examples
///
/// ```
/// let m: nstopo::MacAddr = "02:00:00:00:00:01".parse().unwrap();
/// assert_eq!(m.0[5], 1);
/// assert_eq!(m.to_string(), "02:00:00:00:00:01");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl FromStr for MacAddr {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<MacAddr, String> {
        let bad = || format!("{s:?} is not a MAC address (write 02:00:00:00:00:01)");
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for b in &mut out {
            let p = parts.next().ok_or_else(bad)?;
            if p.len() != 2 {
                return Err(bad());
            }
            *b = u8::from_str_radix(p, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        if out[0] & 1 == 1 {
            return Err(format!("{s:?} is a multicast address"));
        }
        Ok(MacAddr(out))
    }
}

impl Serialize for MacAddr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A route's destination: the default route, or a prefix.
///
/// # Examples
///
/// ```
/// use nstopo::Destination;
/// assert_eq!("default".parse::<Destination>().unwrap(), Destination::Default);
/// assert!(matches!("10.1.0.0/16".parse::<Destination>().unwrap(), Destination::Prefix(_)));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Destination {
    /// The default route (`0.0.0.0/0`, or `::/0` with an IPv6 gateway).
    Default,
    /// A prefix (host bits must be zero).
    Prefix(IfAddr),
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Destination::Default => f.write_str("default"),
            Destination::Prefix(p) => p.fmt(f),
        }
    }
}

impl FromStr for Destination {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Destination, String> {
        if s == "default" {
            return Ok(Destination::Default);
        }
        // A bare address is a host route.
        if !s.contains('/')
            && let Ok(a) = s.parse::<IpAddr>()
        {
            let len = if a.is_ipv4() { 32 } else { 128 };
            return Ok(Destination::Prefix(IfAddr {
                addr: a,
                prefix_len: len,
            }));
        }
        s.parse().map(Destination::Prefix)
    }
}

impl Serialize for Destination {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A route of a node (`ip route add DESTINATION via GATEWAY dev DEVICE
/// metric METRIC`), in the node's main table.
///
/// # Examples
///
/// ```
/// use nstopo::Route;
/// let r = Route::default_via("10.0.0.1".parse().unwrap()).metric(10);
/// assert_eq!(r.to_string(), "default via 10.0.0.1 metric 10");
/// let r = Route::to("10.9.0.0/16".parse().unwrap()).device("eth1");
/// assert_eq!(r.to_string(), "10.9.0.0/16 dev eth1");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[non_exhaustive]
pub struct Route {
    /// Where the route leads.
    pub destination: Destination,
    /// The next hop, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    /// The output interface, if given (an interface of the same node).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// The route's metric (priority); the kernel's default (0) if not given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metric: Option<u32>,
}

impl Route {
    /// A route to `destination` (add a gateway or a device).
    ///
    /// # Examples
    ///
    /// ```
    /// let r = nstopo::Route::to("10.9.0.0/16".parse().unwrap()).via("10.0.0.1".parse().unwrap());
    /// assert_eq!(r.to_string(), "10.9.0.0/16 via 10.0.0.1");
    /// ```
    pub fn to(destination: Destination) -> Route {
        Route {
            destination,
            gateway: None,
            device: None,
            metric: None,
        }
    }

    /// The default route through `gateway`.
    ///
    /// # Examples
    ///
    /// ```
    /// let r = nstopo::Route::default_via("fd00::1".parse().unwrap());
    /// assert!(r.is_ipv6());
    /// ```
    pub fn default_via(gateway: IpAddr) -> Route {
        Route::to(Destination::Default).via(gateway)
    }

    /// Sets the next hop.
    ///
    /// # Examples
    ///
    /// ```
    /// let r = nstopo::Route::to(nstopo::Destination::Default).via("10.0.0.1".parse().unwrap());
    /// assert!(r.gateway.is_some());
    /// ```
    pub fn via(mut self, gateway: IpAddr) -> Route {
        self.gateway = Some(gateway);
        self
    }

    /// Sets the output interface.
    ///
    /// # Examples
    ///
    /// ```
    /// let r = nstopo::Route::to("10.9.0.0/16".parse().unwrap()).device("eth1");
    /// assert_eq!(r.device.as_deref(), Some("eth1"));
    /// ```
    pub fn device(mut self, device: impl Into<String>) -> Route {
        self.device = Some(device.into());
        self
    }

    /// Sets the metric.
    ///
    /// # Examples
    ///
    /// ```
    /// let r = nstopo::Route::default_via("10.0.0.1".parse().unwrap()).metric(100);
    /// assert_eq!(r.metric, Some(100));
    /// ```
    pub fn metric(mut self, metric: u32) -> Route {
        self.metric = Some(metric);
        self
    }

    /// Whether the route is IPv6 (from its destination, else its gateway).
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(!nstopo::Route::default_via("10.0.0.1".parse().unwrap()).is_ipv6());
    /// ```
    pub fn is_ipv6(&self) -> bool {
        match self.destination {
            Destination::Prefix(p) => p.addr.is_ipv6(),
            Destination::Default => self.gateway.is_some_and(|g| g.is_ipv6()),
        }
    }

    /// The destination as a prefix (the default route is `0.0.0.0/0` or
    /// `::/0`).
    ///
    /// # Examples
    ///
    /// ```
    /// let r = nstopo::Route::default_via("10.0.0.1".parse().unwrap());
    /// assert_eq!(r.prefix().to_string(), "0.0.0.0/0");
    /// ```
    pub fn prefix(&self) -> IfAddr {
        match self.destination {
            Destination::Prefix(p) => p,
            Destination::Default if self.is_ipv6() => IfAddr {
                addr: IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
                prefix_len: 0,
            },
            Destination::Default => IfAddr {
                addr: IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
                prefix_len: 0,
            },
        }
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.destination)?;
        if let Some(g) = self.gateway {
            write!(f, " via {g}")?;
        }
        if let Some(d) = &self.device {
            write!(f, " dev {d}")?;
        }
        if let Some(m) = self.metric {
            write!(f, " metric {m}")?;
        }
        Ok(())
    }
}

fn is_true(b: &bool) -> bool {
    *b
}

/// One end of a veth pair: an interface of a node.
///
/// # Examples
///
/// ```
/// use nstopo::Endpoint;
/// let e = Endpoint::new("r1", "eth1").address("10.0.0.1/31".parse().unwrap()).mtu(9000);
/// assert_eq!(e.to_string(), "r1:eth1");
/// assert!(e.up);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Endpoint {
    /// The node (namespace) this end lives in.
    pub node: String,
    /// The interface's name in that namespace.
    pub name: String,
    /// The MTU; the kernel's default (1500) if not given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// The MAC address; a random one if not given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac: Option<MacAddr>,
    /// The addresses (IPv4 and IPv6).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<IfAddr>,
    /// Whether the interface is up (default: up).
    #[serde(skip_serializing_if = "is_true")]
    pub up: bool,
    /// The bridge of the same node this end is a port of.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub master: Option<String>,
}

impl Endpoint {
    /// The interface `name` of node `node`, up, with nothing else set.
    ///
    /// # Examples
    ///
    /// ```
    /// let e = nstopo::Endpoint::new("r1", "eth1");
    /// assert!(e.addresses.is_empty());
    /// ```
    pub fn new(node: impl Into<String>, name: impl Into<String>) -> Endpoint {
        Endpoint {
            node: node.into(),
            name: name.into(),
            mtu: None,
            mac: None,
            addresses: Vec::new(),
            up: true,
            master: None,
        }
    }

    /// Sets the MTU.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(nstopo::Endpoint::new("r1", "eth1").mtu(9000).mtu, Some(9000));
    /// ```
    pub fn mtu(mut self, mtu: u32) -> Endpoint {
        self.mtu = Some(mtu);
        self
    }

    /// Sets the MAC address.
    ///
    /// # Examples
    ///
    /// ```
    /// let e = nstopo::Endpoint::new("r1", "eth1").mac("02:00:00:00:00:01".parse().unwrap());
    /// assert!(e.mac.is_some());
    /// ```
    pub fn mac(mut self, mac: MacAddr) -> Endpoint {
        self.mac = Some(mac);
        self
    }

    /// Adds an address.
    ///
    /// # Examples
    ///
    /// ```
    /// let e = nstopo::Endpoint::new("r1", "eth1").address("fd00::1/64".parse().unwrap());
    /// assert_eq!(e.addresses.len(), 1);
    /// ```
    pub fn address(mut self, addr: IfAddr) -> Endpoint {
        self.addresses.push(addr);
        self
    }

    /// Sets whether the interface is up.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(!nstopo::Endpoint::new("r1", "eth1").up(false).up);
    /// ```
    pub fn up(mut self, up: bool) -> Endpoint {
        self.up = up;
        self
    }

    /// Makes the interface a port of the node's bridge `bridge`.
    ///
    /// # Examples
    ///
    /// ```
    /// let e = nstopo::Endpoint::new("sw", "p1").master("br0");
    /// assert_eq!(e.master.as_deref(), Some("br0"));
    /// ```
    pub fn master(mut self, bridge: impl Into<String>) -> Endpoint {
        self.master = Some(bridge.into());
        self
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.node, self.name)
    }
}

/// A veth pair joining two node interfaces (`a:eth1 <-> b:eth1`).
///
/// # Examples
///
/// ```
/// use nstopo::{Endpoint, Link};
/// let l = Link::new(Endpoint::new("r1", "eth1"), Endpoint::new("r2", "eth1"));
/// assert_eq!(l.to_string(), "r1:eth1 <-> r2:eth1");
/// let l: Link = "r1:eth2 <-> r3:eth1".parse().unwrap();
/// assert_eq!(l.b.node, "r3");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Link {
    /// One end (the veth is created from this end's namespace).
    pub a: Endpoint,
    /// The other end (born directly in its namespace).
    pub b: Endpoint,
}

impl Link {
    /// A veth pair between `a` and `b`.
    ///
    /// # Examples
    ///
    /// ```
    /// use nstopo::{Endpoint, Link};
    /// let l = Link::new(Endpoint::new("r1", "eth1"), Endpoint::new("r2", "eth1"));
    /// assert_eq!(l.a.node, "r1");
    /// ```
    pub fn new(a: Endpoint, b: Endpoint) -> Link {
        Link { a, b }
    }

    /// Both ends.
    ///
    /// # Examples
    ///
    /// ```
    /// let l: nstopo::Link = "r1:eth1 <-> r2:eth1".parse().unwrap();
    /// assert_eq!(l.ends().len(), 2);
    /// ```
    pub fn ends(&self) -> [&Endpoint; 2] {
        [&self.a, &self.b]
    }
}

impl fmt::Display for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} <-> {}", self.a, self.b)
    }
}

/// Splits `node:ifname` at its last `:` (interface names cannot hold one).
pub(crate) fn split_endpoint(s: &str) -> std::result::Result<(&str, &str), String> {
    let s = s.trim();
    s.rsplit_once(':')
        .ok_or_else(|| format!("{s:?} is not NODE:INTERFACE"))
}

impl FromStr for Link {
    type Err = String;

    /// Parses the compact form `a:eth1 <-> b:eth1` (`--` is accepted for
    /// `<->`).
    fn from_str(s: &str) -> std::result::Result<Link, String> {
        let (a, b) = s
            .split_once("<->")
            .or_else(|| s.split_once("--"))
            .ok_or_else(|| format!("{s:?} is not NODE:IF <-> NODE:IF"))?;
        let (an, ai) = split_endpoint(a)?;
        let (bn, bi) = split_endpoint(b)?;
        Ok(Link::new(Endpoint::new(an, ai), Endpoint::new(bn, bi)))
    }
}

/// A bridge inside a node; its ports are the veth ends of that node whose
/// `master` names it.
///
/// # Examples
///
/// ```
/// let b = nstopo::Bridge::new("br0").address("10.1.0.1/24".parse().unwrap());
/// assert_eq!(b.name, "br0");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Bridge {
    /// The bridge's interface name.
    pub name: String,
    /// The MTU, if set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// The MAC address, if set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac: Option<MacAddr>,
    /// The bridge's own addresses.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<IfAddr>,
    /// Whether the bridge is up (default: up).
    #[serde(skip_serializing_if = "is_true")]
    pub up: bool,
}

impl Bridge {
    /// A bridge named `name`, up.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(nstopo::Bridge::new("br0").up);
    /// ```
    pub fn new(name: impl Into<String>) -> Bridge {
        Bridge {
            name: name.into(),
            mtu: None,
            mac: None,
            addresses: Vec::new(),
            up: true,
        }
    }

    /// Adds an address.
    ///
    /// # Examples
    ///
    /// ```
    /// let b = nstopo::Bridge::new("br0").address("10.1.0.1/24".parse().unwrap());
    /// assert_eq!(b.addresses.len(), 1);
    /// ```
    pub fn address(mut self, addr: IfAddr) -> Bridge {
        self.addresses.push(addr);
        self
    }

    /// Sets the MTU.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(nstopo::Bridge::new("br0").mtu(9000).mtu, Some(9000));
    /// ```
    pub fn mtu(mut self, mtu: u32) -> Bridge {
        self.mtu = Some(mtu);
        self
    }

    /// Sets the MAC address.
    ///
    /// # Examples
    ///
    /// ```
    /// let b = nstopo::Bridge::new("br0").mac("02:00:00:00:00:09".parse().unwrap());
    /// assert!(b.mac.is_some());
    /// ```
    pub fn mac(mut self, mac: MacAddr) -> Bridge {
        self.mac = Some(mac);
        self
    }

    /// Sets whether the bridge is up.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(!nstopo::Bridge::new("br0").up(false).up);
    /// ```
    pub fn up(mut self, up: bool) -> Bridge {
        self.up = up;
        self
    }
}

/// A node: a network namespace (by name) with its sysctls, bridges,
/// loopback addresses and routes.
///
/// # Examples
///
/// ```
/// use nstopo::{Node, Route};
/// let n = Node::new("r1")
///     .sysctl("net.ipv4.ip_forward", "1")
///     .loopback("10.255.0.1/32".parse().unwrap())
///     .route(Route::default_via("10.0.0.0".parse().unwrap()));
/// assert_eq!(n.sysctls["net.ipv4.ip_forward"], "1");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Node {
    /// The namespace's name (in the run directory, like `ip netns`).
    pub name: String,
    /// Sysctls set inside the namespace (`net.*` keys only).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub sysctls: BTreeMap<String, String>,
    /// Bridges of the node.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub bridges: Vec<Bridge>,
    /// Addresses on `lo` (besides 127.0.0.1/8 and ::1/128).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub loopback: Vec<IfAddr>,
    /// Routes of the main table.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
}

impl Node {
    /// A node named `name` with nothing declared (its `lo` is brought up).
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(nstopo::Node::new("h1").name, "h1");
    /// ```
    pub fn new(name: impl Into<String>) -> Node {
        Node {
            name: name.into(),
            sysctls: BTreeMap::new(),
            bridges: Vec::new(),
            loopback: Vec::new(),
            routes: Vec::new(),
        }
    }

    /// Sets a sysctl, like `ip netns exec NODE sysctl -w KEY=VALUE`.
    ///
    /// # Examples
    ///
    /// ```
    /// let n = nstopo::Node::new("r1").sysctl("net.ipv6.conf.all.forwarding", "1");
    /// assert_eq!(n.sysctls.len(), 1);
    /// ```
    pub fn sysctl(mut self, key: impl Into<String>, value: impl Into<String>) -> Node {
        self.sysctls.insert(key.into(), value.into());
        self
    }

    /// Adds a bridge.
    ///
    /// # Examples
    ///
    /// ```
    /// let n = nstopo::Node::new("sw").bridge(nstopo::Bridge::new("br0"));
    /// assert_eq!(n.bridges.len(), 1);
    /// ```
    pub fn bridge(mut self, bridge: Bridge) -> Node {
        self.bridges.push(bridge);
        self
    }

    /// Adds an address on `lo`.
    ///
    /// # Examples
    ///
    /// ```
    /// let n = nstopo::Node::new("r1").loopback("10.255.0.1/32".parse().unwrap());
    /// assert_eq!(n.loopback.len(), 1);
    /// ```
    pub fn loopback(mut self, addr: IfAddr) -> Node {
        self.loopback.push(addr);
        self
    }

    /// Adds a route.
    ///
    /// # Examples
    ///
    /// ```
    /// let n = nstopo::Node::new("h1").route(nstopo::Route::default_via("10.0.0.1".parse().unwrap()));
    /// assert_eq!(n.routes.len(), 1);
    /// ```
    pub fn route(mut self, route: Route) -> Node {
        self.routes.push(route);
        self
    }
}

/// A declared topology: named nodes (network namespaces) joined by veth
/// links. Made by [`Topology::builder`] or read from YAML or JSON
/// ([`Topology::from_path`]); always valid once made (every problem is
/// reported when it is made, see [`Error::Invalid`]).
///
/// # Examples
///
/// ```
/// use nstopo::{Endpoint, Link, Node, Topology};
/// let topo = Topology::builder("pair")
///     .node(Node::new("a"))
///     .node(Node::new("b"))
///     .link(Link::new(
///         Endpoint::new("a", "eth0").address("10.0.0.1/24".parse().unwrap()),
///         Endpoint::new("b", "eth0").address("10.0.0.2/24".parse().unwrap()),
///     ))
///     .build()
///     .unwrap();
/// assert_eq!(topo.nodes.len(), 2);
///
/// let same = Topology::from_yaml_str(r#"
/// name: pair
/// nodes: [a, b]
/// links:
///   - a: {node: a, name: eth0, addresses: [10.0.0.1/24]}
///     b: {node: b, name: eth0, addresses: [10.0.0.2/24]}
/// "#)
/// .unwrap();
/// assert_eq!(same, topo);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Topology {
    /// The topology's name: the owner marker of everything it creates.
    pub name: String,
    /// The nodes, in declaration order.
    pub nodes: Vec<Node>,
    /// The links, in declaration order.
    pub links: Vec<Link>,
}

impl Topology {
    /// A builder for a topology named `name`.
    ///
    /// # Examples
    ///
    /// ```
    /// let t = nstopo::Topology::builder("empty").build().unwrap();
    /// assert!(t.nodes.is_empty());
    /// ```
    pub fn builder(name: impl Into<String>) -> Builder {
        Builder {
            topo: Topology {
                name: name.into(),
                nodes: Vec::new(),
                links: Vec::new(),
            },
        }
    }

    /// Reads a topology from a file: YAML, or JSON if the name ends in
    /// `.json`. Errors name the file, line and column.
    ///
    /// # Errors
    ///
    /// [`Error::Read`] if the file cannot be read, [`Error::Parse`] if it is
    /// malformed, [`Error::Invalid`] with every problem found.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let topo = nstopo::Topology::from_path("examples/ring.yaml")?;
    /// println!("{} nodes", topo.nodes.len());
    /// # Ok::<(), nstopo::Error>(())
    /// ```
    pub fn from_path(path: impl AsRef<std::path::Path>) -> Result<Topology> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.to_owned(),
            source,
        })?;
        let file = Some(path.display().to_string());
        if path.extension().is_some_and(|e| e == "json") {
            validate::from_json(&text, file)
        } else {
            validate::from_yaml(&text, file)
        }
    }

    /// Reads a topology from YAML text.
    ///
    /// # Errors
    ///
    /// [`Error::Parse`] (with line and column) if it is malformed,
    /// [`Error::Invalid`] with every problem found.
    ///
    /// # Examples
    ///
    /// ```
    /// let t = nstopo::Topology::from_yaml_str("name: t\nnodes: [a, b]\nlinks: ['a:e0 <-> b:e0']\n").unwrap();
    /// assert_eq!(t.links[0].to_string(), "a:e0 <-> b:e0");
    /// let err = nstopo::Topology::from_yaml_str("name: t\nnodes: [a\n").unwrap_err();
    /// assert!(matches!(err, nstopo::Error::Parse { .. }));
    /// ```
    pub fn from_yaml_str(text: &str) -> Result<Topology> {
        validate::from_yaml(text, None)
    }

    /// Reads a topology from JSON text (the same shape as the YAML form).
    ///
    /// # Errors
    ///
    /// [`Error::Parse`] (with line and column) if it is malformed,
    /// [`Error::Invalid`] with every problem found.
    ///
    /// # Examples
    ///
    /// ```
    /// let t = nstopo::Topology::from_json_str(r#"{"name": "t", "nodes": ["a"]}"#).unwrap();
    /// assert_eq!(t.nodes[0].name, "a");
    /// ```
    pub fn from_json_str(text: &str) -> Result<Topology> {
        validate::from_json(text, None)
    }

    /// The topology as JSON (the long form; reads back with
    /// [`Topology::from_json_str`]).
    ///
    /// # Examples
    ///
    /// ```
    /// let t = nstopo::Topology::from_yaml_str("name: t\nnodes: [a]\n").unwrap();
    /// assert_eq!(nstopo::Topology::from_json_str(&t.to_json()).unwrap(), t);
    /// ```
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// The node named `name`.
    ///
    /// # Examples
    ///
    /// ```
    /// let t = nstopo::Topology::from_yaml_str("name: t\nnodes: [a]\n").unwrap();
    /// assert!(t.node("a").is_some());
    /// ```
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// Checks the topology; every problem is listed.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] with every problem found (without locations).
    ///
    /// # Examples
    ///
    /// ```
    /// let t = nstopo::Topology::from_yaml_str("name: t\nnodes: [a]\n").unwrap();
    /// t.validate().unwrap();
    /// ```
    pub fn validate(&self) -> Result<()> {
        let problems = validate::check(self, &validate::NO_SPANS);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::Invalid {
                file: None,
                problems,
            })
        }
    }
}

/// Builds a [`Topology`]: made by [`Topology::builder`].
///
/// # Examples
///
/// ```
/// let t = nstopo::Topology::builder("t")
///     .node(nstopo::Node::new("a"))
///     .node(nstopo::Node::new("b"))
///     .link("a:eth0 <-> b:eth0".parse().unwrap())
///     .build()
///     .unwrap();
/// assert_eq!(t.links.len(), 1);
/// ```
#[derive(Clone, Debug)]
#[must_use = "a builder does nothing until .build() is called"]
pub struct Builder {
    topo: Topology,
}

impl Builder {
    /// Adds a node.
    ///
    /// # Examples
    ///
    /// ```
    /// let t = nstopo::Topology::builder("t").node(nstopo::Node::new("a")).build().unwrap();
    /// assert_eq!(t.nodes.len(), 1);
    /// ```
    pub fn node(mut self, node: Node) -> Builder {
        self.topo.nodes.push(node);
        self
    }

    /// Adds a link.
    ///
    /// # Examples
    ///
    /// ```
    /// let b = nstopo::Topology::builder("t").link("a:e0 <-> b:e0".parse().unwrap());
    /// assert!(b.build().is_err()); // nodes a and b are not declared
    /// ```
    pub fn link(mut self, link: Link) -> Builder {
        self.topo.links.push(link);
        self
    }

    /// Checks and returns the topology.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] with every problem found.
    ///
    /// # Examples
    ///
    /// ```
    /// let err = nstopo::Topology::builder("t")
    ///     .node(nstopo::Node::new("a"))
    ///     .node(nstopo::Node::new("a"))
    ///     .build()
    ///     .unwrap_err();
    /// assert!(err.to_string().contains("declared twice"));
    /// ```
    pub fn build(self) -> Result<Topology> {
        self.topo.validate()?;
        Ok(self.topo)
    }

    pub(crate) fn into_inner(self) -> Topology {
        self.topo
    }
}
