//! The iproute2 sides of the topology rows: the same topology as `ip`
//! commands, one process per command as emulators run them, or as
//! `ip -batch` scripts.

use futures::{StreamExt, TryStreamExt};

use super::Topo;
use crate::harness::BResult;

/// How many `ip` processes run at once on the one-process-per-command side:
/// a modest worker pool, like containerlab's per-node workers (Mininet runs
/// its commands one at a time).
pub(crate) const PROCESSES: usize = 8;

/// One `ip` process's arguments.
type Args = Vec<String>;

/// The `ip` commands that build `topo`, in three phases: the namespaces; the
/// veths; per node, its addresses, links up and route (in that order). Each
/// command is the argument list of one `ip` process, in the netns exec form
/// (`ip -n NAME ...`).
pub(crate) fn commands(topo: &Topo) -> (Vec<Args>, Vec<Args>, Vec<Vec<Args>>) {
    let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Args>();
    let create = topo.names.iter().map(|n| s(&["netns", "add", n])).collect();
    let veths = topo
        .links
        .iter()
        .map(|l| {
            let (a, b) = (&topo.names[l.a], &topo.names[l.b]);
            s(&[
                "-n", a, "link", "add", l.a_if, "type", "veth", "peer", "name", l.b_if, "netns", b,
            ])
        })
        .collect();
    let config = (0..topo.names.len())
        .map(|i| {
            node_script(topo, i)
                .lines()
                .map(|line| {
                    let mut args = s(&["-n", &topo.names[i]]);
                    args.extend(line.split(' ').map(str::to_owned));
                    args
                })
                .collect()
        })
        .collect();
    (create, veths, config)
}

/// Node `i`'s configuration as `ip -batch` lines: addresses, links up (and
/// `lo`), the route.
pub(crate) fn node_script(topo: &Topo, i: usize) -> String {
    let ends = topo.ends(i);
    let mut s = String::new();
    for e in &ends {
        s.push_str(&format!(
            "addr add {}/{} dev {}\n",
            e.addr,
            super::LINK_PREFIX,
            e.name
        ));
    }
    for e in &ends {
        s.push_str(&format!("link set {} up\n", e.name));
    }
    s.push_str("link set lo up\n");
    let (dst, len) = super::ROUTE;
    s.push_str(&format!("route add {dst}/{len} via {}\n", topo.gateway(i)));
    s
}

/// Builds `topo` with one `ip` process per command, [`PROCESSES`] at a time;
/// the commands of one node's configuration run one after another.
pub(crate) async fn build_by_processes(topo: &Topo) -> BResult<()> {
    let (create, veths, config) = commands(topo);
    for phase in [create, veths] {
        futures::stream::iter(phase)
            .map(|args| async move { ip(&args).await })
            .buffer_unordered(PROCESSES)
            .try_for_each(|()| async { Ok(()) })
            .await?;
    }
    futures::stream::iter(config)
        .map(|node| async move {
            for args in &node {
                ip(args).await?;
            }
            Ok(())
        })
        .buffer_unordered(PROCESSES)
        .try_for_each(|()| async { Ok(()) })
        .await
}

/// How many root-namespace `ip -batch` processes share the namespaces and
/// the veths (one per CPU: each batch is one process's sequential loop).
pub(crate) fn root_batches() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

/// Builds `topo` with `ip -batch`: the namespaces and then the veths from
/// [`root_batches`] concurrent batches in the root namespace (a veth is
/// created with both ends born in place: `link add A netns X type veth peer
/// name B netns Y`), then one `ip -n NAME -batch` per namespace for its
/// addresses, links up and route, [`PROCESSES`] at a time.
pub(crate) async fn build_by_batches(topo: &Topo) -> BResult<()> {
    let k = root_batches();
    let mut create = vec![String::new(); k];
    for (i, n) in topo.names.iter().enumerate() {
        create[i % k].push_str(&format!("netns add {n}\n"));
    }
    root_scripts(create).await?;
    let mut veths = vec![String::new(); k];
    for l in &topo.links {
        veths[l.a % k].push_str(&format!(
            "link add {} netns {} type veth peer name {} netns {}\n",
            l.a_if, topo.names[l.a], l.b_if, topo.names[l.b]
        ));
    }
    root_scripts(veths).await?;
    futures::stream::iter(0..topo.names.len())
        .map(|i| async move {
            batch(
                &["-n", &topo.names[i], "-batch", "-"],
                &node_script(topo, i),
            )
            .await
        })
        .buffer_unordered(PROCESSES)
        .try_for_each(|()| async { Ok(()) })
        .await
}

/// Removes the names with one `ip netns del NAME` process each,
/// [`PROCESSES`] at a time.
pub(crate) async fn destroy_by_processes(names: &[String]) -> BResult<()> {
    futures::stream::iter(names)
        .map(|n| async move { ip(&["netns".into(), "del".into(), n.clone()]).await })
        .buffer_unordered(PROCESSES)
        .try_for_each(|()| async { Ok(()) })
        .await
}

/// Removes the names with [`root_batches`] concurrent `ip -batch` scripts of
/// `netns del NAME` lines.
pub(crate) async fn destroy_by_batches(names: &[String]) -> BResult<()> {
    let k = root_batches();
    let mut scripts = vec![String::new(); k];
    for (i, n) in names.iter().enumerate() {
        scripts[i % k].push_str(&format!("netns del {n}\n"));
    }
    root_scripts(scripts).await
}

async fn root_scripts(scripts: Vec<String>) -> BResult<()> {
    futures::future::try_join_all(
        scripts
            .iter()
            .filter(|s| !s.is_empty())
            .map(|s| batch(&["-batch", "-"], s)),
    )
    .await?;
    Ok(())
}

/// Runs `ip ARGS` and fails with its stderr if it fails.
async fn ip(args: &[String]) -> BResult<()> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    crate::scratch::ip(&args).await
}

/// Runs `ip ARGS` (a `-batch -` form) with `script` on its stdin.
async fn batch(args: &[&str], script: &str) -> BResult<()> {
    crate::scratch::ip_with_input(args, script).await
}
