//! GraphQL's `testDetector`: the job's own dataflow, run once over the test events on a thread
//! of its own, with the run's detectors and guards, no actions, no judges and no store.

use std::path::PathBuf;
use std::sync::Arc;

use sentinel_dataflows::detect::assembly::CONTENT_DETECTORS;
use sentinel_dataflows::detect::behavior::BehaviorKind;
use sentinel_dataflows::operators::JobStats;
use sentinel_serve::api::{ApiError, DetectorTest, TestDetector};
use serde_json::Value;

use crate::config::SentinelConfig;
use crate::io::OutputTarget;
use crate::job::{self, InputSpec, JobSpec};

/// Events a test may hold at most: a test is a question, not a replay.
pub const MAX_TEST_EVENTS: usize = 100_000;

/// Every detector id the job can raise anomalies under.
pub fn detector_ids(spec: &JobSpec) -> Vec<String> {
    let mut ids: Vec<String> = spec.detectors.iter().map(|d| d.id.clone()).collect();
    if spec.guards.is_some() {
        ids.extend(CONTENT_DETECTORS.iter().map(|d| (*d).to_owned()));
        ids.extend(BehaviorKind::ALL.iter().map(|k| k.id().to_owned()));
    }
    ids
}

/// The job `sentinel serve` tests detectors with: the config's detectors and guards, as
/// `run` would build them from the same file, without judges.
pub fn spec_of(cfg: &SentinelConfig) -> Result<JobSpec, String> {
    let plan = cfg.aggregation_plan();
    let guards = crate::commands::run::guards_without_judges(cfg)?;
    Ok(JobSpec {
        // Each test replaces the input and the output with its own.
        input: InputSpec::File(PathBuf::new()),
        output: OutputTarget::Discard,
        ingest: crate::commands::run::ingest_config(cfg, cfg.job.allowed_lateness.0, &plan, guards.as_ref()),
        guards,
        plan,
        detectors: cfg.statistical_detectors(),
        write_aggregates: false,
        write_dead_letters: false,
        state: None,
        actions: None,
        outbox_dir: None,
        serve_feed: None,
    })
}

/// A tester over the run's `spec`.
pub fn tester(spec: &JobSpec) -> TestDetector {
    let mut template = spec.clone();
    template.actions = None;
    template.serve_feed = None;
    template.state = None;
    template.outbox_dir = None;
    template.write_aggregates = false;
    template.write_dead_letters = false;
    if let Some(guards) = template.guards.as_mut() {
        guards.judges = None;
        guards.write_decisions = false;
    }
    template.ingest.speed = None;
    let known = detector_ids(&template);
    // One test at a time: each runs a whole dataflow, and a read key may ask.
    let running = std::sync::Mutex::new(());
    Arc::new(move |detector: &str, data: Value| {
        if !known.iter().any(|k| k == detector) {
            return Err(ApiError::NotFound(format!(
                "no detector `{detector}`; known: {}",
                known.join(", ")
            )));
        }
        let events = events_of(data)?;
        let _one = running
            .try_lock()
            .map_err(|_| ApiError::Conflict("another testDetector is running: try again when it is done".into()))?;
        run_over(&template, detector, &events)
    })
}

fn events_of(data: Value) -> Result<Vec<Value>, ApiError> {
    let events = match data {
        Value::Array(events) => events,
        Value::Object(mut map) => match map.remove("events") {
            Some(Value::Array(events)) => events,
            _ => {
                return Err(ApiError::BadRequest(
                    "`testData`: give a list of events, or {\"events\": [...]}".into(),
                ))
            }
        },
        _ => {
            return Err(ApiError::BadRequest(
                "`testData`: give a list of events, or {\"events\": [...]}".into(),
            ))
        }
    };
    if events.is_empty() || events.len() > MAX_TEST_EVENTS {
        return Err(ApiError::BadRequest(format!(
            "`testData`: {} events; give 1 to {MAX_TEST_EVENTS}",
            events.len()
        )));
    }
    Ok(events)
}

/// A scratch directory removed when dropped.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn run_over(template: &JobSpec, detector: &str, events: &[Value]) -> Result<DetectorTest, ApiError> {
    let internal = |e: String| ApiError::Internal(format!("testDetector: {e}"));
    let scratch = Scratch(std::env::temp_dir().join(format!(
        "sentinel-test-detector-{}-{}",
        std::process::id(),
        sentinel_serve::api::wall_clock_ms()
    )));
    std::fs::create_dir_all(&scratch.0).map_err(|e| internal(e.to_string()))?;
    let input = scratch.0.join("events.jsonl");
    let mut lines = String::new();
    for e in events {
        lines.push_str(&e.to_string());
        lines.push('\n');
    }
    std::fs::write(&input, lines).map_err(|e| internal(e.to_string()))?;
    let mut spec = template.clone();
    spec.input = InputSpec::File(input);
    spec.output = OutputTarget::Dir(scratch.0.clone());
    let stats = Arc::new(JobStats::new(1));
    job::run(timely::Config::thread(), Arc::clone(&stats), spec).map_err(internal)?;
    let written = std::fs::read_to_string(scratch.0.join("anomalies.jsonl")).unwrap_or_default();
    let anomalies = written
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|a| a["detector_id"] == detector)
        .collect();
    Ok(DetectorTest {
        events: events.len() as u64,
        anomalies,
    })
}
