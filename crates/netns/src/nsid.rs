//! Namespace ids: `ip netns set NAME ID` and `ip netns list-id`.

use std::os::fd::{AsFd, AsRawFd};

use futures::StreamExt;
use netlink_packet_core::{
    DoneMessage, ErrorMessage, NLM_F_DUMP, NLM_F_REQUEST, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::nsid::{NsidAttribute, NsidMessage};
use nsfs::{EntryState, NetNs, NsName, OpenMode};

use crate::{Handle, Result, Target};

/// The id to give a namespace with [`Handle::set_nsid`].
///
/// # Examples
///
/// ```
/// assert_ne!(netns::Nsid::Auto, netns::Nsid::Id(7));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Nsid {
    /// Let the kernel pick one (`ip netns set NAME auto`).
    Auto,
    /// This id (non-negative).
    Id(i32),
}

/// One namespace id known to a namespace: an item of
/// [`Handle::list_nsids`] (a line of `ip netns list-id`).
///
/// # Examples
///
/// ```no_run
/// # async fn demo(h: netns::Handle) -> netns::Result<()> {
/// for entry in h.list_nsids().await? {
///     println!("nsid {} {:?}", entry.nsid, entry.name);
/// }
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct NsidEntry {
    /// The id, as the handle's namespace names the peer namespace (with a
    /// [`ListNsids::target_nsid`] filter: as that namespace names it, `-1`
    /// if it has no id for the peer).
    pub nsid: i32,
    /// With a [`ListNsids::target_nsid`] filter, the id the handle's
    /// namespace gives the peer (`-1`: none), the `current-nsid` of
    /// `ip netns list-id`; `None` without that filter.
    pub current_nsid: Option<i32>,
    /// The peer namespace's name in the handle's run directory, where one of
    /// its entries has this id (the handle's namespace's id for the peer:
    /// `current_nsid` with a target filter, else `nsid`).
    pub name: Option<NsName>,
}

fn nsid_request(attributes: Vec<NsidAttribute>) -> NsidMessage {
    let mut msg = NsidMessage::default();
    msg.attributes = attributes;
    msg
}

fn id_of(msg: &NsidMessage) -> Option<i32> {
    msg.attributes.iter().find_map(|a| match a {
        NsidAttribute::Id(id) if *id >= 0 => Some(*id),
        _ => None,
    })
}

impl Handle {
    /// The id this handle's namespace gives the namespace `target` (a name,
    /// path, pid, `NetNs` or handle), or `None` if it has none yet.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    ///
    /// # Errors
    ///
    /// [`Error::Namespace`](crate::Error::Namespace) if `target` does not
    /// exist, [`Error::Request`](crate::Error::Request) if the kernel refused.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(root: netns::Handle) -> netns::Result<()> {
    /// println!("{:?}", root.nsid("blue").await?);
    /// # Ok(()) }
    /// ```
    #[doc(alias = "RTM_GETNSID")]
    pub async fn nsid(&self, target: impl Into<Target>) -> Result<Option<i32>> {
        let target = target
            .into()
            .open(self.run_dir(), OpenMode::OpenOnly)
            .await?;
        let msg = nsid_request(vec![NsidAttribute::Fd(target.as_fd().as_raw_fd() as u32)]);
        self.nsid_get(msg, &target).await
    }

    /// `RTM_GETNSID` of the namespace `fd` (whose fd number `msg` carries).
    async fn nsid_get(&self, msg: NsidMessage, fd: &NetNs) -> Result<Option<i32>> {
        let mut req = NetlinkMessage::from(RouteNetlinkMessage::GetNsId(msg));
        req.header.flags = NLM_F_REQUEST;
        let op = "get nsid";
        let conn = self.conn(true).await?;
        let replies = conn
            .rtnl()
            .clone()
            .request(req)
            .map_err(|e| self.request_error(op, e))?;
        let mut replies = crate::links::Replies::new(replies, Some(fd));
        let mut got = None;
        let mut answered = false;
        while let Some(reply) = replies.next().await {
            answered = true;
            match reply.payload {
                NetlinkPayload::Error(err) if err.code.is_some() => {
                    return Err(self.request_error(op, rtnetlink::Error::NetlinkError(err)));
                }
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewNsId(m)) => got = id_of(&m),
                _ => {}
            }
        }
        if !answered && conn.closed() {
            return Err(self.request_error(op, rtnetlink::Error::RequestFailed));
        }
        Ok(got)
    }

    /// Gives the namespace `target` an id in this handle's namespace, like
    /// `ip netns set NAME ID|auto` (run from this namespace), and returns the
    /// id it has.
    ///
    /// An id cannot be changed once assigned: setting a different one fails
    /// with `EEXIST`.
    ///
    /// # Cancel safety
    ///
    /// If dropped after the request was queued, the id may have been set,
    /// and only for `target`: its fd stays open until the kernel answered.
    ///
    /// # Errors
    ///
    /// [`Error::Namespace`](crate::Error::Namespace) if `target` does not
    /// exist, [`Error::Request`](crate::Error::Request) if the kernel refused
    /// (`EEXIST` for a namespace that has an id, `ENOSPC` for an id that is
    /// taken), [`Error::InvalidNsid`](crate::Error::InvalidNsid) for a
    /// negative id (nothing is sent).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(root: netns::Handle) -> netns::Result<()> {
    /// let id = root.set_nsid("blue", netns::Nsid::Auto).await?;
    /// assert_eq!(root.nsid("blue").await?, Some(id));
    /// # Ok(()) }
    /// ```
    #[doc(alias = "RTM_NEWNSID")]
    #[doc(alias = "ip netns set")]
    pub async fn set_nsid(&self, target: impl Into<Target>, id: Nsid) -> Result<i32> {
        if let Nsid::Id(nsid @ ..0) = id {
            return Err(crate::Error::InvalidNsid { nsid });
        }
        let target = target
            .into()
            .open(self.run_dir(), OpenMode::OpenOnly)
            .await?;
        let fd = target.as_fd().as_raw_fd() as u32;
        let id_attr = match id {
            Nsid::Auto => -1,
            Nsid::Id(n) => n,
        };
        let msg = nsid_request(vec![NsidAttribute::Fd(fd), NsidAttribute::Id(id_attr)]);
        self.ack(
            "set nsid",
            RouteNetlinkMessage::NewNsId(msg),
            0,
            Some(&target),
        )
        .await?;
        let got = self
            .nsid_get(nsid_request(vec![NsidAttribute::Fd(fd)]), &target)
            .await;
        match got? {
            Some(id) => Ok(id),
            None => Err(self.request_error("set nsid", rtnetlink::Error::RequestFailed)),
        }
    }

    /// Every namespace id this handle's namespace has assigned (an
    /// `RTM_GETNSID` dump), each with the peer's name where an entry of the
    /// handle's run directory has that id, like `ip netns list-id`.
    ///
    /// The same as `self.nsid_list().execute()`; [`Handle::nsid_list`] takes
    /// `ip netns list-id`'s `target-nsid` and `nsid` filters.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    ///
    /// # Errors
    ///
    /// [`Error::Request`](crate::Error::Request) if the dump failed, including
    /// a failure the kernel reports in the dump's `NLMSG_DONE`.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(root: netns::Handle) -> netns::Result<()> {
    /// for e in root.list_nsids().await? {
    ///     println!("nsid {} ({})", e.nsid, e.name.map(|n| n.to_string()).unwrap_or_default());
    /// }
    /// # Ok(()) }
    /// ```
    #[doc(alias = "ip netns list-id")]
    pub async fn list_nsids(&self) -> Result<Vec<NsidEntry>> {
        self.nsid_list().execute().await
    }

    /// A `list-id` request with filters: the namespace ids as another
    /// namespace sees them ([`ListNsids::target_nsid`]), one id only
    /// ([`ListNsids::nsid`]), with or without names.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(root: netns::Handle) -> netns::Result<()> {
    /// // What the namespace with id 3 calls each of its peers, and what we call them.
    /// for e in root.nsid_list().target_nsid(3).execute().await? {
    ///     println!("nsid {} current-nsid {:?}", e.nsid, e.current_nsid);
    /// }
    /// # Ok(()) }
    /// ```
    #[doc(alias = "ip netns list-id")]
    pub fn nsid_list(&self) -> ListNsids<'_> {
        ListNsids {
            handle: self,
            target_nsid: None,
            nsid: None,
            names: true,
        }
    }
}

/// A request for the namespace ids a handle's namespace knows, like
/// `ip netns list-id [target-nsid N] [nsid N]`: made by
/// [`Handle::nsid_list`], run by [`ListNsids::execute`].
///
/// # Examples
///
/// ```no_run
/// # async fn demo(root: netns::Handle) -> netns::Result<()> {
/// let only_7 = root.nsid_list().nsid(7).names(false).execute().await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
#[must_use = "a request does nothing until .execute() is awaited"]
pub struct ListNsids<'a> {
    handle: &'a Handle,
    target_nsid: Option<i32>,
    nsid: Option<i32>,
    names: bool,
}

impl ListNsids<'_> {
    /// List the ids as the namespace with id `nsid` (in the handle's
    /// namespace) sees its peers (`target-nsid N`): each entry's
    /// [`NsidEntry::nsid`] is then that namespace's id for the peer (`-1` if
    /// it has none), and [`NsidEntry::current_nsid`] the handle's namespace's
    /// id for it.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(root: netns::Handle) -> netns::Result<()> {
    /// let seen_from_3 = root.nsid_list().target_nsid(3).execute().await?;
    /// # Ok(()) }
    /// ```
    pub fn target_nsid(mut self, nsid: i32) -> Self {
        self.target_nsid = Some(nsid);
        self
    }

    /// Only the peer with id `nsid` (`nsid N`): a single `RTM_GETNSID`
    /// request instead of a dump.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(root: netns::Handle) -> netns::Result<()> {
    /// let e = root.nsid_list().nsid(7).execute().await?;
    /// println!("{:?}", e.first().and_then(|e| e.name.as_ref()));
    /// # Ok(()) }
    /// ```
    pub fn nsid(mut self, nsid: i32) -> Self {
        self.nsid = Some(nsid);
        self
    }

    /// Whether to look up each peer's name in the handle's run directory
    /// (default `true`; each lookup is one request per named namespace).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(root: netns::Handle) -> netns::Result<()> {
    /// let ids: Vec<i32> = root.nsid_list().names(false).execute().await?
    ///     .into_iter().map(|e| e.nsid).collect();
    /// # Ok(()) }
    /// ```
    pub fn names(mut self, names: bool) -> Self {
        self.names = names;
        self
    }

    /// Sends the request and collects the answer.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the request only reads.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidNsid`](crate::Error::InvalidNsid) for a negative
    /// filter (nothing is sent); [`Error::Request`](crate::Error::Request) if
    /// the kernel refused: `ENOENT` for an `nsid` that names no peer,
    /// `EINVAL` ("Invalid target network namespace id") for a `target_nsid`
    /// that names none. A dump's failure, which the kernel reports in its
    /// `NLMSG_DONE`, is reported too.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(root: netns::Handle) -> netns::Result<()> {
    /// match root.nsid_list().target_nsid(999).execute().await {
    ///     Err(e) => println!("{e} ({:?})", e.kernel_message()),
    ///     Ok(entries) => println!("{entries:?}"),
    /// }
    /// # Ok(()) }
    /// ```
    #[doc(alias = "RTM_GETNSID")]
    pub async fn execute(self) -> Result<Vec<NsidEntry>> {
        let h = self.handle;
        for nsid in [self.target_nsid, self.nsid].into_iter().flatten() {
            if nsid < 0 {
                return Err(crate::Error::InvalidNsid { nsid });
            }
        }
        let op = "list nsids";
        let mut attributes = Vec::new();
        if let Some(n) = self.nsid {
            attributes.push(NsidAttribute::Id(n));
        }
        if let Some(t) = self.target_nsid {
            attributes.push(NsidAttribute::TargetNsid(t));
        }
        let dump = self.nsid.is_none();
        let mut req = NetlinkMessage::from(RouteNetlinkMessage::GetNsId(nsid_request(attributes)));
        req.header.flags = if dump {
            NLM_F_REQUEST | NLM_F_DUMP
        } else {
            NLM_F_REQUEST
        };
        // A dump goes through the connection that hands out NLMSG_DONE: a
        // dump that fails (a bad target id) says so only there.
        let conn = if dump {
            h.dump_conn().await?
        } else {
            h.conn(false).await?
        };
        let mut replies = conn
            .rtnl()
            .clone()
            .request(req)
            .map_err(|e| h.request_error(op, e))?;
        let mut entries = Vec::new();
        let mut answered = false;
        while let Some(reply) = replies.next().await {
            answered = true;
            match reply.payload {
                NetlinkPayload::Error(err) if err.code.is_some() => {
                    return Err(h.request_error(op, rtnetlink::Error::NetlinkError(err)));
                }
                NetlinkPayload::Done(done) if done.code != 0 => {
                    return Err(h.request_error(op, done_error(&done)));
                }
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewNsId(m)) => {
                    if let Some(e) = entry_of(&m) {
                        entries.push(e);
                    }
                }
                _ => {}
            }
        }
        if !answered && conn.closed() {
            return Err(h.request_error(op, rtnetlink::Error::RequestFailed));
        }
        if self.names && !entries.is_empty() {
            h.name_entries(&mut entries).await;
        }
        Ok(entries)
    }
}

/// The error of a dump's `NLMSG_DONE` (`code` negative), as the
/// `NLMSG_ERROR` of a request: the errno, and the extended-ack attributes
/// after an echoed header (which `NLMSG_DONE` does not carry), so that
/// [`crate::error_message`] finds the kernel's message.
fn done_error(done: &DoneMessage) -> rtnetlink::Error {
    const NLMSG_HDRLEN: u32 = 16;
    let mut header = Vec::with_capacity(NLMSG_HDRLEN as usize + done.extended_ack.len());
    header.extend_from_slice(&NLMSG_HDRLEN.to_ne_bytes());
    header.resize(NLMSG_HDRLEN as usize, 0);
    header.extend_from_slice(&done.extended_ack);
    let mut err = ErrorMessage::default();
    err.code = std::num::NonZeroI32::new(done.code);
    err.header = header;
    rtnetlink::Error::NetlinkError(err)
}

/// An entry of an `RTM_NEWNSID` answer (no name yet); `None` without an id.
fn entry_of(msg: &NsidMessage) -> Option<NsidEntry> {
    let mut nsid = None;
    let mut current_nsid = None;
    for a in &msg.attributes {
        match a {
            NsidAttribute::Id(id) => nsid = Some(*id),
            NsidAttribute::CurrentNsid(id) => current_nsid = Some(*id),
            _ => {}
        }
    }
    Some(NsidEntry {
        nsid: nsid?,
        current_nsid,
        name: None,
    })
}

impl Handle {
    /// Names entries as iproute2 finds them: asks the id of every named
    /// namespace of the run directory. An entry is named by the id the
    /// handle's namespace gives the peer (`current_nsid` with a target, else
    /// `nsid`).
    async fn name_entries(&self, entries: &mut [NsidEntry]) {
        for entry in self.run_dir().list().unwrap_or_default() {
            if entry.state != EntryState::Mounted {
                continue;
            }
            let Ok(ns) = self.run_dir().open(&entry.name) else {
                continue;
            };
            let msg = nsid_request(vec![NsidAttribute::Fd(ns.as_fd().as_raw_fd() as u32)]);
            if let Ok(Some(id)) = self.nsid_get(msg, &ns).await
                && let Some(e) = entries
                    .iter_mut()
                    .find(|e| e.current_nsid.unwrap_or(e.nsid) == id && e.name.is_none())
            {
                e.name = Some(entry.name.clone());
            }
        }
    }
}
