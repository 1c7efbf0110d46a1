//! The `type: statistical` detector: a windowed metric per entity against its own rolling baseline.

use super::baseline::{Baseline, BaselineConfig, Deviation, Direction};
use super::metric::Metric;
use super::seasonal::{SeasonalConfig, SeasonalState};
use crate::model::{AffectedEntity, Anomaly, AnomalyDraft, AnomalyMetrics, DetectorType, Severity};
use crate::state::KeyedSlab;
use crate::time::{format_duration_ms, format_rfc3339_ms};
use crate::window::{Dimension, WindowAggregate};

/// Score bands that map an anomaly's score (0..1) to a severity.
#[derive(Clone, Debug, PartialEq)]
pub struct SeverityBands {
    /// Score at or above which an anomaly is a warning (below: info).
    pub warning: f64,
    /// Score at or above which an anomaly is critical.
    pub critical: f64,
}

impl Default for SeverityBands {
    fn default() -> Self {
        // 0.5 is the score at the threshold; 0.8 is about 2.3x the threshold.
        SeverityBands {
            warning: 0.5,
            critical: 0.8,
        }
    }
}

impl SeverityBands {
    /// The severity of `score`.
    pub fn severity(&self, score: f64) -> Severity {
        if score >= self.critical {
            Severity::Critical
        } else if score >= self.warning {
            Severity::Warning
        } else {
            Severity::Info
        }
    }
}

/// Everything a statistical detector is configured with.
#[derive(Clone, Debug, PartialEq)]
pub struct StatisticalConfig {
    /// Detector id (stable; part of every anomaly id).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Watched metric.
    pub metric: Metric,
    /// Entity kind the metric is computed per.
    pub group_by: Dimension,
    /// Tumbling window width, ms.
    pub window_ms: u64,
    /// Baseline parameters.
    pub baseline: BaselineConfig,
    /// Minimum calls in a window before a ratio or latency is judged.
    pub min_calls: u32,
    /// Score-to-severity bands.
    pub severity: SeverityBands,
    /// Keys idle this long (event time) are forgotten.
    pub state_ttl_ms: u64,
    /// After an anomaly on a key, further anomalies on it are held back this long (event time;
    /// the baseline keeps learning), so one incident pages once. 0 = off.
    pub cooldown_ms: u64,
    /// Also judge the change from one season earlier.
    pub seasonal: Option<SeasonalConfig>,
}

#[derive(Clone, Debug, PartialEq)]
struct KeyState {
    baseline: Baseline,
    last_window_end: u64,
    seasonal: Option<SeasonalState>,
    /// Anomalies on windows ending at or before this are held back (cooldown).
    quiet_until: u64,
}

impl KeyState {
    fn new(cfg: &StatisticalConfig, window_end: u64) -> Self {
        KeyState {
            baseline: Baseline::new(cfg.baseline.strategy),
            last_window_end: window_end,
            seasonal: cfg.seasonal.map(|s| SeasonalState::new(&s, cfg.baseline.strategy)),
            quiet_until: 0,
        }
    }
}

/// How one window of one key was judged.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Judgement {
    /// The larger of the level's and (with seasonality) the seasonal change's deviation.
    pub deviation: Deviation,
    /// Confidence in 0..1 (0.5 at the threshold); 0 while a cooldown holds the key back.
    pub score: f64,
    /// Beyond the threshold and not held back: an anomaly.
    pub alert: bool,
}

/// One key's baseline as of a closed window, as checkpointed to the state topic: the offsets
/// a restart resumes from do not rebuild it (the windows before them are not read again).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BaselineSnapshot {
    /// The record key under which the newest snapshot of this baseline is kept: namespace
    /// (the consumer group), detector and entity.
    pub state_key: String,
    /// Detector id.
    pub detector_id: String,
    /// Entity kind.
    pub dimension: Dimension,
    /// Entity key.
    pub key: String,
    /// End of the newest window the baseline has learned.
    pub last_window_end: u64,
    /// The history.
    pub baseline: Baseline,
    /// The seasonal history, with seasonality on.
    #[serde(default)]
    pub seasonal: Option<SeasonalState>,
    /// End of the cooldown after the last anomaly.
    #[serde(default)]
    pub quiet_until: u64,
}

impl BaselineSnapshot {
    /// The record key of `detector`'s baseline of `key` in `namespace`.
    pub fn state_key(namespace: &str, detector: &str, dimension: Dimension, key: &str) -> String {
        format!("{namespace}|{detector}|{}|{key}", dimension.as_str())
    }
}

/// One statistical detector with the baselines of every key it has seen.
///
/// ```
/// use sentinel_dataflows::detect::{Metric, StatisticalConfig, StatisticalDetector, BaselineConfig, SeverityBands};
/// use sentinel_dataflows::window::{Dimension, WindowAccumulator, WindowAggregate};
/// let cfg = StatisticalConfig {
///     id: "rpm".into(), name: "Request flood".into(), metric: Metric::RequestsPerMinute,
///     group_by: Dimension::User, window_ms: 60_000,
///     baseline: BaselineConfig { threshold: 4.0, min_history: 5, ..Default::default() },
///     min_calls: 1, severity: SeverityBands::default(), state_ttl_ms: 3_600_000,
///     cooldown_ms: 0, seasonal: None,
/// };
/// let mut det = StatisticalDetector::new(cfg);
/// let window = |end: u64, calls: u32| WindowAggregate {
///     dimension: Dimension::User, key: "u1".into(), width_ms: 60_000, window_end: end,
///     acc: WindowAccumulator { calls, ..Default::default() }, distinct_users: None, distinct_models: None,
/// };
/// for m in 1..=10 { assert!(det.observe(&window(m * 60_000, 3 + (m % 2) as u32)).is_none()); }
/// let anomaly = det.observe(&window(11 * 60_000, 90)).expect("a flood");
/// assert_eq!(anomaly.affected_entity.id, "u1");
/// ```
pub struct StatisticalDetector {
    cfg: StatisticalConfig,
    /// Window length in minutes when the metric counts events (see [`StatisticalDetector::new`]).
    count_minutes: Option<f64>,
    keys: KeyedSlab<KeyState>,
    last_sweep: u64,
}

impl StatisticalDetector {
    /// A detector with no history.
    pub fn new(mut cfg: StatisticalConfig) -> Self {
        if cfg.metric.counts_events() {
            // Counts are judged after the Anscombe transform 2·sqrt(n + 3/8), under which a
            // Poisson count has unit variance whatever its mean: so one spread floor (1.0) and
            // one threshold suit a user making one call an hour and an app making thousands a
            // minute, where a plain z-score would either page on noise or miss floods.
            cfg.baseline.min_std = cfg.baseline.min_std.max(1.0);
        }
        let count_minutes = cfg.metric.counts_events().then(|| cfg.window_ms as f64 / 60_000.0);
        StatisticalDetector {
            cfg,
            count_minutes,
            keys: KeyedSlab::default(),
            last_sweep: 0,
        }
    }

    /// Its configuration.
    pub fn config(&self) -> &StatisticalConfig {
        &self.cfg
    }

    /// Whether `agg` is input for this detector.
    pub fn wants(&self, agg: &WindowAggregate) -> bool {
        agg.dimension == self.cfg.group_by && agg.width_ms == self.cfg.window_ms
    }

    /// Keys with a baseline.
    pub fn key_count(&self) -> usize {
        self.keys.len()
    }

    /// Approximate bytes of state: keys, table and baselines.
    pub fn state_bytes(&self) -> usize {
        self.keys.bytes()
            + self
                .keys
                .iter()
                .map(|(_, s)| s.baseline.heap_bytes() + s.seasonal.as_ref().map_or(0, SeasonalState::heap_bytes))
                .sum::<usize>()
    }

    /// Judges one closed window of one key, windows of a key arriving in time order.
    pub fn observe(&mut self, agg: &WindowAggregate) -> Option<Anomaly> {
        let value = self.cfg.metric.value(agg, self.cfg.min_calls);
        if value.is_none() && self.keys.get(&agg.key).is_none() {
            return None; // nothing to learn from, and no state worth creating
        }
        let trials = (self.cfg.metric == Metric::ErrorRate).then_some(f64::from(agg.acc.calls));
        let model = value.map(|v| to_model(self.count_minutes, v));
        let judged = self.judge(&agg.key, agg.window_end, model, trials)?;
        let mut deviation = judged.deviation;
        if let (Some(minutes), Some(value)) = (self.count_minutes, value) {
            // Report in the metric's own units.
            let center = from_model(minutes, deviation.center);
            deviation.spread = from_model(minutes, deviation.center + deviation.spread) - center;
            deviation.center = center;
            deviation.value = value;
        }
        judged
            .alert
            .then(|| build_anomaly(&self.cfg, agg, &deviation, judged.score))
    }

    /// Judges the value one key's metric had in the window ending at `window_end`, as the
    /// baseline models it (counts transformed), then learns from it. `None` for a value (or a
    /// window) that is not judged: too little history, too few calls, or a window replayed.
    /// `sentinel eval nab` calls this with each row of a series as one window.
    pub fn judge(&mut self, key: &str, window_end: u64, value: Option<f64>, trials: Option<f64>) -> Option<Judgement> {
        let cfg = &self.cfg;
        let state = self.keys.get_or_insert_with(key, || KeyState::new(cfg, window_end));
        if state.last_window_end + cfg.state_ttl_ms < window_end {
            // Idle past the TTL: forgotten, whether or not a sweep has run yet, so the verdict
            // does not depend on when sweeps happened (they differ across restarts).
            *state = KeyState::new(cfg, window_end);
        }
        if window_end <= state.last_window_end && !state.baseline.is_empty() {
            return None; // a replayed or out-of-order window: already judged
        }
        if cfg.metric.is_rate() && !state.baseline.is_empty() {
            // Windows with no events were rate 0; learn them, up to a full history.
            let missing = (window_end - state.last_window_end) / cfg.window_ms;
            let zero = to_model(self.count_minutes, 0.0);
            for _ in 1..missing.min(u64::from(cfg.baseline.baseline_windows) + 1) {
                state.baseline.update(&cfg.baseline, zero);
                if let (Some(seasonal), Some(sc)) = (state.seasonal.as_mut(), &cfg.seasonal) {
                    seasonal.observe(sc, &cfg.baseline, zero);
                }
            }
        }
        state.last_window_end = window_end;
        let value = value?;
        let level = state.baseline.observe(&cfg.baseline, value, trials);
        let season = match (state.seasonal.as_mut(), &cfg.seasonal) {
            (Some(seasonal), Some(sc)) => seasonal.observe(sc, &cfg.baseline, value),
            _ => None,
        };
        let deviation = match (level, season) {
            (Some(l), Some(s)) if s.z.abs() > l.z.abs() => Deviation {
                anomalous: l.anomalous || s.anomalous,
                ..s
            },
            (Some(l), Some(s)) => Deviation {
                anomalous: l.anomalous || s.anomalous,
                ..l
            },
            (l, s) => l.or(s)?,
        };
        let held_back = window_end <= state.quiet_until;
        let alert = deviation.anomalous && !held_back;
        if alert && cfg.cooldown_ms > 0 {
            state.quiet_until = window_end + cfg.cooldown_ms;
        }
        let score = if held_back {
            0.0
        } else {
            deviation.score(cfg.baseline.threshold)
        };
        self.maybe_sweep(window_end);
        Some(Judgement {
            deviation,
            score,
            alert,
        })
    }

    /// The baseline of `key` as a checkpoint record (`None` when the key has none).
    pub fn snapshot(&self, namespace: &str, key: &str) -> Option<BaselineSnapshot> {
        let state = self.keys.get(key)?;
        Some(BaselineSnapshot {
            state_key: BaselineSnapshot::state_key(namespace, &self.cfg.id, self.cfg.group_by, key),
            detector_id: self.cfg.id.clone(),
            dimension: self.cfg.group_by,
            key: key.to_owned(),
            last_window_end: state.last_window_end,
            baseline: state.baseline.clone(),
            seasonal: state.seasonal.clone(),
            quiet_until: state.quiet_until,
        })
    }

    /// Takes back a checkpointed baseline; windows up to its `last_window_end` are then
    /// already learned, and are skipped when read again.
    pub fn restore(&mut self, snapshot: &BaselineSnapshot) {
        let mut state = KeyState::new(&self.cfg, snapshot.last_window_end);
        state.baseline = snapshot.baseline.clone();
        // A snapshot from before seasonality was configured starts its season afresh.
        if snapshot.seasonal.is_some() && self.cfg.seasonal.is_some() {
            state.seasonal = snapshot.seasonal.clone();
        }
        state.quiet_until = snapshot.quiet_until;
        let cfg = &self.cfg;
        let slot = self.keys.get_or_insert_with(&snapshot.key, || KeyState::new(cfg, 0));
        *slot = state;
    }

    /// Forgets keys idle for longer than the TTL; cheap because it runs at most once per TTL/4.
    fn maybe_sweep(&mut self, now: u64) {
        let ttl = self.cfg.state_ttl_ms;
        if now < self.last_sweep + ttl / 4 {
            return;
        }
        self.last_sweep = now;
        self.keys.retain(|_, s| s.last_window_end + ttl >= now);
    }
}

/// The value the baseline models: counts are variance-stabilised (Anscombe), others unchanged.
fn to_model(count_minutes: Option<f64>, value: f64) -> f64 {
    match count_minutes {
        Some(minutes) => 2.0 * (value * minutes + 0.375).sqrt(),
        None => value,
    }
}

/// Inverse of [`to_model`] for counts: back to a per-minute rate.
fn from_model(minutes: f64, model: f64) -> f64 {
    ((model / 2.0).powi(2) - 0.375).max(0.0) / minutes
}

fn build_anomaly(cfg: &StatisticalConfig, agg: &WindowAggregate, d: &Deviation, score: f64) -> Anomaly {
    let dim = cfg.group_by.as_str();
    let metric = cfg.metric.as_str();
    let direction = if d.z >= 0.0 { "spike" } else { "drop" };
    Anomaly::build(AnomalyDraft {
        id_parts: &[
            cfg.id.as_bytes(),
            dim.as_bytes(),
            agg.key.as_bytes(),
            &agg.window_end.to_le_bytes(),
        ],
        detector_id: &cfg.id,
        detector_type: DetectorType::Statistical,
        severity: cfg.severity.severity(score),
        score,
        title: format!("{} {direction}: {metric} for {dim} {}", cfg.name, agg.key),
        description: format!(
            "{metric} was {:.4} in the {} window ending {}, against a baseline of {:.4} (spread {:.4}): \
             {:+.2} deviations, threshold {}.",
            d.value,
            format_duration_ms(cfg.window_ms),
            format_rfc3339_ms(agg.window_end),
            d.center,
            d.spread,
            d.z,
            cfg.baseline.threshold
        ),
        entity: AffectedEntity {
            entity_type: dim.into(),
            id: agg.key.clone(),
            name: agg.key.clone(),
        },
        metrics: AnomalyMetrics {
            baseline_value: d.center,
            observed_value: d.value,
            deviation: d.z,
            threshold: cfg.baseline.threshold,
        },
        at_ms: agg.window_end,
        window_ms: (agg.window_start(), agg.window_end),
        sample_events: agg.acc.samples.iter().map(|s| s.1.to_string()).collect(),
    })
}

impl Direction {
    /// Config name.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Up => "up",
            Direction::Down => "down",
            Direction::Both => "both",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::Strategy;
    use crate::window::WindowAccumulator;

    fn detector(metric: Metric, strategy: Strategy) -> StatisticalDetector {
        StatisticalDetector::new(StatisticalConfig {
            id: "d".into(),
            name: "D".into(),
            metric,
            group_by: Dimension::Application,
            window_ms: 60_000,
            baseline: BaselineConfig {
                strategy,
                threshold: 4.0,
                min_history: 5,
                ..Default::default()
            },
            min_calls: metric.default_min_calls(),
            severity: SeverityBands::default(),
            state_ttl_ms: 3_600_000,
            cooldown_ms: 0,
            seasonal: None,
        })
    }

    fn agg(key: &str, minute: u64, calls: u32, errors: u32, cost: f64) -> WindowAggregate {
        WindowAggregate {
            dimension: Dimension::Application,
            key: key.into(),
            width_ms: 60_000,
            window_end: minute * 60_000,
            acc: WindowAccumulator {
                calls,
                errors,
                cost,
                ..Default::default()
            },
            distinct_users: None,
            distinct_models: None,
        }
    }

    #[test]
    fn cost_spike_is_found_with_a_stable_id_and_full_fields() {
        let run = || {
            let mut d = detector(Metric::CostPerMinute, Strategy::Zscore);
            let mut found = Vec::new();
            for m in 1..40 {
                let cost = if m == 30 { 50.0 } else { 1.0 + (m % 3) as f64 * 0.1 };
                found.extend(d.observe(&agg("chat", m, 100, 0, cost)));
            }
            found
        };
        let (a, b) = (run(), run());
        assert_eq!(a.len(), 1);
        assert_eq!(a[0].id, b[0].id);
        assert_eq!(a[0].context.window_end, format_rfc3339_ms(30 * 60_000));
        assert_eq!(a[0].severity, Severity::Critical);
        assert!(a[0].metrics.observed_value > 49.0 && a[0].metrics.baseline_value < 2.0);
    }

    #[test]
    fn error_rate_needs_enough_calls() {
        let mut d = detector(Metric::ErrorRate, Strategy::Mad);
        for m in 1..20 {
            assert!(d.observe(&agg("chat", m, 100, 1 + (m % 2) as u32, 0.0)).is_none());
        }
        assert!(
            d.observe(&agg("chat", 20, 3, 3, 0.0)).is_none(),
            "3 calls are too few to judge"
        );
        assert!(d.observe(&agg("chat", 21, 100, 60, 0.0)).is_some());
    }

    #[test]
    fn silent_windows_count_as_zero_for_rates() {
        // A user who calls once every ten minutes: without the zeros the baseline would be
        // "1 per minute, no spread"; with them, single calls stay quiet and a flood stands out.
        let mut d = detector(Metric::RequestsPerMinute, Strategy::Zscore);
        for m in (10..400).step_by(10) {
            assert!(d.observe(&agg("u", m, 1, 0, 0.0)).is_none(), "minute {m}");
        }
        assert!(d.observe(&agg("u", 405, 30, 0, 0.0)).is_some());
    }

    #[test]
    fn count_rates_are_judged_on_the_poisson_scale() {
        // A user averaging 0.8 calls a minute: seven in one minute happens by chance (about once
        // in 70,000 windows, so daily across many users) and must not alert at threshold 6.
        let mut d = StatisticalDetector::new(StatisticalConfig {
            baseline: BaselineConfig {
                threshold: 6.0,
                ..detector(Metric::RequestsPerMinute, Strategy::Zscore)
                    .cfg
                    .baseline
                    .clone()
            },
            ..detector(Metric::RequestsPerMinute, Strategy::Zscore).cfg.clone()
        });
        for m in 1..200 {
            d.observe(&agg("u", m, [0, 1, 1, 2, 0][m as usize % 5], 0, 0.0));
        }
        assert!(d.observe(&agg("u", 200, 7, 0, 0.0)).is_none());
        let flood = d.observe(&agg("u", 201, 60, 0, 0.0)).expect("a flood");
        assert!((flood.metrics.observed_value - 60.0).abs() < 1e-9);
        assert!(
            flood.metrics.baseline_value > 0.3 && flood.metrics.baseline_value < 1.5,
            "{:?}",
            flood.metrics
        );
    }

    #[test]
    fn idle_keys_are_forgotten() {
        let mut d = detector(Metric::CostPerMinute, Strategy::Zscore);
        d.observe(&agg("old", 1, 1, 0, 1.0));
        for m in 2..200 {
            d.observe(&agg("new", m, 1, 0, 1.0));
        }
        assert_eq!(d.key_count(), 1);
    }

    #[test]
    fn a_restored_baseline_judges_like_the_one_it_was_taken_from() {
        for strategy in [Strategy::Zscore, Strategy::Ewma, Strategy::Mad] {
            let cost = |m: u64| {
                if m == 30 || m == 41 {
                    9.0
                } else {
                    1.0 + (m % 3) as f64 * 0.1
                }
            };
            let mut uninterrupted = detector(Metric::CostPerMinute, strategy);
            let mut first = detector(Metric::CostPerMinute, strategy);
            for m in 1..=25 {
                uninterrupted.observe(&agg("app", m, 10, 0, cost(m)));
                first.observe(&agg("app", m, 10, 0, cost(m)));
            }
            // Through the state topic's JSON and into a fresh detector.
            let json = serde_json::to_vec(&first.snapshot("group", "app").unwrap()).unwrap();
            let snapshot: BaselineSnapshot = serde_json::from_slice(&json).unwrap();
            assert_eq!(snapshot.state_key, "group|d|application|app");
            let mut restored = detector(Metric::CostPerMinute, strategy);
            restored.restore(&snapshot);
            // A window it already learned, read again after the restart, is skipped.
            assert!(restored.observe(&agg("app", 25, 10, 0, 50.0)).is_none());
            for m in 26..=60 {
                let a = uninterrupted.observe(&agg("app", m, 10, 0, cost(m)));
                let b = restored.observe(&agg("app", m, 10, 0, cost(m)));
                assert_eq!(a, b, "{strategy:?} minute {m}");
            }
            assert!(restored.snapshot("group", "app").is_some());
        }
    }

    #[test]
    fn a_key_idle_past_its_ttl_starts_over_whether_or_not_a_sweep_ran() {
        let mut d = detector(Metric::CostPerMinute, Strategy::Zscore);
        for m in 1..=20 {
            d.observe(&agg("app", m, 10, 0, 1.0));
        }
        // Back after two hours (TTL one hour): no history, so no verdict on its first window.
        assert!(d.observe(&agg("app", 140, 10, 0, 50.0)).is_none());
        assert_eq!(d.snapshot("g", "app").unwrap().baseline.len(), 1);
    }

    #[test]
    fn a_cooldown_pages_once_per_incident_and_keeps_learning() {
        let mut d = detector(Metric::LatencyMean, Strategy::Zscore);
        d.cfg.cooldown_ms = 10 * 60_000;
        let value = |m: u64| {
            if (30..33).contains(&m) || m == 50 {
                500.0
            } else {
                100.0 + (m % 3) as f64
            }
        };
        let judged: Vec<(u64, Judgement)> = (1..60)
            .filter_map(|m| d.judge("k", m * 60_000, Some(value(m)), None).map(|j| (m, j)))
            .collect();
        let alerts: Vec<u64> = judged.iter().filter(|(_, j)| j.alert).map(|(m, _)| *m).collect();
        assert_eq!(alerts, vec![30, 50], "31 and 32 are held back, 50 is a new incident");
        let held = judged.iter().find(|(m, _)| *m == 31).unwrap().1;
        assert!(held.deviation.anomalous && held.score == 0.0, "{held:?}");
    }

    #[test]
    fn a_restored_seasonal_baseline_judges_as_if_never_stopped() {
        let seasonal = |d: &mut StatisticalDetector| {
            d.cfg.seasonal = Some(SeasonalConfig {
                period: crate::detect::SeasonPeriod::Auto {
                    learn_windows: 120,
                    min_correlation: 0.6,
                },
            });
            d.cfg.cooldown_ms = 5 * 60_000;
        };
        let value = |m: u64| 100.0 + 40.0 * ((m % 24) as f64 / 24.0 * std::f64::consts::TAU).sin() + (m % 5) as f64;
        let mut whole = detector(Metric::LatencyMean, Strategy::Zscore);
        seasonal(&mut whole);
        let mut first = detector(Metric::LatencyMean, Strategy::Zscore);
        seasonal(&mut first);
        let mut restarted = detector(Metric::LatencyMean, Strategy::Zscore);
        seasonal(&mut restarted);
        for m in 1..=200 {
            let a = whole.judge("k", m * 60_000, Some(value(m)), None);
            let b = first.judge("k", m * 60_000, Some(value(m)), None);
            assert_eq!(a, b);
        }
        let snapshot = first.snapshot("g", "k").unwrap();
        assert!(snapshot.seasonal.as_ref().and_then(SeasonalState::period).is_some());
        let json = serde_json::to_vec(&snapshot).unwrap();
        restarted.restore(&serde_json::from_slice(&json).unwrap());
        for m in 201..300 {
            let v = if m == 250 { value(m + 12) } else { value(m) };
            assert_eq!(
                whole.judge("k", m * 60_000, Some(v), None),
                restarted.judge("k", m * 60_000, Some(v), None),
                "window {m}"
            );
        }
    }
}
