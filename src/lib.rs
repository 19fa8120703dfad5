//! The workspace root package of the netns toolkit: it holds the runnable
//! examples (`examples/`) and the cross-crate integration tests (`tests/`).
//! The README below is compiled as a doc test, so its quick start stays true.
#![doc = include_str!("../README.md")]

// The guides' Rust blocks are compiled (and, unless marked `no_run`, run)
// as doc tests too, so that what they show stays true.
#[cfg(doctest)]
#[doc = include_str!("../docs/architecture.md")]
mod architecture_md {}
#[cfg(doctest)]
#[doc = include_str!("../docs/guide-rtnetlink.md")]
mod guide_rtnetlink_md {}
#[cfg(doctest)]
#[doc = include_str!("../docs/guide-sockets.md")]
mod guide_sockets_md {}
#[cfg(doctest)]
#[doc = include_str!("../docs/kernel.md")]
mod kernel_md {}
#[cfg(doctest)]
#[doc = include_str!("../docs/nsdb.md")]
mod nsdb_md {}
#[cfg(doctest)]
#[doc = include_str!("../docs/nsproc.md")]
mod nsproc_md {}
#[cfg(doctest)]
#[doc = include_str!("../docs/nsproxy.md")]
mod nsproxy_md {}
#[cfg(doctest)]
#[doc = include_str!("../docs/performance.md")]
mod performance_md {}
#[cfg(doctest)]
#[doc = include_str!("../docs/cni.md")]
mod cni_md {}
#[cfg(doctest)]
#[doc = include_str!("../docs/rootless.md")]
mod rootless_md {}
#[cfg(doctest)]
#[doc = include_str!("../docs/topology.md")]
mod topology_md {}
