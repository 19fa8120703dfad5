//! What a handle (or a link move) is about: a [`Target`], nsfs's one
//! "which namespace" type, resolved in the handle's run directory.

use nsfs::{NetNs, NsName, OpenMode, RunDir};

pub use nsfs::Target;

use crate::Result;

/// A handle names the namespace it holds open: `Handle::open(&other, ..)`,
/// `move_link(.., &other)`, `nsproc::Command::netns(&handle)`.
///
/// # Examples
///
/// ```no_run
/// # async fn demo(h: netns::Handle) -> Result<(), Box<dyn std::error::Error>> {
/// let again = netns::Handle::open(&h, netns::OpenMode::OpenOnly).await?;
/// let status = netns::nsproc::Command::new("true").netns(&h).status().await?;
/// # Ok(()) }
/// ```
impl From<&crate::Handle> for Target {
    fn from(h: &crate::Handle) -> Target {
        Target::NetNs(h.netns().clone())
    }
}

/// A resolved target: the open namespace, and its name if it has one.
#[derive(Debug)]
pub(crate) struct Resolved {
    pub(crate) netns: NetNs,
    pub(crate) name: Option<NsName>,
}

/// Opens (or creates, for names and paths) the namespace `target` names,
/// following `mode`: [`Target::open`], plus the name it has in `dir`.
pub(crate) async fn resolve(target: &Target, dir: &RunDir, mode: OpenMode) -> Result<Resolved> {
    // Rootless: a name is made by the agent of a user namespace (no mount).
    if crate::rootless()
        && let Some(name) = target.name()?
    {
        let netns = crate::rootless::open_name(dir, &name, mode).await?;
        return Ok(Resolved {
            netns,
            name: Some(name),
        });
    }
    let netns = target.open(dir, mode).await?;
    Ok(Resolved {
        netns,
        name: target.name_in(dir),
    })
}
