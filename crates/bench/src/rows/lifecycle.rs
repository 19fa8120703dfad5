//! nsfs rows: create+remove of a named namespace, and a closure run inside one.

use std::hint::black_box;
use std::time::Instant;

use nsfs::{NsName, OpenMode, RunDir};

use super::RowSpec;
use crate::harness::{BResult, Config, Measurement, Target, pair, triple};
use crate::scratch::{Scratch, register, run_quiet, unique_name, unregister};

pub(super) fn rows() -> Vec<RowSpec> {
    vec![
        RowSpec {
            name: "nsfs/create-remove",
            about: "create a named netns and remove it (nsfs RunDir::create + remove) vs `ip netns add NAME` + `ip netns del NAME` as processes",
            target: Target::RatioAtMost(0.2),
            run: |c| Box::pin(create_remove(c)),
        },
        RowSpec {
            name: "nsfs/closure",
            about: "a trivial closure run inside a netns with NetNs::run (namespace thread, there and back) vs the same closure on tokio::task::spawn_blocking",
            target: Target::AbsAtMost(30.0),
            run: |c| Box::pin(closure(c)),
        },
    ]
}

async fn create_remove(cfg: &Config) -> BResult<Measurement> {
    let dir = RunDir::default();
    let mut ours = async || {
        let name = unique_name("cr");
        register(&name);
        let ns_name = NsName::new(name.clone())?;
        let start = Instant::now();
        let ns = dir.create(&ns_name, OpenMode::CreateExclusive).await?;
        drop(ns);
        dir.remove(&ns_name).await?;
        let t = start.elapsed();
        unregister(&name);
        Ok(vec![t])
    };
    let mut reference = async || {
        let name = unique_name("ip");
        register(&name);
        let start = Instant::now();
        run_quiet("ip", &["netns", "add", &name]).await?;
        run_quiet("ip", &["netns", "del", &name]).await?;
        let t = start.elapsed();
        unregister(&name);
        Ok(vec![t])
    };
    let [o, r] = pair(cfg.plan(200, 40), &mut ours, &mut reference).await?;
    Measurement::versus("nsfs create+remove", &o, "ip netns add+del", &r)
}

async fn closure(cfg: &Config) -> BResult<Measurement> {
    let scratch = Scratch::new("cl").await?;
    let ns = &scratch.ns;
    let exec = nsfs::Executor::global()?;
    let mut ours = async || {
        let start = Instant::now();
        black_box(ns.run(|| black_box(42u64)).await?);
        Ok(vec![start.elapsed()])
    };
    let mut reference = async || {
        let start = Instant::now();
        black_box(tokio::task::spawn_blocking(|| black_box(42u64)).await?);
        Ok(vec![start.elapsed()])
    };
    // The same threads and handoff as NetNs::run, without the two setns: it
    // splits ours into handoff and namespace switch.
    let mut home = async || {
        let start = Instant::now();
        black_box(exec.run_home(|| black_box(42u64)).await?);
        Ok(vec![start.elapsed()])
    };
    let res = triple(cfg.plan(5000, 1000), &mut ours, &mut reference, &mut home).await;
    scratch.remove().await?;
    let [o, r, h] = res?;
    Measurement::versus("NetNs::run", &o, "spawn_blocking", &r)?
        .with_floor("Executor::run_home: same threads, no namespace switch", &h)
}
