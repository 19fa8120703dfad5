//! The spec's JSON: the network configuration this plugin reads, results
//! (kept as 1.0.0 inside, written in the version the configuration asks
//! for) and errors.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// The spec versions this plugin speaks (0.3.x results are 0.4.0's shape,
/// 1.1.0's are 1.0.0's).
pub(crate) const SUPPORTED_VERSIONS: &[&str] = &["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/// The version results are built in before conversion.
pub(crate) const CURRENT: &str = "1.0.0";

/// An address with its prefix length, as the spec writes it ("10.1.0.2/16").
/// The address keeps its host bits (like Go's `types.IPNet`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Cidr {
    pub(crate) addr: IpAddr,
    pub(crate) prefix: u8,
}

impl Cidr {
    pub(crate) fn new(addr: IpAddr, prefix: u8) -> Cidr {
        Cidr { addr, prefix }
    }

    /// The network address (host bits cleared).
    pub(crate) fn network(&self) -> IpAddr {
        match self.addr {
            IpAddr::V4(a) => {
                let m = prefix_mask_u32(self.prefix);
                IpAddr::V4((u32::from(a) & m).into())
            }
            IpAddr::V6(a) => {
                let m = prefix_mask_u128(self.prefix);
                IpAddr::V6((u128::from(a) & m).into())
            }
        }
    }

    /// Whether `ip` lies inside this network.
    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        Cidr::new(ip, self.prefix).network() == self.network() && ip.is_ipv4() == self.is_ipv4()
    }

    pub(crate) fn is_ipv4(&self) -> bool {
        self.addr.is_ipv4()
    }
}

pub(crate) fn prefix_mask_u32(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix.min(32)))
    }
}

pub(crate) fn prefix_mask_u128(prefix: u8) -> u128 {
    if prefix == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(prefix.min(128)))
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Cidr, String> {
        let (a, p) = s
            .split_once('/')
            .ok_or_else(|| format!("invalid CIDR address: {s}"))?;
        let addr: IpAddr = a
            .parse()
            .map_err(|_| format!("invalid CIDR address: {s}"))?;
        let prefix: u8 = p
            .parse()
            .map_err(|_| format!("invalid CIDR address: {s}"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            return Err(format!("invalid CIDR address: {s}"));
        }
        Ok(Cidr { addr, prefix })
    }
}

impl Serialize for Cidr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Cidr, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// One interface of a result.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Interface {
    pub(crate) name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) mac: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) sandbox: String,
}

/// One address of a result (1.0.0 shape; 0.x's `version` is read and
/// dropped, and written back on conversion).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct IpConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) interface: Option<usize>,
    pub(crate) address: Cidr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) gateway: Option<IpAddr>,
}

/// One route of a result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Route {
    pub(crate) dst: Cidr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) gw: Option<IpAddr>,
}

/// DNS settings of a result or configuration.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Dns {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) nameservers: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) domain: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) search: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) options: Vec<String>,
}

/// A result, in the 1.0.0 shape. As the reference's Go types write it,
/// empty lists are left out and `dns` is always there (an empty object if
/// nothing is known).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct CniResult {
    #[serde(rename = "cniVersion", default)]
    pub(crate) cni_version: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) interfaces: Vec<Interface>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) ips: Vec<IpConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) routes: Vec<Route>,
    #[serde(default, deserialize_with = "null_default")]
    pub(crate) dns: Dns,
}

fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

impl CniResult {
    /// Reads a result of any supported version (a delegated plugin's, or a
    /// `prevResult`) into the 1.0.0 shape.
    pub(crate) fn parse(value: &Value) -> Result<CniResult, String> {
        let version = value
            .get("cniVersion")
            .and_then(Value::as_str)
            .unwrap_or("");
        if !SUPPORTED_VERSIONS.contains(&version) {
            return Err(format!(
                "unsupported result version {version:?} (supported: {})",
                SUPPORTED_VERSIONS.join(", ")
            ));
        }
        let mut r: CniResult =
            serde_json::from_value(value.clone()).map_err(|e| format!("invalid result: {e}"))?;
        r.cni_version = CURRENT.into();
        Ok(r)
    }

    /// The result written for a configuration of `version` (a supported
    /// one): 1.x as is, 0.3.x and 0.4.0 with each address's `version`.
    pub(crate) fn to_version(&self, version: &str) -> Value {
        let mut r = self.clone();
        r.cni_version = version.into();
        let mut v = serde_json::to_value(&r).unwrap_or(Value::Null);
        if version.starts_with("0.")
            && let Some(ips) = v.get_mut("ips").and_then(Value::as_array_mut)
        {
            for (ip, cfg) in ips.iter_mut().zip(&self.ips) {
                if let Value::Object(map) = ip {
                    let mut with = Map::new();
                    let fam = if cfg.address.is_ipv4() { "4" } else { "6" };
                    with.insert("version".into(), Value::String(fam.into()));
                    with.extend(std::mem::take(map));
                    *map = with;
                }
            }
        }
        v
    }
}

/// The `runtimeConfig` / `args.cni` keys this plugin reads.
#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct MacArg {
    #[serde(default)]
    pub(crate) mac: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct CniArgs {
    #[serde(default)]
    pub(crate) cni: MacArg,
}

fn default_bridge() -> String {
    "cni0".into()
}

/// The bridge plugin's configuration, with the reference's keys and
/// defaults, plus `delegateIPAM` (this plugin's own).
#[derive(Clone, Debug, Deserialize)]
pub(crate) struct NetConf {
    /// The network's name (checked before this is parsed).
    #[serde(default)]
    pub(crate) name: String,
    #[serde(default = "default_bridge")]
    pub(crate) bridge: String,
    #[serde(rename = "isGateway", default)]
    pub(crate) is_gateway: bool,
    #[serde(rename = "isDefaultGateway", default)]
    pub(crate) is_default_gateway: bool,
    #[serde(rename = "forceAddress", default)]
    pub(crate) force_address: bool,
    #[serde(rename = "ipMasq", default)]
    pub(crate) ip_masq: bool,
    #[serde(default)]
    pub(crate) mtu: u32,
    #[serde(rename = "hairpinMode", default)]
    pub(crate) hairpin_mode: bool,
    #[serde(rename = "promiscMode", default)]
    pub(crate) promisc_mode: bool,
    #[serde(default)]
    pub(crate) vlan: i64,
    #[serde(default)]
    pub(crate) macspoofchk: bool,
    #[serde(default)]
    pub(crate) enabledad: bool,
    #[serde(default)]
    pub(crate) ipam: Option<Value>,
    #[serde(default, deserialize_with = "null_default")]
    pub(crate) dns: Dns,
    #[serde(rename = "prevResult", default)]
    pub(crate) prev_result: Option<Value>,
    #[serde(rename = "runtimeConfig", default, deserialize_with = "null_default")]
    pub(crate) runtime_config: MacArg,
    #[serde(default, deserialize_with = "null_default")]
    pub(crate) args: CniArgs,
    /// Run the `host-local` IPAM plugin as a separate process (as the spec
    /// describes delegation) instead of this plugin's own host-local.
    #[serde(rename = "delegateIPAM", default)]
    pub(crate) delegate_ipam: bool,
}

impl NetConf {
    /// The IPAM plugin's type, if the configuration has one.
    pub(crate) fn ipam_type(&self) -> Option<&str> {
        self.ipam
            .as_ref()
            .and_then(|v| v.get("type"))
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
    }
}

/// The spec's error codes this plugin returns (and 999, the reference
/// library's code for any other failure).
pub(crate) mod code {
    pub(crate) const INCOMPATIBLE_VERSION: u32 = 1;
    pub(crate) const UNKNOWN_CONTAINER: u32 = 3;
    pub(crate) const INVALID_ENV: u32 = 4;
    pub(crate) const IO_FAILURE: u32 = 5;
    pub(crate) const DECODE: u32 = 6;
    pub(crate) const INVALID_CONFIG: u32 = 7;
    pub(crate) const NOT_AVAILABLE: u32 = 50;
    pub(crate) const INTERNAL: u32 = 999;
}

/// The spec's error result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct CniError {
    #[serde(
        rename = "cniVersion",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub(crate) cni_version: String,
    pub(crate) code: u32,
    pub(crate) msg: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) details: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_round_trips_and_masks() {
        let c: Cidr = "10.1.2.3/16".parse().unwrap();
        assert_eq!(c.to_string(), "10.1.2.3/16");
        assert_eq!(c.network().to_string(), "10.1.0.0");
        assert!(c.contains("10.1.255.255".parse().unwrap()));
        assert!(!c.contains("10.2.0.0".parse().unwrap()));
        let c6: Cidr = "fd00:1::5/64".parse().unwrap();
        assert_eq!(c6.network().to_string(), "fd00:1::");
        assert!("10.0.0.1/33".parse::<Cidr>().is_err());
        assert!("10.0.0.1".parse::<Cidr>().is_err());
    }

    #[test]
    fn results_convert_between_versions() {
        let v040 = serde_json::json!({
            "cniVersion": "0.4.0",
            "ips": [{"version": "4", "address": "10.0.0.2/24", "gateway": "10.0.0.1"}],
            "routes": [{"dst": "0.0.0.0/0"}],
            "dns": {}
        });
        let r = CniResult::parse(&v040).unwrap();
        assert_eq!(r.cni_version, "1.0.0");
        assert_eq!(r.ips[0].address.to_string(), "10.0.0.2/24");
        assert_eq!(r.to_version("0.4.0"), v040);
        let v100 = r.to_version("1.0.0");
        assert_eq!(v100["ips"][0].get("version"), None);
        assert_eq!(v100["dns"], serde_json::json!({}));
        assert!(CniResult::parse(&serde_json::json!({"cniVersion": "0.2.0"})).is_err());
    }
}
