//! Transactions: edit links and addresses, review the plan, commit with
//! rollback.

use std::fmt;
use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd};
use std::time::Duration;

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use crate::error::{Error, NetlinkError, Result, RollbackFailure};
use crate::model::{Address, AddressKey, Link};
use crate::nl;
use crate::view::{Namespace, Snapshot, View};

/// The changes asked of one link, merged into one request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct LinkAttrs {
    name: Option<String>,
    mtu: Option<u32>,
    up: Option<bool>,
    /// `Some(None)`: no master.
    master: Option<Option<String>>,
}

impl LinkAttrs {
    fn is_empty(&self) -> bool {
        *self == LinkAttrs::default()
    }

    fn merge(&mut self, other: &LinkAttrs) {
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
    fn minus(&self, link: &Link, master_name: Option<&str>) -> LinkAttrs {
        LinkAttrs {
            name: self.name.clone().filter(|n| *n != link.name),
            mtu: self.mtu.filter(|m| Some(*m) != link.mtu),
            up: self.up.filter(|u| *u != link.is_up()),
            master: self.master.clone().filter(|m| m.as_deref() != master_name),
        }
    }

    /// The values `link` has for the attributes set here.
    fn undo(&self, link: &Link, master_name: Option<&str>) -> LinkAttrs {
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
enum Action {
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
    ns: Namespace,
    action: Action,
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
enum Edit {
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
struct Target {
    ns: Namespace,
    name: String,
}

/// A set of edits to links and addresses, applied together by
/// [`commit`](Transaction::commit) (IPDB's `with ipdb.interfaces.X as i:`).
///
/// Edits are recorded in order; [`plan`](Transaction::plan) merges the
/// attribute changes of one link into one request, leaves out what the view
/// shows is already so, and keeps a namespace move a step of its own.
///
/// # Examples
///
/// ```no_run
/// # async fn demo(view: nsdb::View) -> nsdb::Result<()> {
/// let test = nsdb::Namespace::named("test").unwrap();
/// let mut tx = view.transaction();
/// tx.link(&test, "v0p1")?.set_mtu(1400).up().add_address("10.0.0.2".parse().unwrap(), 24);
/// assert_eq!(tx.plan()?.len(), 2); // one RTM_NEWLINK, one RTM_NEWADDR
/// tx.commit().await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Transaction {
    view: View,
    edits: Vec<Edit>,
    /// Where each edited link is and what it is called when editing starts.
    origins: Vec<Target>,
    /// ... and after the edits recorded so far.
    targets: Vec<Target>,
    timeout: Duration,
}

/// The edits of one link (see [`Transaction::link`]); each method records
/// an edit and returns `self`.
///
/// # Examples
///
/// ```no_run
/// # fn demo(view: nsdb::View) -> nsdb::Result<()> {
/// let ns = nsdb::Namespace::named("test").unwrap();
/// let mut tx = view.transaction();
/// tx.link(&ns, "v0p1")?.set_name("eth0").set_mtu(9000).up();
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct LinkEdit<'a> {
    tx: &'a mut Transaction,
    target: usize,
}

impl LinkEdit<'_> {
    fn set(self, attrs: LinkAttrs) -> Self {
        if let Some(n) = &attrs.name {
            self.tx.targets[self.target].name.clone_from(n);
        }
        self.tx.edits.push(Edit::Set {
            link: self.target,
            attrs,
        });
        self
    }

    /// Renames the link.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn demo(e: nsdb::LinkEdit<'_>) { e.set_name("eth0"); }
    /// ```
    pub fn set_name(self, name: &str) -> Self {
        self.set(LinkAttrs {
            name: Some(name.to_owned()),
            ..LinkAttrs::default()
        })
    }

    /// Sets the MTU.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn demo(e: nsdb::LinkEdit<'_>) { e.set_mtu(1400); }
    /// ```
    pub fn set_mtu(self, mtu: u32) -> Self {
        self.set(LinkAttrs {
            mtu: Some(mtu),
            ..LinkAttrs::default()
        })
    }

    /// Sets the link administratively up.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn demo(e: nsdb::LinkEdit<'_>) { e.up(); }
    /// ```
    pub fn up(self) -> Self {
        self.set(LinkAttrs {
            up: Some(true),
            ..LinkAttrs::default()
        })
    }

    /// Sets the link administratively down.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn demo(e: nsdb::LinkEdit<'_>) { e.down(); }
    /// ```
    pub fn down(self) -> Self {
        self.set(LinkAttrs {
            up: Some(false),
            ..LinkAttrs::default()
        })
    }

    /// Enslaves the link to the controller named `master` (a bridge) in the
    /// same namespace, or frees it (`None`).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn demo(e: nsdb::LinkEdit<'_>) { e.set_master(Some("br0")); }
    /// ```
    pub fn set_master(self, master: Option<&str>) -> Self {
        self.set(LinkAttrs {
            master: Some(master.map(str::to_owned)),
            ..LinkAttrs::default()
        })
    }

    /// Adds an address.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn demo(e: nsdb::LinkEdit<'_>) { e.add_address("10.0.0.1".parse().unwrap(), 24); }
    /// ```
    pub fn add_address(self, local: IpAddr, prefix_len: u8) -> Self {
        self.tx.edits.push(Edit::AddAddress {
            link: self.target,
            local,
            prefix_len,
        });
        self
    }

    /// Removes an address.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn demo(e: nsdb::LinkEdit<'_>) { e.remove_address("10.0.0.1".parse().unwrap(), 24); }
    /// ```
    pub fn remove_address(self, local: IpAddr, prefix_len: u8) -> Self {
        self.tx.edits.push(Edit::RemoveAddress {
            link: self.target,
            local,
            prefix_len,
        });
        self
    }

    /// Moves the link to namespace `to` (which must be in the view),
    /// keeping its name (IPDB's `net_ns_fd = 'test'`). Always a step of its
    /// own; the kernel clears the link's addresses and sets it down when it
    /// moves, so edits after this one apply in `to`.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn demo(e: nsdb::LinkEdit<'_>) { e.move_to(&nsdb::Namespace::named("test").unwrap()); }
    /// ```
    pub fn move_to(self, to: &Namespace) -> Self {
        self.tx.edits.push(Edit::Move {
            link: self.target,
            to: to.clone(),
        });
        self.tx.targets[self.target].ns = to.clone();
        self
    }
}

impl View {
    /// Starts a transaction on this view.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(view: nsdb::View) -> nsdb::Result<()> {
    /// let ns = nsdb::Namespace::named("test").unwrap();
    /// let mut tx = view.transaction();
    /// tx.link(&ns, "v0p1")?.up();
    /// tx.commit().await?;
    /// # Ok(()) }
    /// ```
    pub fn transaction(&self) -> Transaction {
        Transaction {
            view: self.clone(),
            edits: Vec::new(),
            origins: Vec::new(),
            targets: Vec::new(),
            timeout: Duration::from_secs(5),
        }
    }
}

impl Transaction {
    /// How long [`commit`](Transaction::commit) waits for each step to show
    /// in the view (default 5 s).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn demo(view: nsdb::View) {
    /// let tx = view.transaction().timeout(std::time::Duration::from_secs(1));
    /// # }
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Transaction {
        self.timeout = timeout;
        self
    }

    /// Begins editing the link named `name` in `ns`: it must be in the view,
    /// or created earlier in this transaction.
    ///
    /// # Errors
    ///
    /// [`Error::NotViewed`] if `ns` is not in the view, [`Error::LinkNotFound`]
    /// if there is no such link.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn demo(view: nsdb::View) -> nsdb::Result<()> {
    /// let mut tx = view.transaction();
    /// tx.link(&nsdb::Namespace::Host, "lo")?.up();
    /// # Ok(()) }
    /// ```
    pub fn link(&mut self, ns: &Namespace, name: &str) -> Result<LinkEdit<'_>> {
        if let Some(i) = self
            .targets
            .iter()
            .position(|t| t.ns == *ns && t.name == name)
        {
            return Ok(LinkEdit {
                tx: self,
                target: i,
            });
        }
        let created = self.edits.iter().any(|e| match e {
            Edit::CreateVeth {
                ns: n,
                name: a,
                peer: b,
            } => n == ns && (a == name || b == name),
            Edit::CreateBridge { ns: n, name: a } => n == ns && a == name,
            _ => false,
        });
        if !created {
            let snap = self.view.snapshot();
            let v = snap
                .namespace(ns)
                .ok_or_else(|| Error::NotViewed { ns: ns.clone() })?;
            if v.link(name).is_none() {
                return Err(Error::LinkNotFound {
                    ns: ns.clone(),
                    link: name.to_owned(),
                });
            }
        }
        self.targets.push(Target {
            ns: ns.clone(),
            name: name.to_owned(),
        });
        self.origins.push(Target {
            ns: ns.clone(),
            name: name.to_owned(),
        });
        let target = self.targets.len() - 1;
        Ok(LinkEdit { tx: self, target })
    }

    /// Creates a veth pair `name`/`peer` in `ns`.
    ///
    /// # Errors
    ///
    /// [`Error::NotViewed`] if `ns` is not in the view.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn demo(view: nsdb::View) -> nsdb::Result<()> {
    /// let mut tx = view.transaction();
    /// tx.create_veth(&nsdb::Namespace::named("main").unwrap(), "v0p0", "v0p1")?;
    /// # Ok(()) }
    /// ```
    pub fn create_veth(&mut self, ns: &Namespace, name: &str, peer: &str) -> Result<&mut Self> {
        self.view.request_handle(ns)?;
        self.edits.push(Edit::CreateVeth {
            ns: ns.clone(),
            name: name.to_owned(),
            peer: peer.to_owned(),
        });
        Ok(self)
    }

    /// Creates a bridge `name` in `ns`.
    ///
    /// # Errors
    ///
    /// [`Error::NotViewed`] if `ns` is not in the view.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn demo(view: nsdb::View) -> nsdb::Result<()> {
    /// let mut tx = view.transaction();
    /// tx.create_bridge(&nsdb::Namespace::named("main").unwrap(), "br0")?;
    /// # Ok(()) }
    /// ```
    pub fn create_bridge(&mut self, ns: &Namespace, name: &str) -> Result<&mut Self> {
        self.view.request_handle(ns)?;
        self.edits.push(Edit::CreateBridge {
            ns: ns.clone(),
            name: name.to_owned(),
        });
        Ok(self)
    }

    /// The requests [`commit`](Transaction::commit) will send, in order,
    /// computed against the view as it is now: attribute changes of one link
    /// merged into one request, what is already so left out, a namespace move
    /// on its own.
    ///
    /// # Errors
    ///
    /// [`Error::NotViewed`], [`Error::AddressNotFound`] (an address to remove
    /// that is not there), [`Error::InvalidEdit`] (a move to the namespace the link
    /// is in).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn demo(tx: nsdb::Transaction) -> nsdb::Result<()> {
    /// for step in tx.plan()? { println!("{step}"); }
    /// # Ok(()) }
    /// ```
    pub fn plan(&self) -> Result<Vec<Step>> {
        plan(&self.edits, &self.origins, &self.view.snapshot())
    }

    /// Sends the planned requests one by one; after each, waits until the view
    /// shows its effect. If a request fails (or its effect does not show in
    /// time), undoes every step already applied, in reverse order, and
    /// returns [`Error::Commit`] naming the failed step and the kernel's errno
    /// and message.
    ///
    /// Undo restores what the view showed before each step: names, MTU,
    /// up/down, master, addresses (with their label and broadcast), links
    /// created (deleted again) and moves (moved back, then set up and given
    /// back their addresses). Routes the kernel removed as a side effect and
    /// did not re-create are not restored.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: dropping the future leaves the steps sent so far
    /// applied, without rollback. A namespace move already queued lands, if
    /// at all, only in its destination (its fd is held until the kernel
    /// answered).
    ///
    /// # Errors
    ///
    /// [`Error::Commit`]; [`Error::NotViewed`]/[`Error::Stale`]/
    /// [`Error::LinkNotFound`]/[`Error::AddressNotFound`] if the plan cannot
    /// be made (nothing sent).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(view: nsdb::View) -> nsdb::Result<()> {
    /// let ns = nsdb::Namespace::named("test").unwrap();
    /// let mut tx = view.transaction();
    /// tx.link(&ns, "v0p1")?.set_mtu(100_000);
    /// match tx.commit().await {
    ///     Err(nsdb::Error::Commit { step, source, .. }) => {
    ///         eprintln!("step {step} failed: errno {} {:?}", source.errno, source.message);
    ///     }
    ///     other => other?,
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn commit(self) -> Result<()> {
        let steps = self.plan()?;
        for s in &steps {
            self.view.request_handle(&s.ns)?;
        }
        let mut undo: Vec<Step> = Vec::new();
        for (i, step) in steps.iter().enumerate() {
            if let Err(source) = self.apply(step, &mut undo).await {
                let mut failures = Vec::new();
                while let Some(u) = undo.pop() {
                    let mut ignored = Vec::new();
                    if let Err(source) = self.apply(&u, &mut ignored).await {
                        failures.push(RollbackFailure {
                            ns: u.ns.clone(),
                            request: u.to_string(),
                            source,
                        });
                    }
                }
                return Err(Error::Commit {
                    step: i,
                    request: step.to_string(),
                    ns: step.ns.clone(),
                    source,
                    rollback_failures: failures,
                });
            }
        }
        Ok(())
    }

    /// Sends one step, waits for it to show, and pushes its undo steps.
    async fn apply(&self, step: &Step, undo: &mut Vec<Step>) -> Result<(), NetlinkError> {
        let view = &self.view;
        let ns = &step.ns;
        let mut handle = view
            .request_handle(ns)
            .map_err(|_| NetlinkError::closed())?;
        let snap = view.snapshot();
        let nsv = snap.namespace(ns).ok_or_else(NetlinkError::closed)?;
        let find = |name: &str| {
            nsv.link(name).cloned().ok_or(NetlinkError {
                errno: libc::ENODEV,
                message: Some(format!("link {name:?} not in the view of {ns}")),
            })
        };
        match &step.action {
            Action::CreateVeth { name, peer } => {
                let msg = rtnetlink::LinkVeth::new(name, peer).build();
                nl::request(
                    &mut handle,
                    RouteNetlinkMessage::NewLink(msg),
                    NLM_F_CREATE | NLM_F_EXCL,
                )
                .await?;
                undo.push(Step {
                    ns: ns.clone(),
                    action: Action::Delete { link: name.clone() },
                });
                let (n, p) = (name.clone(), peer.clone());
                self.confirm(step, |s| {
                    s.namespace(ns)
                        .is_some_and(|v| v.link(&n).is_some() && v.link(&p).is_some())
                })
                .await
            }
            Action::CreateBridge { name } => {
                let msg = rtnetlink::LinkBridge::new(name).build();
                nl::request(
                    &mut handle,
                    RouteNetlinkMessage::NewLink(msg),
                    NLM_F_CREATE | NLM_F_EXCL,
                )
                .await?;
                undo.push(Step {
                    ns: ns.clone(),
                    action: Action::Delete { link: name.clone() },
                });
                let n = name.clone();
                self.confirm(step, |s| s.link(ns, &n).is_some()).await
            }
            Action::Delete { link } => {
                let l = find(link)?;
                let mut msg = LinkMessage::default();
                msg.header.index = l.index;
                nl::request(&mut handle, RouteNetlinkMessage::DelLink(msg), 0).await?;
                self.confirm(step, |s| s.link_by_index(ns, l.index).is_none())
                    .await
            }
            Action::Set { link, attrs } => {
                let l = find(link)?;
                let master_name = l
                    .master
                    .and_then(|m| nsv.link_by_index(m))
                    .map(|m| m.name.clone());
                let todo = attrs.minus(&l, master_name.as_deref());
                if todo.is_empty() {
                    return Ok(());
                }
                let master_index = match &todo.master {
                    Some(Some(m)) => Some(find(m)?.index),
                    Some(None) => Some(0),
                    None => None,
                };
                let mut msg = LinkMessage::default();
                msg.header.index = l.index;
                if let Some(up) = todo.up {
                    msg.header.change_mask = LinkFlags::Up;
                    if up {
                        msg.header.flags = LinkFlags::Up;
                    }
                }
                if let Some(n) = &todo.name {
                    msg.attributes.push(LinkAttribute::IfName(n.clone()));
                }
                if let Some(m) = todo.mtu {
                    msg.attributes.push(LinkAttribute::Mtu(m));
                }
                if let Some(m) = master_index {
                    msg.attributes.push(LinkAttribute::Controller(m));
                }
                nl::request(&mut handle, RouteNetlinkMessage::NewLink(msg), 0).await?;
                let back = todo.undo(&l, master_name.as_deref());
                let now_name = todo.name.clone().unwrap_or_else(|| l.name.clone());
                undo.push(Step {
                    ns: ns.clone(),
                    action: Action::Set {
                        link: now_name,
                        attrs: back,
                    },
                });
                let index = l.index;
                self.confirm(step, move |s| {
                    let Some(v) = s.namespace(ns) else {
                        return false;
                    };
                    let Some(now) = v.link_by_index(index) else {
                        return false;
                    };
                    let now_master = now
                        .master
                        .and_then(|m| v.link_by_index(m))
                        .map(|m| m.name.as_str());
                    todo.minus(now, now_master).is_empty()
                })
                .await
            }
            Action::AddAddress {
                link,
                local,
                prefix_len,
            } => {
                let l = find(link)?;
                let address = Address {
                    index: l.index,
                    local: *local,
                    prefix_len: *prefix_len,
                    peer: None,
                    label: None,
                    scope: 0,
                    broadcast: None,
                    flags: 0,
                };
                self.add_address(&mut handle, &address).await?;
                undo.push(Step {
                    ns: ns.clone(),
                    action: Action::RemoveAddress {
                        link: link.clone(),
                        address: address.clone(),
                    },
                });
                self.confirm_address(step, ns, address.key(), true).await
            }
            Action::RestoreAddress { link, address } => {
                let l = find(link)?;
                let address = Address {
                    index: l.index,
                    ..address.clone()
                };
                self.add_address(&mut handle, &address).await?;
                self.confirm_address(step, ns, address.key(), true).await
            }
            Action::RemoveAddress { link, address } => {
                let l = find(link)?;
                let key = AddressKey {
                    index: l.index,
                    ..address.key()
                };
                let Some(current) = nsv.state().addresses.get(&key).cloned() else {
                    return Err(NetlinkError {
                        errno: libc::EADDRNOTAVAIL,
                        message: Some(format!("address {key} not in the view of {ns}")),
                    });
                };
                let mut msg = address_message(&current);
                msg.header.index = l.index;
                nl::request(&mut handle, RouteNetlinkMessage::DelAddress(msg), 0).await?;
                undo.push(Step {
                    ns: ns.clone(),
                    action: Action::RestoreAddress {
                        link: link.clone(),
                        address: current,
                    },
                });
                self.confirm_address(step, ns, key, false).await
            }
            Action::Move { link, to } => {
                let l = find(link)?;
                let target = view.netns(to).map_err(|_| NetlinkError::closed())?;
                let mut msg = LinkMessage::default();
                msg.header.index = l.index;
                msg.attributes
                    .push(LinkAttribute::NetNsFd(target.as_fd().as_raw_fd()));
                nl::request_holding(&mut handle, RouteNetlinkMessage::NewLink(msg), 0, &target)
                    .await?;
                drop(target);
                // Undo, in reverse: give back addresses, set up, move back.
                for a in nsv.addresses_of(l.index) {
                    undo.push(Step {
                        ns: ns.clone(),
                        action: Action::RestoreAddress {
                            link: link.clone(),
                            address: a.clone(),
                        },
                    });
                }
                if l.is_up() {
                    undo.push(Step {
                        ns: ns.clone(),
                        action: Action::Set {
                            link: link.clone(),
                            attrs: LinkAttrs {
                                up: Some(true),
                                ..LinkAttrs::default()
                            },
                        },
                    });
                }
                undo.push(Step {
                    ns: to.clone(),
                    action: Action::Move {
                        link: link.clone(),
                        to: ns.clone(),
                    },
                });
                let (index, name) = (l.index, link.clone());
                self.confirm(step, move |s| {
                    let gone = s
                        .namespace(ns)
                        .is_some_and(|v| v.link_by_index(index).is_none_or(|x| x.name != name));
                    gone && s.link(to, &name).is_some()
                })
                .await
            }
        }
    }

    async fn add_address(
        &self,
        handle: &mut rtnetlink::Handle,
        a: &Address,
    ) -> Result<(), NetlinkError> {
        nl::request(
            handle,
            RouteNetlinkMessage::NewAddress(address_message(a)),
            NLM_F_CREATE | NLM_F_EXCL,
        )
        .await
    }

    /// Waits until the view of `ns` has (`present`) or no longer has the
    /// address `key`.
    async fn confirm_address(
        &self,
        step: &Step,
        ns: &Namespace,
        key: AddressKey,
        present: bool,
    ) -> Result<(), NetlinkError> {
        self.confirm(step, move |s| {
            s.namespace(ns)
                .is_some_and(|v| v.state().addresses.contains_key(&key) == present)
        })
        .await
    }

    async fn confirm<F>(&self, step: &Step, condition: F) -> Result<(), NetlinkError>
    where
        F: FnMut(&Snapshot) -> bool,
    {
        self.view
            .wait_for(&step.to_string(), self.timeout, condition)
            .await
            .map(|_| ())
            .map_err(|e| NetlinkError {
                errno: libc::ETIMEDOUT,
                message: Some(e.to_string()),
            })
    }
}

fn address_message(a: &Address) -> AddressMessage {
    let mut msg = AddressMessage::default();
    msg.header.family = if a.local.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    msg.header.prefix_len = a.prefix_len;
    msg.header.index = a.index;
    msg.header.scope = a.scope.into();
    msg.attributes.push(AddressAttribute::Local(a.local));
    msg.attributes
        .push(AddressAttribute::Address(a.peer.unwrap_or(a.local)));
    if let Some(IpAddr::V4(b)) = a.broadcast {
        msg.attributes.push(AddressAttribute::Broadcast(b));
    }
    if let Some(l) = &a.label {
        msg.attributes.push(AddressAttribute::Label(l.clone()));
    }
    msg
}

/// Turns the edits into steps (sans-IO: only reads the snapshot).
fn plan(edits: &[Edit], origins: &[Target], snap: &Snapshot) -> Result<Vec<Step>> {
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
    use super::*;

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
