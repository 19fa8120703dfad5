//! Which namespaces of a run directory a topology owns, read at the cost
//! of one request each: what [`destroy`](crate::destroy) needs, and nothing
//! more.
//!
//! Ownership is the [`marker`] in the alias of `lo`, so one `RTM_GETLINK`
//! for `lo` tells it. That request is sent from a thread of the toolkit's
//! executor switched into the namespace ([`NetNs::run_short`](netns::nsfs::NetNs::run_short): a few
//! microseconds, lent the caller's CPU), over a netlink socket made there
//! and closed at once. The kernel answers a `RTM_GETLINK` inside the
//! `sendmsg` that carries it, so the answer is read without waiting
//! (`MSG_DONTWAIT`): nothing there waits on another party. No
//! [`Handle`](netns::Handle), no connection task, no dump of links, addresses or routes, which is what reading the whole
//! state (as an apply must) would cost for every namespace.

use std::io;
use std::path::PathBuf;

use netlink_packet_core::{NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::link::{LinkAttribute, LinkMessage};
use netns::nsfs::{EntryState, NsName, RunDir};
use rtnetlink::sys::protocols::NETLINK_ROUTE;
use rtnetlink::sys::{Socket, SocketAddr};

use crate::apply::bounded;
use crate::model::Topology;
use crate::state::marker;
use crate::{Error, Result};

/// The kernel gives the loopback device of every namespace this index.
const LOOPBACK_IFINDEX: u32 = 1;

fn io_err(node: &str, op: &'static str, path: PathBuf) -> impl FnOnce(io::Error) -> Error {
    let node = node.to_owned();
    move |source| Error::Namespace {
        node,
        op,
        source: Box::new(netns::Error::Namespace(netns::nsfs::Error::Io {
            op,
            path,
            source,
        })),
    }
}

/// The names of the run directory's namespaces whose `lo` carries the
/// topology's marker, and of its stale entries (nothing mounted) that
/// the topology declares, sorted. A stale entry holds no namespace: it is
/// what a process killed inside a create leaves (an interrupted apply, or
/// `ip netns add`), and removing it changes nothing in the kernel. Entries
/// that vanish or are not namespaces while they are looked at are not
/// owned.
pub(crate) async fn owned(
    topo: &Topology,
    run_dir: &RunDir,
    concurrency: usize,
) -> Result<Vec<String>> {
    let entries = run_dir.list().map_err(|source| Error::Namespace {
        node: run_dir.path().display().to_string(),
        op: "list",
        source: Box::new(netns::Error::Namespace(source)),
    })?;
    let mark = marker(&topo.name);
    let mut names = Vec::new();
    let futs: Vec<_> = entries
        .into_iter()
        .filter(|e| {
            let stale = e.state == EntryState::Stale;
            if stale && topo.node(e.name.as_str()).is_some() {
                names.push(e.name.to_string());
            }
            !stale
        })
        .map(|e| {
            let mark = mark.clone();
            let run_dir = run_dir.clone();
            async move { owns(&run_dir, &e.name, &mark).await }
        })
        .collect();
    for r in bounded(futs, concurrency).await {
        if let Some(name) = r? {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

/// `Some(name)` if the namespace `name` carries `mark` on `lo`.
async fn owns(run_dir: &RunDir, name: &NsName, mark: &str) -> Result<Option<String>> {
    // Removed meanwhile, or not a namespace: not ours.
    let Ok(ns) = run_dir.open(name) else {
        return Ok(None);
    };
    let node = name.to_string();
    let path = run_dir.path().join(name.as_str());
    let alias = ns
        .run_short(lo_alias)
        .await
        .map_err(|e| io_err(&node, "read the owner", path.clone())(io::Error::other(e)))?
        .map_err(io_err(&node, "read the owner", path))?;
    Ok((alias.as_deref() == Some(mark)).then_some(node))
}

/// The alias of `lo` in the calling thread's namespace: one `RTM_GETLINK`
/// on a socket made here.
fn lo_alias() -> io::Result<Option<String>> {
    let socket = Socket::new(NETLINK_ROUTE)?;
    socket.connect(&SocketAddr::new(0, 0))?;
    let mut link = LinkMessage::default();
    link.header.index = LOOPBACK_IFINDEX;
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST;
    header.sequence_number = 1;
    let mut req = NetlinkMessage::new(
        header,
        NetlinkPayload::from(RouteNetlinkMessage::GetLink(link)),
    );
    req.finalize();
    let mut buf = vec![0u8; req.buffer_len()];
    req.serialize(&mut buf);
    socket.send(&buf, 0)?;
    let mut answer = vec![0u8; 16 * 1024];
    // Queued by the kernel before `send` returned: never waited for.
    let n = socket.recv(&mut &mut answer[..], libc::MSG_DONTWAIT)?;
    let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&answer[..n])
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
    match msg.payload {
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(link)) => {
            Ok(link.attributes.into_iter().find_map(|a| match a {
                LinkAttribute::IfAlias(alias) => Some(alias),
                _ => None,
            }))
        }
        NetlinkPayload::Error(e) => Err(e
            .code
            .map(|c| io::Error::from_raw_os_error(-c.get()))
            .unwrap_or_else(|| io::Error::other("unexpected ack"))),
        other => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unexpected answer to RTM_GETLINK: {other:?}"),
        )),
    }
}
