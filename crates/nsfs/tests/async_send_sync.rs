//! The public futures and types are Send (and Sync/Unpin where it matters),
//! so they can be spawned and shared. Compile-time checks; the one runtime
//! assertion makes the test binary do something.
use nsfs::{Error, Executor, Monitor, NetNs, NsName, OpenMode, RunDir, RunDirEvent, Target};
use testkit::{send, send_sync, unpin};

#[allow(dead_code, clippy::diverging_sub_expression)]
fn futures_are_send(dir: RunDir, name: NsName, ns: NetNs, exec: Executor) {
    send(&dir.create(&name, OpenMode::CreateOrOpen));
    send(&dir.remove(&name));
    send(&dir.attach(&name, 1));
    send(&dir.pids(&name));
    send(&ns.run(|| ()));
    send(&exec.run_in(&ns, || ()));
    send(&exec.run_home(|| ()));
    send(&exec.run_in_new(|| ()));
}

#[test]
fn types_are_send_sync_unpin() {
    // A tuple is Send and Sync only if each of its types is.
    send_sync::<(
        RunDir,
        NetNs,
        NsName,
        Executor,
        Error,
        RunDirEvent,
        Target,
        Monitor,
    )>();
    unpin::<Monitor>();
    let _ = futures_are_send;
}
