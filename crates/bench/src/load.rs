//! How busy the machine is with work that is not ours.
//!
//! The machine has 2 vCPUs, shared. For each row the run records the CPU
//! used by other processes meanwhile ("foreign CPU", in cores: busy time of
//! the whole machine from `/proc/stat` minus this process's own time and its
//! reaped children's, from `/proc/self/stat`), so that a noisy row can be
//! recognised; `--wait-quiet` waits before each row until that stays low.

use std::time::{Duration, Instant};

/// A reading of the machine's busy time and ours, in clock ticks.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CpuMark {
    busy: u64,
    own: u64,
    at: Instant,
}

fn ticks_per_sec() -> f64 {
    match nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK) {
        Ok(Some(t)) if t > 0 => t as f64,
        _ => 100.0,
    }
}

impl CpuMark {
    /// Reads the counters now (`None` if /proc cannot be read).
    pub(crate) fn now() -> Option<CpuMark> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let cpu: Vec<u64> = stat
            .lines()
            .next()?
            .split_whitespace()
            .skip(1)
            .filter_map(|v| v.parse().ok())
            .collect();
        // user nice system idle iowait irq softirq steal
        let busy = [0, 1, 2, 5, 6, 7].iter().filter_map(|&i| cpu.get(i)).sum();
        let me = std::fs::read_to_string("/proc/self/stat").ok()?;
        // Fields after the command name (which may contain spaces).
        let rest: Vec<&str> = me.rsplit_once(')')?.1.split_whitespace().collect();
        // utime stime cutime cstime are fields 14-17, i.e. rest[11..15].
        let own = rest
            .get(11..15)?
            .iter()
            .filter_map(|v| v.parse::<u64>().ok())
            .sum();
        Some(CpuMark {
            busy,
            own,
            at: Instant::now(),
        })
    }

    /// CPU used by others since `self`, in cores (0.0 = idle, 2.0 = both
    /// cores fully busy with foreign work).
    pub(crate) fn foreign_since(&self) -> Option<f64> {
        let now = CpuMark::now()?;
        let secs = now.at.duration_since(self.at).as_secs_f64();
        if secs <= 0.0 {
            return None;
        }
        let foreign =
            now.busy.saturating_sub(self.busy) as f64 - now.own.saturating_sub(self.own) as f64;
        Some((foreign / ticks_per_sec() / secs).max(0.0))
    }
}

/// Waits until foreign CPU over one second is below `threshold` cores, for
/// at most `max`; returns the last reading.
pub(crate) async fn wait_quiet(threshold: f64, max: Duration) -> Option<f64> {
    let start = Instant::now();
    loop {
        let mark = CpuMark::now()?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let foreign = mark.foreign_since()?;
        if foreign < threshold || start.elapsed() >= max {
            return Some(foreign);
        }
    }
}
