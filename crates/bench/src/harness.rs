//! The measuring harness: interleaved sampling, statistics, the result rows,
//! the printed table and the JSON file.
//!
//! Every row measures two sides (ours and its reference), sometimes a third
//! (a floor, such as a raw netlink socket). The sides are sampled in turn,
//! one sample (or one small batch) each, with the order reversed on every
//! round so that neither side always runs right after the other; a warm-up
//! round of every side comes first and is thrown away. Noise on the machine
//! (other processes, frequency changes) then hits both sides alike, and the
//! ratio of the medians is what a row reports.

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;

/// The error type of a row: anything, with a message.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// The result type of a row.
pub(crate) type BResult<T> = Result<T, BoxError>;

/// Makes a [`BoxError`] from a message.
pub(crate) fn err(msg: impl Into<String>) -> BoxError {
    msg.into().into()
}

/// How much to measure, from the command line.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    /// `--quick`: fewer samples, smaller sizes.
    pub(crate) quick: bool,
    /// Size of the big parent's ballast, in MiB.
    pub(crate) ballast_mib: usize,
    /// Multiplies every row's sample count (`--samples-scale`).
    pub(crate) scale: f64,
}

impl Config {
    /// Sample plan for a row that takes `full` samples per side in a full run
    /// and `quick` in a quick one.
    pub(crate) fn plan(&self, full: usize, quick: usize) -> Plan {
        let base = if self.quick { quick } else { full };
        let samples = ((base as f64 * self.scale).round() as usize).max(5);
        Plan {
            samples,
            warmup: (samples / 10).clamp(2, 50),
            budget: if self.quick {
                Duration::from_secs(8)
            } else {
                Duration::from_secs(40)
            },
        }
    }

    /// `full` in a full run, `quick` in a quick one (for sizes).
    pub(crate) fn size(&self, full: usize, quick: usize) -> usize {
        if self.quick { quick } else { full }
    }
}

/// How many samples a row takes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Plan {
    /// Samples per side (after warm-up), unless the budget runs out first.
    pub(crate) samples: usize,
    /// Warm-up samples per side, thrown away.
    pub(crate) warmup: usize,
    /// Time after which sampling stops early (at least 5 rounds are taken).
    pub(crate) budget: Duration,
}

/// Samples two sides in turn (see the module docs); returns the samples of
/// each in microseconds. Each call of a side returns one or more durations.
pub(crate) async fn pair<A, B>(plan: Plan, a: &mut A, b: &mut B) -> BResult<[Vec<f64>; 2]>
where
    A: AsyncFnMut() -> BResult<Vec<Duration>>,
    B: AsyncFnMut() -> BResult<Vec<Duration>>,
{
    let mut none = async || -> BResult<Vec<Duration>> { Ok(Vec::new()) };
    let [x, y, _] = sample(plan, a, b, &mut none, false).await?;
    Ok([x, y])
}

/// Samples three sides in turn; see [`pair`].
pub(crate) async fn triple<A, B, C>(
    plan: Plan,
    a: &mut A,
    b: &mut B,
    c: &mut C,
) -> BResult<[Vec<f64>; 3]>
where
    A: AsyncFnMut() -> BResult<Vec<Duration>>,
    B: AsyncFnMut() -> BResult<Vec<Duration>>,
    C: AsyncFnMut() -> BResult<Vec<Duration>>,
{
    sample(plan, a, b, c, true).await
}

async fn sample<A, B, C>(
    plan: Plan,
    a: &mut A,
    b: &mut B,
    c: &mut C,
    use_c: bool,
) -> BResult<[Vec<f64>; 3]>
where
    A: AsyncFnMut() -> BResult<Vec<Duration>>,
    B: AsyncFnMut() -> BResult<Vec<Duration>>,
    C: AsyncFnMut() -> BResult<Vec<Duration>>,
{
    let mut out: [Vec<f64>; 3] = Default::default();
    let start = Instant::now();
    let rounds = plan.warmup + plan.samples;
    for round in 0..rounds {
        let keep = round >= plan.warmup;
        let forward = round % 2 == 0;
        let sides: [usize; 3] = if forward { [0, 1, 2] } else { [2, 1, 0] };
        for side in sides {
            let got = match side {
                0 => a().await?,
                1 => b().await?,
                _ if use_c => c().await?,
                _ => continue,
            };
            if keep {
                out[side].extend(got.iter().map(|d| d.as_secs_f64() * 1e6));
            }
        }
        if keep && round >= plan.warmup + 5 && start.elapsed() > plan.budget {
            break;
        }
    }
    Ok(out)
}

/// Median, p90 and count of a set of samples.
#[derive(Clone, Copy, Debug, Serialize)]
pub(crate) struct Stats {
    pub(crate) median: f64,
    pub(crate) p90: f64,
    pub(crate) n: usize,
}

impl Stats {
    /// Statistics of `samples` (nearest-rank percentiles).
    pub(crate) fn of(samples: &[f64]) -> BResult<Stats> {
        if samples.is_empty() {
            return Err(err("no samples"));
        }
        let mut s = samples.to_vec();
        s.sort_by(f64::total_cmp);
        let rank = |p: f64| s[((p * s.len() as f64).ceil() as usize).clamp(1, s.len()) - 1];
        let median = if s.len() % 2 == 1 {
            s[s.len() / 2]
        } else {
            (s[s.len() / 2 - 1] + s[s.len() / 2]) / 2.0
        };
        Ok(Stats {
            median,
            p90: rank(0.9),
            n: s.len(),
        })
    }
}

/// A 95 % bootstrap interval of `median(a) / median(b)`: each side resampled
/// with replacement, independently, 400 times (fixed seed, so a run's JSON
/// is reproducible from its samples). `None` with fewer than 5 samples.
pub(crate) fn ratio_interval(a: &[f64], b: &[f64]) -> Option<(f64, f64)> {
    const ROUNDS: usize = 400;
    if a.len() < 5 || b.len() < 5 {
        return None;
    }
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut median_of_resample = |src: &[f64], buf: &mut Vec<f64>| {
        buf.clear();
        buf.extend((0..src.len()).map(|_| src[(next() % src.len() as u64) as usize]));
        let mid = buf.len() / 2;
        *buf.select_nth_unstable_by(mid, f64::total_cmp).1
    };
    let (mut ba, mut bb) = (Vec::new(), Vec::new());
    let mut ratios: Vec<f64> = (0..ROUNDS)
        .map(|_| median_of_resample(a, &mut ba) / median_of_resample(b, &mut bb))
        .collect();
    ratios.sort_by(f64::total_cmp);
    Some((ratios[ROUNDS / 40], ratios[ROUNDS - 1 - ROUNDS / 40]))
}

/// The unit of a row's values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub(crate) enum Unit {
    /// Microseconds of wall-clock time, as seen by the awaiting caller.
    #[serde(rename = "us")]
    Us,
    /// Kibibytes of memory.
    #[serde(rename = "KiB")]
    KiB,
}

/// The goal a row is measured against (from the issues).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Target {
    /// ours/reference must be at most this.
    RatioAtMost(f64),
    /// Our median must be at most this many units.
    AbsAtMost(f64),
    /// No stated goal: the row is informative.
    None,
}

impl Target {
    fn met(self, ours: f64, ratio: Option<f64>) -> Option<bool> {
        match self {
            Target::RatioAtMost(max) => ratio.map(|r| r <= max),
            Target::AbsAtMost(max) => Some(ours <= max),
            Target::None => None,
        }
    }

    /// The goal in words, for `--list`.
    pub(crate) fn describe(self) -> String {
        match self {
            Target::AbsAtMost(max) => format!("median <= {max} (us, or KiB for memory rows)"),
            Target::None => "none stated (informative row)".into(),
            other => other.text(Unit::Us),
        }
    }

    fn text(self, unit: Unit) -> String {
        let u = match unit {
            Unit::Us => "us",
            Unit::KiB => "KiB",
        };
        match self {
            Target::RatioAtMost(max) if max < 1.0 => {
                format!("ratio <= {max:.2} ({:.1}x faster)", 1.0 / max)
            }
            Target::RatioAtMost(max) => format!("ratio <= {max:.2}"),
            Target::AbsAtMost(max) => format!("median <= {max} {u}"),
            Target::None => "-".into(),
        }
    }
}

/// One side of a result row.
#[derive(Clone, Debug)]
pub(crate) struct Side {
    pub(crate) label: String,
    pub(crate) stats: Stats,
    /// The samples, for the ratio's interval.
    pub(crate) samples: Vec<f64>,
}

impl Side {
    /// A side from its samples.
    pub(crate) fn new(label: impl Into<String>, samples: &[f64]) -> BResult<Side> {
        Ok(Side {
            label: label.into(),
            stats: Stats::of(samples)?,
            samples: samples.to_vec(),
        })
    }
}

/// What a row measured.
#[derive(Clone, Debug)]
pub(crate) struct Measurement {
    pub(crate) unit: Unit,
    pub(crate) ours: Side,
    pub(crate) reference: Option<Side>,
    pub(crate) floor: Option<Side>,
    /// Derived figures (rates, counts) and remarks, printed under the table.
    pub(crate) notes: Vec<String>,
}

impl Measurement {
    /// A time row: ours against a reference, in microseconds.
    pub(crate) fn versus(
        ours: &str,
        ours_us: &[f64],
        reference: &str,
        reference_us: &[f64],
    ) -> BResult<Measurement> {
        Ok(Measurement {
            unit: Unit::Us,
            ours: Side::new(ours, ours_us)?,
            reference: Some(Side::new(reference, reference_us)?),
            floor: None,
            notes: Vec::new(),
        })
    }

    /// A row with no reference side (an absolute value against its target).
    pub(crate) fn alone(unit: Unit, label: &str, samples: &[f64]) -> BResult<Measurement> {
        Ok(Measurement {
            unit,
            ours: Side::new(label, samples)?,
            reference: None,
            floor: None,
            notes: Vec::new(),
        })
    }

    /// Adds a floor side.
    pub(crate) fn with_floor(mut self, label: &str, samples: &[f64]) -> BResult<Measurement> {
        self.floor = Some(Side::new(label, samples)?);
        Ok(self)
    }

    /// Adds a note.
    pub(crate) fn note(mut self, note: impl Into<String>) -> Measurement {
        self.notes.push(note.into());
        self
    }
}

/// What happened to a row.
#[derive(Clone, Debug)]
pub(crate) enum Outcome {
    Measured(Box<Measurement>),
    Failed(String),
    NotYet(String),
}

/// One row of the final table.
#[derive(Clone, Debug)]
pub(crate) struct RowResult {
    pub(crate) name: &'static str,
    pub(crate) target: Target,
    pub(crate) outcome: Outcome,
    pub(crate) seconds: f64,
    /// CPU used by other processes while the row ran, in cores.
    pub(crate) foreign_cpu: Option<f64>,
}

/// Pools the passes of one row (`--runs`): every side's samples together,
/// each pass's ratio in the notes; a pass that failed makes the row failed.
/// `None` if the row never ran.
pub(crate) fn pool(passes: Vec<RowResult>) -> Option<RowResult> {
    if passes.len() <= 1 {
        return passes.into_iter().next();
    }
    let n = passes.len();
    let seconds = passes.iter().map(|p| p.seconds).sum();
    let cpus: Vec<f64> = passes.iter().filter_map(|p| p.foreign_cpu).collect();
    let foreign_cpu = (!cpus.is_empty()).then(|| cpus.iter().sum::<f64>() / cpus.len() as f64);
    // Each pass's ratio, or its median where the row has no reference.
    let per_pass: Vec<String> = passes
        .iter()
        .map(|p| match (&p.outcome, p.ratio()) {
            (_, Some(r)) => format!("{r:.2}"),
            (Outcome::Measured(m), None) => format!("{:.0}", m.ours.stats.median),
            _ => "-".into(),
        })
        .collect();
    let (name, target) = (passes[0].name, passes[0].target);
    let row = |outcome| RowResult {
        name,
        target,
        outcome,
        seconds,
        foreign_cpu,
    };
    let mut measured = Vec::new();
    for p in passes {
        match p.outcome {
            Outcome::Measured(m) => measured.push(*m),
            Outcome::Failed(e) => return Some(row(Outcome::Failed(e))),
            Outcome::NotYet(e) => return Some(row(Outcome::NotYet(e))),
        }
    }
    let merge = |sides: Vec<Option<Side>>| -> Option<Side> {
        let sides: Vec<Side> = sides.into_iter().collect::<Option<_>>()?;
        let samples: Vec<f64> = sides
            .iter()
            .flat_map(|s| s.samples.iter().copied())
            .collect();
        Side::new(sides[0].label.clone(), &samples).ok()
    };
    let unit = measured[0].unit;
    let mut notes = measured[0].notes.clone();
    let what = if measured[0].reference.is_some() {
        "ratio"
    } else {
        "median"
    };
    notes.push(format!(
        "{n} passes pooled; {what} of each pass: {}",
        per_pass.join(", ")
    ));
    let ours = merge(measured.iter().map(|m| Some(m.ours.clone())).collect())?;
    let reference = merge(measured.iter().map(|m| m.reference.clone()).collect());
    let floor = merge(measured.iter().map(|m| m.floor.clone()).collect());
    Some(row(Outcome::Measured(Box::new(Measurement {
        unit,
        ours,
        reference,
        floor,
        notes,
    }))))
}

/// The JSON form of a row (one element of the list in the JSON file).
#[derive(Debug, Serialize)]
struct JsonRow<'a> {
    name: &'a str,
    status: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    unit: Option<Unit>,
    ours: Option<&'a str>,
    ours_us: Option<f64>,
    ours_p90_us: Option<f64>,
    ours_value: Option<f64>,
    ours_n: Option<usize>,
    reference: Option<&'a str>,
    reference_us: Option<f64>,
    reference_p90_us: Option<f64>,
    reference_value: Option<f64>,
    reference_n: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    floor: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    floor_us: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    floor_p90_us: Option<f64>,
    /// ours / reference, medians; lower is better.
    ratio: Option<f64>,
    /// 95 % bootstrap interval of the ratio.
    ratio_ci95: Option<(f64, f64)>,
    better: &'static str,
    target: String,
    target_met: Option<bool>,
    notes: &'a [String],
    seconds: f64,
    foreign_cpu_cores: Option<f64>,
}

impl RowResult {
    fn ratio_ci(&self) -> Option<(f64, f64)> {
        match &self.outcome {
            Outcome::Measured(m) => ratio_interval(&m.ours.samples, &m.reference.as_ref()?.samples),
            _ => None,
        }
    }

    fn ratio(&self) -> Option<f64> {
        match &self.outcome {
            Outcome::Measured(m) => m
                .reference
                .as_ref()
                .map(|r| m.ours.stats.median / r.stats.median),
            _ => None,
        }
    }

    fn json(&self) -> JsonRow<'_> {
        let mut row = JsonRow {
            name: self.name,
            status: "ok",
            error: None,
            unit: None,
            ours: None,
            ours_us: None,
            ours_p90_us: None,
            ours_value: None,
            ours_n: None,
            reference: None,
            reference_us: None,
            reference_p90_us: None,
            reference_value: None,
            reference_n: None,
            floor: None,
            floor_us: None,
            floor_p90_us: None,
            ratio: self.ratio(),
            ratio_ci95: self.ratio_ci(),
            better: "lower",
            target: "-".into(),
            target_met: None,
            notes: &[],
            seconds: self.seconds,
            foreign_cpu_cores: self.foreign_cpu,
        };
        match &self.outcome {
            Outcome::Failed(e) => {
                row.status = "failed";
                row.error = Some(e);
            }
            Outcome::NotYet(e) => {
                row.status = "not yet measured";
                row.error = Some(e);
            }
            Outcome::Measured(m) => {
                let us = |s: &Side| (m.unit == Unit::Us).then_some(s.stats.median);
                let p90 = |s: &Side| (m.unit == Unit::Us).then_some(s.stats.p90);
                row.unit = Some(m.unit);
                row.target = self.target.text(m.unit);
                row.target_met = self.target.met(m.ours.stats.median, row.ratio);
                row.notes = &m.notes;
                row.ours = Some(&m.ours.label);
                row.ours_us = us(&m.ours);
                row.ours_p90_us = p90(&m.ours);
                row.ours_value = Some(m.ours.stats.median);
                row.ours_n = Some(m.ours.stats.n);
                if let Some(r) = &m.reference {
                    row.reference = Some(&r.label);
                    row.reference_us = us(r);
                    row.reference_p90_us = p90(r);
                    row.reference_value = Some(r.stats.median);
                    row.reference_n = Some(r.stats.n);
                }
                if let Some(f) = &m.floor {
                    row.floor = Some(&f.label);
                    row.floor_us = us(f);
                    row.floor_p90_us = p90(f);
                }
            }
        }
        row
    }
}

/// Writes `rows` as a JSON document to `path`.
pub(crate) fn write_json(path: &Path, rows: &[RowResult], meta: serde_json::Value) -> BResult<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    #[derive(Serialize)]
    struct Doc<'a> {
        meta: serde_json::Value,
        rows: Vec<JsonRow<'a>>,
    }
    let doc = Doc {
        meta,
        rows: rows.iter().map(RowResult::json).collect(),
    };
    std::fs::write(path, serde_json::to_string_pretty(&doc)? + "\n")?;
    Ok(())
}

fn num(v: f64, unit: Unit) -> String {
    match unit {
        Unit::KiB => format!("{v:.0} KiB"),
        Unit::Us if v >= 10_000.0 => format!("{:.1} ms", v / 1000.0),
        Unit::Us if v >= 100.0 => format!("{v:.0} us"),
        Unit::Us => format!("{v:.1} us"),
    }
}

/// The table of results, as text (also used for docs/performance.md: it is
/// valid Markdown).
pub(crate) fn table(rows: &[RowResult]) -> String {
    let mut t = String::new();
    t.push_str(
        "| row | ours | median (p90) | reference | median (p90) | ratio [95% CI] | target | met | foreign CPU |\n",
    );
    t.push_str("|---|---|---|---|---|---|---|---|---|\n");
    let mut notes = String::new();
    for r in rows {
        match &r.outcome {
            Outcome::Measured(m) => {
                let side = |s: &Side| {
                    format!(
                        "{} ({})",
                        num(s.stats.median, m.unit),
                        num(s.stats.p90, m.unit)
                    )
                };
                let (rl, rv) = match &m.reference {
                    Some(s) => (s.label.clone(), side(s)),
                    None => ("-".into(), "-".into()),
                };
                let ratio = match (r.ratio(), r.ratio_ci()) {
                    (Some(x), Some((lo, hi))) => format!("{x:.2} [{lo:.2}, {hi:.2}]"),
                    (Some(x), None) => format!("{x:.2}"),
                    _ => "-".into(),
                };
                let met = match r.target.met(m.ours.stats.median, r.ratio()) {
                    Some(true) => "yes",
                    Some(false) => "NO",
                    None => "-",
                };
                let _ = writeln!(
                    t,
                    "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                    r.name,
                    m.ours.label,
                    side(&m.ours),
                    rl,
                    rv,
                    ratio,
                    r.target.text(m.unit),
                    met,
                    r.foreign_cpu.map_or("-".into(), |c| format!("{c:.2}"))
                );
                if let Some(f) = &m.floor {
                    let _ = writeln!(notes, "- {}: floor ({}) {}", r.name, f.label, side(f));
                }
                for n in &m.notes {
                    let _ = writeln!(notes, "- {}: {}", r.name, n);
                }
            }
            Outcome::Failed(e) => {
                let _ = writeln!(t, "| {} | FAILED | | | | | | | |", r.name);
                let _ = writeln!(notes, "- {}: FAILED: {}", r.name, e);
            }
            Outcome::NotYet(e) => {
                let _ = writeln!(t, "| {} | not yet measured | | | | | | | |", r.name);
                let _ = writeln!(notes, "- {}: not yet measured: {}", r.name, e);
            }
        }
    }
    if !notes.is_empty() {
        t.push('\n');
        t.push_str(&notes);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_median_and_p90() {
        let s = Stats::of(&[5.0, 1.0, 3.0, 2.0, 4.0]).unwrap();
        assert_eq!(s.median, 3.0);
        assert_eq!(s.p90, 5.0);
        let s = Stats::of(&(1..=10).map(f64::from).collect::<Vec<_>>()).unwrap();
        assert_eq!(s.median, 5.5);
        assert_eq!(s.p90, 9.0);
        assert!(Stats::of(&[]).is_err());
    }

    #[test]
    fn ratio_interval_brackets_the_ratio() {
        let a: Vec<f64> = (0..200).map(|i| 100.0 + f64::from(i % 20)).collect();
        let b: Vec<f64> = (0..200).map(|i| 50.0 + f64::from(i % 10)).collect();
        let r = Stats::of(&a).unwrap().median / Stats::of(&b).unwrap().median;
        let (lo, hi) = ratio_interval(&a, &b).unwrap();
        assert!(lo <= r && r <= hi, "{lo} {r} {hi}");
        assert!(ratio_interval(&a[..4], &b).is_none());
    }

    #[test]
    fn pooling_passes_joins_samples_and_keeps_failures() {
        let pass = |o: &[f64], r: &[f64]| RowResult {
            name: "x",
            target: Target::None,
            outcome: Outcome::Measured(Box::new(Measurement::versus("o", o, "r", r).unwrap())),
            seconds: 1.0,
            foreign_cpu: Some(0.5),
        };
        let pooled = pool(vec![pass(&[1.0; 5], &[2.0; 5]), pass(&[3.0; 5], &[2.0; 5])]).unwrap();
        let Outcome::Measured(m) = &pooled.outcome else {
            panic!("not measured")
        };
        assert_eq!(m.ours.stats.n, 10);
        assert_eq!(m.ours.stats.median, 2.0);
        assert_eq!(pooled.seconds, 2.0);
        assert!(
            m.notes.last().unwrap().contains("0.50, 1.50"),
            "{:?}",
            m.notes
        );
        let failed = RowResult {
            outcome: Outcome::Failed("boom".into()),
            ..pass(&[1.0; 5], &[1.0; 5])
        };
        let pooled = pool(vec![pass(&[1.0; 5], &[2.0; 5]), failed]).unwrap();
        assert!(matches!(pooled.outcome, Outcome::Failed(ref e) if e == "boom"));
        assert!(pool(Vec::new()).is_none());
    }

    #[tokio::test]
    async fn interleaves_in_alternating_order() {
        let log = std::cell::RefCell::new(Vec::new());
        let plan = Plan {
            samples: 3,
            warmup: 1,
            budget: Duration::from_secs(60),
        };
        let mut a = async || {
            log.borrow_mut().push('a');
            Ok(vec![Duration::from_micros(1)])
        };
        let mut b = async || {
            log.borrow_mut().push('b');
            Ok(vec![Duration::from_micros(2)])
        };
        let [x, y] = pair(plan, &mut a, &mut b).await.unwrap();
        assert_eq!(log.borrow().iter().collect::<String>(), "abbaabba");
        assert_eq!(x, vec![1.0; 3]);
        assert_eq!(y, vec![2.0; 3]);
    }
}
