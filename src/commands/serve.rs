//! `sentinel serve`: the serving layer as a process of its own, fed from the job's topics.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sentinel_connectors::kafka::AckedPublisher;
use sentinel_serve::feed::FeedStream;
use sentinel_serve::store::{KeptDecisions, OutcomeKind};

use crate::config::{Brokers, SentinelConfig, DEFAULT_CONFIG};
use crate::kafka_input::ensure_job_topics;
use crate::streams::OutputStream;
use crate::topic_feed::TopicFeed;

const HELP: &str = "\
sentinel serve: the dashboard, REST and GraphQL APIs and /metrics, from the job's topics

  --config FILE       YAML configuration: kafka (brokers, output topics) and serve (API keys,
                      store, retention); default: the built-in one
  --listen ADDR       where to listen (default 127.0.0.1:8080); without serve.api_keys only a
                      loopback address is accepted
  --brokers LIST      Kafka bootstrap servers (overrides kafka.brokers)
  --store FILE        the store's SQLite file: kept, and resumed from where it was read to
                      (default: a new file in the temp dir, rebuilt from the topics and
                      removed at exit)

It reads the anomalies, aggregates, anomaly-events, alerts, actions, incidents, judgements and
decisions topics from the start (or from where the store got to), so any number of replicas
can run side by side; of the decisions it keeps those serve.decisions says (the flagged ones). An acknowledge or resolve
is published to the anomaly-events topic and applied when read back, in the topic's order, by
every replica alike. Stops on SIGTERM or Ctrl-C.
";

/// How long a lifecycle change may wait for the broker.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(5);

/// Entry point.
pub fn main(args: Vec<String>) -> Result<(), String> {
    let mut opts = getopts::Options::new();
    for (name, hint) in [
        ("config", "FILE"),
        ("listen", "ADDR"),
        ("brokers", "LIST"),
        ("store", "FILE"),
    ] {
        opts.optopt("", name, "", hint);
    }
    opts.optflag("", "help", "");
    let m = opts.parse(&args).map_err(|e| format!("{e}\n\n{HELP}"))?;
    if m.opt_present("help") {
        print!("{HELP}");
        return Ok(());
    }
    let cfg = match m.opt_str("config") {
        Some(path) => SentinelConfig::load(Path::new(&path)).map_err(|e| e.to_string())?,
        None => SentinelConfig::parse(DEFAULT_CONFIG).map_err(|e| format!("built-in config: {e}"))?,
    };
    let addr = m.opt_str("listen").unwrap_or_else(|| "127.0.0.1:8080".into());
    let listen = addr
        .parse()
        .map_err(|_| format!("--listen: `{addr}` is not host:port, e.g. 127.0.0.1:8080"))?;
    let mut kafka = cfg.kafka.clone();
    if let Some(brokers) = m.opt_str("brokers") {
        kafka.brokers = Brokers::One(brokers);
    }
    let settings = super::run::kafka_settings(&kafka);
    let topic = |s: OutputStream| kafka.output_topics.of(s).to_owned();
    let mut topics = vec![
        (topic(OutputStream::Anomalies), FeedStream::Anomalies),
        (topic(OutputStream::Aggregates), FeedStream::Aggregates),
        (topic(OutputStream::AnomalyEvents), FeedStream::AnomalyEvents),
        (topic(OutputStream::Alerts), FeedStream::Alerts),
        (topic(OutputStream::Actions), FeedStream::Outcomes(OutcomeKind::Action)),
        (
            topic(OutputStream::Incidents),
            FeedStream::Outcomes(OutcomeKind::Incident),
        ),
        (
            topic(OutputStream::Judgements),
            FeedStream::Outcomes(OutcomeKind::Judgement),
        ),
    ];
    if cfg.serve.decisions != KeptDecisions::None {
        topics.push((
            topic(OutputStream::Decisions),
            FeedStream::Outcomes(OutcomeKind::Decision),
        ));
    }
    let names: Vec<String> = topics.iter().map(|(t, _)| t.clone()).collect();
    ensure_job_topics(&settings, &kafka, &names, false, None)?;
    let events_topic = topic(OutputStream::AnomalyEvents);
    let publisher = AckedPublisher::create(&settings, PUBLISH_TIMEOUT)?;
    let publish: sentinel_serve::api::Publish = Arc::new(move |event| {
        let record = serde_json::to_vec(event).map_err(|e| e.to_string())?;
        // Keyed by anomaly: one anomaly's changes share a partition, so every replica reads
        // them in the same order.
        publisher.publish(&events_topic, event.anomaly_id.as_bytes(), &record)
    });
    let tester = crate::detector_test::tester(&crate::detector_test::spec_of(&cfg)?);
    let serving = crate::serving::Serving::start(
        listen,
        m.opt_str("store").map(PathBuf::from),
        &cfg,
        Some(tester),
        None,
        crate::serving::Publisher::Topic(publish),
    )?;
    let positions = serving.store().positions()?;
    let reader = TopicFeed::start(&settings, &topics, &positions, serving.sender())?;
    eprintln!(
        "sentinel serve: reading {0} from {1}; serving the API on http://{2} (dashboard http://{2}/), store {3}",
        names.join(", "),
        kafka.brokers.joined(),
        serving.addr(),
        serving.store_path.display(),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let on_signal = Arc::clone(&stop);
    super::run::install_stop_signals(move || on_signal.store(true, Ordering::Relaxed))?;
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
    }
    // The reader holds a feed sender: it stops first, so the feed can drain and end.
    reader.stop();
    serving.stop();
    Ok(())
}
