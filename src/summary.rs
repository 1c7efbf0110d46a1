//! The end-of-run summary and the live progress line.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sentinel_dataflows::model::Reason;
use sentinel_dataflows::operators::JobStats;
use sentinel_dataflows::time::format_rfc3339_ms;
use serde::Serialize;

use crate::job::RunOutcome;
use sentinel_deliver::DeliveryStats;
use sentinel_judges::LiveJudges;

/// Machine-readable run summary (`--summary FILE`).
#[derive(Debug, Serialize)]
pub struct Summary {
    /// Records read.
    pub records_in: u64,
    /// Records decoded into events.
    pub events_decoded: u64,
    /// Dead letters, all reasons (late included).
    pub dead_lettered: u64,
    /// Late events (also in `dead_lettered`).
    pub late: u64,
    /// Dead letters per reason.
    pub dead_letters_by_reason: Vec<(String, u64)>,
    /// Anomalies per detector id.
    pub anomalies_by_detector: Vec<(String, u64)>,
    /// All anomalies.
    pub anomalies: u64,
    /// Output records acknowledged by Kafka.
    pub delivered: u64,
    /// Failed or refused deliveries (logged; failed ones were sent again).
    pub delivery_errors: u64,
    /// Wall time, seconds.
    pub elapsed_secs: f64,
    /// Records read per second of wall time.
    pub events_per_sec: f64,
    /// Read→folded latency percentiles, µs.
    pub latency_p50_us: f64,
    /// 99th percentile, µs.
    pub latency_p99_us: f64,
    /// Records a graceful stop left undecided (a restart reads them again).
    pub held_at_stop: u64,
    /// True when every record read is accounted for (decoded + dead-lettered + held at stop).
    pub balanced: bool,
    /// Peak resident memory of this process (Linux `VmHWM`), bytes; 0 where unavailable.
    pub peak_rss_bytes: u64,
    /// Decisions per tier.
    pub decisions_by_tier: Vec<(String, u64)>,
    /// The shadow-agent judges, when they ran.
    pub judges: Option<JudgeSummary>,
    /// Records written per action stream (actions, alerts, incidents, webhooks).
    pub actions_by_stream: Vec<(String, u64)>,
    /// What the delivery did, when it ran.
    pub deliveries: Option<DeliverySummary>,
}

/// What the action delivery did.
#[derive(Debug, Serialize)]
pub struct DeliverySummary {
    /// Acknowledged by their receivers.
    pub delivered: u64,
    /// Given up on: in the dead letters.
    pub dead_lettered: u64,
    /// Nowhere to deliver to.
    pub skipped: u64,
    /// Delivered by an earlier run (in the status log): not sent again.
    pub already_done: u64,
    /// Attempts after the first.
    pub retries: u64,
    /// Outbox records that did not parse.
    pub malformed: u64,
    /// Outbox read to final answer, p50, ms.
    pub latency_p50_ms: f64,
    /// p99, ms.
    pub latency_p99_ms: f64,
}

/// What the judges did.
#[derive(Debug, Serialize)]
pub struct JudgeSummary {
    /// Decisions the judges were asked about.
    pub escalated: u64,
    /// Escalated over all decisions.
    pub escalation_rate: f64,
    /// Analyses that are verdicts.
    pub verdicts: u64,
    /// Analyses that fell back, per reason.
    pub fallbacks_by_reason: Vec<(String, u64)>,
    /// Analyses answered from the cache over all analyses.
    pub cache_hit_rate: f64,
    /// Tokens the analyses report (a cache hit reports the original call's).
    pub tokens: u64,
    /// Mean wait of a judged request for its verdicts, ms.
    pub mean_wait_ms: f64,
    /// Longest wait, ms (at most `timeout_ms` plus scheduling).
    pub max_wait_ms: f64,
    /// What the provider calls did; absent when replaying a journal.
    #[serde(flatten)]
    pub live: Option<LiveJudgeFigures>,
}

/// The figures of live provider calls.
#[derive(Debug, Serialize)]
pub struct LiveJudgeFigures {
    /// HTTP attempts.
    pub calls: u64,
    /// Tokens actually sent and received.
    pub tokens_billed: u64,
    /// Their cost at the configured prices.
    pub cost: f64,
    /// Call latency p50, ms.
    pub latency_p50_ms: f64,
    /// Call latency p99, ms.
    pub latency_p99_ms: f64,
    /// The breaker's state at the end.
    pub breaker_state: &'static str,
    /// Times the breaker opened, went half-open and closed.
    pub breaker_transitions: (u64, u64, u64),
}

impl Summary {
    /// Builds the summary of a finished run.
    pub fn of(run: &RunOutcome) -> Self {
        let s = &run.stats;
        let records_in = s.records_in.load(Relaxed);
        let decoded = s.events_decoded.load(Relaxed);
        let dead = s.dead_letters_total();
        let secs = run.elapsed.as_secs_f64().max(1e-9);
        let empty = run.latency_ns.is_empty();
        Summary {
            records_in,
            events_decoded: decoded,
            dead_lettered: dead,
            late: s.dead_letters(Reason::Late),
            dead_letters_by_reason: Reason::ALL
                .iter()
                .map(|r| (r.as_str().to_owned(), s.dead_letters(*r)))
                .filter(|(_, n)| *n > 0)
                .collect(),
            anomalies_by_detector: s.anomalies_per_detector(),
            anomalies: s.anomalies.load(Relaxed),
            delivered: s.delivered.load(Relaxed),
            delivery_errors: s.delivery_errors.load(Relaxed),
            elapsed_secs: secs,
            events_per_sec: records_in as f64 / secs,
            latency_p50_us: if empty {
                0.0
            } else {
                run.latency_ns.value_at_quantile(0.5) as f64 / 1000.0
            },
            latency_p99_us: if empty {
                0.0
            } else {
                run.latency_ns.value_at_quantile(0.99) as f64 / 1000.0
            },
            held_at_stop: s.held_at_stop.load(Relaxed),
            balanced: records_in == decoded + dead + s.held_at_stop.load(Relaxed),
            peak_rss_bytes: peak_rss_bytes(),
            decisions_by_tier: s
                .decisions_per_tier()
                .iter()
                .map(|(t, n)| (t.as_str().to_owned(), *n))
                .collect(),
            judges: None,
            actions_by_stream: s.written().into_iter().map(|(k, n)| (k.to_owned(), n)).collect(),
            deliveries: None,
        }
    }

    /// Adds what the delivery did.
    pub fn with_deliveries(mut self, d: &DeliveryStats) -> Self {
        self.deliveries = Some(DeliverySummary {
            delivered: d.delivered.load(Relaxed),
            dead_lettered: d.dead_lettered.load(Relaxed),
            skipped: d.skipped.load(Relaxed),
            already_done: d.already_done.load(Relaxed),
            retries: d.retries.load(Relaxed),
            malformed: d.malformed.load(Relaxed),
            latency_p50_ms: d.latency_us(0.5) / 1000.0,
            latency_p99_ms: d.latency_us(0.99) / 1000.0,
        });
        self
    }

    /// Adds the judges' figures (`live` is `None` when replaying a journal).
    pub fn with_judges(mut self, s: &JobStats, live: Option<&LiveJudges>) -> Self {
        let j = s.judgements();
        let decisions: u64 = s.decisions_per_tier().iter().map(|(_, n)| n).sum();
        let analyses = j.verdicts + j.fallbacks.iter().map(|(_, n)| n).sum::<u64>();
        self.judges = Some(JudgeSummary {
            escalated: s.escalated(),
            escalation_rate: s.escalated() as f64 / decisions.max(1) as f64,
            verdicts: j.verdicts,
            fallbacks_by_reason: j
                .fallbacks
                .iter()
                .filter(|(_, n)| *n > 0)
                .map(|(r, n)| (r.as_str().to_owned(), *n))
                .collect(),
            cache_hit_rate: j.cache_hits as f64 / analyses.max(1) as f64,
            tokens: j.tokens,
            mean_wait_ms: j.mean_wait_ms,
            max_wait_ms: j.max_wait_ms,
            live: live.map(|live| {
                let st = live.stats();
                let b = live.breaker();
                LiveJudgeFigures {
                    calls: st.calls.load(Relaxed),
                    tokens_billed: st.input_tokens.load(Relaxed) + st.output_tokens.load(Relaxed),
                    cost: live.cost(),
                    latency_p50_ms: st.latency_ms(0.5),
                    latency_p99_ms: st.latency_ms(0.99),
                    breaker_state: b.state.as_str(),
                    breaker_transitions: (b.opened, b.half_opened, b.closed),
                }
            }),
        });
        self
    }

    /// The human-readable form, for stderr.
    pub fn render(&self) -> String {
        let mut out = format!(
            "── sentinel run summary ──\n  events in        {}\n  decoded          {}\n  dead-lettered    {} (late {})\n",
            self.records_in, self.events_decoded, self.dead_lettered, self.late
        );
        for (reason, n) in &self.dead_letters_by_reason {
            out.push_str(&format!("    {reason:<22}{n}\n"));
        }
        out.push_str(&format!("  anomalies        {}\n", self.anomalies));
        for (detector, n) in &self.anomalies_by_detector {
            out.push_str(&format!("    {detector:<22}{n}\n"));
        }
        for (stream, n) in &self.actions_by_stream {
            out.push_str(&format!("  {stream:<17}{n}\n"));
        }
        if let Some(d) = &self.deliveries {
            out.push_str(&format!(
                "  deliveries       {} delivered, {} dead-lettered, {} skipped, {} done before; {} retries; p50 {:.1} ms, p99 {:.1} ms\n",
                d.delivered, d.dead_lettered, d.skipped, d.already_done, d.retries, d.latency_p50_ms, d.latency_p99_ms
            ));
        }
        if self.held_at_stop > 0 {
            out.push_str(&format!(
                "  held at stop     {} (undecided when the run stopped; read again after a restart)
",
                self.held_at_stop
            ));
        }
        if self.delivered + self.delivery_errors > 0 {
            out.push_str(&format!(
                "  delivered        {} (delivery errors {})\n",
                self.delivered, self.delivery_errors
            ));
        }
        if let Some(j) = &self.judges {
            out.push_str(&format!(
                "  judges           {} escalated ({:.2}% of decisions), {} verdicts, cache hits {:.1}%, {} tokens\n",
                j.escalated,
                j.escalation_rate * 100.0,
                j.verdicts,
                j.cache_hit_rate * 100.0,
                j.tokens
            ));
            out.push_str(&format!(
                "    wait for verdicts: mean {:.1} ms, max {:.1} ms\n",
                j.mean_wait_ms, j.max_wait_ms
            ));
            for (reason, n) in &j.fallbacks_by_reason {
                out.push_str(&format!("    fallback {reason:<16}{n}\n"));
            }
            if let Some(l) = &j.live {
                out.push_str(&format!(
                    "    calls {}, latency p50 {:.0} ms p99 {:.0} ms, cost {:.4}, breaker {} (opened {}, half-open {}, closed {})\n",
                    l.calls,
                    l.latency_p50_ms,
                    l.latency_p99_ms,
                    l.cost,
                    l.breaker_state,
                    l.breaker_transitions.0,
                    l.breaker_transitions.1,
                    l.breaker_transitions.2
                ));
            }
        }
        out.push_str(&format!(
            "  throughput       {:.0} events/s over {:.2} s\n  latency          p50 {:.1} µs, p99 {:.1} µs (read → folded into window state)\n  balanced         {}\n  peak memory      {:.1} MiB\n",
            self.events_per_sec,
            self.elapsed_secs,
            self.latency_p50_us,
            self.latency_p99_us,
            self.balanced,
            self.peak_rss_bytes as f64 / 1048576.0
        ));
        out
    }
}

/// Peak resident set size from `/proc/self/status`.
pub fn peak_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// A live progress line on stderr, redrawn twice a second while the job runs.
pub struct Progress {
    done: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Progress {
    /// Starts the line, unless stderr is not a terminal or `enabled` is false.
    pub fn start(stats: Arc<JobStats>, enabled: bool) -> Self {
        let done = Arc::new(AtomicBool::new(false));
        if !enabled || !std::io::stderr().is_terminal() {
            return Progress { done, thread: None };
        }
        let flag = Arc::clone(&done);
        let thread = std::thread::spawn(move || {
            let start = Instant::now();
            while !flag.load(Relaxed) {
                std::thread::sleep(Duration::from_millis(500));
                let n = stats.records_in.load(Relaxed);
                let rate = n as f64 / start.elapsed().as_secs_f64().max(1e-9);
                let wm = stats.watermark();
                let wm = if wm == 0 || wm == u64::MAX {
                    "-".to_owned()
                } else {
                    format_rfc3339_ms(wm)
                };
                eprint!(
                    "\r\x1b[2K{n} events  {rate:.0}/s  watermark {wm}  anomalies {}  dead-lettered {}",
                    stats.anomalies.load(Relaxed),
                    stats.dead_letters_total()
                );
            }
            eprint!("\r\x1b[2K");
        });
        Progress {
            done,
            thread: Some(thread),
        }
    }

    /// Stops and clears the line.
    pub fn finish(mut self) {
        self.done.store(true, Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
