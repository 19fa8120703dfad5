//! IPAM: `host-local` inside the plugin (same lease store as the reference
//! plugin), or any IPAM plugin run as the spec's delegated plugin.

pub(crate) mod host_local;

use std::path::PathBuf;
use std::process::Stdio;

use serde_json::Value;
use tokio::io::AsyncWriteExt;

use crate::error::{Error, Result};
use crate::plugin::{Command, Invocation};
use crate::types::{CniError, CniResult, NetConf};

/// The environment variable that makes the plugin run `host-local` as a
/// separate plugin (any value but empty or `0`), as `"delegateIPAM": true`
/// in the configuration does.
pub const DELEGATE_ENV: &str = "NETNS_BRIDGE_DELEGATE_IPAM";

/// How a call's addresses are managed.
#[derive(Debug)]
pub(crate) enum Ipam {
    /// No `ipam` key: layer 2 only.
    None,
    /// `host-local`, done inside the plugin.
    Local(host_local::Config),
    /// Any other type (or host-local when delegation is asked): the plugin
    /// of that name from `CNI_PATH`.
    Delegate(String),
}

impl Ipam {
    /// Chooses how to do IPAM for this configuration.
    pub(crate) fn new(conf: &NetConf, raw: &Value, inv: &Invocation) -> Result<Ipam> {
        let Some(kind) = conf.ipam_type() else {
            return Ok(Ipam::None);
        };
        let env_delegate = inv
            .env(DELEGATE_ENV)
            .is_some_and(|v| !v.is_empty() && v != "0");
        if kind == "host-local" && !conf.delegate_ipam && !env_delegate {
            return Ok(Ipam::Local(host_local::Config::load(raw, &inv.args)?));
        }
        Ok(Ipam::Delegate(kind.to_string()))
    }

    /// Allocates (ADD).
    pub(crate) async fn add(&self, inv: &Invocation) -> Result<Option<CniResult>> {
        match self {
            Ipam::None => Ok(None),
            Ipam::Local(c) => {
                let (id, ifname) = (inv.container_id.clone(), inv.ifname.clone());
                let c = clone_config(c);
                blocking(move || host_local::add(&c, &id, &ifname))
                    .await
                    .map(Some)
            }
            Ipam::Delegate(p) => {
                let out = exec(p, Command::Add, inv).await?;
                let v: Value = serde_json::from_slice(&out).map_err(|e| Error::Delegate {
                    code: crate::types::code::DECODE,
                    msg: format!("decoding version from network config: {e}"),
                    details: String::new(),
                })?;
                CniResult::parse(&v)
                    .map(Some)
                    .map_err(|msg| Error::Delegate {
                        code: crate::types::code::DECODE,
                        msg,
                        details: String::new(),
                    })
            }
        }
    }

    /// Releases (DEL); also the clean-up of a failed ADD.
    pub(crate) async fn del(&self, inv: &Invocation) -> Result<()> {
        match self {
            Ipam::None => Ok(()),
            Ipam::Local(c) => {
                let (id, ifname) = (inv.container_id.clone(), inv.ifname.clone());
                let c = clone_config(c);
                blocking(move || host_local::del(&c, &id, &ifname)).await
            }
            Ipam::Delegate(p) => exec(p, Command::Del, inv).await.map(drop),
        }
    }

    /// Checks (CHECK).
    pub(crate) async fn check(&self, inv: &Invocation) -> Result<()> {
        match self {
            Ipam::None => Ok(()),
            Ipam::Local(c) => {
                let (id, ifname) = (inv.container_id.clone(), inv.ifname.clone());
                let c = clone_config(c);
                blocking(move || host_local::check(&c, &id, &ifname)).await
            }
            Ipam::Delegate(p) => exec(p, Command::Check, inv).await.map(drop),
        }
    }
}

impl Ipam {
    /// GC (spec 1.1.0): releases the leases of attachments not in `valid`.
    pub(crate) async fn gc(&self, inv: &Invocation, valid: Vec<(String, String)>) -> Result<()> {
        match self {
            Ipam::None => Ok(()),
            Ipam::Local(c) => {
                let c = clone_config(c);
                blocking(move || host_local::gc(&c, &valid)).await
            }
            Ipam::Delegate(p) => exec(p, Command::Gc, inv).await.map(drop),
        }
    }

    /// STATUS (spec 1.1.0): whether an ADD could get its addresses now.
    pub(crate) async fn status(&self, inv: &Invocation) -> Result<()> {
        match self {
            Ipam::None => Ok(()),
            Ipam::Local(c) => {
                let c = clone_config(c);
                blocking(move || host_local::status(&c)).await
            }
            Ipam::Delegate(p) => exec(p, Command::Status, inv).await.map(drop),
        }
    }
}

fn clone_config(c: &host_local::Config) -> host_local::Config {
    host_local::Config {
        name: c.name.clone(),
        data_dir: c.data_dir.clone(),
        ranges: c.ranges.clone(),
        routes: c.routes.clone(),
        resolv_conf: c.resolv_conf.clone(),
        requested: c.requested.clone(),
    }
}

/// Runs the lease store's file work (it may wait on another process's
/// `flock`) off the runtime's thread: on the toolkit's namespace thread,
/// as a closure in the host namespace, after the container's socket (a
/// toolkit job, taken first). No thread of its own: tokio's blocking pool
/// would start one more thread, and the runtime's shutdown would wait for
/// it to exit.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    let fail = |e: netns::Error| Error::Namespace {
        op: "run the lease store's file work",
        source: Box::new(e),
    };
    crate::bridge::executor()
        .map_err(fail)?
        .run_home(f)
        .await
        .map_err(|e| fail(e.into()))?
}

/// Finds a plugin in `CNI_PATH`.
fn find(plugin: &str, inv: &Invocation) -> Result<PathBuf> {
    let not_found = || Error::Exec {
        plugin: plugin.into(),
        source: std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("failed to find plugin {plugin:?} in path [{}]", inv.path),
        ),
    };
    if plugin.is_empty() || plugin.contains('/') {
        return Err(not_found());
    }
    inv.path
        .split(':')
        .filter(|d| !d.is_empty())
        .map(|d| PathBuf::from(d).join(plugin))
        .find(|p| p.is_file())
        .ok_or_else(not_found)
}

/// Runs a delegated plugin as the spec says: found in `CNI_PATH`, the
/// same environment (with `CNI_COMMAND` set to `cmd`) and the same
/// configuration on stdin, its stderr ours; its stdout is its answer.
async fn exec(plugin: &str, cmd: Command, inv: &Invocation) -> Result<Vec<u8>> {
    let path = find(plugin, inv)?;
    let spawn_err = |source| Error::Exec {
        plugin: plugin.into(),
        source,
    };
    let mut child = tokio::process::Command::new(&path)
        .env("CNI_COMMAND", cmd.as_str())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(spawn_err)?;
    if let Some(mut stdin) = child.stdin.take() {
        // A plugin that exits without reading its stdin is not an error here:
        // its exit status says what happened.
        let _ = stdin.write_all(&inv.stdin).await;
    }
    let out = child.wait_with_output().await.map_err(spawn_err)?;
    if out.status.success() {
        return Ok(out.stdout);
    }
    Err(match serde_json::from_slice::<CniError>(&out.stdout) {
        Ok(e) => Error::Delegate {
            code: e.code,
            msg: e.msg,
            details: e.details,
        },
        Err(_) => Error::Delegate {
            code: crate::types::code::INTERNAL,
            msg: format!(
                "netplugin failed: {:?}",
                String::from_utf8_lossy(&out.stdout).trim()
            ),
            details: String::new(),
        },
    })
}
