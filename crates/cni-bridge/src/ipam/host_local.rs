//! `host-local` IPAM inside the plugin, reading and writing host-local's
//! own lease store, so that this plugin and the reference `host-local`
//! plugin can allocate from one range.
//!
//! The store, as the reference writes it (`plugins/ipam/host-local/backend/
//! disk`): a directory `<dataDir>/<network name>` (dataDir defaults to
//! `/var/lib/cni/networks`) holding
//! - one file per leased address, named by the address as Go prints it
//!   (`10.22.0.5`, `fd00::5`), created `O_EXCL` with mode 0644, containing
//!   `<container id>\r\n<ifname>` (files holding only the id, from older
//!   versions, are honoured too);
//! - `last_reserved_ip.<range set index>`: the last address reserved in
//!   that range set, where the next allocation starts (round robin);
//! - `lock`: every allocation and release holds an exclusive `flock(2)` on
//!   it.
//!
//! The allocator follows the reference's: a requested address (CNI_ARGS
//! `IP=`, `args.cni.ips`, `runtimeConfig.ips`) is reserved as is; otherwise
//! an id that already holds an address in the range set is refused, and the
//! search starts after the last reserved address, skips the gateway, wraps
//! around the range set once.

use std::ffi::CString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::dir::Dir;
use nix::fcntl::{Flock, FlockArg, OFlag, openat};
use nix::sys::stat::Mode;
use serde::Deserialize;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::types::{Cidr, CniResult, Dns, IpConfig, Route};

/// Where host-local keeps its leases unless `dataDir` says otherwise.
pub(crate) const DEFAULT_DATA_DIR: &str = "/var/lib/cni/networks";

const LAST_IP_PREFIX: &str = "last_reserved_ip.";

/// One range: `subnet`, first and last address (inclusive), gateway.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Range {
    pub(crate) subnet: Cidr,
    pub(crate) start: IpAddr,
    pub(crate) end: IpAddr,
    pub(crate) gateway: IpAddr,
}

fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

fn from_u128(v: u128, v4: bool) -> IpAddr {
    if v4 {
        IpAddr::V4(Ipv4Addr::from(v as u32))
    } else {
        IpAddr::V6(Ipv6Addr::from(v))
    }
}

fn next_ip(ip: IpAddr) -> IpAddr {
    from_u128(to_u128(ip).wrapping_add(1), ip.is_ipv4())
}

impl Range {
    /// Fills in the defaults and checks the range, with the reference's
    /// rules and messages.
    fn canonicalize(raw: &RawRange) -> std::result::Result<Range, String> {
        let subnet = raw.subnet;
        let max = if subnet.is_ipv4() { 32 } else { 128 };
        if subnet.prefix > max - 2 {
            return Err(format!("Network {subnet} too small to allocate from"));
        }
        let network = subnet.network();
        if network != subnet.addr {
            return Err(format!(
                "Network has host bits set. For a subnet mask of length {} the network address is {network}",
                subnet.prefix
            ));
        }
        let same_family = |ip: IpAddr| ip.is_ipv4() == subnet.is_ipv4();
        let mut r = Range {
            subnet,
            start: next_ip(network),
            end: last_ip(subnet),
            gateway: raw.gateway.unwrap_or_else(|| next_ip(network)),
        };
        if let Some(gw) = raw.gateway
            && !same_family(gw)
        {
            return Err(format!("gateway {gw} not in network {subnet}"));
        }
        if let Some(s) = raw.range_start {
            r.start = s;
            if !r.contains_bounds(s, false) {
                return Err(format!("RangeStart {s} not in network {subnet}"));
            }
        }
        if let Some(e) = raw.range_end {
            r.end = e;
            if !r.contains_bounds(e, false) {
                return Err(format!("RangeEnd {e} not in network {subnet}"));
            }
        }
        Ok(r)
    }

    fn contains_bounds(&self, ip: IpAddr, bounds: bool) -> bool {
        if ip.is_ipv4() != self.subnet.is_ipv4() || !self.subnet.contains(ip) {
            return false;
        }
        !bounds || (to_u128(ip) >= to_u128(self.start) && to_u128(ip) <= to_u128(self.end))
    }

    /// Whether `ip` is an allocatable address of this range.
    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        self.contains_bounds(ip, true)
    }

    fn overlaps(&self, other: &Range) -> bool {
        self.start.is_ipv4() == other.start.is_ipv4()
            && (self.contains(other.start)
                || self.contains(other.end)
                || other.contains(self.start)
                || other.contains(self.end))
    }
}

impl std::fmt::Display for Range {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.start, self.end)
    }
}

/// The last address of a subnet, the broadcast address excluded for IPv4.
fn last_ip(subnet: Cidr) -> IpAddr {
    match subnet.network() {
        IpAddr::V4(a) => {
            let last = u32::from(a) | !crate::types::prefix_mask_u32(subnet.prefix);
            IpAddr::V4(Ipv4Addr::from(last - 1))
        }
        IpAddr::V6(a) => {
            let last = u128::from(a) | !crate::types::prefix_mask_u128(subnet.prefix);
            IpAddr::V6(Ipv6Addr::from(last))
        }
    }
}

fn set_contains(set: &[Range], ip: IpAddr) -> bool {
    set.iter().any(|r| r.contains(ip))
}

fn set_string(set: &[Range]) -> String {
    set.iter()
        .map(Range::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

#[derive(Clone, Debug, Deserialize)]
struct RawRange {
    subnet: Cidr,
    #[serde(rename = "rangeStart", default)]
    range_start: Option<IpAddr>,
    #[serde(rename = "rangeEnd", default)]
    range_end: Option<IpAddr>,
    #[serde(default)]
    gateway: Option<IpAddr>,
}

#[derive(Debug, Deserialize)]
struct RawIpam {
    /// The old style: one range's keys directly in `ipam`.
    #[serde(flatten)]
    single: Option<RawRange>,
    #[serde(default)]
    ranges: Vec<Vec<RawRange>>,
    #[serde(default)]
    routes: Vec<Route>,
    #[serde(rename = "dataDir", default)]
    data_dir: String,
    #[serde(rename = "resolvConf", default)]
    resolv_conf: String,
}

/// An address asked for: `10.0.0.5` or `10.0.0.5/24` (the prefix is
/// ignored, as the reference's `ip.IP` does).
#[derive(Debug)]
struct AnyIp(IpAddr);

impl<'de> Deserialize<'de> for AnyIp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<AnyIp, D::Error> {
        let s = String::deserialize(d)?;
        let a = s.split('/').next().unwrap_or("");
        a.parse()
            .map(AnyIp)
            .map_err(|_| serde::de::Error::custom(format!("invalid IP address: {s}")))
    }
}

#[derive(Debug, Default, Deserialize)]
struct RawRuntime {
    #[serde(default)]
    ips: Vec<AnyIp>,
    #[serde(rename = "ipRanges", default)]
    ip_ranges: Vec<Vec<RawRange>>,
}

#[derive(Debug, Default, Deserialize)]
struct RawIpsArgs {
    #[serde(default)]
    ips: Vec<AnyIp>,
}

#[derive(Debug, Default, Deserialize)]
struct RawArgs {
    #[serde(default)]
    cni: Option<RawIpsArgs>,
}

#[derive(Debug, Deserialize)]
struct RawNet {
    #[serde(default)]
    name: String,
    ipam: Option<RawIpam>,
    #[serde(rename = "runtimeConfig", default)]
    runtime_config: Option<RawRuntime>,
    #[serde(default)]
    args: Option<RawArgs>,
}

/// host-local's configuration, as `LoadIPAMConfig` makes it.
#[derive(Debug)]
pub(crate) struct Config {
    pub(crate) name: String,
    pub(crate) data_dir: PathBuf,
    pub(crate) ranges: Vec<Vec<Range>>,
    pub(crate) routes: Vec<Route>,
    pub(crate) resolv_conf: String,
    pub(crate) requested: Vec<IpAddr>,
}

impl Config {
    /// Reads the whole network configuration (host-local reads more than
    /// its `ipam` key) and `CNI_ARGS`.
    pub(crate) fn load(conf: &Value, cni_args: &str) -> Result<Config> {
        let net: RawNet = serde_json::from_value(conf.clone())
            .map_err(|e| Error::Decode { msg: e.to_string() })?;
        let Some(ipam) = net.ipam else {
            return Err(Error::Config {
                msg: "IPAM config missing 'ipam' key".into(),
            });
        };
        let mut requested = Vec::new();
        for kv in cni_args.split(';').filter(|s| !s.is_empty()) {
            if let Some(("IP", v)) = kv.split_once('=') {
                let ip = v.parse().map_err(|_| Error::Config {
                    msg: format!("ARGS: error parsing value of pair {kv:?}"),
                })?;
                requested.push(ip);
            }
        }
        if let Some(a) = net.args.and_then(|a| a.cni) {
            requested.extend(a.ips.into_iter().map(|i| i.0));
        }
        let mut raw_sets: Vec<Vec<RawRange>> = Vec::new();
        if let Some(rt) = net.runtime_config {
            requested.extend(rt.ips.into_iter().map(|i| i.0));
            raw_sets.extend(rt.ip_ranges);
        }
        if let Some(single) = ipam.single {
            raw_sets.push(vec![single]);
        }
        raw_sets.extend(ipam.ranges);
        if raw_sets.is_empty() {
            return Err(Error::Config {
                msg: "no IP ranges specified".into(),
            });
        }
        let mut ranges = Vec::new();
        for (i, set) in raw_sets.iter().enumerate() {
            if set.is_empty() {
                return Err(Error::Config {
                    msg: format!("invalid range set {i}: empty range set"),
                });
            }
            let mut out = Vec::new();
            for raw in set {
                let r = Range::canonicalize(raw).map_err(|m| Error::Config {
                    msg: format!("invalid range set {i}: {m}"),
                })?;
                if out.iter().any(|o: &Range| o.overlaps(&r)) {
                    return Err(Error::Config {
                        msg: format!("invalid range set {i}: subnets overlap"),
                    });
                }
                out.push(r);
            }
            ranges.push(out);
        }
        for i in 0..ranges.len() {
            for j in i + 1..ranges.len() {
                if ranges[i]
                    .iter()
                    .any(|a| ranges[j].iter().any(|b| a.overlaps(b)))
                {
                    return Err(Error::Config {
                        msg: format!("range set {i} overlaps with {j}"),
                    });
                }
            }
        }
        let data_dir = if ipam.data_dir.is_empty() {
            PathBuf::from(DEFAULT_DATA_DIR)
        } else {
            PathBuf::from(ipam.data_dir)
        };
        Ok(Config {
            name: net.name,
            data_dir,
            ranges,
            routes: ipam.routes,
            resolv_conf: ipam.resolv_conf,
            requested,
        })
    }
}

/// The lease directory of one network, locked for as long as this lives.
pub(crate) struct Store {
    dir: PathBuf,
    _lock: Flock<File>,
}

/// Replaces a small file's content in place: written over from offset 0,
/// then cut to the new length only if it was longer. Not `O_TRUNC`: on
/// ext4, truncating a file that holds data to zero frees its block in a
/// journal transaction (and flushes its delayed allocation on close), which
/// measured 2-5 ms per ADD on this file alone; an overwrite of the same
/// length (an address after another of its range) only dirties a page.
/// Readers hold the store's lock, so none sees the file half written.
fn overwrite(path: &Path, content: &[u8]) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    let f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .open(path)?;
    f.write_all_at(content, 0)?;
    if f.metadata()?.len() > content.len() as u64 {
        f.set_len(content.len() as u64)?;
    }
    Ok(())
}

/// The network's lease directory.
fn dir_of(config: &Config) -> PathBuf {
    config.data_dir.join(&config.name)
}

/// One lease file's content, or `None` if it is gone or unreadable: one
/// `openat` on the directory's fd and one `read` for a lease of usual size
/// (`<id>\r\n<ifname>`), no `stat`. A read that fills the buffer goes on;
/// a shorter one is the end of a regular file.
fn read_lease(dir: &Dir, name: &CString) -> Option<String> {
    let flags = OFlag::O_RDONLY | OFlag::O_CLOEXEC;
    let fd = openat(dir, name.as_c_str(), flags, Mode::empty()).ok()?;
    read_small(File::from(fd))
}

/// A small file's content (a lease): reads until a short read, no `stat`.
fn read_small(mut file: File) -> Option<String> {
    let mut buf = [0u8; 256];
    let mut content = Vec::new();
    loop {
        match file.read(&mut buf) {
            Ok(n) => {
                content.extend_from_slice(&buf[..n]);
                if n < buf.len() {
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    String::from_utf8(content).ok()
}

/// Every lease file of `dir` (files that are not leases, the lock and the
/// last-reserved files, are skipped by their names) and its content.
///
/// Used with or without the store's lock. Without it, a lease being
/// created meanwhile may be read empty and one being removed may be
/// missed: neither matters to a call looking for its own container's
/// leases, which no other call writes at the same time (the spec forbids a
/// runtime parallel operations on one container).
fn scan(dir: &Path) -> Vec<(PathBuf, IpAddr, String)> {
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    let Ok(mut d) = Dir::open(dir, flags, Mode::empty()) else {
        return Vec::new();
    };
    let names: Vec<(CString, IpAddr)> = d
        .iter()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name();
            let ip = name.to_str().ok()?.parse::<IpAddr>().ok()?;
            Some((name.to_owned(), ip))
        })
        .collect();
    let mut out = Vec::with_capacity(names.len());
    for (name, ip) in names {
        if let Some(content) = read_lease(&d, &name) {
            out.push((dir.join(ip.to_string()), ip, content));
        }
    }
    out
}

fn lease_key(id: &str, ifname: &str) -> String {
    format!("{}\r\n{ifname}", id.trim())
}

/// The addresses of `leases` held by `(id, ifname)` (or by `id` alone, the
/// older format).
fn leased(leases: &[(PathBuf, IpAddr, String)], id: &str, ifname: &str) -> Vec<IpAddr> {
    let key = lease_key(id, ifname);
    leases
        .iter()
        .filter(|(_, _, c)| held_by(c, &key, id))
        .map(|(_, ip, _)| *ip)
        .collect()
}

/// Whether a lease's content is `key` (`<id>\r\n<ifname>`) or, in the
/// older format, `id` alone.
fn held_by(content: &str, key: &str, id: &str) -> bool {
    let c = content.trim();
    c == key || c == id.trim()
}

impl Store {
    /// Opens (making it if needed) the network's directory and takes its
    /// lock, waiting for another allocator to be done.
    pub(crate) fn lock(config: &Config) -> Result<Store> {
        let dir = dir_of(config);
        let store_err = |op, path: &Path| {
            let path = path.to_path_buf();
            move |source| Error::Store { op, path, source }
        };
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(&dir)
            .map_err(store_err("create directory", &dir))?;
        let lock_path = dir.join("lock");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&lock_path)
            .map_err(store_err("open lock", &lock_path))?;
        let lock = Flock::lock(file, FlockArg::LockExclusive)
            .map_err(|(_, e)| store_err("lock", &lock_path)(io::Error::from(e)))?;
        Ok(Store { dir, _lock: lock })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Creates the lease file of `ip` if nobody holds it; records it as the
    /// last reserved address of range set `set`.
    fn reserve(&self, id: &str, ifname: &str, ip: IpAddr, set: usize) -> Result<bool> {
        let path = self.path(&ip.to_string());
        let mut f = match OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(false),
            Err(source) => {
                return Err(Error::Store {
                    op: "create lease",
                    path,
                    source,
                });
            }
        };
        let content = format!("{}\r\n{ifname}", id.trim());
        if let Err(source) = f.write_all(content.as_bytes()) {
            drop(f);
            let _ = fs::remove_file(&path);
            return Err(Error::Store {
                op: "write lease",
                path,
                source,
            });
        }
        drop(f);
        let last = self.path(&format!("{LAST_IP_PREFIX}{set}"));
        overwrite(&last, ip.to_string().as_bytes()).map_err(|source| Error::Store {
            op: "write",
            path: last,
            source,
        })?;
        Ok(true)
    }

    fn last_reserved(&self, set: usize) -> Option<IpAddr> {
        fs::read_to_string(self.path(&format!("{LAST_IP_PREFIX}{set}")))
            .ok()
            .and_then(|s| s.trim().parse().ok())
    }

    /// Every lease file and its content, read under the lock.
    fn leases(&self) -> Vec<(PathBuf, IpAddr, String)> {
        scan(&self.dir)
    }

    /// The addresses leased to `(id, ifname)` (or to `id` alone, older format).
    pub(crate) fn by_id(&self, id: &str, ifname: &str) -> Vec<IpAddr> {
        leased(&self.leases(), id, ifname)
    }

    /// Removes the leases of `(id, ifname)` among `candidates` (a [`scan`]
    /// made with or without the lock), failing any, those of `id` alone;
    /// each is read again under the lock first, and left if it changed.
    fn release(&self, id: &str, ifname: &str, candidates: &[(PathBuf, IpAddr, String)]) {
        let key = lease_key(id, ifname);
        for wanted in [key.as_str(), id.trim()] {
            let mut found = false;
            for (path, _, c) in candidates {
                if c.trim() != wanted {
                    continue;
                }
                let still = File::open(path)
                    .ok()
                    .and_then(read_small)
                    .is_some_and(|now| now.trim() == wanted);
                if still && fs::remove_file(path).is_ok() {
                    found = true;
                }
            }
            if found {
                break;
            }
        }
    }

    /// Allocates one address from range set `set` for `(id, ifname)`, as
    /// the reference's `IPAllocator.Get` does.
    fn allocate(
        &self,
        ranges: &[Range],
        set: usize,
        id: &str,
        ifname: &str,
        requested: Option<IpAddr>,
        mine: &[IpAddr],
    ) -> Result<IpConfig> {
        if let Some(ip) = requested {
            let Some(r) = ranges.iter().find(|r| r.contains(ip)) else {
                return Err(Error::Allocate {
                    msg: format!("{ip} not in range set {}", set_string(ranges)),
                });
            };
            if ip == r.gateway {
                return Err(Error::Allocate {
                    msg: format!("requested ip {ip} is subnet's gateway"),
                });
            }
            if !self.reserve(id, ifname, ip, set)? {
                return Err(Error::Allocate {
                    msg: format!(
                        "requested IP address {ip} is not available in range set {}",
                        set_string(ranges)
                    ),
                });
            }
            return Ok(IpConfig {
                interface: None,
                address: Cidr::new(ip, r.subnet.prefix),
                gateway: Some(r.gateway),
            });
        }
        for &ip in mine {
            if set_contains(ranges, ip) {
                return Err(Error::Allocate {
                    msg: format!(
                        "{ip} has been allocated to {id}, duplicate allocation is not allowed"
                    ),
                });
            }
        }
        let mut iter = RangeIter::new(ranges, self.last_reserved(set));
        while let Some((ip, r)) = iter.next() {
            if self.reserve(id, ifname, ip, set)? {
                return Ok(IpConfig {
                    interface: None,
                    address: Cidr::new(ip, r.subnet.prefix),
                    gateway: Some(r.gateway),
                });
            }
        }
        Err(Error::Allocate {
            msg: format!(
                "no IP addresses available in range set: {}",
                set_string(ranges)
            ),
        })
    }
}

/// The reference's round-robin iterator over a range set.
struct RangeIter<'a> {
    ranges: &'a [Range],
    idx: usize,
    cur: Option<IpAddr>,
    start: Option<IpAddr>,
}

impl<'a> RangeIter<'a> {
    fn new(ranges: &'a [Range], last: Option<IpAddr>) -> RangeIter<'a> {
        let mut it = RangeIter {
            ranges,
            idx: 0,
            cur: None,
            start: None,
        };
        if let Some(last) = last
            && let Some(i) = ranges.iter().position(|r| r.contains(last))
        {
            it.idx = i;
            it.cur = Some(last);
        } else {
            it.start = Some(ranges[0].start);
        }
        it
    }

    fn next(&mut self) -> Option<(IpAddr, &'a Range)> {
        loop {
            let r = &self.ranges[self.idx];
            let Some(cur) = self.cur else {
                self.cur = Some(r.start);
                self.start = Some(r.start);
                if r.start == r.gateway {
                    continue;
                }
                return Some((r.start, r));
            };
            let (next, r) = if cur == r.end {
                self.idx = (self.idx + 1) % self.ranges.len();
                let r = &self.ranges[self.idx];
                (r.start, r)
            } else {
                (next_ip(cur), r)
            };
            self.cur = Some(next);
            match self.start {
                None => self.start = Some(next),
                Some(s) if s == next => return None,
                Some(_) => {}
            }
            if next == r.gateway {
                continue;
            }
            return Some((next, r));
        }
    }
}

/// Parses a resolv.conf into the result's DNS settings, as host-local does.
fn parse_resolv_conf(path: &str) -> Result<Dns> {
    let text = fs::read_to_string(path).map_err(|source| Error::Store {
        op: "read resolvConf",
        path: path.into(),
        source,
    })?;
    let mut dns = Dns::default();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let mut f = line.split_whitespace();
        match (f.next(), f.collect::<Vec<_>>()) {
            (Some("nameserver"), v) => dns.nameservers.extend(v.iter().map(|s| s.to_string())),
            (Some("domain"), v) if !v.is_empty() => dns.domain = v[0].into(),
            (Some("search"), v) => dns.search.extend(v.iter().map(|s| s.to_string())),
            (Some("options"), v) => dns.options.extend(v.iter().map(|s| s.to_string())),
            _ => {}
        }
    }
    Ok(dns)
}

/// host-local's ADD: one address per range set, all or nothing.
pub(crate) fn add(config: &Config, id: &str, ifname: &str) -> Result<CniResult> {
    let mut result = CniResult {
        cni_version: crate::types::CURRENT.into(),
        ..CniResult::default()
    };
    if !config.resolv_conf.is_empty() {
        result.dns = parse_resolv_conf(&config.resolv_conf)?;
    }
    // The container's leases, for the duplicate check, are read before
    // the lock is taken: the scan reads every lease of the network, and
    // under the lock it would hold up every other allocation (a burst of
    // ADDs) for its whole length.
    let mine = leased(&scan(&dir_of(config)), id, ifname);
    let store = Store::lock(config)?;
    let mut requested = config.requested.clone();
    for (i, set) in config.ranges.iter().enumerate() {
        let want = requested
            .iter()
            .position(|ip| set_contains(set, *ip))
            .map(|p| requested.remove(p));
        match store.allocate(set, i, id, ifname, want, &mine) {
            Ok(ip) => result.ips.push(ip),
            Err(e) => {
                store.release(id, ifname, &store.leases());
                return Err(match e {
                    Error::Allocate { msg } => Error::Allocate {
                        msg: format!("failed to allocate for range {i}: {msg}"),
                    },
                    other => other,
                });
            }
        }
    }
    if !requested.is_empty() {
        store.release(id, ifname, &store.leases());
        let list: Vec<String> = requested.iter().map(IpAddr::to_string).collect();
        return Err(Error::Allocate {
            msg: format!("failed to allocate all requested IPs: {}", list.join(" ")),
        });
    }
    result.routes = config.routes.clone();
    Ok(result)
}

/// host-local's DEL: releases every lease of `(id, ifname)`.
///
/// The leases are looked for before the lock is taken (see [`scan`]), and
/// only those found are read again, under it, before they are removed: the
/// lock is held for a few system calls, not for a read of every lease. With
/// none found, the lock is not taken at all.
pub(crate) fn del(config: &Config, id: &str, ifname: &str) -> Result<()> {
    let key = lease_key(id, ifname);
    let candidates: Vec<_> = scan(&dir_of(config))
        .into_iter()
        .filter(|(_, _, c)| held_by(c, &key, id))
        .collect();
    if !candidates.is_empty() {
        Store::lock(config)?.release(id, ifname, &candidates);
    }
    Ok(())
}

/// GC (spec 1.1.0): removes every lease whose `(id, ifname)` is not in
/// `valid` (a lease of the older, id-only format stays if its id is).
pub(crate) fn gc(config: &Config, valid: &[(String, String)]) -> Result<()> {
    let store = Store::lock(config)?;
    let mut first_error = None;
    for (path, _, content) in store.leases() {
        let content = content.trim();
        let (id, ifname) = match content.split_once("\r\n") {
            Some((id, ifname)) => (id.trim(), Some(ifname.trim())),
            None => (content, None),
        };
        let keep = valid
            .iter()
            .any(|(v_id, v_if)| v_id == id && ifname.is_none_or(|i| i == v_if));
        if !keep && let Err(source) = fs::remove_file(&path) {
            first_error.get_or_insert(Error::Store {
                op: "remove lease",
                path,
                source,
            });
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// STATUS (spec 1.1.0): every range set has an address left.
pub(crate) fn status(config: &Config) -> Result<()> {
    let store = Store::lock(config)?;
    let leased: Vec<IpAddr> = store.leases().into_iter().map(|(_, ip, _)| ip).collect();
    for set in &config.ranges {
        let capacity: u128 = set
            .iter()
            .map(|r| {
                let n = to_u128(r.end) - to_u128(r.start) + 1;
                n - u128::from(r.contains(r.gateway))
            })
            .sum();
        let used = leased.iter().filter(|ip| set_contains(set, **ip)).count() as u128;
        if used >= capacity {
            return Err(Error::NotAvailable {
                msg: format!(
                    "no IP addresses available in range set: {}",
                    set_string(set)
                ),
            });
        }
    }
    Ok(())
}

/// host-local's CHECK: at least one lease of the container exists.
pub(crate) fn check(config: &Config, id: &str, ifname: &str) -> Result<()> {
    let store = Store::lock(config)?;
    if store.by_id(id, ifname).is_empty() {
        return Err(Error::Check {
            msg: format!("host-local: Failed to find address added by container {id}"),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn conf(dir: &Path, ipam: Value) -> Config {
        let mut ipam = ipam;
        ipam["dataDir"] = json!(dir);
        ipam["type"] = json!("host-local");
        Config::load(
            &json!({"name": "net", "cniVersion": "1.0.0", "ipam": ipam}),
            "",
        )
        .unwrap()
    }

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("cni-bridge-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn ranges_get_the_reference_defaults() {
        let c = conf(Path::new("/nonexistent"), json!({"subnet": "10.1.0.0/16"}));
        let r = &c.ranges[0][0];
        assert_eq!(r.start.to_string(), "10.1.0.1");
        assert_eq!(r.end.to_string(), "10.1.255.254");
        assert_eq!(r.gateway.to_string(), "10.1.0.1");
        let c = conf(
            Path::new("/x"),
            json!({"ranges": [[{"subnet": "fd00::/120"}]]}),
        );
        assert_eq!(c.ranges[0][0].end.to_string(), "fd00::ff");
        let bad = Config::load(
            &json!({"name": "n", "ipam": {"type": "host-local", "subnet": "10.0.0.1/24"}}),
            "",
        );
        assert!(matches!(bad, Err(Error::Config { .. })));
        let small = Config::load(
            &json!({"name": "n", "ipam": {"type": "host-local", "subnet": "10.0.0.0/31"}}),
            "",
        );
        assert!(matches!(small, Err(Error::Config { .. })));
    }

    #[test]
    fn allocates_round_robin_in_the_reference_format() {
        let dir = tmp("rr");
        let c = conf(&dir, json!({"subnet": "10.9.0.0/29"}));
        let a = add(&c, "c1", "eth0").unwrap();
        assert_eq!(a.ips[0].address.to_string(), "10.9.0.2/29");
        assert_eq!(a.ips[0].gateway.unwrap().to_string(), "10.9.0.1");
        let lease = fs::read_to_string(dir.join("net/10.9.0.2")).unwrap();
        assert_eq!(lease, "c1\r\neth0");
        assert_eq!(
            fs::read_to_string(dir.join("net/last_reserved_ip.0")).unwrap(),
            "10.9.0.2"
        );
        assert!(dir.join("net/lock").exists());
        // A second ADD of the same attachment is refused.
        assert!(matches!(add(&c, "c1", "eth0"), Err(Error::Allocate { .. })));
        let b = add(&c, "c2", "eth0").unwrap();
        assert_eq!(b.ips[0].address.to_string(), "10.9.0.3/29");
        del(&c, "c1", "eth0").unwrap();
        // Round robin: the next one continues after .3, not at the freed .2.
        let d = add(&c, "c3", "eth0").unwrap();
        assert_eq!(d.ips[0].address.to_string(), "10.9.0.4/29");
        for id in ["c4", "c5"] {
            add(&c, id, "eth0").unwrap();
        }
        // .2 is free again, then the range (.2-.6) is full.
        assert_eq!(
            add(&c, "c6", "eth0").unwrap().ips[0].address.to_string(),
            "10.9.0.2/29"
        );
        assert!(matches!(add(&c, "c7", "eth0"), Err(Error::Allocate { .. })));
        check(&c, "c2", "eth0").unwrap();
        assert!(check(&c, "c1", "eth0").is_err());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn requested_addresses_and_dual_stack() {
        let dir = tmp("req");
        let ipam = json!({"ranges": [[{"subnet": "10.8.0.0/24"}], [{"subnet": "fd00:8::/64"}]]});
        let mut c = conf(&dir, ipam);
        c.requested = vec!["10.8.0.50".parse().unwrap()];
        let r = add(&c, "c1", "eth0").unwrap();
        assert_eq!(r.ips[0].address.to_string(), "10.8.0.50/24");
        assert_eq!(r.ips[1].address.to_string(), "fd00:8::2/64");
        assert!(dir.join("net/fd00:8::2").exists());
        c.requested = vec!["10.8.0.50".parse().unwrap()];
        assert!(add(&c, "c2", "eth0").is_err());
        // Nothing half made: c2 holds no IPv6 lease.
        let store = Store::lock(&c).unwrap();
        assert!(store.by_id("c2", "eth0").is_empty());
        drop(store);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn leases_of_long_ids_and_the_older_format_are_found_and_released() {
        let dir = tmp("fmt");
        let c = conf(&dir, json!({"subnet": "10.7.0.0/24"}));
        // An id longer than one read of a lease file.
        let long = "x".repeat(300);
        add(&c, &long, "eth0").unwrap();
        assert!(matches!(
            add(&c, &long, "eth0"),
            Err(Error::Allocate { .. })
        ));
        del(&c, &long, "eth0").unwrap();
        assert!(!dir.join("net/10.7.0.2").exists());
        // A lease written by an older host-local: the id alone.
        fs::write(dir.join("net/10.7.0.9"), "old").unwrap();
        assert!(matches!(
            add(&c, "old", "eth0"),
            Err(Error::Allocate { .. })
        ));
        del(&c, "old", "eth0").unwrap();
        assert!(!dir.join("net/10.7.0.9").exists());
        // DEL of an attachment with no lease takes no lock and succeeds.
        del(&c, "none", "eth0").unwrap();
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_lease_that_changed_hands_since_the_scan_is_left() {
        let dir = tmp("race");
        let c = conf(&dir, json!({"subnet": "10.6.0.0/24"}));
        add(&c, "c1", "eth0").unwrap();
        let found = scan(&dir_of(&c));
        assert_eq!(leased(&found, "c1", "eth0").len(), 1);
        // Between the scan and the lock, the address was released and
        // taken by another container.
        fs::write(dir.join("net/10.6.0.2"), "c2\r\neth0").unwrap();
        Store::lock(&c).unwrap().release("c1", "eth0", &found);
        assert_eq!(
            fs::read_to_string(dir.join("net/10.6.0.2")).unwrap(),
            "c2\r\neth0"
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}
