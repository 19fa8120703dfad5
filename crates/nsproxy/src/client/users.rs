//! The user-namespace agents of this process, by user namespace: so that
//! every crate above finds the one agent that works in the user namespace
//! owning a given network namespace (rootless mode).

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::sync::{Mutex, MutexGuard, OnceLock};

use nsfs::NetNs;

use super::launch::UserNamespace;
use super::{Agent, AgentOptions};
use crate::{Error, Result};

fn registry() -> MutexGuard<'static, HashMap<u64, Agent>> {
    static REGISTRY: OnceLock<Mutex<HashMap<u64, Agent>>> = OnceLock::new();
    REGISTRY
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

/// The inode of the user namespace of process `pid`.
pub(super) fn user_ns_of_pid(pid: i32) -> std::io::Result<u64> {
    std::fs::metadata(format!("/proc/{pid}/ns/user")).map(|md| md.ino())
}

/// Keeps `agent` as the agent of its user namespace (unless a live one is
/// kept already).
pub(super) fn register(agent: &Agent) {
    let Ok(ino) = user_ns_of_pid(agent.pid()) else {
        return;
    };
    let mut reg = registry();
    match reg.get(&ino) {
        Some(kept) if kept.is_alive() => {}
        _ => {
            reg.insert(ino, agent.clone());
        }
    }
}

impl Agent {
    /// The user-namespace agent ([`Agent::start_user`]) of the user
    /// namespace that owns `ns`: one this process started before (every
    /// user-namespace agent is kept, by user namespace, for the life of the
    /// process), or a new one that joins it. This is how a rootless caller
    /// reaches any network namespace of its user namespaces, including
    /// those another process made.
    ///
    /// # Cancel safety
    ///
    /// As [`Agent::start`]: if dropped while starting an agent, that agent
    /// is killed and reaped.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the owning user namespace cannot be read (`EPERM`:
    /// it is not below the caller's); otherwise as [`Agent::start_user`]
    /// (`Remote` with step `SetnsUser` and `EPERM`: a user namespace this
    /// caller does not own).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(ns: nsfs::NetNs) -> nsproxy::Result<()> {
    /// let agent = nsproxy::Agent::for_user_ns_of(&ns).await?;
    /// let udp = agent.open_socket_in(&ns, libc::AF_INET, libc::SOCK_DGRAM, 0).await?;
    /// # Ok(()) }
    /// ```
    pub async fn for_user_ns_of(ns: &NetNs) -> Result<Agent> {
        let io = |op| {
            move |e: nsfs::Error| Error::Io {
                op,
                source: e.into(),
            }
        };
        let owner: OwnedFd = ns.owner_user_ns().map_err(io("owning user namespace"))?;
        let ino = std::fs::File::from(owner.try_clone().map_err(|source| Error::Io {
            op: "owning user namespace",
            source,
        })?)
        .metadata()
        .map_err(|source| Error::Io {
            op: "owning user namespace",
            source,
        })?
        .ino();
        if let Some(agent) = registry().get(&ino)
            && agent.is_alive()
        {
            return Ok(agent.clone());
        }
        Agent::start_user(UserNamespace::Join(owner), None, AgentOptions::new()).await
    }
}
