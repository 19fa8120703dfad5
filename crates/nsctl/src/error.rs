//! The one error type of nsctl: every failure a subcommand can end with,
//! displayed in ip's words and carrying ip's exit code.

use std::io;
use std::path::PathBuf;

/// Why a subcommand failed.
///
/// [`ip_line`](Error::ip_line) is the line ip prints on standard error for
/// the same failure (with "nsctl" where ip names itself), `Display` the same
/// words without the cause (which is the `#[source]`, so that a reporter
/// walking the chain prints it once), [`exit_code`](Error::exit_code) the
/// status ip exits with, and [`raw_os_error`](Error::raw_os_error) the errno
/// behind it, if any.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum Error {
    /// A name ip's `invalid_name` rejects (empty, `.`, `..`, a `/`, too long).
    #[error("Invalid netns name \"{name}\"")]
    InvalidName { name: String },
    /// No subcommand starts with this word.
    #[error("Command \"{word}\" is unknown, try \"nsctl help\".")]
    UnknownCommand { word: String },
    /// A global option ip does not know either.
    #[error("Option \"{option}\" is unknown, try \"nsctl -help\".")]
    UnknownOption { option: String },
    /// A subcommand that needs a namespace name got none.
    #[error("No netns name specified")]
    MissingName,
    /// `attach` without its two arguments.
    #[error("No netns name and PID specified")]
    MissingNameAndPid,
    /// `set NAME` without an id.
    #[error("No nsid specified")]
    MissingNsid,
    /// `exec NAME` without a command.
    #[error("No command specified")]
    MissingCommand,
    /// `identify` or `pids` with more arguments than they take.
    #[error("extra arguments specified")]
    ExtraArguments,
    /// `attach NAME PID` with a PID that is not a non-zero number.
    #[error("Invalid PID: {pid}")]
    AttachPid { pid: String },
    /// `identify PID` with a PID that is not all digits.
    #[error("Specified string '{pid}' is not a pid")]
    IdentifyPid { pid: String },
    /// A value ip's argument parser rejects (`set`, `list-id`).
    #[error("Error: argument \"{arg}\" is wrong: {what}")]
    Argument { arg: String, what: String },
    /// A `list-id` keyword given twice.
    #[error("Error: duplicate \"{key}\": \"{key}\" is the second value.")]
    Duplicate { key: String },
    /// A `list-id` keyword without its value.
    #[error("Command line is not complete. Try option \"help\"")]
    Incomplete,
    /// An unknown `list-id` keyword: ip's usage.
    #[error("{}", crate::cmd::USAGE)]
    Usage,
    /// The run directory could not be made (`add`, `attach`).
    #[error("mkdir {} failed", path.display())]
    MakeRunDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The run directory could not be opened (`add`, `attach`).
    #[error("Cannot open netns runtime directory \"{}\"", path.display())]
    OpenRunDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The run directory could not be prepared for `add` or `attach`.
    #[error("mount --make-shared {} failed", path.display())]
    PrepareRunDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The entry for a new namespace could not be made (`add`, `attach`).
    #[error("Cannot create namespace file \"{}\"", path.display())]
    CreateEntry {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A new namespace could not be made or mounted (`add`).
    #[error("Failed to create a new network namespace \"{name}\"")]
    Create {
        name: String,
        #[source]
        source: io::Error,
    },
    /// The namespace of process `pid` could not be mounted (`attach`).
    #[error("Bind /proc/{pid}/ns/net -> {} failed", path.display())]
    Attach {
        pid: i32,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A namespace's entry could not be removed (`delete`).
    #[error("Cannot remove namespace file \"{}\"", path.display())]
    Remove {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A named namespace could not be opened (`set`, `exec`, `links`).
    #[error("Cannot open network namespace \"{name}\"")]
    OpenNamed {
        name: String,
        /// ip exits 255 here for `exec`, 1 otherwise.
        code: u8,
        #[source]
        source: io::Error,
    },
    /// A namespace could not be opened (`identify`, `pids`: ip names none).
    #[error("Cannot open network namespace")]
    Open {
        #[source]
        source: io::Error,
    },
    /// The run directory could not be read (`identify`).
    #[error("Failed to open directory {}", path.display())]
    ReadRunDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The process could not be moved into the namespace (`exec`).
    #[error("setting the network namespace \"{name}\" failed")]
    Enter {
        name: String,
        #[source]
        source: io::Error,
    },
    /// `exec` could not make its own mount namespace.
    #[error("unshare failed")]
    Unshare {
        #[source]
        source: io::Error,
    },
    /// `exec` could not keep its mounts from propagating back.
    #[error("\"mount --make-rslave /\" failed")]
    MakeSlave {
        #[source]
        source: io::Error,
    },
    /// `exec` could not mount the namespace's sysfs on `/sys`.
    #[error("mount of /sys failed")]
    MountSys {
        #[source]
        source: io::Error,
    },
    /// The run directory could not be read for `-all` (ip's `netns_foreach`).
    #[error("Failed to open directory {}", path.display())]
    ForeachDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The command could not be started (`exec`).
    #[error("exec of \"{program}\" failed")]
    Exec {
        program: String,
        #[source]
        source: io::Error,
    },
    /// Waiting for the command failed (`exec`).
    #[error("waitpid")]
    Wait {
        #[source]
        source: io::Error,
    },
    /// A netlink request was refused: the kernel's extended-ack message, or
    /// its errno, as ip's `rtnl_talk` prints them.
    #[error("netlink request refused")]
    Netlink {
        #[source]
        source: netns::Error,
    },
    /// The file named is not a network namespace (a stale entry), as the
    /// kernel words it when handed such an fd.
    #[error("Error: Peer netns reference is invalid.")]
    PeerInvalid { name: String },
    /// A `list-id` dump failed: the kernel's words (as [`Error::Netlink`]
    /// prints them), then ip's verdict.
    #[error("{line}\nDump terminated")]
    Dump { line: String },
    /// No netlink socket could be opened in nsctl's own namespace.
    #[error("Cannot open rtnetlink")]
    Rtnetlink {
        #[source]
        source: netns::Error,
    },
    /// The run directory could not be watched (`monitor`).
    #[error("inotify_add_watch failed")]
    Watch {
        #[source]
        source: io::Error,
    },
    /// Watching the run directory failed after it started (`monitor`).
    #[error("read failed")]
    WatchRead {
        #[source]
        source: io::Error,
    },
    /// A `topo` subcommand failed in nstopo: the file could not be read or
    /// is malformed or invalid (file, line, column, every problem), or the
    /// kernel refused a request.
    #[error("nsctl topo {op}")]
    Topo {
        op: &'static str,
        #[source]
        source: nstopo::Error,
    },
    /// The live view of a topology's namespaces could not be built (`topo`).
    #[error("nsctl topo: cannot view the namespaces")]
    TopoView {
        #[source]
        source: nsdb::Error,
    },
    /// Output could not be written (`topo draw -o FILE`).
    #[error("Cannot write \"{}\"", path.display())]
    Output {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl Error {
    /// The line ip prints for this failure: `Display`, then the cause in
    /// ip's words (`strerror` of the errno, or the kernel's message).
    pub(crate) fn ip_line(&self) -> String {
        match self {
            Error::Netlink { source } => netlink_text(source),
            Error::Rtnetlink { source } => format!("{self}: {source}"),
            Error::Topo { source, .. } => format!("{self}: {}", chain(source)),
            Error::TopoView { source } => format!("{self}: {}", chain(source)),
            // ip's words: no blank after the colon.
            Error::ReadRunDir { source, .. } => format!("{self}:{}", errno_text(source)),
            _ => match self.io_source() {
                Some(source) => format!("{self}: {}", errno_text(source)),
                None => self.to_string(),
            },
        }
    }

    /// The system error behind the failure, for the variants that have one.
    fn io_source(&self) -> Option<&io::Error> {
        match self {
            Error::PrepareRunDir { source, .. }
            | Error::MakeRunDir { source, .. }
            | Error::OpenRunDir { source, .. }
            | Error::CreateEntry { source, .. }
            | Error::Create { source, .. }
            | Error::Attach { source, .. }
            | Error::Remove { source, .. }
            | Error::OpenNamed { source, .. }
            | Error::Open { source }
            | Error::ReadRunDir { source, .. }
            | Error::Enter { source, .. }
            | Error::Unshare { source }
            | Error::MakeSlave { source }
            | Error::MountSys { source }
            | Error::ForeachDir { source, .. }
            | Error::Exec { source, .. }
            | Error::Wait { source }
            | Error::Watch { source }
            | Error::WatchRead { source }
            | Error::Output { source, .. } => Some(source),
            _ => None,
        }
    }

    /// The status ip exits with for the same failure.
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            Error::InvalidName { .. }
            | Error::UnknownCommand { .. }
            | Error::UnknownOption { .. }
            | Error::Argument { .. }
            | Error::Duplicate { .. }
            | Error::Incomplete
            | Error::Usage
            | Error::Enter { .. }
            | Error::Unshare { .. }
            | Error::MakeSlave { .. }
            | Error::MountSys { .. } => 255,
            Error::OpenNamed { code, .. } => *code,
            Error::Topo { source, .. } => topo_exit_code(source),
            Error::Netlink { .. } | Error::PeerInvalid { .. } => 2,
            _ => 1,
        }
    }

    /// The errno behind the failure, if the kernel gave one. (The binary
    /// prints and exits; the tests query it.)
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn raw_os_error(&self) -> Option<i32> {
        if let Some(source) = self.io_source() {
            return source.raw_os_error();
        }
        match self {
            Error::Netlink { source } | Error::Rtnetlink { source } => source.raw_os_error(),
            Error::PeerInvalid { .. } => Some(libc::EINVAL),
            Error::Topo { source, .. } => source.raw_os_error(),
            Error::TopoView { source } => source.raw_os_error(),
            _ => None,
        }
    }
}

/// An error and its causes, `: `-separated (each cause once).
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        next = cause.source();
    }
    out
}

/// nsctl's exit code for an nstopo failure: 255 for a bad file or value
/// (as ip for a bad argument), 2 for a request the kernel refused (as ip),
/// 1 otherwise.
fn topo_exit_code(e: &nstopo::Error) -> u8 {
    match e {
        nstopo::Error::Parse { .. }
        | nstopo::Error::Invalid { .. }
        | nstopo::Error::DrawFormat { .. } => 255,
        nstopo::Error::Request { .. } => 2,
        nstopo::Error::Apply { source, .. } => topo_exit_code(source),
        _ => 1,
    }
}

/// C's `strerror` for an io error's errno, or the error's own words.
pub(crate) fn errno_text(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => nix::errno::Errno::from_raw(code).desc().to_string(),
        None => e.to_string(),
    }
}

/// ip's `Error: <message>.` / `RTNETLINK answers: <errno>`.
fn netlink_text(e: &netns::Error) -> String {
    if let Some(msg) = e.kernel_message() {
        format!("Error: {}", with_dot(&msg))
    } else if let Some(code) = e.raw_os_error() {
        format!(
            "RTNETLINK answers: {}",
            nix::errno::Errno::from_raw(code).desc()
        )
    } else {
        format!("RTNETLINK answers: {e}")
    }
}

/// The first line of a failed dump: the kernel's message, else its errno.
pub(crate) fn dump_line(message: &str, errno: i32) -> String {
    if message.is_empty() {
        format!(
            "RTNETLINK answers: {}",
            nix::errno::Errno::from_raw(errno).desc()
        )
    } else {
        format!("Error: {}", with_dot(message))
    }
}

/// ip ends kernel messages with a full stop.
fn with_dot(msg: &str) -> String {
    if msg.ends_with('.') {
        msg.to_owned()
    } else {
        format!("{msg}.")
    }
}

/// The result type of nsctl's subcommands: `Ok` holds the exit code.
pub(crate) type Result<T = u8, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_and_codes_are_ips() {
        let e = Error::InvalidName { name: "a/b".into() };
        assert_eq!(e.to_string(), "Invalid netns name \"a/b\"");
        assert_eq!(e.exit_code(), 255);
        let e = Error::Remove {
            path: "/run/netns/x".into(),
            source: io::Error::from_raw_os_error(libc::ENOENT),
        };
        assert_eq!(
            e.ip_line(),
            "Cannot remove namespace file \"/run/netns/x\": No such file or directory"
        );
        assert_eq!((e.exit_code(), e.raw_os_error()), (1, Some(libc::ENOENT)));
        let e = Error::Dump {
            line: dump_line("Invalid target network namespace id", 22),
        };
        assert_eq!(
            e.ip_line(),
            "Error: Invalid target network namespace id.\nDump terminated"
        );
        assert_eq!(Error::PeerInvalid { name: "s".into() }.exit_code(), 2);
    }

    /// Display never repeats the `#[source]` (a reporter walking the chain
    /// prints the cause once); `ip_line` is still ip's whole line.
    #[test]
    fn display_does_not_repeat_the_source() {
        use std::error::Error as _;
        let enoent = || io::Error::from_raw_os_error(libc::ENOENT);
        let path = || PathBuf::from("/run/netns/x");
        let refused = || netns::Error::LinkNotFound {
            link: "eth9".into(),
            ns: path(),
        };
        let errors = [
            Error::MakeRunDir {
                path: path(),
                source: enoent(),
            },
            Error::OpenRunDir {
                path: path(),
                source: enoent(),
            },
            Error::PrepareRunDir {
                path: path(),
                source: enoent(),
            },
            Error::CreateEntry {
                path: path(),
                source: enoent(),
            },
            Error::Create {
                name: "x".into(),
                source: enoent(),
            },
            Error::Attach {
                pid: 1,
                path: path(),
                source: enoent(),
            },
            Error::Remove {
                path: path(),
                source: enoent(),
            },
            Error::OpenNamed {
                name: "x".into(),
                code: 1,
                source: enoent(),
            },
            Error::Open { source: enoent() },
            Error::ReadRunDir {
                path: path(),
                source: enoent(),
            },
            Error::Enter {
                name: "x".into(),
                source: enoent(),
            },
            Error::Unshare { source: enoent() },
            Error::MakeSlave { source: enoent() },
            Error::MountSys { source: enoent() },
            Error::ForeachDir {
                path: path(),
                source: enoent(),
            },
            Error::Exec {
                program: "x".into(),
                source: enoent(),
            },
            Error::Wait { source: enoent() },
            Error::Netlink { source: refused() },
            Error::Rtnetlink { source: refused() },
            Error::Watch { source: enoent() },
            Error::WatchRead { source: enoent() },
        ];
        for e in errors {
            let source = e.source().expect("a variant with a source");
            let shown = e.to_string();
            assert!(
                !shown.contains("No such file") && !shown.contains(&source.to_string()),
                "{shown:?} repeats its source {source}"
            );
            assert!(e.ip_line().starts_with(&*shown) || matches!(e, Error::Netlink { .. }));
        }
        let e = Error::ReadRunDir {
            path: path(),
            source: enoent(),
        };
        assert_eq!(
            e.ip_line(),
            "Failed to open directory /run/netns/x:No such file or directory"
        );
        let e = Error::Rtnetlink { source: refused() };
        assert_eq!(e.ip_line(), format!("Cannot open rtnetlink: {}", refused()));
    }
}
