//! What an unprivileged caller needs from this crate: whether it is
//! privileged at all, whether the system lets it have user namespaces, its
//! own run directory, and user-namespace fds.

use std::fs;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::{Error, NetNs, Result, RunDir};

/// The directory name under `$XDG_RUNTIME_DIR` (or the `/tmp` fallback
/// prefix) where an unprivileged user's network namespaces are named.
const TOOLKIT_DIR: &str = "netns-toolkit";

/// `CAP_SYS_ADMIN`'s bit in `CapEff`.
const CAP_SYS_ADMIN: u32 = 21;

/// Whether this process may manage network namespaces the root way:
/// `CAP_SYS_ADMIN` in its own user namespace (root on the host, or root of
/// a container), so that its threads can `setns` into the namespaces of
/// that user namespace and it can mount names in `/run/netns`. A process
/// for which this is false works in *rootless* mode: in namespaces owned by
/// a user namespace it made, through a user-namespace agent (see
/// `docs/rootless.md`).
///
/// Read once per process with one `capget(2)` (the effective set that
/// `CapEff` in `/proc/self/status` shows, without the eight reads that
/// file took); if that fails, the answer is "privileged" when the effective
/// uid is 0.
///
/// # Examples
///
/// ```
/// if nsfs::privileged() {
///     println!("root mode: /run/netns");
/// } else {
///     println!("rootless mode: {:?}", nsfs::RunDir::user().map(|d| d.path().to_owned()));
/// }
/// ```
pub fn privileged() -> bool {
    *PRIVILEGED.get_or_init(read_privileged)
}

/// The answer of [`privileged`], read once (or set by [`force_rootless`]).
static PRIVILEGED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

/// Makes this process work in rootless mode even if it is privileged:
/// [`privileged`] answers `false` from now on, so the whole toolkit works
/// as for a user without root (network namespaces owned by a user
/// namespace of its own, made and reached through user-namespace agents,
/// names in [`RunDir::user`], `/run/netns` untouched). This is what
/// `nsctl --user` does; a root process uses it to get namespaces that are
/// private to it and hold no names in `/run/netns`.
///
/// The mode is decided once per process, the first time anything asks
/// [`privileged`]: call this first thing in `main`, before any other call
/// into the toolkit.
///
/// Returns whether the process now works in rootless mode: `false` only if
/// [`privileged`] had already answered `true`, which then stays.
///
/// # Examples
///
/// ```
/// if nsfs::force_rootless() {
///     assert!(!nsfs::privileged());
/// }
/// ```
#[must_use]
pub fn force_rootless() -> bool {
    let _ = PRIVILEGED.set(false);
    !privileged()
}

fn read_privileged() -> bool {
    crate::sys::effective_caps().map_or_else(
        |_| nix::unistd::geteuid().is_root(),
        |caps| caps & (1 << CAP_SYS_ADMIN) != 0,
    )
}

/// Checks that this system lets this caller make a user namespace, before
/// anything is made: `user.max_user_namespaces` is not 0, and, for an
/// unprivileged caller, Debian's `kernel.unprivileged_userns_clone` is not
/// 0 and Ubuntu's AppArmor `kernel.apparmor_restrict_unprivileged_userns`
/// is not 1. A setting the kernel does not have counts as allowing.
///
/// # Errors
///
/// [`Error::UserNamespacesDisabled`] naming the setting and the change that
/// allows it (`raw_os_error()` is `ENOSPC` for the limit, `EPERM` for the
/// others: what the kernel would answer).
///
/// # Examples
///
/// ```
/// match nsfs::user_namespaces_allowed() {
///     Ok(()) => println!("rootless mode available"),
///     Err(e) => println!("{e}"),
/// }
/// ```
pub fn user_namespaces_allowed() -> Result<()> {
    let read = |path: &str| -> Option<i64> { fs::read_to_string(path).ok()?.trim().parse().ok() };
    if let Some(0) = read("/proc/sys/user/max_user_namespaces") {
        return Err(Error::UserNamespacesDisabled {
            setting: "user.max_user_namespaces",
            value: 0,
            fix: "raise it, e.g. `sysctl -w user.max_user_namespaces=15000` (as root; \
                  in a user namespace, its root may raise the limit of that namespace)",
        });
    }
    if privileged() {
        return Ok(());
    }
    if let Some(0) = read("/proc/sys/kernel/unprivileged_userns_clone") {
        return Err(Error::UserNamespacesDisabled {
            setting: "kernel.unprivileged_userns_clone",
            value: 0,
            fix: "set it to 1: `sysctl -w kernel.unprivileged_userns_clone=1` (as root)",
        });
    }
    if let Some(v @ 1..) = read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns") {
        return Err(Error::UserNamespacesDisabled {
            setting: "kernel.apparmor_restrict_unprivileged_userns",
            value: v,
            fix: "give this program an AppArmor profile with `userns,` or set the \
                  setting to 0: `sysctl -w kernel.apparmor_restrict_unprivileged_userns=0` \
                  (as root)",
        });
    }
    Ok(())
}

impl RunDir {
    /// The calling user's own run directory, where namespaces are named
    /// without root: `$XDG_RUNTIME_DIR/netns-toolkit/netns` when
    /// `XDG_RUNTIME_DIR` is set and is a directory of this user that no one
    /// else may write, else `/tmp/netns-toolkit-UID/netns` (as rootlesskit
    /// and podman fall back to `/tmp`). Made if missing (mode 0700), and
    /// checked: owned by this user, a real directory (not a symlink), not
    /// open to the group or others, so that no other user can plant or
    /// remove names there. Entries are symlinks to the fd that holds each
    /// namespace (see `docs/rootless.md`); [`RunDir::open`],
    /// [`list`](RunDir::list), [`remove`](RunDir::remove) and
    /// [`monitor`](RunDir::monitor) work on it as on `/run/netns`.
    ///
    /// # Errors
    ///
    /// [`Error::UserRunDir`] saying what is wrong with the directory.
    ///
    /// # Examples
    ///
    /// ```
    /// # if !nsfs::privileged() {
    /// let dir = nsfs::RunDir::user()?;
    /// assert!(dir.path().ends_with("netns"));
    /// # }
    /// # Ok::<(), nsfs::Error>(())
    /// ```
    pub fn user() -> Result<RunDir> {
        let uid = nix::unistd::geteuid().as_raw();
        let base = std::env::var_os("XDG_RUNTIME_DIR")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute() && private_dir(p, uid, false).is_ok())
            .map(|p| p.join(TOOLKIT_DIR))
            .unwrap_or_else(|| std::env::temp_dir().join(format!("{TOOLKIT_DIR}-{uid}")));
        let dir = base.join("netns");
        for p in [&base, &dir] {
            match fs::DirBuilder::new().mode(0o700).create(p) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(source) => {
                    return Err(Error::UserRunDir {
                        path: p.clone(),
                        why: "cannot create it",
                        source,
                    });
                }
            }
            private_dir(p, uid, true)?;
        }
        Ok(RunDir::new(dir))
    }
}

/// Checks that `path` is a directory (not a symlink) owned by `uid` that no
/// one else may write (with `strict`: not even read or enter).
fn private_dir(path: &Path, uid: u32, strict: bool) -> Result<()> {
    let bad = |why, source| Error::UserRunDir {
        path: path.into(),
        why,
        source,
    };
    let md = fs::symlink_metadata(path).map_err(|e| bad("cannot stat it", e))?;
    let denied = || io::Error::from_raw_os_error(libc::EACCES);
    if !md.file_type().is_dir() {
        return Err(bad(
            "not a directory (or a symlink)",
            io::Error::from_raw_os_error(libc::ENOTDIR),
        ));
    }
    if md.uid() != uid {
        return Err(bad("owned by another user", denied()));
    }
    let mask = if strict { 0o077 } else { 0o022 };
    if md.permissions().mode() & mask != 0 {
        return Err(bad("open to other users (mode must be 0700)", denied()));
    }
    Ok(())
}

impl NetNs {
    /// The user namespace that owns this network namespace
    /// (`ioctl(NS_GET_USERNS)`), as an fd on it: what a second process
    /// gives a user-namespace agent to work in the namespaces another
    /// process of the same user made.
    ///
    /// # Errors
    ///
    /// [`Error::Open`] with `EPERM` if that user namespace is outside the
    /// caller's (an ancestor of it).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let ns = nsfs::NetNs::open("/run/netns/blue")?;
    /// let owner = ns.owner_user_ns()?;
    /// # Ok::<(), nsfs::Error>(())
    /// ```
    pub fn owner_user_ns(&self) -> Result<OwnedFd> {
        crate::sys::owner_user_ns(self.as_fd()).map_err(|source| Error::Open {
            path: self.describe(),
            source,
        })
    }

    /// The uid (in the caller's user namespace) of the owner of the user
    /// namespace that owns this network namespace: 0 for namespaces made by
    /// root, the user's uid for those of its own user namespaces.
    ///
    /// # Errors
    ///
    /// [`Error::Open`] if the user namespace cannot be read.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let ns = nsfs::NetNs::from_pid(1)?;
    /// assert_eq!(ns.owner_uid()?, 0);
    /// # Ok::<(), nsfs::Error>(())
    /// ```
    pub fn owner_uid(&self) -> Result<u32> {
        let userns = self.owner_user_ns()?;
        crate::sys::owner_uid(userns.as_fd()).map_err(|source| Error::Open {
            path: self.describe(),
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    /// The one `capget` gives the set `/proc/self/status` shows as `CapEff`.
    #[test]
    fn capget_matches_cap_eff() {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let cap_eff = status
            .lines()
            .find_map(|l| l.strip_prefix("CapEff:"))
            .map(|v| u64::from_str_radix(v.trim(), 16).unwrap())
            .unwrap();
        assert_eq!(crate::sys::effective_caps().unwrap(), cap_eff);
    }
}
