//! The one error type of this crate, and the kernel's error details.

use std::io;
use std::path::PathBuf;

use netlink_packet_core::ErrorMessage;

/// What went wrong in a [`Handle`](crate::Handle) operation.
///
/// Every variant names the operation that failed and carries the namespace it
/// was about. Its Display says what failed; the cause (an errno, the agent's
/// error) is its [`source`](std::error::Error::source), printed by an error
/// reporter that walks the chain, not repeated in the Display. The errno stays queryable through [`Error::raw_os_error`] and
/// [`Error::kind`]; when the kernel rejected a request, its extended-ack
/// message is in [`Error::kernel_message`].
///
/// # Examples
///
/// ```no_run
/// # async fn demo() -> Result<(), netns::Error> {
/// use netns::{Handle, OpenMode};
///
/// match Handle::open("no-such-ns", OpenMode::OpenOnly).await {
///     Err(err) if err.kind() == std::io::ErrorKind::NotFound => println!("no such namespace"),
///     Err(err) => return Err(err),
///     Ok(_) => {}
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Opening or creating the namespace failed (bad name, not found, already
    /// exists, not a namespace...).
    #[error(transparent)]
    Namespace(#[from] nsfs::Error),
    /// Starting a program in the namespace failed
    /// ([`Handle::spawn`](crate::Handle::spawn)): the program, the namespace
    /// and the cause are in the nsproc error.
    #[error(transparent)]
    Spawn(#[from] nsproc::Error),
    /// A namespace id must be zero or positive (`-1`, "let the kernel pick",
    /// is [`Nsid::Auto`](crate::Nsid::Auto)); nothing was sent.
    #[error("invalid nsid {nsid}: an nsid is zero or positive")]
    InvalidNsid {
        /// The rejected id.
        nsid: i32,
    },
    /// Creating or configuring a socket inside the namespace failed.
    #[error("cannot {op} in network namespace {}", ns.display())]
    Socket {
        /// What was being done (for example `"create netlink socket"`).
        op: &'static str,
        /// The namespace.
        ns: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The kernel rejected a request, or the request could not be sent.
    #[error("{op} in network namespace {}{}", ns.display(), kernel_says(source))]
    Request {
        /// The operation (for example `"move link"`).
        op: &'static str,
        /// The namespace the request was sent in.
        ns: PathBuf,
        /// What rtnetlink reported.
        #[source]
        source: rtnetlink::Error,
    },
    /// No link with this index or name exists in the namespace.
    #[error("link {link} not found in network namespace {}", ns.display())]
    LinkNotFound {
        /// The link, as given.
        link: String,
        /// The namespace that was searched.
        ns: PathBuf,
    },
    /// No answer within the deadline the caller set: opening a handle past
    /// its [`open_timeout`](crate::Builder::open_timeout), or a request of
    /// the handle's own past its
    /// [`request_timeout`](crate::Builder::request_timeout). Nothing it made
    /// is left behind; a late answer is dropped.
    #[error("{op} in network namespace {}: no answer within {after:?}", ns.display())]
    Timeout {
        /// The operation (for example `"open handle"`, `"get link"`).
        op: &'static str,
        /// The namespace (as given, when opening).
        ns: PathBuf,
        /// The deadline that passed.
        after: std::time::Duration,
    },
    /// The relay transport (the nsproxy agent) failed: starting the agent or
    /// opening its relayed netlink socket.
    #[error("relay transport for network namespace {}", ns.display())]
    Relay {
        /// The namespace.
        ns: PathBuf,
        /// The underlying error.
        #[source]
        source: nsproxy::Error,
    },
    /// Rootless mode: the agent of the namespace's user namespace (the
    /// process that makes namespaces, sockets and programs for an
    /// unprivileged caller, see `docs/rootless.md`) failed: starting it,
    /// entering the user namespace (`EPERM`: one this caller may not
    /// enter), entering the namespace, or making what was asked.
    #[error("cannot {op} for network namespace {} in rootless mode", ns.display())]
    Rootless {
        /// What was being done.
        op: &'static str,
        /// The namespace (or the run directory when none exists yet).
        ns: PathBuf,
        /// The underlying error (`Remote` with the agent's step and errno).
        #[source]
        source: nsproxy::Error,
    },
}

/// The kernel's extended-ack explanation, which the source's own Display
/// (rtnetlink's) does not print: ` (kernel: ...)`, or nothing.
fn kernel_says(err: &rtnetlink::Error) -> String {
    match error_message(err) {
        Some(msg) => format!(" (kernel: {msg})"),
        None => String::new(),
    }
}

impl Error {
    /// The errno behind this error, if there is one (the kernel's error code
    /// for a rejected request).
    ///
    /// # Examples
    ///
    /// ```
    /// let err = netns::Error::LinkNotFound { link: "eth9".into(), ns: "/run/netns/a".into() };
    /// assert_eq!(err.raw_os_error(), Some(libc::ENODEV));
    /// ```
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            Error::Namespace(e) => e.raw_os_error(),
            Error::Spawn(e) => e.raw_os_error(),
            Error::InvalidNsid { .. } => Some(libc::EINVAL),
            Error::Socket { source, .. } => source.raw_os_error(),
            Error::Relay { source, .. } | Error::Rootless { source, .. } => source.raw_os_error(),
            Error::Request { source, .. } => error_code(source),
            Error::LinkNotFound { .. } => Some(libc::ENODEV),
            Error::Timeout { .. } => Some(libc::ETIMEDOUT),
        }
    }

    /// The [`io::ErrorKind`] of this error.
    ///
    /// # Examples
    ///
    /// ```
    /// let err = netns::Error::LinkNotFound { link: "eth9".into(), ns: "/run/netns/a".into() };
    /// assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    /// ```
    pub fn kind(&self) -> io::ErrorKind {
        match self {
            Error::Namespace(e) => e.kind(),
            Error::Spawn(e) => e.kind(),
            Error::InvalidNsid { .. } => io::ErrorKind::InvalidInput,
            Error::Socket { source, .. } => source.kind(),
            Error::Relay { source, .. } | Error::Rootless { source, .. } => source.kind(),
            Error::LinkNotFound { .. } => io::ErrorKind::NotFound,
            Error::Timeout { .. } => io::ErrorKind::TimedOut,
            Error::Request { source, .. } => match error_code(source) {
                Some(code) => io::Error::from_raw_os_error(code).kind(),
                None => io::ErrorKind::Other,
            },
        }
    }

    /// The kernel's extended-ack message, if it rejected a request and said
    /// why (for example `"Invalid prefix for given prefix length"`).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(h: netns::Handle) {
    /// if let Err(err) = h.move_link("no-such-link", "blue").execute().await {
    ///     eprintln!("{err} (kernel: {:?})", err.kernel_message());
    /// }
    /// # }
    /// ```
    pub fn kernel_message(&self) -> Option<String> {
        match self {
            Error::Request { source, .. } => error_message(source),
            _ => None,
        }
    }
}

impl From<Error> for io::Error {
    fn from(err: Error) -> io::Error {
        let kind = err.kind();
        io::Error::new(kind, err)
    }
}

/// The result type of this crate.
///
/// # Examples
///
/// ```no_run
/// async fn lo_index(h: &netns::Handle) -> netns::Result<u32> {
///     h.link_index("lo").await
/// }
/// ```
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The positive errno of a request the kernel rejected (`EEXIST`, `ENODEV`...),
/// or `None` if `err` is not a kernel error.
///
/// # Examples
///
/// ```no_run
/// # async fn demo(h: netns::Handle) {
/// let res = h.rtnetlink().link().del(9999).execute().await;
/// if let Err(err) = res {
///     assert_eq!(netns::error_code(&err), Some(libc::ENODEV));
/// }
/// # }
/// ```
pub fn error_code(err: &rtnetlink::Error) -> Option<i32> {
    match err {
        rtnetlink::Error::NetlinkError(msg) => msg.code.map(|c| c.get().abs()),
        _ => None,
    }
}

/// The extended-ack message (`NLMSGERR_ATTR_MSG`) the kernel attached to a
/// rejected request, if any.
///
/// Sockets made by this crate enable `NETLINK_EXT_ACK`, so the kernel explains
/// most rejections. netlink-proto keeps the bytes after the error code
/// unparsed; this reads the message out of them.
///
/// # Examples
///
/// ```no_run
/// # async fn demo(h: netns::Handle) {
/// use std::net::Ipv4Addr;
/// // prefix length 33 is invalid: the kernel says so.
/// let res = h.rtnetlink().address().add(1, Ipv4Addr::new(10, 0, 0, 1).into(), 33).execute().await;
/// if let Err(err) = res {
///     println!("{:?}", netns::error_message(&err));
/// }
/// # }
/// ```
pub fn error_message(err: &rtnetlink::Error) -> Option<String> {
    match err {
        rtnetlink::Error::NetlinkError(msg) => ext_ack_message(msg),
        _ => None,
    }
}

/// `NLMSGERR_ATTR_MSG`
const NLMSGERR_ATTR_MSG: u16 = 1;
const NLMSG_HDRLEN: usize = 16;

/// Finds `NLMSGERR_ATTR_MSG` in the bytes after an error code: the echoed
/// request (its whole length, or just its header when the socket has
/// `NETLINK_CAP_ACK`), then the TLVs.
pub(crate) fn ext_ack_message(msg: &ErrorMessage) -> Option<String> {
    let bytes = &msg.header;
    if bytes.len() < NLMSG_HDRLEN {
        return None;
    }
    let echoed = u32::from_ne_bytes(bytes[0..4].try_into().ok()?) as usize;
    let full = align4(echoed);
    // Uncapped echo first (the whole request), then a capped one (header only).
    for start in [full, NLMSG_HDRLEN] {
        if start >= NLMSG_HDRLEN
            && start <= bytes.len()
            && let Some(tlvs) = parse_tlvs(&bytes[start..])
        {
            return tlvs
                .into_iter()
                .find(|(kind, _)| *kind == NLMSGERR_ATTR_MSG)
                .map(|(_, v)| {
                    let v = v.split(|b| *b == 0).next().unwrap_or(&[]);
                    String::from_utf8_lossy(v).into_owned()
                });
        }
    }
    None
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// Parses a run of netlink attributes; `None` if the bytes are not one.
fn parse_tlvs(mut bytes: &[u8]) -> Option<Vec<(u16, &[u8])>> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        if bytes.len() < 4 {
            return None;
        }
        let len = u16::from_ne_bytes([bytes[0], bytes[1]]) as usize;
        let kind = u16::from_ne_bytes([bytes[2], bytes[3]]) & 0x3fff;
        if len < 4 || len > bytes.len() {
            return None;
        }
        out.push((kind, &bytes[4..len]));
        bytes = &bytes[align4(len).min(bytes.len())..];
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nla(kind: u16, value: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&((4 + value.len()) as u16).to_ne_bytes());
        v.extend_from_slice(&kind.to_ne_bytes());
        v.extend_from_slice(value);
        while v.len() % 4 != 0 {
            v.push(0);
        }
        v
    }

    fn header(len: u32) -> Vec<u8> {
        let mut h = len.to_ne_bytes().to_vec();
        h.extend_from_slice(&[0; 12]);
        h
    }

    fn error(bytes: Vec<u8>) -> ErrorMessage {
        let mut e = ErrorMessage::default();
        e.code = std::num::NonZeroI32::new(-libc::EINVAL);
        e.header = bytes;
        e
    }

    #[test]
    fn display_does_not_repeat_the_source() {
        use std::error::Error as _;
        let errno = io::Error::from_raw_os_error(libc::EMFILE);
        let errno_text = errno.to_string();
        let mut kernel = ErrorMessage::default();
        kernel.code = std::num::NonZeroI32::new(-libc::EBUSY);
        let all = [
            Error::Socket {
                op: "create netlink socket",
                ns: "/run/netns/a".into(),
                source: errno,
            },
            Error::Request {
                op: "move link",
                ns: "/run/netns/a".into(),
                source: rtnetlink::Error::NetlinkError(kernel),
            },
            Error::Relay {
                ns: "/run/netns/a".into(),
                source: nsproxy::Error::Io {
                    op: "start agent",
                    source: io::Error::from_raw_os_error(libc::EMFILE),
                },
            },
        ];
        for err in all {
            let shown = err.to_string();
            let source = err.source().expect("a source").to_string();
            assert!(shown.contains("/run/netns/a"), "{shown}");
            assert!(!shown.contains(&source), "{shown:?} repeats {source:?}");
            assert!(!shown.contains(&errno_text), "{shown:?}");
            assert!(!shown.contains("busy"), "{shown:?}");
            assert!(err.raw_os_error().is_some());
        }
    }

    #[test]
    fn a_kernel_explanation_is_shown_once() {
        let mut bytes = header(16);
        bytes.extend(nla(NLMSGERR_ATTR_MSG, b"Invalid prefix\0"));
        let err = Error::Request {
            op: "add address",
            ns: "/run/netns/a".into(),
            source: rtnetlink::Error::NetlinkError(error(bytes)),
        };
        assert_eq!(
            err.to_string(),
            "add address in network namespace /run/netns/a (kernel: Invalid prefix)"
        );
    }

    #[test]
    fn finds_message_after_a_whole_echoed_request() {
        let mut bytes = header(24);
        bytes.extend_from_slice(&[7; 8]);
        bytes.extend(nla(2, &5u32.to_ne_bytes()));
        bytes.extend(nla(NLMSGERR_ATTR_MSG, b"Invalid prefix\0"));
        assert_eq!(
            ext_ack_message(&error(bytes)).as_deref(),
            Some("Invalid prefix")
        );
    }

    #[test]
    fn finds_message_after_a_capped_echo() {
        let mut bytes = header(200);
        bytes.extend(nla(NLMSGERR_ATTR_MSG, b"nope\0"));
        assert_eq!(ext_ack_message(&error(bytes)).as_deref(), Some("nope"));
    }

    #[test]
    fn no_message_without_tlvs() {
        let mut bytes = header(20);
        bytes.extend_from_slice(&[1, 2, 3, 4]);
        assert_eq!(ext_ack_message(&error(bytes)), None);
        assert_eq!(ext_ack_message(&error(vec![1, 2])), None);
    }
}
