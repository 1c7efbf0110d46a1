//! `sentinel run`: the streaming job.

use std::path::{Path, PathBuf};

use sentinel_dataflows::model::DecodeLimits;
use std::sync::Arc;

use sentinel_dataflows::operators::{IngestConfig, JobStats};
use sentinel_dataflows::synth::TraceConfig;
use sentinel_dataflows::time::parse_duration_ms;

use crate::config::{SentinelConfig, SourceConfig, DEFAULT_CONFIG};
use crate::io::OutputTarget;
use crate::job::{self, InputSpec, JobSpec};
use crate::summary::{Progress, Summary};

const HELP: &str = "\
sentinel run: detect anomalies in LLM telemetry

  --config FILE       YAML configuration (default: the built-in examples/sentinel.yaml)
  --input SRC         synthetic | file:PATH (.jsonl or .jsonl.gz); overrides the config's source
  --output DST        stdout | file:DIR | none; overrides outputs.target
  --speed X           replay pacing by event time: 1 = recorded speed, 10 = ten times faster
  --lateness D        allowed lateness, e.g. 5s (overrides job.allowed_lateness)
  --events N          events for the synthetic source
  --seed S            seed for the synthetic source
  --aggregates        also write closed-window aggregates
  --summary FILE      write the run summary as JSON
  --no-progress       no live progress line
timely options (work alongside the above):
  -w, --threads N     worker threads per process
  -n, --processes N   processes in the cluster
  -p, --process I     this process's index
  -h, --hostfile F    one host:port per process
";

/// Entry point.
pub fn main(args: Vec<String>) -> Result<(), String> {
    let mut opts = getopts::Options::new();
    timely::Config::install_options(&mut opts);
    for (name, hint) in [
        ("config", "FILE"),
        ("input", "SRC"),
        ("output", "DST"),
        ("speed", "X"),
        ("lateness", "D"),
        ("events", "N"),
        ("seed", "S"),
        ("summary", "FILE"),
    ] {
        opts.optopt("", name, "", hint);
    }
    opts.optflag("", "aggregates", "");
    opts.optflag("", "no-progress", "");
    opts.optflag("", "help", "");
    let m = opts.parse(&args).map_err(|e| format!("{e}\n\n{HELP}"))?;
    if m.opt_present("help") {
        print!("{HELP}");
        return Ok(());
    }
    let timely_config = timely::Config::from_matches(&m)?;
    let threads = m.opt_str("w").and_then(|w| w.parse().ok()).unwrap_or(1usize);

    let cfg = match m.opt_str("config") {
        Some(path) => SentinelConfig::load(Path::new(&path)).map_err(|e| e.to_string())?,
        None => SentinelConfig::parse(DEFAULT_CONFIG).map_err(|e| format!("built-in config: {e}"))?,
    };
    let number = |name: &str| -> Result<Option<f64>, String> {
        m.opt_str(name)
            .map(|v| v.parse::<f64>().map_err(|_| format!("--{name}: `{v}` is not a number")))
            .transpose()
    };
    let mut speed = None;
    let input = match m.opt_str("input") {
        Some(src) if src == "synthetic" => synthetic(&cfg),
        Some(src) => match src.strip_prefix("file:") {
            Some(path) => InputSpec::File(PathBuf::from(path)),
            None => return Err(format!("--input: expected synthetic or file:PATH, got `{src}`")),
        },
        None => match &cfg.source {
            Some(SourceConfig::File { path, speed: s }) => {
                speed = *s;
                InputSpec::File(PathBuf::from(path))
            }
            _ => synthetic(&cfg),
        },
    };
    let input = match input {
        InputSpec::Synthetic(mut t) => {
            t.events = number("events")?.map_or(t.events, |v| v as u64);
            t.seed = number("seed")?.map_or(t.seed, |v| v as u64);
            InputSpec::Synthetic(t)
        }
        other => other,
    };
    if let Some(s) = number("speed")? {
        if !s.is_finite() || s <= 0.0 {
            return Err("--speed must be positive".into());
        }
        speed = Some(s);
    }
    let target = m.opt_str("output").unwrap_or_else(|| cfg.outputs.target.clone());
    let output = OutputTarget::parse(&target)
        .ok_or_else(|| format!("--output: expected stdout, file:DIR or none, got `{target}`"))?;
    let lateness_ms = match m.opt_str("lateness") {
        Some(d) => parse_duration_ms(&d).ok_or_else(|| format!("--lateness: `{d}` is not a duration"))?,
        None => cfg.job.allowed_lateness.0,
    };
    let spec = JobSpec {
        input,
        output,
        ingest: IngestConfig {
            lateness_ms,
            limits: DecodeLimits {
                max_event_bytes: cfg.job.max_event_bytes,
                ..DecodeLimits::default()
            },
            dead_letter_keep: cfg.job.dead_letter_keep_bytes,
            batch_records: cfg.job.batch_records.max(1),
            speed,
        },
        plan: {
            let mut c = cfg.clone();
            c.outputs.aggregates |= m.opt_present("aggregates");
            c.aggregation_plan()
        },
        detectors: cfg.statistical_detectors(),
        write_aggregates: cfg.outputs.aggregates || m.opt_present("aggregates"),
        write_dead_letters: cfg.outputs.dead_letters,
    };
    let stats = Arc::new(JobStats::new(threads));
    let progress = Progress::start(Arc::clone(&stats), !m.opt_present("no-progress"));
    let outcome = job::run(timely_config, Arc::clone(&stats), spec);
    progress.finish();
    let outcome = outcome?;
    let summary = Summary::of(&outcome);
    eprint!("{}", summary.render());
    if let Some(path) = m.opt_str("summary") {
        let json = serde_json::to_string_pretty(&summary).map_err(|e| e.to_string())?;
        std::fs::write(&path, json).map_err(|e| format!("{path}: {e}"))?;
    }
    Ok(())
}

fn synthetic(cfg: &SentinelConfig) -> InputSpec {
    let mut t = TraceConfig::default();
    if let Some(SourceConfig::Synthetic {
        events,
        seed,
        prompt_bytes,
        inject,
    }) = &cfg.source
    {
        t.events = *events;
        t.seed = *seed;
        t.prompt_bytes = *prompt_bytes;
        t.inject = *inject;
    }
    InputSpec::Synthetic(t)
}
