//! Counters shared by the workers of one process, read by the progress line and the run summary.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use crate::guard::Tier;
use crate::model::{Decision, FallbackReason, Reason, Severity, ShadowAgentAnalysis};

/// Process-wide counters. Workers add to them; nothing on the hot path takes a lock.
#[derive(Debug, Default)]
pub struct JobStats {
    /// Records read by the sources.
    pub records_in: AtomicU64,
    /// Records decoded into events.
    pub events_decoded: AtomicU64,
    dead_letters: [AtomicU64; Reason::ALL.len()],
    /// Anomalies emitted.
    pub anomalies: AtomicU64,
    /// Output records acknowledged by an asynchronous transport (Kafka).
    pub delivered: AtomicU64,
    /// Failed deliveries and records the transport refused (each logged; failed ones are sent again).
    pub delivery_errors: AtomicU64,
    per_detector: Mutex<Vec<((String, Severity), u64)>>,
    /// Records written per low-volume stream (actions, alerts, incidents, webhooks).
    written: Mutex<Vec<(&'static str, u64)>>,
    decisions: [AtomicU64; Tier::ALL.len()],
    escalated: AtomicU64,
    judge: JudgeCounts,
    watermarks: Mutex<Vec<u64>>,
    /// Records behind the end of each input partition, as its reader last saw.
    lags: Mutex<BTreeMap<(String, i32), i64>>,
    /// Records each output sink holds that its transport has not taken yet, per stream and worker.
    sink_waiting: Mutex<Vec<(&'static str, Arc<AtomicU64>)>>,
    /// Figures of the parts of the process outside the dataflow (judges, deliveries).
    readings: Mutex<ReadingSources>,
    /// A graceful stop was asked for (SIGTERM, SIGINT): sources stop reading, wait for what
    /// they emitted to be acknowledged, commit behind it and finish.
    pub stop: AtomicBool,
    /// Sources still reading or draining.
    pub sources_running: AtomicUsize,
    /// Records read but neither decoded nor dead-lettered when a graceful stop ended the run
    /// (waiting on a clock jump or on pacing); a restart reads them again.
    pub held_at_stop: AtomicU64,
}

/// One figure read at each scrape from a part of the process outside the dataflow.
#[derive(Clone, Debug, PartialEq)]
pub struct Reading {
    /// The metric's name (`sentinel_judge_breaker_state`).
    pub name: &'static str,
    /// What it means.
    pub help: &'static str,
    /// A total that only grows, or a level.
    pub kind: ReadingKind,
    /// Label names and values.
    pub labels: Vec<(&'static str, String)>,
    /// The value.
    pub value: f64,
}

/// Whether a [`Reading`] is a counter or a gauge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadingKind {
    /// Only grows.
    Counter,
    /// Goes up and down.
    Gauge,
}

/// Reads some figures now.
pub type ReadingSource = Box<dyn Fn() -> Vec<Reading> + Send + Sync>;

#[derive(Default)]
struct ReadingSources(Vec<ReadingSource>);

impl std::fmt::Debug for ReadingSources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} reading sources", self.0.len())
    }
}

/// Counters of the analyses the judge stage wrote.
#[derive(Debug, Default)]
struct JudgeCounts {
    verdicts: AtomicU64,
    cache_hits: AtomicU64,
    tokens: AtomicU64,
    fallbacks: [AtomicU64; FallbackReason::ALL.len()],
    waits: AtomicU64,
    wait_total_us: AtomicU64,
    wait_max_us: AtomicU64,
}

/// A reading of the judge counters.
#[derive(Clone, Debug, PartialEq)]
pub struct JudgeTotals {
    /// Analyses that are verdicts.
    pub verdicts: u64,
    /// Analyses answered from the cache (verdicts or not).
    pub cache_hits: u64,
    /// Tokens the analyses report.
    pub tokens: u64,
    /// Fallbacks per reason.
    pub fallbacks: [(FallbackReason, u64); FallbackReason::ALL.len()],
    /// Mean wait of a judged request for its agents, ms.
    pub mean_wait_ms: f64,
    /// Longest such wait, ms.
    pub max_wait_ms: f64,
}

impl JobStats {
    /// Counters for `workers` local workers.
    pub fn new(workers: usize) -> Self {
        let stats = JobStats::default();
        *stats.watermarks.lock().unwrap_or_else(|e| e.into_inner()) = vec![0; workers];
        stats
    }

    /// Whether every local source has finished after a graceful stop was asked for.
    pub fn stopped(&self) -> bool {
        self.stop.load(Relaxed) && self.sources_running.load(Relaxed) == 0
    }

    /// Counts one dead letter.
    pub fn dead_letter(&self, reason: Reason) {
        self.dead_letters[reason as usize].fetch_add(1, Relaxed);
    }

    /// Dead letters for one reason.
    pub fn dead_letters(&self, reason: Reason) -> u64 {
        self.dead_letters[reason as usize].load(Relaxed)
    }

    /// All dead letters.
    pub fn dead_letters_total(&self) -> u64 {
        self.dead_letters.iter().map(|c| c.load(Relaxed)).sum()
    }

    /// Adds anomalies of one detector and severity.
    pub fn add_anomalies(&self, detector: &str, severity: Severity, n: u64) {
        self.anomalies.fetch_add(n, Relaxed);
        let mut per = self.per_detector.lock().unwrap_or_else(|e| e.into_inner());
        match per.iter_mut().find(|((d, s), _)| d == detector && *s == severity) {
            Some(entry) => entry.1 += n,
            None => per.push(((detector.to_owned(), severity), n)),
        }
    }

    /// Counts one record written to the low-volume stream `stream`.
    pub fn add_written(&self, stream: &'static str) {
        let mut per = self.written.lock().unwrap_or_else(|e| e.into_inner());
        match per.iter_mut().find(|(s, _)| *s == stream) {
            Some(entry) => entry.1 += 1,
            None => per.push((stream, 1)),
        }
    }

    /// Records written per low-volume stream, sorted by name.
    pub fn written(&self) -> Vec<(&'static str, u64)> {
        let mut per = self.written.lock().unwrap_or_else(|e| e.into_inner()).clone();
        per.sort();
        per
    }

    /// Counts one decision written.
    pub fn add_decision(&self, decision: &Decision) {
        self.decisions[decision.tier as usize].fetch_add(1, Relaxed);
        if decision.shadow_agent_escalated {
            self.escalated.fetch_add(1, Relaxed);
        }
    }

    /// Counts one journaled analysis.
    pub fn add_judgement(&self, analysis: &ShadowAgentAnalysis) {
        let j = &self.judge;
        match analysis.fallback_reason {
            Some(reason) => j.fallbacks[reason as usize].fetch_add(1, Relaxed),
            None => j.verdicts.fetch_add(1, Relaxed),
        };
        if analysis.cache_hit {
            j.cache_hits.fetch_add(1, Relaxed);
        }
        j.tokens.fetch_add(u64::from(analysis.tokens_used), Relaxed);
    }

    /// Counts how long one judged request waited for its agents.
    pub fn add_judge_wait(&self, waited: std::time::Duration) {
        let us = waited.as_micros().min(u128::from(u64::MAX)) as u64;
        let j = &self.judge;
        j.waits.fetch_add(1, Relaxed);
        j.wait_total_us.fetch_add(us, Relaxed);
        j.wait_max_us.fetch_max(us, Relaxed);
    }

    /// Decisions the judges were asked about.
    pub fn escalated(&self) -> u64 {
        self.escalated.load(Relaxed)
    }

    /// Analyses written: verdicts, cache hits among them, tokens, and fallbacks by reason.
    pub fn judgements(&self) -> JudgeTotals {
        let j = &self.judge;
        JudgeTotals {
            verdicts: j.verdicts.load(Relaxed),
            cache_hits: j.cache_hits.load(Relaxed),
            tokens: j.tokens.load(Relaxed),
            fallbacks: FallbackReason::ALL.map(|r| (r, j.fallbacks[r as usize].load(Relaxed))),
            mean_wait_ms: j.wait_total_us.load(Relaxed) as f64 / j.waits.load(Relaxed).max(1) as f64 / 1000.0,
            max_wait_ms: j.wait_max_us.load(Relaxed) as f64 / 1000.0,
        }
    }

    /// Decisions written per tier, lowest tier first.
    pub fn decisions_per_tier(&self) -> [(Tier, u64); 4] {
        Tier::ALL.map(|t| (t, self.decisions[t as usize].load(Relaxed)))
    }

    /// Anomalies per detector id, sorted by id.
    pub fn anomalies_per_detector(&self) -> Vec<(String, u64)> {
        let mut per: Vec<(String, u64)> = Vec::new();
        for ((detector, _), n) in self.anomalies_per_detector_and_severity() {
            match per.last_mut() {
                Some((d, total)) if *d == detector => *total += n,
                _ => per.push((detector, n)),
            }
        }
        per
    }

    /// Anomalies per detector id and severity, sorted.
    pub fn anomalies_per_detector_and_severity(&self) -> Vec<((String, Severity), u64)> {
        let mut per = self.per_detector.lock().unwrap_or_else(|e| e.into_inner()).clone();
        per.sort();
        per
    }

    /// Records the event-time watermark of a worker's source (`worker` is the global index).
    pub fn set_watermark(&self, worker: usize, ms: u64) {
        let mut marks = self.watermarks.lock().unwrap_or_else(|e| e.into_inner());
        let slots = marks.len().max(1);
        if let Some(w) = marks.get_mut(worker % slots) {
            *w = ms;
        }
    }

    /// Records how far behind the end each of a reader's partitions is.
    pub fn set_lags(&self, lags: impl IntoIterator<Item = (String, i32, i64)>) {
        let mut all = self.lags.lock().unwrap_or_else(|e| e.into_inner());
        for (topic, partition, lag) in lags {
            all.insert((topic, partition), lag);
        }
    }

    /// `(topic, partition, records behind its end)` of every input partition read here.
    pub fn lags(&self) -> Vec<(String, i32, i64)> {
        let all = self.lags.lock().unwrap_or_else(|e| e.into_inner());
        all.iter().map(|((t, p), lag)| (t.clone(), *p, *lag)).collect()
    }

    /// A gauge for one worker's sink of `stream`, which it sets to the records it holds.
    pub fn sink_gauge(&self, stream: &'static str) -> Arc<AtomicU64> {
        let gauge = Arc::new(AtomicU64::new(0));
        let mut all = self.sink_waiting.lock().unwrap_or_else(|e| e.into_inner());
        all.push((stream, Arc::clone(&gauge)));
        gauge
    }

    /// Records waiting in the sinks, per stream (summed over workers), sorted by stream.
    pub fn sinks_waiting(&self) -> Vec<(&'static str, u64)> {
        let all = self.sink_waiting.lock().unwrap_or_else(|e| e.into_inner());
        let mut per: BTreeMap<&'static str, u64> = BTreeMap::new();
        for (stream, gauge) in all.iter() {
            *per.entry(stream).or_default() += gauge.load(Relaxed);
        }
        per.into_iter().collect()
    }

    /// Adds figures read at each scrape (the judges' breaker, the deliveries).
    pub fn add_readings(&self, source: ReadingSource) {
        self.readings.lock().unwrap_or_else(|e| e.into_inner()).0.push(source);
    }

    /// Every added source's figures, now.
    pub fn readings(&self) -> Vec<Reading> {
        let sources = self.readings.lock().unwrap_or_else(|e| e.into_inner());
        sources.0.iter().flat_map(|read| read()).collect()
    }

    /// The least watermark over local sources still running (`u64::MAX` once all are done).
    pub fn watermark(&self) -> u64 {
        self.watermarks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .copied()
            .min()
            .unwrap_or(0)
    }
}

/// Nanoseconds on a process-wide monotonic clock; comparable across the workers of one process.
pub fn monotonic_ns() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START.get_or_init(std::time::Instant::now).elapsed().as_nanos() as u64
}
