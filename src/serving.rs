//! The serving layer's store, feed and server, as `run --serve` runs them inside the job (fed
//! in-process from its sinks) and `sentinel serve` runs them on their own (fed from the topics).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use sentinel_dataflows::operators::JobStats;
use sentinel_serve::api::{wall_clock_ms, ApiState, Publish, Server, TestDetector};
use sentinel_serve::exporter;
use sentinel_serve::feed::{Feed, FeedSender};
use sentinel_serve::live::Live;
use sentinel_serve::store::{SqliteStore, Store, StoreOptions};
use serde_json::{json, Value};

use crate::config::SentinelConfig;

/// The store, its feed and the HTTP server of one run.
pub struct Serving {
    feed: Feed,
    sender: FeedSender,
    server: Server,
    store: Arc<dyn Store>,
    /// The store's file.
    pub store_path: PathBuf,
    /// Whether the file is this run's scratch (no `--store`, no `serve.store`): removed at the end.
    scratch: bool,
}

/// Where people's lifecycle changes go.
pub enum Publisher {
    /// Straight into the feed: the embedded run's anomaly-events stream.
    Feed,
    /// Into a durable log first (the delivery's outbox, so it resolves incidents), then the feed.
    LoggedThenFeed(Publish),
    /// To the anomaly-events topic, which the feed reads back.
    Topic(Publish),
}

/// The detectors as `/api/v1/detectors` lists them.
fn detectors_of(cfg: &SentinelConfig) -> Vec<Value> {
    cfg.detectors
        .iter()
        .map(|d| {
            json!({
                "id": d.id,
                "name": d.name.clone().unwrap_or_else(|| d.id.clone()),
                "type": serde_json::to_value(d.detector_type).unwrap_or(Value::Null),
                "enabled": d.enabled,
                "actions": d.actions.len(),
            })
        })
        .collect()
}

impl Serving {
    /// Opens the store at `store_path` (else `serve.store`, else a fresh file next to the
    /// system's temporary files) and serves the API on `listen`, with `serve.api_keys`;
    /// `test_detector` answers GraphQL's `testDetector`, `stats` are the job's counters for
    /// `/metrics`, and `publisher` says where people's lifecycle changes go.
    pub fn start(
        listen: SocketAddr,
        store_path: Option<PathBuf>,
        cfg: &SentinelConfig,
        test_detector: Option<TestDetector>,
        stats: Option<Arc<JobStats>>,
        publisher: Publisher,
    ) -> Result<Serving, String> {
        let keys = cfg.serve.keys().map_err(|(key, why)| format!("key `{key}`: {why}"))?;
        let chosen = store_path.or_else(|| cfg.serve.store.clone());
        let scratch = chosen.is_none();
        let store_path = chosen.unwrap_or_else(|| {
            std::env::temp_dir().join(format!("sentinel-serve-{}-{}.db", std::process::id(), wall_clock_ms()))
        });
        let mut options = StoreOptions::at(&store_path);
        options.retain_ms = cfg.serve.retention.map(|r| r.0);
        options.retain_count = cfg.serve.max_anomalies;
        options.decisions = cfg.serve.decisions;
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(options)?);
        let live = Live::of(&*store);
        let (feed, sender) = Feed::start(Arc::clone(&store), live.clone());
        let publish = match publisher {
            Publisher::Feed => sender.publisher(),
            Publisher::LoggedThenFeed(log) => {
                let into_feed = sender.publisher();
                Arc::new(move |event: &sentinel_serve::lifecycle::LifecycleEvent| {
                    log(event)?;
                    into_feed(event)
                })
            }
            Publisher::Topic(publish) => publish,
        };
        let state = ApiState {
            keys,
            detectors: Arc::new(detectors_of(cfg)),
            publish,
            clock: wall_clock_ms,
            live,
            test_detector,
            metrics: Arc::new(exporter::registry(stats, Some(Arc::clone(&store)), wall_clock_ms)),
            store: Arc::clone(&store),
        };
        let server = Server::start(listen, state)?;
        Ok(Serving {
            feed,
            sender,
            server,
            store,
            store_path,
            scratch,
        })
    }

    /// Where the API listens.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// A sender for the job's sinks.
    pub fn sender(&self) -> FeedSender {
        self.sender.clone()
    }

    /// The job is over: waits until everything fed is stored, then serves until `stop`
    /// says so (SIGTERM or SIGINT).
    pub fn serve_until(self, stop: impl Fn() -> bool) {
        let added = self.sender.flush();
        eprintln!(
            "sentinel: {added} anomalies stored in {}; serving http://{} until stopped (Ctrl-C)",
            self.store_path.display(),
            self.server.addr
        );
        while !stop() {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        self.stop();
    }

    /// Shuts the server down, then the feed once everything queued is stored; removes a
    /// scratch store.
    pub fn stop(self) {
        // The server holds a sender (its publisher): it goes first, then the feed ends.
        self.server.stop();
        drop(self.sender);
        self.feed.finish();
        if self.scratch {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", self.store_path.display()));
            }
        }
    }
}
