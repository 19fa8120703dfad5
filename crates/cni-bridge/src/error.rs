//! The plugin's one error type, and the spec's error code of each variant.

use std::io;
use std::path::PathBuf;

use crate::types::code;

/// Why a plugin call failed. [`Error::code`] gives the spec's error code
/// the plugin reports for it (`999` where the spec has none, as the
/// reference plugins do).
///
/// # Examples
///
/// ```
/// let e = cni_bridge::Error::Environment { msg: "required env variables [CNI_NETNS] missing".into() };
/// assert_eq!(e.code(), 4);
/// assert_eq!(e.raw_os_error(), None);
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A `CNI_*` variable is missing or invalid (code 4).
    #[error("{msg}")]
    Environment {
        /// What is wrong, naming the variables.
        msg: String,
    },
    /// The configuration on stdin could not be read (code 5).
    #[error("error reading from stdin")]
    ReadStdin {
        /// The read's error.
        #[source]
        source: io::Error,
    },
    /// The configuration is not valid JSON or has a wrong type (code 6).
    #[error("{msg}")]
    Decode {
        /// The decoder's complaint.
        msg: String,
    },
    /// The configuration is well formed but not valid (code 7).
    #[error("{msg}")]
    Config {
        /// What is invalid.
        msg: String,
    },
    /// The configuration asks for something this plugin does not do
    /// (code 2; the message names the key and its value).
    #[error("unsupported field in network configuration: {field}")]
    Unsupported {
        /// `key=value` of the field.
        field: String,
    },
    /// The configuration's `cniVersion` is not one this plugin speaks (code 1).
    #[error("incompatible CNI versions")]
    Version {
        /// The version asked for.
        version: String,
    },
    /// `CNI_NETNS` could not be opened as a network namespace (code 3).
    #[error("failed to open netns {path:?}")]
    OpenNetns {
        /// The path given.
        path: PathBuf,
        /// The toolkit's error.
        #[source]
        source: Box<netns::Error>,
    },
    /// A namespace handle could not be opened or used.
    #[error("{op} failed")]
    Namespace {
        /// What was being done.
        op: &'static str,
        /// The toolkit's error.
        #[source]
        source: Box<netns::Error>,
    },
    /// The kernel refused a netlink request.
    #[error("{op} failed")]
    Netlink {
        /// What was being done ("add address to eth0"...).
        op: String,
        /// rtnetlink's error (the errno and the kernel's message).
        #[source]
        source: Box<rtnetlink::Error>,
    },
    /// A sysctl could not be written.
    #[error("could not write sysctl {path:?}")]
    Sysctl {
        /// The `/proc/sys` path.
        path: PathBuf,
        /// The write's error.
        #[source]
        source: io::Error,
    },
    /// The interface name asked for already exists in the container.
    #[error("container veth name provided ({ifname}) already exists")]
    IfnameTaken {
        /// `CNI_IFNAME`.
        ifname: String,
    },
    /// The bridge name is taken by a link that is not a bridge, or the
    /// bridge is in a state the plugin cannot use.
    #[error("{msg}")]
    Bridge {
        /// What is wrong.
        msg: String,
    },
    /// A delegated plugin (IPAM) failed; its own error, code included, is
    /// passed on.
    #[error("{msg}")]
    Delegate {
        /// The delegated plugin's code.
        code: u32,
        /// Its message.
        msg: String,
        /// Its details.
        details: String,
    },
    /// A delegated plugin could not be found or run.
    #[error("could not run plugin {plugin:?}")]
    Exec {
        /// The plugin's type.
        plugin: String,
        /// The spawn's error.
        #[source]
        source: io::Error,
    },
    /// An `iptables` / `ip6tables` run (`ipMasq`) failed.
    #[error("running [{command}]: exit status {}: {msg}", status.map_or_else(|| "signal".to_string(), |s| s.to_string()))]
    Iptables {
        /// The command line.
        command: String,
        /// Its exit status (`None`: killed by a signal).
        status: Option<i32>,
        /// What it printed on stderr.
        msg: String,
    },
    /// The host-local lease store could not be read or written.
    #[error("host-local store: {op} {path:?}")]
    Store {
        /// What was being done.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The filesystem's error.
        #[source]
        source: io::Error,
    },
    /// No address could be allocated (range full, requested address taken,
    /// duplicate allocation).
    #[error("{msg}")]
    Allocate {
        /// host-local's message.
        msg: String,
    },
    /// CHECK found the container's networking not as the `prevResult` says.
    #[error("{msg}")]
    Check {
        /// What differs.
        msg: String,
    },
    /// STATUS: the plugin cannot serve ADD now (code 50): no address left
    /// in a range set.
    #[error("{msg}")]
    NotAvailable {
        /// Why.
        msg: String,
    },
    /// The async runtime could not be started.
    #[error("could not start the runtime")]
    Runtime {
        /// The error.
        #[source]
        source: io::Error,
    },
}

impl Error {
    /// The spec's error code for this error.
    ///
    /// # Examples
    ///
    /// ```
    /// let e = cni_bridge::Error::Version { version: "0.2.0".into() };
    /// assert_eq!(e.code(), 1);
    /// ```
    pub fn code(&self) -> u32 {
        match self {
            Error::Environment { .. } => code::INVALID_ENV,
            Error::ReadStdin { .. } => code::IO_FAILURE,
            Error::Decode { .. } => code::DECODE,
            Error::Config { .. } => code::INVALID_CONFIG,
            Error::Unsupported { .. } => 2,
            Error::Version { .. } => code::INCOMPATIBLE_VERSION,
            Error::OpenNetns { .. } => code::UNKNOWN_CONTAINER,
            Error::Delegate { code, .. } => *code,
            Error::NotAvailable { .. } => code::NOT_AVAILABLE,
            _ => code::INTERNAL,
        }
    }

    /// The errno behind this error, if there is one.
    ///
    /// # Examples
    ///
    /// ```
    /// let e = cni_bridge::Error::Sysctl {
    ///     path: "/proc/sys/net/ipv4/ip_forward".into(),
    ///     source: std::io::Error::from_raw_os_error(libc::EACCES),
    /// };
    /// assert_eq!(e.raw_os_error(), Some(libc::EACCES));
    /// ```
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            Error::ReadStdin { source }
            | Error::Sysctl { source, .. }
            | Error::Exec { source, .. }
            | Error::Store { source, .. }
            | Error::Runtime { source } => source.raw_os_error(),
            Error::OpenNetns { source, .. } | Error::Namespace { source, .. } => {
                source.raw_os_error()
            }
            Error::Netlink { source, .. } => netns::error_code(source),
            _ => None,
        }
    }

    /// The spec's `details`: the chain of causes, the kernel's own
    /// explanation included.
    pub(crate) fn details(&self) -> String {
        use std::error::Error as _;
        let mut parts = Vec::new();
        match self {
            Error::Version { version } => {
                parts.push(format!(
                    "config is {version:?}, plugin supports [{}]",
                    crate::types::SUPPORTED_VERSIONS.join(" ")
                ));
            }
            Error::Delegate { details, .. } => parts.push(details.clone()),
            _ => {}
        }
        let mut cause = self.source();
        while let Some(c) = cause {
            parts.push(c.to_string());
            cause = c.source();
        }
        if let Error::Netlink { source, .. } = self
            && let Some(m) = netns::error_message(source)
        {
            parts.push(m);
        }
        parts.retain(|p| !p.is_empty());
        parts.join(": ")
    }
}

/// The plugin's result type.
pub type Result<T> = std::result::Result<T, Error>;

/// Wraps an rtnetlink error with the operation's description.
pub(crate) fn nl(op: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> Error {
    let op = op.into();
    move |source| Error::Netlink {
        op,
        source: Box::new(source),
    }
}
