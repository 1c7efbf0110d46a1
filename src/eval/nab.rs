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

/// What flagging one row is worth.
#[derive(Clone, Copy, Debug, PartialEq)]
enum RowEffect {
    /// Probation: nothing.
    Ignored,
    /// Inside window `0`, earning `1` if it is the window's earliest detection.
    InWindow(usize, f64),
    /// Outside every window: a false positive costing this (negative) amount.
    Outside(f64),
}

fn row_effect(series: &Series, i: usize, p: &Profile) -> RowEffect {
    if i < series.probation() {
        return RowEffect::Ignored;
    }
    if let Some(w) = series.windows.iter().position(|&(s, e)| (s..=e).contains(&i)) {
        let (s, e) = series.windows[w];
        let width = (e - s + 1) as f64;
        let y = -((e as f64 - i as f64 + 1.0) / width);
        return RowEffect::InWindow(w, p.tp * scaled_sigmoid(y) / scaled_sigmoid(-1.0));
    }
    let previous = series.windows.iter().filter(|&&(_, e)| e < i).max_by_key(|&&(_, e)| e);
    let s = match previous {
        None => -1.0,
        Some(&(ws, we)) => {
            let width = (we - ws + 1) as f64;
            scaled_sigmoid((i - we) as f64 / (width - 1.0).max(1.0))
        }
    };
    RowEffect::Outside(p.fp * s)
}

/// Raw NAB score of one series for detections `flags` (one per row).
pub fn score_series(series: &Series, flags: &[bool], p: &Profile) -> f64 {
    let mut score = 0.0;
    let mut detected = vec![false; series.windows.len()];
    for (i, _) in flags.iter().enumerate().filter(|(_, f)| **f) {
        match row_effect(series, i, p) {
            RowEffect::Ignored => {}
            RowEffect::InWindow(w, credit) => {
                if !detected[w] {
                    detected[w] = true;
                    score += credit;
                }
            }
            RowEffect::Outside(cost) => score += cost,
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

/// The normalised score of a raw total over `windows` windows: 0 = detect nothing, 100 = perfect.
pub fn normalise(total: f64, windows: usize, p: &Profile) -> f64 {
    let null = -p.fn_ * windows as f64;
    let perfect = p.tp * windows as f64;
    100.0 * (total - null) / (perfect - null)
}

/// The threshold maximising the raw total of `series` (indices into `corpus`), exactly: a row
/// is flagged when its score is at or above the threshold, so the total only changes at the
/// scores themselves. Rows are added from the highest score down, each changing the total by
/// its own effect (a window's credit is that of its earliest flagged row), and the total is
/// read after each distinct score. Returns (threshold, raw total); `+inf` flags nothing.
pub fn best_threshold(corpus: &[Series], scores: &[Vec<f64>], series: &[usize], p: &Profile) -> (f64, f64) {
    let mut rows: Vec<(f64, usize, usize)> = Vec::new();
    let mut total = 0.0;
    // Where each series' windows start in `credit`.
    let mut base = vec![0; corpus.len()];
    let mut windows = 0;
    for &k in series {
        base[k] = windows;
        windows += corpus[k].windows.len();
        total -= p.fn_ * corpus[k].windows.len() as f64;
        rows.extend(scores[k].iter().enumerate().map(|(i, s)| (*s, k, i)));
    }
    rows.sort_by(|a, b| b.0.total_cmp(&a.0));
    // The earliest flagged row's credit per window; `None` while undetected.
    let mut credit: Vec<Option<f64>> = vec![None; windows];
    let mut best = (f64::INFINITY, total);
    let mut i = 0;
    while i < rows.len() {
        let level = rows[i].0;
        while i < rows.len() && rows[i].0 == level {
            let (_, k, row) = rows[i];
            match row_effect(&corpus[k], row, p) {
                RowEffect::Ignored => {}
                RowEffect::InWindow(w, c) => {
                    let slot = &mut credit[base[k] + w];
                    match *slot {
                        None => {
                            total += p.fn_ + c;
                            *slot = Some(c);
                        }
                        Some(old) if c > old => {
                            total += c - old;
                            *slot = Some(c);
                        }
                        Some(_) => {}
                    }
                }
                RowEffect::Outside(cost) => total += cost,
            }
            i += 1;
        }
        if total > best.1 {
            best = (level, total);
        }
    }
    best
}

/// For each profile, the corpus-wide threshold maximising the total, and the normalised score.
pub fn evaluate(corpus: &[Series], scores: &[Vec<f64>]) -> Vec<ProfileScore> {
    let windows: usize = corpus.iter().map(|s| s.windows.len()).sum();
    let all: Vec<usize> = (0..corpus.len()).collect();
    PROFILES
        .iter()
        .map(|p| {
            let (threshold, total) = best_threshold(corpus, scores, &all, p);
            ProfileScore {
                profile: p.name.to_owned(),
                score: normalise(total, windows, p),
                threshold,
            }
        })
        .collect()
}

/// The raw total of `series` with every row at or above `threshold` flagged.
pub fn total_at(corpus: &[Series], scores: &[Vec<f64>], series: &[usize], threshold: f64, p: &Profile) -> f64 {
    series
        .iter()
        .map(|&k| {
            let flags: Vec<bool> = scores[k].iter().map(|v| *v >= threshold).collect();
            score_series(&corpus[k], &flags, p)
        })
        .sum()
}

/// For each profile, the score with thresholds that never saw the files they are applied to:
/// files are split in two folds (alternating, in name order), the best threshold of each fold
/// flags the other, and the two totals are normalised together.
pub fn evaluate_cross_fitted(corpus: &[Series], scores: &[Vec<f64>]) -> Vec<ProfileScore> {
    let windows: usize = corpus.iter().map(|s| s.windows.len()).sum();
    let folds: [Vec<usize>; 2] = [
        (0..corpus.len()).filter(|k| k % 2 == 0).collect(),
        (0..corpus.len()).filter(|k| k % 2 == 1).collect(),
    ];
    PROFILES
        .iter()
        .map(|p| {
            let fitted: Vec<f64> = folds.iter().map(|f| best_threshold(corpus, scores, f, p).0).collect();
            let total =
                total_at(corpus, scores, &folds[1], fitted[0], p) + total_at(corpus, scores, &folds[0], fitted[1], p);
            ProfileScore {
                profile: p.name.to_owned(),
                score: normalise(total, windows, p),
                threshold: f64::NAN,
            }
        })
        .collect()
}

/// For each profile, the score of the detector's own alerts (`alerts`, one flag per row).
pub fn evaluate_flags(corpus: &[Series], alerts: &[Vec<bool>]) -> Vec<ProfileScore> {
    let windows: usize = corpus.iter().map(|s| s.windows.len()).sum();
    PROFILES
        .iter()
        .map(|p| {
            let total: f64 = corpus.iter().zip(alerts).map(|(s, f)| score_series(s, f, p)).sum();
            ProfileScore {
                profile: p.name.to_owned(),
                score: normalise(total, windows, p),
                threshold: f64::NAN,
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

    #[test]
    fn the_threshold_search_matches_scoring_every_distinct_threshold() {
        // Pseudo-random scores on three series with windows: the sweep must find the best of
        // all thresholds, which brute force finds by scoring each distinct value.
        let mut corpus = Vec::new();
        let mut scores = Vec::new();
        let mut x = 12345u64;
        for k in 0..3 {
            let mut s = series();
            s.windows = vec![(300 + 50 * k, 380 + 50 * k), (700, 760)];
            corpus.push(s);
            scores.push(
                (0..1000)
                    .map(|_| {
                        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                        ((x >> 40) % 200) as f64 / 200.0
                    })
                    .collect::<Vec<f64>>(),
            );
        }
        let all: Vec<usize> = (0..3).collect();
        for p in &PROFILES {
            let (t, total) = best_threshold(&corpus, &scores, &all, p);
            let mut candidates: Vec<f64> = scores.iter().flatten().copied().collect();
            candidates.push(f64::INFINITY);
            let brute = candidates
                .iter()
                .map(|&c| total_at(&corpus, &scores, &all, c, p))
                .fold(f64::NEG_INFINITY, f64::max);
            assert!(
                (total - brute).abs() < 1e-9,
                "{}: sweep {total} vs brute force {brute}",
                p.name
            );
            assert!((total_at(&corpus, &scores, &all, t, p) - total).abs() < 1e-9);
        }
    }
}
