//! `AgentChild`: a program the agent started.

use std::fmt;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::sync::Arc;

use tokio::sync::oneshot;

use super::conn::{ExitRx, Keep};
use crate::{Error, Result, sys};

/// A program the agent started: its pid, pidfd, pipes, and exit status.
///
/// The pidfd is the program's for good (no pid reuse races):
/// [`signal`](AgentChild::signal) signals through it. The agent is the parent and
/// reaps the program; the status comes to [`wait`](AgentChild::wait).
///
/// Dropping an `AgentChild` closes the pipes; if the request set
/// `kill_on_drop` and the program still runs, it is killed (`SIGKILL`).
/// Otherwise it keeps running. It keeps the agent alive until dropped.
///
/// # Examples
///
/// ```no_run
/// # async fn demo(agent: nsproxy::Agent) -> nsproxy::Result<()> {
/// use std::os::unix::process::ExitStatusExt;
/// let mut child = agent.spawn(nsproxy::SpawnRequest::new("/bin/sleep").arg("10")).await?;
/// child.signal(libc::SIGTERM)?;
/// let status = child.wait().await?;
/// assert_eq!(status.signal(), Some(libc::SIGTERM));
/// # Ok(()) }
/// ```
pub struct AgentChild {
    pub(super) pid: i32,
    pub(super) pidfd: OwnedFd,
    pub(super) stdin: Option<OwnedFd>,
    pub(super) stdout: Option<OwnedFd>,
    pub(super) stderr: Option<OwnedFd>,
    pub(super) exit: Option<ExitRx>,
    pub(super) status: Option<ExitStatus>,
    pub(super) kill_on_drop: bool,
    pub(super) agent_pid: i32,
    pub(super) _keep: Arc<Keep>,
}

impl fmt::Debug for AgentChild {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentChild")
            .field("pid", &self.pid)
            .field("status", &self.status)
            .field("agent", &self.agent_pid)
            .finish_non_exhaustive()
    }
}

impl AgentChild {
    /// The program's pid (in the application's pid namespace).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn demo(child: nsproxy::AgentChild) {
    /// println!("pid {}", child.pid());
    /// # }
    /// ```
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// The program's pidfd (poll it for exit, or signal through it).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn demo(child: nsproxy::AgentChild) {
    /// use std::os::fd::AsRawFd;
    /// println!("pidfd {}", child.pidfd().as_raw_fd());
    /// # }
    /// ```
    pub fn pidfd(&self) -> BorrowedFd<'_> {
        self.pidfd.as_fd()
    }

    /// Takes the client end of the stdin pipe, if stdin was
    /// [`AgentStdio::Pipe`](crate::AgentStdio::Pipe).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn demo(mut child: nsproxy::AgentChild) {
    /// let stdin = std::fs::File::from(child.take_stdin().unwrap());
    /// # }
    /// ```
    pub fn take_stdin(&mut self) -> Option<OwnedFd> {
        self.stdin.take()
    }

    /// Takes the client end of the stdout pipe, if stdout was
    /// [`AgentStdio::Pipe`](crate::AgentStdio::Pipe).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn demo(mut child: nsproxy::AgentChild) {
    /// let stdout = std::fs::File::from(child.take_stdout().unwrap());
    /// # }
    /// ```
    pub fn take_stdout(&mut self) -> Option<OwnedFd> {
        self.stdout.take()
    }

    /// Takes the client end of the stderr pipe, if stderr was
    /// [`AgentStdio::Pipe`](crate::AgentStdio::Pipe).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn demo(mut child: nsproxy::AgentChild) {
    /// let stderr = std::fs::File::from(child.take_stderr().unwrap());
    /// # }
    /// ```
    pub fn take_stderr(&mut self) -> Option<OwnedFd> {
        self.stderr.take()
    }

    /// Waits for the program to exit and returns its exit status. Later
    /// calls return the same status.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future loses nothing; call `wait` again.
    ///
    /// # Errors
    ///
    /// [`Error::AgentGone`] if the agent died before reporting the status
    /// (the program was then adopted by init, or killed if `kill_on_drop`).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(mut child: nsproxy::AgentChild) -> nsproxy::Result<()> {
    /// let status = child.wait().await?;
    /// assert!(status.success());
    /// # Ok(()) }
    /// ```
    pub async fn wait(&mut self) -> Result<ExitStatus> {
        if let Some(status) = self.status {
            return Ok(status);
        }
        let Some(rx) = self.exit.as_mut() else {
            return Err(Error::AgentGone {
                pid: self.agent_pid,
            });
        };
        let result = rx.await;
        self.exit = None;
        match result {
            Ok(Ok(raw)) => {
                let status = ExitStatus::from_raw(raw);
                self.status = Some(status);
                Ok(status)
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(Error::AgentGone {
                pid: self.agent_pid,
            }),
        }
    }

    /// The exit status if it has already been reported, without waiting.
    ///
    /// # Errors
    ///
    /// As [`wait`](AgentChild::wait).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn demo(mut child: nsproxy::AgentChild) -> nsproxy::Result<()> {
    /// if let Some(status) = child.try_wait()? { println!("exited: {status}"); }
    /// # Ok(()) }
    /// ```
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>> {
        if let Some(status) = self.status {
            return Ok(Some(status));
        }
        let Some(rx) = self.exit.as_mut() else {
            return Err(Error::AgentGone {
                pid: self.agent_pid,
            });
        };
        match rx.try_recv() {
            Ok(Ok(raw)) => {
                let status = ExitStatus::from_raw(raw);
                self.exit = None;
                self.status = Some(status);
                Ok(Some(status))
            }
            Ok(Err(e)) => {
                self.exit = None;
                Err(e)
            }
            Err(oneshot::error::TryRecvError::Empty) => Ok(None),
            Err(oneshot::error::TryRecvError::Closed) => {
                self.exit = None;
                Err(Error::AgentGone {
                    pid: self.agent_pid,
                })
            }
        }
    }

    /// Sends signal `sig` to the program through its pidfd
    /// (`pidfd_send_signal`): never to another process, even after the pid
    /// was reused.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] with `ESRCH` if the program has already been reaped,
    /// `EINVAL` for a bad signal.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn demo(child: nsproxy::AgentChild) -> nsproxy::Result<()> {
    /// child.signal(libc::SIGTERM)?;
    /// # Ok(()) }
    /// ```
    #[doc(alias = "pidfd_send_signal", alias = "kill")]
    pub fn signal(&self, sig: i32) -> Result<()> {
        sys::pidfd_send_signal(self.pidfd.as_fd(), sig).map_err(|source| Error::Io {
            op: "pidfd_send_signal",
            source,
        })
    }
}

impl Drop for AgentChild {
    fn drop(&mut self) {
        if self.kill_on_drop && self.status.is_none() {
            let _ = sys::pidfd_send_signal(self.pidfd.as_fd(), libc::SIGKILL);
        }
    }
}
