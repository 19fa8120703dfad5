//! `netns-bridge`: the CNI bridge plugin of the netns toolkit.
//!
//! One process per call, as the CNI spec has it: a current-thread tokio
//! runtime (no worker pool to start for a process that lives a few
//! milliseconds), the configuration read from stdin, the answer written to
//! stdout, exit status 0 or 1.
//!
//! The binary has its own C `main` (`#![no_main]`): std's start-up
//! (`lang_start`) would read `/proc/self/maps` to find the main thread's
//! stack for its overflow guard, install an alternate signal stack and
//! check fds 0-2, on every call; the plugin needs none of it. What it does
//! need from there, SIGPIPE ignored (a delegated IPAM plugin may close its
//! stdin early), it does itself.

// The layout of `execute`'s future (host and container sides joined, each
// a chain of netlink requests) nests deeper than rustc's default query
// depth in release builds.
#![recursion_limit = "256"]
#![no_main]

use std::io::{Read, Write};

/// The process's entry point, called by the C runtime.
#[allow(unsafe_code)]
// SAFETY: `main` is the C entry point this binary is linked for
// (`#![no_main]`); no other symbol of the program is named `main`.
#[unsafe(no_mangle)]
extern "C" fn main(_argc: libc::c_int, _argv: *const *const libc::c_char) -> libc::c_int {
    ignore_sigpipe();
    // A panic's message went to stderr; std's own `main` exits 101 then.
    std::panic::catch_unwind(run).unwrap_or(101)
}

/// SIGPIPE ignored, as std's start-up does: a write to a closed pipe is an
/// `EPIPE` error, not the end of the process.
#[allow(unsafe_code)]
fn ignore_sigpipe() {
    // SAFETY: SIG_IGN is a valid disposition for SIGPIPE, set before any
    // other thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
}

fn run() -> libc::c_int {
    let mut stdin = Vec::new();
    let reply = match std::io::stdin().read_to_end(&mut stdin) {
        Ok(_) => {
            let inv = cni_bridge::Invocation::from_env(stdin);
            let mut rt = tokio::runtime::Builder::new_current_thread();
            // VERSION only parses stdin: no IO, signal or time driver (an
            // epoll, an eventfd and a socketpair) to set up and tear down.
            if std::env::var_os("CNI_COMMAND").is_none_or(|c| c != "VERSION") {
                rt.enable_all();
            }
            match rt.build() {
                Ok(rt) => {
                    let reply = rt.block_on(cni_bridge::execute(&inv));
                    // Not dropped: the process exits right after the reply,
                    // and the exit closes what the runtime holds; its
                    // shutdown would first wake and wait for every thread
                    // of its blocking pool (a delegated plugin's pipes).
                    std::mem::forget(rt);
                    reply
                }
                Err(source) => error_reply(cni_bridge::Error::Runtime { source }),
            }
        }
        Err(source) => error_reply(cni_bridge::Error::ReadStdin { source }),
    };
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(&reply.stdout);
    let _ = out.flush();
    if reply.success { 0 } else { 1 }
}

fn error_reply(e: cni_bridge::Error) -> cni_bridge::Reply {
    let body = serde_json::json!({"code": e.code(), "msg": e.to_string()});
    cni_bridge::Reply {
        stdout: format!("{body}\n").into_bytes(),
        success: false,
    }
}
