//! `sentinel bench kafka`: the job through a real broker. Throughput against a bare consumer
//! reading the same topic in the same run, produce-to-output latency at half the job's rate,
//! and CPU with no traffic.

use std::path::Path;

use crate::streams::OutputStream;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use sentinel_connectors::kafka::{
    bare_read, create_topic, publish_all, Assignment, KafkaOutput, KafkaSettings, PartitionReader, TopicWriter,
};
use sentinel_dataflows::operators::JobStats;
use sentinel_dataflows::time::format_rfc3339_ms;
use serde_json::{json, Value};

use super::bench::{builtin_spec, median, trace_file, BenchGuards};
use super::produce::read_lines;
use crate::io::OutputTarget;
use crate::job::{self, InputSpec};
use crate::kafka_input::KafkaInput;

/// The topics of one benchmark run, all fresh.
struct BenchTopics {
    input: String,
    idle: String,
    outputs: Vec<(OutputStream, String)>,
    checkpoints: String,
}

impl BenchTopics {
    fn create(settings: &KafkaSettings) -> Result<Self, String> {
        let run = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(|e| e.to_string())?
            .as_millis();
        let name = |what: &str| format!("bench-{run}-{what}");
        let t = BenchTopics {
            input: name("in"),
            idle: name("idle"),
            outputs: crate::streams::OUTPUTS
                .iter()
                .map(|s| (s.stream, name(s.name)))
                .collect(),
            checkpoints: name("checkpoints"),
        };
        create_topic(settings, &t.input, 4)?;
        create_topic(settings, &t.idle, 4)?;
        create_topic(settings, &t.checkpoints, 1)?;
        for (_, topic) in &t.outputs {
            create_topic(settings, topic, 4)?;
        }
        Ok(t)
    }

    fn output(&self, stream: OutputStream) -> &str {
        self.outputs.iter().find(|(s, _)| *s == stream).map_or("", |(_, t)| t)
    }

    /// A config file naming these topics, for child processes.
    fn config(&self, dir: &Path, settings: &KafkaSettings, input: &str) -> Result<std::path::PathBuf, String> {
        let builtin = crate::config::DEFAULT_CONFIG;
        let detectors = &builtin[builtin.find("\ndetectors:").unwrap_or(0)..];
        let text = format!(
            "kafka:\n  brokers: {}\n  topics: [{input}]\n  group_id: bench-{input}\n  checkpoint_topic: {}\n  output_topics: {{anomalies: {}, deadletter: {}, aggregates: {}, decisions: {}}}\n{detectors}",
            settings.brokers,
            self.checkpoints,
            self.output(OutputStream::Anomalies),
            self.output(OutputStream::DeadLetters),
            self.output(OutputStream::Aggregates),
            self.output(OutputStream::Decisions),
        );
        let path = dir.join(format!("{input}.yaml"));
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(path)
    }
}

/// Runs the whole job in this process on the input topic until caught up; events/s.
fn job_rate(settings: &KafkaSettings, topics: &BenchTopics, workers: usize, round: usize) -> Result<f64, String> {
    let group = format!("{}-job-w{workers}-r{round}", topics.input);
    let input = KafkaInput::plan(
        settings.clone(),
        group,
        std::slice::from_ref(&topics.input),
        topics.checkpoints.clone(),
        true,
    )?;
    let output = OutputTarget::Kafka {
        settings: settings.clone(),
        topics: topics.outputs.clone(),
    };
    let spec = builtin_spec(InputSpec::Kafka(input), output, BenchGuards::Rules)?;
    let stats = Arc::new(JobStats::new(workers));
    let outcome = job::run(timely::Config::process(workers), Arc::clone(&stats), spec)?;
    Ok(stats.records_in.load(Ordering::Relaxed) as f64 / outcome.elapsed.as_secs_f64())
}

fn spawn_job(config: &Path, workers: usize) -> Result<Child, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    Command::new(exe)
        .args(["run", "--no-progress", "--input", "kafka", "--output", "kafka", "-w"])
        .arg(workers.to_string())
        .arg("--config")
        .arg(config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("starting the job: {e}"))
}

/// CPU seconds (user + system) a process has used so far.
fn cpu_seconds(pid: u32) -> Result<f64, String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).map_err(|e| e.to_string())?;
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    Ok((ticks(11) + ticks(12)) / 100.0)
}

/// CPU of the job, as a share of one core, over `secs` with no traffic on its input.
fn idle_cpu(
    dir: &Path,
    settings: &KafkaSettings,
    topics: &BenchTopics,
    workers: usize,
    secs: u64,
) -> Result<f64, String> {
    let config = topics.config(dir, settings, &topics.idle)?;
    let mut child = spawn_job(&config, workers)?;
    // Past start-up (metadata, offsets, connections) before measuring.
    std::thread::sleep(Duration::from_secs(5));
    let before = cpu_seconds(child.id())?;
    let start = Instant::now();
    std::thread::sleep(Duration::from_secs(secs));
    let used = cpu_seconds(child.id())? - before;
    let share = used / start.elapsed().as_secs_f64();
    let _ = child.kill();
    let _ = child.wait();
    Ok(share)
}

/// Produce-to-readable latency of per-event outputs at `rate` events/s for `secs`: one event in
/// a hundred is malformed and carries its send time, and its dead letter is read back from the
/// output topic. Returns the latency histogram (µs) and how many were measured.
fn per_event_latency(
    dir: &Path,
    settings: &KafkaSettings,
    topics: &BenchTopics,
    workers: usize,
    rate: f64,
    secs: u64,
) -> Result<Histogram<u64>, String> {
    let latency_topic = format!("{}-latency", topics.input);
    create_topic(settings, &latency_topic, 4)?;
    let config = topics.config(dir, settings, &latency_topic)?;
    let mut child = spawn_job(&config, workers)?;
    let epoch = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));

    // Reads dead letters back and measures each one's age.
    let reader_settings = settings.clone();
    let dead_topic = topics.output(OutputStream::DeadLetters).to_owned();
    let reader_stop = Arc::clone(&stop);
    let reader = std::thread::spawn(move || -> Result<Histogram<u64>, String> {
        let partitions: Vec<Assignment> = (0..4)
            .map(|p| Assignment {
                topic: dead_topic.clone(),
                partition: p,
                start: None,
                fetch_from: None,
                end_at_start: i64::MAX,
            })
            .collect();
        let mut reader = PartitionReader::open(&reader_settings, "bench-latency-reader", &partitions, Arc::new(|| {}))?;
        let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).map_err(|e| e.to_string())?;
        while !reader_stop.load(Ordering::Relaxed) {
            reader.read(4096, &mut |rec| {
                let now = epoch.elapsed().as_micros() as u64;
                let sent = serde_json::from_slice::<Value>(rec.payload).ok().and_then(|d| {
                    let original = d["original"].as_str()?.to_owned();
                    let at = original.find("\"bench_sent_us\":")? + 16;
                    original[at..]
                        .split(|c: char| !c.is_ascii_digit())
                        .next()?
                        .parse::<u64>()
                        .ok()
                });
                if let Some(sent) = sent {
                    let _ = hist.record(now.saturating_sub(sent).max(1));
                }
                true
            });
            std::thread::sleep(Duration::from_micros(200));
        }
        Ok(hist)
    });

    // Produces at `rate`, in 1 ms ticks, events stamped with the current time.
    std::thread::sleep(Duration::from_secs(2));
    let output = KafkaOutput::create(settings)?;
    let mut writer = TopicWriter::new(output, &latency_topic, Arc::new(|| {}));
    let start = Instant::now();
    let mut sent = 0u64;
    while start.elapsed() < Duration::from_secs(secs) {
        let due = (start.elapsed().as_secs_f64() * rate) as u64;
        while sent < due {
            let payload = if sent.is_multiple_of(100) {
                format!("{{\"bench_sent_us\":{}, \"truncated", epoch.elapsed().as_micros())
            } else {
                let now_ms = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_err(|e| e.to_string())?
                    .as_millis() as u64;
                format!(
                    r#"{{"event_id":"lat-{sent}","timestamp":"{}","event_type":"llm.response","application_id":"app-{}","tenant_id":"t-{}","data":{{"model":"model-{}","prompt_tokens":100,"completion_tokens":50,"latency_ms":300.0,"cost":0.001,"status":"success"}},"metadata":{{"user_id":"user-{}"}}}}"#,
                    format_rfc3339_ms(now_ms),
                    sent % 6,
                    sent % 10,
                    sent % 4,
                    sent % 5000
                )
            };
            writer.send(format!("{}", sent % 64).as_bytes(), payload.as_bytes(), 0);
            sent += 1;
        }
        writer.pump();
        std::thread::sleep(Duration::from_millis(1));
    }
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, Ordering::Relaxed);
    let hist = reader.join().map_err(|_| "latency reader panicked".to_owned())??;
    let _ = child.kill();
    let _ = child.wait();
    Ok(hist)
}

/// What `sentinel bench kafka` runs.
pub struct KafkaBench {
    /// Bootstrap servers.
    pub brokers: String,
    /// Events in the trace.
    pub events: u64,
    /// Worker counts to measure.
    pub workers: Vec<usize>,
    /// Rounds.
    pub repeat: usize,
    /// Seconds of traffic for the latency measurement.
    pub latency_secs: u64,
    /// Events/s for the latency measurement (default: half the best job rate).
    pub latency_rate: Option<f64>,
    /// Seconds of the idle CPU measurement.
    pub idle_secs: u64,
}

/// Entry point of `sentinel bench kafka`.
pub fn kafka(dir: &Path, bench: &KafkaBench) -> Result<(), String> {
    let KafkaBench {
        events,
        repeat,
        latency_secs,
        latency_rate,
        idle_secs,
        ..
    } = *bench;
    let workers = &bench.workers;
    let settings = KafkaSettings {
        brokers: bench.brokers.clone(),
        ..KafkaSettings::default()
    };
    let trace = trace_file(dir, events, 0)?;
    let topics = BenchTopics::create(&settings)?;
    let lines = read_lines(&trace)?;
    let started = Instant::now();
    let produced = publish_all(&settings, &topics.input, 4, lines.iter().map(Vec::as_slice))?;
    drop(lines);
    println!(
        "produced {produced} events to {} (4 partitions) in {:.1} s",
        topics.input,
        started.elapsed().as_secs_f64()
    );

    let mut bare_rates = Vec::new();
    let mut job_rates: Vec<Vec<f64>> = workers.iter().map(|_| Vec::new()).collect();
    for round in 0..repeat.max(1) {
        let bare = bare_read(&settings, &topics.input, &format!("{}-bare-{round}", topics.input))?;
        let bare_rate = bare.records as f64 / bare.elapsed.as_secs_f64();
        bare_rates.push(bare_rate);
        let mut line = format!("  round {round}: bare consumer {bare_rate:.0}/s");
        for (k, &w) in workers.iter().enumerate() {
            let rate = job_rate(&settings, &topics, w, round)?;
            job_rates[k].push(rate);
            line += &format!(", job -w {w} {rate:.0}/s");
        }
        eprintln!("{line}");
    }
    let bare = median(bare_rates);
    let mut rows = Vec::new();
    for (k, &w) in workers.iter().enumerate() {
        let rate = median(std::mem::take(&mut job_rates[k]));
        println!(
            "-w {w}: job {rate:.0} events/s through the broker, bare consumer {bare:.0}/s, ratio {:.2}",
            rate / bare
        );
        rows.push(json!({"workers": w, "job_events_per_sec": rate, "job_over_bare": rate / bare}));
    }
    // Latency (at half the best rate, unless told) and idle CPU, with the worker count that
    // went fastest.
    let (best_workers, max_rate) = rows
        .iter()
        .filter_map(|r| Some((r["workers"].as_u64()? as usize, r["job_events_per_sec"].as_f64()?)))
        .fold((1, 0.0), |best, r| if r.1 > best.1 { r } else { best });
    let rate = latency_rate.unwrap_or(max_rate / 2.0);
    let hist = per_event_latency(dir, &settings, &topics, best_workers, rate, latency_secs)?;
    let (p50, p99) = (
        hist.value_at_quantile(0.5) as f64 / 1000.0,
        hist.value_at_quantile(0.99) as f64 / 1000.0,
    );
    println!(
        "per-event output latency at {rate:.0} events/s (-w {best_workers}): p50 {p50:.1} ms, p99 {p99:.1} ms over {} samples (produce -> dead letter readable)",
        hist.len()
    );
    let cpu = idle_cpu(dir, &settings, &topics, best_workers, idle_secs)?;
    println!(
        "CPU with no traffic (-w {best_workers}): {:.2}% of a core over {idle_secs} s",
        cpu * 100.0
    );
    println!(
        "{}",
        json!({"bench": "kafka", "events": events, "repeat": repeat, "bare_consumer_events_per_sec": bare, "rows": rows,
            "latency_rate_events_per_sec": rate, "latency_workers": best_workers, "latency_p50_ms": p50, "latency_p99_ms": p99, "latency_samples": hist.len(),
            "idle_cpu_share_of_core": cpu})
    );
    Ok(())
}
