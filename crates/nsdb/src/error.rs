//! The one error type of this crate.

use std::fmt;
use std::io;
use std::net::IpAddr;
use std::time::Duration;

use crate::Namespace;

/// What the kernel said when it refused a netlink request: the errno and,
/// when the kernel gave one, its extended-ack message.
///
/// # Examples
///
/// ```no_run
/// # fn demo(err: nsdb::Error) {
/// if let nsdb::Error::Commit { source, .. } = err {
///     eprintln!("errno {:?}: {}", source.raw_os_error(), source.message.unwrap_or_default());
/// }
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct NetlinkError {
    /// The errno (positive), e.g. `libc::EINVAL`.
    pub errno: i32,
    /// The kernel's extended-ack message (`NLMSGERR_ATTR_MSG`), if any.
    pub message: Option<String>,
}

impl NetlinkError {
    /// The kernel's refusal `errno` (positive), with its extended-ack
    /// `message` if it gave one.
    ///
    /// # Examples
    ///
    /// ```
    /// let e = nsdb::NetlinkError::new(libc::EINVAL, Some("bad mtu".into()));
    /// assert_eq!(e.to_string(), format!("{}: bad mtu", std::io::Error::from_raw_os_error(libc::EINVAL)));
    /// ```
    pub fn new(errno: i32, message: Option<String>) -> NetlinkError {
        NetlinkError { errno, message }
    }

    /// The error of a connection that closed before it answered (`ECONNRESET`).
    pub(crate) fn closed() -> NetlinkError {
        NetlinkError {
            errno: libc::ECONNRESET,
            message: Some("netlink connection closed".into()),
        }
    }

    /// The errno, as the other errors of the toolkit give it (always
    /// `Some` here: the kernel refuses a request with an errno).
    ///
    /// # Examples
    ///
    /// ```
    /// let e = nsdb::NetlinkError::new(libc::ENODEV, None);
    /// assert_eq!(e.raw_os_error(), Some(libc::ENODEV));
    /// ```
    pub fn raw_os_error(&self) -> Option<i32> {
        Some(self.errno)
    }
}

impl fmt::Display for NetlinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", io::Error::from_raw_os_error(self.errno))?;
        if let Some(m) = &self.message {
            write!(f, ": {m}")?;
        }
        Ok(())
    }
}

impl std::error::Error for NetlinkError {}

/// A step of a rollback that failed too (after a commit failed).
///
/// # Examples
///
/// ```no_run
/// # fn demo(err: nsdb::Error) {
/// if let nsdb::Error::Commit { rollback_failures, .. } = err {
///     for f in rollback_failures { eprintln!("{f}: {}", f.source); }
/// }
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
#[error("could not undo {request} in {ns}")]
#[non_exhaustive]
pub struct RollbackFailure {
    /// The namespace of the request.
    pub ns: Namespace,
    /// The undo request, described.
    pub request: String,
    /// What the kernel said.
    #[source]
    pub source: NetlinkError,
}

/// What went wrong in the view or in a transaction.
///
/// Every variant names the operation and the namespace; where the kernel said
/// no, the errno is queryable through [`Error::raw_os_error`].
///
/// # Examples
///
/// ```no_run
/// # async fn demo(view: nsdb::View) {
/// let ns = nsdb::Namespace::named("test").unwrap();
/// match view.transaction().link(&ns, "nope") {
///     Err(nsdb::Error::LinkNotFound { link, .. }) => assert_eq!(link, "nope"),
///     other => panic!("{other:?}"),
/// }
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A namespace could not be opened or entered.
    #[error("cannot open network namespace {ns}")]
    Namespace {
        /// The namespace.
        ns: Namespace,
        /// What nsfs said.
        #[source]
        source: nsfs::Error,
    },
    /// A netlink connection could not be made in a namespace.
    #[error("cannot open a netlink connection in {ns}")]
    Connect {
        /// The namespace.
        ns: Namespace,
        /// What the facade said (boxed: it is large).
        #[source]
        source: Box<netns::Error>,
    },
    /// A netlink socket could not be configured in a namespace.
    #[error("cannot set up a netlink socket in {ns}")]
    Socket {
        /// The namespace.
        ns: Namespace,
        /// The system error.
        #[source]
        source: io::Error,
    },
    /// A dump (initial, or a resync) failed.
    #[error("dump of {what} in {ns} failed")]
    Dump {
        /// The namespace.
        ns: Namespace,
        /// `links`, `addresses` or `routes`.
        what: &'static str,
        /// What the kernel said.
        #[source]
        source: NetlinkError,
    },
    /// The namespace is not part of this view.
    #[error("namespace {ns} is not in the view")]
    NotViewed {
        /// The namespace.
        ns: Namespace,
    },
    /// The view no longer knows the current state of this namespace (its
    /// connection died, or the namespace was removed).
    #[error("the view of {ns} is stale: {reason}")]
    Stale {
        /// The namespace.
        ns: Namespace,
        /// Why.
        reason: String,
    },
    /// The link to edit is not (or no longer) in the view.
    #[error("link {link} not found in {ns}")]
    LinkNotFound {
        /// The namespace.
        ns: Namespace,
        /// The link's name.
        link: String,
    },
    /// The address to remove is not (or no longer) on its link in the view.
    #[error("address {address}/{prefix_len} not found on link {link} in {ns}")]
    AddressNotFound {
        /// The namespace.
        ns: Namespace,
        /// The link's name.
        link: String,
        /// The address.
        address: IpAddr,
        /// Its prefix length.
        prefix_len: u8,
    },
    /// An edit of a link asked for something that cannot be done.
    #[error("invalid edit of link {link} in {ns}: {reason}")]
    InvalidEdit {
        /// The namespace.
        ns: Namespace,
        /// The link's name.
        link: String,
        /// Why.
        reason: &'static str,
    },
    /// A wait ended before the condition held.
    #[error("timed out after {timeout:?} waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long.
        timeout: Duration,
    },
    /// A transaction failed at `step`; every step before it was undone
    /// (except those in `rollback_failures`).
    #[error("commit failed at step {step} ({request} in {ns})")]
    Commit {
        /// The index of the failed step in [`crate::Transaction::plan`].
        step: usize,
        /// The failed request, described.
        request: String,
        /// Its namespace.
        ns: Namespace,
        /// What the kernel said (or, for a step that was sent but never
        /// showed in the view, `ETIMEDOUT`).
        #[source]
        source: NetlinkError,
        /// Undo requests that failed too: the system may differ from before.
        rollback_failures: Vec<RollbackFailure>,
    },
}

impl Error {
    /// The errno behind this error, if the kernel or the system gave one.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn demo(err: nsdb::Error) {
    /// if err.raw_os_error() == Some(libc::EINVAL) { eprintln!("kernel said EINVAL"); }
    /// # }
    /// ```
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            Error::Namespace { source, .. } => source.raw_os_error(),
            Error::Socket { source, .. } => source.raw_os_error(),
            Error::Connect { source, .. } => source.raw_os_error(),
            Error::Dump { source, .. } | Error::Commit { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}

/// `Result` with this crate's [`Error`].
///
/// # Examples
///
/// ```no_run
/// async fn host_links(view: &nsdb::View) -> nsdb::Result<usize> {
///     Ok(view.dump(&nsdb::Namespace::Host).await?.links.len())
/// }
/// ```
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    /// Every variant with a `source()`: its Display names the operation and
    /// leaves the cause to the source, so a reporter walking the chain
    /// prints the cause once.
    #[test]
    fn display_does_not_repeat_the_source() {
        let ns = Namespace::named("a").unwrap();
        let refused = || NetlinkError::new(libc::EINVAL, Some("bad mtu".into()));
        let errors: Vec<Box<dyn std::error::Error>> = vec![
            Box::new(Error::Namespace {
                ns: ns.clone(),
                source: nsfs::Error::NotFound {
                    path: "/run/netns/a".into(),
                },
            }),
            Box::new(Error::Connect {
                ns: ns.clone(),
                source: Box::new(netns::Error::LinkNotFound {
                    link: "x".into(),
                    ns: "/run/netns/a".into(),
                }),
            }),
            Box::new(Error::Socket {
                ns: ns.clone(),
                source: io::Error::from_raw_os_error(libc::ENOBUFS),
            }),
            Box::new(Error::Dump {
                ns: ns.clone(),
                what: "links",
                source: refused(),
            }),
            Box::new(Error::Commit {
                step: 1,
                request: "set mtu of v0".into(),
                ns: ns.clone(),
                source: refused(),
                rollback_failures: Vec::new(),
            }),
            Box::new(RollbackFailure {
                ns: ns.clone(),
                request: "delete link v0".into(),
                source: refused(),
            }),
        ];
        for e in errors {
            let source = e.source().expect("a variant with a source").to_string();
            let shown = e.to_string();
            assert!(!shown.contains(&source), "{shown:?} repeats {source:?}");
            assert!(
                !shown.contains("bad mtu") && !shown.contains("os error"),
                "{shown:?}"
            );
        }
        let e = Error::Commit {
            step: 1,
            request: "set mtu of v0".into(),
            ns,
            source: refused(),
            rollback_failures: Vec::new(),
        };
        assert_eq!(
            e.to_string(),
            "commit failed at step 1 (set mtu of v0 in a)"
        );
        assert_eq!(e.raw_os_error(), Some(libc::EINVAL));
    }

    #[test]
    fn not_found_holds_the_bare_name() {
        let e = Error::LinkNotFound {
            ns: Namespace::named("a").unwrap(),
            link: "v0".into(),
        };
        assert_eq!(e.to_string(), "link v0 not found in a");
    }
}
