//! Which names a process's namespace has, and which processes are inside.
//!
//! Both compare namespace identities, the `(st_dev, st_ino)` of nsfs files,
//! exactly as `ip netns identify` and `ip netns pids` do.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use tracing::{Instrument, Span};

use crate::trace::{self, op_span};
use crate::{Error, Executor, NsId, NsName, Result, RunDir, Target};

impl RunDir {
    /// The names in this directory under which `target`'s network namespace
    /// is mounted, sorted (usually none or one), like `ip netns identify PID`
    /// (which prints only one of them when there are several).
    ///
    /// `target` is a pid, an open [`NetNs`](crate::NetNs), a path or a name
    /// (a [`Target`]: a string is a path only if it starts with `/`).
    ///
    /// Compares the namespace's `(st_dev, st_ino)` with each entry's; stale
    /// entries never match. A missing directory has no names. Reads only the
    /// run directory (one `stat` per entry), so it is not async.
    ///
    /// # Errors
    ///
    /// [`Error::NoSuchProcess`] for a pid with no process, [`Error::Open`] if
    /// its namespace cannot be read, [`Error::Io`] if the directory cannot be
    /// read; for a name or path, the errors of opening it
    /// ([`Error::InvalidName`], [`Error::NotFound`], ...).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// let dir = nsfs::RunDir::default();
    /// let mine = dir.identify(std::process::id() as i32)?;
    /// let blue = dir.open(&"blue".parse()?)?;
    /// assert!(dir.identify(&blue)?.iter().any(|n| n.as_str() == "blue"));
    /// # Ok::<(), nsfs::Error>(())
    /// ```
    #[doc(alias = "ip netns identify")]
    pub fn identify(&self, target: impl Into<Target>) -> Result<Vec<NsName>> {
        let id = match target.into() {
            Target::Pid(pid) => pid_ns_id(pid)?,
            Target::NetNs(ns) => ns.id(),
            other => other.open_existing(self)?.id(),
        };
        let read = match fs::read_dir(self.path()) {
            Ok(read) => read,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(Error::Io {
                    op: "read directory",
                    path: self.path().into(),
                    source,
                });
            }
        };
        let mut names = Vec::new();
        for dirent in read {
            let dirent = dirent.map_err(|source| Error::Io {
                op: "read directory",
                path: self.path().into(),
                source,
            })?;
            let Ok(name) = NsName::from_os_str(&dirent.file_name()) else {
                continue;
            };
            // `stat` follows the mount: a namespace entry shows the nsfs inode.
            match fs::metadata(dirent.path()) {
                Ok(md)
                    if (NsId {
                        dev: md.dev(),
                        ino: md.ino(),
                    }) == id =>
                {
                    names.push(name)
                }
                _ => {}
            }
        }
        names.sort();
        Ok(names)
    }

    /// The pids of the processes whose network namespace is the one named
    /// `name`, sorted, like `ip netns pids NAME`.
    ///
    /// Scans `/proc/[0-9]*/ns/net` on a namespace thread (never on a runtime
    /// thread). Process level, as iproute2: a single thread switched into the
    /// namespace (such as a namespace thread of this crate) is not counted.
    /// Processes that exit during the scan, or whose namespace cannot be read,
    /// are skipped.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the scan only reads; if the future is dropped, its result
    /// is discarded.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] if there is no such entry, [`Error::Stale`] if no
    /// namespace is mounted on it, [`Error::Io`] if `/proc` cannot be read.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo() -> nsfs::Result<()> {
    /// for pid in nsfs::RunDir::default().pids(&"blue".parse()?).await? {
    ///     println!("{pid}");
    /// }
    /// # Ok(()) }
    /// ```
    #[doc(alias = "ip netns pids")]
    pub async fn pids(&self, name: &NsName) -> Result<Vec<i32>> {
        let span = op_span!("pids", name);
        let result = async {
            let id = self.open(name)?.id();
            Span::current().record("inode", id.ino);
            Executor::global()?
                .toolkit()
                .run_home_untraced(move || pids_in(id))
                .await?
        }
        .instrument(span.clone())
        .await;
        trace::finish(&span, &result, |_| None);
        result
    }
}

/// The namespace identity of process `pid`, without keeping an fd.
fn pid_ns_id(pid: i32) -> Result<NsId> {
    if pid <= 0 {
        return Err(Error::NoSuchProcess { pid });
    }
    let path = format!("/proc/{pid}/ns/net");
    match fs::metadata(&path) {
        Ok(md) => Ok(NsId {
            dev: md.dev(),
            ino: md.ino(),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ESRCH) => {
            Err(Error::NoSuchProcess { pid })
        }
        Err(source) => Err(Error::Open {
            path: path.into(),
            source,
        }),
    }
}

/// Every process whose `/proc/PID/ns/net` is `id`.
fn pids_in(id: NsId) -> Result<Vec<i32>> {
    let proc = Path::new("/proc");
    let fail = |source| Error::Io {
        op: "read directory",
        path: proc.into(),
        source,
    };
    let mut pids = Vec::new();
    for dirent in fs::read_dir(proc).map_err(fail)? {
        let dirent = dirent.map_err(fail)?;
        let Some(pid) = dirent
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(md) = fs::metadata(dirent.path().join("ns/net")) else {
            continue;
        };
        if (NsId {
            dev: md.dev(),
            ino: md.ino(),
        }) == id
        {
            pids.push(pid);
        }
    }
    pids.sort_unstable();
    Ok(pids)
}
