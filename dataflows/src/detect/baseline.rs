//! Rolling baselines of past windows, and the deviation of a new value from them.

use std::collections::VecDeque;

/// How the baseline is kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// Mean and variance by Welford's update over the last `baseline_windows` windows
    /// (exact until then, then forgetting at rate 1/N, so state stays O(1)).
    Zscore,
    /// Exponentially weighted mean and variance with factor `alpha`.
    Ewma,
    /// Median and median absolute deviation (scaled by 1.4826) over the last `baseline_windows`
    /// windows. Robust to outliers in the history.
    Mad,
}

impl Strategy {
    /// Parses `zscore` (or `welford`), `ewma`, `mad` (or `robust`).
    pub fn parse(s: &str) -> Option<Strategy> {
        match s {
            "zscore" | "welford" => Some(Strategy::Zscore),
            "ewma" => Some(Strategy::Ewma),
            "mad" | "robust" => Some(Strategy::Mad),
            _ => None,
        }
    }
}

/// Which side of the baseline counts as anomalous.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Only values above.
    Up,
    /// Only values below.
    Down,
    /// Either side.
    Both,
}

impl Direction {
    /// Parses `up`, `down`, `both`.
    pub fn parse(s: &str) -> Option<Direction> {
        match s {
            "up" => Some(Direction::Up),
            "down" => Some(Direction::Down),
            "both" => Some(Direction::Both),
            _ => None,
        }
    }
}

/// Parameters shared by every key of one detector.
#[derive(Clone, Debug, PartialEq)]
pub struct BaselineConfig {
    /// Baseline kind.
    pub strategy: Strategy,
    /// Deviation (in σ) beyond which a value is anomalous.
    pub threshold: f64,
    /// Which side counts.
    pub direction: Direction,
    /// Windows of history needed before judging.
    pub min_history: u32,
    /// History length for `zscore` and `mad`.
    pub baseline_windows: u32,
    /// Smoothing factor for `ewma`.
    pub alpha: f64,
    /// Spread floor as a fraction of |centre|, so a flat history does not make every wiggle infinite.
    pub min_std_ratio: f64,
    /// Absolute spread floor.
    pub min_std: f64,
    /// Smallest absolute difference from the baseline that can count as anomalous, so that a
    /// statistically clear but practically tiny change (0.5% to 1.5% errors) does not page anyone.
    pub min_delta: f64,
}

impl Default for BaselineConfig {
    fn default() -> Self {
        BaselineConfig {
            strategy: Strategy::Zscore,
            threshold: 3.0,
            direction: Direction::Up,
            min_history: 10,
            baseline_windows: 60,
            alpha: 0.1,
            min_std_ratio: 0.05,
            min_std: 1e-9,
            min_delta: 0.0,
        }
    }
}

/// How far a value sits from its baseline.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Deviation {
    /// Baseline centre.
    pub center: f64,
    /// Baseline spread after floors.
    pub spread: f64,
    /// Signed deviation in spreads.
    pub z: f64,
    /// The observed value.
    pub value: f64,
    /// Beyond the threshold on a watched side.
    pub anomalous: bool,
}

impl Deviation {
    /// Confidence in 0..1: 0.5 at the threshold, approaching 1 as the deviation grows.
    ///
    /// ```
    /// use sentinel_dataflows::detect::Deviation;
    /// let d = Deviation { center: 0.0, spread: 1.0, z: 6.0, value: 6.0, anomalous: true };
    /// assert!((d.score(3.0) - 0.75).abs() < 1e-9);
    /// ```
    pub fn score(&self, threshold: f64) -> f64 {
        1.0 - 0.5f64.powf(self.z.abs() / threshold.max(1e-9))
    }
}

/// The history of one key.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Baseline {
    /// Moments for `zscore` and `ewma`.
    Moments {
        /// Windows seen (saturating).
        n: u32,
        /// Mean.
        mean: f64,
        /// Variance.
        var: f64,
    },
    /// Recent values for `mad`.
    Recent(VecDeque<f32>),
}

impl Baseline {
    /// An empty history for `strategy`.
    pub fn new(strategy: Strategy) -> Self {
        match strategy {
            Strategy::Zscore | Strategy::Ewma => Baseline::Moments {
                n: 0,
                mean: 0.0,
                var: 0.0,
            },
            Strategy::Mad => Baseline::Recent(VecDeque::new()),
        }
    }

    /// Windows of history held.
    pub fn len(&self) -> u32 {
        match self {
            Baseline::Moments { n, .. } => *n,
            Baseline::Recent(r) => r.len() as u32,
        }
    }

    /// True before the first value.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn center_spread(&self) -> (f64, f64) {
        match self {
            Baseline::Moments { mean, var, .. } => (*mean, var.max(0.0).sqrt()),
            Baseline::Recent(r) => {
                let mut v: Vec<f32> = r.iter().copied().collect();
                let med = median(&mut v);
                let mut dev: Vec<f32> = r.iter().map(|x| (x - med).abs()).collect();
                (f64::from(med), 1.4826 * f64::from(median(&mut dev)))
            }
        }
    }

    /// Compares `value` with the history, without changing it. `None` until `min_history` windows.
    /// `sample_size` is the number of trials behind a proportion (calls behind an error rate): the
    /// spread is then at least the binomial sampling error, so a window of 30 calls with one
    /// failure is not judged like a window of 3,000.
    pub fn deviation(&self, cfg: &BaselineConfig, value: f64, sample_size: Option<f64>) -> Option<Deviation> {
        if self.len() < cfg.min_history.max(1) {
            return None;
        }
        let (center, raw) = self.center_spread();
        let mut spread = raw.max(cfg.min_std).max(cfg.min_std_ratio * center.abs());
        if let Some(n) = sample_size.filter(|n| *n > 0.0) {
            let p = center.clamp(1.0 / n, 1.0 - 1.0 / n.max(2.0));
            spread = spread.max((p * (1.0 - p) / n).sqrt());
        }
        let z = (value - center) / spread;
        let big_enough = (value - center).abs() >= cfg.min_delta;
        let beyond = big_enough
            && match cfg.direction {
                Direction::Up => z > cfg.threshold,
                Direction::Down => z < -cfg.threshold,
                Direction::Both => z.abs() > cfg.threshold,
            };
        Some(Deviation {
            center,
            spread,
            z,
            value,
            anomalous: beyond,
        })
    }

    /// Adds a window's value to the history.
    pub fn update(&mut self, cfg: &BaselineConfig, value: f64) {
        match self {
            Baseline::Moments { n, mean, var } => {
                *n = n.saturating_add(1);
                let floor = match cfg.strategy {
                    Strategy::Ewma => cfg.alpha,
                    _ => 1.0 / f64::from(cfg.baseline_windows.max(1)),
                };
                let alpha = (1.0 / f64::from(*n)).max(floor);
                let delta = value - *mean;
                *mean += alpha * delta;
                *var = (1.0 - alpha) * (*var + alpha * delta * delta);
            }
            Baseline::Recent(r) => {
                if r.len() as u32 >= cfg.baseline_windows.max(1) {
                    r.pop_front();
                }
                r.push_back(value as f32);
            }
        }
    }

    /// Judges `value`, then learns from it. An anomalous value is clipped to the threshold before
    /// it enters the history, so one spike cannot hide the next, yet a lasting shift is learned.
    pub fn observe(&mut self, cfg: &BaselineConfig, value: f64, sample_size: Option<f64>) -> Option<Deviation> {
        let dev = self.deviation(cfg, value, sample_size);
        let learn = match dev {
            Some(d) if d.anomalous => d.center + d.z.signum() * cfg.threshold * d.spread,
            _ => value,
        };
        self.update(cfg, learn);
        dev
    }

    /// Approximate heap bytes.
    pub fn heap_bytes(&self) -> usize {
        match self {
            Baseline::Moments { .. } => 0,
            Baseline::Recent(r) => r.capacity() * 4,
        }
    }
}

fn median(v: &mut [f32]) -> f32 {
    if v.is_empty() {
        return 0.0;
    }
    let mid = v.len() / 2;
    let (_, m, _) = v.select_nth_unstable_by(mid, |a, b| a.total_cmp(b));
    let m = *m;
    if v.len() % 2 == 1 {
        m
    } else {
        let lower = v[..mid].iter().copied().fold(f32::NEG_INFINITY, f32::max);
        (lower + m) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(strategy: Strategy) -> BaselineConfig {
        BaselineConfig {
            strategy,
            threshold: 4.0,
            min_history: 5,
            baseline_windows: 30,
            ..Default::default()
        }
    }

    fn noisy(i: u32) -> f64 {
        100.0 + f64::from((i * 7919) % 11) - 5.0
    }

    #[test]
    fn welford_matches_two_pass_statistics_before_the_cap() {
        let c = cfg(Strategy::Zscore);
        let mut b = Baseline::new(Strategy::Zscore);
        let xs: Vec<f64> = (0..20).map(noisy).collect();
        for x in &xs {
            b.update(&c, *x);
        }
        let mean = xs.iter().sum::<f64>() / 20.0;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 20.0;
        let Baseline::Moments { mean: m, var: v, .. } = b else {
            panic!()
        };
        assert!((m - mean).abs() < 1e-9 && (v - var).abs() < 1e-9);
    }

    #[test]
    fn every_strategy_flags_a_spike_and_not_the_noise() {
        for s in [Strategy::Zscore, Strategy::Ewma, Strategy::Mad] {
            let c = cfg(s);
            let mut b = Baseline::new(s);
            for i in 0..40 {
                let d = b.observe(&c, noisy(i), None);
                assert!(!d.is_some_and(|d| d.anomalous), "{s:?} flagged noise at {i}");
            }
            let d = b.observe(&c, 300.0, None).unwrap();
            assert!(d.anomalous && d.z > 4.0, "{s:?} missed the spike: {d:?}");
        }
    }

    #[test]
    fn waits_for_history_and_respects_direction() {
        let mut c = cfg(Strategy::Zscore);
        let mut b = Baseline::new(Strategy::Zscore);
        assert!(b.observe(&c, noisy(99), None).is_none());
        for i in 0..10 {
            b.observe(&c, noisy(i), None);
        }
        assert!(!b.deviation(&c, 0.0, None).unwrap().anomalous);
        c.direction = Direction::Down;
        assert!(b.deviation(&c, 0.0, None).unwrap().anomalous);
        c.direction = Direction::Both;
        assert!(b.deviation(&c, 500.0, None).unwrap().anomalous);
    }

    #[test]
    fn mad_ignores_a_contaminated_history() {
        let c = cfg(Strategy::Mad);
        let mut b = Baseline::new(Strategy::Mad);
        for i in 0..30 {
            b.update(&c, if i % 10 == 0 { 10_000.0 } else { noisy(i) });
        }
        assert!(b.deviation(&c, 200.0, None).unwrap().anomalous);
    }

    #[test]
    fn small_samples_and_small_changes_stay_quiet() {
        let mut c = cfg(Strategy::Zscore);
        let mut b = Baseline::new(Strategy::Zscore);
        for i in 0..30 {
            b.update(&c, 0.005 + f64::from(i % 3) * 0.001);
        }
        // One failure in 29 calls is 3.4%, but 29 calls cannot tell that from 0.6%.
        assert!(b.deviation(&c, 1.0 / 29.0, None).unwrap().anomalous);
        assert!(!b.deviation(&c, 1.0 / 29.0, Some(29.0)).unwrap().anomalous);
        assert!(b.deviation(&c, 12.0 / 29.0, Some(29.0)).unwrap().anomalous);
        c.min_delta = 0.5;
        assert!(!b.deviation(&c, 12.0 / 29.0, Some(29.0)).unwrap().anomalous);
    }
}
