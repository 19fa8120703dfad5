//! The `SpawnRequest` builder: what the agent runs, and where its stdio goes.

use std::ffi::OsStr;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::Error;
use crate::proto::{SpawnSpec, StdioSpec};

/// Where a spawned program's stdin, stdout or stderr goes.
///
/// # Examples
///
/// ```
/// use nsproxy::{AgentStdio, SpawnRequest};
/// let req = SpawnRequest::new("cat").stdin(AgentStdio::Pipe).stdout(AgentStdio::Null);
/// ```
#[derive(Debug)]
pub enum AgentStdio {
    /// `/dev/null` (the default).
    Null,
    /// A pipe made by the agent; the other end comes back in the
    /// [`AgentChild`](crate::AgentChild).
    Pipe,
    /// This fd (a file, a socket, a pipe end): sent to the agent and used as
    /// is.
    Fd(OwnedFd),
}

/// A program for [`Agent::spawn`](crate::Agent::spawn): what `posix_spawn` needs, given complete
/// (the environment is exactly what is set here, empty by default).
///
/// Builder methods take and return `self`.
///
/// # Examples
///
/// ```
/// use nsproxy::{AgentStdio, SpawnRequest};
/// let req = SpawnRequest::new("ping")
///     .args(["-c", "1", "10.0.0.1"])
///     .env("PATH", "/usr/bin:/bin")
///     .current_dir("/")
///     .stdout(AgentStdio::Pipe)
///     .kill_on_drop(true);
/// ```
#[derive(Debug)]
pub struct SpawnRequest {
    pub(super) spec: SpawnSpec,
    pub(super) fds: [Option<OwnedFd>; 3],
    /// The network namespace to spawn in, if not the agent's own.
    pub(super) netns: Option<OwnedFd>,
    pub(super) invalid: Option<Error>,
}

fn bytes_of(s: &OsStr, what: &'static str, invalid: &mut Option<Error>) -> Vec<u8> {
    let b = s.as_bytes();
    if b.contains(&0) && invalid.is_none() {
        *invalid = Some(Error::InvalidInput {
            what,
            why: "contains a NUL byte",
        });
    }
    b.to_vec()
}

impl SpawnRequest {
    /// A request to run `program`: a path, or a name looked up in the
    /// `PATH` of the request's environment.
    ///
    /// # Examples
    ///
    /// ```
    /// let req = nsproxy::SpawnRequest::new("/bin/true");
    /// ```
    pub fn new(program: impl AsRef<OsStr>) -> SpawnRequest {
        let mut invalid = None;
        let program = bytes_of(program.as_ref(), "program", &mut invalid);
        if program.is_empty() {
            invalid = Some(Error::InvalidInput {
                what: "program",
                why: "empty",
            });
        }
        SpawnRequest {
            spec: SpawnSpec {
                program,
                arg0: None,
                args: Vec::new(),
                env: Vec::new(),
                cwd: None,
                pgroup: None,
                kill_on_drop: false,
                stdio: [StdioSpec::Null; 3],
                in_netns: false,
            },
            fds: [None, None, None],
            netns: None,
            invalid,
        }
    }

    /// Sets `argv[0]` (by default the program).
    ///
    /// # Examples
    ///
    /// ```
    /// let req = nsproxy::SpawnRequest::new("/bin/busybox").arg0("sh");
    /// ```
    pub fn arg0(mut self, arg0: impl AsRef<OsStr>) -> SpawnRequest {
        self.spec.arg0 = Some(bytes_of(arg0.as_ref(), "arg0", &mut self.invalid));
        self
    }

    /// Adds an argument.
    ///
    /// # Examples
    ///
    /// ```
    /// let req = nsproxy::SpawnRequest::new("ip").arg("link");
    /// ```
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> SpawnRequest {
        let arg = bytes_of(arg.as_ref(), "argument", &mut self.invalid);
        self.spec.args.push(arg);
        self
    }

    /// Adds arguments.
    ///
    /// # Examples
    ///
    /// ```
    /// let req = nsproxy::SpawnRequest::new("ip").args(["-br", "link"]);
    /// ```
    pub fn args<I, S>(mut self, args: I) -> SpawnRequest
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        for arg in args {
            self = self.arg(arg);
        }
        self
    }

    /// Adds `KEY=VALUE` to the environment (which starts empty).
    ///
    /// # Examples
    ///
    /// ```
    /// let req = nsproxy::SpawnRequest::new("env").env("LANG", "C");
    /// ```
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> SpawnRequest {
        let mut entry = bytes_of(key.as_ref(), "environment key", &mut self.invalid);
        if (entry.is_empty() || entry.contains(&b'=')) && self.invalid.is_none() {
            self.invalid = Some(Error::InvalidInput {
                what: "environment key",
                why: "empty or contains '='",
            });
        }
        entry.push(b'=');
        entry.extend(bytes_of(
            value.as_ref(),
            "environment value",
            &mut self.invalid,
        ));
        self.spec.env.push(entry);
        self
    }

    /// Adds every `(key, value)` to the environment.
    ///
    /// # Examples
    ///
    /// ```
    /// let req = nsproxy::SpawnRequest::new("env").envs(std::env::vars_os());
    /// ```
    pub fn envs<I, K, V>(mut self, vars: I) -> SpawnRequest
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        for (k, v) in vars {
            self = self.env(k, v);
        }
        self
    }

    /// Sets the working directory (by default the agent's, which is the
    /// application's when it started the agent).
    ///
    /// # Examples
    ///
    /// ```
    /// let req = nsproxy::SpawnRequest::new("ls").current_dir("/tmp");
    /// ```
    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> SpawnRequest {
        let dir: &OsStr = dir.as_ref().as_ref();
        self.spec.cwd = Some(bytes_of(dir, "working directory", &mut self.invalid));
        self
    }

    /// Puts the program in process group `pgroup` (0: a new group it leads).
    ///
    /// # Examples
    ///
    /// ```
    /// let req = nsproxy::SpawnRequest::new("sleep").arg("10").process_group(0);
    /// ```
    pub fn process_group(mut self, pgroup: i32) -> SpawnRequest {
        if pgroup < 0 && self.invalid.is_none() {
            self.invalid = Some(Error::InvalidInput {
                what: "process group",
                why: "negative",
            });
        }
        self.spec.pgroup = Some(pgroup);
        self
    }

    /// Kills the program (`SIGKILL`) when its [`AgentChild`](crate::AgentChild) is dropped
    /// before it exited, or when the agent exits, even if the agent is
    /// killed (for example with the application, which its agents never
    /// outlive): such a program gets `PR_SET_PDEATHSIG` tied to the agent.
    /// Without it, a program outlives the agent and the application.
    ///
    /// # Examples
    ///
    /// ```
    /// let req = nsproxy::SpawnRequest::new("sleep").arg("10").kill_on_drop(true);
    /// ```
    pub fn kill_on_drop(mut self, kill: bool) -> SpawnRequest {
        self.spec.kill_on_drop = kill;
        self
    }

    fn stdio(mut self, i: usize, stdio: AgentStdio) -> SpawnRequest {
        let (spec, fd) = match stdio {
            AgentStdio::Null => (StdioSpec::Null, None),
            AgentStdio::Pipe => (StdioSpec::Pipe, None),
            AgentStdio::Fd(fd) => (StdioSpec::Fd, Some(fd)),
        };
        self.spec.stdio[i] = spec;
        self.fds[i] = fd;
        self
    }

    /// Sets stdin.
    ///
    /// # Examples
    ///
    /// ```
    /// let req = nsproxy::SpawnRequest::new("cat").stdin(nsproxy::AgentStdio::Pipe);
    /// ```
    pub fn stdin(self, stdio: AgentStdio) -> SpawnRequest {
        self.stdio(0, stdio)
    }

    /// Sets stdout.
    ///
    /// # Examples
    ///
    /// ```
    /// let req = nsproxy::SpawnRequest::new("ip").stdout(nsproxy::AgentStdio::Pipe);
    /// ```
    pub fn stdout(self, stdio: AgentStdio) -> SpawnRequest {
        self.stdio(1, stdio)
    }

    /// Sets stderr.
    ///
    /// # Examples
    ///
    /// ```
    /// let req = nsproxy::SpawnRequest::new("ip").stderr(nsproxy::AgentStdio::Pipe);
    /// ```
    pub fn stderr(self, stdio: AgentStdio) -> SpawnRequest {
        self.stdio(2, stdio)
    }

    /// Runs the program in the network namespace `ns` instead of the
    /// agent's own: the agent enters `ns` for the spawn and returns after
    /// it. For a user-namespace agent ([`Agent::start_user`](crate::Agent::start_user)),
    /// whose own namespace is an empty one; the program also runs in the
    /// agent's user (and mount) namespace.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # fn demo(ns: &nsfs::NetNs) {
    /// let req = nsproxy::SpawnRequest::new("ip").arg("link").netns(ns);
    /// # }
    /// ```
    pub fn netns(mut self, ns: &nsfs::NetNs) -> SpawnRequest {
        match ns.try_clone_fd() {
            Ok(fd) => {
                self.netns = Some(fd);
                self.spec.in_netns = true;
            }
            Err(source) => {
                if self.invalid.is_none() {
                    self.invalid = Some(Error::Io {
                        op: "duplicate the namespace fd",
                        source,
                    });
                }
            }
        }
        self
    }

    /// The program, as given.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(nsproxy::SpawnRequest::new("ip").program(), "ip");
    /// ```
    pub fn program(&self) -> &OsStr {
        OsStr::from_bytes(&self.spec.program)
    }
}
