//! nsproxy rows: the agent's start (ready to serve), in a small parent and in
//! one holding 2 GiB of touched memory, and the agent's private memory.

use std::time::{Duration, Instant};

use nsfs::{NsName, RunDir};
use nsproxy::{Agent, AgentOptions};

use super::RowSpec;
use crate::harness::{BResult, Config, Measurement, Target, Unit, err, pair};
use crate::scratch::Scratch;

pub(super) fn rows() -> Vec<RowSpec> {
    vec![
        RowSpec {
            name: "nsproxy/agent-start",
            about: "nsproxy::Agent::start until the agent is ready (spawned, in the netns, handshake done; closed untimed) vs spawn+wait of /bin/true with tokio::process (the bare cost of a process)",
            target: Target::AbsAtMost(2000.0),
            run: |c| Box::pin(agent_start(c)),
        },
        RowSpec {
            name: "nsproxy/agent-start-2gib-parent",
            about: "nsproxy::Agent::start until ready, from a worker holding 2 GiB of touched memory vs from a small worker (both this binary, asked in turn)",
            target: Target::RatioAtMost(1.2),
            run: |c| Box::pin(agent_big_parent(c)),
        },
        RowSpec {
            name: "nsproxy/agent-private-dirty",
            about: "Private_Dirty of a ready agent from /proc/PID/smaps_rollup (absolute; notes give Rss and Pss)",
            target: Target::AbsAtMost(1024.0),
            run: |c| Box::pin(agent_memory(c)),
        },
    ]
}

/// Operations the rows of this module ask worker processes for.
pub(super) async fn worker_op(op: &str, arg: &str) -> Option<BResult<Duration>> {
    match op {
        "agent-start" => Some(
            async {
                Ok(start_once(&RunDir::default().open(&NsName::new(arg)?)?)
                    .await?
                    .0)
            }
            .await,
        ),
        _ => None,
    }
}

/// Starts an agent in `ns`, times it until ready, and returns it.
async fn start_once(ns: &nsfs::NetNs) -> BResult<(Duration, Agent)> {
    let start = Instant::now();
    let agent = Agent::start(ns, AgentOptions::new()).await?;
    Ok((start.elapsed(), agent))
}

async fn agent_start(cfg: &Config) -> BResult<Measurement> {
    let s = Scratch::new("ag").await?;
    let ns = &s.ns;
    let mut ours = async || {
        let (t, agent) = start_once(ns).await?;
        agent.close().await?;
        Ok(vec![t])
    };
    let mut reference = async || {
        let start = Instant::now();
        let status = tokio::process::Command::new("/bin/true").status().await?;
        if !status.success() {
            return Err(err(format!("/bin/true: {status}")));
        }
        Ok(vec![start.elapsed()])
    };
    let res = pair(cfg.plan(300, 60), &mut ours, &mut reference).await;
    s.remove().await?;
    let [o, r] = res?;
    Measurement::versus(
        "Agent::start to ready",
        &o,
        "tokio::process /bin/true spawn+wait",
        &r,
    )
}

async fn agent_big_parent(cfg: &Config) -> BResult<Measurement> {
    let s = Scratch::new("ag").await?;
    let res = super::spawn::big_vs_small(cfg, "agent-start", &s.name, (40, 10)).await;
    s.remove().await?;
    let (o, r, note) = res?;
    let gib = cfg.ballast_mib as f64 / 1024.0;
    Ok(Measurement::versus(
        &format!("agent ready, {gib} GiB parent"),
        &o,
        "agent ready, small parent",
        &r,
    )?
    .note(note))
}

/// A field of `/proc/PID/smaps_rollup`, in KiB.
fn smaps_rollup(pid: i32, field: &str) -> BResult<f64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))?;
    let line = text
        .lines()
        .find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))
        .ok_or_else(|| err(format!("no {field} in smaps_rollup of {pid}")))?;
    Ok(line
        .split_whitespace()
        .nth(1)
        .ok_or_else(|| err("smaps_rollup: bad line"))?
        .parse()?)
}

async fn agent_memory(cfg: &Config) -> BResult<Measurement> {
    let s = Scratch::new("ag").await?;
    let res = async {
        let (mut dirty, mut rss, mut pss) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..cfg.size(10, 3) {
            let (_, agent) = start_once(&s.ns).await?;
            // Once ready, the agent sits in its loop: what it holds now is
            // what every open agent costs.
            let pid = agent.pid();
            let got = (
                smaps_rollup(pid, "Private_Dirty"),
                smaps_rollup(pid, "Rss"),
                smaps_rollup(pid, "Pss"),
            );
            agent.close().await?;
            dirty.push(got.0?);
            rss.push(got.1?);
            pss.push(got.2?);
        }
        let med = |v: &[f64]| crate::harness::Stats::of(v).map(|s| s.median);
        let note = format!(
            "Rss {:.0} KiB, Pss {:.0} KiB (medians of {} agents)",
            med(&rss)?,
            med(&pss)?,
            rss.len()
        );
        Ok(Measurement::alone(Unit::KiB, "agent Private_Dirty", &dirty)?.note(note))
    }
    .await;
    s.remove().await?;
    res
}
