//! Every public async operation runs in a DEBUG span named after it, with
//! the namespace's name (`netns`), its inode where known, and the outcome
//! (`outcome`, plus `error` on failure), recorded when it ends.
mod common;

use common::*;
use nsfs::OpenMode;
use testkit::Collector;
use tracing_subscriber::layer::SubscriberExt;

#[test]
fn operations_have_spans_with_name_inode_and_outcome() {
    require_root();
    let collect = Collector::default();
    let subscriber = tracing_subscriber::registry().with(collect.clone());
    let _default = tracing::subscriber::set_default(subscriber);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let tmp = TempRunDir::new("spans");
    let name = unique("spans");
    let ino = rt.block_on(async {
        let ns = tmp
            .dir
            .create(&name, OpenMode::CreateExclusive)
            .await
            .unwrap();
        tmp.dir.pids(&name).await.unwrap();
        tmp.dir.remove(&name).await.unwrap();
        tmp.dir.remove(&name).await.unwrap_err();
        ns.run_short(|| ()).await.unwrap();
        ns.run(|| ()).await.unwrap();
        ns.id().ino.to_string()
    });
    let closed: Vec<_> = collect
        .closed()
        .into_iter()
        .filter(|s| s.target.starts_with("nsfs"))
        .collect();
    let names: Vec<_> = closed.iter().map(|s| s.name).collect();
    assert_eq!(
        names,
        [
            "create",
            "pids",
            "remove",
            "remove",
            "run_in_short",
            "run_in"
        ],
        "{closed:#?}"
    );
    for span in &closed[..4] {
        assert_eq!(span.fields["netns"], name.as_str(), "{span:?}");
    }
    let entry = tmp.dir.entry(&name).display().to_string();
    for span in &closed[4..] {
        assert_eq!(span.fields["netns"], entry, "{span:?}");
        assert_eq!(span.fields["inode"], ino, "{span:?}");
        assert_eq!(span.fields["outcome"], "ok", "{span:?}");
    }
    let field = |i: usize, f: &str| closed[i].fields.get(f).map(String::as_str);
    assert_eq!(field(0, "inode"), Some(ino.as_str()));
    assert_eq!(field(1, "inode"), Some(ino.as_str()));
    for span in &closed[..3] {
        assert_eq!(
            span.fields.get("outcome").map(String::as_str),
            Some("ok"),
            "{span:?}"
        );
        assert!(!span.fields.contains_key("error"), "{span:?}");
    }
    assert_eq!(field(3, "outcome"), Some("error"));
    assert!(
        field(3, "error").is_some_and(|e| e.contains("not found")),
        "{:?}",
        closed[3]
    );
}
