//! `sentinel run`: the streaming job.

use std::path::{Path, PathBuf};

use sentinel_dataflows::guard::{PromptClassifier, Screening};
use sentinel_dataflows::model::DecodeLimits;
use std::sync::Arc;

use sentinel_dataflows::operators::{AggregationPlan, IngestConfig, JobStats};
use sentinel_dataflows::synth::TraceConfig;
use sentinel_dataflows::time::parse_duration_ms;

use crate::config::{Brokers, KafkaConfig, SentinelConfig, SourceConfig, DEFAULT_CONFIG};
use crate::io::OutputTarget;
use crate::job::{self, GuardSpec, InputSpec, JobSpec, JudgeSpec, StateSpec};
use crate::kafka_input::{ensure_job_topics, KafkaInput};
use crate::streams::OutputStream;
use crate::summary::{Progress, Summary};
use sentinel_connectors::kafka::KafkaSettings;
use sentinel_dataflows::judge::JudgeService;
use sentinel_judges::{JournalReplay, LiveJudges};

const HELP: &str = "\
sentinel run: detect anomalies in LLM telemetry

  --config FILE       YAML configuration (default: the built-in examples/sentinel.yaml)
  --input SRC         synthetic | file:PATH (.jsonl or .jsonl.gz) | kafka[:TOPIC[,TOPIC]];
                      overrides the config's source
  --output DST        stdout | file:DIR | kafka | none; overrides outputs.target
  --brokers LIST      Kafka bootstrap servers (host:port[,host:port]); alone, it means
                      --input kafka --output kafka with the config's (or default) topics
  --group ID          Kafka consumer group (default: kafka.group_id, `sentinel`)
  --exit-when-caught-up
                      with a Kafka input: stop once every partition has reached the end
                      offset it had at start, after flushing the outputs
  --speed X           replay pacing by event time: 1 = recorded speed, 10 = ten times faster
  --lateness D        allowed lateness, e.g. 5s (overrides job.allowed_lateness)
  --events N          events for the synthetic source
  --seed S            seed for the synthetic source
  --aggregates        also write closed-window aggregates
  --no-guards         skip content guards, behavioral detectors and decisions (metrics only)
  --no-actions        plan no actions: anomalies are written as detected, with no
                      shield, alert, incident or webhook records
  --judge-replay SRC  answer the shadow-agent judges from a verdict journal instead of calling
                      a provider: FILE (a judgements.jsonl) or `kafka` (the judgements topic);
                      a request the journal lacks falls back with reason not_in_journal
  --listen ADDR       take telemetry over HTTP on ADDR (POST /api/v1/telemetry/events and
                      /api/v1/telemetry/batch), feeding the job directly; instead of --input.
                      Ctrl-C stops taking requests, and the job finishes what it has
  --serve ADDR        serve the dashboard (/), REST and GraphQL APIs and /metrics on ADDR,
                      e.g. 127.0.0.1:8080, from a store the job feeds; after a finite input it
                      keeps serving until Ctrl-C
  --store FILE        the serving store's SQLite file (default: a new file in the temp dir,
                      removed when the server stops)
  --metrics ADDR      serve Prometheus /metrics (OpenMetrics text) on ADDR; with --serve it is
                      also on the API's address
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
        ("brokers", "LIST"),
        ("group", "ID"),
        ("judge-replay", "SRC"),
        ("serve", "ADDR"),
        ("store", "FILE"),
        ("metrics", "ADDR"),
        ("listen", "ADDR"),
    ] {
        opts.optopt("", name, "", hint);
    }
    opts.optflag("", "aggregates", "");
    opts.optflag("", "no-guards", "");
    opts.optflag("", "no-actions", "");
    opts.optflag("", "exit-when-caught-up", "");
    opts.optflag("", "no-progress", "");
    opts.optflag("", "help", "");
    let m = opts.parse(&args).map_err(|e| format!("{e}\n\n{HELP}"))?;
    if m.opt_present("help") {
        print!("{HELP}");
        return Ok(());
    }
    let timely_config = timely::Config::from_matches(&m)?;
    let threads = m.opt_str("w").and_then(|w| w.parse().ok()).unwrap_or(1usize);
    let process_index = m.opt_str("p").and_then(|p| p.parse().ok()).unwrap_or(0usize);

    let cfg = match m.opt_str("config") {
        Some(path) => SentinelConfig::load(Path::new(&path)).map_err(|e| e.to_string())?,
        None => SentinelConfig::parse(DEFAULT_CONFIG).map_err(|e| format!("built-in config: {e}"))?,
    };
    let number = |name: &str| -> Result<Option<f64>, String> {
        m.opt_str(name)
            .map(|v| v.parse::<f64>().map_err(|_| format!("--{name}: `{v}` is not a number")))
            .transpose()
    };
    let mut kafka = cfg.kafka.clone();
    if let Some(brokers) = m.opt_str("brokers") {
        kafka.brokers = Brokers::One(brokers);
    }
    if let Some(group) = m.opt_str("group") {
        kafka.group_id = group;
    }
    let brokers_given = m.opt_present("brokers");
    let mut exit_when_caught_up = m.opt_present("exit-when-caught-up");
    let mut speed = None;
    let mut kafka_topics: Option<Vec<String>> = None;
    match m.opt_str("input") {
        Some(src) if src == "synthetic" => {}
        Some(src) if src == "kafka" => kafka_topics = Some(kafka.topics.clone()),
        Some(src) => match (src.strip_prefix("file:"), src.strip_prefix("kafka:")) {
            (Some(_), _) => {}
            (_, Some(list)) => {
                kafka_topics = Some(list.split(',').filter(|t| !t.is_empty()).map(str::to_owned).collect())
            }
            _ => {
                return Err(format!(
                    "--input: expected synthetic, file:PATH or kafka[:TOPICS], got `{src}`"
                ))
            }
        },
        None if brokers_given => kafka_topics = Some(kafka.topics.clone()),
        None => {
            if let Some(SourceConfig::Kafka {
                exit_when_caught_up: exit,
            }) = &cfg.source
            {
                kafka_topics = Some(kafka.topics.clone());
                exit_when_caught_up |= *exit;
            }
        }
    }
    let settings = kafka_settings(&kafka);
    let input = match (m.opt_str("input"), kafka_topics) {
        (_, Some(topics)) => {
            if topics.is_empty() {
                return Err("--input kafka: no topics".into());
            }
            ensure_job_topics(&settings, &kafka, &[], true, None)?;
            InputSpec::Kafka(KafkaInput::plan(
                settings.clone(),
                kafka.group_id.clone(),
                &topics,
                kafka.checkpoint_topic.clone(),
                exit_when_caught_up,
            )?)
        }
        (Some(src), None) if src == "synthetic" => synthetic(&cfg),
        (Some(src), None) => InputSpec::File(PathBuf::from(src.trim_start_matches("file:"))),
        (None, None) => match &cfg.source {
            Some(SourceConfig::File { path, speed: s }) => {
                speed = *s;
                InputSpec::File(PathBuf::from(path))
            }
            _ => synthetic(&cfg),
        },
    };
    let listen = match m.opt_str("listen") {
        None => None,
        Some(_) if m.opt_present("input") || brokers_given => {
            return Err("--listen is the job's input: give it without --input or --brokers".into())
        }
        Some(addr) => Some(
            addr.parse::<std::net::SocketAddr>()
                .map_err(|_| format!("--listen: `{addr}` is not host:port, e.g. 127.0.0.1:9090"))?,
        ),
    };
    let input = match listen {
        Some(addr) => InputSpec::Listen(addr, crate::listen::queues(&cfg.ingest, threads)),
        None => input,
    };
    if exit_when_caught_up && !matches!(input, InputSpec::Kafka(_)) {
        return Err("--exit-when-caught-up needs a Kafka input".into());
    }
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
    let target = m.opt_str("output").unwrap_or_else(|| {
        if brokers_given {
            "kafka".into()
        } else {
            cfg.outputs.target.clone()
        }
    });
    let output = if target == "kafka" {
        let t = &kafka.output_topics;
        let topics = t.all();
        let input_partitions = match &input {
            InputSpec::Kafka(k) => k.partitions.iter().filter(|p| p.topic == k.partitions[0].topic).count() as i32,
            _ => 0,
        };
        let names: Vec<String> = topics.iter().map(|(_, topic)| topic.clone()).collect();
        ensure_job_topics(
            &settings,
            &kafka,
            &names,
            false,
            Some(input_partitions).filter(|n| *n > 0),
        )?;
        let mut topics = topics;
        if matches!(input, InputSpec::Kafka(_)) {
            topics.push((OutputStream::State, kafka.state_topic.clone()));
        }
        OutputTarget::Kafka { settings, topics }
    } else {
        OutputTarget::parse(&target)
            .ok_or_else(|| format!("--output: expected stdout, file:DIR, kafka or none, got `{target}`"))?
    };
    let lateness_ms = match m.opt_str("lateness") {
        Some(d) => parse_duration_ms(&d).ok_or_else(|| format!("--lateness: `{d}` is not a duration"))?,
        None => cfg.job.allowed_lateness.0,
    };
    let plan = {
        let mut c = cfg.clone();
        c.outputs.aggregates |= m.opt_present("aggregates");
        c.aggregation_plan()
    };
    let replay = match m.opt_str("judge-replay") {
        None => None,
        Some(src) if src == "kafka" => Some(JudgeReplay::Kafka {
            settings: kafka_settings(&kafka),
            topic: kafka.output_topics.of(OutputStream::Judgements).to_owned(),
        }),
        Some(path) => Some(JudgeReplay::File(PathBuf::from(path))),
    };
    let guards = if m.opt_present("no-guards") {
        None
    } else {
        guard_spec(&cfg, replay)?
    };
    let judged = guards.as_ref().is_some_and(|g| g.judges.is_some());
    let live_judges = guards
        .as_ref()
        .and_then(|g| g.judges.as_ref())
        .and_then(|j| j.live.clone());
    let spec = JobSpec {
        state: StateSpec::plan(&input, &output, kafka.state_interval.0)?,
        input,
        output,
        ingest: IngestConfig {
            speed,
            ..ingest_config(&cfg, lateness_ms, &plan, guards.as_ref())
        },
        guards,
        plan,
        detectors: cfg.statistical_detectors(),
        write_aggregates: cfg.outputs.aggregates || m.opt_present("aggregates"),
        write_dead_letters: cfg.outputs.dead_letters,
        actions: if m.opt_present("no-actions") {
            None
        } else {
            cfg.act_config().map_err(|(key, why)| format!("key `{key}`: {why}"))?
        },
        outbox_dir: None,
        serve_feed: None,
    };
    let mut spec = spec;
    // Deliveries run in the first process only, on their own threads, from the outbox.
    let delivery_config = cfg.delivery().map_err(|(key, why)| format!("key `{key}`: {why}"))?;
    let delivering = spec.actions.is_some() && delivery_config.delivers() && process_index == 0;
    if delivering {
        spec.outbox_dir = crate::delivery::outbox_dir(&spec.output, Path::new(&cfg.delivery.outbox_dir));
    }
    let appended_to = match (&spec.outbox_dir, &spec.output) {
        (Some(dir), _) | (None, OutputTarget::Dir(dir)) if spec.actions.is_some() => Some(dir.clone()),
        _ => None,
    };
    if let Some(dir) = &appended_to {
        crate::delivery::empty_outbox(dir)?;
    }
    let delivery = if delivering {
        Some(crate::delivery::start(
            delivery_config,
            &spec.output,
            spec.outbox_dir.as_deref(),
            &cfg.kafka.group_id,
            &cfg.kafka.callbacks_topic,
        )?)
    } else {
        None
    };
    let stats = Arc::new(JobStats::new(threads));
    // `/metrics` reads the judges' breaker and the deliveries through the job's stats.
    if let Some(judges) = &live_judges {
        let judges = Arc::clone(judges);
        stats.add_readings(Box::new(move || judges.readings()));
    }
    if let Some(d) = &delivery {
        let deliveries = Arc::clone(d.stats());
        stats.add_readings(Box::new(move || deliveries.readings()));
    }
    let serving = match m.opt_str("serve") {
        Some(addr) => {
            let listen = addr
                .parse()
                .map_err(|_| format!("--serve: `{addr}` is not host:port, e.g. 127.0.0.1:8080"))?;
            let tester = crate::detector_test::tester(&spec);
            // With deliveries from files, people's changes go to the outbox too: a person
            // resolving an anomaly resolves its incident.
            let publisher = match (&delivery, &spec.outbox_dir) {
                (Some(_), Some(dir)) => {
                    let dir = dir.clone();
                    crate::serving::Publisher::LoggedThenFeed(Arc::new(move |event| {
                        crate::delivery::append_person_change(&dir, event)
                    }))
                }
                _ => crate::serving::Publisher::Feed,
            };
            let serving = crate::serving::Serving::start(
                listen,
                m.opt_str("store").map(PathBuf::from),
                &cfg,
                Some(tester),
                Some(Arc::clone(&stats)),
                publisher,
            )?;
            eprintln!(
                "sentinel: serving the API on http://{0} (dashboard http://{0}/)",
                serving.addr()
            );
            spec.serve_feed = Some(crate::job::ServeFeed {
                sender: serving.sender(),
                decisions: cfg.serve.decisions,
            });
            Some(serving)
        }
        None if m.opt_present("store") => return Err("--store needs --serve".into()),
        None => None,
    };
    let metrics = match m.opt_str("metrics") {
        Some(addr) => {
            let listen = addr
                .parse()
                .map_err(|_| format!("--metrics: `{addr}` is not host:port, e.g. 127.0.0.1:9464"))?;
            let keys = cfg.serve.keys().map_err(|(key, why)| format!("key `{key}`: {why}"))?;
            let registry =
                sentinel_serve::exporter::registry(Some(Arc::clone(&stats)), None, sentinel_serve::api::wall_clock_ms);
            let server = sentinel_serve::api::Server::metrics_only(listen, Arc::new(registry), keys)?;
            eprintln!("sentinel: Prometheus metrics on http://{}/metrics", server.addr);
            Some(server)
        }
        None => None,
    };
    let listener = match &spec.input {
        InputSpec::Listen(addr, queues) => {
            let server = crate::listen::start(*addr, &cfg.ingest, spec.ingest.limits.clone(), queues.clone())?;
            eprintln!(
                "sentinel: taking telemetry on http://{} (POST /api/v1/telemetry/events, /api/v1/telemetry/batch)",
                server.addr
            );
            Some(server)
        }
        _ => None,
    };
    let listening = listener.is_some();
    let listener = std::sync::Mutex::new(listener);
    let stop_stats = Arc::clone(&stats);
    install_stop_signals(move || {
        // Listening, a stop ends the input: the listener answers what it has taken and the
        // job finishes with it. Otherwise the sources stop where they are.
        match listener.lock().unwrap_or_else(|e| e.into_inner()).take() {
            Some(server) => server.stop(),
            None => stop_stats.stop.store(true, std::sync::atomic::Ordering::Relaxed),
        }
    })?;
    let progress = Progress::start(Arc::clone(&stats), !m.opt_present("no-progress"));
    let outcome = job::run(timely_config, Arc::clone(&stats), spec);
    progress.finish();
    let delivered = delivery.map(|d| d.finish(std::time::Duration::from_millis(cfg.delivery.drain_timeout.0)));
    let outcome = outcome?;
    let mut summary = Summary::of(&outcome);
    if let Some(d) = &delivered {
        summary = summary.with_deliveries(d);
    }
    if judged {
        summary = summary.with_judges(&outcome.stats, live_judges.as_deref());
    }
    eprint!("{}", summary.render());
    if let Some(path) = m.opt_str("summary") {
        let json = serde_json::to_string_pretty(&summary).map_err(|e| e.to_string())?;
        std::fs::write(&path, json).map_err(|e| format!("{path}: {e}"))?;
    }
    if let Some(serving) = serving {
        // A listening job ends only when asked to stop: then the server stops too.
        serving.serve_until(|| listening || stats.stop.load(std::sync::atomic::Ordering::Relaxed));
    }
    if let Some(server) = metrics {
        server.stop();
    }
    Ok(())
}

/// SIGTERM and SIGINT ask for a graceful stop: sources stop reading, outputs in flight are
/// acknowledged, offsets are committed behind them, and the run ends with status 0. A second
/// signal ends the process at once (status 1).
pub(crate) fn install_stop_signals(stop: impl Fn() + Send + 'static) -> Result<(), String> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT])
        .map_err(|e| format!("installing the signal handler: {e}"))?;
    std::thread::Builder::new()
        .name("stop-signal".into())
        .spawn(move || {
            for (n, signal) in signals.forever().enumerate() {
                if n > 0 {
                    eprintln!("sentinel: signal {signal} again: exiting now");
                    std::process::exit(1);
                }
                eprintln!("sentinel: stopping on signal {signal}: finishing what is in flight");
                stop();
            }
        })
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// The source's settings from the configuration, as every command that runs the job uses them.
pub(crate) fn ingest_config(
    cfg: &SentinelConfig,
    lateness_ms: u64,
    plan: &AggregationPlan,
    guards: Option<&GuardSpec>,
) -> IngestConfig {
    IngestConfig {
        lateness_ms,
        max_clock_step_ms: cfg.job.max_clock_step_ms(lateness_ms),
        max_future_ms: Some(cfg.job.max_future.0),
        clock_confirm_records: cfg.job.clock_confirm_records,
        limits: DecodeLimits {
            max_event_bytes: cfg.job.max_event_bytes,
            ..DecodeLimits::default()
        },
        dead_letter_keep: cfg.job.dead_letter_keep_bytes,
        batch_records: cfg.job.batch_records.max(1),
        speed: None,
        idle_timeout: std::time::Duration::from_millis(cfg.job.idle_partition_timeout.0),
        horizon_widths: plan.groups.iter().map(|g| g.0).collect(),
        commit_interval: std::time::Duration::from_millis(cfg.kafka.commit_interval.0),
        drain_timeout: std::time::Duration::from_millis(cfg.job.shutdown_timeout.0),
        screening: guards.map(|g| Arc::clone(&g.screening)),
        max_skew_ms: None,
    }
}

/// Where `--judge-replay` reads the verdict journal.
pub(crate) enum JudgeReplay {
    /// A `judgements.jsonl` file.
    File(PathBuf),
    /// The judgements topic.
    Kafka {
        /// The cluster.
        settings: KafkaSettings,
        /// The topic.
        topic: String,
    },
}

/// The judge stage: live provider calls, or the journal with `replay`.
fn judge_spec(cfg: &SentinelConfig, replay: Option<JudgeReplay>) -> Result<Option<(JudgeSpec, usize)>, String> {
    let Some(resolved) = cfg.judges().map_err(|(key, why)| format!("key `{key}`: {why}"))? else {
        if replay.is_some() {
            return Err("--judge-replay: `shadow_agents.enabled` is off, so no judge would be asked".into());
        }
        return Ok(None);
    };
    let (service, live): (Arc<dyn JudgeService>, Option<Arc<LiveJudges>>) = match replay {
        None => {
            let live = Arc::new(LiveJudges::start(resolved.judge.clone())?);
            (live.clone(), Some(live))
        }
        Some(JudgeReplay::File(path)) => {
            let text = std::fs::read_to_string(&path).map_err(|e| format!("--judge-replay {}: {e}", path.display()))?;
            let journal =
                JournalReplay::from_jsonl(&text).map_err(|e| format!("--judge-replay {}: {e}", path.display()))?;
            tracing::info!(
                verdicts = journal.len(),
                "replaying judge verdicts from {}",
                path.display()
            );
            (Arc::new(journal), None)
        }
        Some(JudgeReplay::Kafka { settings, topic }) => {
            let journal = JournalReplay::new(
                crate::kafka_input::read_journal(&settings, &topic)
                    .map_err(|e| format!("--judge-replay kafka: {e}"))?,
            );
            tracing::info!(verdicts = journal.len(), "replaying judge verdicts from {topic}");
            (Arc::new(journal), None)
        }
    };
    Ok(Some((
        JudgeSpec {
            agents: resolved.agents,
            service,
            live,
            decider: resolved.decider,
            timeout: resolved.judge.timeout,
        },
        resolved.excerpt_bytes,
    )))
}

/// The guard stage as configured, or `None` when `guards.enabled` is off.
pub(crate) fn guard_spec(cfg: &SentinelConfig, replay: Option<JudgeReplay>) -> Result<Option<GuardSpec>, String> {
    if !cfg.guards.enabled {
        return Ok(None);
    }
    let judges = judge_spec(cfg, replay)?;
    guards_with(cfg, judges).map(Some)
}

/// The guards without judges: what `serve`'s `testDetector` runs, starting no provider client.
pub(crate) fn guards_without_judges(cfg: &SentinelConfig) -> Result<Option<GuardSpec>, String> {
    if !cfg.guards.enabled {
        return Ok(None);
    }
    guards_with(cfg, None).map(Some)
}

fn guards_with(cfg: &SentinelConfig, judges: Option<(JudgeSpec, usize)>) -> Result<GuardSpec, String> {
    let policies = cfg.policies().map_err(|(key, why)| format!("key `{key}`: {why}"))?;
    let mut learned = cfg
        .detectors
        .iter()
        .filter(|d| d.enabled)
        .filter_map(|d| d.ml().map(|m| (d, m)));
    let classifier = match learned.next() {
        Some((d, ml)) => {
            if let Some((other, _)) = learned.next() {
                return Err(format!(
                    "detectors `{}` and `{}`: one `type: ml` detector at a time",
                    d.id, other.id
                ));
            }
            let score_responses = ml.features.iter().any(|f| f == "response_text");
            let c = PromptClassifier::load(Path::new(&ml.model), ml.threshold.map(|t| t as f32), score_responses)
                .map_err(|e| format!("detector `{}`: {e}", d.id))?;
            Some(Arc::new(c))
        }
        None => None,
    };
    let excerpt_bytes = judges.as_ref().map_or(0, |(_, bytes)| *bytes);
    Ok(GuardSpec {
        screening: Arc::new(Screening::with_classifier(policies.clone(), classifier).with_excerpts(excerpt_bytes)),
        policies,
        behavior: cfg.guards.behavior.clone(),
        write_decisions: cfg.guards.decisions,
        judges: judges.map(|(spec, _)| spec),
    })
}

/// librdkafka settings from the `kafka` section.
pub(crate) fn kafka_settings(k: &KafkaConfig) -> KafkaSettings {
    let text = |m: &std::collections::BTreeMap<String, crate::config::PropertyValue>| {
        m.iter().map(|(k, v)| (k.clone(), v.to_string())).collect()
    };
    KafkaSettings {
        brokers: k.brokers.joined(),
        properties: text(&k.properties),
        consumer_properties: text(&k.consumer_properties),
        producer_properties: text(&k.producer_properties),
    }
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
