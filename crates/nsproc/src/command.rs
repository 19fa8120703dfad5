//! The `Command` builder.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Output};

use nsfs::RunDir;

use crate::stdio::{Prepared, Stream};
use tokio::net::unix::pipe;

use crate::trace::{self, op_span};
use crate::{
    Child, ChildStderr, ChildStdin, ChildStdout, Error, ExecAgent, Result, Stdio, Target, fast,
};

/// How a [`Command`] is launched in its namespace.
///
/// # Examples
///
/// ```no_run
/// # async fn demo() -> nsproc::Result<()> {
/// use nsproc::{Command, ExecMode};
///
/// // Sees the namespace's devices in /sys and /etc/netns/blue/resolv.conf as
/// // /etc/resolv.conf, like `ip netns exec blue cat ...`.
/// let out = Command::new("cat")
///     .arg("/etc/resolv.conf")
///     .netns("blue")
///     .exec_mode(ExecMode::IpNetnsExec)
///     .output()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ExecMode {
    /// The default: spawned with `posix_spawn` from a namespace thread (see
    /// [`nsfs::Executor`]); only the network namespace changes. Costs what a
    /// plain `tokio::process::Command` costs, whatever the size of the
    /// application.
    #[default]
    Fast,
    /// Like `ip netns exec`: through an nsproxy agent living in the namespace,
    /// the program gets a private mount namespace with `/sys` remounted (so
    /// `/sys/class/net` shows the namespace's devices) and every file of
    /// `/etc/netns/NAME/` bind-mounted over its counterpart in `/etc`.
    IpNetnsExec,
}

/// A program to run inside a network namespace, in the spirit of
/// [`tokio::process::Command`].
///
/// Modifiers take `&mut self` and return it, so a command can be built in one
/// expression or step by step, and spawned several times. The namespace is set
/// with [`netns`](Command::netns) (a name, path or [`nsfs::NetNs`]); without one
/// the program runs in the caller's namespace.
///
/// The child's stdin, stdout and stderr, when [piped](Stdio::piped), are real
/// pipe fds owned by the caller, as tokio pipe ends on [`Child`]: `fcntl`,
/// `ioctl`, `flock` and `AsyncFd` work on them.
///
/// # Examples
///
/// ```no_run
/// # async fn demo() -> nsproc::Result<()> {
/// use nsproc::Command;
///
/// let out = Command::new("ip").args(["-br", "link"]).netns("blue").output().await?;
/// assert!(out.status.success());
/// println!("{}", String::from_utf8_lossy(&out.stdout));
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Command {
    pub(crate) program: OsString,
    pub(crate) args: Vec<OsString>,
    pub(crate) arg0: Option<OsString>,
    pub(crate) env_clear: bool,
    pub(crate) env: BTreeMap<OsString, Option<OsString>>,
    pub(crate) cwd: Option<PathBuf>,
    pub(crate) stdin: Option<Stdio>,
    pub(crate) stdout: Option<Stdio>,
    pub(crate) stderr: Option<Stdio>,
    pub(crate) kill_on_drop: bool,
    pub(crate) pgroup: Option<i32>,
    pub(crate) netns: Option<Target>,
    pub(crate) run_dir: RunDir,
    pub(crate) mode: ExecMode,
    pub(crate) agent: Option<ExecAgent>,
}

impl Command {
    /// A command running `program`, with no arguments, this process's
    /// environment and working directory, inheriting stdio, in the caller's
    /// namespace until [`netns`](Command::netns) says otherwise.
    ///
    /// A `program` without `/` is looked up in `PATH` (the child's `PATH`, if
    /// [`env`](Command::env) sets one).
    ///
    /// # Examples
    ///
    /// ```
    /// let cmd = nsproc::Command::new("ip");
    /// ```
    pub fn new(program: impl AsRef<OsStr>) -> Command {
        Command {
            program: program.as_ref().to_owned(),
            args: Vec::new(),
            arg0: None,
            env_clear: false,
            env: BTreeMap::new(),
            cwd: None,
            stdin: None,
            stdout: None,
            stderr: None,
            kill_on_drop: false,
            pgroup: None,
            netns: None,
            run_dir: RunDir::default(),
            mode: ExecMode::Fast,
            agent: None,
        }
    }

    /// Runs the program inside `ns`: a name (looked up in the
    /// [run directory](Command::run_dir)), a path, a pid, or an open
    /// [`nsfs::NetNs`]. See [`Target`] for the rule: a string is a path only
    /// if it starts with `/`; anything else is a name, validated when the
    /// command is spawned (so `"a/b"` or `"../x"` fail with
    /// [`Error::Namespace`] wrapping `nsfs::Error::InvalidName`). Names and
    /// paths are opened when the command is spawned; nothing is created.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn demo(ns: nsfs::NetNs) {
    /// let mut by_name = nsproc::Command::new("ip");
    /// by_name.netns("blue");
    /// let mut by_handle = nsproc::Command::new("ip");
    /// by_handle.netns(&ns);
    /// # }
    /// ```
    pub fn netns(&mut self, ns: impl Into<Target>) -> &mut Command {
        self.netns = Some(ns.into());
        self
    }

    /// The directory namespace names are looked up in (default `/run/netns`).
    ///
    /// # Examples
    ///
    /// ```
    /// let _ = nsproc::Command::new("ip").netns("c1").run_dir(nsfs::RunDir::new(nsfs::DOCKER_RUN_DIR));
    /// ```
    pub fn run_dir(&mut self, dir: RunDir) -> &mut Command {
        self.run_dir = dir;
        self
    }

    /// How the program is launched: [`ExecMode::Fast`] (the default) or
    /// [`ExecMode::IpNetnsExec`].
    ///
    /// # Examples
    ///
    /// ```
    /// let _ = nsproc::Command::new("ls").arg("/sys/class/net").exec_mode(nsproc::ExecMode::IpNetnsExec);
    /// ```
    pub fn exec_mode(&mut self, mode: ExecMode) -> &mut Command {
        self.mode = mode;
        self
    }

    /// Runs the program through `agent`, a reusable `ip netns exec` context,
    /// in the agent's namespace: this implies [`ExecMode::IpNetnsExec`] and
    /// takes precedence over [`netns`](Command::netns) and
    /// [`exec_mode`](Command::exec_mode).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo() -> nsproc::Result<()> {
    /// let agent = nsproc::ExecAgent::start("blue").await?;
    /// let out = nsproc::Command::new("ls").arg("/sys/class/net").exec_agent(&agent).output().await?;
    /// # Ok(()) }
    /// ```
    pub fn exec_agent(&mut self, agent: &ExecAgent) -> &mut Command {
        self.agent = Some(agent.clone());
        self
    }

    /// Adds an argument.
    ///
    /// # Examples
    ///
    /// ```
    /// let _ = nsproc::Command::new("ip").arg("link").arg("show");
    /// ```
    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut Command {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Adds arguments.
    ///
    /// # Examples
    ///
    /// ```
    /// let _ = nsproc::Command::new("ip").args(["-br", "addr"]);
    /// ```
    pub fn args<I, S>(&mut self, args: I) -> &mut Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Sets `argv[0]` (by default the program as given).
    ///
    /// # Examples
    ///
    /// ```
    /// let _ = nsproc::Command::new("/bin/busybox").arg0("ip");
    /// ```
    pub fn arg0(&mut self, arg0: impl AsRef<OsStr>) -> &mut Command {
        self.arg0 = Some(arg0.as_ref().to_owned());
        self
    }

    /// Sets an environment variable.
    ///
    /// # Examples
    ///
    /// ```
    /// let _ = nsproc::Command::new("sh").env("LC_ALL", "C");
    /// ```
    pub fn env(&mut self, key: impl AsRef<OsStr>, val: impl AsRef<OsStr>) -> &mut Command {
        self.env
            .insert(key.as_ref().to_owned(), Some(val.as_ref().to_owned()));
        self
    }

    /// Sets environment variables.
    ///
    /// # Examples
    ///
    /// ```
    /// let _ = nsproc::Command::new("sh").envs([("A", "1"), ("B", "2")]);
    /// ```
    pub fn envs<I, K, V>(&mut self, vars: I) -> &mut Command
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        for (k, v) in vars {
            self.env(k, v);
        }
        self
    }

    /// Removes an environment variable from the child's environment.
    ///
    /// # Examples
    ///
    /// ```
    /// let _ = nsproc::Command::new("sh").env_remove("HOME");
    /// ```
    pub fn env_remove(&mut self, key: impl AsRef<OsStr>) -> &mut Command {
        let key = key.as_ref().to_owned();
        if self.env_clear {
            self.env.remove(&key);
        } else {
            self.env.insert(key, None);
        }
        self
    }

    /// Clears the child's environment (variables set afterwards are kept).
    ///
    /// # Examples
    ///
    /// ```
    /// let _ = nsproc::Command::new("/usr/bin/env").env_clear().env("A", "1");
    /// ```
    pub fn env_clear(&mut self) -> &mut Command {
        self.env_clear = true;
        self.env.clear();
        self
    }

    /// Sets the child's working directory.
    ///
    /// # Examples
    ///
    /// ```
    /// let _ = nsproc::Command::new("ls").current_dir("/etc");
    /// ```
    pub fn current_dir(&mut self, dir: impl AsRef<Path>) -> &mut Command {
        self.cwd = Some(dir.as_ref().to_owned());
        self
    }

    /// What the child's stdin is (default: inherited for
    /// [`spawn`](Command::spawn) and [`status`](Command::status), `/dev/null`
    /// for [`output`](Command::output)).
    ///
    /// # Examples
    ///
    /// ```
    /// let _ = nsproc::Command::new("cat").stdin(nsproc::Stdio::piped());
    /// ```
    pub fn stdin(&mut self, stdio: impl Into<Stdio>) -> &mut Command {
        self.stdin = Some(stdio.into());
        self
    }

    /// What the child's stdout is (default: inherited for
    /// [`spawn`](Command::spawn) and [`status`](Command::status), piped for
    /// [`output`](Command::output)).
    ///
    /// # Examples
    ///
    /// ```
    /// let _ = nsproc::Command::new("ip").stdout(nsproc::Stdio::piped());
    /// ```
    pub fn stdout(&mut self, stdio: impl Into<Stdio>) -> &mut Command {
        self.stdout = Some(stdio.into());
        self
    }

    /// What the child's stderr is (defaults as for
    /// [`stdout`](Command::stdout)).
    ///
    /// # Examples
    ///
    /// ```
    /// let _ = nsproc::Command::new("ip").stderr(nsproc::Stdio::null());
    /// ```
    pub fn stderr(&mut self, stdio: impl Into<Stdio>) -> &mut Command {
        self.stderr = Some(stdio.into());
        self
    }

    /// Whether dropping the [`Child`] kills the process (`SIGKILL`). Default
    /// `false`: a dropped child runs on, and is reaped when it exits (tokio's
    /// orphan reaping on the fast path; on the exec path the agent, or init
    /// if the agent has closed meanwhile).
    ///
    /// It acts on drop only: if the application is killed with `SIGKILL` (or
    /// aborts), no destructor runs and the child runs on. On the fast path
    /// the kernel cannot tie the child to the application (`PR_SET_PDEATHSIG`
    /// follows the spawning thread, a namespace thread, not the process). For
    /// a supervisor to end such children, use
    /// [`process_group`](Command::process_group)`(0)` and `killpg`, or hand it
    /// [`Child::pidfd`]; see "Children and the application's death" in the
    /// crate docs.
    ///
    /// # Examples
    ///
    /// ```
    /// let _ = nsproc::Command::new("sleep").arg("1000").kill_on_drop(true);
    /// ```
    pub fn kill_on_drop(&mut self, kill: bool) -> &mut Command {
        self.kill_on_drop = kill;
        self
    }

    /// Puts the child in process group `pgroup` (`0`: a new group whose id is
    /// the child's pid), like `setpgid` (`POSIX_SPAWN_SETPGROUP`, no fork), on
    /// both launch paths.
    ///
    /// With `0`, the child and the processes it starts form a group apart
    /// from the application's (a terminal's `^C` does not reach it), which a
    /// supervisor can end as a whole with `killpg(child_pid, SIGKILL)`, even
    /// after the application is gone: the way to clean up fast-path children
    /// of an application killed with `SIGKILL` (see [`kill_on_drop`](Command::kill_on_drop)).
    ///
    /// # Examples
    ///
    /// ```
    /// let _ = nsproc::Command::new("sleep").arg("1").process_group(0);
    /// ```
    pub fn process_group(&mut self, pgroup: i32) -> &mut Command {
        self.pgroup = Some(pgroup);
        self
    }

    /// The program, as given to [`Command::new`].
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(nsproc::Command::new("ip").get_program(), "ip");
    /// ```
    pub fn get_program(&self) -> &OsStr {
        &self.program
    }

    /// The arguments (without `argv[0]`).
    ///
    /// # Examples
    ///
    /// ```
    /// let mut cmd = nsproc::Command::new("ip");
    /// cmd.arg("link");
    /// assert_eq!(cmd.get_args().collect::<Vec<_>>(), ["link"]);
    /// ```
    pub fn get_args(&self) -> impl Iterator<Item = &OsStr> {
        self.args.iter().map(OsString::as_os_str)
    }

    /// The namespace the program will run in, if set.
    ///
    /// # Examples
    ///
    /// ```
    /// let mut cmd = nsproc::Command::new("ip");
    /// cmd.netns("blue");
    /// assert_eq!(cmd.get_netns().unwrap().to_string(), "blue");
    /// ```
    pub fn get_netns(&self) -> Option<&Target> {
        self.netns.as_ref()
    }

    /// Starts the program inside the namespace and returns its [`Child`].
    ///
    /// The namespace is opened (a name or path) and the program started, on a
    /// namespace thread with `posix_spawn` ([`ExecMode::Fast`]) or through the
    /// agent ([`ExecMode::IpNetnsExec`]). A missing or non-executable program
    /// fails here, at once, with [`Error::Spawn`].
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: if the future is dropped while the spawn is in flight,
    /// the process may already have been started. It is then treated as a
    /// dropped [`Child`]: its pipes are closed, it is killed if
    /// [`kill_on_drop`](Command::kill_on_drop) is set, and it is reaped when it
    /// exits; nothing leaks.
    ///
    /// # Errors
    ///
    /// [`Error::Namespace`] if the namespace cannot be opened (kind
    /// `NotFound` if it does not exist); [`Error::Spawn`] if the program cannot
    /// be started (kind `NotFound`, `PermissionDenied`, ...); [`Error::Io`] if
    /// a pipe cannot be made.
    ///
    /// # Panics
    ///
    /// If called outside a tokio runtime (with IO enabled), like tokio's
    /// `Command::spawn`.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo() -> nsproc::Result<()> {
    /// use tokio::io::AsyncReadExt;
    ///
    /// let mut child = nsproc::Command::new("ip")
    ///     .arg("link")
    ///     .netns("blue")
    ///     .stdout(nsproc::Stdio::piped())
    ///     .spawn()
    ///     .await?;
    /// let mut links = String::new();
    /// child.stdout.take().unwrap().read_to_string(&mut links).await.unwrap();
    /// let status = child.wait().await?;
    /// # Ok(()) }
    /// ```
    pub async fn spawn(&mut self) -> Result<Child> {
        let span = op_span!("spawn", self.described_ns(), program = ?self.program);
        trace::traced(span, self.spawn_with(Defaults::Inherit)).await
    }

    /// Runs the program to completion and collects its stdout and stderr
    /// (piped unless set otherwise; stdin is `/dev/null` unless set).
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: if dropped after the spawn, the child is dropped as by
    /// [`Child`]'s `Drop` (killed if `kill_on_drop` is set, reaped either way)
    /// and its output is lost.
    ///
    /// # Errors
    ///
    /// As [`spawn`](Command::spawn), plus [`Error::Io`] reading the output and
    /// [`Error::Wait`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo() -> nsproc::Result<()> {
    /// let out = nsproc::Command::new("ip").arg("addr").netns("blue").output().await?;
    /// println!("{}", String::from_utf8_lossy(&out.stdout));
    /// # Ok(()) }
    /// ```
    pub async fn output(&mut self) -> Result<Output> {
        let span = op_span!("output", self.described_ns(), program = ?self.program);
        let output = async {
            self.spawn_with(Defaults::Output)
                .await?
                .wait_with_output()
                .await
        };
        trace::traced(span, output).await
    }

    /// Runs the program to completion and returns its exit status (stdio
    /// inherited unless set).
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: if dropped after the spawn, the child is dropped as by
    /// [`Child`]'s `Drop`.
    ///
    /// # Errors
    ///
    /// As [`spawn`](Command::spawn), plus [`Error::Wait`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo() -> nsproc::Result<()> {
    /// let status = nsproc::Command::new("ping").args(["-c1", "10.0.0.2"]).netns("blue").status().await?;
    /// println!("reachable: {}", status.success());
    /// # Ok(()) }
    /// ```
    pub async fn status(&mut self) -> Result<ExitStatus> {
        let span = op_span!("status", self.described_ns(), program = ?self.program);
        let status = async {
            let mut child = self.spawn_with(Defaults::Inherit).await?;
            // Like tokio: a piped stdin is closed so the child is not left waiting.
            child.stdin.take();
            child.wait().await
        };
        trace::traced(span, status).await
    }

    async fn spawn_with(&mut self, defaults: Defaults) -> Result<Child> {
        let exec = self.agent.is_some() || self.mode == ExecMode::IpNetnsExec;
        // Rootless: no thread of ours may enter the namespace; the agent of
        // its user namespace spawns the program there instead.
        let user_fast = !exec && self.netns.is_some() && !nsfs::privileged();
        let plan = self.plan(defaults, exec || user_fast)?;
        let mut child = if exec || user_fast {
            crate::exec::spawn(self, plan, self.agent.as_ref(), user_fast).await?
        } else {
            fast::spawn(self, plan).await?
        };
        child.netns = self.described_ns();
        Ok(child)
    }

    /// Everything decided on the caller's side before a launch path runs.
    fn plan(&self, defaults: Defaults, always_resolve: bool) -> Result<Plan> {
        let stdio = |which: Stream, set: &Option<Stdio>| {
            let fallback = match (defaults, which) {
                (Defaults::Output, Stream::Stdin) => Stdio::null(),
                (Defaults::Output, _) => Stdio::piped(),
                (Defaults::Inherit, _) => Stdio::inherit(),
            };
            set.as_ref()
                .unwrap_or(&fallback)
                .prepare(which)
                .map_err(|source| Error::Io {
                    op: "prepare stdio",
                    program: self.program.clone(),
                    source,
                })
        };
        Ok(Plan {
            program: self.resolve_program(always_resolve)?,
            stdin: stdio(Stream::Stdin, &self.stdin)?,
            stdout: stdio(Stream::Stdout, &self.stdout)?,
            stderr: stdio(Stream::Stderr, &self.stderr)?,
        })
    }

    /// The program path to give the launcher. When the command changes `PATH`
    /// (or `always`, for the agent, which gets the environment complete), a
    /// bare name is looked up in the child's `PATH` here: std would otherwise
    /// fall back from `posix_spawn` to a full fork to do it.
    fn resolve_program(&self, always: bool) -> Result<OsString> {
        let program = &self.program;
        if program.as_bytes().contains(&b'/') {
            return Ok(program.clone());
        }
        let path = match self.env.get(OsStr::new("PATH")) {
            Some(Some(path)) => path.clone(),
            Some(None) => OsString::from("/bin:/usr/bin"),
            None if self.env_clear => OsString::from("/bin:/usr/bin"),
            None if always => {
                std::env::var_os("PATH").unwrap_or_else(|| OsString::from("/bin:/usr/bin"))
            }
            None => return Ok(program.clone()),
        };
        let not_found = |errno| Error::Spawn {
            program: program.clone(),
            ns: self.described_ns(),
            source: std::io::Error::from_raw_os_error(errno),
        };
        if program.is_empty() {
            return Err(not_found(libc::ENOENT));
        }
        let mut denied = false;
        for dir in std::env::split_paths(&path) {
            let dir = if dir.as_os_str().is_empty() {
                PathBuf::from(".")
            } else {
                dir
            };
            let candidate = dir.join(program);
            match std::fs::metadata(&candidate) {
                Ok(meta) if meta.is_file() && meta.permissions().mode() & 0o111 != 0 => {
                    return Ok(candidate.into_os_string());
                }
                Ok(_) => denied = true,
                Err(_) => {}
            }
        }
        Err(not_found(if denied { libc::EACCES } else { libc::ENOENT }))
    }

    /// The child's whole environment.
    pub(crate) fn effective_env(&self) -> Vec<(OsString, OsString)> {
        let mut env: BTreeMap<OsString, OsString> = if self.env_clear {
            BTreeMap::new()
        } else {
            std::env::vars_os().collect()
        };
        for (key, val) in &self.env {
            match val {
                Some(val) => env.insert(key.clone(), val.clone()),
                None => env.remove(key),
            };
        }
        env.into_iter().collect()
    }

    pub(crate) fn described_ns(&self) -> String {
        if let Some(agent) = &self.agent {
            return agent.described.clone();
        }
        match &self.netns {
            Some(ns) => ns.to_string(),
            None => "(current)".to_owned(),
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Defaults {
    Inherit,
    Output,
}

/// One spawn, prepared: the program to exec and the three streams.
#[derive(Debug)]
pub(crate) struct Plan {
    pub(crate) program: OsString,
    pub(crate) stdin: Prepared,
    pub(crate) stdout: Prepared,
    pub(crate) stderr: Prepared,
}

/// Our ends of the piped streams, as the tokio pipe ends of a [`Child`].
pub(crate) type ParentPipes = (Option<ChildStdin>, Option<ChildStdout>, Option<ChildStderr>);

impl Plan {
    /// Takes our ends of the piped streams and registers them with the
    /// runtime (both launch paths hand them to the [`Child`] as they are).
    pub(crate) fn parent_pipes(&mut self, program: &OsStr) -> Result<ParentPipes> {
        let io_err = |op| {
            move |source| Error::Io {
                op,
                program: program.to_owned(),
                source,
            }
        };
        let stdin = self.stdin.parent.take().map(pipe::Sender::from_owned_fd);
        let stdin = stdin.transpose().map_err(io_err("register stdin pipe"))?;
        let stdout = self.stdout.parent.take().map(pipe::Receiver::from_owned_fd);
        let stdout = stdout.transpose().map_err(io_err("register stdout pipe"))?;
        let stderr = self.stderr.parent.take().map(pipe::Receiver::from_owned_fd);
        let stderr = stderr.transpose().map_err(io_err("register stderr pipe"))?;
        Ok((stdin, stdout, stderr))
    }
}
