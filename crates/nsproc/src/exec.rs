//! The `ip netns exec` launch path, through an nsproxy agent.
//!
//! The agent is started with `ip netns exec`'s mounts (private mount
//! namespace, `/sys` remounted, `/etc/netns/NAME/*` bound over `/etc`) and
//! spawns the child from there. Our pipe ends stay ours: the child's ends are
//! sent to the agent as fds, so [`Child`]'s stdio is the same on both paths.
//!
//! Agents are cached per (runtime, namespace) and closed after a second
//! without spawns (see `cache.rs`); an [`ExecAgent`] held by the caller is
//! reused by every command given it.

use std::ffi::OsString;
use std::fmt;
use std::io;
use std::process::ExitStatus;

use nsfs::{NetNs, NsName, RunDir};
use nsproxy::{Agent, AgentOptions, AgentStdio, SpawnRequest, proto::Step};

use crate::child::{Child, Launched};
use crate::command::Plan;
use crate::namespace;
use crate::namespace::Resolved;
use crate::stdio::{ChildSide, Stream};
use crate::{Command, Error, Result, Target, cache, trace};

/// A reusable `ip netns exec` context: one nsproxy agent living in a
/// namespace with `ip netns exec`'s mounts, which runs every command given
/// it through [`Command::exec_agent`].
///
/// Without one, each [`ExecMode::IpNetnsExec`](crate::ExecMode::IpNetnsExec)
/// spawn starts its own agent (about 1.5 ms) that ends with its child. Hold an
/// `ExecAgent` to run many programs in the same namespace: a spawn then costs
/// about what a plain spawn costs.
///
/// Clones share the agent. The agent stays alive while this handle, a clone,
/// or a [`Child`] it started lives, and keeps the namespace alive meanwhile
/// (it is a process inside it), even if its name is removed. When the last one
/// is dropped the agent exits (children started with `kill_on_drop` are
/// killed) and is reaped, shortly after, by a task of its runtime;
/// [`ExecAgent::close`] stops it at once and returns when it has been
/// reaped.
///
/// The agent's connection is driven by the runtime it was started on: use it
/// from that runtime.
///
/// # Examples
///
/// ```no_run
/// # async fn demo() -> nsproc::Result<()> {
/// use nsproc::{Command, ExecAgent};
///
/// let agent = ExecAgent::start("blue").await?;
/// for file in ["/etc/resolv.conf", "/etc/hosts"] {
///     let out = Command::new("cat").arg(file).exec_agent(&agent).output().await?;
///     print!("{}", String::from_utf8_lossy(&out.stdout));
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ExecAgent {
    agent: Agent,
    netns: NetNs,
    name: Option<NsName>,
    pub(crate) described: String,
}

impl ExecAgent {
    /// Starts an agent inside `ns` (a name looked up in `/run/netns`, a path,
    /// or a [`NetNs`]) with `ip netns exec`'s mounts.
    ///
    /// The `/etc/netns/NAME` binds need the namespace's name: see
    /// [`ExecAgent::start_in`].
    ///
    /// # Cancel safety
    ///
    /// If dropped, an agent already started is killed and reaped.
    ///
    /// # Errors
    ///
    /// [`Error::Namespace`] if the namespace cannot be opened,
    /// [`Error::Agent`] if the agent cannot be started or set up.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo() -> nsproc::Result<()> {
    /// let agent = nsproc::ExecAgent::start("blue").await?;
    /// println!("agent pid {}", agent.pid());
    /// # Ok(()) }
    /// ```
    pub async fn start(ns: impl Into<Target>) -> Result<ExecAgent> {
        ExecAgent::start_in(ns, &RunDir::default()).await
    }

    /// As [`ExecAgent::start`], looking names up in `dir`.
    ///
    /// The name used for `/etc/netns/NAME` is the namespace's name in `dir`:
    /// the name given, else the entry of `dir` a path or [`NetNs`] was opened
    /// from, else the entry of `dir` holding the same namespace (like
    /// `ip netns identify`). A namespace with no name in `dir` gets `/sys`
    /// remounted but no `/etc` binds.
    ///
    /// # Cancel safety
    ///
    /// As [`ExecAgent::start`].
    ///
    /// # Errors
    ///
    /// As [`ExecAgent::start`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo() -> nsproc::Result<()> {
    /// let docker = nsfs::RunDir::new(nsfs::DOCKER_RUN_DIR);
    /// let agent = nsproc::ExecAgent::start_in("c1", &docker).await?;
    /// # Ok(()) }
    /// ```
    pub async fn start_in(ns: impl Into<Target>, dir: &RunDir) -> Result<ExecAgent> {
        let ns = ns.into();
        let span = trace::op_span!("exec_agent_start", ns);
        let start = async {
            let resolved = namespace::open(&ns, dir).await?;
            ExecAgent::start_resolved(ns.clone(), resolved, dir.clone()).await
        };
        trace::traced(span, start).await
    }

    pub(crate) async fn start_resolved(
        ns: Target,
        resolved: Resolved,
        dir: RunDir,
    ) -> Result<ExecAgent> {
        let name = namespace::name_in(&ns, &dir, &resolved.netns);
        let mut opts = AgentOptions::new().exec_mounts(name.clone());
        if !nsfs::privileged() {
            // Rootless: the agent enters the namespace's own user namespace
            // first (a single-threaded process may; our threads may not).
            let owner = foreign_owner(&resolved.netns).map_err(|source| Error::Namespace {
                ns: resolved.described.clone(),
                source,
            })?;
            if let Some(owner) = owner {
                opts = opts.user_namespace(owner);
            }
        }
        let agent = Agent::start(&resolved.netns, opts)
            .await
            .map_err(|source| Error::Agent {
                program: OsString::new(),
                ns: resolved.described.clone(),
                source,
            })?;
        Ok(ExecAgent {
            agent,
            netns: resolved.netns,
            name,
            described: resolved.described,
        })
    }

    /// The agent's pid.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(agent: nsproc::ExecAgent) {
    /// assert!(agent.pid() > 0);
    /// # }
    /// ```
    pub fn pid(&self) -> i32 {
        self.agent.pid()
    }

    /// The namespace the agent lives in.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(agent: nsproc::ExecAgent) {
    /// println!("{}", agent.netns().id());
    /// # }
    /// ```
    pub fn netns(&self) -> &NetNs {
        &self.netns
    }

    /// The name whose `/etc/netns/NAME` files the agent's children see over
    /// `/etc`; `None` for a namespace without a name (nothing is bound over
    /// `/etc`).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(agent: nsproc::ExecAgent) {
    /// if let Some(name) = agent.name() {
    ///     println!("/etc/netns/{name}");
    /// }
    /// # }
    /// ```
    pub fn name(&self) -> Option<&NsName> {
        self.name.as_ref()
    }

    /// Whether the agent is still running.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(agent: nsproc::ExecAgent) {
    /// if !agent.is_alive() { eprintln!("agent died"); }
    /// # }
    /// ```
    pub fn is_alive(&self) -> bool {
        self.agent.is_alive()
    }

    /// Stops the agent now and waits until it has exited and been reaped:
    /// when this returns, the agent's process is gone (no zombie, no entry
    /// in `/proc`), so a caller about to exit leaves nothing for init to
    /// reap.
    ///
    /// The agent is shared by every clone of this handle and by the
    /// [`Child`]ren it started: closing it closes it for all of them. A child
    /// started with [`kill_on_drop`](Command::kill_on_drop) is killed by the
    /// agent as it exits; any other child keeps running, but its [`Child`]
    /// can no longer wait for it or signal it (those calls fail with
    /// [`Error::Wait`] / [`Error::Signal`], kind `ConnectionReset`). Wait for
    /// the children first if their status matters.
    ///
    /// Returns the agent's exit status (success: a clean exit).
    ///
    /// # Cancel safety
    ///
    /// The agent is told to stop before the first `.await`: if the future is
    /// dropped, the agent still exits and is reaped in the background.
    ///
    /// # Errors
    ///
    /// [`Error::Close`] (kind `ConnectionReset`) if the runtime that started
    /// the agent was shut down before the agent's status could be reported
    /// (the agent is then killed and reaped on a background thread).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo() -> nsproc::Result<()> {
    /// use nsproc::{Command, ExecAgent};
    ///
    /// let agent = ExecAgent::start("blue").await?;
    /// Command::new("true").exec_agent(&agent).status().await?;
    /// let pid = agent.pid();
    /// assert!(agent.close().await?.success());
    /// assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    /// # Ok(()) }
    /// ```
    pub async fn close(self) -> Result<ExitStatus> {
        let span = trace::op_span!("exec_agent_close", self.described, pid = self.agent.pid());
        span.record("inode", self.netns.id().ino);
        trace::traced(span, self.close_inner()).await
    }

    async fn close_inner(self) -> Result<ExitStatus> {
        let pid = self.agent.pid();
        let ns = self.described.clone();
        self.agent
            .close()
            .await
            .map_err(|source| Error::Close { pid, ns, source })
    }
}

impl fmt::Debug for ExecAgent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExecAgent")
            .field("pid", &self.agent.pid())
            .field("ns", &self.described)
            .field("name", &self.name)
            .finish()
    }
}

/// A child of the agent.
pub(crate) struct AgentChild {
    child: nsproxy::AgentChild,
    reaped: bool,
}

impl fmt::Debug for AgentChild {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.child.fmt(f)
    }
}

fn io_of(err: nsproxy::Error) -> io::Error {
    match err.raw_os_error() {
        Some(errno) if matches!(err, nsproxy::Error::Io { .. }) => {
            io::Error::from_raw_os_error(errno)
        }
        _ => io::Error::new(err.kind(), err),
    }
}

impl AgentChild {
    pub(crate) fn id(&self) -> Option<u32> {
        if self.reaped {
            None
        } else {
            u32::try_from(self.child.pid()).ok()
        }
    }

    pub(crate) async fn wait(&mut self) -> io::Result<ExitStatus> {
        let status = self.child.wait().await.map_err(io_of)?;
        self.reaped = true;
        Ok(status)
    }

    pub(crate) fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        let status = self.child.try_wait().map_err(io_of)?;
        if status.is_some() {
            self.reaped = true;
        }
        Ok(status)
    }

    pub(crate) fn pidfd(&self) -> io::Result<std::os::fd::OwnedFd> {
        self.child.pidfd().try_clone_to_owned()
    }

    pub(crate) fn signal(&mut self, signal: i32) -> io::Result<()> {
        if self.reaped {
            return Err(io::Error::from_raw_os_error(libc::ESRCH));
        }
        self.child.signal(signal).map_err(io_of)
    }
}

/// The user namespace owning `ns`, unless it is the caller's own.
fn foreign_owner(ns: &NetNs) -> nsfs::Result<Option<std::os::fd::OwnedFd>> {
    use std::os::unix::fs::MetadataExt;
    let owner = ns.owner_user_ns()?;
    let ino = |md: io::Result<std::fs::Metadata>| md.map(|m| m.ino()).ok();
    let theirs = ino(owner
        .try_clone()
        .and_then(|fd| std::fs::File::from(fd).metadata()));
    let ours = ino(std::fs::metadata("/proc/self/ns/user"));
    Ok(if theirs.is_some() && theirs == ours {
        None
    } else {
        Some(owner)
    })
}

/// Spawns through an agent: the `ip netns exec` path (an exec agent, given
/// or cached), or, with `user_fast`, rootless mode's fast path: the
/// user-namespace agent of the namespace's owner, which enters the
/// namespace for the spawn only.
pub(crate) async fn spawn(
    cmd: &Command,
    mut plan: Plan,
    reuse: Option<&ExecAgent>,
    user_fast: bool,
) -> Result<Child> {
    let agent = match reuse {
        Some(agent) => agent.clone(),
        None if user_fast => {
            let ns = cmd
                .netns
                .clone()
                .expect("the rootless fast path has a namespace");
            let resolved = namespace::open(&ns, &cmd.run_dir).await?;
            let agent = Agent::for_user_ns_of(&resolved.netns)
                .await
                .map_err(|source| Error::Agent {
                    program: cmd.program.clone(),
                    ns: resolved.described.clone(),
                    source,
                })?;
            ExecAgent {
                agent,
                netns: resolved.netns,
                name: None,
                described: resolved.described,
            }
        }
        None => {
            let ns = match &cmd.netns {
                Some(ns) => ns.clone(),
                None => {
                    Target::NetNs(NetNs::current_thread().map_err(|source| Error::Namespace {
                        ns: "(current)".into(),
                        source,
                    })?)
                }
            };
            let resolved = namespace::open(&ns, &cmd.run_dir).await?;
            cache::agent(ns, resolved, &cmd.run_dir)
                .await
                .map_err(|e| match e {
                    Error::Agent { ns, source, .. } => Error::Agent {
                        program: cmd.program.clone(),
                        ns,
                        source,
                    },
                    other => other,
                })?
        }
    };
    let io_err = |op| {
        let program = cmd.program.clone();
        move |source| Error::Io {
            op,
            program,
            source,
        }
    };
    let (parent_in, parent_out, parent_err) = plan.parent_pipes(&cmd.program)?;
    let agent_stdio = |side: ChildSide, which: Stream| -> io::Result<AgentStdio> {
        Ok(match side {
            ChildSide::Null => AgentStdio::Null,
            other => AgentStdio::Fd(other.into_fd(which)?),
        })
    };
    let stdin = agent_stdio(plan.stdin.child, Stream::Stdin).map_err(io_err("prepare stdin"))?;
    let stdout =
        agent_stdio(plan.stdout.child, Stream::Stdout).map_err(io_err("prepare stdout"))?;
    let stderr =
        agent_stdio(plan.stderr.child, Stream::Stderr).map_err(io_err("prepare stderr"))?;
    let mut req = SpawnRequest::new(&plan.program)
        .arg0(cmd.arg0.as_ref().unwrap_or(&cmd.program))
        .args(&cmd.args)
        .envs(cmd.effective_env())
        .kill_on_drop(cmd.kill_on_drop)
        .stdin(stdin)
        .stdout(stdout)
        .stderr(stderr);
    // The agent's working directory is ours when it started; give the
    // current one, as the fast path's child gets it.
    match &cmd.cwd {
        Some(dir) => req = req.current_dir(dir),
        None => {
            if let Ok(dir) = std::env::current_dir() {
                req = req.current_dir(dir);
            }
        }
    }
    if let Some(pgroup) = cmd.pgroup {
        req = req.process_group(pgroup);
    }
    if user_fast {
        req = req.netns(&agent.netns);
    }
    let child = agent
        .agent
        .spawn(req)
        .await
        .map_err(|source| match source {
            nsproxy::Error::Remote {
                step: Step::Exec,
                source,
                ..
            } => Error::Spawn {
                program: cmd.program.clone(),
                ns: agent.described.clone(),
                source,
            },
            source => Error::Agent {
                program: cmd.program.clone(),
                ns: agent.described.clone(),
                source,
            },
        })?;
    let launched = Launched::Agent(AgentChild {
        child,
        reaped: false,
    });
    Ok(Child::new(
        cmd.program.clone(),
        launched,
        parent_in,
        parent_out,
        parent_err,
    ))
}
