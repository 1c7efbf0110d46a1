//! Scores a plain numeric series row by row with the statistical baselines, one series as one
//! key, for benchmarks such as NAB whose rows are the windows.

use sentinel_dataflows::detect::{Baseline, BaselineConfig, Direction, Strategy};

/// How a series is judged.
#[derive(Clone, Debug)]
pub struct SeriesDetector {
    /// Baseline of the values.
    pub level: BaselineConfig,
    /// Also judge the change from the previous row (catches steps the level baseline absorbs).
    pub use_changes: bool,
    /// Rows after an alert during which further alerts are suppressed (an alert cooldown).
    pub cooldown: usize,
    /// Compare each row with the row one season earlier when the series is strongly periodic
    /// (the period is found by autocorrelation over the first rows).
    pub seasonal: bool,
    /// Score how unusual the recent raw scores are against their own long-run distribution,
    /// so a series that is always spiky stops alerting on every spike (anomaly likelihood).
    pub likelihood: bool,
}

impl SeriesDetector {
    /// The configuration `sentinel eval nab` uses unless told otherwise. The history is a tenth
    /// of the series (30..500 rows); the threshold and cooldown are fixed, not fitted per file.
    pub fn default_for(strategy: Strategy, rows: usize) -> Self {
        let history = (rows / 10).clamp(30, 500) as u32;
        SeriesDetector {
            level: BaselineConfig {
                strategy,
                threshold: 5.0,
                direction: Direction::Both,
                min_history: 30,
                baseline_windows: history,
                alpha: 2.0 / (f64::from(history) + 1.0),
                min_std_ratio: 0.0,
                min_std: 1e-6,
                min_delta: 0.0,
            },
            use_changes: false,
            // About eight hours at NAB's usual five-minute sampling.
            cooldown: 100,
            seasonal: true,
            likelihood: false,
        }
    }

    /// An anomaly score in 0..1 for every row.
    pub fn score(&self, values: &[f64]) -> Vec<f64> {
        let learn = (values.len() as f64 * 0.15) as usize;
        let period = if self.seasonal {
            find_period(&values[..learn.min(values.len())])
        } else {
            None
        };
        let mut level = Baseline::new(self.level.strategy);
        let mut change = Baseline::new(self.level.strategy);
        let threshold = self.level.threshold;
        let mut raw = Vec::with_capacity(values.len());
        for (i, &v) in values.iter().enumerate() {
            let mut z: f64 = level.observe(&self.level, v, None).map_or(0.0, |d| d.z.abs());
            let lag = period.unwrap_or(1);
            if (self.use_changes || period.is_some()) && i >= lag {
                let delta = v - values[i - lag];
                z = z.max(change.observe(&self.level, delta, None).map_or(0.0, |d| d.z.abs()));
            }
            raw.push(z);
        }
        let scores: Vec<f64> = if self.likelihood {
            likelihood(&raw, threshold)
        } else {
            raw.iter().map(|z| 1.0 - 0.5f64.powf(z / threshold)).collect()
        };
        let mut out = Vec::with_capacity(values.len());
        let mut quiet_until = 0usize;
        let alert_level = 1.0 - 0.5f64.powf(1.0);
        for (i, score) in scores.into_iter().enumerate() {
            if i < quiet_until {
                out.push(0.0);
                continue;
            }
            if score > alert_level {
                quiet_until = i + 1 + self.cooldown;
            }
            out.push(score);
        }
        out
    }
}

/// The dominant period of `values`, if the autocorrelation at some lag is strong (> 0.6).
fn find_period(values: &[f64]) -> Option<usize> {
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
    // The first lag after the autocorrelation has dipped below zero where it peaks again.
    let max_lag = n / 2;
    let mut lag = 1;
    while lag < max_lag && acf(lag) > 0.0 {
        lag += 1;
    }
    let (best, value) = (lag..max_lag)
        .map(|l| (l, acf(l)))
        .fold((0, f64::MIN), |a, b| if b.1 > a.1 { b } else { a });
    (best > 1 && value > 0.6).then_some(best)
}

/// NAB-style anomaly likelihood: the mean of the last few raw scores against the mean and spread
/// of raw scores over a long history, turned into a probability.
fn likelihood(raw: &[f64], threshold: f64) -> Vec<f64> {
    const SHORT: usize = 5;
    let long = 1000usize;
    let (mut mean, mut var, mut n) = (0.0f64, 0.0f64, 0u32);
    let mut out = Vec::with_capacity(raw.len());
    for (i, &z) in raw.iter().enumerate() {
        let x = (z / threshold).min(10.0);
        let short = raw[i.saturating_sub(SHORT - 1)..=i]
            .iter()
            .map(|z| (z / threshold).min(10.0))
            .sum::<f64>()
            / (i.min(SHORT - 1) + 1) as f64;
        let score = if n < 100 {
            0.0
        } else {
            1.0 - 0.5 * erfc((short - mean) / var.sqrt().max(1e-3) / std::f64::consts::SQRT_2)
        };
        out.push(score);
        n = n.saturating_add(1);
        let alpha = (1.0 / f64::from(n)).max(1.0 / long as f64);
        let d = x - mean;
        mean += alpha * d;
        var = (1.0 - alpha) * (var + alpha * d * d);
    }
    out
}

/// NAB's "windowed Gaussian" reference detector, reimplemented so that it can be scored on the
/// same data in the same run: mean and standard deviation over the last 6,400 rows, refreshed
/// every 100 rows, and a score of `1 − tail probability` of the row's deviation.
pub fn windowed_gaussian(values: &[f64]) -> Vec<f64> {
    const WINDOW: usize = 6400;
    const STEP: usize = 100;
    let mut window: Vec<f64> = Vec::new();
    let mut step: Vec<f64> = Vec::new();
    let (mut mean, mut std) = (0.0, 1e-6);
    let refresh = |w: &[f64]| {
        let m = w.iter().sum::<f64>() / w.len() as f64;
        let s = (w.iter().map(|x| (x - m).powi(2)).sum::<f64>() / w.len() as f64).sqrt();
        (m, if s == 0.0 { 1e-6 } else { s })
    };
    let mut out = Vec::with_capacity(values.len());
    for &v in values {
        let score = if window.is_empty() {
            0.0
        } else {
            1.0 - 0.5 * erfc(((v - mean).abs() / std) / std::f64::consts::SQRT_2)
        };
        out.push(score);
        if window.len() < WINDOW {
            window.push(v);
            (mean, std) = refresh(&window);
        } else {
            step.push(v);
            if step.len() == STEP {
                window.drain(..STEP);
                window.append(&mut step);
                (mean, std) = refresh(&window);
            }
        }
    }
    out
}

/// Complementary error function (W. J. Cody's rational approximations via `erf`, |error| < 1.2e-7).
pub fn erfc(x: f64) -> f64 {
    // Numerical Recipes erfcc: fractional error below 1.2e-7 everywhere.
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t
        * (-z * z - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erfc_matches_known_values() {
        for (x, want) in [
            (0.0, 1.0),
            (0.5, 0.479_500_122),
            (1.0, 0.157_299_207),
            (2.0, 0.004_677_735),
            (-1.0, 1.842_700_793),
        ] {
            assert!((erfc(x) - want).abs() < 1e-6, "erfc({x}) = {} not {want}", erfc(x));
        }
    }

    #[test]
    fn a_spike_outscores_the_noise() {
        let mut values: Vec<f64> = (0..2000).map(|i| 10.0 + ((i * 7919) % 13) as f64 * 0.1).collect();
        values[1500] = 50.0;
        for scores in [
            SeriesDetector::default_for(Strategy::Zscore, values.len()).score(&values),
            windowed_gaussian(&values),
        ] {
            let top = scores.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap().0;
            assert_eq!(top, 1500);
        }
    }
}
