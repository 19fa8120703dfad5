//! Dying of the signal that killed the command, as `ip netns exec` (which
//! becomes the command) would.
#![allow(unsafe_code)]

use std::io::{self, Write};

use nix::sys::signal::{SigHandler, SigSet, Signal, raise, signal};

/// Ends this process with `sig`, as the command ended: the shell then reports
/// what it reports for ip. Core files are not written (the command already
/// wrote its own if it was going to). Returns 128 + `sig` (the shell's
/// convention) only if the signal could not be raised.
pub(crate) fn die_of(sig: i32) -> u8 {
    let _ = io::stdout().flush();
    let _ = io::stderr().flush();
    if let Ok(s) = Signal::try_from(sig) {
        let no_core = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: setrlimit reads the struct we pass and changes only this
        // process's core-size limit; the process is about to end.
        unsafe { libc::setrlimit(libc::RLIMIT_CORE, &no_core) };
        // SAFETY: installing SIG_DFL runs no code of ours in signal context;
        // the handler it replaces (tokio's, for SIGTERM/SIGHUP/SIGINT/SIGQUIT)
        // is no longer needed: the command has ended and we are exiting.
        // (SIGKILL and SIGSTOP cannot be changed, and need not be.)
        let _ = unsafe { signal(s, SigHandler::SigDfl) };
        let mut set = SigSet::empty();
        set.add(s);
        let _ = set.thread_unblock();
        let _ = raise(s);
    }
    128u8.wrapping_add(sig as u8)
}
