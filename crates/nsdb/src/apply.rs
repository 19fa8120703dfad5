//! Sending a plan: each [`Step`] becomes its netlink request on the view's
//! request socket, then a wait until the view shows its effect, and the
//! undo steps that would take it back; when a step fails, the undo steps of
//! every step applied so far are sent, in reverse order.

use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd};
use std::time::Duration;

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use tracing::field::Empty;
use tracing::{Instrument, Span};

use crate::error::{Error, NetlinkError, Result, RollbackFailure};
use crate::model::{Address, AddressKey, Link};
use crate::nl;
use crate::plan::{Action, LinkAttrs, Step};
use crate::snapshot::{NsView, Snapshot};
use crate::trace;
use crate::view::{Namespace, View};

/// Sends `steps` in order (see [`crate::Transaction::commit`]); on a
/// failure, rolls back what was applied and says which step failed.
pub(crate) async fn commit(view: &View, steps: &[Step], timeout: Duration) -> Result<()> {
    let span = tracing::debug_span!(
        "commit",
        steps = steps.len(),
        outcome = Empty,
        error = Empty,
    );
    trace::traced(span, commit_steps(view, steps, timeout)).await
}

async fn commit_steps(view: &View, steps: &[Step], timeout: Duration) -> Result<()> {
    for s in steps {
        view.check_followed(&s.ns)?;
    }
    let applier = Applier { view, timeout };
    let mut undo: Vec<Step> = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        let span = step_span(view, step, i);
        let res = applier
            .apply(step, &mut undo)
            .instrument(span.clone())
            .await;
        trace::record(&span, &res);
        if let Err(source) = res {
            let rollback_failures = applier
                .roll_back(undo)
                .instrument(tracing::debug_span!("rollback"))
                .await;
            return Err(Error::Commit {
                step: i,
                request: step.to_string(),
                ns: step.ns.clone(),
                source,
                rollback_failures,
            });
        }
    }
    Ok(())
}

/// The span of one request of a commit or a rollback: `step` (its index),
/// `netns`, `inode` (when the view has it), `request`, `outcome`, `error`.
fn step_span(view: &View, step: &Step, index: usize) -> Span {
    tracing::debug_span!(
        "step",
        step = index,
        netns = %step.ns,
        inode = view.inode(&step.ns).map(|id| id.ino),
        request = %step,
        outcome = Empty,
        error = Empty,
    )
}

/// Sends steps on a view's sockets and waits for them to show in it.
struct Applier<'a> {
    view: &'a View,
    /// How long each step may take to show.
    timeout: Duration,
}

/// One step's context: where it is sent and the view of that namespace
/// just before.
struct Ctx<'a> {
    step: &'a Step,
    ns: &'a Namespace,
    handle: rtnetlink::Handle,
    nsv: &'a NsView,
}

impl Ctx<'_> {
    /// The link named `name` in the view, or `ENODEV`.
    fn find(&self, name: &str) -> Result<Link, NetlinkError> {
        self.nsv.link(name).cloned().ok_or_else(|| NetlinkError {
            errno: libc::ENODEV,
            message: Some(format!("link {name:?} not in the view of {}", self.ns)),
        })
    }

    /// An undo step in this step's namespace.
    fn undo_here(&self, action: Action) -> Step {
        Step {
            ns: self.ns.clone(),
            action,
        }
    }
}

impl Applier<'_> {
    /// Sends every undo step, last first; returns those that failed.
    async fn roll_back(&self, mut undo: Vec<Step>) -> Vec<RollbackFailure> {
        let mut failures = Vec::new();
        while let Some(u) = undo.pop() {
            let mut ignored = Vec::new();
            let span = step_span(self.view, &u, undo.len());
            let res = self.apply(&u, &mut ignored).instrument(span.clone()).await;
            trace::record(&span, &res);
            if let Err(source) = res {
                failures.push(RollbackFailure {
                    ns: u.ns.clone(),
                    request: u.to_string(),
                    source,
                });
            }
        }
        failures
    }

    /// Sends one step, waits for it to show, and pushes its undo steps.
    async fn apply(&self, step: &Step, undo: &mut Vec<Step>) -> Result<(), NetlinkError> {
        let ns = &step.ns;
        let handle = self
            .view
            .request_handle(ns)
            .await
            .map_err(|_| NetlinkError::closed())?;
        let snap = self.view.snapshot();
        let nsv = snap.namespace(ns).ok_or_else(NetlinkError::closed)?;
        let mut cx = Ctx {
            step,
            ns,
            handle,
            nsv,
        };
        match &step.action {
            Action::CreateVeth { name, peer } => {
                let msg = rtnetlink::LinkVeth::new(name, peer).build();
                self.create(&mut cx, msg, &[name, peer], undo).await
            }
            Action::CreateBridge { name } => {
                let msg = rtnetlink::LinkBridge::new(name).build();
                self.create(&mut cx, msg, &[name], undo).await
            }
            Action::Delete { link } => self.delete(&mut cx, link).await,
            Action::Set { link, attrs } => self.set(&mut cx, link, attrs, undo).await,
            Action::AddAddress {
                link,
                local,
                prefix_len,
            } => {
                self.add_address(&mut cx, link, *local, *prefix_len, undo)
                    .await
            }
            Action::RestoreAddress { link, address } => {
                self.restore_address(&mut cx, link, address).await
            }
            Action::RemoveAddress { link, address } => {
                self.remove_address(&mut cx, link, address, undo).await
            }
            Action::Move { link, to } => self.move_link(&mut cx, link, to, undo).await,
        }
    }

    /// Creates a link (`msg`); it shows once every one of `names` does.
    async fn create(
        &self,
        cx: &mut Ctx<'_>,
        msg: LinkMessage,
        names: &[&String],
        undo: &mut Vec<Step>,
    ) -> Result<(), NetlinkError> {
        nl::request(
            &mut cx.handle,
            RouteNetlinkMessage::NewLink(msg),
            NLM_F_CREATE | NLM_F_EXCL,
        )
        .await?;
        undo.push(cx.undo_here(Action::Delete {
            link: names[0].clone(),
        }));
        let ns = cx.ns;
        self.confirm(cx.step, |s| {
            s.namespace(ns)
                .is_some_and(|v| names.iter().all(|n| v.link(n).is_some()))
        })
        .await
    }

    async fn delete(&self, cx: &mut Ctx<'_>, link: &str) -> Result<(), NetlinkError> {
        let l = cx.find(link)?;
        let mut msg = LinkMessage::default();
        msg.header.index = l.index;
        nl::request(&mut cx.handle, RouteNetlinkMessage::DelLink(msg), 0).await?;
        let ns = cx.ns;
        self.confirm(cx.step, |s| s.link_by_index(ns, l.index).is_none())
            .await
    }

    /// Sets what `attrs` asks and the link does not have yet.
    async fn set(
        &self,
        cx: &mut Ctx<'_>,
        link: &str,
        attrs: &LinkAttrs,
        undo: &mut Vec<Step>,
    ) -> Result<(), NetlinkError> {
        let l = cx.find(link)?;
        let master_name = l
            .master
            .and_then(|m| cx.nsv.link_by_index(m))
            .map(|m| m.name.clone());
        let todo = attrs.minus(&l, master_name.as_deref());
        if todo.is_empty() {
            return Ok(());
        }
        let master_index = match &todo.master {
            Some(Some(m)) => Some(cx.find(m)?.index),
            Some(None) => Some(0),
            None => None,
        };
        let msg = set_message(l.index, &todo, master_index);
        nl::request(&mut cx.handle, RouteNetlinkMessage::NewLink(msg), 0).await?;
        let back = todo.undo(&l, master_name.as_deref());
        let now_name = todo.name.clone().unwrap_or_else(|| l.name.clone());
        undo.push(cx.undo_here(Action::Set {
            link: now_name,
            attrs: back,
        }));
        let (ns, index) = (cx.ns, l.index);
        self.confirm(cx.step, move |s| {
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

    async fn add_address(
        &self,
        cx: &mut Ctx<'_>,
        link: &str,
        local: IpAddr,
        prefix_len: u8,
        undo: &mut Vec<Step>,
    ) -> Result<(), NetlinkError> {
        let l = cx.find(link)?;
        let address = Address::plain(l.index, local, prefix_len);
        self.send_address(cx, &address).await?;
        undo.push(cx.undo_here(Action::RemoveAddress {
            link: link.to_owned(),
            address: address.clone(),
        }));
        self.confirm_address(cx, address.key(), true).await
    }

    /// Gives back an address as it was (label, broadcast, ...).
    async fn restore_address(
        &self,
        cx: &mut Ctx<'_>,
        link: &str,
        address: &Address,
    ) -> Result<(), NetlinkError> {
        let l = cx.find(link)?;
        let address = Address {
            index: l.index,
            ..address.clone()
        };
        self.send_address(cx, &address).await?;
        self.confirm_address(cx, address.key(), true).await
    }

    async fn remove_address(
        &self,
        cx: &mut Ctx<'_>,
        link: &str,
        address: &Address,
        undo: &mut Vec<Step>,
    ) -> Result<(), NetlinkError> {
        let l = cx.find(link)?;
        let key = AddressKey {
            index: l.index,
            ..address.key()
        };
        let Some(current) = cx.nsv.state().addresses.get(&key).cloned() else {
            return Err(NetlinkError {
                errno: libc::EADDRNOTAVAIL,
                message: Some(format!("address {key} not in the view of {}", cx.ns)),
            });
        };
        let mut msg = address_message(&current);
        msg.header.index = l.index;
        nl::request(&mut cx.handle, RouteNetlinkMessage::DelAddress(msg), 0).await?;
        undo.push(cx.undo_here(Action::RestoreAddress {
            link: link.to_owned(),
            address: current,
        }));
        self.confirm_address(cx, key, false).await
    }

    /// Moves a link to namespace `to`; its undo moves it back, sets it up
    /// if it was, and gives back its addresses (the kernel drops both).
    async fn move_link(
        &self,
        cx: &mut Ctx<'_>,
        link: &str,
        to: &Namespace,
        undo: &mut Vec<Step>,
    ) -> Result<(), NetlinkError> {
        let l = cx.find(link)?;
        let target = self.view.netns(to).map_err(|_| NetlinkError::closed())?;
        let mut msg = LinkMessage::default();
        msg.header.index = l.index;
        msg.attributes
            .push(LinkAttribute::NetNsFd(target.as_fd().as_raw_fd()));
        nl::request_holding(
            &mut cx.handle,
            RouteNetlinkMessage::NewLink(msg),
            0,
            &target,
        )
        .await?;
        drop(target);
        // Undo, in reverse: give back addresses, set up, move back.
        for a in cx.nsv.addresses_of(l.index) {
            undo.push(cx.undo_here(Action::RestoreAddress {
                link: link.to_owned(),
                address: a.clone(),
            }));
        }
        if l.is_up() {
            undo.push(cx.undo_here(Action::Set {
                link: link.to_owned(),
                attrs: LinkAttrs {
                    up: Some(true),
                    ..LinkAttrs::default()
                },
            }));
        }
        undo.push(Step {
            ns: to.clone(),
            action: Action::Move {
                link: link.to_owned(),
                to: cx.ns.clone(),
            },
        });
        let (ns, index, name) = (cx.ns, l.index, link.to_owned());
        self.confirm(cx.step, move |s| {
            let gone = s
                .namespace(ns)
                .is_some_and(|v| v.link_by_index(index).is_none_or(|x| x.name != name));
            gone && s.link(to, &name).is_some()
        })
        .await
    }

    async fn send_address(&self, cx: &mut Ctx<'_>, a: &Address) -> Result<(), NetlinkError> {
        nl::request(
            &mut cx.handle,
            RouteNetlinkMessage::NewAddress(address_message(a)),
            NLM_F_CREATE | NLM_F_EXCL,
        )
        .await
    }

    /// Waits until the view of the step's namespace has (`present`) or no
    /// longer has the address `key`.
    async fn confirm_address(
        &self,
        cx: &Ctx<'_>,
        key: AddressKey,
        present: bool,
    ) -> Result<(), NetlinkError> {
        let ns = cx.ns;
        self.confirm(cx.step, move |s| {
            s.namespace(ns)
                .is_some_and(|v| v.state().addresses.contains_key(&key) == present)
        })
        .await
    }

    /// Waits until `condition` holds on the view; `ETIMEDOUT` if it does
    /// not in time.
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

/// The `RTM_NEWLINK` that sets `todo` on link `index` (`master_index` 0:
/// no master).
fn set_message(index: u32, todo: &LinkAttrs, master_index: Option<u32>) -> LinkMessage {
    let mut msg = LinkMessage::default();
    msg.header.index = index;
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
    msg
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
