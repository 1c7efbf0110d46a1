//! The job's YAML configuration, in the integration seed's shape, validated at start.
//!
//! Every error names the key path and the line, unknown keys are errors, and `${NAME}` is
//! replaced by the environment variable `NAME` (for secrets) before parsing.

pub mod actions;
pub mod delivery;
mod env;
mod guards;
pub mod ingest;
mod kafka;
mod locate;
pub mod serve;
mod shadow_agents;
mod values;

use std::path::Path;

use sentinel_dataflows::detect::{
    BaselineConfig, Metric, SeasonPeriod, SeasonalConfig, SeverityBands, StatisticalConfig,
};
use sentinel_dataflows::operators::AggregationPlan;
use sentinel_dataflows::window::Dimension;
use serde::Deserialize;

pub use actions::{ActionConfig, AlertingConfig, IntegrationsConfig};
pub use guards::GuardsConfig;
pub use shadow_agents::{ResolvedJudges, ShadowAgentsConfig};

pub use kafka::{Brokers, KafkaConfig, PropertyValue};
pub use values::{DimensionName, DirectionName, DurationValue, MetricName, PeriodValue, StrategyName};

/// The whole configuration file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SentinelConfig {
    /// Job-wide settings.
    #[serde(default)]
    pub job: JobConfig,
    /// Window widths for which aggregates are written (when `outputs.aggregates` is on).
    #[serde(default)]
    pub windows: Vec<DurationValue>,
    /// Where events come from.
    #[serde(default)]
    pub source: Option<SourceConfig>,
    /// Where results go.
    #[serde(default)]
    pub outputs: OutputsConfig,
    /// Kafka connection and topics.
    #[serde(default)]
    pub kafka: KafkaConfig,
    /// Detectors, in the seed's shape.
    #[serde(default)]
    pub detectors: Vec<DetectorConfig>,
    /// Content guards, tiers, per-application policies, behavioral detectors.
    #[serde(default)]
    pub guards: GuardsConfig,
    /// The seed's integrations (custom webhooks).
    #[serde(default)]
    pub integrations: IntegrationsConfig,
    /// Alert grouping, correlation, resolution and silences.
    #[serde(default)]
    pub alerting: AlertingConfig,
    /// Named receivers of alerts: webhook, Slack or PagerDuty.
    #[serde(default)]
    pub receivers: Vec<delivery::ReceiverConfig>,
    /// How deliveries are tried.
    #[serde(default)]
    pub delivery: delivery::DeliverySettings,
    /// The shadow-agent LLM judges behind the escalate tier.
    #[serde(default)]
    pub shadow_agents: ShadowAgentsConfig,
    /// `serve:`: API keys, store and retention of the serving layer.
    #[serde(default)]
    pub serve: serve::ServeConfig,
    /// `ingest:`: the HTTP listener's keys and limits.
    #[serde(default)]
    pub ingest: ingest::IngestSection,
}

/// Job-wide settings.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobConfig {
    /// How far the watermark trails the newest event time.
    #[serde(default = "defaults::lateness")]
    pub allowed_lateness: DurationValue,
    /// Records a source handles per activation.
    #[serde(default = "defaults::batch_records")]
    pub batch_records: usize,
    /// Largest accepted record.
    #[serde(default = "defaults::max_event_bytes")]
    pub max_event_bytes: usize,
    /// Bytes of the original record kept in a dead letter.
    #[serde(default = "defaults::dead_letter_keep_bytes")]
    pub dead_letter_keep_bytes: usize,
    /// Sample event ids per anomaly.
    #[serde(default = "defaults::sample_events")]
    pub sample_events: usize,
    /// How long a partition with nothing to read may hold the watermark back.
    #[serde(default = "defaults::idle_partition_timeout")]
    pub idle_partition_timeout: DurationValue,
    /// How far one record may move its partition's event-time clock on its own; a record
    /// further ahead waits for the records after it to confirm the jump. Absent: the allowed
    /// lateness (then no single record can make an honest one late). `0` turns the check off.
    #[serde(default)]
    pub max_clock_step: Option<DurationValue>,
    /// Later records on the partition that confirm a jump of its clock.
    #[serde(default = "defaults::clock_confirm_records")]
    pub clock_confirm_records: usize,
    /// After SIGTERM or SIGINT, how long to wait for outputs in flight to be acknowledged
    /// before committing what is and exiting.
    #[serde(default = "defaults::shutdown_timeout")]
    pub shutdown_timeout: DurationValue,
    /// Live sources (Kafka): how far ahead of the wall clock an event may be stamped.
    #[serde(default = "defaults::max_future")]
    pub max_future: DurationValue,
}

impl JobConfig {
    /// The clock step limit in ms (`None`: off), given the lateness in force.
    pub fn max_clock_step_ms(&self, lateness_ms: u64) -> Option<u64> {
        match self.max_clock_step {
            Some(DurationValue(0)) => None,
            Some(DurationValue(step)) => Some(step),
            None => Some(lateness_ms.max(1)),
        }
    }
}

impl Default for JobConfig {
    fn default() -> Self {
        JobConfig {
            allowed_lateness: defaults::lateness(),
            batch_records: defaults::batch_records(),
            max_event_bytes: defaults::max_event_bytes(),
            dead_letter_keep_bytes: defaults::dead_letter_keep_bytes(),
            sample_events: defaults::sample_events(),
            idle_partition_timeout: defaults::idle_partition_timeout(),
            max_clock_step: None,
            clock_confirm_records: defaults::clock_confirm_records(),
            max_future: defaults::max_future(),
            shutdown_timeout: defaults::shutdown_timeout(),
        }
    }
}

/// An input.
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum SourceConfig {
    /// A JSONL trace file, plain or `.gz`.
    File {
        /// Path.
        path: String,
        /// Replay pacing: 1 = recorded speed; absent = as fast as possible.
        #[serde(default)]
        speed: Option<f64>,
    },
    /// The topics of the `kafka` section.
    Kafka {
        /// Stop once every partition has reached the end offset it had at start.
        #[serde(default)]
        exit_when_caught_up: bool,
    },
    /// The built-in generator.
    Synthetic {
        /// Events to generate.
        #[serde(default = "defaults::synthetic_events")]
        events: u64,
        /// Seed.
        #[serde(default = "defaults::seed")]
        seed: u64,
        /// Prompt bytes per request.
        #[serde(default)]
        prompt_bytes: usize,
        /// Inject labeled anomalies.
        #[serde(default = "defaults::yes")]
        inject: bool,
    },
}

/// Where each output stream goes.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputsConfig {
    /// `stdout`, `file:DIR` (one `<stream>.jsonl` per stream), `kafka` (the `kafka` section's
    /// output topics) or `none`.
    #[serde(default = "defaults::stdout")]
    pub target: String,
    /// Also write closed-window aggregates (`aggregates.jsonl`).
    #[serde(default)]
    pub aggregates: bool,
    /// Write dead letters (to `deadletter.jsonl`, or stderr with `stdout`).
    #[serde(default = "defaults::yes")]
    pub dead_letters: bool,
}

impl Default for OutputsConfig {
    fn default() -> Self {
        OutputsConfig {
            target: defaults::stdout(),
            aggregates: false,
            dead_letters: true,
        }
    }
}

/// One detector entry.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectorConfig {
    /// Stable id; part of every anomaly id.
    pub id: String,
    /// Display name.
    #[serde(default)]
    pub name: Option<String>,
    /// `statistical` or `ml`.
    #[serde(rename = "type")]
    pub detector_type: DetectorKind,
    /// Off switch.
    #[serde(default = "defaults::yes")]
    pub enabled: bool,
    /// Type-specific settings, read by type once the whole file has parsed.
    #[serde(default)]
    pub config: serde_yaml_ng::Value,
    /// `type: ml` may also put `model`, `threshold` and `features` beside `type`.
    #[serde(default)]
    pub model: Option<String>,
    /// See `model`.
    #[serde(default)]
    pub threshold: Option<f64>,
    /// See `model`.
    #[serde(default)]
    pub features: Option<Vec<String>>,
    /// Actions to take on an anomaly (planned by the action stage).
    #[serde(default)]
    pub actions: Vec<ActionConfig>,
    /// `config`, read for the detector's type.
    #[serde(skip)]
    pub settings: Option<DetectorSettings>,
}

impl DetectorConfig {
    /// The `detector_id` its anomalies carry, which its actions follow: its own id, except
    /// for the learned classifier, whose detections are the input guard's `prompt-injection`.
    pub fn anomaly_detector_id(&self) -> &str {
        match self.detector_type {
            DetectorKind::Ml => content_detector_ids()[0],
            _ => &self.id,
        }
    }

    /// The settings of a statistical detector.
    pub fn statistical(&self) -> Option<&StatisticalSettings> {
        match &self.settings {
            Some(DetectorSettings::Statistical(s)) => Some(s),
            _ => None,
        }
    }

    /// The settings of a learned detector.
    pub fn ml(&self) -> Option<&MlSettings> {
        match &self.settings {
            Some(DetectorSettings::Ml(s)) => Some(s),
            _ => None,
        }
    }
}

/// Detector kinds this build runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DetectorKind {
    /// Windowed metric against a rolling baseline.
    Statistical,
    /// The learned prompt-attack classifier in the input guard.
    Ml,
    /// A built-in content rule (`prompt-injection`, `pii-leak`...): configured in `guards`;
    /// an entry here gives it actions.
    Rule,
    /// A built-in behavioral detector (`agent-loop`, `model-switching`...): configured in
    /// `guards.behavior`; an entry here gives it actions.
    Behavioral,
}

/// A detector's settings by type.
#[derive(Clone, Debug)]
pub enum DetectorSettings {
    /// `type: statistical`.
    Statistical(StatisticalSettings),
    /// `type: ml`.
    Ml(MlSettings),
    /// `type: rule` or `behavioral`: nothing beyond its actions.
    Builtin,
}

/// `config:` of a learned detector (the seed's `model`, `threshold`, `features`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MlSettings {
    /// Path of the model file (relative paths from the working directory).
    pub model: String,
    /// Probability at which a prompt is flagged; the model file's own threshold when absent.
    #[serde(default)]
    pub threshold: Option<f64>,
    /// What it scores: `prompt_text`, and `response_text` for responses too.
    #[serde(default = "defaults::ml_features")]
    pub features: Vec<String>,
}

/// `config:` of a statistical detector.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatisticalSettings {
    /// Metric, e.g. `cost_per_minute`.
    pub metric: MetricName,
    /// `zscore` (Welford), `ewma` or `mad`.
    #[serde(default = "defaults::strategy")]
    pub strategy: StrategyName,
    /// Deviations (σ or scaled MAD) that count as anomalous.
    pub threshold: f64,
    /// Window width, e.g. `5m`.
    pub window: DurationValue,
    /// Entity kind: application, model, tenant or user.
    #[serde(default = "defaults::group_by")]
    pub group_by: DimensionName,
    /// `up`, `down` or `both`.
    #[serde(default = "defaults::direction")]
    pub direction: DirectionName,
    /// Windows of history before alerting.
    #[serde(default = "defaults::min_history")]
    pub min_history: u32,
    /// Length of the rolling baseline, in windows.
    #[serde(default = "defaults::baseline_windows")]
    pub baseline_windows: u32,
    /// EWMA smoothing factor.
    #[serde(default = "defaults::alpha")]
    pub alpha: f64,
    /// Spread floor as a fraction of the baseline.
    #[serde(default = "defaults::min_std_ratio")]
    pub min_std_ratio: f64,
    /// Calls needed in a window before ratios and latencies are judged.
    #[serde(default)]
    pub min_calls: Option<u32>,
    /// Smallest absolute change from the baseline that may alert (in the metric's unit).
    #[serde(default)]
    pub min_delta: f64,
    /// Score bands for severities.
    #[serde(default)]
    pub severity: Option<SeverityConfig>,
    /// Forget keys idle this long.
    #[serde(default)]
    pub state_ttl: Option<DurationValue>,
    /// After an anomaly on a key, hold further anomalies on it back this long (the baseline
    /// keeps learning). Absent: no cooldown.
    #[serde(default)]
    pub cooldown: Option<DurationValue>,
    /// Also judge each window against the same point one season earlier.
    #[serde(default)]
    pub seasonality: Option<SeasonalitySettings>,
}

/// `config.seasonality` of a statistical detector.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeasonalitySettings {
    /// `auto` (found per key by autocorrelation) or a duration such as `1d` (a whole number
    /// of windows).
    pub period: PeriodValue,
    /// `auto`: windows of a key collected before its period is looked for.
    #[serde(default = "defaults::season_learn_windows")]
    pub learn_windows: usize,
    /// `auto`: autocorrelation a period must exceed.
    #[serde(default = "defaults::season_min_correlation")]
    pub min_correlation: f64,
}

/// Score thresholds of the severities.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeverityConfig {
    /// Score for `warning`.
    pub warning: f64,
    /// Score for `critical`.
    pub critical: f64,
}

mod defaults {
    use super::values::*;
    pub fn season_learn_windows() -> usize {
        600
    }
    pub fn season_min_correlation() -> f64 {
        0.6
    }
    pub fn ml_features() -> Vec<String> {
        vec!["prompt_text".into()]
    }
    pub fn lateness() -> DurationValue {
        DurationValue(5_000)
    }
    pub fn batch_records() -> usize {
        4096
    }
    pub fn max_event_bytes() -> usize {
        1 << 20
    }
    pub fn dead_letter_keep_bytes() -> usize {
        4096
    }
    pub fn sample_events() -> usize {
        3
    }
    pub fn idle_partition_timeout() -> DurationValue {
        DurationValue(10_000)
    }
    pub fn clock_confirm_records() -> usize {
        8
    }
    pub fn shutdown_timeout() -> DurationValue {
        DurationValue(30_000)
    }
    pub fn max_future() -> DurationValue {
        DurationValue(60_000)
    }
    pub fn synthetic_events() -> u64 {
        320_000
    }
    pub fn seed() -> u64 {
        42
    }
    pub fn yes() -> bool {
        true
    }
    pub fn stdout() -> String {
        "stdout".into()
    }
    pub fn strategy() -> StrategyName {
        StrategyName(sentinel_dataflows::detect::Strategy::Zscore)
    }
    pub fn group_by() -> DimensionName {
        DimensionName(sentinel_dataflows::window::Dimension::Application)
    }
    pub fn direction() -> DirectionName {
        DirectionName(sentinel_dataflows::detect::Direction::Up)
    }
    pub fn min_history() -> u32 {
        10
    }
    pub fn baseline_windows() -> u32 {
        60
    }
    pub fn alpha() -> f64 {
        0.1
    }
    pub fn min_std_ratio() -> f64 {
        0.1
    }
}

/// A configuration error with the key path and line.
#[derive(Debug)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// The built-in configuration: `sentinel run` with no `--config`.
pub const DEFAULT_CONFIG: &str = include_str!("../../examples/sentinel.yaml");

impl SentinelConfig {
    /// Reads and validates a file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError(format!("{}: {e}", path.display())))?;
        Self::parse(&text).map_err(|e| ConfigError(format!("{}: {}", path.display(), e.0)))
    }

    /// Parses and validates YAML text.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let expanded = env::expand(text).map_err(ConfigError)?;
        let de = serde_yaml_ng::Deserializer::from_str(&expanded);
        let mut cfg: SentinelConfig = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            // The parser reports where the enclosing mapping starts; point at the key itself.
            let message = e.inner().to_string();
            let message = message.split(" at line ").next().unwrap_or(&message).to_owned();
            match locate::line_of_path(&expanded, &path) {
                Some(line) => ConfigError(format!("key `{path}` (line {line}): {message}")),
                None => ConfigError(format!("key `{path}`: {}", e.inner())),
            }
        })?;
        cfg.read_detector_settings(&expanded)?;
        cfg.validate(&expanded)?;
        Ok(cfg)
    }

    /// Reads each detector's `config` for its type; errors name the key and line.
    fn read_detector_settings(&mut self, text: &str) -> Result<(), ConfigError> {
        let fail = |path: String, message: String| {
            let line = locate::line_of_path(text, &path).map_or_else(String::new, |l| format!(" (line {l})"));
            ConfigError(format!("key `{path}`{line}: {message}"))
        };
        for (i, d) in self.detectors.iter_mut().enumerate() {
            let base = format!("detectors[{i}].config");
            d.settings = Some(match d.detector_type {
                DetectorKind::Statistical => {
                    if d.model.is_some() || d.threshold.is_some() || d.features.is_some() {
                        return Err(fail(
                            format!("detectors[{i}].type"),
                            "`model`, `threshold` and `features` belong to `type: ml`".into(),
                        ));
                    }
                    DetectorSettings::Statistical(read_settings(d.config.clone(), &base, &fail)?)
                }
                DetectorKind::Rule | DetectorKind::Behavioral => {
                    let known: Vec<&str> = if d.detector_type == DetectorKind::Rule {
                        content_detector_ids().to_vec()
                    } else {
                        sentinel_dataflows::detect::BehaviorKind::ALL
                            .iter()
                            .map(|k| k.id())
                            .collect()
                    };
                    if !known.contains(&d.id.as_str()) {
                        return Err(fail(
                            format!("detectors[{i}].id"),
                            format!(
                                "no built-in detector `{}` of this type: expected one of {}",
                                d.id,
                                known.join(", ")
                            ),
                        ));
                    }
                    if !d.config.is_null() || d.model.is_some() || d.threshold.is_some() || d.features.is_some() {
                        return Err(fail(
                            format!("detectors[{i}].config"),
                            "a built-in detector is configured in `guards`; here it takes only `actions`".into(),
                        ));
                    }
                    DetectorSettings::Builtin
                }
                DetectorKind::Ml => {
                    let mut config = match &d.config {
                        serde_yaml_ng::Value::Null => serde_yaml_ng::Mapping::new(),
                        serde_yaml_ng::Value::Mapping(m) => m.clone(),
                        _ => return Err(fail(base, "expected a mapping".into())),
                    };
                    let mut beside = |key: &str, value: Option<serde_yaml_ng::Value>| {
                        if let Some(v) = value {
                            config.insert(key.into(), v);
                        }
                    };
                    beside("model", d.model.clone().map(Into::into));
                    beside("threshold", d.threshold.map(Into::into));
                    beside(
                        "features",
                        d.features.clone().map(|f| {
                            serde_yaml_ng::Value::Sequence(f.into_iter().map(serde_yaml_ng::Value::String).collect())
                        }),
                    );
                    DetectorSettings::Ml(read_settings(serde_yaml_ng::Value::Mapping(config), &base, &fail)?)
                }
            });
        }
        Ok(())
    }

    fn validate(&self, text: &str) -> Result<(), ConfigError> {
        let mut ids = std::collections::HashSet::new();
        for (i, d) in self.detectors.iter().enumerate() {
            let at = |key: &str| {
                let path = format!("detectors[{i}].{key}");
                let line = locate::line_of_path(text, &path).map_or_else(String::new, |l| format!(" (line {l})"));
                format!("key `{path}`{line}")
            };
            if d.id.trim().is_empty() {
                return Err(ConfigError(format!("{}: id must not be empty", at("id"))));
            }
            if !ids.insert(d.id.as_str()) {
                return Err(ConfigError(format!("{}: duplicate detector id `{}`", at("id"), d.id)));
            }
            if let Some(ml) = d.ml() {
                validate_ml(ml, &at)?;
                continue;
            }
            let Some(c) = d.statistical() else {
                continue;
            };
            if !(c.threshold.is_finite() && c.threshold > 0.0) {
                return Err(ConfigError(format!(
                    "{}: must be a positive number",
                    at("config.threshold")
                )));
            }
            if c.window.0 == 0 {
                return Err(ConfigError(format!("{}: must be positive", at("config.window"))));
            }
            if !(c.alpha > 0.0 && c.alpha <= 1.0) {
                return Err(ConfigError(format!("{}: must be in (0, 1]", at("config.alpha"))));
            }
            if c.baseline_windows == 0 {
                return Err(ConfigError(format!(
                    "{}: must be at least 1",
                    at("config.baseline_windows")
                )));
            }
            if let Some(s) = &c.seasonality {
                match s.period {
                    PeriodValue::Every(d) if d.0 == 0 || d.0 % c.window.0 != 0 => {
                        return Err(ConfigError(format!(
                            "{}: must be a whole number of windows ({})",
                            at("config.seasonality.period"),
                            sentinel_dataflows::time::format_duration_ms(c.window.0)
                        )));
                    }
                    PeriodValue::Auto if s.learn_windows < 40 => {
                        return Err(ConfigError(format!(
                            "{}: at least 40 windows are needed to find a period",
                            at("config.seasonality.learn_windows")
                        )));
                    }
                    _ => {}
                }
                if !(0.0..1.0).contains(&s.min_correlation) {
                    return Err(ConfigError(format!(
                        "{}: must be in [0, 1)",
                        at("config.seasonality.min_correlation")
                    )));
                }
            }
            if let Some(s) = &c.severity {
                if !(0.0..=1.0).contains(&s.warning) || !(0.0..=1.0).contains(&s.critical) || s.warning > s.critical {
                    return Err(ConfigError(format!(
                        "{}: need 0 <= warning <= critical <= 1",
                        at("config.severity")
                    )));
                }
            }
        }
        let keyed = |(key, why): (String, String)| {
            let line = locate::line_of_path(text, &key).map_or_else(String::new, |l| format!(" (line {l})"));
            ConfigError(format!("key `{key}`{line}: {why}"))
        };
        self.policies().map_err(keyed)?;
        self.judges().map_err(keyed)?;
        self.act_config().map_err(keyed)?;
        self.delivery().map_err(keyed)?;
        self.serve.keys().map_err(keyed)?;
        self.ingest.keys().map_err(keyed)?;
        if self.job.clock_confirm_records == 0 {
            let line = locate::line_of_path(text, "job.clock_confirm_records")
                .map_or_else(String::new, |l| format!(" (line {l})"));
            return Err(ConfigError(format!(
                "key `job.clock_confirm_records`{line}: must be at least 1"
            )));
        }
        if self.windows.iter().any(|w| w.0 == 0) {
            return Err(ConfigError("key `windows`: widths must be positive".into()));
        }
        let target = &self.outputs.target;
        if !matches!(target.as_str(), "stdout" | "kafka" | "none") && !target.starts_with("file:") {
            return Err(ConfigError(format!(
                "key `outputs.target`{}: expected `stdout`, `file:DIR`, `kafka` or `none`, got `{target}`",
                line_of(text, target)
            )));
        }
        Ok(())
    }

    /// The guards' policies, with the tier thresholds `shadow_agents` sets, if it does.
    pub fn policies(&self) -> Result<sentinel_dataflows::guard::PolicyBook, (String, String)> {
        let tiers = self.shadow_agents.thresholds()?;
        if tiers.is_some() && (self.guards.profile.is_some() || self.guards.thresholds.is_some()) {
            return Err((
                "shadow_agents.profile".into(),
                "the tier thresholds are set both here and in `guards`: set them in one place".into(),
            ));
        }
        self.guards.policies_with(tiers)
    }

    /// Every enabled detector's actions, resolved for the planner.
    pub fn actions(&self) -> actions::ResolvedActions {
        let detectors = self.detectors.iter().filter(|d| d.enabled);
        actions::ResolvedActions::resolve(
            detectors
                .enumerate()
                .map(|(i, d)| (format!("detectors[{i}]"), d.anomaly_detector_id(), d.actions.as_slice())),
            &self.integrations,
        )
    }

    /// The actions stage's config; `None` when no enabled detector has actions.
    pub fn act_config(&self) -> Result<Option<sentinel_dataflows::act::ActConfig>, (String, String)> {
        let actions = self.actions();
        let config = self.alerting.resolve(&actions)?;
        Ok(config.by_detector.values().any(|a| !a.is_empty()).then_some(config))
    }

    /// Where actions are delivered.
    pub fn delivery(&self) -> Result<sentinel_deliver::DeliveryConfig, (String, String)> {
        delivery::resolve(
            &self.receivers,
            &self.actions().webhooks,
            self.integrations.shield.as_ref(),
            self.integrations.incident_manager.as_ref(),
            &self.delivery,
        )
    }

    /// The judges, when `shadow_agents.enabled`; API keys are read from the environment.
    pub fn judges(&self) -> Result<Option<ResolvedJudges>, (String, String)> {
        self.shadow_agents.resolve(&|name| std::env::var(name).ok())
    }

    /// The enabled statistical detectors, resolved.
    pub fn statistical_detectors(&self) -> Vec<StatisticalConfig> {
        self.detectors
            .iter()
            .filter(|d| d.enabled)
            .filter_map(|d| d.statistical().map(|c| (d, c)))
            .map(|(d, c)| {
                let metric = c.metric.0;
                StatisticalConfig {
                    id: d.id.clone(),
                    name: d.name.clone().unwrap_or_else(|| d.id.clone()),
                    metric,
                    group_by: c.group_by.0,
                    window_ms: c.window.0,
                    baseline: BaselineConfig {
                        strategy: c.strategy.0,
                        threshold: c.threshold,
                        direction: c.direction.0,
                        min_history: c.min_history,
                        baseline_windows: c.baseline_windows,
                        alpha: c.alpha,
                        min_std_ratio: c.min_std_ratio,
                        min_std: 1e-9,
                        min_delta: c.min_delta,
                    },
                    min_calls: c.min_calls.unwrap_or_else(|| metric.default_min_calls()),
                    severity: c
                        .severity
                        .as_ref()
                        .map_or_else(SeverityBands::default, |s| SeverityBands {
                            warning: s.warning,
                            critical: s.critical,
                        }),
                    state_ttl_ms: c.state_ttl.map_or((c.window.0 * 120).max(3_600_000), |t| t.0),
                    cooldown_ms: c.cooldown.map_or(0, |t| t.0),
                    seasonal: c.seasonality.as_ref().map(|s| SeasonalConfig {
                        period: match s.period {
                            PeriodValue::Auto => SeasonPeriod::Auto {
                                learn_windows: s.learn_windows,
                                min_correlation: s.min_correlation,
                            },
                            PeriodValue::Every(d) => SeasonPeriod::Windows((d.0 / c.window.0.max(1)) as usize),
                        },
                    }),
                }
            })
            .collect()
    }

    /// Which windows to aggregate: every detector's, plus `windows` for the aggregates output.
    pub fn aggregation_plan(&self) -> AggregationPlan {
        let mut plan = AggregationPlan {
            groups: Vec::new(),
            distinct_widths: Vec::new(),
            max_samples: self.job.sample_events,
            quantiles: Vec::new(),
        };
        for d in self.statistical_detectors() {
            match d.metric {
                Metric::DistinctUsers | Metric::DistinctModels => plan.require_distinct(d.window_ms),
                Metric::LatencyP95 | Metric::LatencyP99 => plan.require_quantiles(d.window_ms, d.group_by),
                _ => plan.require(d.window_ms, d.group_by),
            }
            if d.group_by != Dimension::Application
                && matches!(d.metric, Metric::DistinctUsers | Metric::DistinctModels)
            {
                plan.require(d.window_ms, d.group_by);
            }
        }
        if self.outputs.aggregates {
            for w in &self.windows {
                for dim in Dimension::ALL {
                    plan.require_quantiles(w.0, dim);
                }
                plan.require_distinct(w.0);
            }
        }
        plan
    }
}

/// Reads one detector's settings from `value`, naming the key under `base` on error.
fn read_settings<T: serde::de::DeserializeOwned>(
    value: serde_yaml_ng::Value,
    base: &str,
    fail: &dyn Fn(String, String) -> ConfigError,
) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize(value).map_err(|e: serde_path_to_error::Error<serde_yaml_ng::Error>| {
        let inner = e.path().to_string();
        let path = if inner == "." {
            base.to_owned()
        } else {
            format!("{base}.{inner}")
        };
        fail(path, e.inner().to_string())
    })
}

/// The model file loads and the keys hold values this build understands.
fn validate_ml(ml: &MlSettings, at: &dyn Fn(&str) -> String) -> Result<(), ConfigError> {
    if let Some(t) = ml.threshold {
        if !(0.0..=1.0).contains(&t) {
            return Err(ConfigError(format!("{}: must be within 0..=1", at("config.threshold"))));
        }
    }
    for f in &ml.features {
        if !matches!(f.as_str(), "prompt_text" | "response_text") {
            return Err(ConfigError(format!(
                "{}: `{f}` is not a feature this model reads (it hashes n-grams of `prompt_text`, and of \
                 `response_text` when listed)",
                at("config.features")
            )));
        }
    }
    if !ml.features.iter().any(|f| f == "prompt_text") {
        return Err(ConfigError(format!(
            "{}: must include `prompt_text`",
            at("config.features")
        )));
    }
    sentinel_dataflows::ml::ModelFile::load(Path::new(&ml.model))
        .map(|_| ())
        .map_err(|e| ConfigError(format!("{}: {e}", at("config.model"))))
}

/// The built-in content detectors' ids, as their anomalies carry them.
fn content_detector_ids() -> &'static [&'static str] {
    sentinel_dataflows::detect::CONTENT_DETECTORS
}

/// ` (line N)` for the first line mentioning `needle`, for errors found after parsing.
fn line_of(text: &str, needle: &str) -> String {
    text.lines()
        .position(|l| l.contains(needle))
        .map_or_else(String::new, |n| format!(" (line {})", n + 1))
}

#[cfg(test)]
mod tests;
