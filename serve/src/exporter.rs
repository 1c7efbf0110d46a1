//! Prometheus `/metrics` in OpenMetrics text, with prometheus-client. The job's figures are
//! read at each scrape from the same [`JobStats`] counters the run summary reads, so the two
//! never disagree, and the hot path keeps its plain atomic counters.

use std::collections::BTreeMap;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::store::Store;
use sentinel_dataflows::model::{FallbackReason, Reason};
use sentinel_dataflows::operators::{JobStats, Reading, ReadingKind};

/// The content type of [`render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The job's counters, read at each scrape.
#[derive(Debug)]
pub struct JobCollector {
    stats: Arc<JobStats>,
    clock: fn() -> u64,
}

fn counter(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> Result<(), std::fmt::Error> {
    let c = ConstCounter::new(value);
    c.encode(encoder.encode_descriptor(name, help, None, c.metric_type())?)
}

fn gauge(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: f64) -> Result<(), std::fmt::Error> {
    let g = ConstGauge::new(value);
    g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)
}

/// One gauge family: `name{label=value}` for each `(values, level)`.
fn gauges<'a>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    labels: &[&str],
    values: impl IntoIterator<Item = (Vec<&'a str>, f64)>,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, ConstGauge::new(0.0).metric_type())?;
    for (label_values, level) in values {
        let set: Vec<(&str, &str)> = labels.iter().copied().zip(label_values).collect();
        ConstGauge::new(level).encode(family.encode_family(&set)?)?;
    }
    Ok(())
}

/// The readings of the parts outside the dataflow, one family per name.
fn readings(encoder: &mut DescriptorEncoder, all: Vec<Reading>) -> Result<(), std::fmt::Error> {
    let mut families: BTreeMap<&'static str, Vec<Reading>> = BTreeMap::new();
    for r in all {
        families.entry(r.name).or_default().push(r);
    }
    for (name, family) in families {
        let (help, kind) = (family[0].help, family[0].kind);
        let metric_type = match kind {
            ReadingKind::Counter => ConstCounter::new(0u64).metric_type(),
            ReadingKind::Gauge => ConstGauge::new(0.0).metric_type(),
        };
        let mut out = encoder.encode_descriptor(name, help, None, metric_type)?;
        for r in &family {
            let set: Vec<(&str, &str)> = r.labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
            match kind {
                ReadingKind::Counter => ConstCounter::new(r.value as u64).encode(out.encode_family(&set)?)?,
                ReadingKind::Gauge => ConstGauge::new(r.value).encode(out.encode_family(&set)?)?,
            }
        }
    }
    Ok(())
}

/// One counter family: `name{label=value}` for each `(value, count)`.
fn counters<'a>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    labels: &[&str],
    values: impl IntoIterator<Item = (Vec<&'a str>, u64)>,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, ConstCounter::new(0u64).metric_type())?;
    for (label_values, count) in values {
        let set: Vec<(&str, &str)> = labels.iter().copied().zip(label_values).collect();
        ConstCounter::new(count).encode(family.encode_family(&set)?)?;
    }
    Ok(())
}

impl Collector for JobCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        use std::sync::atomic::Ordering::Relaxed;
        let s = &self.stats;
        let e = &mut encoder;
        counter(
            e,
            "sentinel_events_in",
            "Records read by the sources.",
            s.records_in.load(Relaxed),
        )?;
        counter(
            e,
            "sentinel_events_decoded",
            "Records decoded into events.",
            s.events_decoded.load(Relaxed),
        )?;
        counters(
            e,
            "sentinel_dead_letters",
            "Records dead-lettered, by reason (late events are reason=late).",
            &["reason"],
            Reason::ALL.iter().map(|r| (vec![r.as_str()], s.dead_letters(*r))),
        )?;
        let per = s.anomalies_per_detector_and_severity();
        counters(
            e,
            "sentinel_anomalies",
            "Anomalies emitted, by detector and severity.",
            &["detector", "severity"],
            per.iter().map(|((d, sev), n)| (vec![d.as_str(), sev.as_str()], *n)),
        )?;
        counters(
            e,
            "sentinel_decisions",
            "Decisions written, by tier.",
            &["tier"],
            s.decisions_per_tier().iter().map(|(t, n)| (vec![t.as_str()], *n)),
        )?;
        counter(
            e,
            "sentinel_escalations",
            "Decisions the judges were asked about.",
            s.escalated(),
        )?;
        let judged = s.judgements();
        counter(
            e,
            "sentinel_judge_verdicts",
            "Judge analyses that are verdicts.",
            judged.verdicts,
        )?;
        counter(
            e,
            "sentinel_judge_cache_hits",
            "Judge analyses answered from the cache.",
            judged.cache_hits,
        )?;
        counter(
            e,
            "sentinel_judge_tokens",
            "Tokens the judge analyses report.",
            judged.tokens,
        )?;
        counters(
            e,
            "sentinel_judge_fallbacks",
            "Judge analyses that fell back, by reason.",
            &["reason"],
            FallbackReason::ALL
                .iter()
                .zip(judged.fallbacks.iter())
                .map(|(r, (_, n))| (vec![r.as_str()], *n)),
        )?;
        let written = s.written();
        counters(
            e,
            "sentinel_records_written",
            "Records written to the low-volume streams (actions, alerts, incidents, webhooks...).",
            &["stream"],
            written.iter().map(|(stream, n)| (vec![*stream], *n)),
        )?;
        counter(
            e,
            "sentinel_output_delivered",
            "Output records acknowledged by Kafka.",
            s.delivered.load(Relaxed),
        )?;
        counter(
            e,
            "sentinel_output_delivery_errors",
            "Output deliveries that failed (and were sent again) or were refused.",
            s.delivery_errors.load(Relaxed),
        )?;
        let lags = s.lags();
        let partitions: Vec<String> = lags.iter().map(|(_, p, _)| p.to_string()).collect();
        gauges(
            e,
            "sentinel_consumer_lag",
            "Records behind the end of each input partition, from the client's last statistics.",
            &["topic", "partition"],
            lags.iter()
                .zip(&partitions)
                .map(|((topic, _, lag), partition)| (vec![topic.as_str(), partition.as_str()], *lag as f64)),
        )?;
        gauges(
            e,
            "sentinel_sink_waiting",
            "Records each output stream's sinks hold that their transport has not taken yet.",
            &["stream"],
            s.sinks_waiting()
                .into_iter()
                .map(|(stream, n)| (vec![stream], n as f64)),
        )?;
        readings(e, s.readings())?;
        let watermark = s.watermark();
        if watermark > 0 && watermark < u64::MAX {
            gauge(
                e,
                "sentinel_watermark_delay_seconds",
                "Wall clock minus the least source watermark (event time): how far behind now the job's windows close.",
                ((self.clock)() as f64 - watermark as f64) / 1000.0,
            )?;
        }
        Ok(())
    }
}

/// The serving store's figures, read at each scrape.
struct StoreCollector {
    store: Arc<dyn Store>,
}

impl std::fmt::Debug for StoreCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreCollector").finish_non_exhaustive()
    }
}

impl Collector for StoreCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        counter(
            &mut encoder,
            "sentinel_serve_anomalies_stored",
            "Anomalies the serving store has taken (its arrival number).",
            self.store.last_seq(),
        )
    }
}

/// A registry with the job's counters (when in the job) and the store's (when serving).
pub fn registry(stats: Option<Arc<JobStats>>, store: Option<Arc<dyn Store>>, clock: fn() -> u64) -> Registry {
    let mut registry = Registry::default();
    if let Some(stats) = stats {
        registry.register_collector(Box::new(JobCollector { stats, clock }));
    }
    if let Some(store) = store {
        registry.register_collector(Box::new(StoreCollector { store }));
    }
    registry
}

/// The registry as OpenMetrics text.
pub fn render(registry: &Registry) -> String {
    let mut text = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut text, registry);
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use sentinel_dataflows::model::Severity;

    #[test]
    fn the_job_counters_are_exported_with_their_labels() {
        let stats = Arc::new(JobStats::new(1));
        stats.records_in.fetch_add(10, std::sync::atomic::Ordering::Relaxed);
        stats.dead_letter(Reason::Late);
        stats.add_anomalies("cost-spike", Severity::Critical, 2);
        stats.add_anomalies("cost-spike", Severity::Warning, 1);
        stats.set_watermark(0, 1_000);
        stats.set_lags([("telemetry".to_owned(), 0, 5), ("telemetry".to_owned(), 1, 0)]);
        stats.set_lags([("telemetry".to_owned(), 0, 3)]);
        let sink_on_worker_0 = stats.sink_gauge("alerts");
        let sink_on_worker_1 = stats.sink_gauge("alerts");
        sink_on_worker_0.store(2, std::sync::atomic::Ordering::Relaxed);
        sink_on_worker_1.store(5, std::sync::atomic::Ordering::Relaxed);
        stats.add_readings(Box::new(|| {
            ["closed", "open"]
                .iter()
                .map(|state| Reading {
                    name: "sentinel_judge_breaker_state",
                    help: "1 for the breaker's state.",
                    kind: ReadingKind::Gauge,
                    labels: vec![("state", (*state).to_owned())],
                    value: f64::from(*state == "open"),
                })
                .chain(std::iter::once(Reading {
                    name: "sentinel_action_delivery_retries",
                    help: "Attempts after the first.",
                    kind: ReadingKind::Counter,
                    labels: Vec::new(),
                    value: 4.0,
                }))
                .collect()
        }));
        let text = render(&registry(Some(stats), None, || 61_000));
        for line in [
            "sentinel_consumer_lag{topic=\"telemetry\",partition=\"0\"} 3.0",
            "sentinel_consumer_lag{topic=\"telemetry\",partition=\"1\"} 0.0",
            "sentinel_sink_waiting{stream=\"alerts\"} 7.0",
            "sentinel_judge_breaker_state{state=\"open\"} 1.0",
            "sentinel_judge_breaker_state{state=\"closed\"} 0.0",
            "sentinel_action_delivery_retries_total 4",
            "sentinel_events_in_total 10",
            "sentinel_dead_letters_total{reason=\"late\"} 1",
            "sentinel_anomalies_total{detector=\"cost-spike\",severity=\"critical\"} 2",
            "sentinel_anomalies_total{detector=\"cost-spike\",severity=\"warning\"} 1",
            "sentinel_watermark_delay_seconds 60.0",
        ] {
            assert!(text.lines().any(|l| l == line), "missing `{line}` in:\n{text}");
        }
        assert!(text.ends_with("# EOF\n"), "OpenMetrics ends with EOF");
    }
}
