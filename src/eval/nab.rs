//! The Numenta Anomaly Benchmark: reading its folder layout, and its scoring rules.
//!
//! Scoring follows NAB: rows in the probation period count for nothing; inside a labeled window
//! only the earliest detection counts, rewarded by how early it came; every detection outside
//! the windows costs a penalty that shrinks right after a window; a missed window costs `fn`.
//! One threshold is chosen for the whole corpus, the one that maximises the total score.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Costs of one scoring profile.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Profile {
    /// Profile name as NAB spells it.
    pub name: &'static str,
    /// Reward weight of a true positive.
    pub tp: f64,
    /// Weight of a false positive.
    pub fp: f64,
    /// Cost of a missed window.
    pub fn_: f64,
}

/// NAB's three profiles.
pub const PROFILES: [Profile; 3] = [
    Profile {
        name: "standard",
        tp: 1.0,
        fp: 0.11,
        fn_: 1.0,
    },
    Profile {
        name: "reward_low_FP_rate",
        tp: 1.0,
        fp: 0.22,
        fn_: 1.0,
    },
    Profile {
        name: "reward_low_FN_rate",
        tp: 1.0,
        fp: 0.11,
        fn_: 2.0,
    },
];

/// One data file: its rows and labeled windows (as inclusive row ranges).
#[derive(Clone, Debug)]
pub struct Series {
    /// `category/file.csv`.
    pub name: String,
    /// Row timestamps as written.
    pub timestamps: Vec<String>,
    /// Row values.
    pub values: Vec<f64>,
    /// Inclusive `(first, last)` rows of each anomaly window.
    pub windows: Vec<(usize, usize)>,
}

impl Series {
    /// Rows that count for nothing at the start.
    pub fn probation(&self) -> usize {
        ((self.values.len() as f64 * 0.15) as usize).min(750)
    }
}

/// Reads every `data/<category>/*.csv` under `dir` with the windows from `labels/combined_windows.json`.
pub fn load(dir: &Path) -> Result<Vec<Series>, String> {
    let labels_path = dir.join("labels").join("combined_windows.json");
    let labels_text = std::fs::read_to_string(&labels_path).map_err(|e| format!("{}: {e}", labels_path.display()))?;
    let labels: BTreeMap<String, Vec<Vec<String>>> =
        serde_json::from_str(&labels_text).map_err(|e| format!("{}: {e}", labels_path.display()))?;
    let mut files: Vec<PathBuf> = Vec::new();
    let data = dir.join("data");
    for category in std::fs::read_dir(&data).map_err(|e| format!("{}: {e}", data.display()))? {
        let category = category.map_err(|e| e.to_string())?.path();
        if category.is_dir() {
            for f in std::fs::read_dir(&category).map_err(|e| e.to_string())? {
                let f = f.map_err(|e| e.to_string())?.path();
                if f.extension().is_some_and(|e| e == "csv") {
                    files.push(f);
                }
            }
        }
    }
    files.sort();
    let mut out = Vec::new();
    for path in files {
        let category = path
            .parent()
            .and_then(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let file = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let name = format!("{category}/{file}");
        let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let (mut timestamps, mut values) = (Vec::new(), Vec::new());
        for (n, line) in text.lines().enumerate().skip(1) {
            let Some((ts, v)) = line.split_once(',') else { continue };
            let v: f64 = v
                .trim()
                .parse()
                .map_err(|_| format!("{}:{}: bad value `{v}`", path.display(), n + 1))?;
            timestamps.push(ts.trim().to_owned());
            values.push(v);
        }
        let windows = labels
            .get(&name)
            .map(|ws| {
                ws.iter()
                    .filter_map(|w| {
                        let start = row_at_or_after(&timestamps, w.first()?);
                        let end = row_at_or_before(&timestamps, w.get(1)?);
                        (start <= end).then_some((start, end))
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.push(Series {
            name,
            timestamps,
            values,
            windows,
        });
    }
    Ok(out)
}

/// NAB label timestamps carry microseconds (`2014-04-10 07:15:00.000000`); rows do not.
fn normalize(ts: &str) -> &str {
    ts.split('.').next().unwrap_or(ts)
}

fn row_at_or_after(rows: &[String], ts: &str) -> usize {
    let ts = normalize(ts);
    rows.partition_point(|r| normalize(r) < ts)
}

fn row_at_or_before(rows: &[String], ts: &str) -> usize {
    let ts = normalize(ts);
    rows.partition_point(|r| normalize(r) <= ts).saturating_sub(1)
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

fn scaled_sigmoid(y: f64) -> f64 {
    // NAB's scaled sigmoid: 2σ(−5y) − 1, and −1 beyond three window lengths.
    if y > 3.0 {
        -1.0
    } else {
        2.0 * sigmoid(-5.0 * y) - 1.0
    }
}

/// Raw NAB score of one series for detections `flags` (one per row).
pub fn score_series(series: &Series, flags: &[bool], p: &Profile) -> f64 {
    let probation = series.probation();
    let mut score = 0.0;
    let mut detected = vec![false; series.windows.len()];
    for (i, &flag) in flags.iter().enumerate() {
        if !flag || i < probation {
            continue;
        }
        match series.windows.iter().position(|&(s, e)| (s..=e).contains(&i)) {
            Some(w) => {
                if !detected[w] {
                    detected[w] = true;
                    let (s, e) = series.windows[w];
                    let width = (e - s + 1) as f64;
                    let y = -((e as f64 - i as f64 + 1.0) / width);
                    score += p.tp * scaled_sigmoid(y) / scaled_sigmoid(-1.0);
                }
            }
            None => {
                let previous = series.windows.iter().filter(|&&(_, e)| e < i).max_by_key(|&&(_, e)| e);
                let s = match previous {
                    None => -1.0,
                    Some(&(ws, we)) => {
                        let width = (we - ws + 1) as f64;
                        scaled_sigmoid((i - we) as f64 / (width - 1.0).max(1.0))
                    }
                };
                score += p.fp * s;
            }
        }
    }
    score - p.fn_ * detected.iter().filter(|d| !**d).count() as f64
}

/// Per-profile result over a corpus.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ProfileScore {
    /// Profile name.
    pub profile: String,
    /// Normalised score: 0 = detect nothing, 100 = perfect.
    pub score: f64,
    /// The corpus-wide threshold that achieved it.
    pub threshold: f64,
}

/// Finds, for each profile, the threshold maximising the corpus total, and the normalised score.
pub fn evaluate(corpus: &[Series], scores: &[Vec<f64>]) -> Vec<ProfileScore> {
    let windows: usize = corpus.iter().map(|s| s.windows.len()).sum();
    let mut candidates: Vec<f64> = scores.iter().flatten().copied().filter(|s| *s > 0.0).collect();
    candidates.sort_by(f64::total_cmp);
    candidates.dedup();
    // Enough candidates to find the optimum to within a hair, without scoring every distinct value.
    let step = (candidates.len() / 2000).max(1);
    let mut grid: Vec<f64> = candidates.iter().step_by(step).copied().collect();
    grid.push(f64::INFINITY);
    PROFILES
        .iter()
        .map(|p| {
            let null = -p.fn_ * windows as f64;
            let perfect = p.tp * windows as f64;
            let (best_t, best) = grid
                .iter()
                .map(|&t| {
                    let total: f64 = corpus
                        .iter()
                        .zip(scores)
                        .map(|(series, s)| {
                            let flags: Vec<bool> = s.iter().map(|v| *v >= t).collect();
                            score_series(series, &flags, p)
                        })
                        .sum();
                    (t, total)
                })
                .fold(
                    (f64::INFINITY, f64::NEG_INFINITY),
                    |acc, x| if x.1 > acc.1 { x } else { acc },
                );
            ProfileScore {
                profile: p.name.to_owned(),
                score: 100.0 * (best - null) / (perfect - null),
                threshold: best_t,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series() -> Series {
        Series {
            name: "t".into(),
            timestamps: (0..1000).map(|i| format!("{i:05}")).collect(),
            values: vec![0.0; 1000],
            windows: vec![(500, 599)],
        }
    }

    #[test]
    fn rewards_early_detection_and_charges_misses_and_false_alarms() {
        let s = series();
        let p = PROFILES[0];
        let mut flags = vec![false; 1000];
        assert_eq!(score_series(&s, &flags, &p), -1.0);
        flags[500] = true;
        assert!(
            (score_series(&s, &flags, &p) - 1.0).abs() < 1e-9,
            "earliest row earns full credit"
        );
        flags[500] = false;
        flags[599] = true;
        let late = score_series(&s, &flags, &p);
        assert!(late > 0.0 && late < 0.03, "the last row earns almost nothing: {late}");
        flags[599] = false;
        flags[300] = true; // before any window: full fp cost, and the window is missed
        assert!((score_series(&s, &flags, &p) - (-1.0 - 0.11)).abs() < 1e-9);
        flags[300] = false;
        flags[50] = true; // probation: ignored
        assert_eq!(score_series(&s, &flags, &p), -1.0);
    }

    #[test]
    fn perfect_and_null_detectors_score_100_and_0() {
        let s = series();
        let mut perfect = vec![0.0; 1000];
        perfect[500] = 1.0;
        let r = evaluate(std::slice::from_ref(&s), &[perfect]);
        assert!((r[0].score - 100.0).abs() < 1e-9);
        let r = evaluate(std::slice::from_ref(&s), &[vec![0.0; 1000]]);
        assert!(r[0].score.abs() < 1e-9);
    }
}
