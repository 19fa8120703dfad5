//! Transactions, the edit API: record edits of links and addresses
//! ([`Transaction`], [`LinkEdit`]), list the plan, commit. The planner is in
//! `plan.rs`, the requests are sent by `apply.rs`.

use std::net::IpAddr;
use std::time::Duration;

use crate::apply;
use crate::error::{Error, Result};
use crate::plan::{self, Edit, LinkAttrs, Step, Target};
use crate::view::{Namespace, View};

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
        self.view.check_followed(ns)?;
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
        self.view.check_followed(ns)?;
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
        plan::plan(&self.edits, &self.origins, &self.view.snapshot())
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
        apply::commit(&self.view, &steps, self.timeout).await
    }
}
