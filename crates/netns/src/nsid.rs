//! Namespace ids: `ip netns set NAME ID` and `ip netns list-id`.

use std::os::fd::{AsFd, AsRawFd};

use futures::StreamExt;
use netlink_packet_core::{NLM_F_DUMP, NLM_F_REQUEST, NetlinkMessage, NetlinkPayload};
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
    /// The id, as the handle's namespace names the peer namespace.
    pub nsid: i32,
    /// The peer namespace's name in the handle's run directory, where one of
    /// its entries has this id.
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
            .resolve(self.run_dir(), OpenMode::OpenOnly)
            .await?
            .netns;
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
            .resolve(self.run_dir(), OpenMode::OpenOnly)
            .await?
            .netns;
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
    /// # Cancel safety
    ///
    /// Cancel safe.
    ///
    /// # Errors
    ///
    /// [`Error::Request`](crate::Error::Request) if the dump failed.
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
        let op = "list nsids";
        let mut req = NetlinkMessage::from(RouteNetlinkMessage::GetNsId(NsidMessage::default()));
        req.header.flags = NLM_F_REQUEST | NLM_F_DUMP;
        let mut replies = self
            .rtnetlink()
            .clone()
            .request(req)
            .map_err(|e| self.request_error(op, e))?;
        let mut ids = Vec::new();
        while let Some(reply) = replies.next().await {
            match reply.payload {
                NetlinkPayload::Error(err) if err.code.is_some() => {
                    return Err(self.request_error(op, rtnetlink::Error::NetlinkError(err)));
                }
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewNsId(m)) => {
                    if let Some(id) = id_of(&m) {
                        ids.push(id);
                    }
                }
                _ => {}
            }
        }
        // Names, as iproute2 finds them: ask the id of every named namespace.
        let mut entries: Vec<NsidEntry> = ids
            .into_iter()
            .map(|nsid| NsidEntry { nsid, name: None })
            .collect();
        if !entries.is_empty() {
            for entry in self.run_dir().list().unwrap_or_default() {
                if entry.state != EntryState::Mounted {
                    continue;
                }
                let Ok(ns) = self.run_dir().open(&entry.name) else {
                    continue;
                };
                let msg = nsid_request(vec![NsidAttribute::Fd(ns.as_fd().as_raw_fd() as u32)]);
                if let Ok(Some(id)) = self.nsid_get(msg, &ns).await {
                    if let Some(e) = entries
                        .iter_mut()
                        .find(|e| e.nsid == id && e.name.is_none())
                    {
                        e.name = Some(entry.name.clone());
                    }
                }
            }
        }
        Ok(entries)
    }
}
