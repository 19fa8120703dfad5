//! The bridge plugin's kernel work, on the toolkit: a `netns::Handle` on
//! the host namespace (the one the plugin runs in) and one on `CNI_NETNS`.

use std::hash::{BuildHasher, Hasher};
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use futures::TryStreamExt;
use netlink_packet_route::AddressFamily;
use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressMessage};
use netlink_packet_route::link::{
    AfSpecInet6, AfSpecUnspec, InfoKind, LinkAttribute, LinkExtentMask, LinkFlags, LinkInfo,
    LinkMessage, State,
};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteMessage, RouteProtocol};
use netns::{Handle, NetNs, OpenMode, Target};
use rtnetlink::{LinkBridge, LinkBridgePort, LinkUnspec, RouteMessageBuilder};

use crate::error::{Error, Result, nl};
use crate::ipam::Ipam;
use crate::plugin::Invocation;
use crate::types::{Cidr, CniResult, Interface, NetConf, Route};

/// The host namespace (the plugin's own) and the container's, open.
pub(crate) struct Namespaces {
    pub(crate) host: Handle,
    pub(crate) cont: Handle,
}

/// Opens the host namespace (where this process runs) and `CNI_NETNS`.
pub(crate) async fn open(netns: &str) -> Result<Namespaces> {
    let (path, cont) = container_netns(netns)?;
    let host = open_host().await?;
    let cont = container_handle(path, cont).await?;
    Ok(Namespaces { host, cont })
}

/// A handle on the host namespace: the executor's home, the namespace of
/// this thread, already open (no second look at `/proc/thread-self/ns/net`);
/// its socket is made here, with no hop.
async fn open_host() -> Result<Handle> {
    let fail = |source| Error::Namespace {
        op: "open the host namespace",
        source: Box::new(source),
    };
    let here = executor().map_err(fail)?.home().clone();
    Handle::open(Target::NetNs(here), OpenMode::OpenOnly)
        .await
        .map_err(fail)
}

/// The toolkit's process-wide executor, made on first use with room for
/// one closure: one namespace thread is all a plugin call needs (the
/// container's socket, one sysctl hop, the lease files). Sized here, it
/// skips the `available_parallelism()` lookup (cgroup files)
/// `Executor::global` would make. Its home is the namespace of the thread
/// that first calls this: the host's.
pub(crate) fn executor() -> std::result::Result<&'static netns::Executor, netns::Error> {
    netns::Executor::init_global(1).map_err(netns::Error::from)
}

/// Opens `CNI_NETNS` (a path; a relative one is taken from `/`), checking
/// it is a network namespace: a few syscalls on this thread, no socket yet.
fn container_netns(netns: &str) -> Result<(PathBuf, NetNs)> {
    let path = PathBuf::from(netns);
    let path = if path.is_absolute() {
        path
    } else {
        PathBuf::from("/").join(path)
    };
    match NetNs::open(&path) {
        Ok(ns) => Ok((path, ns)),
        Err(e) => Err(Error::OpenNetns {
            path,
            source: Box::new(e.into()),
        }),
    }
}

/// A handle on the container's namespace, opened by [`container_netns`]:
/// its socket is made on the namespace thread.
async fn container_handle(path: PathBuf, ns: NetNs) -> Result<Handle> {
    // Made first: the executor's home is the host's namespace.
    let _ = executor();
    Handle::open(Target::NetNs(ns), OpenMode::OpenOnly)
        .await
        .map_err(|source| Error::OpenNetns {
            path,
            source: Box::new(source),
        })
}

/// Opens `CNI_NETNS` (a path; a relative one is taken from `/`).
pub(crate) async fn open_container(netns: &str) -> Result<Handle> {
    let (path, ns) = container_netns(netns)?;
    container_handle(path, ns).await
}

fn attr<T>(msg: &LinkMessage, f: impl Fn(&LinkAttribute) -> Option<T>) -> Option<T> {
    msg.attributes.iter().find_map(f)
}

fn mac_of(msg: &LinkMessage) -> String {
    attr(msg, |a| match a {
        LinkAttribute::Address(m) => Some(
            m.iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(":"),
        ),
        _ => None,
    })
    .unwrap_or_default()
}

/// The link's IPv6 `accept_ra`, from the devconf its link message
/// carries (none where the link has no IPv6 state).
fn ipv6_accept_ra(msg: &LinkMessage) -> Option<i32> {
    attr(msg, |a| match a {
        LinkAttribute::AfSpecUnspec(specs) => specs.iter().find_map(|s| match s {
            AfSpecUnspec::Inet6(v) => v.iter().find_map(|i| match i {
                AfSpecInet6::DevConf(c) => Some(c.accept_ra),
                _ => None,
            }),
            _ => None,
        }),
        _ => None,
    })
}

/// Sets the link's `accept_ra` to 0 (we own its routes), unless its link
/// message shows it is already: a bridge that earlier calls set up needs
/// no `/proc/sys` write on every ADD.
fn disable_accept_ra(link: &LinkMessage, name: &str) {
    if ipv6_accept_ra(link) != Some(0) {
        let _ = write_sysctl(&format!("net/ipv6/conf/{name}/accept_ra"), "0");
    }
}

fn kind_of(msg: &LinkMessage) -> Option<InfoKind> {
    attr(msg, |a| match a {
        LinkAttribute::LinkInfo(infos) => infos.iter().find_map(|i| match i {
            LinkInfo::Kind(k) => Some(k.clone()),
            _ => None,
        }),
        _ => None,
    })
}

fn peer_index(msg: &LinkMessage) -> Option<u32> {
    attr(msg, |a| match a {
        LinkAttribute::Link(i) => Some(*i),
        _ => None,
    })
}

fn controller(msg: &LinkMessage) -> Option<u32> {
    attr(msg, |a| match a {
        LinkAttribute::Controller(i) => Some(*i),
        _ => None,
    })
}

fn parse_mac(mac: &str) -> Result<Vec<u8>> {
    let bytes: std::result::Result<Vec<u8>, _> =
        mac.split(':').map(|b| u8::from_str_radix(b, 16)).collect();
    match bytes {
        Ok(b) if b.len() == 6 && mac.len() == 17 => Ok(b),
        _ => Err(Error::Config {
            msg: format!("invalid MAC address {mac:?}"),
        }),
    }
}

/// A link by name, or `None` if there is none. Without its counters
/// (`RTEXT_FILTER_SKIP_STATS`): nothing here reads them, and they are a
/// sixth of the reply the kernel fills and this process parses.
async fn link_by_name(h: &Handle, name: &str) -> Result<Option<LinkMessage>> {
    let mut req = h.rtnetlink().link().get().match_name(name.to_string());
    req.message_mut()
        .attributes
        .push(LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats]));
    match req.execute().try_next().await {
        Ok(m) => Ok(m),
        Err(e) if netns::error_code(&e) == Some(libc::ENODEV) => Ok(None),
        Err(e) => Err(nl(format!("look up {name:?}"))(e)),
    }
}

/// Writes a sysctl of the calling thread's namespace (`net/ipv4/...`).
fn write_sysctl(key: &str, value: &str) -> Result<()> {
    let path = PathBuf::from("/proc/sys").join(key);
    std::fs::write(&path, value).map_err(|source| Error::Sysctl { path, source })
}

fn read_sysctl(key: &str) -> Option<String> {
    std::fs::read_to_string(PathBuf::from("/proc/sys").join(key))
        .ok()
        .map(|s| s.trim().to_string())
}

/// Sets a sysctl to `value` unless it already is (`ip_forward`...).
fn ensure_sysctl(key: &str, value: &str) -> Result<()> {
    if read_sysctl(key).as_deref() == Some(value) {
        return Ok(());
    }
    write_sysctl(key, value)
}

/// A host veth name as the reference makes them: `veth` and 8 hex digits.
fn random_veth_name() -> String {
    let mut h = std::hash::RandomState::new().build_hasher();
    h.write_u64(u64::from(std::process::id()));
    format!("veth{:08x}", h.finish() as u32)
}

/// Makes the bridge if it is missing, checks it is one, brings it up.
/// Returns it, and whether this call made it.
async fn ensure_bridge(host: &Handle, conf: &NetConf) -> Result<(LinkMessage, bool)> {
    let name = &conf.bridge;
    let mut created = false;
    let mut br = link_by_name(host, name).await?;
    if br.is_none() {
        let mut b = LinkBridge::new(name);
        if conf.mtu > 0 {
            b = b.mtu(conf.mtu);
        }
        match host.rtnetlink().link().add(b.build()).execute().await {
            Ok(()) => created = true,
            Err(e) if netns::error_code(&e) == Some(libc::EEXIST) => {}
            Err(e) => return Err(nl(format!("add bridge {name:?}"))(e)),
        }
        br = link_by_name(host, name).await?;
    }
    let Some(br) = br else {
        return Err(Error::Bridge {
            msg: format!("could not lookup {name:?}: Link not found"),
        });
    };
    if kind_of(&br) != Some(InfoKind::Bridge) {
        return Err(Error::Bridge {
            msg: format!("{name:?} already exists but is not a bridge"),
        });
    }
    let up = br.header.flags.contains(LinkFlags::Up);
    let promisc = br.header.flags.contains(LinkFlags::Promisc);
    // We own the bridge's routes.
    disable_accept_ra(&br, name);
    if !up || (conf.promisc_mode && !promisc) {
        let mut set = LinkUnspec::new_with_index(br.header.index).up();
        if conf.promisc_mode {
            set = set.promiscuous(true);
        }
        host.rtnetlink()
            .link()
            .set(set.build())
            .execute()
            .await
            .map_err(nl(format!("set {name:?} up")))?;
    }
    Ok((br, created))
}

/// What ADD made so far, to undo on failure.
#[derive(Default)]
struct Made {
    bridge: Option<u32>,
    /// The host end's name, once the pair exists.
    veth: Option<String>,
}

/// The links of an ADD: bridge, host veth, container veth.
struct Links {
    bridge: LinkMessage,
    /// The bridge's MAC once the host end joined it (its first port may
    /// change it).
    bridge_mac: String,
    host: LinkMessage,
    cont: LinkMessage,
}

/// Makes the bridge (if missing) and the pair, from the host. Returns the
/// bridge and the host end's name.
async fn make_pair(
    host: &Handle,
    cont: &NetNs,
    conf: &NetConf,
    inv: &Invocation,
    made: &mut Made,
) -> Result<(LinkMessage, String)> {
    let (bridge, created) = ensure_bridge(host, conf).await?;
    if created {
        made.bridge = Some(bridge.header.index);
    }
    // The pair is made from the host with its peer born in the container,
    // in one request that also gives both ends their MTU and the container
    // end its MAC, and makes the host end an up port of the bridge: nothing
    // is ever moved, nothing set afterwards. The container end stays down
    // until its addresses and sysctls are in place.
    let mac = [&conf.runtime_config.mac, &conf.args.cni.mac, &inv.mac_arg]
        .into_iter()
        .find(|m| !m.is_empty())
        .map(|m| parse_mac(m))
        .transpose()?;
    let mut host_name = random_veth_name();
    let mut tries = 0;
    loop {
        let mut req = host
            .add_veth(&host_name, &inv.ifname)
            .peer_netns(cont.clone())
            .controller(bridge.header.index)
            .up();
        if conf.mtu > 0 {
            req = req.mtu(conf.mtu);
        }
        if let Some(mac) = &mac {
            req = req.peer_address(mac.clone());
        }
        match req.execute().await {
            Ok(()) => break,
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                // Rare: a handle of its own on the container to look.
                let taken = Handle::open(Target::NetNs(cont.clone()), OpenMode::OpenOnly)
                    .await
                    .map_err(|source| Error::Namespace {
                        op: "open the container's namespace",
                        source: Box::new(source),
                    })?;
                if link_by_name(&taken, &inv.ifname).await?.is_some() {
                    return Err(Error::IfnameTaken {
                        ifname: inv.ifname.clone(),
                    });
                }
                tries += 1;
                if tries >= 10 {
                    return Err(Error::Bridge {
                        msg: "failed to find a unique veth name".into(),
                    });
                }
                host_name = random_veth_name();
            }
            Err(source) => {
                return Err(Error::Namespace {
                    op: "make the veth pair",
                    source: Box::new(source),
                });
            }
        }
    }
    made.veth = Some(host_name.clone());
    Ok((bridge, host_name))
}

/// Makes the bridge and the pair from the host while the container's
/// handle (its socket made on the namespace thread) is opened, then looks
/// both ends up. Returns the container's handle and the links.
async fn setup_links(
    host: &Handle,
    cont_ns: &NetNs,
    path: PathBuf,
    conf: &NetConf,
    inv: &Invocation,
    made: &mut Made,
) -> Result<(Handle, Links)> {
    let (cont, pair) = tokio::join!(
        container_handle(path, cont_ns.clone()),
        make_pair(host, cont_ns, conf, inv, made)
    );
    let (bridge, host_name) = pair?;
    let cont = cont?;
    // Both ends looked up at once, each on its namespace's socket, the
    // bridge again (its MAC may have followed its new port) and the
    // container's sysctls set meanwhile.
    let host_side = async {
        let (host_link, br) = tokio::join!(
            link_by_name(host, &host_name),
            link_by_name(host, &conf.bridge)
        );
        let host_link = host_link?.ok_or_else(|| Error::Bridge {
            msg: format!("failed to lookup {host_name:?}"),
        })?;
        let bridge_mac = br?.map_or_else(|| mac_of(&bridge), |b| mac_of(&b));
        disable_accept_ra(&host_link, &host_name);
        if conf.hairpin_mode {
            host.rtnetlink()
                .link()
                .set_port(
                    LinkBridgePort::new(host_link.header.index)
                        .hairpin(true)
                        .build(),
                )
                .execute()
                .await
                .map_err(nl(format!("setup hairpin mode for {host_name:?}")))?;
        }
        Ok::<_, Error>((host_link, bridge_mac))
    };
    let cont_side = async {
        // Only a layer-3 attachment gets them, as in the reference.
        let layer3 = conf.ipam_type().is_some();
        let (link, sysctls) = tokio::join!(link_by_name(&cont, &inv.ifname), async {
            if layer3 {
                container_sysctls(&cont, conf, &inv.ifname).await
            } else {
                Ok(())
            }
        });
        sysctls?;
        link?.ok_or_else(|| Error::Bridge {
            msg: format!("failed to lookup {:?}", inv.ifname),
        })
    };
    let (host_side, cont_side) = tokio::join!(host_side, cont_side);
    let ((host_link, bridge_mac), cont_link) = (host_side?, cont_side?);
    Ok((
        cont,
        Links {
            bridge,
            bridge_mac,
            host: host_link,
            cont: cont_link,
        },
    ))
}

/// The gateway of `c`'s subnet the reference computes (network + 1).
fn first_host(c: &Cidr) -> IpAddr {
    match c.network() {
        IpAddr::V4(a) => IpAddr::V4((u32::from(a).wrapping_add(1)).into()),
        IpAddr::V6(a) => IpAddr::V6((u128::from(a).wrapping_add(1)).into()),
    }
}

/// The reference's `calcGateways`: gateways to put on the bridge, per
/// family, and the default routes `isDefaultGateway` adds.
fn calc_gateways(result: &mut CniResult, conf: &NetConf) -> Vec<Cidr> {
    let mut gws = Vec::new();
    let mut default_found = [false, false];
    for i in 0..result.ips.len() {
        let fam = usize::from(!result.ips[i].address.is_ipv4());
        result.ips[i].interface = Some(2);
        if result.ips[i].gateway.is_none() && conf.is_gateway {
            result.ips[i].gateway = Some(first_host(&result.ips[i].address));
        }
        let addr = result.ips[i].address;
        let gw = result.ips[i].gateway;
        if conf.is_default_gateway && !default_found[fam] {
            let default: Cidr = if fam == 0 {
                Cidr::new(IpAddr::V4(0.into()), 0)
            } else {
                Cidr::new(IpAddr::V6(0.into()), 0)
            };
            default_found[fam] = result
                .routes
                .iter()
                .any(|r| r.gw.is_some() && r.dst == default);
            if !default_found[fam] {
                result.routes.push(Route { dst: default, gw });
                default_found[fam] = true;
            }
        }
        if conf.is_gateway
            && let Some(gw) = gw
        {
            gws.push(Cidr::new(gw, addr.prefix));
        }
    }
    gws
}

/// Container-side sysctls of the new interface, as the reference sets them
/// (DAD, `arp_notify`), in one hop, before it has addresses or is up.
///
/// A closure of the executor's ordinary lane, not a `run_short` (a toolkit
/// job): the lease store's file work may still hold the executor's one
/// thread, and a toolkit job would then start the thread the executor keeps
/// for them: a second thread per ADD, whose start and exit a burst of ADDs
/// pays in CPU. Queued behind the lease, the sysctls cost the ADD nothing:
/// its addresses wait for the lease anyway.
async fn container_sysctls(cont: &Handle, conf: &NetConf, ifname: &str) -> Result<()> {
    let ifname = ifname.to_string();
    let dad = conf.enabledad;
    cont.netns()
        .run(move || {
            if dad {
                let _ = write_sysctl(&format!("net/ipv6/conf/{ifname}/enhanced_dad"), "1");
                let _ = write_sysctl(&format!("net/ipv6/conf/{ifname}/accept_dad"), "1");
            } else {
                let _ = write_sysctl(&format!("net/ipv6/conf/{ifname}/accept_dad"), "0");
            }
            let _ = write_sysctl(&format!("net/ipv4/conf/{ifname}/arp_notify"), "1");
        })
        .await
        .map_err(|e| Error::Namespace {
            op: "set the container's sysctls",
            source: Box::new(e.into()),
        })
}

/// IPv6 enabled on the container's `lo` and interface (where it is off), as
/// the reference does when an IPv6 address comes, in one hop.
async fn container_enable_ipv6(ns: &Namespaces, ifname: &str) -> Result<()> {
    let ifname = ifname.to_string();
    ns.cont
        .netns()
        .run_short(move || {
            for i in ["lo", ifname.as_str()] {
                ensure_sysctl(&format!("net/ipv6/conf/{i}/disable_ipv6"), "0")?;
            }
            Ok(())
        })
        .await
        .map_err(|e| Error::Namespace {
            op: "set the container's sysctls",
            source: Box::new(e.into()),
        })?
}

/// The reference's `ConfigureIface`: addresses, link up, routes.
async fn configure_iface(
    ns: &Namespaces,
    result: &CniResult,
    index: u32,
    ifname: &str,
) -> Result<()> {
    let rtnl = ns.cont.rtnetlink();
    let (mut v4gw, mut v6gw) = (None, None);
    for ip in &result.ips {
        match ip.gateway {
            Some(g @ IpAddr::V4(_)) if v4gw.is_none() => v4gw = Some(g),
            Some(g @ IpAddr::V6(_)) if v6gw.is_none() => v6gw = Some(g),
            _ => {}
        }
    }
    // The addresses, then the link up: sent together on the one socket,
    // which the kernel handles in order (no round trip between them).
    let addrs = futures::future::join_all(result.ips.iter().map(|ip| async move {
        rtnl.address()
            .add(index, ip.address.addr, ip.address.prefix)
            .execute()
            .await
            .map_err(nl(format!("add IP addr {} to {ifname:?}", ip.address)))
    }));
    let up = async {
        rtnl.link()
            .set(LinkUnspec::new_with_index(index).up().build())
            .execute()
            .await
            .map_err(nl(format!("set {ifname:?} UP")))
    };
    let (addrs, up) = tokio::join!(addrs, up);
    addrs.into_iter().collect::<Result<Vec<()>>>()?;
    up?;
    if v6gw.is_some() {
        settle_addresses(&ns.cont, index, ifname).await?;
    }
    let mut routes = Vec::with_capacity(result.routes.len());
    for r in &result.routes {
        let gw = r.gw.or(if r.dst.is_ipv4() { v4gw } else { v6gw });
        let mut b = RouteMessageBuilder::<IpAddr>::new()
            .destination_prefix(r.dst.network(), r.dst.prefix)
            .map_err(|e| Error::Config {
                msg: format!("invalid route {}: {e}", r.dst),
            })?
            .output_interface(index)
            // What the reference's netlink library sends (ip shows none).
            .protocol(RouteProtocol::Boot);
        if let Some(gw) = gw {
            b = b.gateway(gw).map_err(|e| Error::Config {
                msg: format!("invalid gateway {gw}: {e}"),
            })?;
        }
        let msg = b.build();
        routes.push(async move {
            rtnl.route()
                .add(msg)
                .execute()
                .await
                .map_err(nl(format!("add route '{} via {gw:?} dev {ifname}'", r.dst)))
        });
    }
    // Sent together, handled in order.
    futures::future::join_all(routes)
        .await
        .into_iter()
        .collect::<Result<Vec<()>>>()?;
    Ok(())
}

/// The reference's `SettleAddresses`: waits (up to 10 s) until no IPv6
/// address of the link is tentative (only with `enabledad` is one ever);
/// an address whose DAD failed is an error.
async fn settle_addresses(h: &Handle, index: u32, ifname: &str) -> Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut tentative = false;
        // IPv6 only: DAD (tentative, dadfailed) is IPv6's.
        for m in address_messages(h, index, AddressFamily::Inet6).await? {
            let flags = m
                .attributes
                .iter()
                .find_map(|a| match a {
                    AddressAttribute::Flags(f) => Some(*f),
                    _ => None,
                })
                .unwrap_or_else(|| {
                    AddressFlags::from_bits_truncate(u32::from(m.header.flags.bits()))
                });
            if flags.contains(AddressFlags::Dadfailed) {
                return Err(Error::Bridge {
                    msg: format!(
                        "link {ifname} has address {:?} in DADFAILED state",
                        addr_of(&m)
                    ),
                });
            }
            tentative |=
                m.header.family == AddressFamily::Inet6 && flags.contains(AddressFlags::Tentative);
        }
        if !tentative {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(Error::Bridge {
                msg: format!("link {ifname} still has tentative addresses after 10 seconds"),
            });
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn addr_of(msg: &AddressMessage) -> Option<IpAddr> {
    msg.attributes.iter().find_map(|a| match a {
        AddressAttribute::Address(ip) => Some(*ip),
        _ => None,
    })
}

/// The addresses of link `index`, of `family` (`Unspec`: all).
///
/// A dump of one family is also one the kernel makes without RTNL (IPv4's
/// and IPv6's address dumps take none since Linux 6.10); the `Unspec` dump
/// walks every family under RTNL, and would spin for it while the link
/// watch or IPv6's DAD work holds it, as they do right after an interface
/// comes up.
async fn address_messages(
    h: &Handle,
    index: u32,
    family: AddressFamily,
) -> Result<Vec<AddressMessage>> {
    // The index in the request's header: the toolkit's sockets ask for
    // strict checking, under which the kernel dumps that link's addresses
    // only (not every port's link-local address on a busy bridge host).
    let mut req = h.rtnetlink().address().get().set_link_index_filter(index);
    req.message_mut().header.index = index;
    req.message_mut().header.family = family;
    let msgs: Vec<AddressMessage> = match req.execute().try_collect().await {
        Ok(msgs) => msgs,
        // The link went away meanwhile: it has no addresses.
        Err(e) if netns::error_code(&e) == Some(libc::ENODEV) => Vec::new(),
        Err(e) => return Err(nl("list addresses")(e)),
    };
    Ok(msgs
        .into_iter()
        .filter(|m| m.header.index == index)
        .collect())
}

async fn addresses(h: &Handle, index: u32, family: AddressFamily) -> Result<Vec<Cidr>> {
    Ok(address_messages(h, index, family)
        .await?
        .iter()
        .filter_map(|m| addr_of(m).map(|a| Cidr::new(a, m.header.prefix_len)))
        .collect())
}

/// The reference's `ensureAddr`: the gateway address on the bridge.
/// Returns the MAC it pinned the bridge to, if it did.
async fn ensure_addr(
    host: &Handle,
    br: &LinkMessage,
    name: &str,
    gw: Cidr,
    force: bool,
) -> Result<Option<String>> {
    let index = br.header.index;
    let family = if gw.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    for a in addresses(host, index, family).await? {
        if a.is_ipv4() != gw.is_ipv4() {
            continue;
        }
        if a == gw {
            return Ok(None);
        }
        let overlap = a.contains(gw.addr) || gw.contains(a.addr);
        if a.is_ipv4() || overlap {
            if !force {
                return Err(Error::Bridge {
                    msg: format!("{name:?} already has an IP address different from {gw}"),
                });
            }
            let mut m = AddressMessage::default();
            m.header.family = if a.is_ipv4() {
                AddressFamily::Inet
            } else {
                AddressFamily::Inet6
            };
            m.header.prefix_len = a.prefix;
            m.header.index = index;
            m.attributes.push(AddressAttribute::Address(a.addr));
            m.attributes.push(AddressAttribute::Local(a.addr));
            host.rtnetlink()
                .address()
                .del(m)
                .execute()
                .await
                .map_err(nl(format!("remove IP address from {name:?}")))?;
        }
    }
    match host
        .rtnetlink()
        .address()
        .add(index, gw.addr, gw.prefix)
        .execute()
        .await
    {
        Ok(()) => {}
        Err(e) if netns::error_code(&e) == Some(libc::EEXIST) => {}
        Err(e) => return Err(nl(format!("add IP address to {name:?}"))(e)),
    }
    // Pin the bridge's MAC (else it follows the lowest port's).
    let mac = attr(br, |a| match a {
        LinkAttribute::Address(m) => Some(m.clone()),
        _ => None,
    });
    if let Some(mac) = mac {
        host.rtnetlink()
            .link()
            .set(LinkUnspec::new_with_index(index).address(mac).build())
            .execute()
            .await
            .map_err(nl(format!("set {name:?}'s mac")))?;
        return Ok(Some(mac_of(br)));
    }
    Ok(None)
}

/// Waits for the host veth to be operationally up, as the reference does
/// (it looks after 0, 50, 500, 1000 and 1000 ms), looking more often at
/// first: the kernel's link watch usually marks it up within a
/// millisecond, and a first look that comes too early should not cost
/// 50 ms. The bound is the same, about 2.6 s.
async fn wait_port_up(host: &Handle, name: &str) -> Result<()> {
    const WAITS: [u64; 10] = [0, 1, 2, 5, 10, 30, 50, 500, 1000, 1000];
    for (i, ms) in WAITS.into_iter().enumerate() {
        if ms > 0 {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        let link = link_by_name(host, name)
            .await?
            .ok_or_else(|| Error::Bridge {
                msg: format!("failed to lookup {name:?}"),
            })?;
        let state = attr(&link, |a| match a {
            LinkAttribute::OperState(s) => Some(*s),
            _ => None,
        });
        if state == Some(State::Up) {
            return Ok(());
        }
        if i == WAITS.len() - 1 {
            return Err(Error::Bridge {
                msg: format!("bridge port in error state: {state:?}"),
            });
        }
    }
    Ok(())
}

fn name_of(msg: &LinkMessage) -> String {
    attr(msg, |a| match a {
        LinkAttribute::IfName(n) => Some(n.clone()),
        _ => None,
    })
    .unwrap_or_default()
}

/// ADD. On failure nothing this call made is left: the veth pair, the
/// IPAM lease, a bridge it created.
pub(crate) async fn add(inv: &Invocation, conf: &NetConf, ipam: &Ipam) -> Result<CniResult> {
    // `CNI_NETNS` is checked first, on this thread: a path that is not a
    // namespace fails before any lease is taken or link made (the
    // reference, too, opens it before it runs IPAM).
    let (path, cont_ns) = container_netns(&inv.netns)?;
    let host = open_host().await?;
    let mut made = Made::default();
    // The lease is taken while the links are made: host-local's file work
    // runs on the namespace thread (after the container's socket), a
    // delegated plugin as its own process.
    let (linked, leased) = tokio::join!(
        setup_links(&host, &cont_ns, path, conf, inv, &mut made),
        ipam.add(inv)
    );
    let failed = match (linked, leased) {
        (Ok((cont, links)), Ok(lease)) => {
            let ns = Namespaces { host, cont };
            match finish_add(&ns, conf, inv, links, lease).await {
                Ok(r) => return Ok(r),
                Err(e) => {
                    let _ = ipam.del(inv).await;
                    undo(&ns.host, &made).await;
                    return Err(e);
                }
            }
        }
        (Err(e), Ok(_)) => {
            let _ = ipam.del(inv).await;
            e
        }
        // Nothing was leased.
        (Ok(_), Err(e)) | (Err(_), Err(e)) if made.veth.is_none() => e,
        (Ok(_), Err(e)) => e,
        (Err(e), Err(_)) => e,
    };
    undo(&host, &made).await;
    Err(failed)
}

/// Removes what a failed ADD made: the pair (through its host end, which
/// takes the container's with it), and a bridge this call created if no
/// port joined it meanwhile.
async fn undo(host: &Handle, made: &Made) {
    if let Some(name) = &made.veth {
        let _ = host
            .rtnetlink()
            .link()
            .del_with_message(LinkUnspec::new_with_name(name).build())
            .execute()
            .await;
    }
    if let Some(br) = made.bridge {
        let links: Vec<LinkMessage> = host
            .rtnetlink()
            .link()
            .get()
            .execute()
            .try_collect()
            .await
            .unwrap_or_default();
        if !links.is_empty() && !links.iter().any(|l| controller(l) == Some(br)) {
            let _ = host.rtnetlink().link().del(br).execute().await;
        }
    }
}

async fn finish_add(
    ns: &Namespaces,
    conf: &NetConf,
    inv: &Invocation,
    links: Links,
    lease: Option<CniResult>,
) -> Result<CniResult> {
    let host_name = name_of(&links.host);
    let mut result = CniResult {
        cni_version: crate::types::CURRENT.into(),
        interfaces: vec![
            Interface {
                name: conf.bridge.clone(),
                mac: links.bridge_mac.clone(),
                sandbox: String::new(),
            },
            Interface {
                name: host_name.clone(),
                mac: mac_of(&links.host),
                sandbox: String::new(),
            },
            Interface {
                name: inv.ifname.clone(),
                mac: mac_of(&links.cont),
                sandbox: inv.netns.clone(),
            },
        ],
        ..CniResult::default()
    };
    let index = links.cont.header.index;
    if let Some(lease) = lease {
        result.ips = lease.ips;
        result.routes = lease.routes;
        if result.ips.is_empty() {
            return Err(Error::Delegate {
                code: crate::types::code::INTERNAL,
                msg: "IPAM plugin returned missing IP config".into(),
                details: String::new(),
            });
        }
        let gws = calc_gateways(&mut result, conf);
        if result.ips.iter().any(|i| !i.address.is_ipv4()) {
            container_enable_ipv6(ns, &inv.ifname).await?;
        }
        // The container's side (addresses, up, routes, then the host port
        // up) and the bridge's gateway addresses at the same time: each
        // namespace on its own socket.
        let cont_part = async {
            configure_iface(ns, &result, index, &inv.ifname).await?;
            wait_port_up(&ns.host, &host_name).await
        };
        let host_part = async {
            let mut pinned = None;
            for gw in &gws {
                if let Some(mac) = ensure_addr(
                    &ns.host,
                    &links.bridge,
                    &conf.bridge,
                    *gw,
                    conf.force_address,
                )
                .await?
                {
                    pinned = Some(mac);
                }
            }
            if gws.iter().any(|g| g.is_ipv4()) {
                ensure_sysctl("net/ipv4/ip_forward", "1")?;
            }
            if gws.iter().any(|g| !g.is_ipv4()) {
                ensure_sysctl("net/ipv6/conf/all/forwarding", "1")?;
            }
            Ok::<_, Error>(pinned)
        };
        // With IPv6 DAD on, the container's addresses settle first (up to
        // seconds) and only then does the bridge get its gateway (whose own
        // DAD then starts), as in the reference.
        let dad = conf.enabledad && result.ips.iter().any(|i| !i.address.is_ipv4());
        let pinned = if dad {
            cont_part.await?;
            host_part.await?
        } else {
            let (done, pinned) = tokio::join!(cont_part, host_part);
            done?;
            pinned?
        };
        if let Some(mac) = pinned {
            result.interfaces[0].mac = mac;
        }
        // Last: nothing after it can fail, so a failed
        // ADD never leaves rules (`setup_all` removes its own on failure).
        if conf.ip_masq {
            let addrs: Vec<Cidr> = result.ips.iter().map(|i| i.address).collect();
            crate::ipmasq::setup_all(&addrs, &conf.name, &inv.container_id).await?;
        }
    } else {
        ns.cont
            .rtnetlink()
            .link()
            .set(LinkUnspec::new_with_index(index).up().build())
            .execute()
            .await
            .map_err(nl(format!("set {:?} up", inv.ifname)))?;
    }
    // The bridge's MAC is the one read once the port joined, or the one
    // `ensure_addr` pinned: no third look.
    result.dns = conf.dns.clone();
    Ok(result)
}

/// DEL: the container's interface (its host peer goes with it) and the
/// lease, at the same time, then (`ipMasq`) the masquerading of the
/// addresses the interface had. A namespace or interface that is gone is
/// not an error (and, as in the reference, leaves no addresses to tear
/// masquerading down for).
///
/// The kernel's deletion of the pair takes most of a DEL (its waits for
/// RCU, see docs/cni.md); the lease files are released meanwhile, on the
/// namespace thread. The reference releases the lease first and deletes
/// the link only if that worked; here a failed release still deletes the
/// link, and either failure fails the call (a DEL is retried until it
/// succeeds, and both steps are idempotent).
pub(crate) async fn del(inv: &Invocation, conf: &NetConf, ipam: &Ipam) -> Result<()> {
    let link = async {
        let mut masq = Vec::new();
        if inv.netns.is_empty() {
            return Ok(masq);
        }
        let cont = match open_container(&inv.netns).await {
            Ok(cont) => cont,
            // The namespace is gone: only the lease is left to release.
            Err(Error::OpenNetns { .. }) => return Ok(masq),
            Err(e) => return Err(e),
        };
        if conf.ip_masq
            && conf.ipam_type().is_some()
            && let Some(link) = link_by_name(&cont, &inv.ifname).await?
        {
            masq = addresses(&cont, link.header.index, AddressFamily::Unspec)
                .await?
                .into_iter()
                .filter(|a| crate::ipmasq::is_global_unicast(a.addr))
                .collect();
        }
        let res = cont
            .rtnetlink()
            .link()
            .del_with_message(LinkUnspec::new_with_name(&inv.ifname).build())
            .execute()
            .await;
        match res {
            Ok(()) => Ok(masq),
            Err(e) if netns::error_code(&e) == Some(libc::ENODEV) => Ok(masq),
            Err(e) => Err(nl(format!("delete {:?}", inv.ifname))(e)),
        }
    };
    let (masq, released) = tokio::join!(link, ipam.del(inv));
    let masq = masq?;
    released?;
    crate::ipmasq::teardown_all(&masq, &conf.name, &inv.container_id).await
}

fn check_err(msg: String) -> Error {
    Error::Check { msg }
}

async fn routes(h: &Handle, v4: bool) -> Result<Vec<RouteMessage>> {
    // Only the family: with strict checking (the toolkit's sockets have
    // it) the kernel filters a dump on the header's other fields.
    let mut req = RouteMessage::default();
    req.header.address_family = if v4 {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    h.rtnetlink()
        .route()
        .get(req)
        .execute()
        .try_collect()
        .await
        .map_err(nl("list routes"))
}

fn route_addr(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(a) => Some(IpAddr::V4(*a)),
        RouteAddress::Inet6(a) => Some(IpAddr::V6(*a)),
        _ => None,
    }
}

fn route_dst_gw(m: &RouteMessage) -> (Option<Cidr>, Option<IpAddr>) {
    let mut dst = None;
    let mut gw = None;
    for a in &m.attributes {
        match a {
            RouteAttribute::Destination(d) => {
                dst = route_addr(d).map(|d| Cidr::new(d, m.header.destination_prefix_length));
            }
            RouteAttribute::Gateway(g) => gw = route_addr(g),
            _ => {}
        }
    }
    (dst, gw)
}

fn in_main_table(m: &RouteMessage) -> bool {
    let table = m
        .attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Table(t) => Some(*t),
            _ => None,
        })
        .unwrap_or(u32::from(m.header.table));
    table == 254
}

/// CHECK: the `prevResult`'s bridge, veth pair, addresses and routes are
/// there, and IPAM still holds the lease.
pub(crate) async fn check(inv: &Invocation, conf: &NetConf, ipam: &Ipam) -> Result<()> {
    let ns = open(&inv.netns).await?;
    ipam.check(inv).await?;
    let Some(prev) = &conf.prev_result else {
        return Err(check_err("Required prevResult missing".into()));
    };
    let result = CniResult::parse(prev).map_err(|msg| Error::Decode { msg })?;
    let br_if = result.interfaces.iter().find(|i| i.name == conf.bridge);
    let cont_if = result
        .interfaces
        .iter()
        .find(|i| i.name == inv.ifname && i.sandbox == inv.netns);
    // The bridge.
    let br_name = br_if.map(|i| i.name.clone()).unwrap_or_default();
    if br_name.is_empty() {
        return Err(check_err("Interface name missing ".into()));
    }
    let br = link_by_name(&ns.host, &br_name)
        .await?
        .ok_or_else(|| check_err(format!("Interface name {br_name} not found")))?;
    if kind_of(&br) != Some(InfoKind::Bridge) {
        return Err(check_err(format!(
            "Interface {br_name} does not have link type of bridge"
        )));
    }
    if let Some(i) = br_if
        && !i.mac.is_empty()
        && i.mac != mac_of(&br)
    {
        return Err(check_err(format!(
            "Bridge interface {br_name} Mac doesn't match: {}",
            i.mac
        )));
    }
    let promisc = br.header.flags.contains(LinkFlags::Promisc);
    if promisc != conf.promisc_mode {
        return Err(check_err(format!(
            "Bridge interface {br_name} configured Promisc Mode {} doesn't match current state: {promisc} ",
            conf.promisc_mode
        )));
    }
    // The container's end.
    let Some(cont_if) = cont_if else {
        return Err(check_err(format!(
            "Sandbox in prevResult  doesn't match configured netns: {}",
            inv.netns
        )));
    };
    let cont = link_by_name(&ns.cont, &cont_if.name)
        .await?
        .ok_or_else(|| check_err(format!("Interface name {} not found", cont_if.name)))?;
    if kind_of(&cont) != Some(InfoKind::Veth) {
        return Err(check_err(format!(
            "Error: Container interface {} not of type veth",
            cont_if.name
        )));
    }
    if !cont_if.mac.is_empty() && cont_if.mac != mac_of(&cont) {
        return Err(check_err(format!(
            "Interface {} Mac {} doesn't match container Mac: {}",
            cont_if.name,
            cont_if.mac,
            mac_of(&cont)
        )));
    }
    // The host's end: a veth of the result whose peer is the container's
    // end, in the bridge.
    let mut veth_found = false;
    for intf in &result.interfaces {
        if intf.name == br_name || intf.name == cont_if.name {
            continue;
        }
        if !intf.sandbox.is_empty() {
            return Err(check_err(format!(
                "Interface {} should not be in sandbox",
                intf.name
            )));
        }
        let Some(link) = link_by_name(&ns.host, &intf.name).await? else {
            return Err(check_err(format!("Interface name {} not found", intf.name)));
        };
        if kind_of(&link) != Some(InfoKind::Veth) {
            continue;
        }
        if Some(link.header.index) != peer_index(&cont)
            || peer_index(&link) != Some(cont.header.index)
            || controller(&link) != Some(br.header.index)
        {
            continue;
        }
        if !intf.mac.is_empty() && intf.mac != mac_of(&link) {
            return Err(check_err(format!(
                "Interface {} Mac doesn't match: {} not found",
                intf.name, intf.mac
            )));
        }
        veth_found = true;
        break;
    }
    if !veth_found {
        return Err(check_err(format!(
            "CNI veth created for bridge {} was not found",
            conf.bridge
        )));
    }
    // Addresses and routes in the container.
    let have = addresses(&ns.cont, cont.header.index, AddressFamily::Unspec).await?;
    for ip in &result.ips {
        if !have.contains(&ip.address) {
            return Err(check_err(format!(
                "Failed to match addr {} on interface {}",
                ip.address, inv.ifname
            )));
        }
        let net = Cidr::new(ip.address.network(), ip.address.prefix);
        let found = routes(&ns.cont, ip.address.is_ipv4())
            .await?
            .iter()
            .filter(|m| in_main_table(m))
            .any(|m| route_dst_gw(m).0 == Some(net));
        if !found {
            return Err(check_err(format!(
                "Failed to find Gateway {:?} for interface {}",
                ip.gateway, inv.ifname
            )));
        }
    }
    let family_gw = |v4: bool| {
        result
            .ips
            .iter()
            .filter(|i| i.address.is_ipv4() == v4)
            .find_map(|i| i.gateway)
    };
    for r in &result.routes {
        let default = r.dst.prefix == 0;
        // A route without `gw` was installed through its family's gateway.
        let want_gw = r.gw.or_else(|| family_gw(r.dst.is_ipv4()));
        let want = Cidr::new(r.dst.network(), r.dst.prefix);
        let found = routes(&ns.cont, r.dst.is_ipv4())
            .await?
            .iter()
            .filter(|m| in_main_table(m))
            .any(|m| {
                let (dst, gw) = route_dst_gw(m);
                if default {
                    dst.is_none()
                } else {
                    dst == Some(want) && gw == want_gw
                }
            });
        if !found {
            return Err(check_err(format!(
                "Expected Route {} via {:?} not found in routing table",
                r.dst, r.gw
            )));
        }
    }
    Ok(())
}
