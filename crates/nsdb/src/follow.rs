//! The follower engine: one task per namespace applies its rtnetlink
//! events to the view's state and resyncs it by a full dump after an
//! overrun; one task watches the run directory for namespaces that come and
//! go. The [`View`] handle starts them and owns what they share ([`Inner`]).

use std::collections::BTreeSet;
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures::StreamExt;
use netlink_packet_core::NetlinkPayload;
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::nsid::NsidAttribute;
use nsfs::{NsId, NsName, RunDir};
use tracing::field::Empty;

use crate::error::Error;
use crate::model::{Link, NsState};
use crate::nl::{self, DumpLock, DumpPart};
use crate::peers;
use crate::snapshot::{Change, NsStatus, ResyncReason};
use crate::trace;
use crate::view::{Inner, Namespace, View, lock};

/// Whether applying `msg` may make the kernel drop IPv4 routes without
/// telling (link down or gone, IPv4 address removed): then the IPv4 routes
/// are dumped again.
fn may_flush_routes(msg: &RouteNetlinkMessage, state: &NsState) -> bool {
    match msg {
        RouteNetlinkMessage::NewLink(m) => {
            let was_up = state.links.get(&m.header.index).is_some_and(|l| l.is_up());
            was_up && m.header.flags.bits() & crate::model::IFF_UP == 0
        }
        RouteNetlinkMessage::DelAddress(m) => u8::from(m.header.family) == 2,
        _ => false,
    }
}

/// The links whose `IFLA_LINK_NETNSID` the kernel changes without telling
/// when `msg` is applied: a veth's other end, when its peer leaves the
/// namespace or comes (back) into it.
fn silent_peer_changes(msg: &RouteNetlinkMessage, state: &NsState, out: &mut BTreeSet<u32>) {
    match msg {
        RouteNetlinkMessage::DelLink(m) => {
            let gone = m.header.index;
            out.extend(
                state
                    .links
                    .values()
                    .filter(|l| l.link == Some(gone) && l.link_netnsid.is_none())
                    .map(|l| l.index),
            );
        }
        RouteNetlinkMessage::NewLink(m) => {
            let new = Link::from_message(m);
            // The first end of a new veth pair is announced before its peer
            // exists (`IFLA_LINK` 0) and never announced again; replayed
            // after a dump that saw it tied, this old announcement would
            // untie it in the view: read it again, known or not.
            if new.link == Some(0) && new.kind.as_deref() == Some("veth") {
                out.insert(new.index);
            }
            if state.links.contains_key(&m.header.index) {
                return;
            }
            if new.link == Some(0) {
                out.insert(new.index);
            }
            if new.link_netnsid.is_none()
                && let Some(peer) = new.link.and_then(|p| state.links.get(&p))
                && peer.link_netnsid.is_some()
            {
                out.insert(peer.index);
            }
        }
        _ => {}
    }
}

/// The veths of `state` whose peer was not tied yet when they were read
/// (`IFLA_LINK` 0): a link dump runs without the rtnl lock and can catch a
/// pair being made, after the first end was registered and announced
/// (with `IFLA_LINK` 0, its only announcement) and before the two ends were
/// tied. Such a link is read again.
fn half_made_veths(state: &NsState) -> BTreeSet<u32> {
    state
        .links
        .values()
        .filter(|l| l.kind.as_deref() == Some("veth") && l.link == Some(0))
        .map(|l| l.index)
        .collect()
}

/// After a dump of `ns`: reads again the veths it caught half made (see
/// [`half_made_veths`]). Returns false as [`refetch_links`] does.
async fn refetch_half_made(inner: &Inner, ns: &Namespace, dump_lock: &DumpLock) -> bool {
    let half_made = lock(&inner.shared)
        .namespaces
        .get(ns)
        .map(|e| half_made_veths(&e.view.state))
        .unwrap_or_default();
    refetch_links(inner, ns, dump_lock, half_made).await
}

/// Reads `links` of `ns` again (`RTM_GETLINK`) and applies them; a veth
/// still caught half made is read again after a millisecond, a few times.
/// Returns false (and marks the namespace stale) if a query failed.
async fn refetch_links(
    inner: &Inner,
    ns: &Namespace,
    dump_lock: &DumpLock,
    links: BTreeSet<u32>,
) -> bool {
    for index in links {
        for attempt in 0..10 {
            match nl::query_link(dump_lock, index).await {
                Ok(Some(msg)) => {
                    let mut half_made = false;
                    if let Some(entry) = lock(&inner.shared).namespaces.get_mut(ns) {
                        let state = Arc::make_mut(&mut entry.view.state);
                        let deltas = state.apply(&msg, 0);
                        inner.publish(ns, deltas);
                        half_made = half_made_veths(state).contains(&index);
                    }
                    inner.bump();
                    if !half_made {
                        break;
                    }
                    if attempt < 9 {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
                // Gone meanwhile: its RTM_DELLINK is on its way.
                Ok(None) => break,
                Err(e) => {
                    inner.set_status(
                        ns,
                        NsStatus::Stale {
                            reason: format!("link query failed: {e}"),
                        },
                    );
                    return false;
                }
            }
        }
    }
    true
}

/// The per-namespace task: applies events, resyncs after an overrun.
pub(crate) async fn follow(
    weak: Weak<Inner>,
    ns: Namespace,
    dump_lock: DumpLock,
    mut events: futures::stream::Abortable<netns::Events>,
) {
    let mut batch = Vec::new();
    // An error met while a batch was gathered, reported after that batch.
    let mut failed: Option<netns::Error> = None;
    // The initial dump may have caught a veth pair being made.
    let Some(inner) = weak.upgrade() else { return };
    if !refetch_half_made(&inner, &ns, &dump_lock).await {
        return;
    }
    drop(inner);
    loop {
        // The events stream says why it ends: an error, then None.
        let next = match failed.take() {
            Some(err) => Some(Err(err)),
            None => events.next().await,
        };
        let first = match next {
            Some(Ok(first)) => first,
            ended => {
                let reason = match ended {
                    Some(Err(err)) => format!("event connection failed: {err}"),
                    _ => "event connection closed".into(),
                };
                if let Some(inner) = weak.upgrade() {
                    inner.set_status(&ns, NsStatus::Stale { reason });
                }
                return;
            }
        };
        batch.clear();
        batch.push(first);
        while batch.len() < 4096 {
            match futures::FutureExt::now_or_never(events.next()) {
                Some(Some(Ok(event))) => batch.push(event),
                Some(Some(Err(err))) => {
                    failed = Some(err);
                    break;
                }
                // The end is met again by the next await.
                _ => break,
            }
        }
        let Some(inner) = weak.upgrade() else { return };
        let overrun = batch.iter().any(|e| matches!(e, netns::Event::Overrun));
        if overrun {
            // Events were lost. Everything received so far is older than the
            // dump about to be made: drop it, dump, carry on with the queue.
            tracing::warn!(
                netns = %ns,
                inode = inode_of(&inner, &ns),
                "netlink event socket overran (events lost): resyncing"
            );
            resync(&inner, &ns, &dump_lock, ResyncReason::Overrun).await;
            if !refetch_half_made(&inner, &ns, &dump_lock).await {
                return;
            }
            peers::resolve(&inner, &ns, None).await;
            continue;
        }
        let mut routes_dirty = false;
        // Ids the kernel deleted, ids that new or changed links use.
        let mut deleted_ids = BTreeSet::new();
        let mut used_ids = BTreeSet::new();
        let mut refetch = BTreeSet::new();
        {
            let mut shared = lock(&inner.shared);
            let Some(entry) = shared.namespaces.get_mut(&ns) else {
                return;
            };
            let state = Arc::make_mut(&mut entry.view.state);
            for m in batch.iter().filter_map(|e| match e {
                netns::Event::Message(m) => Some(m),
                _ => None,
            }) {
                if let NetlinkPayload::InnerMessage(msg) = &m.payload {
                    routes_dirty |= may_flush_routes(msg, state);
                    silent_peer_changes(msg, state, &mut refetch);
                    match msg {
                        RouteNetlinkMessage::DelNsId(m) => {
                            deleted_ids.extend(m.attributes.iter().filter_map(|a| match a {
                                NsidAttribute::Id(id) => Some(*id),
                                _ => None,
                            }));
                        }
                        RouteNetlinkMessage::NewLink(m) => {
                            used_ids.extend(Link::from_message(m).link_netnsid);
                        }
                        _ => {}
                    }
                    let deltas = state.apply(msg, m.header.flags);
                    inner.publish(&ns, deltas);
                }
            }
        }
        for id in deleted_ids {
            peers::forget_id(&inner, &ns, id);
        }
        inner.bump();
        if !refetch.is_empty() {
            if !refetch_links(&inner, &ns, &dump_lock, refetch.clone()).await {
                return;
            }
            if let Some(e) = lock(&inner.shared).namespaces.get(&ns) {
                used_ids.extend(
                    refetch
                        .iter()
                        .filter_map(|i| e.view.state.links.get(i)?.link_netnsid),
                );
            }
        }
        if routes_dirty {
            let mut fresh = NsState::default();
            match nl::dump_into(&ns, &dump_lock, &[DumpPart::Routes], &mut fresh).await {
                Ok(interrupted) => {
                    if let Some(entry) = lock(&inner.shared).namespaces.get_mut(&ns) {
                        let state = Arc::make_mut(&mut entry.view.state);
                        let old = NsState {
                            routes: std::mem::take(&mut state.routes),
                            ..NsState::default()
                        };
                        let deltas = old.diff(&fresh);
                        state.routes = fresh.routes;
                        inner.publish(&ns, deltas);
                        if interrupted > 0 {
                            let _ = inner.changes.send(Change::Resynced {
                                ns: ns.clone(),
                                reason: ResyncReason::DumpInterrupted,
                            });
                        }
                    }
                    inner.bump();
                }
                Err(e) => {
                    inner.set_status(
                        &ns,
                        NsStatus::Stale {
                            reason: format!("route dump failed: {e}"),
                        },
                    );
                    return;
                }
            }
        }
        // Names the peers of new links; resolves ids of other namespaces
        // whose peer link this batch brought.
        peers::resolve(&inner, &ns, Some(&used_ids)).await;
    }
}

/// A full dump of `ns`, replacing its state; the differences are published.
/// Runs in a `resync` span (`netns`, `inode`, `reason`, `outcome`, `error`).
async fn resync(inner: &Arc<Inner>, ns: &Namespace, dump_lock: &DumpLock, reason: ResyncReason) {
    let span = tracing::debug_span!(
        "resync",
        netns = %ns,
        inode = inode_of(inner, ns),
        ?reason,
        outcome = Empty,
        error = Empty,
    );
    let _ = trace::traced(span, dump_again(inner, ns, dump_lock, reason)).await;
}

/// The inode of `ns` in the view, if it is there.
fn inode_of(inner: &Inner, ns: &Namespace) -> Option<u64> {
    lock(&inner.shared).namespaces.get(ns).map(|e| e.id.ino)
}

/// The body of [`resync`]: a failure marks the namespace stale.
async fn dump_again(
    inner: &Arc<Inner>,
    ns: &Namespace,
    dump_lock: &DumpLock,
    reason: ResyncReason,
) -> Result<(), Error> {
    inner.set_status(ns, NsStatus::Resyncing);
    let mut fresh = NsState::default();
    match nl::dump_into(
        ns,
        dump_lock,
        &[DumpPart::Links, DumpPart::Addresses, DumpPart::Routes],
        &mut fresh,
    )
    .await
    {
        Ok(interrupted) => {
            let reason = if interrupted > 0 && reason != ResyncReason::Overrun {
                ResyncReason::DumpInterrupted
            } else {
                reason
            };
            if let Some(entry) = lock(&inner.shared).namespaces.get_mut(ns) {
                let deltas = entry.view.state.diff(&fresh);
                entry.view.state = Arc::new(fresh);
                entry.view.status = NsStatus::Live;
                inner.publish(ns, deltas);
                let _ = inner.changes.send(Change::Resynced {
                    ns: ns.clone(),
                    reason,
                });
            }
            inner.bump();
            peers::resolve(inner, ns, None).await;
            Ok(())
        }
        Err(e) => {
            inner.set_status(
                ns,
                NsStatus::Stale {
                    reason: format!("resync failed: {e}"),
                },
            );
            Err(e)
        }
    }
}

/// What the run-directory watcher checks in one round.
enum Check {
    /// Every viewed namespace, and (all-namespaces mode) every entry.
    All,
    /// One name the monitor reported added (or, `false`, removed).
    One(NsName, bool),
}

/// Watches the run directory: in all-namespaces mode adds namespaces that
/// appear; always notices viewed namespaces that go away. A name the monitor
/// reports is checked alone (a topology made or removed while a view of
/// every namespace watches costs one check per name, not one scan of the
/// view per name); the timer's backstop checks every name.
pub(crate) async fn watch_run_dir(
    weak: Weak<Inner>,
    dir: RunDir,
    all: bool,
    every: Option<Duration>,
    mut monitor: Option<nsfs::Monitor>,
) {
    // The backstop: rare while the monitor reports names at once (each
    // round checks every viewed name), frequent without it.
    let period = |monitored: bool| {
        every.unwrap_or(if monitored {
            Duration::from_secs(1)
        } else {
            Duration::from_millis(100)
        })
    };
    let timer = |period: Duration| {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick
    };
    let mut tick = timer(period(monitor.is_some()));
    loop {
        // nsfs's monitor says at once when a name comes or goes; the timer is
        // the backstop (and the only source if the monitor fails).
        let check = match monitor.as_mut() {
            Some(m) => tokio::select! {
                _ = tick.tick() => Check::All,
                event = m.next() => match event {
                    Some(Ok(nsfs::RunDirEvent::Added(name))) => Check::One(name, true),
                    Some(Ok(nsfs::RunDirEvent::Removed(name))) => Check::One(name, false),
                    Some(Ok(_)) => Check::All,
                    event => {
                        tracing::debug!(?event, "run-directory monitor ended: polling only");
                        monitor = None;
                        tick = timer(period(false));
                        Check::All
                    }
                },
            },
            None => {
                tick.tick().await;
                Check::All
            }
        };
        let Some(inner) = weak.upgrade() else { return };
        let view = View { inner };
        let viewed: Vec<(NsName, NsId)> = {
            let shared = lock(&view.inner.shared);
            let followed = |name: &NsName| {
                let e = shared.namespaces.get(&Namespace::Named(name.clone()))?;
                (!matches!(e.view.status, NsStatus::Removed)).then_some(e.id)
            };
            match &check {
                Check::All => shared
                    .namespaces
                    .keys()
                    .filter_map(|k| match k {
                        Namespace::Named(n) => Some((n.clone(), followed(n)?)),
                        Namespace::Host => None,
                    })
                    .collect(),
                Check::One(name, _) => followed(name)
                    .map(|id| (name.clone(), id))
                    .into_iter()
                    .collect(),
            }
        };
        for (name, id) in &viewed {
            if !names_same(&dir, name, *id) {
                gone(&view, name, all);
            }
        }
        if !all {
            continue;
        }
        let candidates: Vec<NsName> = match check {
            Check::All => entry_names(&dir),
            Check::One(name, true) => vec![name],
            Check::One(_, false) => Vec::new(),
        };
        for name in candidates {
            let ns = Namespace::Named(name);
            let known = lock(&view.inner.shared).namespaces.contains_key(&ns);
            if !known && let Err(e) = view.add(ns.clone()).await {
                tracing::debug!(%ns, error = %e, "could not add namespace");
            }
        }
    }
}

/// Whether `name` in `dir` still names the namespace `id`: one `stat` (of
/// the nsfs file mounted there; a bare placeholder or nothing is not it),
/// where opening it took half a dozen system calls: the backstop checks
/// every viewed name each `poll_interval`.
fn names_same(dir: &RunDir, name: &NsName, id: NsId) -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(dir.entry(name)).is_ok_and(|md| md.dev() == id.dev && md.ino() == id.ino)
}

/// The names in `dir` (a plain `readdir`: whether each is mounted is found
/// when it is added, and only for names the view does not know).
fn entry_names(dir: &RunDir) -> Vec<NsName> {
    let Ok(read) = std::fs::read_dir(dir.path()) else {
        return Vec::new();
    };
    read.filter_map(|e| NsName::from_os_str(&e.ok()?.file_name()).ok())
        .collect()
}

/// The namespace viewed under `name` left the run directory (or the name
/// now names another): dropped from an all-namespaces view, else marked
/// removed.
fn gone(view: &View, name: &NsName, all: bool) {
    let ns = Namespace::Named(name.clone());
    if all {
        view.remove(&ns);
        return;
    }
    if let Some(e) = lock(&view.inner.shared).namespaces.get_mut(&ns) {
        e.view.status = NsStatus::Removed;
        for t in e.tasks.drain(..) {
            t.abort();
        }
    }
    let _ = view.inner.changes.send(Change::NamespaceRemoved { ns });
    view.inner.bump();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn veth_msg(index: u32, name: &str, peer: u32) -> RouteNetlinkMessage {
        use netlink_packet_route::link::{InfoKind, LinkAttribute, LinkInfo, LinkMessage};
        let mut m = LinkMessage::default();
        m.header.index = index;
        m.attributes.push(LinkAttribute::IfName(name.into()));
        m.attributes.push(LinkAttribute::Link(peer));
        m.attributes
            .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
                InfoKind::Veth,
            )]));
        RouteNetlinkMessage::NewLink(m)
    }

    /// Regression (seen as a view that stayed different from a dump after
    /// an overrun): a lockless link dump can catch a veth pair being made,
    /// its first end untied (`IFLA_LINK` 0), and that end is never announced
    /// again; nor may its one old announcement, replayed after a dump that
    /// saw it tied, untie it. Both are read again.
    #[test]
    fn a_veth_caught_half_made_is_read_again() {
        let mut state = NsState::default();
        state.apply(&veth_msg(124, "ow61", 0), 0);
        state.apply(&veth_msg(125, "ov61", 124), 0);
        assert_eq!(half_made_veths(&state), BTreeSet::from([124]));
        // Tied in the view; the old announcement comes by.
        state.apply(&veth_msg(124, "ow61", 125), 0);
        assert!(half_made_veths(&state).is_empty());
        let mut refetch = BTreeSet::new();
        silent_peer_changes(&veth_msg(124, "ow61", 0), &state, &mut refetch);
        assert_eq!(refetch, BTreeSet::from([124]));
    }
}
