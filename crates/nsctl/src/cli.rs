//! The command line: clap definitions, plus the thin layer that gives them
//! iproute2's grammar (single-dash global options, subcommands matched by
//! prefix in ip's order, the name check on the first argument).

use std::ffi::OsString;

use clap::{Parser, Subcommand};

/// Manage network namespaces, like `ip netns` (iproute2), on the netns toolkit.
///
/// Output, JSON, error messages and exit codes follow `ip netns`. Subcommands
/// may be abbreviated as ip allows (`l`, `a`, `d`, `s` = `show`, `se` = `set`,
/// `i`, `p`, `e`, `m`); without a subcommand, `nsctl` lists namespaces.
#[derive(Debug, Parser)]
#[command(
    name = "nsctl",
    version,
    disable_help_subcommand = true,
    after_help = "Global options may also be written as ip writes them: -all, -json, -pretty."
)]
pub(crate) struct Cli {
    /// Apply to every namespace: `delete` and `exec` (ip's `-all`).
    #[arg(short = 'a', long = "all", global = true)]
    pub(crate) all: bool,
    /// JSON output, as `ip -j netns`.
    #[arg(short = 'j', long = "json", global = true)]
    pub(crate) json: bool,
    /// Pretty JSON (with -j), as `ip -j -p netns`.
    #[arg(short = 'p', long = "pretty", global = true)]
    pub(crate) pretty: bool,
    /// Rootless mode even as root: namespaces owned by a private user
    /// namespace, named in the per-user run directory (as without root;
    /// /run/netns is untouched). Not in ip.
    #[arg(long = "user", global = true)]
    pub(crate) user: bool,
    /// What to do (default: list).
    #[command(subcommand)]
    pub(crate) command: Option<Command>,
}

/// The subcommands, in the order ip matches abbreviations.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// List named namespaces with their ids, in directory order (`ip netns list`).
    #[command(visible_aliases = ["show", "lst"])]
    List {
        /// Ignored, as ip ignores them.
        #[arg(hide = true, allow_hyphen_values = true, trailing_var_arg = true)]
        extra: Vec<OsString>,
    },
    /// List the namespace ids of this namespace (`ip netns list-id`):
    /// `[target-nsid N] [nsid N]`.
    ListId {
        /// `target-nsid N`: as seen from the namespace with id N; `nsid N`: only id N.
        #[arg(
            allow_hyphen_values = true,
            trailing_var_arg = true,
            value_name = "FILTER"
        )]
        args: Vec<String>,
    },
    /// Print this help (ip prints its usage on stderr instead).
    Help {
        #[arg(hide = true, allow_hyphen_values = true, trailing_var_arg = true)]
        extra: Vec<OsString>,
    },
    /// Create a namespace (`ip netns add NAME`).
    Add {
        /// The new namespace's name.
        #[arg(allow_hyphen_values = true)]
        name: Option<String>,
        #[arg(hide = true, allow_hyphen_values = true, trailing_var_arg = true)]
        extra: Vec<OsString>,
    },
    /// Give namespace id NSID (a number, or `auto`) to NAME (`ip netns set`).
    Set {
        /// The namespace.
        #[arg(allow_hyphen_values = true)]
        name: Option<String>,
        /// `auto` or a number >= 0.
        #[arg(allow_hyphen_values = true)]
        nsid: Option<String>,
        #[arg(hide = true, allow_hyphen_values = true, trailing_var_arg = true)]
        extra: Vec<OsString>,
    },
    /// Remove a namespace's name, or all with -all (`ip netns delete`).
    Delete {
        /// The namespace.
        #[arg(allow_hyphen_values = true)]
        name: Option<String>,
        #[arg(hide = true, allow_hyphen_values = true, trailing_var_arg = true)]
        extra: Vec<OsString>,
    },
    /// Print the name of the namespace of PID (default: this process), like
    /// `ip netns identify`.
    Identify {
        /// A process id.
        #[arg(allow_hyphen_values = true)]
        pid: Option<String>,
        #[arg(hide = true, allow_hyphen_values = true, trailing_var_arg = true)]
        extra: Vec<String>,
    },
    /// Print the pids of the processes in a namespace (`ip netns pids`).
    Pids {
        /// The namespace.
        #[arg(allow_hyphen_values = true)]
        name: Option<String>,
        #[arg(hide = true, allow_hyphen_values = true, trailing_var_arg = true)]
        extra: Vec<String>,
    },
    /// Run a command in a namespace, or in each with -all (`ip netns exec`):
    /// private mount namespace, /sys remounted, /etc/netns/NAME/* bound over
    /// /etc. The exit status is the command's.
    Exec {
        /// Only switch the network namespace (posix_spawn from a namespace
        /// thread): no mount namespace, /sys or /etc changes. Not in ip.
        #[arg(long)]
        fast: bool,
        /// The namespace (with -all: the command).
        #[arg(allow_hyphen_values = true)]
        name: Option<OsString>,
        /// The command and its arguments.
        #[arg(allow_hyphen_values = true, trailing_var_arg = true)]
        command: Vec<OsString>,
    },
    /// Print `add NAME` / `delete NAME` as namespaces come and go (`ip netns monitor`).
    Monitor {
        #[arg(hide = true, allow_hyphen_values = true, trailing_var_arg = true)]
        extra: Vec<OsString>,
    },
    /// Name the namespace of process PID (`ip netns attach NAME PID`).
    Attach {
        /// The name to give.
        #[arg(allow_hyphen_values = true)]
        name: Option<String>,
        /// The process.
        #[arg(allow_hyphen_values = true)]
        pid: Option<String>,
        #[arg(hide = true, allow_hyphen_values = true, trailing_var_arg = true)]
        extra: Vec<OsString>,
    },
    /// List a namespace's links and where their peers live (namespace name
    /// and ifindex of a veth's other end). Not in ip.
    Links {
        /// The namespace.
        #[arg(allow_hyphen_values = true)]
        name: Option<String>,
        #[arg(hide = true, allow_hyphen_values = true, trailing_var_arg = true)]
        extra: Vec<OsString>,
    },
    /// Declared topologies (YAML or JSON files): apply, diff, destroy, draw,
    /// show. Not in ip.
    Topo {
        /// What to do with the file.
        #[command(subcommand)]
        command: crate::topo::TopoCommand,
    },
}

/// The subcommand words in the order ip tries them (`do_netns`), so that an
/// abbreviation means what it means to ip (`s` is `show`, `se` is `set`).
/// `links` and `topo` are nsctl's own and come last.
const ORDER: &[(&str, &str)] = &[
    ("list", "list"),
    ("show", "show"),
    ("lst", "lst"),
    ("list-id", "list-id"),
    ("help", "help"),
    ("add", "add"),
    ("set", "set"),
    ("delete", "delete"),
    ("identify", "identify"),
    ("pids", "pids"),
    ("exec", "exec"),
    ("monitor", "monitor"),
    ("attach", "attach"),
    ("links", "links"),
    ("topo", "topo"),
];

/// The subcommand `word` abbreviates, by iproute2's `matches`: a non-empty
/// prefix of the full word, first match in ip's order.
pub(crate) fn resolve(word: &str) -> Option<&'static str> {
    if word.is_empty() {
        return None;
    }
    ORDER
        .iter()
        .find(|(full, _)| full.starts_with(word))
        .map(|(_, canon)| *canon)
}

/// iproute2's `invalid_name`.
pub(crate) fn invalid_name(name: &str) -> bool {
    name.is_empty()
        || name.len() > nsfs::NAME_MAX
        || name.contains('/')
        || name == "."
        || name == ".."
}

/// What the command line turned out to be before clap sees it.
#[derive(Debug)]
pub(crate) enum Pre {
    /// Arguments for clap, subcommand spelled out.
    Args(Vec<OsString>),
    /// ip would reject this name in the first argument (exit 255).
    InvalidName(String),
    /// No such subcommand (exit 255).
    Unknown(String),
    /// No such global option (exit 255).
    UnknownOption(String),
}

/// ip's reading of a global option (`main` in ip.c): `--x` is `-x`, and an
/// option may be shortened to any prefix of its name; the first match in
/// ip's order wins (none of ip's options before `-json`, `-pretty`, `-help`,
/// `-all` starts with their first letter, except `-h`, which ip reads as
/// `-human` and nsctl as `--help`). Returns clap's spelling, or `None` for an
/// option nsctl does not know.
fn is_global(arg: &str) -> Option<&'static str> {
    let opt = arg
        .strip_prefix('-')
        .filter(|o| o.starts_with('-'))
        .unwrap_or(arg);
    if opt.len() < 2 || !opt.starts_with('-') {
        return None;
    }
    // clap's spelling, which `--help` advertises: ip's `-Version` is
    // case-sensitive, so without this `--version` would be unknown.
    if opt == "-version" {
        return Some("--version");
    }
    const FULL: &[(&str, &str)] = &[
        ("-Version", "--version"),
        ("-json", "--json"),
        ("-pretty", "--pretty"),
        ("-help", "--help"),
        ("-all", "--all"),
        ("-user", "--user"),
    ];
    FULL.iter()
        .find(|(full, _)| full.starts_with(opt))
        .map(|(_, clap)| *clap)
}

/// Rewrites ip-style global options to clap's spelling, resolves the
/// subcommand abbreviation, and applies ip's name check to the first
/// argument after the subcommand (unless -all is given).
pub(crate) fn preprocess(args: Vec<OsString>) -> Pre {
    let mut out = Vec::with_capacity(args.len());
    let mut iter = args.into_iter();
    if let Some(argv0) = iter.next() {
        out.push(argv0);
    }
    let mut all = false;
    let rest: Vec<OsString> = iter.collect();
    let mut i = 0;
    while i < rest.len() {
        let Some(arg) = rest[i].to_str() else { break };
        if arg == "--" {
            // ip: the end of the options.
            i += 1;
            break;
        }
        if let Some(global) = is_global(arg) {
            all |= global == "--all";
            // ip takes an option given twice; clap would refuse it.
            if !out.iter().any(|o| o == global) {
                out.push(global.into());
            }
            i += 1;
        } else if arg.starts_with('-') {
            // ip's words for an option it does not know (ip shows `--x` as
            // `-x`).
            let shown = arg.strip_prefix('-').filter(|o| o.starts_with('-'));
            return Pre::UnknownOption(shown.unwrap_or(arg).to_owned());
        } else {
            break;
        }
    }
    if i == rest.len() {
        return Pre::Args(out);
    }
    let word = rest[i].to_string_lossy().into_owned();
    let canon = resolve(&word);
    let mut after = &rest[i + 1..];
    // `exec --fast` (nsctl's own option) comes right after `exec`.
    let fast = canon == Some("exec") && after.first().is_some_and(|a| a == "--fast");
    if fast {
        after = &after[1..];
    }
    // `topo` has subcommands and options of its own: clap parses them.
    if canon == Some("topo") {
        out.push("topo".into());
        out.extend(after.iter().cloned());
        return Pre::Args(out);
    }
    // ip checks the name before it looks at the subcommand.
    if !all && let Some(first) = after.first() {
        let first = first.to_string_lossy();
        if invalid_name(&first) {
            return Pre::InvalidName(first.into_owned());
        }
    }
    let Some(canon) = canon else {
        return Pre::Unknown(word);
    };
    out.push(canon.into());
    if fast {
        out.push("--fast".into());
    }
    // Everything after the subcommand is its arguments, as for ip: `nsctl
    // add -j` names a namespace `-j`, `nsctl list -j` lists as text (ip
    // ignores the extra word), `nsctl -all exec grep -h x` runs `grep -h x`.
    // Alone, `--help` is still nsctl's help for the subcommand.
    let help = after.len() == 1 && after[0] == "--help";
    if !help {
        out.push("--".into());
    }
    out.extend(after.iter().cloned());
    Pre::Args(out)
}

/// Parses a number as C's `strtol(s, &end, 0)` does for iproute2's
/// `get_integer`: leading blanks, a sign, `0x` hex or `0` octal; the whole
/// string must be used and the value must fit an `int`.
pub(crate) fn parse_c_int(s: &str) -> Option<i32> {
    let t = s.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let (neg, t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let (radix, digits) = if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        (16, h)
    } else if t.len() > 1 && t.starts_with('0') {
        (8, &t[1..])
    } else {
        (10, t)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let value = i64::from_str_radix(digits, radix).ok()?;
    let value = if neg { -value } else { value };
    i32::try_from(value).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abbreviations_follow_ip_order() {
        assert_eq!(resolve("l"), Some("list"));
        assert_eq!(resolve("s"), Some("show"));
        assert_eq!(resolve("se"), Some("set"));
        assert_eq!(resolve("ls"), Some("lst"));
        assert_eq!(resolve("list-"), Some("list-id"));
        assert_eq!(resolve("a"), Some("add"));
        assert_eq!(resolve("at"), Some("attach"));
        assert_eq!(resolve("d"), Some("delete"));
        assert_eq!(resolve("h"), Some("help"));
        assert_eq!(resolve("li"), Some("list"));
        assert_eq!(resolve("lin"), Some("links"));
        assert_eq!(resolve(""), None);
        assert_eq!(resolve("foo"), None);
        assert_eq!(resolve("lists"), None);
        assert_eq!(resolve("t"), Some("topo"));
    }

    #[test]
    fn c_integers() {
        assert_eq!(parse_c_int("5"), Some(5));
        assert_eq!(parse_c_int(" 5"), Some(5));
        assert_eq!(parse_c_int("0x10"), Some(16));
        assert_eq!(parse_c_int("010"), Some(8));
        assert_eq!(parse_c_int("0"), Some(0));
        assert_eq!(parse_c_int("-1"), Some(-1));
        assert_eq!(parse_c_int("2147483647"), Some(i32::MAX));
        assert_eq!(parse_c_int("2147483648"), None);
        assert_eq!(parse_c_int(""), None);
        assert_eq!(parse_c_int("5 "), None);
        assert_eq!(parse_c_int("foo"), None);
        assert_eq!(parse_c_int("08"), None);
    }

    #[test]
    fn names_checked_like_ip() {
        assert!(invalid_name(""));
        assert!(invalid_name("."));
        assert!(invalid_name(".."));
        assert!(invalid_name("a/b"));
        assert!(invalid_name(&"x".repeat(256)));
        assert!(!invalid_name(&"x".repeat(255)));
        assert!(!invalid_name("-x"));
        assert!(!invalid_name("a b"));
    }

    #[test]
    fn preprocess_rewrites_globals_and_abbreviations() {
        let args = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        match preprocess(args(&["nsctl", "-all", "-j", "d"])) {
            Pre::Args(a) => assert_eq!(a, args(&["nsctl", "--all", "--json", "delete", "--"])),
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(preprocess(args(&["nsctl", "foo", "a/b"])), Pre::InvalidName(n) if n == "a/b")
        );
        assert!(matches!(preprocess(args(&["nsctl", "foo"])), Pre::Unknown(w) if w == "foo"));
        // ip's global options, shortened and with two dashes, as ip reads them.
        match preprocess(args(&["nsctl", "-al", "--js", "-pre", "-Vers", "l"])) {
            Pre::Args(a) => assert_eq!(
                a,
                args(&[
                    "nsctl",
                    "--all",
                    "--json",
                    "--pretty",
                    "--version",
                    "list",
                    "--"
                ])
            ),
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(preprocess(args(&["nsctl", "--bogus", "list"])), Pre::UnknownOption(o) if o == "-bogus")
        );
        // `--version`, as `--help` advertises it (and `-version`, which ip
        // would call unknown, since its `-Version` is case-sensitive).
        for v in ["--version", "-version"] {
            match preprocess(args(&["nsctl", v])) {
                Pre::Args(a) => assert_eq!(a, args(&["nsctl", "--version"])),
                other => panic!("{other:?}"),
            }
        }
        // Given twice, as ip takes it.
        match preprocess(args(&["nsctl", "-j", "-json", "-all", "-a", "l"])) {
            Pre::Args(a) => assert_eq!(a, args(&["nsctl", "--json", "--all", "list", "--"])),
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(preprocess(args(&["nsctl", "-jsonx"])), Pre::UnknownOption(o) if o == "-jsonx")
        );
        assert!(matches!(
            preprocess(args(&["nsctl", "-all", "add", "a/b"])),
            Pre::Args(_)
        ));
        assert!(matches!(
            preprocess(args(&["nsctl", "exec", "--fast", ".."])),
            Pre::InvalidName(_)
        ));
        // After `exec`, nothing is an nsctl option.
        match preprocess(args(&["nsctl", "-all", "e", "grep", "-h", "-j"])) {
            Pre::Args(a) => assert_eq!(
                a,
                args(&["nsctl", "--all", "exec", "--", "grep", "-h", "-j"])
            ),
            other => panic!("{other:?}"),
        }
        match preprocess(args(&["nsctl", "exec", "--fast", "-j", "ls", "-p"])) {
            Pre::Args(a) => assert_eq!(
                a,
                args(&["nsctl", "exec", "--fast", "--", "-j", "ls", "-p"])
            ),
            other => panic!("{other:?}"),
        }
        // `topo` keeps its options for clap, and no name check applies.
        match preprocess(args(&[
            "nsctl", "-j", "topo", "draw", "--format", "svg", "a/b.yaml",
        ])) {
            Pre::Args(a) => assert_eq!(
                a,
                args(&[
                    "nsctl", "--json", "topo", "draw", "--format", "svg", "a/b.yaml"
                ])
            ),
            other => panic!("{other:?}"),
        }
        // `--fast` is an option of exec only; elsewhere ip's name check
        // sees it as the name it is.
        assert!(matches!(
            preprocess(args(&["nsctl", "add", "--fast", "a/b"])),
            Pre::Args(_)
        ));
    }
}
