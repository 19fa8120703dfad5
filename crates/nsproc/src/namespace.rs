//! Where a command runs: a [`Target`] (name, path, pid or open namespace),
//! opened for one spawn.

use nsfs::{NetNs, NsName, OpenMode, RunDir, Target};

use crate::{Error, Result};

/// A namespace opened for one spawn.
#[derive(Debug)]
pub(crate) struct Resolved {
    pub(crate) netns: NetNs,
    /// How the namespace was given, for messages.
    pub(crate) described: String,
}

/// Opens `target` (names are looked up in `dir`; nothing is created).
pub(crate) async fn open(target: &Target, dir: &RunDir) -> Result<Resolved> {
    let described = target.to_string();
    match target.open(dir, OpenMode::OpenOnly).await {
        Ok(netns) => {
            crate::trace::record_inode(netns.id().ino);
            Ok(Resolved { netns, described })
        }
        Err(source) => Err(Error::Namespace {
            ns: described,
            source,
        }),
    }
}

/// The name the namespace has in `dir`, for the `/etc/netns/NAME` binds of
/// the `ip netns exec` path: the name itself; for a path or handle, the names
/// `dir` has for the same namespace ([`RunDir::identify`], like
/// `ip netns identify`), preferring the entry it was opened from.
pub(crate) fn name_in(target: &Target, dir: &RunDir, resolved: &NetNs) -> Option<NsName> {
    let opened_from = match target {
        Target::Name(_) => return target.name_in(dir),
        Target::Path(path) => Some(path.as_path()),
        Target::NetNs(ns) => ns.path(),
        _ => None,
    };
    let names = dir.identify(resolved).ok()?;
    opened_from
        .and_then(|path| names.iter().find(|n| dir.entry(n) == path))
        .or(names.first())
        .cloned()
}
