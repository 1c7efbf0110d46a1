//! End to end through a real Kafka-API broker on loopback (`scripts/kafka.sh start`, which
//! `scripts/test.sh` runs first). Each test uses its own topics and consumer group, so tests run
//! in parallel against one broker. `SENTINEL_TEST_BROKERS` points them elsewhere.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{ids, sentinel, ServedJob};
use serde_json::Value;

fn brokers() -> String {
    std::env::var("SENTINEL_TEST_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into())
}

/// A name no other test (or earlier run against the same broker) uses.
fn unique(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("t{}-{nanos}-{name}", std::process::id())
}

/// Creates a topic with the broker's own tool.
fn create_topic(name: &str, partitions: u32) {
    let tansu = std::env::var("TANSU").unwrap_or_else(|_| {
        let home = std::env::var("HOME").unwrap_or_default();
        let local = PathBuf::from(home).join(".cargo/bin/tansu");
        if local.exists() {
            local.display().to_string()
        } else {
            "tansu".into()
        }
    });
    let out = Command::new(&tansu)
        .args(["topic", "create", name, "--partitions", &partitions.to_string()])
        .args(["--broker", &format!("tcp://{}", brokers())])
        .output()
        .unwrap_or_else(|e| panic!("running {tansu} (start the broker with scripts/kafka.sh start): {e}"));
    assert!(
        out.status.success(),
        "creating topic {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Topics and a config file for one test: input with `partitions`, and the output topics.
struct Topics {
    input: String,
    anomalies: String,
    deadletter: String,
    aggregates: String,
    decisions: String,
    judgements: String,
    anomaly_events: String,
    checkpoints: String,
    state: String,
    group: String,
    config: PathBuf,
}

impl Topics {
    fn create(dir: &Path, name: &str, partitions: u32, job: &str) -> Topics {
        let t = Topics::input_only(dir, name, partitions, job);
        for out in [&t.anomalies, &t.deadletter, &t.aggregates, &t.decisions] {
            create_topic(out, 2);
        }
        create_topic(&t.checkpoints, 1);
        create_topic(&t.state, 2);
        t
    }

    /// Names every topic and writes the config, but creates only the input topic.
    fn input_only(dir: &Path, name: &str, partitions: u32, job: &str) -> Topics {
        let base = unique(name);
        let t = Topics {
            input: format!("{base}-in"),
            anomalies: format!("{base}-anomalies"),
            deadletter: format!("{base}-deadletter"),
            aggregates: format!("{base}-aggregates"),
            decisions: format!("{base}-decisions"),
            judgements: format!("{base}-judgements"),
            anomaly_events: format!("{base}-anomaly-events"),
            checkpoints: format!("{base}-checkpoints"),
            state: format!("{base}-state"),
            group: format!("{base}-group"),
            config: dir.join(format!("{name}.yaml")),
        };
        create_topic(&t.input, partitions);
        // The built-in detectors and the shipped prompt classifier, with this test's topics
        // (those of the action streams too: `serve` reads them, and other tests write them).
        let builtin = include_str!("../examples/sentinel.yaml");
        let detectors = &builtin[builtin.find("\ndetectors:").unwrap()..];
        let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/prompt-attack-v1.bin");
        let config = format!(
            "job:\n{job}\nwindows: [1m, 5m, 1h]\nkafka:\n  brokers: {}\n  group_id: {}\n  topics: [{}]\n  checkpoint_topic: {}\n  state_topic: {}\n  output_topics: {{anomalies: {}, deadletter: {}, aggregates: {}, decisions: {}, judgements: {}, anomaly_events: {}, actions: {base}-actions, alerts: {base}-alerts, incidents: {base}-incidents}}\n{detectors}\n  - id: prompt-injection-ml\n    type: ml\n    config:\n      model: {}\n",
            brokers(),
            t.group,
            t.input,
            t.checkpoints,
            t.state,
            t.anomalies,
            t.deadletter,
            t.aggregates,
            t.decisions,
            t.judgements,
            t.anomaly_events,
            model.display()
        );
        std::fs::write(&t.config, config).unwrap();
        t
    }

    fn produce(&self, trace: &Path) {
        self.produce_to(trace, "1000");
    }

    /// Publishes `trace` round-robin over the first `partitions` partitions of the input.
    fn produce_to(&self, trace: &Path, partitions: &str) {
        sentinel(&[
            "produce",
            trace.to_str().unwrap(),
            "--brokers",
            &brokers(),
            "--topic",
            &self.input,
            "--partitions",
            partitions,
        ]);
    }

    /// The arguments of a run over the input topic until caught up, with its summary file.
    fn run_args<'a>(&'a self, summary: &'a Path) -> Vec<&'a str> {
        vec![
            "--config",
            self.config.to_str().unwrap(),
            "--input",
            "kafka",
            "--output",
            "kafka",
            "--exit-when-caught-up",
            "--summary",
            summary.to_str().unwrap(),
        ]
    }

    /// Runs the job on the input topic until caught up; returns the summary.
    fn run(&self, dir: &Path, extra: &[&str]) -> Value {
        let summary = dir.join(format!("{}.summary.json", self.group));
        let mut args = vec!["run", "--no-progress"];
        args.extend(self.run_args(&summary));
        args.extend_from_slice(extra);
        sentinel(&args);
        common::read_json(&summary)
    }
}

fn consume(topic: &str) -> Vec<Value> {
    let out = sentinel(&["consume", topic, "--brokers", &brokers()]);
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON record"))
        .collect()
}

fn gen_trace(dir: &Path, events: &str, seed: &str) -> PathBuf {
    let trace = dir.join(format!("trace-{seed}.jsonl"));
    sentinel(&[
        "gen-trace",
        "--events",
        events,
        "--rate",
        "9",
        "--seed",
        seed,
        "--out",
        trace.to_str().unwrap(),
    ]);
    trace
}

/// Adds two actors whose behavioral state lasts the whole trace, so any restart falls inside
/// it: a session whose cost crosses its limit near the end while its user keeps switching
/// models, and an agent repeating one tool call from start to end. Without their state
/// restored, a restart re-reports the ongoing conditions and finds the cost runaway late.
fn with_long_lived_actors(trace: &Path) -> PathBuf {
    use sentinel_dataflows::time::{format_rfc3339_ms, parse_rfc3339_ms};
    let text = std::fs::read_to_string(trace).unwrap();
    let stamp = |line: &str| -> String {
        serde_json::from_str::<Value>(line).unwrap()["timestamp"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let mut lines: Vec<(String, String)> = text.lines().map(|l| (stamp(l), l.to_owned())).collect();
    let first = parse_rfc3339_ms(&lines.iter().map(|l| l.0.clone()).min().unwrap()).unwrap();
    let last = parse_rfc3339_ms(&lines.iter().map(|l| l.0.clone()).max().unwrap()).unwrap();
    let (n, margin) = (240u64, 60_000);
    let step = (last - first - 2 * margin) / n;
    let models = [
        "gpt-4o",
        "gpt-4o-mini",
        "claude-3-5-sonnet",
        "claude-3-haiku",
        "llama-3-70b",
        "mistral-large",
    ];
    for i in 0..n {
        let at = format_rfc3339_ms(first + margin + i * step);
        let response = serde_json::json!({
            "event_id": format!("long-r{i}"), "timestamp": at, "event_type": "llm.response",
            "application_id": "chatbot-prod", "tenant_id": "acme-corp",
            "data": {"model": models[i as usize % models.len()], "prompt_tokens": 100,
                     "completion_tokens": 50, "total_tokens": 150, "latency_ms": 800.0,
                     "cost": 0.045, "status": "success"},
            "metadata": {"user_id": "long-user", "session_id": "long-session"}
        });
        let tool = serde_json::json!({
            "event_id": format!("loop-t{i}"), "timestamp": format_rfc3339_ms(first + margin + i * step + step / 2),
            "event_type": "agent.tool_call", "application_id": "chatbot-prod", "tenant_id": "acme-corp",
            "data": {"tool": {"name": "search", "args": {"q": "the same query"}}},
            "metadata": {"user_id": "loop-user", "session_id": "loop-session"}
        });
        for ev in [response, tool] {
            lines.push((ev["timestamp"].as_str().unwrap().to_owned(), ev.to_string()));
        }
    }
    lines.sort_by(|a, b| a.0.cmp(&b.0));
    let out = trace.with_extension("long.jsonl");
    let body: String = lines.into_iter().map(|(_, l)| l + "\n").collect();
    std::fs::write(&out, body).unwrap();
    out
}

fn file_mode_ids(dir: &Path, trace: &Path, config: &Path) -> BTreeSet<String> {
    let out = dir.join("file-out");
    common::run_file_job(config, trace, &out, &[]);
    let text = std::fs::read_to_string(out.join("anomalies.jsonl")).unwrap();
    text.lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

#[test]
fn kafka_run_finds_the_same_anomalies_as_file_mode() {
    let dir = tempfile::tempdir().unwrap();
    let trace = gen_trace(dir.path(), "120000", "7");
    let topics = Topics::create(dir.path(), "same", 4, "  allowed_lateness: 5s");
    let expected = file_mode_ids(dir.path(), &trace, &topics.config);
    assert!(
        expected.len() >= 5,
        "the trace should hold injected anomalies: {expected:?}"
    );

    topics.produce(&trace);
    let summary = topics.run(dir.path(), &["-w", "2"]);
    assert_eq!(summary["records_in"], 120_000);
    assert_eq!(summary["dead_lettered"], 0);
    let anomalies = consume(&topics.anomalies);
    assert_eq!(anomalies.len(), expected.len(), "one record per anomaly");
    // Every anomaly and every decision (one per event that is not an `llm.error`) acknowledged.
    let decisions = std::fs::read_to_string(&trace)
        .unwrap()
        .lines()
        .filter(|l| !l.contains("\"llm.error\""))
        .count();
    // Baselines are checkpointed too: one record per detector and key a window changed.
    let snapshots = consume(&topics.state);
    assert!(!snapshots.is_empty());
    assert!(snapshots
        .iter()
        .all(|s| s["state_key"].as_str().unwrap().starts_with(&topics.group)));
    // And the action records the built-in config's actions planned.
    let acted: u64 = summary["actions_by_stream"]
        .as_array()
        .unwrap()
        .iter()
        .map(|pair| pair[1].as_u64().unwrap())
        .sum();
    assert_eq!(
        summary["delivered"],
        (expected.len() + decisions + snapshots.len()) as u64 + acted,
        "every output acknowledged"
    );
    assert_eq!(summary["delivery_errors"], 0);
    assert_eq!(ids(&anomalies), expected);
    // The learned classifier ran in the input guard in both modes, with the same verdicts.
    let learned = |decisions: Vec<Value>| -> BTreeSet<String> {
        decisions
            .into_iter()
            .filter(common::flagged_by_classifier)
            .map(|d| d["event_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let from_file = learned(common::read_jsonl(&dir.path().join("file-out/decisions.jsonl")));
    assert!(!from_file.is_empty(), "the classifier flags the trace's injections");
    assert_eq!(learned(consume(&topics.decisions)), from_file);
    // Keyed by entity: every record of one entity sits in one partition, so per-entity order holds.
    assert!(anomalies.iter().all(|a| a["affected_entity"]["id"].is_string()));
}

#[test]
fn a_broker_with_only_the_input_topic_is_enough() {
    let dir = tempfile::tempdir().unwrap();
    let trace = gen_trace(dir.path(), "20000", "5");
    let topics = Topics::input_only(dir.path(), "bare", 2, "  allowed_lateness: 5s");
    topics.produce(&trace);
    // Source and outputs from the config alone (`outputs.target: kafka`), no flags.
    let mut config = std::fs::read_to_string(&topics.config).unwrap();
    config.push_str("source: {type: kafka, exit_when_caught_up: true}\noutputs: {target: kafka}\n");
    std::fs::write(&topics.config, config).unwrap();
    let summary = dir.path().join("bare.summary.json");
    sentinel(&[
        "run",
        "--no-progress",
        "--config",
        topics.config.to_str().unwrap(),
        "--summary",
        summary.to_str().unwrap(),
    ]);
    let summary = common::read_json(&summary);
    assert_eq!(summary["records_in"], 20_000);
    assert_eq!(summary["delivery_errors"], 0);
    // The job created its output topics and its checkpoint topic, and wrote to them.
    let anomalies = consume(&topics.anomalies);
    assert_eq!(anomalies.len() as u64, summary["anomalies"].as_u64().unwrap());
    assert!(!consume(&topics.decisions).is_empty());
    assert!(!consume(&topics.checkpoints).is_empty(), "resume points written");
    // A second run with `--brokers` resumes from them (behind the windows still open at the
    // end) and emits nothing new: what it emits again carries the same ids.
    topics.run(dir.path(), &["--brokers", &brokers()]);
    assert_eq!(ids(&consume(&topics.anomalies)), ids(&anomalies));
}

#[test]
fn malformed_records_reach_the_dead_letter_topic_with_reasons() {
    let dir = tempfile::tempdir().unwrap();
    // One partition, so the late record is late against a known history.
    let (lines, reasons) = common::bad_input_lines(40, 20_000);
    let mut expected: BTreeMap<&str, u64> = BTreeMap::new();
    for reason in reasons {
        *expected.entry(reason).or_default() += 1;
    }
    let big = lines.iter().find(|l| l.len() > 20_000).unwrap().clone();
    let trace = dir.path().join("bad.jsonl");
    std::fs::write(&trace, lines.join(&b"\n"[..])).unwrap();

    let topics = Topics::create(dir.path(), "bad", 1, "  max_event_bytes: 8192");
    topics.produce(&trace);
    let summary = topics.run(dir.path(), &["-w", "2"]);
    let total = lines.len() as u64;
    assert_eq!(summary["records_in"], total);
    assert_eq!(summary["balanced"], true);

    let dead = consume(&topics.deadletter);
    let mut reasons: BTreeMap<&str, u64> = BTreeMap::new();
    for d in &dead {
        *reasons.entry(d["reason"].as_str().unwrap()).or_default() += 1;
        assert_eq!(d["position"]["source"], topics.input.as_str(), "{d}");
        assert_eq!(d["position"]["partition"], 0, "{d}");
        assert!(d["position"]["offset"].as_u64().unwrap() >= 40, "{d}");
    }
    assert_eq!(reasons, expected);
    assert_eq!(summary["events_decoded"].as_u64().unwrap() + dead.len() as u64, total);
    // The oversized record is kept, cut to the limit, with its true length.
    let big_letter = dead.iter().find(|d| d["reason"] == "too_large").unwrap();
    assert_eq!(big_letter["original_len"], big.len());
}

/// Every distinct record of `topic` by id; copies of one id must agree on `fields`.
fn distinct_by_id(records: &[Value], fields: &[&str]) -> BTreeMap<String, Value> {
    let mut by_id: BTreeMap<String, Value> = BTreeMap::new();
    for r in records {
        let id = r["id"].as_str().unwrap().to_owned();
        if let Some(first) = by_id.get(&id) {
            for f in fields {
                assert_eq!(
                    first[*f], r[*f],
                    "two records with id {id} differ in {f}:\n{first}\n{r}"
                );
            }
        } else {
            by_id.insert(id, r.clone());
        }
    }
    by_id
}

/// Starts a paced run (`--speed`) over the input topic, outputs to Kafka, with `extra` flags.
fn spawn_paced(topics: &Topics, speed: &str, extra: &[&str]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_sentinel"))
        .args(["run", "--config", topics.config.to_str().unwrap()])
        .args(["--input", "kafka", "--output", "kafka", "--no-progress"])
        .args(["--speed", speed, "-w", "2"])
        .args(extra)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// Commits (and checkpoints) every 200 ms, so a kill lands between recent resume points.
fn commit_often(topics: &Topics) {
    let config = std::fs::read_to_string(&topics.config)
        .unwrap()
        .replace("kafka:\n", "kafka:\n  commit_interval: 200ms\n");
    std::fs::write(&topics.config, config).unwrap();
}

#[test]
fn a_killed_job_resumes_from_committed_offsets_without_losing_events() {
    let dir = tempfile::tempdir().unwrap();
    let events = 200_000u64;
    let trace = gen_trace(dir.path(), &events.to_string(), "11");
    let topics = Topics::create(dir.path(), "restart", 4, "  allowed_lateness: 5s");
    commit_often(&topics);
    topics.produce(&trace);

    // First run: paced (~12 s of wall time in all), killed once it has committed a resume point
    // past the start of some partition.
    let mut child = spawn_paced(&topics, "1800", &["--aggregates"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let moved = |c: &Value| c["offset"].as_i64().is_some_and(|o| o > 0);
    while !consume(&topics.checkpoints).iter().any(moved) {
        assert!(
            std::time::Instant::now() < deadline,
            "no checkpoint past the start within 60 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    std::thread::sleep(std::time::Duration::from_secs(1));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the first run ended before it was killed"
    );
    child.kill().unwrap(); // SIGKILL: no flush, no final commit
    child.wait().unwrap();
    let before_restart = consume(&topics.aggregates).len();
    assert!(before_restart > 0, "the first run emitted nothing before it was killed");

    // Second run: resumes from the committed offsets and catches up.
    let summary = topics.run(dir.path(), &["-w", "2", "--aggregates"]);
    let reread = summary["records_in"].as_u64().unwrap();
    assert!(
        reread > 0 && reread < events,
        "the restart should resume mid-stream, read {reread}"
    );

    // Every event is in exactly one application window of each width; copies of a window
    // emitted by both runs are identical.
    let counts = [
        "requests",
        "errors",
        "request_events",
        "tool_calls",
        "prompt_tokens",
        "total_tokens",
    ];
    let aggregates = distinct_by_id(&consume(&topics.aggregates), &counts);
    let dead = consume(&topics.deadletter);
    for width in [60_000u64, 3_600_000] {
        let seen: u64 = aggregates
            .values()
            .filter(|a| a["dimension"] == "application" && a["width_ms"] == width)
            .map(|a| {
                ["requests", "request_events", "tool_calls"]
                    .iter()
                    .map(|f| a[*f].as_u64().unwrap())
                    .sum::<u64>()
            })
            .sum();
        assert_eq!(
            seen + dead.len() as u64,
            events,
            "width {width}: events counted in windows + dead letters"
        );
    }
    // Anomalies: re-emitted ones carry the ids they had.
    let anomalies = consume(&topics.anomalies);
    let mut per_window: BTreeMap<(String, String, String), BTreeSet<String>> = BTreeMap::new();
    for a in &anomalies {
        let key = (
            a["detector_id"].as_str().unwrap().to_owned(),
            a["affected_entity"]["id"].as_str().unwrap().to_owned(),
            a["context"]["window_end"].as_str().unwrap().to_owned(),
        );
        per_window
            .entry(key)
            .or_default()
            .insert(a["id"].as_str().unwrap().to_owned());
    }
    assert!(
        per_window.values().all(|ids| ids.len() == 1),
        "one id per detector, entity and window"
    );
}

#[test]
fn two_processes_share_the_partitions_and_find_what_one_process_finds() {
    let dir = tempfile::tempdir().unwrap();
    let trace = gen_trace(dir.path(), "100000", "23");
    let single = Topics::create(dir.path(), "single", 4, "  allowed_lateness: 5s");
    single.produce(&trace);
    single.run(dir.path(), &["-w", "2"]);
    let expected = ids(&consume(&single.anomalies));
    assert!(
        expected.len() >= 3,
        "the trace should hold injected anomalies: {expected:?}"
    );

    let cluster = Topics::create(dir.path(), "cluster", 4, "  allowed_lateness: 5s");
    cluster.produce(&trace);
    let hosts = dir.path().join("hosts.txt");
    common::two_process_hosts(&hosts, 1);
    let summaries = [dir.path().join("c0.json"), dir.path().join("c1.json")];
    let spawn = |process: usize| {
        let mut args = cluster.run_args(&summaries[process]);
        args.extend(["-w", "1"]);
        common::spawn_cluster_process(&hosts, &process.to_string(), &args)
    };
    let one = spawn(1);
    let zero = spawn(0);
    common::wait_all(&mut [zero, one], std::time::Duration::from_secs(180));

    let anomalies = consume(&cluster.anomalies);
    assert_eq!(
        anomalies.len(),
        expected.len(),
        "each anomaly written once, by one process"
    );
    assert_eq!(ids(&anomalies), expected);
    let read: Vec<u64> = summaries
        .iter()
        .map(|s| common::read_json(s)["records_in"].as_u64().unwrap())
        .collect();
    assert_eq!(
        read.iter().sum::<u64>(),
        100_000,
        "the processes share the partitions without overlap"
    );
    assert!(read.iter().all(|r| *r > 0), "both processes read: {read:?}");
}

#[test]
fn empty_partitions_do_not_hold_windows_back() {
    let dir = tempfile::tempdir().unwrap();
    let trace = gen_trace(dir.path(), "20000", "5");
    let topics = Topics::create(dir.path(), "idle", 4, "  allowed_lateness: 5s");
    topics.produce_to(&trace, "2"); // partitions 2 and 3 stay empty
                                    // No --exit-when-caught-up: windows can only close if the empty partitions are left out of
                                    // the watermark.
    let mut child = Command::new(env!("CARGO_BIN_EXE_sentinel"))
        .args(["run", "--config", topics.config.to_str().unwrap()])
        .args([
            "--input",
            "kafka",
            "--output",
            "kafka",
            "--aggregates",
            "--no-progress",
            "-w",
            "2",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut aggregates = Vec::new();
    while aggregates.is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(300));
        aggregates = consume(&topics.aggregates);
    }
    let still_running = child.try_wait().unwrap().is_none();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        still_running,
        "the job should keep running without --exit-when-caught-up"
    );
    assert!(
        !aggregates.is_empty(),
        "no window closed while two partitions were empty"
    );
}

#[test]
fn bench_kafka_runs_through_the_broker() {
    let out = sentinel(&[
        "bench",
        "kafka",
        "--brokers",
        &brokers(),
        "--events",
        "10000",
        "--workers",
        "1",
        "--repeat",
        "1",
        "--latency-secs",
        "1",
        "--idle-secs",
        "1",
    ]);
    let stdout = String::from_utf8(out.stdout).unwrap();
    let record: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(record["bench"], "kafka");
    assert!(record["bare_consumer_events_per_sec"].as_f64().unwrap() > 0.0);
    assert!(record["rows"][0]["job_events_per_sec"].as_f64().unwrap() > 0.0);
    assert!(record["latency_samples"].as_u64().unwrap() > 0);
}

/// The newest committed offset of every partition, summed (0 before any checkpoint).
fn committed_total(topics: &Topics) -> i64 {
    let mut latest: BTreeMap<(String, i64), i64> = BTreeMap::new();
    for c in consume(&topics.checkpoints) {
        let key = (
            c["topic"].as_str().unwrap().to_owned(),
            c["partition"].as_i64().unwrap(),
        );
        latest.insert(key, c["offset"].as_i64().unwrap());
    }
    latest.values().sum()
}

/// Starts a paced run and kills it with SIGKILL once the committed offsets have moved `by`
/// records past `from`, plus `linger` (so the kill lands between checkpoints).
fn run_and_kill(topics: &Topics, from: i64, by: i64, linger: std::time::Duration) -> i64 {
    let mut child = spawn_paced(topics, "2400", &[]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    let mut committed = committed_total(topics);
    while committed < from + by {
        assert!(
            std::time::Instant::now() < deadline,
            "the run made no progress within 90 s"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it was killed"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
        committed = committed_total(topics);
    }
    std::thread::sleep(linger);
    child.kill().unwrap(); // SIGKILL: no flush, no final commit
    child.wait().unwrap();
    committed
}

#[test]
fn two_sigkills_lose_no_detection() {
    let dir = tempfile::tempdir().unwrap();
    let events = 240_000i64;
    let trace = with_long_lived_actors(&gen_trace(dir.path(), &events.to_string(), "29"));
    let events = events + 480;
    let topics = Topics::create(dir.path(), "twokills", 4, "  allowed_lateness: 5s");
    commit_often(&topics);
    // What an uninterrupted run finds, with its scores.
    let out = dir.path().join("uninterrupted");
    common::run_file_job(&topics.config, Path::new(&trace), &out, &[]);
    let scores = |records: &[Value]| -> BTreeMap<String, f64> {
        distinct_by_id(records, &["score", "metrics"])
            .into_iter()
            .map(|(id, a)| (id, a["score"].as_f64().unwrap()))
            .collect()
    };
    // Every detection: statistical (baselines), behavioral (actor state) and content rules.
    let uninterrupted = common::read_jsonl(&out.join("anomalies.jsonl"));
    let expected = scores(&uninterrupted);
    assert!(
        expected.len() >= 10,
        "the trace should hold anomalies: {}",
        expected.len()
    );
    let long_lived: BTreeSet<String> = uninterrupted
        .iter()
        .filter(|a| a["affected_entity"]["id"].as_str().unwrap().starts_with("l"))
        .map(|a| {
            format!(
                "{} {}",
                a["detector_id"].as_str().unwrap(),
                a["affected_entity"]["id"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        long_lived,
        BTreeSet::from(
            [
                "agent-loop loop-session",
                "cost-runaway long-session",
                "model-switching long-user"
            ]
            .map(String::from)
        ),
        "each long-lived condition is reported once"
    );

    topics.produce(&trace);
    let first = run_and_kill(&topics, 0, events / 5, std::time::Duration::from_millis(700));
    run_and_kill(&topics, first, events / 5, std::time::Duration::from_millis(1300));
    let summary = topics.run(dir.path(), &["-w", "2"]);
    assert!(
        summary["records_in"].as_i64().unwrap() < events,
        "the last run resumed mid-stream"
    );
    // Across the three runs: exactly the anomalies of the uninterrupted run, same scores
    // (copies re-emitted after a restart must match their first emission). Scores may differ
    // in the last bits from the file run: sums over partitions add in another order.
    let found = scores(&consume(&topics.anomalies));
    assert_eq!(found.keys().collect::<Vec<_>>(), expected.keys().collect::<Vec<_>>());
    for (id, score) in &found {
        assert!((score - expected[id]).abs() < 1e-9, "{id}: {score} vs {}", expected[id]);
    }
}

#[test]
fn sigterm_stops_gracefully_and_a_restart_emits_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let events = 200_000i64;
    let trace = with_long_lived_actors(&gen_trace(dir.path(), &events.to_string(), "31"));
    let events = events + 480;
    let topics = Topics::create(dir.path(), "sigterm", 4, "  allowed_lateness: 5s");
    topics.produce(&trace);
    let out = dir.path().join("uninterrupted");
    common::run_file_job(&topics.config, Path::new(&trace), &out, &[]);
    let expected = ids(&common::read_jsonl(&out.join("anomalies.jsonl")));

    let mut child = spawn_paced(&topics, "2400", &[]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    while committed_total(&topics) < events / 4 {
        assert!(std::time::Instant::now() < deadline, "no progress within 90 s");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let asked = std::time::Instant::now();
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(
            asked.elapsed() < std::time::Duration::from_secs(20),
            "no exit within 20 s of SIGTERM"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(exit.success(), "graceful stop exits 0: {exit:?}");
    assert!(committed_total(&topics) < events, "stopped mid-stream");

    topics.run(dir.path(), &["-w", "2"]);
    let all = consume(&topics.anomalies);
    let distinct_all = ids(&all);
    let mut seen = BTreeSet::new();
    let twice: Vec<String> = all
        .iter()
        .filter(|a| !seen.insert(a["id"].as_str().unwrap().to_owned()))
        .map(|a| format!("{} {}", a["detector_id"], a["context"]["window_end"]))
        .collect();
    assert_eq!(all.len(), distinct_all.len(), "no anomaly emitted twice: {twice:?}");
    let anomalies = all;
    let uninterrupted = common::read_jsonl(&out.join("anomalies.jsonl"));
    let describe = |set: &[Value], missing: &BTreeSet<String>| -> Vec<String> {
        set.iter()
            .filter(|a| !missing.contains(a["id"].as_str().unwrap()))
            .map(|a| {
                format!(
                    "{} {} {}",
                    a["detector_id"], a["affected_entity"]["id"], a["context"]["window_end"]
                )
            })
            .collect()
    };
    assert_eq!(
        ids(&anomalies),
        expected,
        "the same detections as an uninterrupted run: only after the stop {:?}, only uninterrupted {:?}",
        describe(&anomalies, &expected),
        describe(&uninterrupted, &ids(&anomalies))
    );
    let decisions = consume(&topics.decisions);
    let distinct: BTreeSet<&str> = decisions.iter().map(|d| d["event_id"].as_str().unwrap()).collect();
    assert_eq!(decisions.len(), distinct.len(), "no decision emitted twice");
}

#[test]
fn judges_work_from_kafka_and_a_replay_reads_their_journal_topic() {
    use sentinel_judges::loopback::{openai_reply, verdict, Answer, ProviderServer};
    let dir = tempfile::tempdir().unwrap();
    let trace = common::judged_trace(dir.path());
    let topics = Topics::input_only(dir.path(), "judges", 2, "  allowed_lateness: 5s");
    topics.produce(&trace);
    let server = ProviderServer::start(|_, _| Answer::ok(openai_reply(&verdict(0.97, 0.9).to_string(), "stop")));
    let mut config = std::fs::read_to_string(&topics.config).unwrap();
    config.push_str(&format!(
        "shadow_agents:\n  enabled: true\n  llm_provider: local\n  llm_model: judge-model\n  llm_base_url: {}\n",
        server.base_url()
    ));
    std::fs::write(&topics.config, config).unwrap();
    topics.run(dir.path(), &[]);
    let decisions = consume(&topics.decisions);
    let escalated: Vec<&Value> = decisions
        .iter()
        .filter(|d| d["shadow_agent_escalated"] == true)
        .collect();
    assert!(escalated.len() >= common::RISKY.len());
    for d in &escalated {
        let analyses = d["shadow_agent_analyses"].as_array().unwrap();
        assert!(
            !analyses.is_empty() && analyses.iter().all(|a| a["fallback_used"] == false),
            "{d}"
        );
    }
    let journal = consume(&topics.judgements);
    let analyses: usize = escalated
        .iter()
        .map(|d| d["shadow_agent_analyses"].as_array().unwrap().len())
        .sum();
    assert_eq!(journal.len(), analyses);
    assert!(!server.seen().is_empty());

    // A replay from the journal topic, by a new group into files, calls no one and decides
    // the same.
    let calls = server.seen().len();
    let out = dir.path().join("replay");
    sentinel(&[
        "run",
        "--no-progress",
        "--config",
        topics.config.to_str().unwrap(),
        "--input",
        "kafka",
        "--group",
        &format!("{}-replay", topics.group),
        "--exit-when-caught-up",
        "--output",
        &format!("file:{}", out.display()),
        "--judge-replay",
        "kafka",
    ]);
    assert_eq!(server.seen().len(), calls, "a replay made a call");
    let by_id = |ds: Vec<Value>| -> BTreeMap<String, Value> {
        ds.into_iter()
            .map(|d| (d["id"].as_str().unwrap().to_owned(), d))
            .collect()
    };
    let replayed = by_id(common::read_jsonl(&out.join("decisions.jsonl")));
    assert_eq!(replayed, by_id(decisions));
}

/// Every anomaly id a server lists, paging by offset.
fn listed_ids(http: &reqwest::blocking::Client, url: &str) -> BTreeSet<String> {
    listed_ids_where(http, url, "")
}

/// The ids `GET /api/v1/anomalies` lists with `filter` (`&status=resolved`), every page.
fn listed_ids_where(http: &reqwest::blocking::Client, url: &str, filter: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut offset = 0;
    loop {
        let page: Value = http
            .get(format!("{url}/api/v1/anomalies?limit=100&offset={offset}{filter}"))
            .send()
            .unwrap()
            .json()
            .unwrap();
        let rows = page["anomalies"].as_array().unwrap();
        seen.extend(rows.iter().map(|a| a["id"].as_str().unwrap().to_owned()));
        offset += rows.len();
        if rows.is_empty() || offset as u64 >= page["total"].as_u64().unwrap() {
            return seen;
        }
    }
}

fn change(http: &reqwest::blocking::Client, url: &str, id: &str, action: &str, body: Value) -> (u16, Value) {
    let resp = http
        .post(format!("{url}/api/v1/anomalies/{id}/{action}"))
        .json(&body)
        .send()
        .unwrap();
    (resp.status().as_u16(), resp.json().unwrap())
}

/// Polls `url` until anomaly `id` has `status`; returns it.
fn wait_for_status(http: &reqwest::blocking::Client, url: &str, id: &str, status: &str) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let anomaly: Value = http
            .get(format!("{url}/api/v1/anomalies/{id}"))
            .send()
            .unwrap()
            .json()
            .unwrap();
        if anomaly["status"] == status {
            return anomaly;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{url} never showed {id} {status}: {anomaly}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn serve_replicas_rebuild_from_the_topics_and_converge_on_lifecycle_changes() {
    let dir = tempfile::tempdir().unwrap();
    let trace = gen_trace(dir.path(), "120000", "11");
    let topics = Topics::create(dir.path(), "serve", 4, "  allowed_lateness: 5s");
    let expected = file_mode_ids(dir.path(), &trace, &topics.config);
    assert!(expected.len() >= 5, "the trace should raise anomalies: {expected:?}");
    topics.produce(&trace);
    // Without actions: a live Kafka source's idle partitions carry event time to the wall
    // clock, so every condition of the trace ends and the job resolves every anomaly; people's
    // changes need some left open. (The embedded test checks the job's resolutions.)
    topics.run(dir.path(), &["--no-actions"]);

    let kept = dir.path().join("replica-a.db");
    let mut a = ServedJob::replica(&topics.config, Some(&kept));
    let mut b = ServedJob::replica(&topics.config, None);
    let limit = std::time::Duration::from_secs(60);
    let first = a.wait_for_line("caught up", limit);
    assert!(!first.contains("after reading 0 records"), "{first}");
    b.wait_for_line("caught up", limit);
    let http = reqwest::blocking::Client::new();
    assert_eq!(
        listed_ids(&http, &a.url),
        expected,
        "replica a holds every anomaly of the run"
    );
    assert_eq!(listed_ids(&http, &b.url), expected, "and so does replica b");
    // And the run's decisions at the warn tier and above, each once, though the topic holds
    // them at least once.
    let flagged: Vec<Value> = common::read_jsonl(&dir.path().join("file-out/decisions.jsonl"))
        .into_iter()
        .filter(|d| d["tier"] != "allow")
        .collect();
    assert!(!flagged.is_empty(), "the trace holds attacks");
    for replica in [&a.url, &b.url] {
        let served = common::every_page(replica, "/api/v1/decisions", "decisions");
        assert_eq!(served.len(), flagged.len(), "{replica}");
        assert_eq!(
            common::values_of(&served, "event_id"),
            common::values_of(&flagged, "event_id")
        );
    }

    // Acknowledged through a, seen by b; a second acknowledge through b is refused there.
    let id = listed_ids_where(&http, &a.url, "&status=active,suppressed")
        .into_iter()
        .next()
        .expect("no actions ran, so nothing is resolved");
    let (code, acked) = change(
        &http,
        &a.url,
        &id,
        "acknowledge",
        serde_json::json!({"acknowledged_by": "ana", "note": "looking"}),
    );
    assert_eq!((code, acked["status"].as_str()), (200, Some("acknowledged")), "{acked}");
    let on_b = wait_for_status(&http, &b.url, &id, "acknowledged");
    assert_eq!(
        (on_b["acknowledged_by"].as_str(), on_b["note"].as_str()),
        (Some("ana"), Some("looking"))
    );
    let (code, refused) = change(
        &http,
        &b.url,
        &id,
        "acknowledge",
        serde_json::json!({"acknowledged_by": "bo"}),
    );
    assert_eq!(code, 409, "{refused}");
    // Resolved through b, seen by a.
    let (code, resolved) = change(&http, &b.url, &id, "resolve", serde_json::json!({"resolved_by": "bo"}));
    assert_eq!(
        (code, resolved["status"].as_str()),
        (200, Some("resolved")),
        "{resolved}"
    );
    wait_for_status(&http, &a.url, &id, "resolved");
    let mttr = |url: &str| -> Value {
        http.get(format!("{url}/api/v1/statistics"))
            .send()
            .unwrap()
            .json::<Value>()
            .unwrap()["mttr_seconds"]
            .clone()
    };
    assert!(mttr(&a.url).is_number());
    assert_eq!(mttr(&a.url), mttr(&b.url), "both replicas count the same resolution");

    // The topic holds the two changes, in order.
    let events = consume(&topics.anomaly_events);
    let actions: Vec<(&str, &str)> = events
        .iter()
        .map(|e| (e["action"].as_str().unwrap(), e["by"].as_str().unwrap()))
        .collect();
    assert_eq!(actions, [("acknowledge", "ana"), ("resolve", "bo")]);

    // Restarted on its store, a resumes where it read to: nothing stored twice, the state kept.
    assert!(a.stop().success(), "SIGTERM stops serve cleanly");
    let mut again = ServedJob::replica(&topics.config, Some(&kept));
    let line = again.wait_for_line("caught up", limit);
    assert!(line.contains("after reading 0 records; 0 anomalies stored"), "{line}");
    assert_eq!(listed_ids(&http, &again.url), expected);
    wait_for_status(&http, &again.url, &id, "resolved");
    drop(b);
}
