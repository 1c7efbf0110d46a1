//! `sentinel bench serve`: the serving store with a million anomalies.
//!
//! - Ingest: anomalies per second into the store, in the feed's batches.
//! - Queries: p50/p99 of filtered time-range queries (100 rows) and of `statistics`, over
//!   random ranges, through the `Store` trait the API calls.
//! - Embedded cost: replay throughput of the job with the store fed (`--serve`) against
//!   without, in the same run.
//! - Subscription latency: anomalies handed to the feed at a steady rate, as the job's sink
//!   hands them, until a GraphQL subscriber on a WebSocket receives each.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use sentinel_dataflows::model::{Anomaly, Severity};
use sentinel_dataflows::operators::JobStats;
use sentinel_serve::api::{wall_clock_ms, ApiState, Server};
use sentinel_serve::auth::Keys;
use sentinel_serve::bench::subscription_latency;
use sentinel_serve::feed::Feed;
use sentinel_serve::lifecycle::Status;
use sentinel_serve::live::Live;
use sentinel_serve::store::{
    AnomalyFilter, GroupBy, KeptDecisions, OutcomeFilter, OutcomeKind, PageAt, SqliteStore, Store, StoreOptions,
};
use serde_json::json;

use super::bench::{config_spec, median, trace_file, BenchGuards};
use crate::config::{SentinelConfig, DEFAULT_CONFIG};
use crate::io::OutputTarget;
use crate::job::{self, InputSpec};

/// What to measure.
pub struct ServeBench {
    /// Anomalies stored.
    pub anomalies: u64,
    /// Queries of each kind.
    pub queries: u64,
    /// Events of the replay trace.
    pub events: u64,
    /// Bytes of prompt and response text of each event in it.
    pub prompt_bytes: usize,
    /// Rounds of the replay comparison.
    pub repeat: usize,
    /// Seconds of the subscription latency run.
    pub latency_secs: u64,
    /// Anomalies a second in it.
    pub latency_rate: f64,
}

const DAY_MS: u64 = 86_400_000;
const T0: u64 = 1_717_200_000_000;
const SPAN_MS: u64 = 30 * DAY_MS;

/// A small deterministic generator (xorshift), so runs are comparable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn synthetic_anomaly(i: u64, rng: &mut Rng) -> Vec<u8> {
    let detector = format!("detector-{}", rng.below(20));
    let app = format!("app-{}", rng.below(50));
    let severity = match rng.below(10) {
        0 => Severity::Critical,
        1..=4 => Severity::Warning,
        _ => Severity::Info,
    };
    let at = T0 + i * (SPAN_MS / 1_000_000).max(1) + rng.below(1_000);
    let score = 0.5 + rng.below(500) as f64 / 1000.0;
    let id: &[&[u8]] = &[detector.as_bytes(), app.as_bytes(), &i.to_le_bytes()];
    let mut a = Anomaly::sample(id, &detector, severity, score, &app, at);
    a.description = "observed 5.0 against a baseline of 1.0 (4.0σ)".into();
    a.context.sample_events = vec![format!("evt-{i}")];
    serde_json::to_vec(&a).expect("an anomaly serializes")
}

fn percentiles(mut ms: Vec<f64>) -> (f64, f64) {
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((ms.len() as f64 - 1.0) * q).round() as usize];
    (at(0.5), at(0.99))
}

/// Runs the measurements and prints them, ending with one JSON line.
pub fn serve(dir: &Path, b: &ServeBench) -> Result<(), String> {
    let path = dir.join("bench-serve.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let store = SqliteStore::open(StoreOptions::at(&path))?;
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    let started = Instant::now();
    let mut batch = Vec::with_capacity(2_048);
    for i in 0..b.anomalies {
        batch.push(synthetic_anomaly(i, &mut rng));
        if batch.len() == 2_048 {
            store.add_anomalies(std::mem::take(&mut batch))?;
        }
    }
    store.add_anomalies(batch)?;
    let ingest_secs = started.elapsed().as_secs_f64();
    let ingest_rate = b.anomalies as f64 / ingest_secs;
    println!(
        "ingest: {} anomalies in {ingest_secs:.1} s, {ingest_rate:.0} anomalies/s",
        b.anomalies
    );

    let span = (b.anomalies * (SPAN_MS / 1_000_000).max(1)).max(DAY_MS);
    let mut query_ms = Vec::new();
    let mut rows = 0usize;
    for q in 0..b.queries {
        let start = T0 + rng.below(span.saturating_sub(DAY_MS).max(1));
        let mut filter = AnomalyFilter {
            start_ms: start,
            end_ms: start + DAY_MS,
            ..AnomalyFilter::default()
        };
        match q % 3 {
            0 => filter.severities = vec!["critical".into(), "warning".into()],
            1 => filter.statuses = vec![Status::Active],
            _ => filter.applications = vec![format!("app-{}", rng.below(50))],
        }
        let t = Instant::now();
        let page = store.anomalies(&filter, &PageAt::Offset(0), 100)?;
        query_ms.push(t.elapsed().as_secs_f64() * 1e3);
        rows += page.anomalies.len();
    }
    let (q50, q99) = percentiles(query_ms);
    println!(
        "query: {} filtered one-day queries of 100 rows ({:.0} rows on average): p50 {q50:.2} ms, p99 {q99:.2} ms",
        b.queries,
        rows as f64 / b.queries.max(1) as f64
    );
    let mut stats_ms = Vec::new();
    for _ in 0..b.queries {
        let start = T0 + rng.below(span.saturating_sub(7 * DAY_MS).max(1));
        let t = Instant::now();
        store.statistics(start, start + 7 * DAY_MS, &[GroupBy::Detector, GroupBy::Severity])?;
        stats_ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let (s50, s99) = percentiles(stats_ms);
    println!(
        "statistics: {} seven-day summaries by detector and severity: p50 {s50:.2} ms, p99 {s99:.2} ms",
        b.queries
    );

    // The embedded cost: the job with its anomalies fed to a store, against without.
    let cfg = SentinelConfig::parse(DEFAULT_CONFIG).map_err(|e| e.0)?;
    let trace = trace_file(dir, b.events, b.prompt_bytes)?;
    let mut rates = [Vec::new(), Vec::new()];
    let mut stored = 0u64;
    let mut decisions = 0u64;
    for _ in 0..b.repeat {
        for (k, served) in [false, true].into_iter().enumerate() {
            let mut spec = config_spec(
                &cfg,
                InputSpec::File(trace.clone()),
                OutputTarget::Discard,
                BenchGuards::Rules,
                None,
            )?;
            let db = dir.join("bench-serve-replay.db");
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
            }
            let feed = if served {
                let store: Arc<dyn Store> = Arc::new(SqliteStore::open(StoreOptions::at(&db))?);
                let live = Live::of(&*store);
                let (feed, sender) = Feed::start(Arc::clone(&store), live);
                spec.serve_feed = Some(crate::job::ServeFeed {
                    sender,
                    decisions: KeptDecisions::default(),
                });
                Some((feed, store))
            } else {
                None
            };
            let stats = Arc::new(JobStats::new(1));
            let t = Instant::now();
            job::run(timely::Config::process(1), Arc::clone(&stats), spec)?;
            if let Some((feed, store)) = feed {
                stored = feed.finish();
                let all = OutcomeFilter {
                    end_ms: u64::MAX >> 1,
                    ..OutcomeFilter::default()
                };
                decisions = store.outcomes(OutcomeKind::Decision, &all, 0, 1)?.total;
            }
            let secs = t.elapsed().as_secs_f64();
            rates[k].push(stats.records_in.load(std::sync::atomic::Ordering::Relaxed) as f64 / secs);
        }
    }
    let (off, on) = (median(rates[0].clone()), median(rates[1].clone()));
    // Each round's own ratio too: the two runs of a round share the machine's mood.
    let round_ratios: Vec<f64> = rates[1]
        .iter()
        .zip(&rates[0])
        .map(|(with, without)| with / without)
        .collect();
    let median_round_ratio = median(round_ratios.clone());
    let latency = subscription(dir, b)?;
    println!(
        "embedded: {} events of {} B, {stored} anomalies and {decisions} flagged decisions stored: {off:.0} events/s without the store, {on:.0} with: {:.3}× (medians of {}); per round {:?}, median {median_round_ratio:.3}×",
        b.events,
        b.prompt_bytes,
        on / off,
        b.repeat,
        round_ratios.iter().map(|r| format!("{r:.3}")).collect::<Vec<_>>()
    );
    println!(
        "{}",
        json!({
            "bench": "serve",
            "anomalies": b.anomalies,
            "ingest_anomalies_per_sec": ingest_rate,
            "query_p50_ms": q50, "query_p99_ms": q99,
            "statistics_p50_ms": s50, "statistics_p99_ms": s99,
            "replay_events": b.events, "replay_prompt_bytes": b.prompt_bytes,
            "replay_decisions_stored": decisions,
            "replay_without_store": off, "replay_with_store": on, "ratio": on / off,
            "median_round_ratio": median_round_ratio,
            "subscription_rate": b.latency_rate,
            "subscription_sent": latency.sent, "subscription_received": latency.received,
            "subscription_p50_ms": latency.p50_ms, "subscription_p99_ms": latency.p99_ms,
            "subscription_max_ms": latency.max_ms, "subscription_behind": latency.behind,
        })
    );
    Ok(())
}

/// The subscription latency run's figures.
struct SubscriptionFigures {
    sent: u64,
    received: u64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    behind: u64,
}

fn subscription(dir: &Path, b: &ServeBench) -> Result<SubscriptionFigures, String> {
    let db = dir.join("bench-serve-live.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(StoreOptions::at(&db))?);
    let live = Live::of(&*store);
    let (feed, sender) = Feed::start(Arc::clone(&store), live.clone());
    let server = Server::start(
        "127.0.0.1:0".parse().expect("a socket address"),
        ApiState {
            metrics: Arc::new(sentinel_serve::exporter::registry(
                None,
                Some(Arc::clone(&store)),
                wall_clock_ms,
            )),
            store,
            keys: Keys::default(),
            detectors: Arc::new(Vec::new()),
            publish: sender.publisher(),
            clock: wall_clock_ms,
            live,
            test_detector: None,
        },
    )?;
    let count = (b.latency_rate * b.latency_secs as f64) as u64;
    let mut rng = Rng(0x5eed_1a7e);
    let records: Vec<(String, Vec<u8>)> = (0..count)
        .map(|i| {
            let record = synthetic_anomaly(i, &mut rng);
            let id = serde_json::from_slice::<serde_json::Value>(&record)
                .ok()
                .and_then(|v| v["id"].as_str().map(str::to_owned))
                .unwrap_or_default();
            (id, record)
        })
        .collect();
    let run = subscription_latency(server.addr, None, &sender, records, b.latency_rate)?;
    drop(sender);
    server.stop();
    feed.finish();
    let ms: Vec<f64> = run.latencies_us.iter().map(|us| *us as f64 / 1_000.0).collect();
    let max_ms = ms.iter().copied().fold(0.0, f64::max);
    let (p50_ms, p99_ms) = if ms.is_empty() {
        (f64::NAN, f64::NAN)
    } else {
        percentiles(ms)
    };
    println!(
        "subscription: {} anomalies at {:.0}/s, {} received: p50 {p50_ms:.2} ms, p99 {p99_ms:.2} ms, max {max_ms:.2} ms (feed to WebSocket client; told behind {} times)",
        run.sent, b.latency_rate, run.received, run.behind
    );
    Ok(SubscriptionFigures {
        sent: run.sent,
        received: run.received,
        p50_ms,
        p99_ms,
        max_ms,
        behind: run.behind,
    })
}
