//! cni-bridge rows: the `netns-bridge` CNI plugin against the reference
//! `bridge` plugin (Debian's containernetworking-plugins, which delegates
//! to the reference `host-local`), each run as a runtime runs it: one
//! process per call, started inside a namespace standing in for the host
//! (the same nsproc spawn for both sides), on the same configuration (an
//! IPv4 /16 with isGateway, host-local IPAM).
//!
//! `netns-bridge` is `NSBENCH_CNI_PLUGIN` if set, else the installable
//! static build `scripts/build-cni-plugin` leaves in `target/cni/`, else the
//! one next to this benchmark's executable (`cargo build --release -p
//! cni-bridge`); each row's notes name the binary measured.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nsfs::NetNs;
use nsproc::Stdio;
use tokio::io::AsyncWriteExt;

use super::{NotYet, RowSpec};
use crate::harness::{BResult, Config, Measurement, Stats, Target, err, pair};
use crate::scratch::Scratch;

pub(super) fn rows() -> Vec<RowSpec> {
    vec![
        RowSpec {
            name: "cni/add",
            about: "one CNI ADD, the whole plugin process in a host namespace (bridge, veth, host-local IPv4 /16, isGateway): netns-bridge vs the reference bridge plugin (+ its host-local process)",
            target: Target::RatioAtMost(1.0 / 3.0),
            run: |c| Box::pin(add_or_del(c, Timed::Add)),
        },
        RowSpec {
            name: "cni/del",
            about: "one CNI DEL of what that ADD made, whole process: netns-bridge vs the reference bridge plugin",
            target: Target::RatioAtMost(1.0 / 3.0),
            run: |c| Box::pin(add_or_del(c, Timed::Del)),
        },
        RowSpec {
            name: "cni/del-floor",
            about: "the DEL row's floor: netns-bridge DEL vs the deletion alone, `ip link del eth0` run in the pod's namespace as one process (spawned as the plugin is), each after the same ADD: what any DEL that removes the interface waits for (the kernel's unregister of the pair, an RCU barrier included)",
            target: Target::None,
            run: |c| Box::pin(del_floor(c)),
        },
        RowSpec {
            name: "cni/burst-100",
            about: "100 CNI ADDs started at once (100 namespaces, one bridge), end to end; p50/p99 of the single ADDs in the notes: netns-bridge vs the reference bridge plugin",
            target: Target::RatioAtMost(1.0 / 3.0),
            run: |c| Box::pin(burst(c)),
        },
        RowSpec {
            name: "cni/startup",
            about: "plugin start-up: from the plugin's execve to its first netlink socket (strace -f -ttt), ADD: netns-bridge vs the reference bridge plugin",
            target: Target::None,
            run: |c| Box::pin(startup(c)),
        },
    ]
}

#[derive(Clone, Copy, PartialEq)]
enum Timed {
    Add,
    Del,
    /// `ip link del eth0` in the pod, then (untimed) the DEL.
    DelFloor,
}

fn ours_path() -> BResult<PathBuf> {
    if let Some(p) = std::env::var_os("NSBENCH_CNI_PLUGIN") {
        let p = PathBuf::from(p);
        if !p.exists() {
            return Err(err(format!(
                "NSBENCH_CNI_PLUGIN names {}, which does not exist",
                p.display()
            )));
        }
        return Ok(p);
    }
    let exe = std::env::current_exe()?;
    let dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    // The installable build first (target/cni/), then the plain one.
    [dir.join("../cni/netns-bridge"), dir.join("netns-bridge")]
        .into_iter()
        .find_map(|p| std::fs::canonicalize(p).ok())
        .ok_or_else(|| {
            Box::new(NotYet(
                "netns-bridge is not built: scripts/build-cni-plugin (or cargo build --release -p cni-bridge)"
                    .into(),
            )) as _
        })
}

/// The note naming the plugin binary a row measured, and how it is linked.
fn plugin_note(path: &Path) -> String {
    let linked = match has_interpreter(path) {
        Some(true) => "dynamically linked",
        Some(false) => "static",
        None => "not an ELF64 executable",
    };
    format!("netns-bridge measured: {} ({linked})", path.display())
}

/// Whether an ELF64 little-endian executable names a program interpreter
/// (a `PT_INTERP` program header: it is dynamically linked).
fn has_interpreter(path: &Path) -> Option<bool> {
    use std::io::Read;
    let mut head = vec![0u8; 64 * 1024];
    let mut f = std::fs::File::open(path).ok()?;
    let n = f.read(&mut head).ok()?;
    let head = &head[..n];
    if head.len() < 64 || &head[..4] != b"\x7fELF" || head[4] != 2 || head[5] != 1 {
        return None;
    }
    let u16_at = |o: usize| Some(u16::from_le_bytes(head.get(o..o + 2)?.try_into().ok()?));
    let phoff = usize::try_from(u64::from_le_bytes(head.get(0x20..0x28)?.try_into().ok()?)).ok()?;
    let (entsize, count) = (usize::from(u16_at(0x36)?), usize::from(u16_at(0x38)?));
    const PT_INTERP: u32 = 3;
    let mut interp = false;
    for i in 0..count {
        let o = phoff + i * entsize;
        let kind = u32::from_le_bytes(head.get(o..o + 4)?.try_into().ok()?);
        interp |= kind == PT_INTERP;
    }
    Some(interp)
}

fn reference_path() -> BResult<PathBuf> {
    let p = PathBuf::from("/usr/lib/cni/bridge");
    if !p.exists() {
        return Err(Box::new(NotYet(
            "the reference plugins are missing: run scripts/setup (containernetworking-plugins)"
                .into(),
        )));
    }
    Ok(p)
}

/// One side: a plugin, a host namespace with its bridge, a lease directory.
struct Side {
    plugin: PathBuf,
    host: Scratch,
    data: PathBuf,
    conf: Vec<u8>,
}

impl Side {
    async fn new(plugin: PathBuf, tag: &str, bridge: &str) -> BResult<Side> {
        let host = Scratch::new(tag).await?;
        let data = std::env::temp_dir().join(format!("nsbench-cni-{}-{tag}", std::process::id()));
        let conf = serde_json::json!({
            "cniVersion": "1.0.0", "name": "benchnet", "type": "bridge", "bridge": bridge,
            "isGateway": true,
            "ipam": {"type": "host-local", "subnet": "10.99.0.0/16", "dataDir": data}
        });
        Ok(Side {
            plugin,
            host,
            data,
            conf: conf.to_string().into_bytes(),
        })
    }

    async fn remove(self) -> BResult<()> {
        let _ = std::fs::remove_dir_all(&self.data);
        self.host.remove().await
    }
}

/// A process started in `ns` the way every side of these rows is: a clean
/// environment with only `PATH`.
fn spawned(program: &Path, ns: &NetNs) -> nsproc::Command {
    let mut cmd = nsproc::Command::new(program);
    cmd.netns(ns.clone())
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
    cmd
}

/// One plugin call, as a runtime makes it; its wall time.
async fn call(
    program: &Path,
    args: &[&str],
    host: &NetNs,
    cmd: &str,
    id: &str,
    netns: &str,
    conf: &[u8],
) -> BResult<Duration> {
    let start = Instant::now();
    let mut child = spawned(program, host)
        .args(args)
        .env("CNI_COMMAND", cmd)
        .env("CNI_CONTAINERID", id)
        .env("CNI_NETNS", netns)
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", "/usr/lib/cni")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .await?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(conf).await?;
    }
    let out = child.wait_with_output().await?;
    let took = start.elapsed();
    if !out.status.success() {
        return Err(err(format!(
            "{} {cmd} failed: {}",
            program.display(),
            String::from_utf8_lossy(&out.stdout)
        )));
    }
    Ok(took)
}

fn netns_path(s: &Scratch) -> String {
    format!("/run/netns/{}", s.name)
}

/// ADD then DEL in a fresh container namespace, timing one of them.
async fn one(side: &Side, timed: Timed, n: &mut usize) -> BResult<Vec<Duration>> {
    *n += 1;
    let cont = Scratch::new("cc").await?;
    let id = format!("ctr{n}");
    let path = netns_path(&cont);
    let host = &side.host.ns;
    let add = call(&side.plugin, &[], host, "ADD", &id, &path, &side.conf).await;
    let floor = match (&add, timed) {
        (Ok(_), Timed::DelFloor) => Some(ip_link_del(&cont.ns).await),
        _ => None,
    };
    let del = call(&side.plugin, &[], host, "DEL", &id, &path, &side.conf).await;
    cont.remove().await?;
    let (add, del) = (add?, del?);
    Ok(vec![match timed {
        Timed::Add => add,
        Timed::Del => del,
        Timed::DelFloor => floor.expect("measured after a successful ADD")?,
    }])
}

/// `ip link del eth0` spawned into the pod's namespace, as a plugin is
/// spawned into the host's: one process and the kernel's deletion of the
/// pair, nothing else (no `ip -n`, whose mount namespace and remount of
/// `/sys` would add their own cost).
async fn ip_link_del(pod: &NetNs) -> BResult<Duration> {
    let start = Instant::now();
    let out = spawned(Path::new("ip"), pod)
        .args(["link", "del", "eth0"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .await?;
    let took = start.elapsed();
    if !out.status.success() {
        return Err(err(format!(
            "ip link del eth0 failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(took)
}

async fn del_floor(cfg: &Config) -> BResult<Measurement> {
    let ours = Side::new(ours_path()?, "cdo", "cni0").await?;
    let plugin = ours.plugin.clone();
    let floor = Side::new(plugin.clone(), "cdf", "cni0").await?;
    let (mut a, mut b) = (0, 0);
    let res = pair(
        cfg.plan(60, 8),
        &mut async || one(&ours, Timed::Del, &mut a).await,
        &mut async || one(&floor, Timed::DelFloor, &mut b).await,
    )
    .await;
    ours.remove().await?;
    floor.remove().await?;
    let [o, f] = res?;
    let m = Measurement::versus(
        "netns-bridge DEL",
        &o,
        "ip link del eth0 in the pod (one process)",
        &f,
    )?;
    Ok(m.note(plugin_note(&plugin)))
}

async fn add_or_del(cfg: &Config, timed: Timed) -> BResult<Measurement> {
    let ours = Side::new(ours_path()?, "cno", "cni0").await?;
    let plugin = ours.plugin.clone();
    let theirs = Side::new(reference_path()?, "cnr", "cni0").await?;
    let (mut a, mut b) = (0, 0);
    let res = pair(
        cfg.plan(60, 8),
        &mut async || one(&ours, timed, &mut a).await,
        &mut async || one(&theirs, timed, &mut b).await,
    )
    .await;
    ours.remove().await?;
    theirs.remove().await?;
    let [o, r] = res?;
    let what = if timed == Timed::Add { "ADD" } else { "DEL" };
    let m = Measurement::versus(
        &format!("netns-bridge {what}"),
        &o,
        &format!("reference bridge {what}"),
        &r,
    )?;
    Ok(m.note(plugin_note(&plugin)))
}

/// `n` ADDs started at once into `n` fresh namespaces; the burst's wall time
/// and each ADD's. The pods are then deleted (untimed).
async fn one_burst(side: &Side, n: usize, round: &mut usize) -> BResult<(Duration, Vec<Duration>)> {
    *round += 1;
    let mut conts = Vec::with_capacity(n);
    for _ in 0..n {
        conts.push(Scratch::new("cb").await?);
    }
    let paths: Vec<String> = conts.iter().map(netns_path).collect();
    let ids: Vec<String> = (0..n).map(|i| format!("b{round}x{i}")).collect();
    let host = &side.host.ns;
    let start = Instant::now();
    let adds = futures::future::join_all((0..n).map(|i| {
        call(
            &side.plugin,
            &[],
            host,
            "ADD",
            &ids[i],
            &paths[i],
            &side.conf,
        )
    }))
    .await;
    let total = start.elapsed();
    let dels = futures::future::join_all((0..n).map(|i| {
        call(
            &side.plugin,
            &[],
            host,
            "DEL",
            &ids[i],
            &paths[i],
            &side.conf,
        )
    }))
    .await;
    for c in conts {
        c.remove().await?;
    }
    let singles = adds.into_iter().collect::<BResult<Vec<_>>>()?;
    dels.into_iter().collect::<BResult<Vec<_>>>()?;
    Ok((total, singles))
}

async fn burst(cfg: &Config) -> BResult<Measurement> {
    let n = cfg.size(100, 10);
    let ours = Side::new(ours_path()?, "cbo", "cni0").await?;
    let plugin = ours.plugin.clone();
    let theirs = Side::new(reference_path()?, "cbr", "cni0").await?;
    let mut singles: [Vec<f64>; 2] = Default::default();
    let (mut a, mut b) = (0, 0);
    let res = {
        let singles = std::cell::RefCell::new(&mut singles);
        pair(
            cfg.plan(5, 5),
            &mut async || {
                let (t, s) = one_burst(&ours, n, &mut a).await?;
                singles.borrow_mut()[0].extend(s.iter().map(|d| d.as_secs_f64() * 1e6));
                Ok(vec![t])
            },
            &mut async || {
                let (t, s) = one_burst(&theirs, n, &mut b).await?;
                singles.borrow_mut()[1].extend(s.iter().map(|d| d.as_secs_f64() * 1e6));
                Ok(vec![t])
            },
        )
        .await
    };
    ours.remove().await?;
    theirs.remove().await?;
    let [o, r] = res?;
    let pct = |v: &mut Vec<f64>, p: f64| {
        v.sort_by(f64::total_cmp);
        v[((v.len() - 1) as f64 * p).round() as usize]
    };
    let mut m = Measurement::versus(
        &format!("netns-bridge, {n} ADDs at once"),
        &o,
        &format!("reference bridge, {n} ADDs at once"),
        &r,
    )?
    .note(plugin_note(&plugin));
    for (i, who) in ["netns-bridge", "reference bridge"].iter().enumerate() {
        let v = &mut singles[i];
        if !v.is_empty() {
            let (p50, p99) = (pct(v, 0.5), pct(v, 0.99));
            m = m.note(format!(
                "{who}: single ADD in the burst p50 {:.1} ms, p99 {:.1} ms ({} ADDs)",
                p50 / 1e3,
                p99 / 1e3,
                v.len()
            ));
        }
    }
    Ok(m)
}

/// The time from the plugin's `execve` to its first `socket(AF_NETLINK,
/// ...)` in an `strace -f -ttt` log (any thread).
fn startup_from_log(log: &str) -> Option<f64> {
    let stamp = |line: &str| -> Option<f64> {
        // "PID SECONDS.MICROS call(...)"
        line.split_whitespace().nth(1)?.parse().ok()
    };
    let exec = log.lines().find(|l| l.contains("execve("))?;
    let sock = log.lines().find(|l| l.contains("socket(AF_NETLINK"))?;
    Some((stamp(sock)? - stamp(exec)?) * 1e6)
}

async fn startup_sample(side: &Side, n: &mut usize) -> BResult<Vec<Duration>> {
    *n += 1;
    let cont = Scratch::new("cs").await?;
    let id = format!("s{n}");
    let path = netns_path(&cont);
    let log = side.data.with_extension(format!("strace{n}"));
    let log_s = log.display().to_string();
    let plugin = side.plugin.display().to_string();
    let host = &side.host.ns;
    let traced = call(
        Path::new("strace"),
        &[
            "-f",
            "-ttt",
            "-e",
            "trace=execve,socket",
            "-o",
            &log_s,
            &plugin,
        ],
        host,
        "ADD",
        &id,
        &path,
        &side.conf,
    )
    .await;
    let del = call(&side.plugin, &[], host, "DEL", &id, &path, &side.conf).await;
    cont.remove().await?;
    traced?;
    del?;
    let text = std::fs::read_to_string(&log)?;
    let _ = std::fs::remove_file(&log);
    let us =
        startup_from_log(&text).ok_or_else(|| err("no execve/netlink socket in the strace log"))?;
    Ok(vec![Duration::from_secs_f64(us / 1e6)])
}

async fn startup(cfg: &Config) -> BResult<Measurement> {
    let ours = Side::new(ours_path()?, "cso", "cni0").await?;
    let plugin = ours.plugin.clone();
    let theirs = Side::new(reference_path()?, "csr", "cni0").await?;
    let (mut a, mut b) = (0, 0);
    let res = pair(
        cfg.plan(30, 5),
        &mut async || startup_sample(&ours, &mut a).await,
        &mut async || startup_sample(&theirs, &mut b).await,
    )
    .await;
    ours.remove().await?;
    theirs.remove().await?;
    let [o, r] = res?;
    let so = Stats::of(&o)?;
    let m = Measurement::versus("netns-bridge start-up", &o, "reference bridge start-up", &r)?
        .note(plugin_note(&plugin));
    Ok(m.note(format!(
        "method: strace -f -ttt -e trace=execve,socket, execve to the first socket(AF_NETLINK); both sides traced alike (strace slows both); ours median {:.0} us",
        so.median
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dynamic_and_static_executables_are_told_apart() {
        assert_eq!(has_interpreter(Path::new("/usr/bin/env")), Some(true));
        // libc-bin's ldconfig is static (static-pie).
        assert_eq!(has_interpreter(Path::new("/sbin/ldconfig")), Some(false));
        assert_eq!(has_interpreter(Path::new("/etc/hostname")), None);
    }

    #[test]
    fn startup_is_read_from_an_strace_log() {
        let log = "100 1700000000.000100 execve(\"/x\", [\"x\"], 0x0 /* 0 vars */) = 0\n\
                   101 1700000000.001600 socket(AF_NETLINK, SOCK_RAW|SOCK_CLOEXEC, NETLINK_ROUTE) = 3\n";
        let us = startup_from_log(log).unwrap();
        assert!((us - 1500.0).abs() < 1.0, "{us}");
        assert_eq!(startup_from_log("nothing"), None);
    }
}
