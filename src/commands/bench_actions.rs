//! `sentinel bench actions`: what acting on anomalies costs and how loud it is.
//!
//! - Delivery: N webhook events to a loopback receiver that fails one request in five, from a
//!   file outbox: how many arrived (once in effect), how many were sent more than once, and the
//!   latency from the outbox read to the final answer.
//! - Throughput: the job on a generated trace with actions (the stage, the outbox and its
//!   delivery to loopback receivers) against `--no-actions`, in interleaved rounds.
//! - Volume: a generated 24-hour trace with every detector alerting one receiver: notifications
//!   per injected anomaly (the aim is one notification and one resolve).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sentinel_dataflows::act::{ActConfig, ActionSpec, WebhookEvent, WebhookRecord};
use sentinel_dataflows::detect::{BehaviorKind, CONTENT_DETECTORS};
use sentinel_dataflows::model::{AffectedEntity, Anomaly, AnomalyDraft, AnomalyMetrics, DetectorType, Severity};
use sentinel_dataflows::operators::JobStats;
use sentinel_dataflows::synth::{TraceConfig, TraceGenerator};
use sentinel_deliver::loopback::{Faults, ReceiverServer};
use sentinel_deliver::{Delivery, DeliveryConfig, FileOutbox, FileStatusLog, HttpTarget, OutboxStream, Receiver};
use serde_json::{json, Value};

use super::bench::{config_spec, median, trace_file, BenchGuards};
use crate::config::{SentinelConfig, DEFAULT_CONFIG};
use crate::io::OutputTarget;
use crate::job::{self, InputSpec};

/// What to measure.
#[derive(Clone, Debug)]
pub struct ActionsBench {
    /// Webhook deliveries.
    pub deliveries: u64,
    /// Events in the throughput trace.
    pub events: u64,
    /// Worker threads.
    pub workers: usize,
    /// Rounds.
    pub repeat: usize,
}

fn target(name: &str, url: String, attempts: u32) -> HttpTarget {
    HttpTarget {
        name: name.into(),
        url,
        headers: Vec::new(),
        secret: None,
        template: None,
        timeout: Duration::from_secs(5),
        retry: sentinel_connectors::http::retry::RetryPolicy {
            max_attempts: attempts,
            base: Duration::from_millis(20),
            max: Duration::from_millis(500),
            ..Default::default()
        },
    }
}

fn sample_anomaly(i: u64) -> Anomaly {
    Anomaly::build(AnomalyDraft {
        id_parts: &[b"bench", &i.to_le_bytes()],
        detector_id: "prompt-injection",
        detector_type: DetectorType::Rule,
        severity: Severity::Critical,
        score: 0.97,
        title: format!("Prompt injection {i}"),
        description: "A benchmark anomaly.".into(),
        entity: AffectedEntity {
            entity_type: "user".into(),
            id: format!("u-{}", i % 500),
            name: format!("u-{}", i % 500),
        },
        metrics: AnomalyMetrics {
            baseline_value: 0.0,
            observed_value: 1.0,
            deviation: 0.0,
            threshold: 0.8,
        },
        at_ms: 1_717_200_000_000 + i,
        window_ms: (1_717_200_000_000 + i, 1_717_200_000_000 + i),
        sample_events: vec![format!("evt-{i}")],
    })
}

/// One round of the delivery measurement.
fn deliver_once(dir: &Path, n: u64) -> Result<Value, String> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let mut out =
        std::io::BufWriter::new(std::fs::File::create(dir.join("webhooks.jsonl")).map_err(|e| e.to_string())?);
    for i in 0..n {
        let a = sample_anomaly(i);
        let timestamp = a.timestamp.clone();
        let r = WebhookRecord::about(WebhookEvent::AnomalyDetected, a, 0, timestamp);
        serde_json::to_writer(&mut out, &r).map_err(|e| e.to_string())?;
        out.write_all(b"\n").map_err(|e| e.to_string())?;
    }
    out.flush().map_err(|e| e.to_string())?;
    drop(out);
    let server = ReceiverServer::start(
        Faults {
            fail_every: 5,
            ..Faults::default()
        },
        None,
    );
    let config = DeliveryConfig {
        webhooks: vec![target("bench", format!("{}/hooks/bench", server.url()), 10)],
        ..DeliveryConfig::default()
    };
    let started = Instant::now();
    let outbox = FileOutbox::new(dir, &[(OutboxStream::Webhooks, "webhooks")]);
    let delivery = Delivery::start(config, Box::new(outbox), Box::new(FileStatusLog::new(dir)))?;
    let stats = delivery.finish(Duration::from_secs(600));
    let secs = started.elapsed().as_secs_f64();
    let effects = server.effects("/hooks/bench");
    let received = server.received();
    let failed = received.iter().filter(|r| r.status >= 500).count();
    let twice = effects.values().filter(|n| **n > 1).count();
    Ok(json!({
        "deliveries": n,
        "arrived_once_in_effect": effects.len(),
        "lost": n as usize - effects.len().min(n as usize),
        "acknowledged_twice": twice,
        "requests": received.len(),
        "answered_503": failed,
        "retries": stats.retries.load(std::sync::atomic::Ordering::Relaxed),
        "dead_lettered": stats.dead_lettered.load(std::sync::atomic::Ordering::Relaxed),
        "latency_p50_ms": stats.latency_us(0.5) / 1000.0,
        "latency_p99_ms": stats.latency_us(0.99) / 1000.0,
        "secs": secs,
    }))
}

/// The built-in config with every detector alerting `receivers` and the seed's injection actions.
fn acting_config(cfg: &SentinelConfig, receivers: &[String]) -> ActConfig {
    let mut act = cfg.act_config().ok().flatten().unwrap_or_default();
    let alert = ActionSpec::Alert {
        severity: None,
        receivers: receivers.to_vec(),
    };
    let ids = cfg
        .statistical_detectors()
        .into_iter()
        .map(|d| d.id)
        .chain(CONTENT_DETECTORS.iter().map(|s| (*s).to_owned()))
        .chain(BehaviorKind::ALL.iter().map(|k| k.id().to_owned()));
    for id in ids {
        let specs = act.by_detector.entry(id).or_default();
        specs.retain(|s| !matches!(s, ActionSpec::Alert { .. }));
        specs.push(alert.clone());
    }
    act
}

fn run_job(
    cfg: &SentinelConfig,
    trace: &Path,
    workers: usize,
    acting: Option<(&ActConfig, &Path)>,
) -> Result<(f64, u64), String> {
    let mut spec = config_spec(
        cfg,
        InputSpec::File(trace.to_owned()),
        OutputTarget::Discard,
        BenchGuards::Rules,
        None,
    )?;
    let stats = Arc::new(JobStats::new(workers));
    let mut delivery = None;
    let server = ReceiverServer::start(Faults::default(), None);
    if let Some((act, dir)) = acting {
        spec.actions = Some(act.clone());
        spec.outbox_dir = Some(dir.to_owned());
        let mut config = DeliveryConfig::default();
        config.receivers.insert(
            "bench".into(),
            Receiver::Webhook(target("bench", format!("{}/hooks/bench", server.url()), 3)),
        );
        delivery = Some(crate::delivery::start(
            config,
            &OutputTarget::Discard,
            Some(dir),
            "bench",
            "",
        )?);
    } else {
        spec.actions = None;
    }
    let outcome = job::run(timely::Config::process(workers), Arc::clone(&stats), spec)?;
    let secs = outcome.elapsed.as_secs_f64();
    let delivered = delivery.map_or(0, |d| {
        d.finish(Duration::from_secs(120))
            .delivered
            .load(std::sync::atomic::Ordering::Relaxed)
    });
    Ok((
        stats.records_in.load(std::sync::atomic::Ordering::Relaxed) as f64 / secs,
        delivered,
    ))
}

/// Notifications per injected anomaly on a 24-hour trace.
fn volume(dir: &Path, cfg: &SentinelConfig) -> Result<Value, String> {
    let trace = dir.join("bench-24h.jsonl");
    let tc = TraceConfig {
        events: 2 * 3 * 86_400,
        calls_per_sec: 3.0,
        ..TraceConfig::default()
    };
    let generator = TraceGenerator::new(tc.clone());
    let labels = generator.labels().len();
    if !trace.exists() {
        let mut w = std::io::BufWriter::new(std::fs::File::create(&trace).map_err(|e| e.to_string())?);
        for (_, line) in TraceGenerator::new(tc) {
            w.write_all(line.as_bytes())
                .and_then(|()| w.write_all(b"\n"))
                .map_err(|e| e.to_string())?;
        }
        w.flush().map_err(|e| e.to_string())?;
    }
    let outbox = dir.join("volume-outbox");
    let _ = std::fs::remove_dir_all(&outbox);
    let act = acting_config(cfg, &["bench".to_owned()]);
    let mut spec = config_spec(
        cfg,
        InputSpec::File(trace.clone()),
        OutputTarget::Dir(outbox.clone()),
        BenchGuards::Rules,
        None,
    )?;
    spec.actions = Some(act);
    spec.outbox_dir = Some(outbox.clone());
    let stats = Arc::new(JobStats::new(1));
    job::run(timely::Config::process(1), Arc::clone(&stats), spec)?;
    let read = |name: &str| -> Vec<Value> {
        std::fs::read_to_string(outbox.join(name))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    };
    let alerts = read("alerts.jsonl");
    let anomalies = read("anomalies.jsonl");
    let mut by_kind: BTreeMap<String, u64> = BTreeMap::new();
    for a in &alerts {
        let kind = format!(
            "{}/{}",
            a["status"].as_str().unwrap_or("?"),
            a["reason"].as_str().unwrap_or("?")
        );
        *by_kind.entry(kind).or_default() += 1;
    }
    let firing = alerts.iter().filter(|a| a["status"] == "firing").count();
    let resolved = alerts.iter().filter(|a| a["status"] == "resolved").count();
    Ok(json!({
        "trace_hours": 24,
        "injected": labels,
        "anomalies": anomalies.len(),
        "notifications": alerts.len(),
        "by_kind": by_kind,
        "firing_per_injected": firing as f64 / labels.max(1) as f64,
        "resolved_per_injected": resolved as f64 / labels.max(1) as f64,
        "anomalies_per_injected": anomalies.len() as f64 / labels.max(1) as f64,
    }))
}

/// Runs the three measurements and prints them, ending with one JSON line.
pub fn actions(dir: &Path, b: &ActionsBench) -> Result<(), String> {
    let cfg = SentinelConfig::parse(DEFAULT_CONFIG).map_err(|e| e.0)?;
    let mut rounds = Vec::new();
    for r in 0..b.repeat {
        let round = deliver_once(&dir.join("deliver-outbox"), b.deliveries)?;
        eprintln!("delivery round {r}: {round}");
        rounds.push(round);
    }
    let med = |key: &str| median(rounds.iter().map(|r| r[key].as_f64().unwrap_or(0.0)).collect());
    let lost: u64 = rounds.iter().map(|r| r["lost"].as_u64().unwrap_or(0)).sum();
    let twice: u64 = rounds
        .iter()
        .map(|r| r["acknowledged_twice"].as_u64().unwrap_or(0))
        .sum();
    println!(
        "delivery: {} webhooks, 1 in 5 answered 503: lost {lost}, acknowledged twice {twice} (all rounds); p50 {:.1} ms, p99 {:.1} ms, {:.0} deliveries/s (medians of {})",
        b.deliveries,
        med("latency_p50_ms"),
        med("latency_p99_ms"),
        b.deliveries as f64 / med("secs"),
        b.repeat
    );
    let trace: PathBuf = trace_file(dir, b.events, 0)?;
    let act = acting_config(&cfg, &["bench".to_owned()]);
    let (mut on, mut off) = (Vec::new(), Vec::new());
    let mut delivered = 0;
    for r in 0..b.repeat {
        let (rate_off, _) = run_job(&cfg, &trace, b.workers, None)?;
        let outbox = dir.join("throughput-outbox");
        let _ = std::fs::remove_dir_all(&outbox);
        let (rate_on, d) = run_job(&cfg, &trace, b.workers, Some((&act, &outbox)))?;
        delivered = d;
        eprintln!("throughput round {r}: actions off {rate_off:.0} events/s, on {rate_on:.0} events/s ({d} delivered)");
        off.push(rate_off);
        on.push(rate_on);
    }
    let (on, off) = (median(on), median(off));
    println!(
        "throughput: actions off {off:.0} events/s, on {on:.0} events/s: {:.3}x ({delivered} deliveries in the last run)",
        on / off
    );
    let volume = volume(dir, &cfg)?;
    println!(
        "volume: 24 h trace, {} injected anomalies, {} anomalies, {} notifications ({} firing and {} resolved per injected anomaly): {}",
        volume["injected"],
        volume["anomalies"],
        volume["notifications"],
        volume["firing_per_injected"],
        volume["resolved_per_injected"],
        volume["by_kind"]
    );
    println!(
        "{}",
        json!({
            "bench": "actions",
            "delivery": {"deliveries": b.deliveries, "lost": lost, "acknowledged_twice": twice,
                         "latency_p50_ms": med("latency_p50_ms"), "latency_p99_ms": med("latency_p99_ms"),
                         "deliveries_per_sec": b.deliveries as f64 / med("secs")},
            "throughput": {"events": b.events, "workers": b.workers, "actions_off": off, "actions_on": on, "ratio": on / off},
            "volume": volume,
        })
    );
    Ok(())
}
