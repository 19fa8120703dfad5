//! `--compare OLD.json NEW.json`: how two runs' rows differ.

use std::fmt::Write as _;
use std::path::Path;

use crate::harness::{BResult, err};

fn load(path: &Path) -> BResult<Vec<serde_json::Value>> {
    let text =
        std::fs::read_to_string(path).map_err(|e| err(format!("{}: {e}", path.display())))?;
    let doc: serde_json::Value = serde_json::from_str(&text)?;
    doc["rows"]
        .as_array()
        .cloned()
        .ok_or_else(|| err(format!("{}: no \"rows\" list", path.display())))
}

fn num(v: &serde_json::Value) -> Option<f64> {
    v.as_f64()
}

fn fmt(v: Option<f64>) -> String {
    v.map_or("-".into(), |x| {
        if x >= 100.0 {
            format!("{x:.0}")
        } else {
            format!("{x:.2}")
        }
    })
}

/// The comparison table of the rows of `old` and `new` (matched by name), as
/// Markdown: each side's median and the change of ours, and each run's ratio.
pub(crate) fn compare(old: &Path, new: &Path) -> BResult<String> {
    let (a, b) = (load(old)?, load(new)?);
    let mut t = String::new();
    t.push_str("| row | unit | ours, old | ours, new | new/old | ratio, old | ratio, new |\n");
    t.push_str("|---|---|---|---|---|---|---|\n");
    let mut names: Vec<&str> = a
        .iter()
        .chain(&b)
        .filter_map(|r| r["name"].as_str())
        .collect();
    let mut seen = std::collections::HashSet::new();
    names.retain(|n| seen.insert(*n));
    for name in names {
        let find = |rows: &[serde_json::Value]| rows.iter().find(|r| r["name"] == name).cloned();
        let (ra, rb) = (find(&a), find(&b));
        let get = |r: &Option<serde_json::Value>, k: &str| r.as_ref().and_then(|r| num(&r[k]));
        let unit = rb
            .as_ref()
            .or(ra.as_ref())
            .and_then(|r| r["unit"].as_str())
            .unwrap_or("-");
        let (oa, ob) = (get(&ra, "ours_value"), get(&rb, "ours_value"));
        let change = oa.zip(ob).map(|(x, y)| y / x);
        let _ = writeln!(
            t,
            "| {name} | {unit} | {} | {} | {} | {} | {} |",
            fmt(oa),
            fmt(ob),
            fmt(change),
            fmt(get(&ra, "ratio")),
            fmt(get(&rb, "ratio"))
        );
    }
    Ok(t)
}
