//! iproute2 interop, both ways: namespaces made here are used by `ip`, and
//! namespaces made by `ip netns add` are used here; `ip netns identify`,
//! `ip netns pids` and `ip netns list` agree with ours.
mod common;

use common::*;
use nsfs::{EntryState, NetNs, OpenMode, RunDir};

#[tokio::test]
async fn made_here_used_by_ip() {
    let (dir, name, _g) = fresh_name("here");
    let ns = dir.create(&name, OpenMode::CreateExclusive).await.unwrap();

    let links = ip(&["-n", name.as_str(), "-o", "link", "show"]);
    assert!(links.contains(": lo:"), "{links}");
    assert_eq!(
        links.lines().count(),
        1,
        "a new namespace has only lo: {links}"
    );
    assert!(
        ip(&["netns", "list"])
            .lines()
            .any(|l| l.split_whitespace().next() == Some(name.as_str()))
    );

    // A link made by ip inside shows from a closure run here.
    ip(&[
        "-n",
        name.as_str(),
        "link",
        "add",
        "v0",
        "type",
        "veth",
        "peer",
        "name",
        "v1",
    ]);
    let dev = ns
        .run(|| std::fs::read_to_string("/proc/thread-self/net/dev").unwrap())
        .await
        .unwrap();
    assert!(dev.contains("v0:") && dev.contains("v1:"), "{dev}");

    // ip netns delete removes ours.
    ip(&["netns", "delete", name.as_str()]);
    assert!(dir.list().unwrap().iter().all(|e| e.name != name));
}

#[tokio::test]
async fn made_by_ip_used_here() {
    let (dir, name, _g) = fresh_name("theirs");
    ip(&["netns", "add", name.as_str()]);
    ip(&["-n", name.as_str(), "link", "add", "br-t", "type", "bridge"]);

    let entry = dir
        .list()
        .unwrap()
        .into_iter()
        .find(|e| e.name == name)
        .unwrap();
    assert_eq!(entry.state, EntryState::Mounted);
    let ns = dir.open(&name).unwrap();
    assert_eq!(dir.create(&name, OpenMode::CreateOrOpen).await.unwrap(), ns);
    assert!(matches!(
        dir.create(&name, OpenMode::CreateExclusive).await,
        Err(nsfs::Error::AlreadyExists { .. })
    ));
    let dev = ns
        .run(|| std::fs::read_to_string("/proc/thread-self/net/dev").unwrap())
        .await
        .unwrap();
    assert!(dev.contains("br-t:"), "{dev}");

    dir.remove(&name).await.unwrap();
    let out = std::process::Command::new("ip")
        .args(["-n", name.as_str(), "link"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "ip still sees a removed namespace");
    assert!(!ip(&["netns", "list"]).contains(name.as_str()));
}

#[tokio::test]
async fn identify_and_pids_agree_with_ip() {
    require_root();
    let dir = RunDir::default();
    let (ours, theirs, alias) = (unique("id-ours"), unique("id-theirs"), unique("id-alias"));
    let _g = [&ours, &theirs, &alias].map(|n| NameGuard::new(&dir, n));
    dir.create(&ours, OpenMode::CreateExclusive).await.unwrap();
    ip(&["netns", "add", theirs.as_str()]);

    let in_ours = ChildGuard::sleep_in(&ours);
    let in_theirs = ChildGuard::sleep_in(&theirs);
    let in_ours_too = ChildGuard::sleep_in(&ours);
    for c in [&in_ours, &in_theirs, &in_ours_too] {
        c.wait_exec();
    }
    // ip attaches a second name to ours.
    ip(&[
        "netns",
        "attach",
        alias.as_str(),
        &in_ours.pid().to_string(),
    ]);

    for child in [&in_ours, &in_theirs, &in_ours_too] {
        let pid = child.pid().to_string();
        // ip prints one name (the last match in directory order); we return
        // every name, sorted.
        let theirs = ip(&["netns", "identify", &pid]).trim().to_owned();
        let mine: Vec<String> = dir
            .identify(child.pid())
            .unwrap()
            .into_iter()
            .map(String::from)
            .collect();
        assert!(
            mine.contains(&theirs),
            "identify {pid}: ip says {theirs:?}, we say {mine:?}"
        );
        let want = if child.pid() == in_theirs.pid() { 1 } else { 2 };
        assert_eq!(mine.len(), want, "{mine:?}");
    }
    for name in [&ours, &theirs, &alias] {
        let mut want: Vec<i32> = ip(&["netns", "pids", name.as_str()])
            .lines()
            .map(|l| l.trim().parse().unwrap())
            .collect();
        want.sort();
        assert_eq!(dir.pids(name).await.unwrap(), want, "pids {name}");
    }
    assert_eq!(dir.pids(&theirs).await.unwrap(), [in_theirs.pid()]);
    // The test process itself: in no named namespace, for both.
    let me = std::process::id();
    assert_eq!(ip(&["netns", "identify", &me.to_string()]).trim(), "");
    assert!(
        dir.identify(NetNs::current_thread().unwrap())
            .unwrap()
            .is_empty()
    );
    drop((in_ours, in_theirs, in_ours_too));
    for name in [&ours, &theirs, &alias] {
        dir.remove(name).await.unwrap();
    }
}
