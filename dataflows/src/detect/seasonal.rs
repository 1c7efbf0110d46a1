//! Seasonal comparison for statistical detectors: besides the rolling baseline of a key's
//! values, judge the change from the same point one season earlier, so a regular daily or
//! hourly swing stops looking anomalous while a break in the pattern does.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::baseline::{Baseline, BaselineConfig, Deviation, Strategy};

/// How the season of a key is known.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SeasonPeriod {
    /// A fixed number of windows (a configured duration divided by the window width).
    Windows(usize),
    /// Found per key by autocorrelation over its first `learn_windows` windows; a key without a
    /// clear period (autocorrelation at most `min_correlation`) is judged on its level only.
    Auto {
        /// Windows collected before the period is looked for.
        learn_windows: usize,
        /// Autocorrelation the period must exceed.
        min_correlation: f64,
    },
}

/// A seasonal comparison: the period and the baseline of season-over-season changes (the
/// level baseline's parameters).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SeasonalConfig {
    /// The season.
    pub period: SeasonPeriod,
}

/// One key's seasonal state: the last season of values and the history of changes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SeasonalState {
    /// The period in windows; `None` while still learning it, `Some(0)` when there is none.
    period: Option<usize>,
    /// The last `period` values (while learning: every value so far), oldest first.
    recent: VecDeque<f64>,
    /// Changes from one season earlier.
    changes: Baseline,
}

impl SeasonalState {
    /// A key with no history.
    pub fn new(cfg: &SeasonalConfig, strategy: Strategy) -> Self {
        SeasonalState {
            period: match cfg.period {
                SeasonPeriod::Windows(p) => Some(p),
                SeasonPeriod::Auto { .. } => None,
            },
            recent: VecDeque::new(),
            changes: Baseline::new(strategy),
        }
    }

    /// The period in windows, once known (`None` also when the key has none).
    pub fn period(&self) -> Option<usize> {
        self.period.filter(|p| *p > 0)
    }

    /// Judges `value` against the value one season earlier (when there is one), learns from
    /// it, and returns the deviation of the change, restated in the value's terms: its centre
    /// is the value expected from last season plus the usual change.
    pub fn observe(&mut self, cfg: &SeasonalConfig, level: &BaselineConfig, value: f64) -> Option<Deviation> {
        let judged = match self.period() {
            Some(p) if self.recent.len() >= p => {
                let before = self.recent[self.recent.len() - p];
                self.changes.observe(level, value - before, None).map(|d| Deviation {
                    center: before + d.center,
                    value,
                    ..d
                })
            }
            _ => None,
        };
        self.push(cfg, value);
        judged
    }

    /// Keeps `value` as the newest of the season; finds the period once enough is seen.
    fn push(&mut self, cfg: &SeasonalConfig, value: f64) {
        self.recent.push_back(value);
        if let (
            None,
            SeasonPeriod::Auto {
                learn_windows,
                min_correlation,
            },
        ) = (self.period, cfg.period)
        {
            if self.recent.len() >= learn_windows {
                let values: Vec<f64> = self.recent.iter().copied().collect();
                self.period = Some(find_period(&values, min_correlation).unwrap_or(0));
            }
        }
        let keep = match self.period {
            None => usize::MAX,
            Some(p) => p,
        };
        while self.recent.len() > keep {
            self.recent.pop_front();
        }
    }

    /// Approximate heap bytes.
    pub fn heap_bytes(&self) -> usize {
        self.recent.capacity() * 8 + self.changes.heap_bytes()
    }
}

/// The dominant period of `values`: the lag, after the autocorrelation first dips to zero or
/// below, where it peaks again, if that peak exceeds `min_correlation`.
///
/// ```
/// use sentinel_dataflows::detect::seasonal::find_period;
/// let daily: Vec<f64> = (0..500).map(|i| ((i % 24) as f64 / 24.0 * std::f64::consts::TAU).sin()).collect();
/// assert_eq!(find_period(&daily, 0.6), Some(24));
/// assert_eq!(find_period(&vec![1.0; 500], 0.6), None);
/// ```
pub fn find_period(values: &[f64], min_correlation: f64) -> Option<usize> {
    let n = values.len();
    if n < 40 {
        return None;
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>();
    if var <= 0.0 {
        return None;
    }
    let acf = |lag: usize| {
        (lag..n)
            .map(|i| (values[i] - mean) * (values[i - lag] - mean))
            .sum::<f64>()
            / var
    };
    let max_lag = n / 2;
    let mut lag = 1;
    while lag < max_lag && acf(lag) > 0.0 {
        lag += 1;
    }
    let (best, value) = (lag..max_lag)
        .map(|l| (l, acf(l)))
        .fold((0, f64::MIN), |a, b| if b.1 > a.1 { b } else { a });
    (best > 1 && value > min_correlation).then_some(best)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::Direction;

    fn level() -> BaselineConfig {
        BaselineConfig {
            strategy: Strategy::Zscore,
            threshold: 4.0,
            direction: Direction::Both,
            min_history: 30,
            baseline_windows: 200,
            alpha: 0.01,
            min_std_ratio: 0.0,
            min_std: 1e-6,
            min_delta: 0.0,
        }
    }

    #[test]
    fn a_regular_swing_is_expected_and_a_break_in_it_is_not() {
        let cfg = SeasonalConfig {
            period: SeasonPeriod::Auto {
                learn_windows: 200,
                min_correlation: 0.6,
            },
        };
        let mut st = SeasonalState::new(&cfg, Strategy::Zscore);
        let swing = |i: usize| 100.0 + 50.0 * ((i % 24) as f64 / 24.0 * std::f64::consts::TAU).sin();
        let mut worst = 0.0f64;
        for i in 0..600 {
            let noise = ((i * 7919) % 11) as f64 * 0.2;
            if let Some(d) = st.observe(&cfg, &level(), swing(i) + noise) {
                worst = worst.max(d.z.abs());
            }
        }
        assert_eq!(st.period(), Some(24));
        assert!(worst < 4.0, "the swing itself is not anomalous: {worst}");
        // The trough skipped: the level is within the range seen, the season says otherwise.
        let d = st.observe(&cfg, &level(), swing(6)).expect("judged");
        assert!(d.anomalous, "{d:?}");
        assert!(
            (d.center - swing(600)).abs() < 5.0,
            "expected about last season's value: {d:?}"
        );
    }

    #[test]
    fn a_series_without_a_period_keeps_no_season() {
        let cfg = SeasonalConfig {
            period: SeasonPeriod::Auto {
                learn_windows: 100,
                min_correlation: 0.6,
            },
        };
        let mut st = SeasonalState::new(&cfg, Strategy::Zscore);
        let mut x = 7u64;
        for _ in 0..300 {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            assert!(st.observe(&cfg, &level(), (x >> 44) as f64).is_none());
        }
        assert_eq!(st.period(), None);
        assert!(st.recent.is_empty());
    }
}
