//! Naming the namespace behind a namespace id, in time linear in the links.
//!
//! A link tied to a link of another namespace (a veth's other end, the lower
//! device of a macvlan or vxlan) carries `IFLA_LINK_NETNSID`: an id that only
//! means something inside the link's own namespace. The kernel answers "what
//! id do you give the namespace behind this fd" (`RTM_GETNSID` with
//! `NETNSA_FD`), never "which namespace is id X". So each id is resolved
//! from the link that uses it, in two requests on the namespace's own socket:
//!
//! 1. the peer link itself, read from the other side by its id
//!    (`RTM_GETLINK` with `IFLA_TARGET_NETNSID` = X and the peer's index):
//!    its index and hardware address (a veth's is random);
//! 2. the namespaces of the view that hold a link with that index and
//!    address (an index kept here, updated with every change the view
//!    applies) are the candidates, almost always one: each is checked by
//!    asking for its id (`RTM_GETNSID` with its fd); the one whose id is X
//!    is it.
//!
//! An id whose peer link is not in the view (yet) waits, filed under that
//! link's hardware address: when a link with that address shows (a
//! namespace added, an event applied), the id is resolved again from the
//! start. Ids stay resolved until the kernel
//! deletes them (`RTM_DELNSID`) or the peer leaves the view. The work is one
//! or two requests per id used by a link: linear in the links, where asking
//! every namespace for the id of every other one was quadratic per
//! namespace added.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::os::fd::AsFd;
use std::sync::Arc;

use crate::model::{Delta, Link, Object};
use crate::nl::{self, DumpLock};
use crate::view::{Inner, Namespace, lock};

/// What a link is found by among the namespaces of a view: index and
/// hardware address (the name is left out: links are often renamed right
/// after they are made, and the id check decides anyway).
type Key = (u32, Option<Vec<u8>>);

/// What a waiting id waits for: a link with this hardware address (not
/// the index too: a link moved to another namespace gets a new one).
type Mac = Option<Vec<u8>>;

fn key_of(link: &Link) -> Key {
    (link.index, link.address.clone())
}

/// The view's index of links by [`Key`] and the ids waiting for a peer link.
#[derive(Debug, Default)]
pub(crate) struct Peers {
    /// Which namespaces hold a link with a given key.
    links: HashMap<Key, BTreeSet<Namespace>>,
    /// Ids (namespace, id) waiting for a link with a given address to show.
    waiting: HashMap<Mac, BTreeSet<(Namespace, i32)>>,
    /// The address each waiting id waits for.
    waits_for: BTreeMap<(Namespace, i32), Mac>,
    /// Ids whose peer link showed: to resolve again.
    woken: BTreeSet<(Namespace, i32)>,
    /// For each namespace, the ids (namespace, id) that name it: what a
    /// namespace leaving the view unnames, without a scan of the view.
    named: HashMap<Namespace, BTreeSet<(Namespace, i32)>>,
}

impl Peers {
    /// Files `link` of `ns` in the index (wakes the ids waiting for it).
    pub(crate) fn add_link(&mut self, ns: &Namespace, link: &Link) {
        if let Some(w) = self.waiting.get(&link.address) {
            self.woken.extend(w.iter().cloned());
        }
        self.links
            .entry(key_of(link))
            .or_default()
            .insert(ns.clone());
    }

    /// Takes `link` of `ns` out of the index.
    pub(crate) fn remove_link(&mut self, ns: &Namespace, link: &Link) {
        let key = key_of(link);
        if let Some(set) = self.links.get_mut(&key) {
            set.remove(ns);
            if set.is_empty() {
                self.links.remove(&key);
            }
        }
    }

    /// Follows the link changes among `deltas` of `ns`.
    pub(crate) fn apply(&mut self, ns: &Namespace, deltas: &[Delta]) {
        for d in deltas {
            match d {
                Delta::Added(Object::Link(l)) => self.add_link(ns, l),
                Delta::Removed(Object::Link(l)) => self.remove_link(ns, l),
                Delta::Changed {
                    old: Object::Link(o),
                    new: Object::Link(n),
                } if key_of(o) != key_of(n) => {
                    self.remove_link(ns, o);
                    self.add_link(ns, n);
                }
                _ => {}
            }
        }
    }

    /// `ns` names `peer` by `id`.
    fn name(&mut self, ns: &Namespace, id: i32, peer: &Namespace) {
        self.named
            .entry(peer.clone())
            .or_default()
            .insert((ns.clone(), id));
    }

    /// `ns` no longer names `peer` by `id`.
    fn unname(&mut self, ns: &Namespace, id: i32, peer: &Namespace) {
        if let Some(set) = self.named.get_mut(peer) {
            set.remove(&(ns.clone(), id));
            if set.is_empty() {
                self.named.remove(peer);
            }
        }
    }

    /// Forgets everything about `ns`: its links (`links`), its waiting ids.
    pub(crate) fn forget(&mut self, ns: &Namespace, links: impl Iterator<Item = Link>) {
        for l in links {
            self.remove_link(ns, &l);
        }
        let ids: Vec<i32> = self
            .waits_for
            .range((ns.clone(), i32::MIN)..=(ns.clone(), i32::MAX))
            .map(|((_, id), _)| *id)
            .collect();
        for id in ids {
            self.unwait(ns, id);
        }
        self.woken.retain(|(n, _)| n != ns);
    }

    fn wait(&mut self, ns: &Namespace, id: i32, key: Mac) {
        self.unwait(ns, id);
        self.waiting
            .entry(key.clone())
            .or_default()
            .insert((ns.clone(), id));
        self.waits_for.insert((ns.clone(), id), key);
    }

    fn unwait(&mut self, ns: &Namespace, id: i32) {
        if let Some(key) = self.waits_for.remove(&(ns.clone(), id))
            && let Some(set) = self.waiting.get_mut(&key)
        {
            set.remove(&(ns.clone(), id));
            if set.is_empty() {
                self.waiting.remove(&key);
            }
        }
    }

    /// Takes the ids to resolve again, by namespace.
    pub(crate) fn take_woken(&mut self) -> BTreeMap<Namespace, BTreeSet<i32>> {
        let mut out: BTreeMap<Namespace, BTreeSet<i32>> = BTreeMap::new();
        for (ns, id) in std::mem::take(&mut self.woken) {
            out.entry(ns).or_default().insert(id);
        }
        out
    }
}

/// Resolves the ids that the links of `ns` use and the view does not name
/// yet (only those in `only`, if given); then, on a task of their own, the
/// ids woken meanwhile.
pub(crate) async fn resolve(inner: &Arc<Inner>, ns: &Namespace, only: Option<&BTreeSet<i32>>) {
    resolve_ns(inner, ns, only).await;
    wake(inner);
}

/// Resolves the ids of each of `namespaces` on a task of its own (holding
/// the view weakly: a view dropped meanwhile ends it). Must be called inside
/// a tokio runtime.
pub(crate) fn spawn_resolve(
    inner: &Arc<Inner>,
    namespaces: Vec<Namespace>,
) -> tokio::task::JoinHandle<()> {
    let weak = Arc::downgrade(inner);
    tokio::spawn(async move {
        for ns in namespaces {
            let Some(inner) = weak.upgrade() else { return };
            resolve(&inner, &ns, None).await;
        }
    })
}

/// Resolves the ids woken by links that showed (see [`Peers::add_link`]) on
/// a task of their own: taken from the wake-ups, they would be lost with the
/// task of a namespace that leaves the view meanwhile.
fn wake(inner: &Arc<Inner>) {
    let woken = lock(&inner.peers).take_woken();
    if woken.is_empty() {
        return;
    }
    let weak = Arc::downgrade(inner);
    tokio::spawn(async move {
        for (ns, ids) in woken {
            let Some(inner) = weak.upgrade() else { return };
            resolve(&inner, &ns, Some(&ids)).await;
        }
    });
}

async fn resolve_ns(inner: &Inner, ns: &Namespace, only: Option<&BTreeSet<i32>>) {
    let (dump, wanted) = {
        let shared = lock(&inner.shared);
        let Some(e) = shared.namespaces.get(ns) else {
            return;
        };
        if !e.view.status.is_followed() {
            return;
        }
        // Each id once, with the peer index of one link that uses it.
        let mut wanted = BTreeMap::new();
        for l in e.view.state.links.values() {
            if let (Some(id), Some(peer)) = (l.link_netnsid, l.link)
                && peer != 0
                && !e.view.nsids.contains_key(&id)
                && only.is_none_or(|o| o.contains(&id))
            {
                wanted.entry(id).or_insert(peer);
            }
        }
        (e.dump_lock.clone(), wanted)
    };
    for (id, peer) in wanted {
        resolve_one(inner, ns, &dump, id, peer).await;
    }
}

/// Resolves `id` of `ns` from a link whose peer has index `peer`.
async fn resolve_one(inner: &Inner, ns: &Namespace, dump: &DumpLock, id: i32, peer: u32) {
    // The peer gone (or its namespace): nothing to name; a new link using
    // the id brings it back here.
    let Ok(Some(msg)) = nl::query_peer_link(dump, id, peer).await else {
        return;
    };
    let key = key_of(&Link::from_message(&msg));
    let mut tried = BTreeSet::new();
    loop {
        let candidates: Vec<(Namespace, nsfs::NsId)> = {
            let shared = lock(&inner.shared);
            let mut peers = lock(&inner.peers);
            let found: Vec<_> = peers
                .links
                .get(&key)
                .into_iter()
                .flatten()
                .filter(|b| *b != ns && !tried.contains(*b))
                .filter_map(|b| {
                    let e = shared.namespaces.get(b)?;
                    e.view.status.is_followed().then(|| (b.clone(), e.id))
                })
                .collect();
            if found.is_empty() {
                // Checked under the view's lock, as a namespace is added or
                // an event applied: the peer link cannot slip in between.
                if shared.namespaces.contains_key(ns) {
                    peers.wait(ns, id, key.1);
                }
                return;
            }
            found
        };
        for (b, b_id) in candidates {
            tried.insert(b.clone());
            let Ok(fd) = inner.open_netns(&b, b_id) else {
                continue;
            };
            if let Ok(Some(got)) = nl::query_nsid(dump, fd.as_fd()).await
                && got == id
            {
                {
                    let mut shared = lock(&inner.shared);
                    let mut peers = lock(&inner.peers);
                    peers.unwait(ns, id);
                    if let Some(e) = shared.namespaces.get_mut(ns) {
                        peers.name(ns, id, &b);
                        if let Some(old) = Arc::make_mut(&mut e.view.nsids).insert(id, b) {
                            peers.unname(ns, id, &old);
                        }
                    }
                }
                inner.bump();
                return;
            }
        }
    }
}

/// The kernel deleted `id` in `ns` (`RTM_DELNSID`): it names nothing now.
pub(crate) fn forget_id(inner: &Inner, ns: &Namespace, id: i32) {
    let mut shared = lock(&inner.shared);
    let mut peers = lock(&inner.peers);
    peers.unwait(ns, id);
    if let Some(e) = shared.namespaces.get_mut(ns)
        && e.view.nsids.contains_key(&id)
        && let Some(peer) = Arc::make_mut(&mut e.view.nsids).remove(&id)
    {
        peers.unname(ns, id, &peer);
    }
}

/// `ns` left the view (its entry `old`, taken out of `shared`): its links
/// leave the index, its ids stop waiting, and the ids of other namespaces
/// that named it name nothing now. Returns those namespaces (to resolve
/// again: it may come back).
pub(crate) fn forget_namespace(
    inner: &Inner,
    shared: &mut crate::view::Shared,
    ns: &Namespace,
    old: &crate::view::Entry,
) -> BTreeSet<Namespace> {
    let mut peers = lock(&inner.peers);
    peers.forget(ns, old.view.state.links.values().cloned());
    for (id, peer) in old.view.nsids.iter() {
        peers.unname(ns, *id, peer);
    }
    let mut touched = BTreeSet::new();
    for (k, id) in peers.named.remove(ns).unwrap_or_default() {
        if let Some(e) = shared.namespaces.get_mut(&k)
            && e.view.nsids.get(&id) == Some(ns)
        {
            Arc::make_mut(&mut e.view.nsids).remove(&id);
            touched.insert(k);
        }
    }
    touched
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(index: u32, name: &str, mac: u8) -> Link {
        Link {
            index,
            name: name.into(),
            kind: Some("veth".into()),
            flags: 0,
            oper_state: None,
            mtu: None,
            address: Some(vec![2, 0, 0, 0, 0, mac]),
            master: None,
            link: None,
            link_netnsid: None,
            group: None,
            alias: None,
        }
    }

    /// An id waiting for its peer link is woken when a link with that
    /// address is filed (whatever its name and index: it may have been
    /// renamed or moved meanwhile), not by one that only shares its index
    /// and name; forgetting a namespace drops its waits.
    #[test]
    fn a_waiting_id_wakes_on_its_peer_link_only() {
        let (a, b) = (
            Namespace::named("a").unwrap(),
            Namespace::named("b").unwrap(),
        );
        let mut p = Peers::default();
        p.wait(&a, 3, link(2, "e0", 9).address);
        p.add_link(&b, &link(2, "e0", 8));
        assert!(p.take_woken().is_empty());
        p.add_link(&b, &link(5, "eth0", 9));
        assert_eq!(
            p.take_woken(),
            BTreeMap::from([(a.clone(), BTreeSet::from([3]))])
        );
        assert_eq!(
            p.links[&key_of(&link(5, "x", 9))],
            BTreeSet::from([b.clone()])
        );
        p.forget(&a, std::iter::empty());
        assert!(p.waiting.is_empty() && p.waits_for.is_empty());
        p.forget(&b, [link(2, "e0", 8), link(5, "eth0", 9)].into_iter());
        assert!(p.links.is_empty());
    }
}
