//! The state model: links, addresses and routes of one namespace, and how
//! rtnetlink messages change it.
//!
//! Sans-IO: no sockets, no tokio, no clock. [`NsState::apply`] takes one
//! rtnetlink message (a dump entry or a multicast event) and returns the typed
//! changes it made; [`NsState::diff`] turns two states into the changes that
//! lead from one to the other (used after a resync).

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{LinkAttribute, LinkInfo, LinkMessage};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteMessage};

/// `IFF_UP`: the administrative up flag of a link.
///
/// # Examples
///
/// ```no_run
/// # fn demo(link: &nsdb::Link) {
/// let up = link.flags & nsdb::IFF_UP != 0;
/// # }
/// ```
pub const IFF_UP: u32 = libc_iff::UP;
/// `AF_BRIDGE`.
const AF_BRIDGE: u8 = 7;
/// `NLM_F_REPLACE`, set on a route event that replaced an existing route.
pub(crate) const NLM_F_REPLACE: u16 = 0x100;

mod libc_iff {
    pub(super) const UP: u32 = 0x1;
}

/// A network interface, as the view knows it.
///
/// Statistics and other counters are left out on purpose: they change all the
/// time and would turn every packet into a change.
///
/// # Examples
///
/// ```no_run
/// # async fn demo(view: nsdb::View) -> nsdb::Result<()> {
/// let snap = view.snapshot();
/// let lo = snap.link(&nsdb::Namespace::Host, "lo").expect("lo exists");
/// println!("{} index {} mtu {:?} up {}", lo.name, lo.index, lo.mtu, lo.is_up());
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Link {
    /// Interface index (`ifindex`), unique inside its namespace.
    pub index: u32,
    /// Interface name (`IFLA_IFNAME`).
    pub name: String,
    /// Link kind (`IFLA_INFO_KIND`: `veth`, `bridge`, `ifb`...), if any.
    pub kind: Option<String>,
    /// `IFF_*` flags (`IFF_UP` = 0x1, `IFF_RUNNING` = 0x40, ...).
    pub flags: u32,
    /// Operational state (`IFLA_OPERSTATE`: `Up`, `Down`, `Unknown`, ...).
    pub oper_state: Option<String>,
    /// MTU (`IFLA_MTU`).
    pub mtu: Option<u32>,
    /// Hardware address (`IFLA_ADDRESS`).
    pub address: Option<Vec<u8>>,
    /// Index of the controller (bridge, bond) this link is enslaved to
    /// (`IFLA_MASTER`).
    pub master: Option<u32>,
    /// Index of the link this one is tied to (`IFLA_LINK`): for a veth, the
    /// peer's index, in the namespace named by `link_netnsid` when present.
    pub link: Option<u32>,
    /// The namespace id (`IFLA_LINK_NETNSID`), local to this namespace, of the
    /// namespace `link` lives in. See [`crate::NsView::peer`] to get a name.
    pub link_netnsid: Option<i32>,
    /// The link group (`IFLA_GROUP`; 0 is the default group).
    pub group: Option<u32>,
    /// The alias (`IFLA_IFALIAS`), if set.
    pub alias: Option<String>,
}

impl Link {
    /// Whether the link is administratively up (`IFF_UP`).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn demo(link: &nsdb::Link) {
    /// if link.is_up() { println!("{} is up", link.name); }
    /// # }
    /// ```
    pub fn is_up(&self) -> bool {
        self.flags & IFF_UP != 0
    }

    /// Builds a link from an `RTM_NEWLINK` message.
    ///
    /// # Examples
    ///
    /// ```
    /// use netlink_packet_route::link::{LinkAttribute, LinkMessage};
    /// let mut msg = LinkMessage::default();
    /// msg.header.index = 3;
    /// msg.attributes.push(LinkAttribute::IfName("v0".into()));
    /// let link = nsdb::Link::from_message(&msg);
    /// assert_eq!((link.index, link.name.as_str()), (3, "v0"));
    /// ```
    pub fn from_message(msg: &LinkMessage) -> Link {
        let mut link = Link {
            index: msg.header.index,
            name: String::new(),
            kind: None,
            flags: msg.header.flags.bits(),
            oper_state: None,
            mtu: None,
            address: None,
            master: None,
            link: None,
            link_netnsid: None,
            group: None,
            alias: None,
        };
        for attr in &msg.attributes {
            match attr {
                LinkAttribute::IfName(n) => link.name = n.clone(),
                LinkAttribute::Mtu(m) => link.mtu = Some(*m),
                LinkAttribute::Address(a) => link.address = Some(a.clone()),
                LinkAttribute::Controller(m) => link.master = Some(*m),
                LinkAttribute::Link(l) => link.link = Some(*l),
                LinkAttribute::LinkNetNsId(id) => link.link_netnsid = Some(*id),
                LinkAttribute::Group(g) => link.group = Some(*g),
                LinkAttribute::IfAlias(a) => link.alias = Some(a.clone()),
                LinkAttribute::OperState(s) => link.oper_state = Some(s.to_string()),
                LinkAttribute::LinkInfo(infos) => {
                    for info in infos {
                        if let LinkInfo::Kind(k) = info {
                            link.kind = Some(k.to_string());
                        }
                    }
                }
                _ => {}
            }
        }
        // A controller index of 0 means "none" in some kernels' events.
        if link.master == Some(0) {
            link.master = None;
        }
        link
    }
}

/// The identity of an address inside a namespace: what the kernel keys it on.
///
/// # Examples
///
/// ```no_run
/// # fn demo(a: &nsdb::Address) {
/// let key: nsdb::AddressKey = a.key();
/// println!("{key}");
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AddressKey {
    /// Interface index.
    pub index: u32,
    /// Local address (`IFA_LOCAL`, or `IFA_ADDRESS` when there is none).
    pub local: IpAddr,
    /// Prefix length.
    pub prefix_len: u8,
    /// Peer address (`IFA_ADDRESS` when it differs from the local one).
    pub peer: Option<IpAddr>,
}

impl fmt::Display for AddressKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{} on ifindex {}",
            self.local, self.prefix_len, self.index
        )?;
        if let Some(peer) = self.peer {
            write!(f, " peer {peer}")?;
        }
        Ok(())
    }
}

/// An IP address on a link.
///
/// Lifetimes (`IFA_CACHEINFO`) are left out: they tick all the time.
///
/// # Examples
///
/// ```no_run
/// # fn demo(snap: &nsdb::Snapshot) {
/// for a in snap.namespace(&nsdb::Namespace::Host).unwrap().addresses() {
///     println!("{}/{} on {}", a.local, a.prefix_len, a.index);
/// }
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Address {
    /// Interface index.
    pub index: u32,
    /// Local address.
    pub local: IpAddr,
    /// Prefix length.
    pub prefix_len: u8,
    /// Peer address, when it differs from the local one (point-to-point).
    pub peer: Option<IpAddr>,
    /// Label (`IFA_LABEL`, IPv4).
    pub label: Option<String>,
    /// Scope (`RT_SCOPE_*`).
    pub scope: u8,
    /// Broadcast address (IPv4).
    pub broadcast: Option<IpAddr>,
    /// `IFA_F_*` flags (the 32-bit `IFA_FLAGS` when present).
    pub flags: u32,
}

impl Address {
    /// A plain address as an edit asks for it: no peer, label or broadcast,
    /// scope 0 (global), no flags.
    pub(crate) fn plain(index: u32, local: IpAddr, prefix_len: u8) -> Address {
        Address {
            index,
            local,
            prefix_len,
            peer: None,
            label: None,
            scope: 0,
            broadcast: None,
            flags: 0,
        }
    }

    /// The key the kernel identifies this address by.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn demo(a: &nsdb::Address) { assert_eq!(a.key().local, a.local); }
    /// ```
    pub fn key(&self) -> AddressKey {
        AddressKey {
            index: self.index,
            local: self.local,
            prefix_len: self.prefix_len,
            peer: self.peer,
        }
    }

    /// Builds an address from an `RTM_NEWADDR`/`RTM_DELADDR` message; `None`
    /// if it carries no address.
    ///
    /// # Examples
    ///
    /// ```
    /// use netlink_packet_route::address::{AddressAttribute, AddressMessage};
    /// let mut msg = AddressMessage::default();
    /// msg.header.index = 2;
    /// msg.header.prefix_len = 24;
    /// msg.attributes.push(AddressAttribute::Local("10.0.0.1".parse().unwrap()));
    /// let a = nsdb::Address::from_message(&msg).unwrap();
    /// assert_eq!(a.local.to_string(), "10.0.0.1");
    /// ```
    pub fn from_message(msg: &AddressMessage) -> Option<Address> {
        let mut local = None;
        let mut address = None;
        let mut label = None;
        let mut broadcast = None;
        let mut flags = u32::from(msg.header.flags.bits());
        for attr in &msg.attributes {
            match attr {
                AddressAttribute::Local(a) => local = Some(*a),
                AddressAttribute::Address(a) => address = Some(*a),
                AddressAttribute::Label(l) => label = Some(l.clone()),
                AddressAttribute::Broadcast(b) => broadcast = Some(IpAddr::V4(*b)),
                AddressAttribute::Flags(f) => flags = f.bits(),
                _ => {}
            }
        }
        let local_addr = local.or(address)?;
        let peer = match (local, address) {
            (Some(l), Some(a)) if l != a => Some(a),
            _ => None,
        };
        Some(Address {
            index: msg.header.index,
            local: local_addr,
            prefix_len: msg.header.prefix_len,
            peer,
            label,
            scope: u8::from(msg.header.scope),
            broadcast,
            flags,
        })
    }
}

/// The identity of a route: what tells two routes apart in the view.
///
/// # Examples
///
/// ```no_run
/// # fn demo(r: &nsdb::Route) { println!("{}", r.key()); }
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RouteKey {
    /// Address family (`AF_INET` = 2, `AF_INET6` = 10).
    pub family: u8,
    /// Routing table (`RTA_TABLE`, or the header's table).
    pub table: u32,
    /// Destination, `None` for a default route.
    pub destination: Option<IpAddr>,
    /// Destination prefix length.
    pub prefix_len: u8,
    /// Type of service (IPv4).
    pub tos: u8,
    /// Metric (`RTA_PRIORITY`).
    pub priority: u32,
    /// Route type (`RTN_*`: unicast = 1, local = 2, ...).
    pub kind: u8,
    /// Output interface (part of the identity: IPv6 keeps one route per
    /// next hop).
    pub oif: Option<u32>,
    /// Gateway.
    pub gateway: Option<IpAddr>,
}

impl fmt::Display for RouteKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.destination {
            Some(d) => write!(f, "{d}/{}", self.prefix_len)?,
            None => write!(f, "default")?,
        }
        if let Some(g) = self.gateway {
            write!(f, " via {g}")?;
        }
        if let Some(o) = self.oif {
            write!(f, " dev {o}")?;
        }
        write!(f, " table {} metric {}", self.table, self.priority)
    }
}

impl RouteKey {
    /// The part of the key the kernel uses to find the route a
    /// `NLM_F_REPLACE` replaces.
    fn kernel_key(&self) -> (u8, u32, Option<IpAddr>, u8, u8, u32) {
        (
            self.family,
            self.table,
            self.destination,
            self.prefix_len,
            self.tos,
            self.priority,
        )
    }
}

/// A route.
///
/// # Examples
///
/// ```no_run
/// # fn demo(snap: &nsdb::Snapshot) {
/// for r in snap.namespace(&nsdb::Namespace::Host).unwrap().routes() {
///     println!("{}", r.key());
/// }
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Route {
    /// Address family (`AF_INET` = 2, `AF_INET6` = 10).
    pub family: u8,
    /// Routing table.
    pub table: u32,
    /// Destination, `None` for a default route.
    pub destination: Option<IpAddr>,
    /// Destination prefix length.
    pub prefix_len: u8,
    /// Type of service (IPv4).
    pub tos: u8,
    /// Metric.
    pub priority: u32,
    /// Route type (`RTN_*`).
    pub kind: u8,
    /// Output interface.
    pub oif: Option<u32>,
    /// Gateway.
    pub gateway: Option<IpAddr>,
    /// Preferred source (`RTA_PREFSRC`).
    pub pref_source: Option<IpAddr>,
    /// Routing protocol (`RTPROT_*`: kernel = 2, boot = 3, static = 4).
    pub protocol: u8,
    /// Scope (`RT_SCOPE_*`).
    pub scope: u8,
}

fn route_ip(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

impl Route {
    /// The identity of this route in the view.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn demo(r: &nsdb::Route) { assert_eq!(r.key().table, r.table); }
    /// ```
    pub fn key(&self) -> RouteKey {
        RouteKey {
            family: self.family,
            table: self.table,
            destination: self.destination,
            prefix_len: self.prefix_len,
            tos: self.tos,
            priority: self.priority,
            kind: self.kind,
            oif: self.oif,
            gateway: self.gateway,
        }
    }

    /// Builds a route from an `RTM_NEWROUTE`/`RTM_DELROUTE` message. Routes
    /// of families other than IPv4 and IPv6 give `None`.
    ///
    /// # Examples
    ///
    /// ```
    /// use netlink_packet_route::AddressFamily;
    /// use netlink_packet_route::route::{RouteAttribute, RouteMessage};
    /// let mut msg = RouteMessage::default();
    /// msg.header.address_family = AddressFamily::Inet;
    /// msg.header.table = 254;
    /// msg.attributes.push(RouteAttribute::Oif(2));
    /// let r = nsdb::Route::from_message(&msg).unwrap();
    /// assert_eq!((r.table, r.oif, r.destination), (254, Some(2), None));
    /// ```
    pub fn from_message(msg: &RouteMessage) -> Option<Route> {
        let family = u8::from(msg.header.address_family);
        if family != 2 && family != 10 {
            return None;
        }
        let mut route = Route {
            family,
            table: u32::from(msg.header.table),
            destination: None,
            prefix_len: msg.header.destination_prefix_length,
            tos: msg.header.tos,
            priority: 0,
            kind: u8::from(msg.header.kind),
            oif: None,
            gateway: None,
            pref_source: None,
            protocol: u8::from(msg.header.protocol),
            scope: u8::from(msg.header.scope),
        };
        for attr in &msg.attributes {
            match attr {
                RouteAttribute::Table(t) => route.table = *t,
                RouteAttribute::Destination(d) => route.destination = route_ip(d),
                RouteAttribute::Gateway(g) => route.gateway = route_ip(g),
                RouteAttribute::PrefSource(s) => route.pref_source = route_ip(s),
                RouteAttribute::Oif(o) => route.oif = Some(*o),
                RouteAttribute::Priority(p) => route.priority = *p,
                _ => {}
            }
        }
        Some(route)
    }
}

/// One object of the view.
///
/// # Examples
///
/// ```no_run
/// # fn demo(o: &nsdb::Object) {
/// if let nsdb::Object::Link(link) = o { println!("link {}", link.name); }
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Object {
    /// A link.
    Link(Link),
    /// An address.
    Address(Address),
    /// A route.
    Route(Route),
}

/// What changed, inside one namespace (the sans-IO part of [`crate::Change`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Delta {
    Added(Object),
    Changed { old: Object, new: Object },
    Removed(Object),
}

/// The links, addresses and routes of one namespace.
///
/// # Examples
///
/// ```
/// let state = nsdb::NsState::default();
/// assert!(state.links.is_empty());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct NsState {
    /// Links by index.
    pub links: BTreeMap<u32, Link>,
    /// Addresses by key.
    pub addresses: BTreeMap<AddressKey, Address>,
    /// Routes by key.
    pub routes: BTreeMap<RouteKey, Route>,
}

impl NsState {
    /// Applies one rtnetlink message (a dump entry or an event); returns what
    /// changed. Messages that carry nothing the view models change nothing.
    pub(crate) fn apply(&mut self, msg: &RouteNetlinkMessage, nl_flags: u16) -> Vec<Delta> {
        let mut out = Vec::new();
        match msg {
            // AF_BRIDGE link messages are the bridge's view of a port (port
            // state, vlans): partial, and a "delete" only means the port left
            // its bridge. The AF_UNSPEC messages carry the link itself.
            RouteNetlinkMessage::NewLink(m) | RouteNetlinkMessage::DelLink(m)
                if u8::from(m.header.interface_family) == AF_BRIDGE => {}
            RouteNetlinkMessage::NewLink(m) => {
                let link = Link::from_message(m);
                self.put_link(link, &mut out);
            }
            RouteNetlinkMessage::DelLink(m) => {
                if let Some(old) = self.links.remove(&m.header.index) {
                    // The kernel removes the link's addresses and routes
                    // without always telling (addresses: yes; routes: not
                    // for IPv4). Drop them here so the view stays exact.
                    self.drop_dependents(old.index, &mut out);
                    out.push(Delta::Removed(Object::Link(old)));
                }
            }
            RouteNetlinkMessage::NewAddress(m) => {
                if let Some(a) = Address::from_message(m) {
                    match self.addresses.insert(a.key(), a.clone()) {
                        None => out.push(Delta::Added(Object::Address(a))),
                        Some(old) if old != a => out.push(Delta::Changed {
                            old: Object::Address(old),
                            new: Object::Address(a),
                        }),
                        Some(_) => {}
                    }
                }
            }
            RouteNetlinkMessage::DelAddress(m) => {
                if let Some(a) = Address::from_message(m)
                    && let Some(old) = self.addresses.remove(&a.key())
                {
                    out.push(Delta::Removed(Object::Address(old)));
                }
            }
            RouteNetlinkMessage::NewRoute(m) => {
                if let Some(r) = Route::from_message(m) {
                    if nl_flags & NLM_F_REPLACE != 0 {
                        let kk = r.key().kernel_key();
                        let replaced: Vec<RouteKey> = self
                            .routes
                            .keys()
                            .filter(|k| k.kernel_key() == kk && **k != r.key())
                            .cloned()
                            .collect();
                        for k in replaced {
                            if let Some(old) = self.routes.remove(&k) {
                                out.push(Delta::Removed(Object::Route(old)));
                            }
                        }
                    }
                    match self.routes.insert(r.key(), r.clone()) {
                        None => out.push(Delta::Added(Object::Route(r))),
                        Some(old) if old != r => out.push(Delta::Changed {
                            old: Object::Route(old),
                            new: Object::Route(r),
                        }),
                        Some(_) => {}
                    }
                }
            }
            RouteNetlinkMessage::DelRoute(m) => {
                if let Some(r) = Route::from_message(m)
                    && let Some(old) = self.routes.remove(&r.key())
                {
                    out.push(Delta::Removed(Object::Route(old)));
                }
            }
            _ => {}
        }
        out
    }

    fn put_link(&mut self, link: Link, out: &mut Vec<Delta>) {
        match self.links.insert(link.index, link.clone()) {
            None => out.push(Delta::Added(Object::Link(link))),
            Some(old) if old != link => out.push(Delta::Changed {
                old: Object::Link(old),
                new: Object::Link(link),
            }),
            Some(_) => {}
        }
    }

    fn drop_dependents(&mut self, index: u32, out: &mut Vec<Delta>) {
        let addrs: Vec<AddressKey> = self
            .addresses
            .keys()
            .filter(|k| k.index == index)
            .cloned()
            .collect();
        for k in addrs {
            if let Some(a) = self.addresses.remove(&k) {
                out.push(Delta::Removed(Object::Address(a)));
            }
        }
        let routes: Vec<RouteKey> = self
            .routes
            .keys()
            .filter(|k| k.oif == Some(index))
            .cloned()
            .collect();
        for k in routes {
            if let Some(r) = self.routes.remove(&k) {
                out.push(Delta::Removed(Object::Route(r)));
            }
        }
    }

    /// The changes that turn `self` into `new` (used after a resync).
    pub(crate) fn diff(&self, new: &NsState) -> Vec<Delta> {
        let mut out = Vec::new();
        diff_maps(&self.links, &new.links, Object::Link, &mut out);
        diff_maps(&self.addresses, &new.addresses, Object::Address, &mut out);
        diff_maps(&self.routes, &new.routes, Object::Route, &mut out);
        out
    }

    /// The link named `name`, if any.
    pub(crate) fn link_by_name(&self, name: &str) -> Option<&Link> {
        self.links.values().find(|l| l.name == name)
    }
}

fn diff_maps<K: Ord, V: Clone + PartialEq>(
    old: &BTreeMap<K, V>,
    new: &BTreeMap<K, V>,
    wrap: fn(V) -> Object,
    out: &mut Vec<Delta>,
) {
    for (k, v) in old {
        match new.get(k) {
            None => out.push(Delta::Removed(wrap(v.clone()))),
            Some(n) if n != v => out.push(Delta::Changed {
                old: wrap(v.clone()),
                new: wrap(n.clone()),
            }),
            Some(_) => {}
        }
    }
    for (k, v) in new {
        if !old.contains_key(k) {
            out.push(Delta::Added(wrap(v.clone())));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_route::AddressFamily;
    use netlink_packet_route::link::LinkFlags;

    fn link_msg(index: u32, name: &str, mtu: u32, up: bool) -> RouteNetlinkMessage {
        let mut m = LinkMessage::default();
        m.header.index = index;
        if up {
            m.header.flags = LinkFlags::Up;
        }
        m.attributes.push(LinkAttribute::IfName(name.into()));
        m.attributes.push(LinkAttribute::Mtu(mtu));
        RouteNetlinkMessage::NewLink(m)
    }

    fn del_link(index: u32) -> RouteNetlinkMessage {
        let mut m = LinkMessage::default();
        m.header.index = index;
        RouteNetlinkMessage::DelLink(m)
    }

    fn addr_msg(new: bool, index: u32, ip: &str, len: u8) -> RouteNetlinkMessage {
        let mut m = AddressMessage::default();
        m.header.family = AddressFamily::Inet;
        m.header.index = index;
        m.header.prefix_len = len;
        let ip: IpAddr = ip.parse().unwrap();
        m.attributes.push(AddressAttribute::Local(ip));
        m.attributes.push(AddressAttribute::Address(ip));
        if new {
            RouteNetlinkMessage::NewAddress(m)
        } else {
            RouteNetlinkMessage::DelAddress(m)
        }
    }

    fn route_msg(new: bool, oif: u32, dst: &str, len: u8, gw: Option<&str>) -> RouteNetlinkMessage {
        let mut m = RouteMessage::default();
        m.header.address_family = AddressFamily::Inet;
        m.header.table = 254;
        m.header.destination_prefix_length = len;
        m.attributes
            .push(RouteAttribute::Destination(RouteAddress::Inet(
                dst.parse().unwrap(),
            )));
        m.attributes.push(RouteAttribute::Oif(oif));
        if let Some(gw) = gw {
            m.attributes
                .push(RouteAttribute::Gateway(RouteAddress::Inet(
                    gw.parse().unwrap(),
                )));
        }
        if new {
            RouteNetlinkMessage::NewRoute(m)
        } else {
            RouteNetlinkMessage::DelRoute(m)
        }
    }

    #[test]
    fn link_added_changed_removed() {
        let mut s = NsState::default();
        let d = s.apply(&link_msg(2, "v0", 1500, false), 0);
        assert!(matches!(&d[..], [Delta::Added(Object::Link(l))] if l.name == "v0"));
        // Same state again: no change.
        assert!(s.apply(&link_msg(2, "v0", 1500, false), 0).is_empty());
        let d = s.apply(&link_msg(2, "v0", 1400, true), 0);
        match &d[..] {
            [
                Delta::Changed {
                    old: Object::Link(o),
                    new: Object::Link(n),
                },
            ] => {
                assert_eq!(
                    (o.mtu, n.mtu, o.is_up(), n.is_up()),
                    (Some(1500), Some(1400), false, true)
                );
            }
            other => panic!("unexpected {other:?}"),
        }
        let d = s.apply(&del_link(2), 0);
        assert!(matches!(&d[..], [Delta::Removed(Object::Link(_))]));
        assert!(s.links.is_empty());
        // Deleting an unknown link changes nothing.
        assert!(s.apply(&del_link(9), 0).is_empty());
    }

    #[test]
    fn link_delete_drops_its_addresses_and_routes() {
        let mut s = NsState::default();
        s.apply(&link_msg(2, "v0", 1500, true), 0);
        s.apply(&link_msg(3, "v1", 1500, true), 0);
        s.apply(&addr_msg(true, 2, "10.0.0.1", 24), 0);
        s.apply(&addr_msg(true, 3, "10.0.1.1", 24), 0);
        s.apply(&route_msg(true, 2, "10.9.0.0", 16, Some("10.0.0.2")), 0);
        let d = s.apply(&del_link(2), 0);
        assert_eq!(d.len(), 3);
        assert_eq!(s.addresses.len(), 1);
        assert!(s.routes.is_empty());
    }

    #[test]
    fn bridge_family_link_messages_are_ignored() {
        let mut s = NsState::default();
        s.apply(&link_msg(2, "v0", 1500, true), 0);
        let mut m = LinkMessage::default();
        m.header.index = 2;
        m.header.interface_family = AddressFamily::Bridge;
        assert!(
            s.apply(&RouteNetlinkMessage::DelLink(m.clone()), 0)
                .is_empty()
        );
        assert!(s.apply(&RouteNetlinkMessage::NewLink(m), 0).is_empty());
        assert_eq!(s.links[&2].name, "v0");
    }

    #[test]
    fn addresses_are_keyed_by_index_local_and_prefix() {
        let mut s = NsState::default();
        s.apply(&addr_msg(true, 2, "10.0.0.1", 24), 0);
        s.apply(&addr_msg(true, 2, "10.0.0.1", 16), 0);
        s.apply(&addr_msg(true, 3, "10.0.0.1", 24), 0);
        assert_eq!(s.addresses.len(), 3);
        let d = s.apply(&addr_msg(false, 2, "10.0.0.1", 16), 0);
        assert!(matches!(&d[..], [Delta::Removed(Object::Address(a))] if a.prefix_len == 16));
        assert_eq!(s.addresses.len(), 2);
    }

    #[test]
    fn route_replace_drops_the_replaced_route() {
        let mut s = NsState::default();
        s.apply(&route_msg(true, 2, "10.9.0.0", 16, Some("10.0.0.2")), 0);
        let d = s.apply(
            &route_msg(true, 2, "10.9.0.0", 16, Some("10.0.0.3")),
            NLM_F_REPLACE,
        );
        assert_eq!(d.len(), 2, "{d:?}");
        assert_eq!(s.routes.len(), 1);
        let r = s.routes.values().next().unwrap();
        assert_eq!(r.gateway, Some("10.0.0.3".parse().unwrap()));
        // Without NLM_F_REPLACE (IPv6 multipath append), both stay.
        s.apply(&route_msg(true, 2, "10.9.0.0", 16, Some("10.0.0.4")), 0);
        assert_eq!(s.routes.len(), 2);
        s.apply(&route_msg(false, 2, "10.9.0.0", 16, Some("10.0.0.4")), 0);
        assert_eq!(s.routes.len(), 1);
    }

    #[test]
    fn dump_then_buffered_events_converges() {
        // Events that happened before the dump read the object, replayed
        // after it, leave the latest state: every event carries a full object.
        let mut s = NsState::default();
        s.apply(&link_msg(2, "v0", 1400, true), 0); // dump saw the final state
        s.apply(&link_msg(2, "v0", 1300, false), 0); // buffered, older
        s.apply(&link_msg(2, "v0", 1400, true), 0); // buffered, newest
        assert_eq!(s.links[&2].mtu, Some(1400));
        assert!(s.links[&2].is_up());
    }

    #[test]
    fn diff_reports_added_changed_removed() {
        let mut a = NsState::default();
        a.apply(&link_msg(2, "v0", 1500, true), 0);
        a.apply(&link_msg(3, "v1", 1500, true), 0);
        let mut b = NsState::default();
        b.apply(&link_msg(2, "v0", 1400, true), 0);
        b.apply(&link_msg(4, "v2", 1500, true), 0);
        let d = a.diff(&b);
        assert_eq!(d.len(), 3);
        assert!(d.iter().any(|d| matches!(d, Delta::Changed { .. })));
        assert!(
            d.iter()
                .any(|d| matches!(d, Delta::Added(Object::Link(l)) if l.index == 4))
        );
        assert!(
            d.iter()
                .any(|d| matches!(d, Delta::Removed(Object::Link(l)) if l.index == 3))
        );
        assert!(a.diff(&a).is_empty());
    }
}
