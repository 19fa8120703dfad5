//! A process started in a namespace.

use std::ffi::OsString;
use std::io;
use std::os::fd::OwnedFd;
use std::process::{ExitStatus, Output};

use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;

use crate::trace::{self, op_span};
use crate::{Error, Result, sys};

/// The write end of a child's stdin pipe: a real, non-blocking pipe fd owned
/// by the caller ([`AsyncWrite`](tokio::io::AsyncWrite), `AsFd`,
/// [`into_blocking_fd`](pipe::Sender::into_blocking_fd)).
///
/// # Examples
///
/// ```no_run
/// # async fn demo(mut child: nsproc::Child) -> std::io::Result<()> {
/// use tokio::io::AsyncWriteExt;
/// let mut stdin: nsproc::ChildStdin = child.stdin.take().unwrap();
/// stdin.write_all(b"input").await?;
/// # Ok(()) }
/// ```
pub type ChildStdin = pipe::Sender;

/// The read end of a child's stdout pipe: a real, non-blocking pipe fd owned
/// by the caller ([`AsyncRead`](tokio::io::AsyncRead), `AsFd`).
///
/// # Examples
///
/// ```no_run
/// # async fn demo(mut child: nsproc::Child) -> std::io::Result<()> {
/// use std::os::fd::AsFd;
/// let stdout: nsproc::ChildStdout = child.stdout.take().unwrap();
/// // A real fd of this process.
/// let flags = nix::fcntl::fcntl(stdout.as_fd(), nix::fcntl::FcntlArg::F_GETFL)?;
/// # Ok(()) }
/// ```
pub type ChildStdout = pipe::Receiver;

/// The read end of a child's stderr pipe (see [`ChildStdout`]).
///
/// # Examples
///
/// ```no_run
/// # async fn demo(mut child: nsproc::Child) -> std::io::Result<()> {
/// use tokio::io::AsyncReadExt;
/// let mut errors = String::new();
/// child.stderr.take().unwrap().read_to_string(&mut errors).await?;
/// # Ok(()) }
/// ```
pub type ChildStderr = pipe::Receiver;

/// A process started by [`Command::spawn`](crate::Command::spawn), in the
/// spirit of [`tokio::process::Child`].
///
/// The `stdin`, `stdout` and `stderr` fields hold the caller's ends of the
/// pipes asked for with [`Stdio::piped`](crate::Stdio::piped): real fds in
/// this process, whichever launch path started the child. Take them out
/// (`child.stdout.take()`) to use them while waiting.
///
/// # Drop
///
/// Dropping a `Child` closes the pipe ends it still holds. If the command set
/// [`kill_on_drop`](crate::Command::kill_on_drop), the process is killed with
/// `SIGKILL`; either way it is reaped when it exits (by tokio's orphan reaping
/// on the fast path; on the exec path by the agent, or by init if the agent
/// has closed meanwhile), so no zombie is left.
///
/// # Examples
///
/// ```no_run
/// # async fn demo() -> nsproc::Result<()> {
/// use tokio::io::AsyncWriteExt;
///
/// let mut child = nsproc::Command::new("cat")
///     .netns("blue")
///     .stdin(nsproc::Stdio::piped())
///     .stdout(nsproc::Stdio::piped())
///     .spawn()
///     .await?;
/// let mut stdin = child.stdin.take().unwrap();
/// stdin.write_all(b"hello").await.unwrap();
/// drop(stdin);
/// let out = child.wait_with_output().await?;
/// assert_eq!(out.stdout, b"hello");
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Child {
    /// The caller's end of the child's stdin, if piped.
    pub stdin: Option<ChildStdin>,
    /// The caller's end of the child's stdout, if piped.
    pub stdout: Option<ChildStdout>,
    /// The caller's end of the child's stderr, if piped.
    pub stderr: Option<ChildStderr>,
    program: OsString,
    launched: Launched,
    /// The namespace as given, for tracing.
    pub(crate) netns: String,
}

/// How the child was launched, and what waits for it.
#[derive(Debug)]
pub(crate) enum Launched {
    /// A child of this process, owned by tokio.
    Fast(tokio::process::Child),
    /// A child of the agent.
    Agent(crate::exec::AgentChild),
}

impl Child {
    pub(crate) fn new(
        program: OsString,
        launched: Launched,
        stdin: Option<ChildStdin>,
        stdout: Option<ChildStdout>,
        stderr: Option<ChildStderr>,
    ) -> Child {
        Child {
            stdin,
            stdout,
            stderr,
            program,
            launched,
            netns: String::new(),
        }
    }

    /// The process id, or `None` once the child has been waited for.
    ///
    /// The pid is a real pid of this pid namespace (the child shares it).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo() -> nsproc::Result<()> {
    /// let child = nsproc::Command::new("sleep").arg("1").netns("blue").spawn().await?;
    /// println!("pid {:?}", child.id());
    /// # Ok(()) }
    /// ```
    pub fn id(&self) -> Option<u32> {
        match &self.launched {
            Launched::Fast(child) => child.id(),
            Launched::Agent(child) => child.id(),
        }
    }

    /// A new pidfd for the child, owned by the caller: poll it for the
    /// child's exit, signal it with `pidfd_send_signal`, or hand it to a
    /// supervisor process (over `SCM_RIGHTS`), which can then end the child
    /// even after this process is gone (see "Children and the application's
    /// death" in the crate docs). Unlike a pid, a pidfd never names a
    /// recycled process.
    ///
    /// Race-free: the child is not reaped before [`wait`](Child::wait) or
    /// [`try_wait`](Child::try_wait) see its exit, so its pid is still its
    /// own when the pidfd is opened. Reading the exit status is still done
    /// here (through `wait`), not through the returned pidfd.
    ///
    /// # Errors
    ///
    /// [`Error::Pidfd`]: [`raw_os_error`](Error::raw_os_error) `ESRCH` once
    /// the child has been waited for; `EMFILE` and such.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo() -> nsproc::Result<()> {
    /// use std::os::fd::AsRawFd;
    ///
    /// let child = nsproc::Command::new("sleep").arg("60").netns("blue").spawn().await?;
    /// let pidfd = child.pidfd()?;
    /// println!("pidfd {} for pid {:?}", pidfd.as_raw_fd(), child.id());
    /// # Ok(()) }
    /// ```
    ///
    /// # References
    ///
    /// `pidfd_open(2)`, `pidfd_send_signal(2)`.
    #[doc(alias = "pidfd_open")]
    pub fn pidfd(&self) -> Result<OwnedFd> {
        let pid = self.id();
        let opened = match (&self.launched, pid) {
            (_, None) => Err(io::Error::from_raw_os_error(libc::ESRCH)),
            (Launched::Fast(_), Some(pid)) => sys::pidfd_open(pid),
            (Launched::Agent(child), Some(_)) => child.pidfd(),
        };
        opened.map_err(|source| Error::Pidfd {
            pid: pid.unwrap_or(0),
            source,
        })
    }

    /// Waits for the child to exit and returns its status: an exit code
    /// ([`ExitStatus::code`]) or the signal that killed it
    /// ([`ExitStatusExt::signal`](std::os::unix::process::ExitStatusExt::signal)).
    ///
    /// The child's stdin, if still held here, is closed first, so a child
    /// reading it is not left waiting for input. Once the child has been
    /// waited for, later calls return the same status.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: if the future is dropped before the child exits, nothing
    /// is lost, and waiting again works.
    ///
    /// # Errors
    ///
    /// [`Error::Wait`] if waiting fails (on the exec path: the agent died).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo() -> nsproc::Result<()> {
    /// let mut child = nsproc::Command::new("sh").args(["-c", "exit 3"]).netns("blue").spawn().await?;
    /// assert_eq!(child.wait().await?.code(), Some(3));
    /// # Ok(()) }
    /// ```
    pub async fn wait(&mut self) -> Result<ExitStatus> {
        let span = op_span!("wait", self.netns, pid = ?self.id());
        trace::traced(span, self.wait_inner()).await
    }

    async fn wait_inner(&mut self) -> Result<ExitStatus> {
        self.stdin.take();
        let pid = self.id().unwrap_or(0);
        let waited = match &mut self.launched {
            Launched::Fast(child) => child.wait().await,
            Launched::Agent(child) => child.wait().await,
        };
        waited.map_err(|source| Error::Wait { pid, source })
    }

    /// The child's status if it has exited, `None` if it is still running.
    /// Does not block.
    ///
    /// # Errors
    ///
    /// [`Error::Wait`] if checking fails.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo() -> nsproc::Result<()> {
    /// let mut child = nsproc::Command::new("sleep").arg("5").netns("blue").spawn().await?;
    /// assert!(child.try_wait()?.is_none());
    /// child.kill().await?;
    /// # Ok(()) }
    /// ```
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>> {
        let pid = self.id().unwrap_or(0);
        let polled = match &mut self.launched {
            Launched::Fast(child) => child.try_wait(),
            Launched::Agent(child) => child.try_wait(),
        };
        polled.map_err(|source| Error::Wait { pid, source })
    }

    /// Sends signal `signal` (any number: `libc::SIGTERM`, `libc::SIGRTMIN()`,
    /// ...) to the child.
    ///
    /// The signal goes to the child itself, never to a recycled pid: on the
    /// fast path the pid is ours until we reap it, on the exec path the
    /// signal goes through a pidfd.
    ///
    /// # Errors
    ///
    /// [`Error::Signal`]: [`raw_os_error`](Error::raw_os_error) `ESRCH` if
    /// the child has already been waited for, kind `InvalidInput` for a bad
    /// signal number.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo() -> nsproc::Result<()> {
    /// use std::os::unix::process::ExitStatusExt;
    ///
    /// let mut child = nsproc::Command::new("sleep").arg("60").netns("blue").spawn().await?;
    /// child.signal(libc::SIGTERM)?;
    /// assert_eq!(child.wait().await?.signal(), Some(libc::SIGTERM));
    /// # Ok(()) }
    /// ```
    #[doc(alias = "kill")]
    #[doc(alias = "send_signal")]
    pub fn signal(&mut self, signal: i32) -> Result<()> {
        let pid = self.id();
        let sent = match &mut self.launched {
            Launched::Fast(_) => match pid {
                Some(pid) => sys::kill(pid, signal),
                None => Err(io::Error::from_raw_os_error(libc::ESRCH)),
            },
            Launched::Agent(child) => child.signal(signal),
        };
        sent.map_err(|source| Error::Signal {
            pid: pid.unwrap_or(0),
            signal,
            source,
        })
    }

    /// Sends `SIGKILL` without waiting. Does nothing if the child has already
    /// been waited for.
    ///
    /// # Errors
    ///
    /// [`Error::Signal`] if the signal cannot be sent.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo() -> nsproc::Result<()> {
    /// let mut child = nsproc::Command::new("sleep").arg("60").netns("blue").spawn().await?;
    /// child.start_kill()?;
    /// child.wait().await?;
    /// # Ok(()) }
    /// ```
    pub fn start_kill(&mut self) -> Result<()> {
        match self.signal(libc::SIGKILL) {
            Err(Error::Signal { source, .. }) if source.raw_os_error() == Some(libc::ESRCH) => {
                Ok(())
            }
            other => other,
        }
    }

    /// Kills the child (`SIGKILL`) and waits for it. Does nothing more if it
    /// has already exited.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: if dropped, the signal has been sent; waiting again
    /// reaps the child.
    ///
    /// # Errors
    ///
    /// [`Error::Signal`] or [`Error::Wait`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo() -> nsproc::Result<()> {
    /// let mut child = nsproc::Command::new("sleep").arg("60").netns("blue").spawn().await?;
    /// child.kill().await?;
    /// # Ok(()) }
    /// ```
    pub async fn kill(&mut self) -> Result<()> {
        let span = op_span!("kill", self.netns, pid = ?self.id());
        let kill = async {
            self.start_kill()?;
            self.wait().await?;
            Ok(())
        };
        trace::traced(span, kill).await
    }

    /// Reads the child's stdout and stderr (those that are piped) to the end,
    /// at the same time, and waits for it to exit.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: if dropped, output read so far is lost and the child
    /// is dropped (see `Drop` above).
    ///
    /// # Errors
    ///
    /// [`Error::Io`] reading the output, [`Error::Wait`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo() -> nsproc::Result<()> {
    /// let child = nsproc::Command::new("ip")
    ///     .arg("addr")
    ///     .netns("blue")
    ///     .stdout(nsproc::Stdio::piped())
    ///     .spawn()
    ///     .await?;
    /// let out = child.wait_with_output().await?;
    /// # Ok(()) }
    /// ```
    pub async fn wait_with_output(self) -> Result<Output> {
        let span = op_span!("wait_with_output", self.netns, pid = ?self.id());
        trace::traced(span, self.wait_with_output_inner()).await
    }

    async fn wait_with_output_inner(mut self) -> Result<Output> {
        async fn read_all(pipe: Option<pipe::Receiver>) -> io::Result<Vec<u8>> {
            let mut buf = Vec::new();
            if let Some(mut pipe) = pipe {
                pipe.read_to_end(&mut buf).await?;
            }
            Ok(buf)
        }
        self.stdin.take();
        let (stdout, stderr) =
            tokio::join!(read_all(self.stdout.take()), read_all(self.stderr.take()));
        let io_err = |op| {
            let program = self.program.clone();
            move |source| Error::Io {
                op,
                program,
                source,
            }
        };
        let stdout = stdout.map_err(io_err("read stdout"))?;
        let stderr = stderr.map_err(io_err("read stderr"))?;
        let status = self.wait().await?;
        Ok(Output {
            status,
            stdout,
            stderr,
        })
    }
}
