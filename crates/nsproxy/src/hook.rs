//! The early-init hook: what turns a re-executed binary into the agent.
//!
//! A function pointer in `.init_array` is called by the dynamic loader (or
//! the static start code) before `main`, in every binary that links this
//! crate. It costs one `getenv` in a normal start. When the marker variable
//! is set and `argv[1]` is `--nsproxy-agent`, the process is an agent: it
//! runs the agent loop and `_exit`s, so the application's `main` is never
//! reached.
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
        agent::run(&marker);
    }
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
