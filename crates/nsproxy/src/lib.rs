//! The nsproxy agent: a small process living in a network namespace, started
//! without forking the application, speaking a framed protocol over a
//! `SOCK_SEQPACKET` socket.
//!
//! Most work inside a namespace needs no process at all (a namespace thread
//! of [`nsfs`] makes sockets there). The agent is for what does:
//!
//! - `ip netns exec` parity for programs: a private mount namespace, `/sys`
//!   remounted for the namespace, `/etc/netns/NAME` bind mounts
//!   ([`AgentOptions::exec_mounts`], [`Agent::spawn`]);
//! - entering a user namespace, which needs a single-threaded process
//!   ([`AgentOptions::user_namespace`]);
//! - a netlink socket held and relayed by another process
//!   ([`Agent::netlink`], [`RelaySocket`], an `rtnetlink` transport);
//! - sockets of any kind made inside the namespace ([`Agent::open_socket`]).
//!
//! # How the agent starts
//!
//! [`Agent::start`] posix_spawns the current executable (`/proc/self/exe`)
//! from a namespace thread, with a marker in the environment and the control
//! socket as stdin. This crate registers an early-init hook (an `.init_array`
//! entry) that sees the marker and runs the agent before the program's
//! `main`: any binary that links the crate can start agents, with no change
//! to its `main` and nothing to install. No fork: the agent is ready in about
//! 1.5 ms whatever the application's size, and shares no memory with it.
//!
//! The agent closes every inherited fd, resets signals, dies with its parent
//! (`PR_SET_PDEATHSIG`, plus a `getppid` check) and exits when its control
//! socket closes. The application reaps it through a pidfd.
//!
//! The protocol lives in [`proto`] (sans IO); `docs/nsproxy.md` describes it.
//!
//! # Examples
//!
//! ```no_run
//! # async fn demo() -> nsproxy::Result<()> {
//! use nsproxy::{Agent, AgentOptions, AgentStdio, SpawnRequest};
//!
//! let ns = nsfs::NetNs::open("/run/netns/blue").expect("namespace");
//! let name = nsfs::NsName::new("blue").expect("name");
//! let agent = Agent::start(&ns, AgentOptions::new().exec_mounts(Some(name))).await?;
//! let mut child = agent
//!     .spawn(SpawnRequest::new("/bin/ls").arg("/sys/class/net").stdout(AgentStdio::Pipe))
//!     .await?;
//! let status = child.wait().await?;
//! agent.close().await?;
//! # Ok(()) }
//! ```

mod agent;
mod client;
mod error;
mod hook;
pub mod netlink;
mod pending;
pub mod proto;
mod relay;
mod sys;
#[cfg(test)]
mod tests;

pub use client::{
    Agent, AgentChild, AgentOptions, AgentStdio, DEFAULT_START_TIMEOUT, SpawnRequest, UserNamespace,
};
pub use error::{Error, Result};
pub use relay::RelaySocket;
