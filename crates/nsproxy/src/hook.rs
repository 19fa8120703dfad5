//! The early-init hook: what turns a re-executed binary into the agent.
//!
//! A function pointer in `.init_array` is called by the dynamic loader (or
//! the static start code) before `main`, in every binary that links this
//! crate. It costs one `getenv` in a normal start. When the marker variable
//! is set and `argv[1]` is `--nsproxy-agent`, the process is an agent: it
//! runs the agent loop and `_exit`s, so the application's `main` is never
//! reached.
//!
//! # What a caller controls, and why it is safe
//!
//! Whoever executes the binary chooses its environment, its argv and its
//! inherited fds, so the hook trusts none of them with privilege:
//!
//! - **Privilege**: a process running with `AT_SECURE` (setuid, setgid, or
//!   file capabilities, such as a CLI given `cap_sys_admin,cap_net_admin+ep`)
//!   refuses agent mode: it prints why on stderr and exits with a non-zero
//!   code, before reading anything from its control socket. Otherwise an
//!   unprivileged user could start it as an agent and use its privilege
//!   through the protocol. An agent thus only ever runs with its caller's own
//!   credentials, and can do nothing its caller could not do. The other side
//!   of this: an application that itself runs with `AT_SECURE` gets no agent
//!   (`Agent::start` fails at once, saying so); one that needs capabilities
//!   without root gets them as ambient capabilities, which set no
//!   `AT_SECURE`.
//! - **Environment**: the marker must carry this build's protocol version
//!   (else the agent exits at once); the parent-pid variable is a liveness
//!   check, not a credential. The environment passes to no program the agent
//!   runs (their environment is exactly what the request sets).
//! - **argv**: only `argv[1]` is read, compared with one fixed string.
//! - **Inherited fds**: all but stdin are closed (`close_range`, or one by
//!   one where the kernel lacks it); stdin must be the control socket, and
//!   anything else ends the agent at the first read. stdout and stderr become
//!   `/dev/null`.
//! - **Hello**: the namespace fds it sends are entered with the caller's own
//!   rights; the `ip netns exec` name must be a valid namespace name (no
//!   `/`, `.` or `..`), so it cannot reach outside `/etc/netns`.
//!
//! Why a hand-written `.init_array` entry rather than the `ctor` crate: it is
//! the same mechanism in five lines, with no proc macro and no dependency,
//! and the one thing that matters (that the entry is linked into every binary
//! using the crate) is guaranteed by `#[used]`, which rustc keeps for
//! upstream crates through its synthetic symbols object; the crate's tests
//! check it, since each test binary only calls `Agent::start`.
#![allow(unsafe_code)]

use std::ffi::{c_char, c_int};

use crate::{agent, sys};

extern "C" fn nsproxy_agent_init(
    _argc: c_int,
    _argv: *const *const c_char,
    _envp: *const *const c_char,
) {
    // Both the marker and our argument: a program that merely inherited the
    // variable from somewhere runs its `main` as usual.
    if let Some(marker) = sys::getenv(agent::MARKER)
        && is_agent_cmdline()
    {
        if sys::secure_mode() {
            refuse();
        }
        agent::run(&marker);
    }
}

/// Ends a privileged process asked to be an agent: a message on stderr, and
/// [`agent::EXIT_REFUSED`].
fn refuse() -> ! {
    sys::write_stderr(
        b"nsproxy: refusing agent mode: this process runs with AT_SECURE \
          (setuid, setgid or file capabilities)\n",
    );
    sys::exit(agent::EXIT_REFUSED)
}

/// Whether `argv[1]` is the agent argument (read from /proc, which works
/// with every libc: musl passes no arguments to `.init_array` functions).
fn is_agent_cmdline() -> bool {
    std::fs::read("/proc/self/cmdline")
        .is_ok_and(|cmdline| cmdline.split(|b| *b == 0).nth(1) == Some(agent::ARG.as_bytes()))
}

#[used]
// SAFETY: `.init_array` holds `extern "C" fn(argc, argv, envp)` pointers; this
// is one, and it neither unwinds (the agent catches panics) nor depends on
// anything `main` sets up.
#[unsafe(link_section = ".init_array")]
static NSPROXY_AGENT_INIT: extern "C" fn(c_int, *const *const c_char, *const *const c_char) =
    nsproxy_agent_init;
