//! The planner: turns a transaction's edits into the requests to send,
//! against a snapshot of the view. Pure: no sockets, no tasks, no clock;
//! what it reads is the [`Snapshot`] it is given, what it returns are plain
//! [`Step`] values (the sans-IO half of a transaction; `apply.rs` sends them).

use std::fmt;
use std::net::IpAddr;

use crate::error::{Error, Result};
use crate::model::{Address, Link};
use crate::snapshot::Snapshot;
#[cfg(doc)]
use crate::txn::Transaction;
use crate::view::Namespace;

/// The changes asked of one link, merged into one request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct LinkAttrs {
    pub(crate) name: Option<String>,
    pub(crate) mtu: Option<u32>,
    pub(crate) up: Option<bool>,
    /// `Some(None)`: no master.
    pub(crate) master: Option<Option<String>>,
}

impl LinkAttrs {
    pub(crate) fn is_empty(&self) -> bool {
        *self == LinkAttrs::default()
    }

    pub(crate) fn merge(&mut self, other: &LinkAttrs) {
        if other.name.is_some() {
            self.name.clone_from(&other.name);
        }
        if other.mtu.is_some() {
            self.mtu = other.mtu;
        }
        if other.up.is_some() {
            self.up = other.up;
        }
        if other.master.is_some() {
            self.master.clone_from(&other.master);
        }
    }

    /// Drops what the link already has.
    pub(crate) fn minus(&self, link: &Link, master_name: Option<&str>) -> LinkAttrs {
        LinkAttrs {
            name: self.name.clone().filter(|n| *n != link.name),
            mtu: self.mtu.filter(|m| Some(*m) != link.mtu),
            up: self.up.filter(|u| *u != link.is_up()),
            master: self.master.clone().filter(|m| m.as_deref() != master_name),
        }
    }

    /// The values `link` has for the attributes set here.
    pub(crate) fn undo(&self, link: &Link, master_name: Option<&str>) -> LinkAttrs {
        LinkAttrs {
            name: self.name.as_ref().map(|_| link.name.clone()),
            mtu: self.mtu.and(link.mtu),
            up: self.up.map(|_| link.is_up()),
            master: self.master.as_ref().map(|_| master_name.map(str::to_owned)),
        }
    }
}

impl fmt::Display for LinkAttrs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(n) = &self.name {
            parts.push(format!("name {n}"));
        }
        if let Some(m) = self.mtu {
            parts.push(format!("mtu {m}"));
        }
        if let Some(u) = self.up {
            parts.push(if u { "up".into() } else { "down".into() });
        }
        match &self.master {
            Some(Some(m)) => parts.push(format!("master {m}")),
            Some(None) => parts.push("nomaster".into()),
            None => {}
        }
        f.write_str(&parts.join(" "))
    }
}

/// What one step does (the sans-IO description of a request).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    CreateVeth {
        name: String,
        peer: String,
    },
    CreateBridge {
        name: String,
    },
    Set {
        link: String,
        attrs: LinkAttrs,
    },
    AddAddress {
        link: String,
        local: IpAddr,
        prefix_len: u8,
    },
    RemoveAddress {
        link: String,
        address: Address,
    },
    Move {
        link: String,
        to: Namespace,
    },
    // Undo-only actions.
    Delete {
        link: String,
    },
    RestoreAddress {
        link: String,
        address: Address,
    },
}

/// One request of a [`Transaction`], as [`Transaction::plan`] lists them.
///
/// # Examples
///
/// ```no_run
/// # fn demo(tx: &nsdb::Transaction) -> nsdb::Result<()> {
/// for step in tx.plan()? { println!("{step}"); }
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub(crate) ns: Namespace,
    pub(crate) action: Action,
}

impl Step {
    /// The namespace the request is sent in.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn demo(s: &nsdb::Step) { println!("{}", s.namespace()); }
    /// ```
    pub fn namespace(&self) -> &Namespace {
        &self.ns
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ns = &self.ns;
        match &self.action {
            Action::CreateVeth { name, peer } => {
                write!(f, "{ns}: RTM_NEWLINK create veth {name} peer {peer}")
            }
            Action::CreateBridge { name } => write!(f, "{ns}: RTM_NEWLINK create bridge {name}"),
            Action::Set { link, attrs } => write!(f, "{ns}: RTM_NEWLINK set {link} {attrs}"),
            Action::AddAddress {
                link,
                local,
                prefix_len,
            } => {
                write!(f, "{ns}: RTM_NEWADDR {local}/{prefix_len} dev {link}")
            }
            Action::RemoveAddress { link, address } | Action::RestoreAddress { link, address } => {
                let verb = if matches!(self.action, Action::RemoveAddress { .. }) {
                    "RTM_DELADDR"
                } else {
                    "RTM_NEWADDR"
                };
                write!(
                    f,
                    "{ns}: {verb} {}/{} dev {link}",
                    address.local, address.prefix_len
                )
            }
            Action::Move { link, to } => write!(f, "{ns}: RTM_NEWLINK move {link} to netns {to}"),
            Action::Delete { link } => write!(f, "{ns}: RTM_DELLINK {link}"),
        }
    }
}

/// What the user asked, in order (before merging).
#[derive(Clone, Debug)]
pub(crate) enum Edit {
    CreateVeth {
        ns: Namespace,
        name: String,
        peer: String,
    },
    CreateBridge {
        ns: Namespace,
        name: String,
    },
    Set {
        link: usize,
        attrs: LinkAttrs,
    },
    AddAddress {
        link: usize,
        local: IpAddr,
        prefix_len: u8,
    },
    RemoveAddress {
        link: usize,
        local: IpAddr,
        prefix_len: u8,
    },
    Move {
        link: usize,
        to: Namespace,
    },
}

/// A link being edited: where it is and what it is called at this point of
/// the transaction.
#[derive(Clone, Debug)]
pub(crate) struct Target {
    pub(crate) ns: Namespace,
    pub(crate) name: String,
}

/// Turns the edits into steps, in order: the attribute changes of one link
/// merged into one request (unless a rename or a move comes between), what
/// `snap` shows is already so left out, a namespace move a step of its own.
pub(crate) fn plan(edits: &[Edit], origins: &[Target], snap: &Snapshot) -> Result<Vec<Step>> {
    let mut steps: Vec<Step> = Vec::new();
    let mut cur: Vec<Target> = origins.to_vec();
    let mut pending_set: Vec<Option<usize>> = vec![None; origins.len()];
    let mut last_step: Vec<Option<usize>> = vec![None; origins.len()];
    // Created or moved in this transaction: the view cannot tell what it has.
    let mut fresh: Vec<bool> = vec![false; origins.len()];
    let mut created: Vec<(Namespace, String)> = Vec::new();
    let viewed = |ns: &Namespace| {
        snap.namespace(ns)
            .ok_or_else(|| Error::NotViewed { ns: ns.clone() })
    };
    for (t, target) in origins.iter().enumerate() {
        fresh[t] = snap.link(&target.ns, &target.name).is_none();
    }
    for edit in edits {
        match edit {
            Edit::CreateVeth { ns, name, peer } => {
                viewed(ns)?;
                steps.push(Step {
                    ns: ns.clone(),
                    action: Action::CreateVeth {
                        name: name.clone(),
                        peer: peer.clone(),
                    },
                });
                created.push((ns.clone(), name.clone()));
                created.push((ns.clone(), peer.clone()));
            }
            Edit::CreateBridge { ns, name } => {
                viewed(ns)?;
                steps.push(Step {
                    ns: ns.clone(),
                    action: Action::CreateBridge { name: name.clone() },
                });
                created.push((ns.clone(), name.clone()));
            }
            Edit::Set { link, attrs } => {
                let t = cur[*link].clone();
                viewed(&t.ns)?;
                let mergeable = pending_set[*link]
                    .filter(|&p| attrs.name.is_none() || last_step[*link] == Some(p));
                match mergeable {
                    Some(p) => {
                        if let Action::Set { attrs: a, .. } = &mut steps[p].action {
                            a.merge(attrs);
                        }
                    }
                    None => {
                        steps.push(Step {
                            ns: t.ns.clone(),
                            action: Action::Set {
                                link: t.name.clone(),
                                attrs: attrs.clone(),
                            },
                        });
                        pending_set[*link] = Some(steps.len() - 1);
                        last_step[*link] = Some(steps.len() - 1);
                    }
                }
                if let Some(n) = &attrs.name {
                    cur[*link].name.clone_from(n);
                }
            }
            Edit::AddAddress {
                link,
                local,
                prefix_len,
            } => {
                let t = &cur[*link];
                let v = viewed(&t.ns)?;
                let present = !fresh[*link]
                    && v.link(&t.name).is_some_and(|l| {
                        v.addresses_of(l.index)
                            .any(|a| a.local == *local && a.prefix_len == *prefix_len)
                    });
                if !present {
                    steps.push(Step {
                        ns: t.ns.clone(),
                        action: Action::AddAddress {
                            link: t.name.clone(),
                            local: *local,
                            prefix_len: *prefix_len,
                        },
                    });
                    last_step[*link] = Some(steps.len() - 1);
                }
            }
            Edit::RemoveAddress {
                link,
                local,
                prefix_len,
            } => {
                let t = &cur[*link];
                let v = viewed(&t.ns)?;
                if fresh[*link] {
                    return Err(Error::InvalidEdit {
                        ns: t.ns.clone(),
                        link: t.name.clone(),
                        reason: "the link is created or moved in this transaction: it has no address to remove",
                    });
                }
                let address = v
                    .link(&t.name)
                    .and_then(|l| {
                        v.addresses_of(l.index)
                            .find(|a| a.local == *local && a.prefix_len == *prefix_len)
                    })
                    .cloned()
                    .ok_or_else(|| Error::AddressNotFound {
                        ns: t.ns.clone(),
                        link: t.name.clone(),
                        address: *local,
                        prefix_len: *prefix_len,
                    })?;
                steps.push(Step {
                    ns: t.ns.clone(),
                    action: Action::RemoveAddress {
                        link: t.name.clone(),
                        address,
                    },
                });
                last_step[*link] = Some(steps.len() - 1);
            }
            Edit::Move { link, to } => {
                let t = cur[*link].clone();
                viewed(&t.ns)?;
                viewed(to)?;
                if *to == t.ns {
                    return Err(Error::InvalidEdit {
                        ns: t.ns,
                        link: t.name.clone(),
                        reason: "the link is already in that namespace",
                    });
                }
                steps.push(Step {
                    ns: t.ns.clone(),
                    action: Action::Move {
                        link: t.name.clone(),
                        to: to.clone(),
                    },
                });
                cur[*link].ns = to.clone();
                pending_set[*link] = None;
                last_step[*link] = Some(steps.len() - 1);
                fresh[*link] = true;
            }
        }
    }
    // Leave out what the view shows is already so (links neither created
    // nor moved before their Set step).
    let mut moved: Vec<(Namespace, String)> = Vec::new();
    steps.retain_mut(|step| match &mut step.action {
        Action::Move { link, .. } => {
            moved.push((step.ns.clone(), link.clone()));
            true
        }
        Action::Set { link, attrs } => {
            let key = (step.ns.clone(), link.clone());
            if created.contains(&key) || moved.contains(&key) {
                return true;
            }
            let Some(v) = snap.namespace(&step.ns) else {
                return true;
            };
            let Some(l) = v.link(link) else { return true };
            let master = l
                .master
                .and_then(|m| v.link_by_index(m))
                .map(|m| m.name.as_str());
            *attrs = attrs.minus(l, master);
            !attrs.is_empty()
        }
        _ => true,
    });
    Ok(steps)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use netlink_packet_route::link::{LinkAttribute, LinkMessage};

    use super::*;
    use crate::model::{IFF_UP, NsState};
    use crate::snapshot::{NsStatus, NsView};

    fn link(index: u32, name: &str, mtu: u32, up: bool) -> Link {
        Link {
            index,
            name: name.into(),
            kind: Some("veth".into()),
            flags: if up { IFF_UP } else { 0 },
            oper_state: None,
            mtu: Some(mtu),
            address: None,
            master: None,
            link: None,
            link_netnsid: None,
            group: None,
            alias: None,
        }
    }

    fn address(index: u32, local: &str, prefix_len: u8) -> Address {
        Address::plain(index, local.parse().unwrap(), prefix_len)
    }

    /// A snapshot of plain values: each namespace with its links and
    /// addresses, live.
    fn snapshot(namespaces: &[(&Namespace, Vec<Link>, Vec<Address>)]) -> Snapshot {
        let mut map = BTreeMap::new();
        for (ns, links, addresses) in namespaces {
            let mut state = NsState::default();
            for l in links {
                state.links.insert(l.index, l.clone());
            }
            for a in addresses {
                state.addresses.insert(a.key(), a.clone());
            }
            map.insert(
                (*ns).clone(),
                NsView {
                    state: Arc::new(state),
                    status: NsStatus::Live,
                    nsids: Arc::default(),
                    ns: (*ns).clone(),
                },
            );
        }
        Snapshot { namespaces: map }
    }

    fn set(link: usize, attrs: LinkAttrs) -> Edit {
        Edit::Set { link, attrs }
    }

    fn add_address(link: usize, local: &str, prefix_len: u8) -> Edit {
        Edit::AddAddress {
            link,
            local: local.parse().unwrap(),
            prefix_len,
        }
    }

    fn shown(steps: &[Step]) -> Vec<String> {
        steps.iter().map(Step::to_string).collect()
    }

    fn a() -> Namespace {
        Namespace::named("a").unwrap()
    }

    fn b() -> Namespace {
        Namespace::named("b").unwrap()
    }

    #[test]
    fn attribute_edits_of_one_link_merge_into_one_request_minus_what_is_so() {
        let snap = snapshot(&[(&a(), vec![link(2, "v0", 1500, false)], vec![])]);
        let edits = [
            set(
                0,
                LinkAttrs {
                    mtu: Some(1400),
                    ..LinkAttrs::default()
                },
            ),
            set(
                0,
                LinkAttrs {
                    up: Some(true),
                    ..LinkAttrs::default()
                },
            ),
            // Already so: left out of the request.
            set(
                0,
                LinkAttrs {
                    master: Some(None),
                    ..LinkAttrs::default()
                },
            ),
        ];
        let steps = plan(&edits, &[t(&a(), "v0")], &snap).unwrap();
        assert_eq!(shown(&steps), ["a: RTM_NEWLINK set v0 mtu 1400 up"]);
    }

    #[test]
    fn edits_that_change_nothing_plan_nothing() {
        let snap = snapshot(&[(
            &a(),
            vec![link(2, "v0", 1500, true)],
            vec![address(2, "10.0.0.1", 24)],
        )]);
        let edits = [
            set(
                0,
                LinkAttrs {
                    mtu: Some(1500),
                    up: Some(true),
                    ..LinkAttrs::default()
                },
            ),
            add_address(0, "10.0.0.1", 24),
        ];
        assert_eq!(plan(&edits, &[t(&a(), "v0")], &snap).unwrap(), []);
    }

    #[test]
    fn a_rename_is_followed_by_the_new_name() {
        let snap = snapshot(&[(&a(), vec![link(2, "v0", 1500, false)], vec![])]);
        let edits = [
            set(
                0,
                LinkAttrs {
                    name: Some("eth0".into()),
                    ..LinkAttrs::default()
                },
            ),
            add_address(0, "10.0.0.1", 24),
            // A second rename after another step is a request of its own.
            set(
                0,
                LinkAttrs {
                    name: Some("eth1".into()),
                    ..LinkAttrs::default()
                },
            ),
        ];
        let steps = plan(&edits, &[t(&a(), "v0")], &snap).unwrap();
        assert_eq!(
            shown(&steps),
            [
                "a: RTM_NEWLINK set v0 name eth0",
                "a: RTM_NEWADDR 10.0.0.1/24 dev eth0",
                "a: RTM_NEWLINK set eth0 name eth1",
            ]
        );
    }

    #[test]
    fn a_move_is_a_step_of_its_own_and_later_edits_apply_in_the_destination() {
        let snap = snapshot(&[
            (
                &a(),
                vec![link(2, "v0", 1500, true)],
                vec![address(2, "10.0.0.1", 24)],
            ),
            (&b(), vec![], vec![]),
        ]);
        let edits = [
            set(
                0,
                LinkAttrs {
                    mtu: Some(1400),
                    ..LinkAttrs::default()
                },
            ),
            Edit::Move { link: 0, to: b() },
            // The kernel sets a moved link down and clears its addresses:
            // neither is left out, whatever the view showed before.
            set(
                0,
                LinkAttrs {
                    up: Some(true),
                    ..LinkAttrs::default()
                },
            ),
            add_address(0, "10.0.0.1", 24),
        ];
        let steps = plan(&edits, &[t(&a(), "v0")], &snap).unwrap();
        assert_eq!(
            shown(&steps),
            [
                "a: RTM_NEWLINK set v0 mtu 1400",
                "a: RTM_NEWLINK move v0 to netns b",
                "b: RTM_NEWLINK set v0 up",
                "b: RTM_NEWADDR 10.0.0.1/24 dev v0",
            ]
        );
        assert_eq!(steps[2].namespace(), &b());
    }

    #[test]
    fn created_links_are_edited_as_asked() {
        let snap = snapshot(&[(&a(), vec![], vec![])]);
        let edits = [
            Edit::CreateVeth {
                ns: a(),
                name: "v0".into(),
                peer: "v1".into(),
            },
            set(
                0,
                LinkAttrs {
                    up: Some(true),
                    ..LinkAttrs::default()
                },
            ),
        ];
        let steps = plan(&edits, &[t(&a(), "v0")], &snap).unwrap();
        assert_eq!(
            shown(&steps),
            [
                "a: RTM_NEWLINK create veth v0 peer v1",
                "a: RTM_NEWLINK set v0 up"
            ]
        );
    }

    #[test]
    fn removing_an_address_takes_the_one_the_view_shows() {
        let mut shown_address = address(2, "10.0.0.1", 24);
        shown_address.label = Some("v0:x".into());
        let snap = snapshot(&[(
            &a(),
            vec![link(2, "v0", 1500, true)],
            vec![shown_address.clone()],
        )]);
        let edits = [Edit::RemoveAddress {
            link: 0,
            local: "10.0.0.1".parse().unwrap(),
            prefix_len: 24,
        }];
        let steps = plan(&edits, &[t(&a(), "v0")], &snap).unwrap();
        assert_eq!(
            steps[0].action,
            Action::RemoveAddress {
                link: "v0".into(),
                address: shown_address,
            }
        );
    }

    #[test]
    fn impossible_edits_are_typed_errors() {
        let snap = snapshot(&[(&a(), vec![link(2, "v0", 1500, true)], vec![])]);
        let origins = [t(&a(), "v0")];
        let remove = Edit::RemoveAddress {
            link: 0,
            local: "10.9.9.9".parse().unwrap(),
            prefix_len: 8,
        };
        let err = plan(std::slice::from_ref(&remove), &origins, &snap).unwrap_err();
        assert!(
            matches!(&err, Error::AddressNotFound { link, prefix_len: 8, .. } if link == "v0"),
            "{err:?}"
        );
        // The view cannot know the addresses of a link moved in the
        // transaction.
        let err = plan(
            &[Edit::Move { link: 0, to: b() }, remove],
            &origins,
            &snapshot(&[
                (&a(), vec![link(2, "v0", 1500, true)], vec![]),
                (&b(), vec![], vec![]),
            ]),
        )
        .unwrap_err();
        assert!(
            matches!(&err, Error::InvalidEdit { ns, .. } if *ns == b()),
            "{err:?}"
        );
        let err = plan(&[Edit::Move { link: 0, to: a() }], &origins, &snap).unwrap_err();
        assert!(
            matches!(&err, Error::InvalidEdit { link, reason, .. } if link == "v0" && reason.contains("already")),
            "{err:?}"
        );
        // The destination must be viewed.
        let err = plan(&[Edit::Move { link: 0, to: b() }], &origins, &snap).unwrap_err();
        assert!(
            matches!(&err, Error::NotViewed { ns } if *ns == b()),
            "{err:?}"
        );
    }

    fn t(ns: &Namespace, name: &str) -> Target {
        Target {
            ns: ns.clone(),
            name: name.into(),
        }
    }

    #[test]
    fn empty_snapshot_rejects_unviewed_namespaces() {
        let ns = Namespace::named("x").unwrap();
        let edits = vec![Edit::CreateBridge {
            ns: ns.clone(),
            name: "br0".into(),
        }];
        assert!(matches!(
            plan(&edits, &[], &Snapshot::default()),
            Err(Error::NotViewed { .. })
        ));
    }

    #[test]
    fn attrs_merge_and_minus() {
        let mut a = LinkAttrs {
            mtu: Some(1400),
            ..LinkAttrs::default()
        };
        a.merge(&LinkAttrs {
            up: Some(true),
            ..LinkAttrs::default()
        });
        assert_eq!(a.to_string(), "mtu 1400 up");
        let mut m = LinkMessage::default();
        m.header.index = 2;
        m.attributes.push(LinkAttribute::IfName("v0".into()));
        m.attributes.push(LinkAttribute::Mtu(1400));
        let link = Link::from_message(&m);
        let left = a.minus(&link, None);
        assert_eq!(
            left,
            LinkAttrs {
                up: Some(true),
                ..LinkAttrs::default()
            }
        );
        assert_eq!(
            left.undo(&link, None),
            LinkAttrs {
                up: Some(false),
                ..LinkAttrs::default()
            }
        );
        let _ = t(&Namespace::Host, "lo");
    }
}
