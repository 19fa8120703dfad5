//! Programs run inside the handle's namespace (nsproc's async NSPopen).

use std::ffi::OsStr;

use crate::{Handle, Result};

impl Handle {
    /// A [`nsproc::Command`] that runs `program` inside this handle's
    /// namespace (the handle's open [`NetNs`](crate::NetNs), so it works even
    /// if the name was removed), with the handle's run directory for the
    /// `ip netns exec` path's `/etc/netns/NAME` binds.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(h: netns::Handle) -> netns::Result<()> {
    /// let out = h.command("ip").args(["-o", "link"]).output().await?;
    /// print!("{}", String::from_utf8_lossy(&out.stdout));
    /// # Ok(()) }
    /// ```
    pub fn command(&self, program: impl AsRef<OsStr>) -> nsproc::Command {
        let mut cmd = nsproc::Command::new(program);
        cmd.netns(self.netns().clone())
            .run_dir(self.run_dir().clone());
        cmd
    }

    /// Starts `argv` inside this handle's namespace with inherited stdio:
    /// pyroute2's `NSPopen(ns, argv)`. For pipes and options use
    /// [`command`](Handle::command).
    ///
    /// # Cancel safety
    ///
    /// As [`nsproc::Command::spawn`].
    ///
    /// # Errors
    ///
    /// [`Error::Spawn`](crate::Error::Spawn), holding the
    /// [`nsproc::Error`] of [`nsproc::Command::spawn`]; an empty `argv` is
    /// [`nsproc::Error::Spawn`] with kind `InvalidInput`.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(h: netns::Handle) -> Result<(), Box<dyn std::error::Error>> {
    /// let mut child = h.spawn(["ping", "-c1", "127.0.0.1"]).await?;
    /// let status = child.wait().await?;
    /// # Ok(()) }
    /// ```
    #[doc(alias = "NSPopen")]
    pub async fn spawn<I, S>(&self, argv: I) -> Result<nsproc::Child>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut argv = argv.into_iter();
        let spawned = match argv.next() {
            Some(program) => self.command(program).args(argv).spawn().await,
            // nsproc reports the empty argv.
            None => nsproc::spawn(self.netns().clone(), std::iter::empty::<&OsStr>()).await,
        };
        Ok(spawned?)
    }
}
