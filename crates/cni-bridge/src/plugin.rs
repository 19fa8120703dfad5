//! The spec's execution protocol: `CNI_*` variables, configuration on
//! stdin, the result or error on stdout.

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::error::{Error, Result};
use crate::ipam::Ipam;
use crate::types::{CURRENT, CniError, NetConf, SUPPORTED_VERSIONS};

/// The operation asked for by `CNI_COMMAND`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Command {
    Add,
    Del,
    Check,
    Version,
    /// Spec 1.1.0.
    Gc,
    /// Spec 1.1.0.
    Status,
}

impl Command {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Command::Add => "ADD",
            Command::Del => "DEL",
            Command::Check => "CHECK",
            Command::Version => "VERSION",
            Command::Gc => "GC",
            Command::Status => "STATUS",
        }
    }
}

/// One call of the plugin: its `CNI_*` environment and its stdin.
///
/// # Examples
///
/// ```
/// let inv = cni_bridge::Invocation::new(
///     [("CNI_COMMAND", "VERSION")],
///     br#"{"cniVersion":"1.0.0"}"#.to_vec(),
/// );
/// ```
#[derive(Clone, Debug)]
pub struct Invocation {
    vars: HashMap<String, String>,
    pub(crate) command: String,
    pub(crate) container_id: String,
    pub(crate) netns: String,
    pub(crate) ifname: String,
    pub(crate) args: String,
    pub(crate) path: String,
    pub(crate) stdin: Vec<u8>,
    /// `MAC=` of `CNI_ARGS`.
    pub(crate) mac_arg: String,
}

impl Invocation {
    /// A call with these environment variables (only `CNI_*` and the
    /// plugin's own `NETNS_BRIDGE_*` are read) and this configuration.
    ///
    /// # Examples
    ///
    /// ```
    /// let inv = cni_bridge::Invocation::new([("CNI_COMMAND", "DEL")], Vec::new());
    /// ```
    pub fn new<K: Into<String>, V: Into<String>>(
        vars: impl IntoIterator<Item = (K, V)>,
        stdin: Vec<u8>,
    ) -> Invocation {
        let vars: HashMap<String, String> = vars
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        let get = |k: &str| vars.get(k).cloned().unwrap_or_default();
        let args = get("CNI_ARGS");
        let mac_arg = args
            .split(';')
            .find_map(|kv| kv.strip_prefix("MAC="))
            .unwrap_or("")
            .to_string();
        Invocation {
            command: get("CNI_COMMAND"),
            container_id: get("CNI_CONTAINERID"),
            netns: get("CNI_NETNS"),
            ifname: get("CNI_IFNAME"),
            path: get("CNI_PATH"),
            args,
            mac_arg,
            stdin,
            vars,
        }
    }

    /// The call of this process: its environment and the given stdin.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let inv = cni_bridge::Invocation::from_env(Vec::new());
    /// ```
    pub fn from_env(stdin: Vec<u8>) -> Invocation {
        Invocation::new(
            std::env::vars()
                .filter(|(k, _)| k.starts_with("CNI_") || k.starts_with("NETNS_BRIDGE_")),
            stdin,
        )
    }

    pub(crate) fn env(&self, key: &str) -> Option<&str> {
        self.vars.get(key).map(String::as_str)
    }
}

/// What the plugin answers: stdout's bytes and whether it succeeded (exit
/// status 0) or failed (exit status 1, an error object on stdout).
///
/// # Examples
///
/// ```no_run
/// # async fn demo() {
/// let inv = cni_bridge::Invocation::new([("CNI_COMMAND", "VERSION")], b"{}".to_vec());
/// let reply = cni_bridge::execute(&inv).await;
/// assert!(reply.success);
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Reply {
    /// The JSON written on stdout.
    pub stdout: Vec<u8>,
    /// Whether the call succeeded.
    pub success: bool,
}

fn valid_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

fn env_error(msg: impl Into<String>) -> Error {
    Error::Environment { msg: msg.into() }
}

/// The checks the reference's `skel` makes before any command.
fn validate(inv: &Invocation, cmd: Command) -> Result<()> {
    // GC needs only CNI_PATH, STATUS nothing.
    if cmd == Command::Gc && inv.path.is_empty() {
        return Err(env_error("required env variables [CNI_PATH] missing"));
    }
    if matches!(cmd, Command::Gc | Command::Status) {
        return Ok(());
    }
    let required: &[(&str, &str)] = &[
        ("CNI_CONTAINERID", &inv.container_id),
        ("CNI_NETNS", &inv.netns),
        ("CNI_IFNAME", &inv.ifname),
        ("CNI_PATH", &inv.path),
    ];
    let missing: Vec<&str> = required
        .iter()
        .filter(|(k, v)| v.is_empty() && !(*k == "CNI_NETNS" && cmd == Command::Del))
        .map(|(k, _)| *k)
        .collect();
    if !missing.is_empty() {
        return Err(env_error(format!(
            "required env variables [{}] missing",
            missing.join(",")
        )));
    }
    if !valid_name(&inv.container_id) {
        return Err(env_error(format!(
            "invalid characters in containerID {:?}",
            inv.container_id
        )));
    }
    let ifname = &inv.ifname;
    if ifname.len() > 15 {
        return Err(env_error("interface name is too long"));
    }
    if ifname == "." || ifname == ".." {
        return Err(env_error("interface name is . or .."));
    }
    if ifname
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace())
    {
        return Err(env_error(
            "interface name contains / or : or whitespace characters",
        ));
    }
    Ok(())
}

fn parse_command(s: &str) -> Result<Command> {
    Ok(match s {
        "ADD" => Command::Add,
        "DEL" => Command::Del,
        "CHECK" => Command::Check,
        "VERSION" => Command::Version,
        "GC" => Command::Gc,
        "STATUS" => Command::Status,
        "" => return Err(env_error("required env variables [CNI_COMMAND] missing")),
        other => return Err(env_error(format!("unknown CNI_COMMAND: {other}"))),
    })
}

/// Runs one call and returns what to print.
///
/// # Cancel safety
///
/// Not cancel safe: dropped mid-way, an ADD may leave part of its work
/// (a plugin process is not cancelled, it runs to its end).
///
/// # Examples
///
/// ```no_run
/// # async fn demo() {
/// let inv = cni_bridge::Invocation::from_env(b"{}".to_vec());
/// let reply = cni_bridge::execute(&inv).await;
/// std::io::Write::write_all(&mut std::io::stdout(), &reply.stdout).unwrap();
/// # }
/// ```
pub async fn execute(inv: &Invocation) -> Reply {
    let span = tracing::debug_span!(
        "cni_call",
        netns = %inv.netns,
        command = %inv.command,
        outcome = tracing::field::Empty,
        error = tracing::field::Empty,
    );
    let version = stdin_version(inv).unwrap_or_default();
    // Boxed: the call's future is deep (netlink, IPAM, iptables); behind a
    // box, the layout of `execute`'s own future (and its callers') stays
    // shallow enough for the compiler's default recursion limit.
    let out = tracing::Instrument::instrument(Box::pin(run(inv)), span.clone()).await;
    match out {
        Ok(v) => {
            span.record("outcome", "ok");
            Reply {
                stdout: v.map(|v| pretty(&v)).unwrap_or_default(),
                success: true,
            }
        }
        Err(e) => {
            span.record("outcome", "error");
            span.record("error", tracing::field::display(&e));
            let err = CniError {
                cni_version: version,
                code: e.code(),
                msg: e.to_string(),
                details: e.details(),
            };
            Reply {
                stdout: pretty(&serde_json::to_value(&err).unwrap_or(Value::Null)),
                success: false,
            }
        }
    }
}

/// The `cniVersion` of the configuration on stdin, if it has one.
fn stdin_version(inv: &Invocation) -> Option<String> {
    let v: Value = serde_json::from_slice(&inv.stdin).ok()?;
    v.get("cniVersion")
        .and_then(Value::as_str)
        .map(String::from)
}

fn pretty(v: &Value) -> Vec<u8> {
    let mut out = serde_json::to_vec_pretty(v).unwrap_or_default();
    out.push(b'\n');
    out
}

async fn run(inv: &Invocation) -> Result<Option<Value>> {
    let cmd = parse_command(&inv.command)?;
    if cmd == Command::Version {
        let version = stdin_version(inv)
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| CURRENT.into());
        return Ok(Some(json!({
            "cniVersion": version,
            "supportedVersions": SUPPORTED_VERSIONS,
        })));
    }
    let raw: Value = serde_json::from_slice(&inv.stdin).map_err(|e| Error::Decode {
        msg: format!("error unmarshall network config: {e}"),
    })?;
    let name = raw.get("name").and_then(Value::as_str).unwrap_or("");
    if name.is_empty() {
        return Err(Error::Config {
            msg: "missing network name:".into(),
        });
    }
    if !valid_name(name) {
        return Err(Error::Config {
            msg: format!("invalid characters found in network name {name:?}"),
        });
    }
    validate(inv, cmd)?;
    let version = match raw.get("cniVersion") {
        None => "0.1.0".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => {
            return Err(Error::Decode {
                msg: "cniVersion is not a string".into(),
            });
        }
    };
    if !SUPPORTED_VERSIONS.contains(&version.as_str()) {
        return Err(Error::Version { version });
    }
    if cmd == Command::Check && version.starts_with("0.3.") {
        // CHECK came with 0.4.0.
        return Err(Error::Version { version });
    }
    if matches!(cmd, Command::Gc | Command::Status) && version != "1.1.0" {
        // GC and STATUS came with 1.1.0.
        return Err(Error::Version { version });
    }
    let conf: NetConf = serde_json::from_value(raw.clone()).map_err(|e| Error::Decode {
        msg: format!("failed to load netconf: {e}"),
    })?;
    let mut conf = conf;
    if conf.vlan < 0 || conf.vlan > 4094 {
        return Err(Error::Config {
            msg: format!("invalid VLAN ID {} (must be between 0 and 4094)", conf.vlan),
        });
    }
    if cmd == Command::Add {
        for (on, field) in [
            (conf.vlan != 0, format!("vlan={}", conf.vlan)),
            (conf.macspoofchk, "macspoofchk=true".to_string()),
        ] {
            if on {
                return Err(Error::Unsupported { field });
            }
        }
        if conf.hairpin_mode && conf.promisc_mode {
            return Err(Error::Config {
                msg: "cannot set hairpin mode and promiscuous mode at the same time.".into(),
            });
        }
    }
    if conf.is_default_gateway {
        conf.is_gateway = true;
    }
    let ipam = Ipam::new(&conf, &raw, inv)?;
    match cmd {
        Command::Add => {
            let result = crate::bridge::add(inv, &conf, &ipam).await?;
            Ok(Some(result.to_version(&version)))
        }
        Command::Del => crate::bridge::del(inv, &conf, &ipam).await.map(|()| None),
        Command::Check => crate::bridge::check(inv, &conf, &ipam).await.map(|()| None),
        Command::Gc => {
            let valid = raw
                .get("cni.dev/valid-attachments")
                .and_then(Value::as_array)
                .map(|list| {
                    list.iter()
                        .map(|a| {
                            let s = |k| a.get(k).and_then(Value::as_str).unwrap_or("").to_string();
                            (s("containerID"), s("ifname"))
                        })
                        .collect()
                })
                .unwrap_or_default();
            ipam.gc(inv, valid).await.map(|()| None)
        }
        Command::Status => ipam.status(inv).await.map(|()| None),
        Command::Version => unreachable!("answered above"),
    }
}
