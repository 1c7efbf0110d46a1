//! The `type: statistical` detector: a windowed metric per entity against its own rolling baseline.

use super::baseline::{Baseline, BaselineConfig, Deviation, Direction};
use super::metric::Metric;
use crate::hash::stable_id;
use crate::model::{AffectedEntity, Anomaly, AnomalyContext, AnomalyMetrics, DetectorType, Severity};
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
}

struct KeyState {
    baseline: Baseline,
    last_window_end: u64,
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
    keys: KeyedSlab<KeyState>,
    last_sweep: u64,
}

impl StatisticalDetector {
    /// A detector with no history.
    pub fn new(mut cfg: StatisticalConfig) -> Self {
        if cfg.metric.counts_events() {
            cfg.baseline.count_unit = Some(60_000.0 / cfg.window_ms as f64);
        }
        StatisticalDetector {
            cfg,
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
        self.keys.bytes() + self.keys.iter().map(|(_, s)| s.baseline.heap_bytes()).sum::<usize>()
    }

    /// Judges one closed window of one key, windows of a key arriving in time order.
    pub fn observe(&mut self, agg: &WindowAggregate) -> Option<Anomaly> {
        let cfg = &self.cfg;
        let value = cfg.metric.value(agg, cfg.min_calls);
        if value.is_none() && self.keys.get(&agg.key).is_none() {
            return None; // nothing to learn from, and no state worth creating
        }
        let state = self.keys.get_or_insert_with(&agg.key, || KeyState {
            baseline: Baseline::new(cfg.baseline.strategy),
            last_window_end: agg.window_end,
        });
        if agg.window_end <= state.last_window_end && !state.baseline.is_empty() {
            return None; // a replayed or out-of-order window: already judged
        }
        if cfg.metric.is_rate() && !state.baseline.is_empty() {
            // Windows with no events were rate 0; learn them, up to a full history.
            let missing = (agg.window_end - state.last_window_end) / cfg.window_ms;
            for _ in 1..missing.min(u64::from(cfg.baseline.baseline_windows) + 1) {
                state.baseline.update(&cfg.baseline, 0.0);
            }
        }
        state.last_window_end = agg.window_end;
        let trials = (cfg.metric == Metric::ErrorRate).then_some(f64::from(agg.acc.calls));
        let deviation = state.baseline.observe(&cfg.baseline, value?, trials)?;
        let anomaly = deviation.anomalous.then(|| build_anomaly(cfg, agg, &deviation));
        self.maybe_sweep(agg.window_end);
        anomaly
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

fn build_anomaly(cfg: &StatisticalConfig, agg: &WindowAggregate, d: &Deviation) -> Anomaly {
    let score = d.score(cfg.baseline.threshold);
    let dim = cfg.group_by.as_str();
    let metric = cfg.metric.as_str();
    let direction = if d.z >= 0.0 { "spike" } else { "drop" };
    let id = stable_id(&[
        cfg.id.as_bytes(),
        dim.as_bytes(),
        agg.key.as_bytes(),
        &agg.window_end.to_le_bytes(),
    ]);
    Anomaly {
        id,
        timestamp: format_rfc3339_ms(agg.window_end),
        detector_id: cfg.id.clone(),
        detector_type: DetectorType::Statistical,
        severity: cfg.severity.severity(score),
        score,
        status: "active".into(),
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
        affected_entity: AffectedEntity {
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
        context: AnomalyContext {
            window_start: format_rfc3339_ms(agg.window_start()),
            window_end: format_rfc3339_ms(agg.window_end),
            sample_events: agg.acc.samples.iter().map(|s| s.1.to_string()).collect(),
        },
        actions_taken: Vec::new(),
        related_anomalies: Vec::new(),
    }
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
    fn idle_keys_are_forgotten() {
        let mut d = detector(Metric::CostPerMinute, Strategy::Zscore);
        d.observe(&agg("old", 1, 1, 0, 1.0));
        for m in 2..200 {
            d.observe(&agg("new", m, 1, 0, 1.0));
        }
        assert_eq!(d.key_count(), 1);
    }
}
