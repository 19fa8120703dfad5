//! Rootless rows: the same operations made by an unprivileged user (uid
//! 65534, in a worker process started under `setpriv` with a private
//! `XDG_RUNTIME_DIR`) in namespaces owned by a user namespace of its own,
//! against root mode and against `unshare -Urn true`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use netns::{Handle, OpenMode};
use tokio::sync::OnceCell;

use super::RowSpec;
use super::rtnl::get_link_1;
use crate::harness::{BResult, Config, Measurement, Target, err, pair};
use crate::scratch::Scratch;
use crate::worker::Worker;

/// The uid (and gid) the rootless side runs as.
const NOBODY: u32 = 65534;

pub(super) fn rows() -> Vec<RowSpec> {
    vec![
        RowSpec {
            name: "rootless/open-first-answer",
            about: "as uid 65534: netns::Handle::open on a namespace of its own user namespace (netlink socket made by the user-namespace agent) and the answer to get-link 1, vs the same as root on a named netns",
            target: Target::RatioAtMost(2.0),
            run: |c| Box::pin(open_first_answer(c)),
        },
        RowSpec {
            name: "rootless/spawn-vs-root-fast",
            about: "as uid 65534: spawn+wait /bin/true with nsproc::Command in a namespace of its own user namespace (through its agent), vs the same as root on the fast path",
            target: Target::RatioAtMost(1.5),
            run: |c| Box::pin(spawn_vs_root(c)),
        },
        RowSpec {
            name: "rootless/create-remove-vs-unshare",
            about: "as uid 65534: create + remove a named namespace (UserNs::create, UserNs::remove) vs `unshare -Urn true` run as a process by the same user",
            target: Target::RatioAtMost(0.5),
            run: |c| Box::pin(create_vs_unshare(c)),
        },
    ]
}

/// Operations the unprivileged worker measures.
pub(super) async fn worker_op(op: &str, arg: &str) -> Option<BResult<Duration>> {
    Some(match op {
        "rootless-open" => open_once(arg).await,
        "rootless-spawn" => spawn_once(arg).await,
        "rootless-create-remove" => create_remove_once(arg).await,
        "unshare-urn" => unshare_once().await,
        _ => return None,
    })
}

/// The worker's namespace `name`, made once (untimed).
async fn ensure(name: &str) -> BResult<()> {
    static MADE: OnceCell<()> = OnceCell::const_new();
    MADE.get_or_try_init(|| async {
        Handle::open(name, OpenMode::CreateOrOpen)
            .await?
            .close()
            .await;
        Ok::<(), crate::harness::BoxError>(())
    })
    .await?;
    Ok(())
}

async fn open_once(name: &str) -> BResult<Duration> {
    ensure(name).await?;
    let start = Instant::now();
    let h = Handle::open(name, OpenMode::OpenOnly).await?;
    get_link_1(h.rtnetlink()).await?;
    let t = start.elapsed();
    h.close().await;
    Ok(t)
}

async fn spawn_true(name: &str) -> BResult<Duration> {
    let start = Instant::now();
    let status = nsproc::Command::new("/bin/true")
        .netns(name)
        .status()
        .await?;
    let t = start.elapsed();
    if !status.success() {
        return Err(err(format!("/bin/true: {status}")));
    }
    Ok(t)
}

async fn spawn_once(name: &str) -> BResult<Duration> {
    ensure(name).await?;
    spawn_true(name).await
}

async fn create_remove_once(name: &str) -> BResult<Duration> {
    static USER: OnceCell<netns::UserNs> = OnceCell::const_new();
    let user = USER.get_or_try_init(netns::UserNs::new).await?;
    let name: nsfs::NsName = name.parse()?;
    let start = Instant::now();
    drop(user.create(&name).await?);
    user.remove(&name).await?;
    Ok(start.elapsed())
}

async fn unshare_once() -> BResult<Duration> {
    let start = Instant::now();
    let status = tokio::process::Command::new("unshare")
        .args(["-Urn", "true"])
        .status()
        .await?;
    let t = start.elapsed();
    if !status.success() {
        return Err(err(format!("unshare -Urn true: {status}")));
    }
    Ok(t)
}

/// A private run directory for the unprivileged worker (0700, owned by
/// uid 65534), removed on drop.
struct PrivateDir(PathBuf);

impl PrivateDir {
    fn new() -> BResult<PrivateDir> {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("nsbench-rootless-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir)?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
        nix::unistd::chown(
            &dir,
            Some(nix::unistd::Uid::from_raw(NOBODY)),
            Some(nix::unistd::Gid::from_raw(NOBODY)),
        )?;
        Ok(PrivateDir(dir))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `f` with a worker running as uid 65534, then stops it.
async fn with_nobody<T>(f: impl AsyncFnOnce(&mut Worker) -> BResult<T>) -> BResult<T> {
    let dir = PrivateDir::new()?;
    let mut worker = Worker::start_as(NOBODY, dir.path()).await?;
    let res = f(&mut worker).await;
    let stopped = worker.stop().await;
    let out = res?;
    stopped?;
    Ok(out)
}

async fn open_first_answer(cfg: &Config) -> BResult<Measurement> {
    let scratch = Scratch::new("ro").await?;
    let name = scratch.name.clone();
    let res = with_nobody(async |w: &mut Worker| {
        let mut ours = async || w.run("rootless-open", "ro", 1).await;
        let mut reference = async || {
            let start = Instant::now();
            let h = Handle::open(name.as_str(), OpenMode::OpenOnly).await?;
            get_link_1(h.rtnetlink()).await?;
            let t = start.elapsed();
            h.close().await;
            Ok(vec![t])
        };
        pair(cfg.plan(300, 60), &mut ours, &mut reference).await
    })
    .await;
    scratch.remove().await?;
    let [o, r] = res?;
    Ok(Measurement::versus(
        "uid 65534: Handle::open + get-link",
        &o,
        "root: Handle::open + get-link",
        &r,
    )?
    .note("rootless side measured inside a worker process running as uid 65534"))
}

async fn spawn_vs_root(cfg: &Config) -> BResult<Measurement> {
    let scratch = Scratch::new("rs").await?;
    let name = scratch.name.clone();
    let res = with_nobody(async |w: &mut Worker| {
        let mut ours = async || w.run("rootless-spawn", "rs", 1).await;
        let mut reference = async || Ok(vec![spawn_true(&name).await?]);
        pair(cfg.plan(300, 60), &mut ours, &mut reference).await
    })
    .await;
    scratch.remove().await?;
    let [o, r] = res?;
    Ok(Measurement::versus(
        "uid 65534: nsproc spawn+wait (agent)",
        &o,
        "root: nsproc Fast spawn+wait",
        &r,
    )?
    .note("rootless side measured inside a worker process running as uid 65534"))
}

async fn create_vs_unshare(cfg: &Config) -> BResult<Measurement> {
    let [o, r] = with_nobody(async |w: &mut Worker| {
        // Both sides ask the one worker, in turn.
        let w = tokio::sync::Mutex::new(w);
        let mut ours = async || w.lock().await.run("rootless-create-remove", "rc", 1).await;
        let mut reference = async || w.lock().await.run("unshare-urn", "-", 1).await;
        pair(cfg.plan(300, 60), &mut ours, &mut reference).await
    })
    .await?;
    Ok(Measurement::versus(
        "uid 65534: UserNs create + remove",
        &o,
        "uid 65534: unshare -Urn true",
        &r,
    )?
    .note("both sides measured inside one worker process running as uid 65534"))
}
