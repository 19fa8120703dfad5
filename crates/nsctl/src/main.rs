//! `nsctl`: `ip netns`, rebuilt on the netns toolkit.
//!
//! ```text
//! nsctl [-all] [-j [-p]] COMMAND ...
//!
//! nsctl [list]                      nsctl set NAME NSID|auto
//! nsctl add NAME                    nsctl list-id [target-nsid N] [nsid N]
//! nsctl attach NAME PID             nsctl identify [PID]
//! nsctl delete NAME | -all delete   nsctl pids NAME
//! nsctl exec [--fast] NAME CMD...   nsctl -all exec CMD...
//! nsctl monitor                     nsctl links NAME
//! ```
//!
//! Every `ip netns` subcommand and option, with the same standard output,
//! the same JSON (`-j`, `-j -p`), the same exit codes and, where ip's words
//! can be reproduced, the same error messages, so that scripts written for
//! `ip netns` work unchanged. Subcommands may be abbreviated exactly as ip
//! allows (`nsctl l`, `nsctl a blue`, `nsctl d blue`). ip's global options
//! (`-all`, `-j`, `-p`, also spelled `-json`, `-pretty`, `--all`...) go before
//! the subcommand, as in `ip -all netns delete`. Namespaces made by nsctl and
//! by `ip netns` are the same thing: each tool sees and uses the other's.
//!
//! Beyond ip:
//! - `nsctl exec --fast NAME CMD...` starts the command with `posix_spawn`
//!   from a namespace thread: only the network namespace changes (no private
//!   mount namespace, no `/sys` remount, no `/etc/netns` binds), and nothing
//!   is forked.
//! - `nsctl links NAME` lists the namespace's links, and for a veth (or any
//!   link with a peer) where its other end lives: the peer's ifindex and the
//!   name of the peer's namespace (found through `IFLA_LINK_NETNSID` and the
//!   namespace ids of the named namespaces; a peer in nsctl's own, unnamed,
//!   namespace is marked as such). With `-j`, as JSON.
//!
//! How it works: names, creation, removal, attach, identify and pids come
//! from `nsfs`; namespace ids and links from the `netns` facade (and its
//! rtnetlink handle for the `list-id` filters the facade does not offer);
//! `exec` from `nsproc` (an `ExecAgent`: the nsproxy agent, started by exec,
//! gives the command a private mount namespace, `/sys` remounted and
//! `/etc/netns/NAME/*` bound over `/etc`; nsctl waits until the agent is
//! reaped before it exits), `--fast` from `nsproc`'s posix_spawn path. nsctl
//! never forks and never switches a runtime thread's namespace.
//!
//! Errors are one enum (`error.rs`) whose `Display` is ip's message and
//! which knows ip's exit code: 255 for bad names, unknown subcommands and
//! bad values, 2 for refused netlink requests, 1 otherwise; `exec` exits
//! with the command's status.
//!
//! # Examples
//!
//! ```text
//! $ nsctl add blue && nsctl set blue auto && nsctl
//! blue (id: 0)
//! $ nsctl -j -p list
//! [ {
//!         "name": "blue",
//!         "id": 0
//!     } ]
//! $ nsctl exec blue ip -br link
//! lo               DOWN           00:00:00:00:00:00 <LOOPBACK>
//! $ nsctl add a/b
//! Invalid netns name "a/b"
//! ```
//!
//! # Differences from `ip netns` (iproute2 6.1)
//!
//! - `exec` runs the command as a child and waits for it instead of
//!   replacing itself: the exit status is the command's; a command killed by
//!   a signal kills nsctl with the same signal (so the shell sees what it
//!   would see with ip). SIGTERM and SIGHUP sent to nsctl are passed on to the
//!   command; SIGINT and SIGQUIT are left to the command (the terminal sends
//!   them to both).
//! - The command gets stdin, stdout and stderr, the environment, the working
//!   directory and the umask, but no other file descriptor: nsproc closes
//!   every inherited fd above 2 (ip, which execs, passes on every fd not
//!   marked close-on-exec).
//! - `-all exec` with a namespace that cannot be entered reports it and goes
//!   on with the next namespace (ip's child would carry on the loop itself,
//!   running the command again in later namespaces).
//! - `monitor` reports a namespace as added once it is mounted, not when its
//!   placeholder file appears, and ignores files that never become a
//!   namespace (ip prints `add`/`delete` for any file made in `/run/netns`).
//!   Its lines are flushed one by one (ip's are block-buffered on a pipe).
//! - `help` (and `-h`, `--help`) prints nsctl's help on standard output and
//!   exits 0 (ip prints its usage on standard error and exits 255). Error
//!   messages that tell the user to run ip (`try "ip netns help"`) name
//!   nsctl instead.
//! - Names may start with `-`, as in ip, but a name that is also one of
//!   nsctl's options (`-h`, `-j`, `-p`, `-a`, `--help`, `--fast`, ...)
//!   needs `--` before it (`nsctl add -- -j`). nsctl's global options may
//!   also follow the subcommand (`nsctl list -j`). Names that are not valid
//!   UTF-8 are refused by the argument parser, and run-directory entries
//!   that are not valid UTF-8 are skipped.
//! - JSON strings are escaped as JSON requires: a control character in a
//!   name is written `\u0001` (ip writes the raw byte, which is not JSON).
//! - With `-all`, ip skips its name check for every subcommand and then
//!   fails on the file system (`ip -all netns add a/b`: "Cannot create
//!   namespace file"); nsctl still refuses such a name ("Invalid netns
//!   name", exit 255) and touches nothing.
//! - `list-id` filters and `(iproute2 netns name: ...)` follow ip exactly,
//!   including its trailing blank after an unnamed `nsid N `. A dump whose
//!   target id names no namespace is reported as ip reports it, but found
//!   by asking the kernel for that id (the rtnetlink stream does not hand
//!   out the error carried by the dump's `NLMSG_DONE`).
//! - When the kernel has no netnsid support at all, `list-id` fails with
//!   ip's message; `list` leaves the ids out, as ip does.
//!
//! # Cost
//!
//! Measured on the shared 2-vCPU build VM (medians of 41 runs, release
//! build, noisy): `nsctl list` and `nsctl exec --fast NAME true` cost about
//! what `ip netns list` and `ip netns exec NAME true` cost (2.3-3 ms);
//! `nsctl exec NAME true` costs 6-12 ms against ip's 2.5-5 ms, the price of
//! starting the nsproxy agent (an exec of the nsctl binary) that gives the
//! command its private mount namespace without forking nsctl.

mod cli;
mod cmd;
mod error;
mod json;
mod signal;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Pre};

/// Prints `e` as ip would and gives ip's exit code.
fn fail(e: error::Error) -> ExitCode {
    eprintln!("{e}");
    ExitCode::from(e.exit_code())
}

fn main() -> ExitCode {
    let args: Vec<_> = std::env::args_os().collect();
    let args = match cli::preprocess(args) {
        Pre::Args(args) => args,
        Pre::InvalidName(name) => return fail(error::Error::InvalidName { name }),
        Pre::Unknown(word) => return fail(error::Error::UnknownCommand { word }),
    };
    let cli = Cli::parse_from(args);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("nsctl: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let code = match runtime.block_on(cmd::run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{e}");
            e.exit_code()
        }
    };
    // Drop the runtime first: nothing may outlive the command's output.
    drop(runtime);
    ExitCode::from(code)
}
