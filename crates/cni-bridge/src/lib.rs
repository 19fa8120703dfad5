// Doc tests that await `execute` compute the layout of its future, which
// nests deeper than rustc's default query depth (as in the binary).
#![doc(test(attr(recursion_limit = "256")))]
//! A CNI plugin built on the netns toolkit: the reference `bridge`
//! plugin's behaviour, installed as the binary `netns-bridge`.
//!
//! A container runtime runs the plugin once per operation (`ADD`, `DEL`,
//! `CHECK`, `VERSION`), in the host's network namespace, with the
//! configuration on stdin and the `CNI_*` variables in its environment.
//! On `ADD` it makes the host bridge if it is missing, a veth pair whose
//! container end is *born* in `CNI_NETNS` (made from the host with its peer
//! in the container namespace in one request, never moved), puts the
//! host end in the bridge, and configures the container end with the
//! addresses and routes IPAM gives.
//!
//! IPAM: `"type": "host-local"` is done inside the plugin, on
//! host-local's own lease files (so the reference `host-local` and this
//! plugin can share a range); any other type, or host-local when
//! `"delegateIPAM": true` or `NETNS_BRIDGE_DELEGATE_IPAM=1` asks for it, is
//! run from `CNI_PATH` as the spec's delegated plugin.
//!
//! Spec versions 0.3.0, 0.3.1, 0.4.0, 1.0.0 and 1.1.0 (ADD, DEL, CHECK,
//! VERSION, GC, STATUS). See `docs/cni.md` for the
//! configuration keys, the spec's conventions covered and where this plugin
//! differs from the reference on purpose.
//!
//! # Examples
//!
//! ```no_run
//! # async fn demo() {
//! use std::io::Read;
//! let mut stdin = Vec::new();
//! std::io::stdin().read_to_end(&mut stdin).unwrap();
//! let reply = cni_bridge::execute(&cni_bridge::Invocation::from_env(stdin)).await;
//! std::io::Write::write_all(&mut std::io::stdout(), &reply.stdout).unwrap();
//! std::process::exit(if reply.success { 0 } else { 1 });
//! # }
//! ```

mod bridge;
mod error;
mod ipam;
mod ipmasq;
mod plugin;
mod types;

pub use error::{Error, Result};
pub use ipam::DELEGATE_ENV;
pub use plugin::{Invocation, Reply, execute};
