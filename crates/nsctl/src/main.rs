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
//! (`-all`, `-json`, `-pretty`, shortened as ip allows: `-a`, `-j`, `-jso`,
//! `-p`; `--x` is `-x`) go before the subcommand, as in `ip -all netns
//! delete`; an option ip does not know either gets ip's words and exit 255. Namespaces made by nsctl and
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
//! - `nsctl topo apply|diff|destroy|draw|show FILE` works on a declared
//!   topology (the `nstopo` crate): converge the kernel to a YAML or JSON
//!   file, list the drift, remove what it owns, draw it (DOT, Mermaid, SVG),
//!   print it as read and checked. See `topo.rs`.
//!
//! How it works: names, creation, removal, attach, identify and pids come
//! from `nsfs`; namespace ids and links from the `netns` facade (and its
//! rtnetlink handle for the `list-id` filters the facade does not offer);
//! `exec --fast` from `nsproc`'s posix_spawn path. `exec` (without `--fast`)
//! is done as ip does it, before any runtime or thread exists (`direct.rs`):
//! nsctl opens `/run/netns/NAME`, `setns`, `unshare(CLONE_NEWNS)`, makes `/`
//! a recursive slave, remounts `/sys`, binds `/etc/netns/NAME/*` over `/etc`
//! and `execvp`s the command, which thus replaces nsctl. `-all exec` starts
//! nsctl again (`posix_spawn` of `/proc/self/exe`) once per namespace to do
//! that, and waits for each, where ip forks. nsctl itself never forks and
//! never switches a runtime thread's namespace.
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
//! - `exec` is ip's: the command replaces nsctl (same pid, parent, fds,
//!   signal dispositions and mask, environment, working directory, umask),
//!   so its exit status or signal is what the shell sees (`SIGPIPE`, which
//!   Rust's start-up code ignores, is given back as nsctl found it). (From
//!   Rust's start-up too: a closed stdin, stdout or stderr is
//!   reopened on `/dev/null` before nsctl runs, so the command finds it
//!   open.) ip's VRF reset (`vrf_reset`, cgroup-based VRF) is not done.
//! - `-all exec` with a namespace that cannot be entered reports it and goes
//!   on with the next namespace (ip's child would carry on the loop itself,
//!   running the command again in later namespaces). The command's parent
//!   is a second nsctl process (ip: a fork of ip), which the parent waits
//!   for; it is started with `posix_spawn`, which keeps the signal mask and
//!   ignored signals as a fork does, except that glibc leaves its two
//!   internal signals (32 and 33) ignored in the child (glibc programs set
//!   their own handlers for them when they use them).
//! - `exec --fast` (not in ip) runs the command as a child of nsctl and waits
//!   for it: the exit status is the command's; a command killed by a signal
//!   kills nsctl with the same signal; SIGTERM and SIGHUP sent to nsctl are
//!   passed on to it; it gets stdin, stdout and stderr but no other fd.
//! - `monitor` reports a namespace as added once it is mounted, not when its
//!   placeholder file appears, and ignores files that never become a
//!   namespace (ip prints `add`/`delete` for any file made in `/run/netns`).
//!   Its lines are flushed one by one (ip's are block-buffered on a pipe).
//!   If `/run/netns` is a plain file, `monitor` fails ("inotify_add_watch
//!   failed: Not a directory", exit 1) where ip watches the file for ever.
//! - Of ip's global options only `-all`, `-json` and `-pretty` (and
//!   `-Version`, `-help`) are taken; any other (`-n NAME`, `-details`,
//!   `-4`, ...) gets ip's words for an unknown option and exit 255.
//! - `--user` (not in ip) works in rootless mode even as root: namespaces
//!   owned by a private user namespace, named in the per-user run
//!   directory (`$XDG_RUNTIME_DIR/netns-toolkit/netns`), `/run/netns`
//!   untouched; without root that mode is chosen by itself (see
//!   docs/rootless.md).
//! - `help` (and `-h`, `--help`) prints nsctl's help on standard output and
//!   exits 0 (ip prints its usage on standard error and exits 255). Error
//!   messages that tell the user to run ip (`try "ip netns help"`) name
//!   nsctl instead.
//! - After the subcommand every word is an argument, as in ip: `nsctl add
//!   -j` names a namespace `-j`, and `nsctl list -j` lists as text (ip
//!   ignores the word). `--fast` is nsctl's only right after `exec`, and a
//!   lone `--help` after a subcommand is nsctl's help for it (ip would take
//!   it for a name). Names that are not valid UTF-8 are refused by the
//!   argument parser, and run-directory entries that are not valid UTF-8
//!   are skipped.
//! - JSON strings are escaped as JSON requires: a control character in a
//!   name is written `\u0001` (ip writes the raw byte, which is not JSON).
//! - With `-all`, ip skips its name check for every subcommand and then
//!   fails on the file system (`ip -all netns add a/b`: "Cannot create
//!   namespace file"); nsctl still refuses such a name ("Invalid netns
//!   name", exit 255) and touches nothing.
//! - `list-id` filters and `(iproute2 netns name: ...)` follow ip exactly,
//!   including its trailing blank after an unnamed `nsid N `. A dump whose
//!   target id names no namespace is reported as ip reports it, from the
//!   error the kernel puts in the dump's `NLMSG_DONE` (which the facade's
//!   `nsid_list` surfaces; a plain rtnetlink stream drops it).
//! - When the kernel has no netnsid support at all, `list-id` fails with
//!   ip's message; `list` leaves the ids out, as ip does.
//!
//! # Cost
//!
//! Measured on the shared 2-vCPU build VM (release build, `true` run 61
//! times per row, rows interleaved, quiet machine; medians of two runs):
//!
//! | command | median | vs ip |
//! |---|---|---|
//! | `ip netns exec b1 true` | 1.72-1.89 ms | 1 |
//! | `nsctl exec b1 true` (direct, as ip) | 1.74-1.83 ms | 0.97-1.01x |
//! | `nsctl exec b1 true` through an nsproxy agent (before) | 3.59 ms | 1.9x |
//! | `nsctl exec --fast b1 true` | 2.07-2.11 ms | 1.1-1.2x |
//! | `ip -all netns exec true` (2 namespaces) | 2.99-3.24 ms | 1 |
//! | `nsctl -all exec true` (re-exec per namespace) | 4.41-4.54 ms | 1.4-1.5x |
//! | `nsctl -all exec true` through agents (before) | 5.95 ms | 1.8x |
//! | `ip netns list` / `nsctl list` (2 namespaces) | 1.18 / 1.60 ms | 1.36x |
//! | same, netlink socket made without a namespace-thread hop (2 runs) | 1.11-1.16 / 1.37-1.43 ms | 1.24x |
//! | `ip netns identify` / `nsctl identify` | 1.13 / 1.28 ms | 1.13x |
//!
//! Where the agent path's time went: process start 1.1-1.5 ms whatever
//! nsctl does (`nsctl --version`), runtime and namespace thread ~0.25 ms
//! (`--fast` minus direct), the agent ~1.5 ms (an exec of the 30 MB nsctl
//! binary, its handshake and mount setup, the spawn request, the exit
//! report and the reap). Under load (other builds on the two CPUs) every
//! hand-off between threads and processes also waits for a CPU: the agent
//! path then took 11-18 ms (median) against ip's 2.3-3.4 ms in the same
//! runs; the direct path, like ip, hands nothing off. It does what ip does,
//! so it costs what ip costs; `-all` pays one more exec of nsctl per
//! namespace than ip's fork. `list` paid the runtime and a namespace thread
//! that opened its netlink socket (~0.4 ms over ip); the socket in nsctl's
//! own namespace is now made on the calling thread (~0.27 ms over ip).

mod cli;
mod cmd;
mod direct;
mod error;
mod json;
mod signal;
mod topo;

use std::ffi::OsString;
use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command, Pre};

/// Prints `e` as ip would and gives ip's exit code.
fn fail(e: error::Error) -> ExitCode {
    eprintln!("{}", e.ip_line());
    ExitCode::from(e.exit_code())
}

/// `nsctl [-all] exec NAME CMD...` without `--fast`: this process becomes
/// the command (or, with `-all`, starts one child of itself per namespace).
fn exec_like_ip(all: bool, name: Option<OsString>, mut command: Vec<OsString>) -> ExitCode {
    if all {
        if let Some(first) = name {
            command.insert(0, first);
        }
        if command.is_empty() {
            return fail(error::Error::MissingCommand);
        }
        return match direct::exec_all(&command) {
            Ok(code) => ExitCode::from(code),
            Err(e) => fail(e),
        };
    }
    let Some(name) = name else {
        return fail(error::Error::MissingName);
    };
    if command.is_empty() {
        return fail(error::Error::MissingCommand);
    }
    fail(direct::exec(&name, &command))
}

/// `--user`: rootless mode for this process, even as root. Nothing has
/// asked for the mode yet when `main` calls this, so it cannot fail but
/// for a bug, which it reports.
fn force_user() -> Result<(), ExitCode> {
    if nsfs::force_rootless() {
        return Ok(());
    }
    eprintln!("nsctl: --user: root mode was already chosen");
    Err(ExitCode::from(1))
}

fn main() -> ExitCode {
    let args: Vec<_> = std::env::args_os().collect();
    if let Some(child) = args.get(1)
        && (child == direct::CHILD_ARG || child == direct::CHILD_ARG_USER)
    {
        if child == direct::CHILD_ARG_USER
            && let Err(code) = force_user()
        {
            return code;
        }
        return direct::child_main(&args[2..]);
    }
    let args = match cli::preprocess(args) {
        Pre::Args(args) => args,
        Pre::InvalidName(name) => return fail(error::Error::InvalidName { name }),
        Pre::Unknown(word) => return fail(error::Error::UnknownCommand { word }),
        Pre::UnknownOption(option) => return fail(error::Error::UnknownOption { option }),
    };
    let mut cli = Cli::parse_from(args);
    // `--user`: rootless mode even as root, decided before anything asks.
    if cli.user
        && let Err(code) = force_user()
    {
        return code;
    }
    // ip-style exec: set up and exec as ip does, before any runtime or
    // thread exists (see direct.rs).
    if let Some(Command::Exec {
        fast: false,
        name,
        command,
    }) = &mut cli.command
    {
        return exec_like_ip(cli.all, name.take(), std::mem::take(command));
    }
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
            eprintln!("{}", e.ip_line());
            e.exit_code()
        }
    };
    // Drop the runtime first: nothing may outlive the command's output.
    drop(runtime);
    ExitCode::from(code)
}
