//! The raw syscalls this crate makes.
#![allow(unsafe_code)]

use std::io;

/// `kill(pid, sig)`, for any signal number (including real-time ones).
pub(crate) fn kill(pid: u32, sig: i32) -> io::Result<()> {
    let pid = i32::try_from(pid).map_err(|_| io::Error::from_raw_os_error(libc::ESRCH))?;
    // SAFETY: kill(2) takes plain integers and touches no memory of ours.
    let ret = unsafe { libc::kill(pid, sig) };
    if ret == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
