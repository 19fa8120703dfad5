//! The run-directory monitor: events in order, "added" only once mounted, a
//! stale placeholder never reported, moves, overflow resync, and the end of
//! the stream when the directory goes.
mod common;

use std::fs;
use std::path::Path;
use std::time::Duration;

use common::*;
use futures::StreamExt;
use nix::mount::{MsFlags, mount};
use nsfs::{Monitor, NetNs, NsName, OpenMode, RunDir, RunDirEvent};

/// The next event, failing the test (not hanging it) if none comes.
async fn next(events: &mut Monitor) -> RunDirEvent {
    match tokio::time::timeout(Duration::from_secs(20), events.next()).await {
        Ok(Some(Ok(event))) => event,
        other => panic!("expected an event, got {other:?}"),
    }
}

/// The next event about a name starting with `prefix` (the default run
/// directory is shared with the other tests of this binary).
async fn next_of(events: &mut Monitor, prefix: &str) -> RunDirEvent {
    loop {
        match next(events).await {
            RunDirEvent::Added(n) | RunDirEvent::Removed(n) if !n.as_str().starts_with(prefix) => {}
            event => return event,
        }
    }
}

/// The next `n` events about names starting with `prefix`.
async fn next_n(events: &mut Monitor, prefix: &str, n: usize) -> Vec<RunDirEvent> {
    let mut got = Vec::new();
    for _ in 0..n {
        got.push(next_of(events, prefix).await);
    }
    got
}

fn name(s: &str) -> NsName {
    NsName::new(s).unwrap()
}

/// Bind-mounts a new anonymous namespace on `path`, as a creator does last.
async fn mount_new_ns_on(path: &Path) -> NetNs {
    let (ns, ()) = nsfs::Executor::global()
        .unwrap()
        .run_in_new(|| ())
        .await
        .unwrap();
    let fd = ns.try_clone_fd().unwrap();
    let source = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd));
    mount(
        Some(source.as_str()),
        path,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .unwrap();
    ns
}

#[tokio::test]
async fn events_in_order_ours_and_iproute2s() {
    require_root();
    let dir = RunDir::default();
    let prefix = format!("mon-{}-", std::process::id());
    let [a, b, c] = ["a", "b", "c"].map(|x| name(&format!("{prefix}{x}")));
    let _g = [&a, &b, &c].map(|n| NameGuard::new(&dir, n));
    let mut events = dir.monitor().unwrap();

    // Several changes before the monitor is polled: reported in order.
    dir.create(&a, OpenMode::CreateExclusive).await.unwrap();
    ip(&["netns", "add", b.as_str()]);
    dir.create(&c, OpenMode::CreateExclusive).await.unwrap();
    assert_eq!(
        next_n(&mut events, &prefix, 3).await,
        [
            RunDirEvent::Added(a.clone()),
            RunDirEvent::Added(b.clone()),
            RunDirEvent::Added(c.clone())
        ]
    );
    dir.remove(&b).await.unwrap();
    ip(&["netns", "delete", a.as_str()]);
    dir.remove(&c).await.unwrap();
    assert_eq!(
        next_n(&mut events, &prefix, 3).await,
        [
            RunDirEvent::Removed(b.clone()),
            RunDirEvent::Removed(a.clone()),
            RunDirEvent::Removed(c.clone())
        ]
    );

    // One change at a time, awaited: add, remove, add by ip, remove by ip.
    dir.create(&a, OpenMode::CreateExclusive).await.unwrap();
    assert_eq!(
        next_of(&mut events, &prefix).await,
        RunDirEvent::Added(a.clone())
    );
    dir.remove(&a).await.unwrap();
    assert_eq!(
        next_of(&mut events, &prefix).await,
        RunDirEvent::Removed(a.clone())
    );
    ip(&["netns", "add", a.as_str()]);
    assert_eq!(
        next_of(&mut events, &prefix).await,
        RunDirEvent::Added(a.clone())
    );
    ip(&["netns", "delete", a.as_str()]);
    assert_eq!(
        next_of(&mut events, &prefix).await,
        RunDirEvent::Removed(a.clone())
    );
}

#[tokio::test]
async fn added_only_once_mounted_and_stale_never_reported() {
    require_root();
    let tmp = TempRunDir::new("mon-stale");
    let dir = &tmp.dir;
    dir.prepare().unwrap();
    let mut events = dir.monitor().unwrap();
    let [stale, late, marker] = ["stale", "late", "marker"].map(name);

    // A placeholder that never gets a namespace, removed: no event at all.
    fs::write(dir.entry(&stale), b"").unwrap();
    // A placeholder whose namespace comes later (as a slow creator does it).
    fs::write(dir.entry(&late), b"").unwrap();
    fs::remove_file(dir.entry(&stale)).unwrap();
    // Events come in order: once the marker is reported, the placeholders
    // have been seen, and were not reported.
    dir.create(&marker, OpenMode::CreateExclusive)
        .await
        .unwrap();
    assert_eq!(next(&mut events).await, RunDirEvent::Added(marker.clone()));

    // Reported through the mount-table change (inotify sees no mount).
    let ns = mount_new_ns_on(&dir.entry(&late)).await;
    assert_eq!(next(&mut events).await, RunDirEvent::Added(late.clone()));
    assert_eq!(dir.open(&late).unwrap(), ns);

    dir.remove(&late).await.unwrap();
    dir.remove(&marker).await.unwrap();
    assert_eq!(next(&mut events).await, RunDirEvent::Removed(late));
    assert_eq!(next(&mut events).await, RunDirEvent::Removed(marker));
}

#[tokio::test]
async fn present_at_start_not_added_but_removed() {
    require_root();
    let tmp = TempRunDir::new("mon-start");
    let dir = &tmp.dir;
    let [old, new, half] = ["old", "new", "half"].map(name);
    dir.create(&old, OpenMode::CreateExclusive).await.unwrap();
    // A placeholder present at start is pending: added once mounted.
    fs::write(dir.entry(&half), b"").unwrap();
    let mut events = dir.monitor().unwrap();
    dir.create(&new, OpenMode::CreateExclusive).await.unwrap();
    assert_eq!(next(&mut events).await, RunDirEvent::Added(new.clone()));
    let ns = mount_new_ns_on(&dir.entry(&half)).await;
    assert_eq!(next(&mut events).await, RunDirEvent::Added(half.clone()));
    assert_eq!(dir.open(&half).unwrap(), ns);
    dir.remove(&half).await.unwrap();
    assert_eq!(next(&mut events).await, RunDirEvent::Removed(half));
    dir.remove(&old).await.unwrap();
    assert_eq!(next(&mut events).await, RunDirEvent::Removed(old));
    dir.remove(&new).await.unwrap();
    assert_eq!(next(&mut events).await, RunDirEvent::Removed(new));
}

#[tokio::test]
async fn moved_in_and_out() {
    require_root();
    // Not prepared (no bind mount of the directory on itself), so files can
    // be renamed in and out of it within the tmpfs.
    let tmp = TempRunDir::new("mon-move");
    let dir = &tmp.dir;
    let mut events = dir.monitor().unwrap();
    let outside = tmp.path().with_extension("outside");
    let [p, q, r, marker] = ["p", "q", "r", "marker"].map(name);
    // A plain file moved in is a placeholder; moved about and out, it was
    // never a namespace: no event.
    fs::write(&outside, b"").unwrap();
    fs::rename(&outside, dir.entry(&p)).unwrap();
    fs::rename(dir.entry(&p), dir.entry(&q)).unwrap();
    fs::rename(dir.entry(&q), &outside).unwrap();
    // Moved in again, then a namespace is mounted on it: added.
    fs::rename(&outside, dir.entry(&r)).unwrap();
    fs::write(dir.entry(&marker), b"").unwrap();
    let ns = mount_new_ns_on(&dir.entry(&marker)).await;
    assert_eq!(next(&mut events).await, RunDirEvent::Added(marker.clone()));
    assert_eq!(dir.open(&marker).unwrap(), ns);
    let ns = mount_new_ns_on(&dir.entry(&r)).await;
    assert_eq!(next(&mut events).await, RunDirEvent::Added(r.clone()));
    assert_eq!(dir.open(&r).unwrap(), ns);
    dir.remove(&r).await.unwrap();
    assert_eq!(next(&mut events).await, RunDirEvent::Removed(r));
    dir.remove(&marker).await.unwrap();
    assert_eq!(next(&mut events).await, RunDirEvent::Removed(marker));
}

/// Counts this crate's WARN events (on the thread it is the default of).
#[derive(Clone, Default)]
struct Warnings(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Warnings {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let meta = event.metadata();
        if *meta.level() == tracing::Level::WARN && meta.target().starts_with("nsfs") {
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// An overflow is a Resync event, and a WARN (events were lost).
#[tokio::test]
async fn overflow_is_reported_as_a_resync() {
    require_root();
    use tracing_subscriber::layer::SubscriberExt;
    let warnings = Warnings::default();
    let _default =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(warnings.clone()));
    let tmp = TempRunDir::new("mon-overflow");
    let dir = &tmp.dir;
    dir.prepare().unwrap();
    let mut events = dir.monitor().unwrap();
    let kept = name("kept");
    dir.create(&kept, OpenMode::CreateExclusive).await.unwrap();
    // More events than the kernel queues, while nobody reads them.
    let limit: usize = fs::read_to_string("/proc/sys/fs/inotify/max_queued_events")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let junk = tmp.path().join("junk");
    for _ in 0..limit / 2 + 100 {
        fs::write(&junk, b"").unwrap();
        fs::remove_file(&junk).unwrap();
    }
    let mut resync = None;
    for _ in 0..3 {
        match next(&mut events).await {
            RunDirEvent::Resync(now) => {
                resync = Some(now);
                break;
            }
            RunDirEvent::Added(n) => assert_eq!(n, kept),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(
        resync.expect("no Resync after an overflow"),
        vec![kept.clone()]
    );
    assert_eq!(
        warnings.0.load(std::sync::atomic::Ordering::Relaxed),
        1,
        "an overrun logs one WARN"
    );
    // Events go on from the resynced state.
    dir.remove(&kept).await.unwrap();
    assert_eq!(next(&mut events).await, RunDirEvent::Removed(kept));
}

#[tokio::test]
async fn missing_dir_is_created_and_its_removal_ends_the_stream() {
    require_root();
    let tmp = TempRunDir::new("mon-gone");
    assert!(!tmp.path().exists());
    let mut events = tmp.dir.monitor().unwrap();
    assert!(
        tmp.path().is_dir(),
        "monitor did not create the run directory"
    );
    fs::remove_dir(tmp.path()).unwrap();
    let end = tokio::time::timeout(Duration::from_secs(20), events.next())
        .await
        .unwrap();
    let err = end.expect("stream ended without an error").unwrap_err();
    assert!(
        matches!(err, nsfs::Error::Monitor { ref path, .. } if path == tmp.path()),
        "{err:?}"
    );
    assert!(events.next().await.is_none());
}

#[test]
fn monitor_needs_a_runtime() {
    require_root();
    let err = RunDir::new("/run/netns").monitor().unwrap_err();
    assert!(matches!(err, nsfs::Error::Monitor { .. }), "{err:?}");
}

#[tokio::test]
async fn cannot_watch_a_plain_file() {
    require_root();
    let tmp = TempRunDir::new("mon-file");
    fs::write(tmp.path(), b"").unwrap();
    let err = tmp.dir.monitor().unwrap_err();
    assert!(matches!(err, nsfs::Error::Monitor { .. }), "{err:?}");
    // A typed error at start, where `ip netns monitor` watches the file for
    // ever (documented on RunDir::monitor).
    assert_eq!(err.raw_os_error(), Some(libc::ENOTDIR), "{err:?}");
    assert!(
        fs::metadata(tmp.path()).unwrap().is_file(),
        "the file is left as it was"
    );
    fs::remove_file(tmp.path()).unwrap();
}
