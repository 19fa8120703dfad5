//! Async NSPopen: run programs inside a Linux network namespace, with tokio
//! stdio over real fds, exit status, signals, and `ip netns exec` parity.
//!
//! - [`Command`]: a builder in the spirit of [`tokio::process::Command`],
//!   plus [`netns`](Command::netns) (a [`Target`]: a name, path, pid or
//!   [`nsfs::NetNs`]) and
//!   [`exec_mode`](Command::exec_mode).
//! - [`Child`]: the started process, with its stdio pipes as tokio pipe ends
//!   ([`ChildStdin`], [`ChildStdout`], [`ChildStderr`]), `wait`, `try_wait`,
//!   `kill`, `signal`, `wait_with_output`.
//! - [`spawn`]: the one-line `NSPopen(ns, argv)`.
//! - [`ExecAgent`]: a reusable `ip netns exec` context;
//!   [`close_cached_agents`] closes the agents the exec path keeps for reuse.
//!
//! Two launch paths sit behind one API:
//!
//! - [`ExecMode::Fast`], the default: `posix_spawn` from a namespace thread
//!   (`clone3(CLONE_VM|CLONE_VFORK)`, never a fork of the application); only
//!   the network namespace changes. As cheap as `tokio::process::Command`
//!   in the root namespace, whatever the application's size.
//! - [`ExecMode::IpNetnsExec`]: through the nsproxy agent, the program gets a
//!   private mount namespace, `/sys` remounted for the namespace and
//!   `/etc/netns/NAME/*` bind-mounted over `/etc`, like `ip netns exec`.
//!   The agent of a namespace is kept for a second after a spawn and reused.
//!
//! Unlike pyroute2's `NSPopen`, the stdio fds are real fds of the caller, a
//! missing binary fails at once with a typed error instead of hanging, and no
//! zombie is left behind. See `docs/nsproc.md`.
//!
//! # Children and the application's death
//!
//! [`Command::kill_on_drop`] and [`ExecAgent::close`] act when the
//! application drops a [`Child`] or closes an agent. An application killed
//! with `SIGKILL` runs no destructor: its children run on, orphaned. On the
//! fast path the kernel offers no tie: the child is spawned from a namespace
//! thread, and `PR_SET_PDEATHSIG` fires when the spawning *thread* exits, not
//! the process (and setting it would need `pre_exec`, which forks the whole
//! application). On the exec path the children are the agent's, which ends
//! with the application; what happens to its children then is nsproxy's rule.
//!
//! Where children must not outlive the application, give a supervisor the
//! means to end them: [`Command::process_group`]`(0)` puts the child (and its
//! own children) in a new process group whose id is the child's pid, for a
//! `killpg`; [`Child::pidfd`] is a pidfd on the child to hand over
//! (`SCM_RIGHTS`); or run the application in its own cgroup (systemd's
//! `KillMode=control-group`), which the kernel ends as a whole.
//!
//! # Tracing
//!
//! Every public async operation runs in a DEBUG span named after it
//! (`spawn`, `output`, `status`, `wait`, `kill`, `wait_with_output`,
//! `exec_agent_start`, `exec_agent_close`), with the fields `netns` (the
//! namespace as given), `inode` (its inode, once opened), `outcome` (`"ok"`
//! or `"error"`) and `error` (the error's message), plus `program` or `pid`.
//!
//! # Examples
//!
//! ```no_run
//! # async fn demo() -> nsproc::Result<()> {
//! use nsproc::{Command, Stdio};
//!
//! let out = Command::new("ip").arg("addr").netns("blue").output().await?;
//! print!("{}", String::from_utf8_lossy(&out.stdout));
//!
//! let mut child = nsproc::spawn("blue", ["sleep", "60"]).await?;
//! child.kill().await?;
//! # Ok(()) }
//! ```

mod cache;
mod child;
mod command;
mod error;
mod exec;
mod fast;
mod namespace;
mod stdio;
mod sys;
mod trace;

pub use child::{Child, ChildStderr, ChildStdin, ChildStdout};
pub use command::{Command, ExecMode};
pub use error::{Error, Result};
pub use exec::ExecAgent;
pub use nsfs::Target;
pub use stdio::Stdio;

use std::ffi::OsStr;

/// Starts `argv` inside `ns`, with inherited stdio, on the fast path: the
/// `NSPopen(ns, argv)` of pyroute2.
///
/// `argv[0]` is the program. For pipes, environment and the other options,
/// use [`Command`].
///
/// # Cancel safety
///
/// As [`Command::spawn`].
///
/// # Errors
///
/// As [`Command::spawn`]; an empty `argv` is [`Error::Spawn`] with kind
/// `InvalidInput`.
///
/// # Panics
///
/// Outside a tokio runtime.
///
/// # Examples
///
/// ```no_run
/// # async fn demo() -> nsproc::Result<()> {
/// let status = nsproc::spawn("blue", ["ping", "-c1", "10.0.0.1"]).await?.wait().await?;
/// # Ok(()) }
/// ```
pub async fn spawn<I, S>(ns: impl Into<Target>, argv: I) -> Result<Child>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let ns = ns.into();
    let mut argv = argv.into_iter();
    let Some(program) = argv.next() else {
        return Err(Error::Spawn {
            program: Default::default(),
            ns: ns.to_string(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "empty argv"),
        });
    };
    Command::new(program).args(argv).netns(ns).spawn().await
}

/// Closes the agents the `ip netns exec` path keeps for reuse, now, and
/// returns how many there were.
///
/// [`ExecMode::IpNetnsExec`] keeps the agent of a namespace for about a second
/// after a spawn, so that the next spawn there costs a spawn rather than an
/// agent start; an idle agent keeps its namespace alive meanwhile. Call this
/// before removing a namespace if it must be freed at once. Children still
/// running keep their agent until they are dropped; [`ExecAgent`]s held by
/// the caller are not affected.
///
/// # Examples
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// nsproc::Command::new("true").netns("blue").exec_mode(nsproc::ExecMode::IpNetnsExec).status().await?;
/// nsproc::close_cached_agents();
/// nsfs::RunDir::default().remove(&"blue".parse()?).await?;
/// # Ok(()) }
/// ```
pub fn close_cached_agents() -> usize {
    cache::close_all()
}
