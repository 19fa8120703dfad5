//! The tracing spans of nsproc's public async operations: names, and the
//! `netns`, `inode`, `outcome` and `error` fields.

mod common;

use common::TestNs;
use nsproc::{Command, ExecAgent, ExecMode};
use testkit::{Collector, Seen};
use tracing_subscriber::layer::SubscriberExt;

fn one(spans: Vec<Seen>, what: &str) -> Seen {
    assert_eq!(spans.len(), 1, "{what}: {spans:#?}");
    spans.into_iter().next().unwrap()
}

#[tokio::test]
async fn public_async_operations_have_spans_with_identity_and_outcome() {
    let collect = Collector::default();
    let subscriber = tracing_subscriber::registry().with(collect.clone());
    let _guard = tracing::subscriber::set_default(subscriber);

    let ns = TestNs::new("spans").await;
    let inode = ns.ns.id().ino.to_string();
    let name = ns.name.as_str();

    // spawn + wait, on the fast path.
    let mut child = Command::new("true").netns(name).spawn().await.unwrap();
    child.wait().await.unwrap();
    let spawn = one(collect.take("spawn"), "spawn");
    assert!(spawn.target.starts_with("nsproc"), "{spawn:?}");
    assert_eq!(spawn.fields["netns"], name);
    assert_eq!(spawn.fields["inode"], inode);
    assert_eq!(spawn.fields["outcome"], "ok");
    assert_eq!(spawn.fields["program"], "\"true\"");
    assert!(!spawn.fields.contains_key("error"), "{spawn:?}");
    let wait = one(collect.take("wait"), "wait");
    assert_eq!(wait.fields["netns"], name);
    assert_eq!(wait.fields["outcome"], "ok");

    // output (with its spawn and wait inside), on the exec path.
    Command::new("true")
        .netns(name)
        .exec_mode(ExecMode::IpNetnsExec)
        .output()
        .await
        .unwrap();
    let output = one(collect.take("output"), "output");
    assert_eq!(output.fields["netns"], name);
    assert_eq!(output.fields["inode"], inode);
    assert_eq!(output.fields["outcome"], "ok");
    one(collect.take("wait_with_output"), "wait_with_output");

    // A failure: outcome "error" and the error's message.
    let err = Command::new("/nonexistent/program")
        .netns(name)
        .status()
        .await
        .unwrap_err();
    let status = one(collect.take("status"), "status");
    assert_eq!(status.fields["outcome"], "error");
    assert_eq!(status.fields["error"], err.to_string());
    assert_eq!(status.fields["inode"], inode);
    let err = Command::new("true").netns("a/b").spawn().await.unwrap_err();
    let spawn = one(collect.take("spawn"), "bad name");
    assert_eq!(spawn.fields["netns"], "a/b");
    assert_eq!(spawn.fields["outcome"], "error");
    assert_eq!(spawn.fields["error"], err.to_string());
    assert!(!spawn.fields.contains_key("inode"), "{spawn:?}");

    // kill, and an agent's start and close.
    let mut child = Command::new("sleep")
        .arg("60")
        .netns(name)
        .spawn()
        .await
        .unwrap();
    child.kill().await.unwrap();
    let kill = one(collect.take("kill"), "kill");
    assert_eq!(kill.fields["outcome"], "ok");
    let agent = ExecAgent::start(name).await.unwrap();
    agent.close().await.unwrap();
    for op in ["exec_agent_start", "exec_agent_close"] {
        let span = one(collect.take(op), op);
        assert_eq!(span.fields["inode"], inode, "{span:?}");
        assert_eq!(span.fields["outcome"], "ok", "{span:?}");
    }
    nsproc::close_cached_agents();

    // nsfs's Target, which every spawn opens: `open` and `remove` spans.
    let at = std::path::PathBuf::from(format!("/etc/netns/.spans-{}", std::process::id()));
    let target = nsfs::Target::from(at.as_path());
    let created = target
        .open(&nsfs::RunDir::default(), nsfs::OpenMode::CreateExclusive)
        .await
        .unwrap();
    target.remove(&nsfs::RunDir::default()).await.unwrap();
    let opens = collect.take("open");
    let open = opens
        .iter()
        .find(|s| s.fields.get("mode").is_some_and(|m| m == "CreateExclusive"))
        .unwrap_or_else(|| panic!("{opens:#?}"));
    assert_eq!(open.target, "nsfs::target");
    assert_eq!(open.fields["netns"], at.display().to_string());
    assert_eq!(open.fields["inode"], created.id().ino.to_string());
    assert_eq!(open.fields["outcome"], "ok");
    let remove = one(collect.take("remove"), "remove");
    assert_eq!(remove.fields["outcome"], "ok");
}
