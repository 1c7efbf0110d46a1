//! `sentinel bench`: replay throughput against the JSON-decoding ceiling, worker scaling, and
//! memory per active key. Figures are medians of repeated runs measured in one process, so the
//! ratios compare like with like on a noisy machine.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use sentinel_connectors::file::{FileShardReader, ShardStatus};
use sentinel_dataflows::guard::{PromptClassifier, Screening};
use sentinel_dataflows::model::{decode_event, parse_event, DecodeLimits, TelemetryEvent};
use sentinel_dataflows::operators::JobStats;
use sentinel_dataflows::synth::{TraceConfig, TraceGenerator};
use serde_json::json;

use crate::config::{SentinelConfig, DEFAULT_CONFIG};
use crate::io::OutputTarget;
use crate::job::{self, InputSpec, JobSpec};

const HELP: &str = "\
sentinel bench throughput [--events N] [--prompt-bytes B] [--workers 1,2] [--repeat R] [--dir DIR]
                          [--no-guards | --model MODEL.bin]
    Generates (or reuses) DIR/bench-N-textB.jsonl (B bytes of prompt on every request and of response on every response), then measures, R times each:
      ceiling: JSON parsing alone (the job's parser into the borrowed event), per worker count
      serde:   serde_json alone, for reference
      decode:  parsing plus validation
      job:     the whole job with the built-in detector set and the content guards (unless
               --no-guards; with the learned classifier of --model), output discarded
    and prints medians, job/ceiling ratios and the -w scaling, ending with one JSON line.
sentinel bench decisions [--events N] [--prompt-events N] [--prompt-bytes 1024] [--workers W] [--repeat R] [--dir DIR]
    The decision path's cost, measured in one invocation, R interleaved rounds of three runs
    of the whole job (output discarded): N metric-only events with the default guards and
    decisions; the same with --no-guards; and --prompt-events events with --prompt-bytes of
    prompt and response text, default guards. Prints medians, guards/no-guards and events/s
    per worker; ends with one JSON line.
sentinel bench memory [--users N] [--dir DIR]
    Runs the job on a trace with N distinct users active in the same windows and reports
    peak RSS minus that of a one-user run, per active user.
sentinel bench kafka [--brokers B] [--events N] [--workers 1,2] [--repeat R] [--latency-secs S] [--latency-rate R] [--idle-secs S]
    Publishes a generated trace to a fresh 4-partition topic, then measures, R times each:
      bare:    one plain librdkafka consumer reading the topic to its end
      job:     the whole job reading it to its end, writing its outputs to Kafka
    then the produce-to-readable latency of per-event outputs at half the job's best rate
    (or --latency-rate),
    and the job's CPU with no traffic. Ends with one JSON line.
sentinel bench judges [--events N] [--workers W] [--repeat R] [--latency-ms 300] [--escalate-every 20]
    Runs the job on a generated trace whose every Nth request carries a prompt attack (so about
    1/N of the requests escalate), R times each, with: judges off; live judges against a
    loopback OpenAI-compatible server answering after --latency-ms; the same server down
    (nothing listening); and every verdict replayed from the journal of a live run. Prints
    events/s, the ratios to judges off, verdicts and fallbacks by reason, and the longest wait
    of an escalated request; ends with one JSON line.
sentinel bench actions [--deliveries N] [--events N] [--workers W] [--repeat R]
    Three measurements of the actions stage and its delivery, R rounds each:
      delivery:   N webhook events from a file outbox to a loopback receiver that answers 503
                  to one request in five: lost, acknowledged twice, p50/p99 latency
      throughput: the job on N events (default guards) with actions (every detector alerting
                  a loopback receiver, the outbox, its delivery) against --no-actions
      volume:     a generated 24-hour trace: alert notifications per injected anomaly
    Ends with one JSON line.
sentinel bench serve [--anomalies N] [--queries Q] [--events N] [--prompt-bytes B] [--repeat R] [--latency-secs S] [--latency-rate R] [--dir DIR]
    The serving store: N anomalies (default 1,000,000) over 30 days written in the feed's
    batches (anomalies/s); Q filtered one-day queries of 100 rows and Q seven-day statistics
    (p50/p99); the job on N events (B bytes of prompt and response text each, default 0) with
    what it serves fed to a store (anomalies, aggregates, flagged decisions) against without,
    R rounds (events/s, ratio); and for S seconds (20) R anomalies a second (1,000) handed to
    the feed, timed to a GraphQL subscriber on a WebSocket (p50/p99). Ends with one JSON line.
sentinel bench guard [--repeat N] [--model MODEL.bin] [--data FILE.jsonl...]
    Scans N generated prompts of 200 B, 1 KB and 10 KB with the input guard (injection and
    jailbreak rules, PII, secrets, and the learned classifier with --model) and prints p50/p99
    µs per prompt and p99 per KB; with --model, also the classifier alone.
    With --data, scans the `text` of every line of the files instead, twice: the first pass
    with cold automata (their lazy DFAs build states as text needs them), the second warm,
    as in a long-running job; prints p50/p99 per prompt and per KB for each pass.
";

/// `--data` values, each possibly followed by more files (`--data a.jsonl b.jsonl`).
fn data_files(m: &getopts::Matches) -> Vec<PathBuf> {
    m.opt_strs("data")
        .into_iter()
        .chain(m.free.iter().cloned())
        .map(PathBuf::from)
        .collect()
}

/// Entry point.
pub fn main(args: Vec<String>) -> Result<(), String> {
    let (which, rest) = match args.split_first() {
        Some((w, rest)) => (w.as_str(), rest.to_vec()),
        None => ("help", Vec::new()),
    };
    let mut opts = getopts::Options::new();
    for name in [
        "events",
        "prompt-bytes",
        "prompt-events",
        "workers",
        "repeat",
        "dir",
        "users",
        "brokers",
        "latency-secs",
        "latency-rate",
        "idle-secs",
        "model",
        "latency-ms",
        "escalate-every",
        "deliveries",
        "anomalies",
        "queries",
    ] {
        opts.optopt("", name, "", "");
    }
    opts.optflag("", "no-guards", "");
    opts.optmulti("", "data", "", "");
    let m = opts.parse(&rest).map_err(|e| format!("{e}\n\n{HELP}"))?;
    let dir = PathBuf::from(m.opt_str("dir").unwrap_or_else(|| "target/bench".into()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let num = |name: &str, default: u64| -> Result<u64, String> {
        m.opt_str(name).map_or(Ok(default), |v| {
            v.parse().map_err(|_| format!("--{name}: `{v}` is not a number"))
        })
    };
    let workers: Vec<usize> = m
        .opt_str("workers")
        .unwrap_or_else(|| "1,2".into())
        .split(',')
        .map(|w| w.trim().parse().map_err(|_| format!("--workers: `{w}`")))
        .collect::<Result<_, _>>()?;
    match which {
        "guard" if m.opt_present("data") => {
            super::bench_guard::guard_data(&data_files(&m), m.opt_str("model").as_deref().map(Path::new))
        }
        "guard" => super::bench_guard::guard(
            &[200, 1024, 10240],
            num("repeat", 20_000)? as usize,
            m.opt_str("model").as_deref().map(Path::new),
        ),
        "actions" => super::bench_actions::actions(
            &dir,
            &super::bench_actions::ActionsBench {
                deliveries: num("deliveries", 10_000)?,
                events: num("events", 1_000_000)?,
                workers: workers[0],
                repeat: num("repeat", 3)? as usize,
            },
        ),
        "serve" => super::bench_serve::serve(
            &dir,
            &super::bench_serve::ServeBench {
                anomalies: num("anomalies", 1_000_000)?,
                queries: num("queries", 2_000)?,
                events: num("events", 1_000_000)?,
                prompt_bytes: num("prompt-bytes", 0)? as usize,
                repeat: num("repeat", 3)? as usize,
                latency_secs: num("latency-secs", 20)?,
                latency_rate: m
                    .opt_str("latency-rate")
                    .map(|v| v.parse::<f64>().map_err(|_| format!("--latency-rate: `{v}`")))
                    .transpose()?
                    .unwrap_or(1_000.0),
            },
        ),
        "kafka" => super::bench_kafka::kafka(
            &dir,
            &super::bench_kafka::KafkaBench {
                brokers: m.opt_str("brokers").unwrap_or_else(|| "127.0.0.1:9092".into()),
                events: num("events", 1_000_000)?,
                workers,
                repeat: num("repeat", 3)? as usize,
                latency_secs: num("latency-secs", 20)?,
                latency_rate: m
                    .opt_str("latency-rate")
                    .map(|v| v.parse::<f64>().map_err(|_| format!("--latency-rate: `{v}`")))
                    .transpose()?,
                idle_secs: num("idle-secs", 10)?,
            },
        ),
        "throughput" => throughput(
            &dir,
            num("events", 10_000_000)?,
            num("prompt-bytes", 0)? as usize,
            &workers,
            num("repeat", 3)? as usize,
            match (m.opt_present("no-guards"), m.opt_str("model")) {
                (true, _) => BenchGuards::Off,
                (false, None) => BenchGuards::Rules,
                (false, Some(ref model)) => BenchGuards::WithModel(Path::new(model)),
            },
        ),
        "memory" => memory(&dir, num("users", 1_000_000)?),
        "decisions" => decisions(
            &dir,
            [num("events", 3_000_000)?, num("prompt-events", 1_000_000)?],
            num("prompt-bytes", 1024)? as usize,
            workers[0],
            num("repeat", 3)? as usize,
        ),
        "judges" => super::bench_judges::judges(
            &dir,
            &super::bench_judges::JudgeBench {
                events: num("events", 1_000_000)?,
                workers: workers[0],
                repeat: num("repeat", 3)? as usize,
                latency_ms: num("latency-ms", 300)?,
                escalate_every: num("escalate-every", 20)?.max(1),
            },
        ),
        _ => {
            print!("{HELP}");
            Ok(())
        }
    }
}

pub(crate) fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

pub(crate) fn trace_file(dir: &Path, events: u64, prompt_bytes: usize) -> Result<PathBuf, String> {
    // Every request carries `prompt_bytes` of prompt and every response as much response text.
    let path = dir.join(format!("bench-{events}-text{prompt_bytes}.jsonl"));
    if path.exists() {
        return Ok(path);
    }
    eprintln!("generating {} ...", path.display());
    let tmp = path.with_extension("partial");
    let mut w = BufWriter::with_capacity(1 << 20, std::fs::File::create(&tmp).map_err(|e| e.to_string())?);
    let cfg = TraceConfig {
        events,
        prompt_bytes,
        response_bytes: Some(prompt_bytes),
        ..TraceConfig::default()
    };
    for (_, json) in TraceGenerator::new(cfg) {
        w.write_all(json.as_bytes())
            .and_then(|_| w.write_all(b"\n"))
            .map_err(|e| e.to_string())?;
    }
    w.flush().map_err(|e| e.to_string())?;
    drop(w);
    std::fs::rename(&tmp, &path).map_err(|e| e.to_string())?;
    Ok(path)
}

/// Reads the file with `workers` threads, each its own share, applying `work` to every line.
fn scan(path: &Path, workers: usize, work: fn(&[u8]) -> bool) -> Result<(u64, f64), String> {
    let start = Instant::now();
    let handles: Vec<_> = (0..workers)
        .map(|index| {
            let path = path.to_owned();
            std::thread::spawn(move || -> Result<u64, String> {
                let mut r = FileShardReader::open(&path, index, workers, 1 << 20).map_err(|e| e.to_string())?;
                let mut ok = 0u64;
                while r
                    .read(4096, &mut |line, _, _, _| {
                        ok += u64::from(work(line));
                        true
                    })
                    .map_err(|e| e.to_string())?
                    == ShardStatus::More
                {}
                Ok(ok)
            })
        })
        .collect();
    let mut total = 0;
    for h in handles {
        total += h.join().map_err(|_| "scan thread panicked".to_owned())??;
    }
    Ok((total, start.elapsed().as_secs_f64()))
}

/// Reads the whole file once so the measured runs find it in the page cache.
fn warm_page_cache(path: &Path) -> Result<(), String> {
    let mut f = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 1 << 20];
    while std::io::Read::read(&mut f, &mut buf).map_err(|e| e.to_string())? > 0 {}
    Ok(())
}

/// The job's JSON decoding alone: UTF-8 check and parse into the borrowed event (fast path, with
/// serde_json for what it declines).
fn parse_only(line: &[u8]) -> bool {
    std::str::from_utf8(line)
        .ok()
        .and_then(|t| parse_event(t).ok())
        .is_some()
}

/// serde_json alone, for reference.
fn serde_only(line: &[u8]) -> bool {
    std::str::from_utf8(line)
        .ok()
        .and_then(|t| serde_json::from_str::<TelemetryEvent<'_>>(t).ok())
        .is_some()
}

fn parse_and_validate(line: &[u8]) -> bool {
    decode_event(line, &DecodeLimits::default()).is_ok()
}

/// Content guards for a benchmark run.
#[derive(Clone, Copy, Debug)]
pub(crate) enum BenchGuards<'a> {
    /// Metrics only.
    Off,
    /// The built-in configuration's guards.
    Rules,
    /// The built-in guards with the learned classifier of this model file.
    WithModel(&'a Path),
}

/// The job with the built-in detector set, from `input` to `output`.
pub(crate) fn builtin_spec(input: InputSpec, output: OutputTarget, guards: BenchGuards<'_>) -> Result<JobSpec, String> {
    let cfg = SentinelConfig::parse(DEFAULT_CONFIG).map_err(|e| e.0)?;
    config_spec(&cfg, input, output, guards, None)
}

/// The job under `cfg`, from `input` to `output`, judges answering from `replay` if given.
pub(crate) fn config_spec(
    cfg: &SentinelConfig,
    input: InputSpec,
    output: OutputTarget,
    guards: BenchGuards<'_>,
    replay: Option<super::run::JudgeReplay>,
) -> Result<JobSpec, String> {
    let mut guard_spec = match guards {
        BenchGuards::Off => None,
        _ => super::run::guard_spec(cfg, replay)?,
    };
    if let (BenchGuards::WithModel(model), Some(g)) = (guards, guard_spec.as_mut()) {
        let classifier = PromptClassifier::load(model, None, false)?;
        g.screening = Arc::new(Screening::with_classifier(
            g.policies.clone(),
            Some(Arc::new(classifier)),
        ));
    }
    let guards = guard_spec;
    let plan = cfg.aggregation_plan();
    Ok(JobSpec {
        ingest: super::run::ingest_config(cfg, cfg.job.allowed_lateness.0, &plan, guards.as_ref()),
        guards,
        plan,
        detectors: cfg.statistical_detectors(),
        write_aggregates: false,
        write_dead_letters: true,
        actions: cfg.act_config().map_err(|(key, why)| format!("key `{key}`: {why}"))?,
        outbox_dir: None,
        serve_feed: None,
        // As a user runs it: baselines checkpointed when Kafka is both input and output.
        state: crate::job::StateSpec::plan(&input, &output, cfg.kafka.state_interval.0)?,
        input,
        output,
    })
}

fn run_job(path: &Path, workers: usize, guards: BenchGuards<'_>) -> Result<(u64, f64), String> {
    let spec = builtin_spec(InputSpec::File(path.to_owned()), OutputTarget::Discard, guards)?;
    let stats = Arc::new(JobStats::new(workers));
    let outcome = job::run(timely::Config::process(workers), Arc::clone(&stats), spec)?;
    Ok((
        stats.records_in.load(std::sync::atomic::Ordering::Relaxed),
        outcome.elapsed.as_secs_f64(),
    ))
}

fn throughput(
    dir: &Path,
    events: u64,
    prompt_bytes: usize,
    workers: &[usize],
    repeat: usize,
    guards: BenchGuards<'_>,
) -> Result<(), String> {
    let path = trace_file(dir, events, prompt_bytes)?;
    let bytes = std::fs::metadata(&path).map_err(|e| e.to_string())?.len();
    println!(
        "trace {} ({events} events, {:.0} bytes/event)",
        path.display(),
        bytes as f64 / events as f64
    );
    // Rounds interleave the worker counts, so machine noise falls on all of them alike; each
    // measurement starts with the trace in the page cache, so it measures CPU, not the disk.
    let mut samples: Vec<[Vec<f64>; 4]> = workers.iter().map(|_| Default::default()).collect();
    for round in 0..repeat.max(1) {
        for (k, &w) in workers.iter().enumerate() {
            let mut measured = [0.0; 4];
            for (m, what) in measured.iter_mut().zip(0..4) {
                warm_page_cache(&path)?;
                let (n, secs) = match what {
                    0 => scan(&path, w, parse_only)?,
                    1 => scan(&path, w, parse_and_validate)?,
                    2 => run_job(&path, w, guards)?,
                    _ => scan(&path, w, serde_only)?,
                };
                *m = n as f64 / secs;
                samples[k][what].push(*m);
            }
            eprintln!(
                "  round {round} -w {w}: ceiling {:.0}/s, decode {:.0}/s, job {:.0}/s, serde_json alone {:.0}/s",
                measured[0], measured[1], measured[2], measured[3]
            );
        }
    }
    let mut rows = Vec::new();
    for (k, &w) in workers.iter().enumerate() {
        let [ceiling, decode, job_rates, serde] = std::mem::take(&mut samples[k]);
        let (c, d, j, s) = (median(ceiling), median(decode), median(job_rates), median(serde));
        println!(
            "-w {w}: job {j:.0} events/s ({:.0} per worker), parse ceiling {c:.0}/s, parse+validate {d:.0}/s, job/ceiling {:.2}, serde_json alone {s:.0}/s",
            j / w as f64,
            j / c
        );
        rows.push((w, c, d, j, s));
    }
    let scaling = match (rows.iter().find(|r| r.0 == 1), rows.iter().find(|r| r.0 == 2)) {
        (Some(one), Some(two)) => Some(two.3 / one.3),
        _ => None,
    };
    if let Some(s) = scaling {
        println!("scaling -w 2 / -w 1: {s:.2}x");
    }
    let record = json!({
        "bench": "throughput", "events": events, "prompt_bytes": prompt_bytes, "bytes_per_event": bytes as f64 / events as f64,
        "repeat": repeat, "scaling_w2_over_w1": scaling,
        "rows": rows.iter().map(|(w, c, d, j, s)| json!({"workers": w, "job_events_per_sec": j, "job_per_worker": j / *w as f64,
            "parse_ceiling_events_per_sec": c, "parse_validate_events_per_sec": d, "job_over_ceiling": j / c,
            "serde_json_alone_events_per_sec": s})).collect::<Vec<_>>(),
    });
    println!("{record}");
    Ok(())
}

/// The decision path's two targets, in one invocation: the default job against `--no-guards`
/// on metric-only events, and the default job on events with `prompt_bytes` of text.
fn decisions(
    dir: &Path,
    [events, prompt_events]: [u64; 2],
    prompt_bytes: usize,
    workers: usize,
    repeat: usize,
) -> Result<(), String> {
    let metric_only = trace_file(dir, events, 0)?;
    let with_text = trace_file(dir, prompt_events, prompt_bytes)?;
    let runs: [(&str, &Path, BenchGuards<'_>); 3] = [
        ("default, metric-only", &metric_only, BenchGuards::Rules),
        ("--no-guards, metric-only", &metric_only, BenchGuards::Off),
        ("default, with text", &with_text, BenchGuards::Rules),
    ];
    let mut samples: [Vec<f64>; 3] = Default::default();
    for round in 0..repeat.max(1) {
        for ((name, path, guards), rates) in runs.iter().zip(samples.iter_mut()) {
            warm_page_cache(path)?;
            let (n, secs) = run_job(path, workers, *guards)?;
            rates.push(n as f64 / secs);
            eprintln!("  round {round} {name}: {:.0} events/s", n as f64 / secs);
        }
    }
    let [guarded, bare, text] = samples.map(median);
    println!("-w {workers}, medians of {repeat}:");
    println!("  default, metric-only:     {guarded:.0} events/s");
    println!("  --no-guards, metric-only: {bare:.0} events/s");
    println!("  default / --no-guards:    {:.2}x", guarded / bare);
    println!(
        "  default, {prompt_bytes} B of text:   {text:.0} events/s ({:.0} per worker)",
        text / workers as f64
    );
    let record = json!({
        "bench": "decisions", "workers": workers, "repeat": repeat, "events": events,
        "prompt_events": prompt_events, "prompt_bytes": prompt_bytes,
        "default_metric_only_events_per_sec": guarded, "no_guards_metric_only_events_per_sec": bare,
        "default_over_no_guards": guarded / bare, "default_with_text_events_per_sec": text,
        "default_with_text_per_worker": text / workers as f64,
    });
    println!("{record}");
    Ok(())
}

/// A trace where `users` distinct users each make one call in the same minute.
fn users_trace(dir: &Path, users: u64) -> Result<PathBuf, String> {
    let path = dir.join(format!("users-{users}.jsonl"));
    if path.exists() {
        return Ok(path);
    }
    let mut w = BufWriter::with_capacity(1 << 20, std::fs::File::create(&path).map_err(|e| e.to_string())?);
    let t0 = TraceConfig::default().start_ms;
    for i in 0..users {
        let ts = sentinel_dataflows::time::format_rfc3339_ms(t0 + i * 50_000 / users.max(1));
        writeln!(
            w,
            r#"{{"event_id":"m{i}","timestamp":"{ts}","event_type":"llm.response","application_id":"app-{}","tenant_id":"t-{}","data":{{"model":"model-{}","prompt_tokens":100,"completion_tokens":50,"latency_ms":300.0,"cost":0.001,"status":"success"}},"metadata":{{"user_id":"user-{i:08}","session_id":"s-{i}"}}}}"#,
            i % 6,
            i % 10,
            i % 4
        )
        .map_err(|e| e.to_string())?;
    }
    w.flush().map_err(|e| e.to_string())?;
    Ok(path)
}

fn peak_rss_of_run(path: &Path) -> Result<u64, String> {
    let summary = path.with_extension("summary.json");
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let status = Command::new(exe)
        .args(["run", "--no-progress", "--output", "none", "--summary"])
        .arg(&summary)
        .arg("--input")
        .arg(format!("file:{}", path.display()))
        .status()
        .map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!("run on {} failed", path.display()));
    }
    let text = std::fs::read_to_string(&summary).map_err(|e| e.to_string())?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    v["peak_rss_bytes"]
        .as_u64()
        .ok_or_else(|| "summary has no peak_rss_bytes".into())
}

fn memory(dir: &Path, users: u64) -> Result<(), String> {
    let base = peak_rss_of_run(&users_trace(dir, 1)?)?;
    let full = peak_rss_of_run(&users_trace(dir, users)?)?;
    let per_key = full.saturating_sub(base) as f64 / users as f64;
    println!(
        "peak RSS: {:.1} MiB with {users} active users, {:.1} MiB with 1: {per_key:.0} bytes per active user key",
        full as f64 / 1048576.0,
        base as f64 / 1048576.0
    );
    println!(
        "{}",
        json!({"bench": "memory", "users": users, "peak_rss_bytes": full, "baseline_rss_bytes": base, "bytes_per_active_key": per_key})
    );
    Ok(())
}
