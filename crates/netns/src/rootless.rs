//! Rootless mode: network namespaces owned by a user namespace of an
//! unprivileged caller, reached through user-namespace agents.
//!
//! A process without `CAP_SYS_ADMIN` in the initial user namespace cannot
//! `setns` a thread into a network namespace, nor mount a name in
//! `/run/netns`. It can own a user namespace, and the owner of a user
//! namespace holds every capability inside it; but only a single-threaded
//! process may enter one. So every operation that must happen *inside* a
//! namespace (making a namespace, making a socket, starting a program) goes
//! to an nsproxy user-namespace agent, a small single-threaded process that
//! sits in the user namespace; what it makes comes back by `SCM_RIGHTS` and
//! is then used from the application directly (a netlink socket made by the
//! agent carries the agent's credentials, and the kernel's second check, on
//! the sender, passes because the caller owns the user namespace). See
//! `docs/rootless.md`.

use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use nsfs::{NetNs, NsName, OpenMode, RunDir};
use nsproxy::{Agent, AgentOptions, UserNamespace};

use crate::{Error, Result};

/// Whether this process works in rootless mode: it is not privileged
/// ([`nsfs::privileged`]), read once.
///
/// # Examples
///
/// ```
/// if netns::rootless() {
///     println!("names live in {}", netns::RunDir::user()?.path().display());
/// }
/// # Ok::<(), netns::nsfs::Error>(())
/// ```
pub fn rootless() -> bool {
    static ROOTLESS: OnceLock<bool> = OnceLock::new();
    *ROOTLESS.get_or_init(|| !nsfs::privileged())
}

/// A user namespace of this user and the agent working in it: what makes
/// network namespaces, sockets and programs for an unprivileged caller.
///
/// [`UserNs::new`] makes a user namespace (the caller's uid and gid mapped
/// to 0, as `unshare -Ur`); [`UserNs::join`] joins an existing one (given
/// by pid, pidfd, path or fd: a rootless container's). Namespaces made with
/// a name ([`create`](UserNs::create)) are held by the agent and named in
/// its run directory as symlinks to the fd it holds; a second process of
/// the same user opens them by name ([`RunDir::open`], [`Handle::open`](crate::Handle::open)).
/// Clones share the agent.
///
/// Handles, sockets and spawns need no `UserNs` of the caller's own: in
/// rootless mode the toolkit finds (or starts) the agent of the user
/// namespace that owns each network namespace by itself, and names that a
/// [`Handle`](crate::Handle) creates are made by the first `UserNs` this
/// process made for that run directory (one is made on first use).
///
/// # Drop
///
/// The agent exits when the last clone is dropped *and* the toolkit's own
/// registry lets it go, which happens when the process exits: namespaces
/// named through it live as long as the process that made them, unless
/// removed first ([`UserNs::remove`], [`RunDir::remove`], `rm`). An agent
/// that exits removes the names it made; one killed leaves dangling
/// symlinks, which [`RunDir::list`] skips and a new `create` replaces.
///
/// # Examples
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use netns::{Handle, OpenMode, UserNs};
/// let user = UserNs::new().await?;
/// let blue = user.create(&"blue".parse()?).await?;
/// let h = Handle::open(blue, OpenMode::OpenOnly).await?;
/// let lo_up = netns::rtnetlink::LinkUnspec::new_with_index(1).up().build();
/// h.rtnetlink().link().set(lo_up).execute().await?;
/// user.remove(&"blue".parse()?).await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct UserNs {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    agent: Agent,
    dir: RunDir,
    /// The user namespace's inode.
    ino: u64,
}

/// The user namespaces this process made names with, by run directory.
fn lock() -> std::sync::MutexGuard<'static, HashMap<PathBuf, UserNs>> {
    static REGISTRY: OnceLock<Mutex<HashMap<PathBuf, UserNs>>> = OnceLock::new();
    REGISTRY
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

fn rootless_err(op: &'static str, ns: impl Into<PathBuf>) -> impl FnOnce(nsproxy::Error) -> Error {
    let ns = ns.into();
    move |source| Error::Rootless { op, ns, source }
}

impl UserNs {
    /// Makes a new user namespace (this user's uid and gid mapped to 0 in
    /// it, `setgroups` denied: what `unshare -Ur` makes) with an agent in
    /// it, naming namespaces in this user's run directory
    /// ([`RunDir::user`]).
    ///
    /// # Cancel safety
    ///
    /// If dropped, the agent (if started) is killed and reaped; nothing is
    /// left.
    ///
    /// # Errors
    ///
    /// [`Error::Namespace`] with [`nsfs::Error::UserNamespacesDisabled`]
    /// (before anything is made) if the system does not let this user have
    /// user namespaces, or [`nsfs::Error::UserRunDir`]; [`Error::Rootless`]
    /// if the agent could not be started or could not make the namespace.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo() -> netns::Result<()> {
    /// let user = netns::UserNs::new().await?;
    /// # Ok(()) }
    /// ```
    pub async fn new() -> Result<UserNs> {
        UserNs::new_in(RunDir::user()?).await
    }

    /// As [`UserNs::new`], naming namespaces in `dir` (a directory of this
    /// user; created if missing).
    ///
    /// # Cancel safety
    ///
    /// As [`UserNs::new`].
    ///
    /// # Errors
    ///
    /// As [`UserNs::new`]; [`Error::Namespace`] if `dir` cannot be made.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo() -> netns::Result<()> {
    /// let user = netns::UserNs::new_in(netns::RunDir::new("/tmp/my-netns")).await?;
    /// # Ok(()) }
    /// ```
    pub async fn new_in(dir: RunDir) -> Result<UserNs> {
        let span = tracing::debug_span!(
            "user_ns_new",
            netns = %dir.path().display(),
            inode = tracing::field::Empty,
            outcome = tracing::field::Empty,
            error = tracing::field::Empty,
        );
        crate::trace::traced(span, async move {
            nsfs::user_namespaces_allowed()?;
            std::fs::create_dir_all(dir.path()).map_err(|source| nsfs::Error::Io {
                op: "create run directory",
                path: dir.path().into(),
                source,
            })?;
            let agent =
                Agent::start_user(UserNamespace::New, Some(dir.path()), AgentOptions::new())
                    .await
                    .map_err(rootless_err("make a user namespace", dir.path()))?;
            UserNs::register(agent, dir)
        })
        .await
    }

    /// A user-namespace agent whose names outlive this process (see
    /// [`AgentOptions::detach_names`]), naming namespaces in `dir`: what a
    /// short-lived command such as `nsctl add` needs. It joins the user
    /// namespace of the names already in `dir` (the first that opens), so
    /// that one user's named namespaces share a user namespace, or makes a
    /// new one if there is none. The agent stays, after this process is
    /// gone, until the last name it made is removed.
    ///
    /// # Cancel safety
    ///
    /// As [`UserNs::new`].
    ///
    /// # Errors
    ///
    /// As [`UserNs::new`] and [`UserNs::join`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo() -> netns::Result<()> {
    /// let user = netns::UserNs::detached(netns::RunDir::user()?).await?;
    /// user.create(&"blue".parse()?).await?; // stays after this process exits
    /// # Ok(()) }
    /// ```
    pub async fn detached(dir: RunDir) -> Result<UserNs> {
        let span = tracing::debug_span!(
            "user_ns_detached",
            netns = %dir.path().display(),
            inode = tracing::field::Empty,
            outcome = tracing::field::Empty,
            error = tracing::field::Empty,
        );
        crate::trace::traced(span, async move {
            // The owner of a name that an attach gave to a namespace of our
            // own user namespace (the host's) cannot be joined: skip those.
            let own = std::fs::metadata("/proc/self/ns/user")
                .map(|md| md.ino())
                .ok();
            let existing = dir.list()?.into_iter().find_map(|e| {
                let owner = dir.open(&e.name).ok()?.owner_user_ns().ok()?;
                let ino = std::fs::File::from(owner.try_clone().ok()?)
                    .metadata()
                    .ok()?
                    .ino();
                (Some(ino) != own).then_some(owner)
            });
            let user = match existing {
                Some(owner) => UserNamespace::Join(owner),
                None => {
                    nsfs::user_namespaces_allowed()?;
                    UserNamespace::New
                }
            };
            let opts = AgentOptions::new().detach_names(true);
            let agent = Agent::start_user(user, Some(dir.path()), opts)
                .await
                .map_err(rootless_err(
                    "start a detached user namespace agent",
                    dir.path(),
                ))?;
            UserNs::register(agent, dir)
        })
        .await
    }

    /// Joins an existing user namespace: `target` is a pid (its
    /// `/proc/PID/ns/user`), a path to a `user` namespace file, or an fd
    /// on one (or a pidfd). The caller must own it (or be privileged in
    /// it). Names made through it go to this user's run directory.
    ///
    /// # Cancel safety
    ///
    /// As [`UserNs::new`].
    ///
    /// # Errors
    ///
    /// [`Error::Namespace`] with [`nsfs::Error::NoSuchProcess`] (a pid that
    /// has exited), [`nsfs::Error::NotNamespace`] or
    /// [`nsfs::Error::WrongNamespaceType`] (a path that is not a user
    /// namespace), [`nsfs::Error::Open`] (`EACCES`: a process of another
    /// user); [`Error::Rootless`] with the agent's `setns(user)` step and
    /// `EPERM` for a user namespace this caller may not enter. Nothing is
    /// left behind.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo() -> netns::Result<()> {
    /// use netns::{UserNs, UserNsTarget};
    /// let podman = UserNs::join(UserNsTarget::Pid(4242)).await?;
    /// # Ok(()) }
    /// ```
    pub async fn join(target: UserNsTarget) -> Result<UserNs> {
        let span = tracing::debug_span!(
            "user_ns_join",
            netns = %target.describe().display(),
            inode = tracing::field::Empty,
            outcome = tracing::field::Empty,
            error = tracing::field::Empty,
        );
        crate::trace::traced(span, async move {
            let dir = RunDir::user()?;
            let fd = target.open()?;
            let agent = Agent::start_user(
                UserNamespace::Join(fd),
                Some(dir.path()),
                AgentOptions::new(),
            )
            .await
            .map_err(rootless_err("join the user namespace", target.describe()))?;
            UserNs::register(agent, dir)
        })
        .await
    }

    fn register(agent: Agent, dir: RunDir) -> Result<UserNs> {
        let path = format!("/proc/{}/ns/user", agent.pid());
        let ino = std::fs::metadata(&path)
            .map_err(|source| nsfs::Error::Open {
                path: path.into(),
                source,
            })?
            .ino();
        tracing::Span::current().record("inode", ino);
        let user = UserNs {
            inner: Arc::new(Inner { agent, dir, ino }),
        };
        // The first of a directory also makes the names that handles
        // create there.
        let mut reg = lock();
        let slot = reg
            .entry(user.inner.dir.path().into())
            .or_insert_with(|| user.clone());
        if !slot.inner.agent.is_alive() {
            *slot = user.clone();
        }
        Ok(user)
    }

    /// The agent: a process inside the user namespace (pid, requests).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(user: netns::UserNs) {
    /// println!("agent pid {}", user.agent().pid());
    /// # }
    /// ```
    pub fn agent(&self) -> &Agent {
        &self.inner.agent
    }

    /// The run directory where this user namespace's names are made.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(user: netns::UserNs) {
    /// println!("{}", user.run_dir().path().display());
    /// # }
    /// ```
    pub fn run_dir(&self) -> &RunDir {
        &self.inner.dir
    }

    /// The user namespace's inode (as in `/proc/PID/ns/user`).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(user: netns::UserNs) {
    /// println!("user:[{}]", user.inode());
    /// # }
    /// ```
    pub fn inode(&self) -> u64 {
        self.inner.ino
    }

    /// Makes a network namespace owned by this user namespace, named `name`
    /// in [`run_dir`](UserNs::run_dir) and held by the agent until the name
    /// is removed (or the agent exits): like `ip netns add`, without root.
    ///
    /// # Cancel safety
    ///
    /// If dropped after the request was sent, the namespace may still be
    /// made and named; remove the name to release it.
    ///
    /// # Errors
    ///
    /// [`Error::Rootless`] with the agent's step: `Name` and `EEXIST` if
    /// the name is taken (nothing is made), `UnshareNet` with `ENOSPC` at
    /// the `user.max_net_namespaces` limit.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(user: netns::UserNs) -> netns::Result<()> {
    /// let blue = user.create(&"blue".parse()?).await?;
    /// # Ok(()) }
    /// ```
    #[doc(alias = "ip netns add")]
    pub async fn create(&self, name: &NsName) -> Result<NetNs> {
        let entry = self.inner.dir.entry(name);
        let span = tracing::debug_span!(
            "create",
            netns = %name,
            inode = tracing::field::Empty,
            outcome = tracing::field::Empty,
            error = tracing::field::Empty,
        );
        crate::trace::traced(span, async move {
            let ns = self
                .inner
                .agent
                .new_netns(Some(name))
                .await
                .map_err(rootless_err("create", &entry))?;
            tracing::Span::current().record("inode", ns.id().ino);
            Ok(ns)
        })
        .await
    }

    /// Names the network namespace of process `pid` as `name` in
    /// [`run_dir`](UserNs::run_dir), held by the agent until the name is
    /// removed (or the agent exits): like `ip netns attach NAME PID`,
    /// without root. The namespace is opened here first
    /// (`/proc/PID/ns/net`: a process of this user), then handed to the
    /// agent, so a pid that exits or is reused meanwhile never gets another
    /// namespace named. It may belong to any user namespace (a rootless
    /// container's, one of `unshare -Urn`): holding it needs no privilege.
    ///
    /// # Cancel safety
    ///
    /// If dropped after the request was sent, the name may still be made;
    /// remove it to release the namespace.
    ///
    /// # Errors
    ///
    /// [`Error::Namespace`] with [`nsfs::Error::NoSuchProcess`] (`ESRCH`: a
    /// pid that has exited) or [`nsfs::Error::Open`] (`EACCES`: a process
    /// of another user), before anything is asked of the agent;
    /// [`Error::Rootless`] with the agent's step `Name` and `EEXIST` if the
    /// name is taken. Nothing is named on failure.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(user: netns::UserNs, pid: i32) -> netns::Result<()> {
    /// let theirs = user.attach(&"theirs".parse()?, pid).await?;
    /// # Ok(()) }
    /// ```
    #[doc(alias = "ip netns attach")]
    pub async fn attach(&self, name: &NsName, pid: i32) -> Result<NetNs> {
        let span = tracing::debug_span!(
            "attach",
            netns = %name,
            inode = tracing::field::Empty,
            outcome = tracing::field::Empty,
            error = tracing::field::Empty,
        );
        crate::trace::traced(span, async move {
            let ns = NetNs::from_pid(pid)?;
            tracing::Span::current().record("inode", ns.id().ino);
            self.name_netns(name, &ns).await?;
            Ok(ns)
        })
        .await
    }

    /// Names an open network namespace `ns` (from a path, an fd, or a pidfd
    /// with [`NetNs::from_pidfd`]) as `name` in
    /// [`run_dir`](UserNs::run_dir), held by the agent as
    /// [`attach`](UserNs::attach) holds it.
    ///
    /// # Cancel safety
    ///
    /// As [`attach`](UserNs::attach).
    ///
    /// # Errors
    ///
    /// [`Error::Rootless`] with the agent's step `Name` and `EEXIST` if the
    /// name is taken (nothing is named).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(user: netns::UserNs, pidfd: std::os::fd::OwnedFd) -> netns::Result<()> {
    /// use std::os::fd::AsFd;
    /// let ns = netns::NetNs::from_pidfd(pidfd.as_fd())?;
    /// user.name_netns(&"theirs".parse()?, &ns).await?;
    /// # Ok(()) }
    /// ```
    pub async fn name_netns(&self, name: &NsName, ns: &NetNs) -> Result<()> {
        self.inner
            .agent
            .name_netns(ns, name)
            .await
            .map_err(rootless_err("name", self.inner.dir.entry(name)))
    }

    /// Makes a network namespace owned by this user namespace, without a
    /// name: it lives while something holds it (the returned [`NetNs`], a
    /// socket, a process).
    ///
    /// # Cancel safety
    ///
    /// If dropped after the request was sent, the namespace made is
    /// released when its fd arrives.
    ///
    /// # Errors
    ///
    /// [`Error::Rootless`] with the agent's step (`UnshareNet`).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(user: netns::UserNs) -> netns::Result<()> {
    /// let scratch = user.create_anonymous().await?;
    /// # Ok(()) }
    /// ```
    pub async fn create_anonymous(&self) -> Result<NetNs> {
        let span = tracing::debug_span!(
            "create",
            netns = tracing::field::Empty,
            inode = tracing::field::Empty,
            outcome = tracing::field::Empty,
            error = tracing::field::Empty,
        );
        crate::trace::traced(span, async move {
            let ns = self
                .inner
                .agent
                .new_netns(None)
                .await
                .map_err(rootless_err("create", self.inner.dir.path()))?;
            tracing::Span::current().record("inode", ns.id().ino);
            Ok(ns)
        })
        .await
    }

    /// Removes the name `name`: the agent holding it lets the namespace go
    /// (it lives on while something else holds it). Works on names made by
    /// any process of this user (the holder watches its directory).
    ///
    /// # Cancel safety
    ///
    /// As [`RunDir::remove`]: once handed over, the removal completes.
    ///
    /// # Errors
    ///
    /// [`Error::Namespace`] with [`nsfs::Error::NotFound`] if there is no
    /// such name.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo(user: netns::UserNs) -> netns::Result<()> {
    /// user.remove(&"blue".parse()?).await?;
    /// # Ok(()) }
    /// ```
    #[doc(alias = "ip netns delete")]
    pub async fn remove(&self, name: &NsName) -> Result<()> {
        Ok(self.inner.dir.remove(name).await?)
    }

    /// The creator for `dir`: the one of this process, made on first use.
    pub(crate) async fn creator(dir: &RunDir) -> Result<UserNs> {
        if let Some(user) = lock().get(dir.path())
            && user.inner.agent.is_alive()
        {
            return Ok(user.clone());
        }
        // Registers itself as the creator of `dir` (unless another won).
        let user = UserNs::new_in(dir.clone()).await?;
        Ok(lock().get(dir.path()).cloned().unwrap_or(user))
    }
}

/// A socket of `(domain, ty, protocol)` inside `ns` for a rootless caller:
/// made by the agent of the user namespace owning `ns`.
pub(crate) async fn socket_in(ns: &NetNs, domain: i32, ty: i32, protocol: i32) -> Result<OwnedFd> {
    Agent::for_user_ns_of(ns)
        .await
        .map_err(rootless_err(
            "enter the owning user namespace",
            ns.describe(),
        ))?
        .open_socket_in(ns, domain, ty, protocol)
        .await
        .map_err(rootless_err("make a socket", ns.describe()))
}

/// Opens or creates the namespace `name` in `dir` for a rootless caller.
pub(crate) async fn open_name(dir: &RunDir, name: &NsName, mode: OpenMode) -> Result<NetNs> {
    if mode != OpenMode::CreateExclusive {
        match dir.open(name) {
            Ok(ns) => return Ok(ns),
            Err(nsfs::Error::NotFound { .. }) if mode != OpenMode::OpenOnly => {}
            Err(e) => return Err(e.into()),
        }
    }
    let user = UserNs::creator(dir).await?;
    match user.create(name).await {
        Err(e) if mode == OpenMode::CreateOrOpen && e.raw_os_error() == Some(libc::EEXIST) => {
            Ok(dir.open(name)?)
        }
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Err(nsfs::Error::AlreadyExists {
            path: dir.entry(name),
        }
        .into()),
        other => other,
    }
}

/// Which user namespace to join: see [`UserNs::join`].
///
/// # Examples
///
/// ```
/// use netns::UserNsTarget;
/// let by_pid = UserNsTarget::Pid(4242);
/// let by_path = UserNsTarget::Path("/proc/4242/ns/user".into());
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum UserNsTarget {
    /// The user namespace of this process.
    Pid(i32),
    /// A pidfd: the user namespace of its process.
    Pidfd(OwnedFd),
    /// A `user` namespace file (`/proc/PID/ns/user`, a bind mount of one).
    Path(PathBuf),
    /// An fd on a `user` namespace file.
    Fd(OwnedFd),
}

impl UserNsTarget {
    fn describe(&self) -> PathBuf {
        match self {
            UserNsTarget::Pid(pid) => format!("/proc/{pid}/ns/user").into(),
            UserNsTarget::Pidfd(_) => "pidfd".into(),
            UserNsTarget::Path(p) => p.clone(),
            UserNsTarget::Fd(_) => "fd".into(),
        }
    }

    /// An fd the agent can `setns` into with `CLONE_NEWUSER`, checked to
    /// be a user namespace (or a pidfd).
    fn open(&self) -> Result<OwnedFd> {
        let open_path = |path: &Path| -> Result<OwnedFd> {
            let file = std::fs::File::open(path).map_err(|source| match source.kind() {
                std::io::ErrorKind::NotFound => nsfs::Error::NotFound { path: path.into() },
                _ => nsfs::Error::Open {
                    path: path.into(),
                    source,
                },
            })?;
            Ok(OwnedFd::from(file))
        };
        let fd = match self {
            UserNsTarget::Pid(pid) => {
                if *pid <= 0 || !Path::new(&format!("/proc/{pid}")).exists() {
                    return Err(nsfs::Error::NoSuchProcess { pid: *pid }.into());
                }
                open_path(&self.describe())?
            }
            UserNsTarget::Pidfd(fd) => {
                return fd.try_clone().map_err(|source| {
                    nsfs::Error::Open {
                        path: "pidfd".into(),
                        source,
                    }
                    .into()
                });
            }
            UserNsTarget::Path(path) => open_path(path)?,
            UserNsTarget::Fd(fd) => fd.try_clone().map_err(|source| nsfs::Error::Open {
                path: "fd".into(),
                source,
            })?,
        };
        check_user_ns(fd.as_fd(), &self.describe())?;
        Ok(fd)
    }
}

/// Checks that `fd` is a user namespace.
fn check_user_ns(fd: std::os::fd::BorrowedFd<'_>, path: &Path) -> Result<()> {
    Ok(nsfs::check_namespace_type(fd, libc::CLONE_NEWUSER, path)?)
}
