//! Tokio-native network namespaces: rtnetlink inside any namespace, links
//! moved by namespace name, sockets and events inside namespaces.
//!
//! What pyroute2's `NetNS` / `IPRoute(netns=...)` and `ip -n NAME` do, async,
//! at the kernel's own speed. A [`Handle`] holds one namespace open (by name,
//! path, pid or [`NetNs`]) and talks rtnetlink inside it through a netlink
//! socket made *inside* the namespace, on a namespace thread the toolkit owns:
//! no runtime thread ever switches namespace, nothing forks, and requests cost
//! what they cost in the root namespace.
//!
//! This is the one crate a user imports: it re-exports what the API takes and
//! returns ([`NetNs`], [`NsName`], [`OpenMode`], [`RunDir`], `rtnetlink`...).
//!
//! # Quick start
//!
//! ```no_run
//! use futures::TryStreamExt;
//! use netns::{Handle, OpenMode};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     // Like `ip netns add blue` (or open it if it exists).
//!     let blue = Handle::open("blue", OpenMode::CreateOrOpen).await?;
//!
//!     // A real rtnetlink::Handle, whose requests run inside `blue`.
//!     let mut links = blue.rtnetlink().link().get().execute();
//!     while let Some(link) = links.try_next().await? {
//!         println!("blue has link {}", link.header.index);
//!     }
//!
//!     // A veth pair from the root namespace with its peer moved into blue.
//!     let root = Handle::open(netns::Target::Pid(1), OpenMode::OpenOnly).await?;
//!     root.add_veth("veth0", "veth1").peer_netns("blue").execute().await?;
//!
//!     // A UDP socket living inside blue, as a tokio type.
//!     let udp = blue.udp_bind("127.0.0.1:0".parse()?).await?;
//!     println!("bound {}", udp.local_addr()?);
//!
//!     blue.close().await;
//!     netns::RunDir::default().remove(&"blue".parse()?).await?;
//!     Ok(())
//! }
//! ```
//!
//! # Kernel errors
//!
//! Sockets made here enable extended acks: when the kernel rejects a request,
//! [`Error::kernel_message`] (or [`error_message`] on a plain
//! `rtnetlink::Error`) gives its explanation, and [`Error::raw_os_error`] /
//! [`error_code`] its errno.
//!
//! # Runtime
//!
//! Everything async here must run inside a tokio runtime (sockets are
//! registered with the current runtime's reactor; a handle's connection task
//! is spawned on it).

mod error;
mod events;
mod handle;
mod inflight;
mod links;
mod nsid;
mod process;
mod readahead;
mod rootless;
mod sockets;
mod sys;
mod target;
mod trace;
mod transport;

pub use error::{Error, Result, error_code, error_message};
pub use events::{Event, Events};
pub use handle::{Builder, Connection, Handle, Messages, connection};
pub use links::{AddVeth, LinkRef, MoveLink};
pub use nsid::{ListNsids, Nsid, NsidEntry};
pub use rootless::{UserNs, UserNsTarget, rootless};
pub use target::Target;
pub use transport::{DEFAULT_RECEIVE_BUFFER, NetlinkSocket, Transport};

pub use nsfs::{
    DEFAULT_RUN_DIR, DOCKER_RUN_DIR, Entry, EntryState, Executor, NAME_MAX, NetNs, NsId, NsName,
    OpenMode, RunDir,
};
pub use rtnetlink::{self, MulticastGroup};
pub use {netlink_packet_core, netlink_packet_route};
pub use {nsfs, nsproc, nsproxy};
