//! The server the API tests run against: a store with thirty anomalies, read and admin keys,
//! a fixed clock, and a feed to add more while clients listen.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use reqwest::blocking::Client;
use reqwest::StatusCode;
use sentinel_dataflows::model::{Anomaly, Severity};
use sentinel_serve::api::{ApiState, Server, TestDetector};
use sentinel_serve::auth::{ApiKey, Keys, Scope};
use sentinel_serve::feed::Feed;
use sentinel_serve::lifecycle::LifecycleEvent;
use sentinel_serve::live::Live;
use sentinel_serve::store::{SqliteStore, Store, StoreOptions};
use serde_json::{json, Value};

pub const T0: u64 = 1_717_200_000_000;

/// The `i`th sample anomaly: `cost-spike` on application `chat`, one a minute from `T0`,
/// critical when `i` is even.
pub fn anomaly(i: u64) -> Vec<u8> {
    let severity = if i.is_multiple_of(2) {
        Severity::Critical
    } else {
        Severity::Warning
    };
    let a = Anomaly::sample(
        &[b"cost-spike", &i.to_le_bytes()],
        "cost-spike",
        severity,
        0.9,
        "chat",
        T0 + i * 60_000,
    );
    serde_json::to_vec(&a).unwrap()
}

/// A running server over a fresh store.
pub struct Api {
    pub server: Server,
    _feed: Feed,
    _dir: tempfile::TempDir,
    pub published: Arc<Mutex<Vec<LifecycleEvent>>>,
    pub client: Client,
    pub store: Arc<dyn Store>,
    pub live: Live,
}

impl Api {
    pub fn start() -> Api {
        Api::start_with(None, sentinel_serve::live::BEHIND)
    }

    /// With a `testDetector` answer, telling subscribers they are behind at `behind`.
    pub fn start_with(test_detector: Option<TestDetector>, behind: u64) -> Api {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(StoreOptions::at(dir.path().join("s.db"))).unwrap();
        store.add_anomalies((0..30).map(anomaly).collect()).unwrap();
        let store: Arc<dyn Store> = Arc::new(store);
        let live = Live::of(&*store).behind_at(behind);
        let published = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&published);
        let (feed, sender) = Feed::start(Arc::clone(&store), live.clone());
        let into_feed = sender.publisher();
        let state = ApiState {
            store: Arc::clone(&store),
            keys: Keys::new(vec![
                ApiKey {
                    key: "read-key-1".into(),
                    scope: Scope::Read,
                },
                ApiKey {
                    key: "admin-key-1".into(),
                    scope: Scope::Admin,
                },
            ]),
            detectors: Arc::new(vec![json!({"id": "cost-spike"})]),
            publish: Arc::new(move |e: &LifecycleEvent| {
                sink.lock().unwrap().push(e.clone());
                into_feed(e)
            }),
            clock: || T0 + 3_600_000,
            live: live.clone(),
            test_detector,
            metrics: Arc::new(sentinel_serve::exporter::registry(None, None, || T0)),
        };
        let server = Server::start("127.0.0.1:0".parse().unwrap(), state).unwrap();
        Api {
            server,
            _feed: feed,
            _dir: dir,
            published,
            client: Client::new(),
            store,
            live,
        }
    }

    /// Stores anomalies as the feed would, in one batch, and tells the subscribers.
    pub fn add(&self, records: impl IntoIterator<Item = Vec<u8>>) {
        let added = self.store.add_anomalies(records.into_iter().collect()).unwrap();
        self.live.stored(added.last_seq);
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.server.addr)
    }

    pub fn get(&self, path: &str, key: Option<&str>) -> (StatusCode, Value) {
        let mut req = self.client.get(self.url(path));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        let resp = req.send().unwrap();
        (resp.status(), resp.json().unwrap_or(Value::Null))
    }

    pub fn post(&self, path: &str, key: &str, body: Value) -> (StatusCode, Value) {
        let resp = self
            .client
            .post(self.url(path))
            .bearer_auth(key)
            .json(&body)
            .send()
            .unwrap();
        (resp.status(), resp.json().unwrap_or(Value::Null))
    }
}

/// A closed one-minute window's aggregate, as the job writes it: `dimension` `key`, ending
/// `minute` minutes after `T0`, with `cost`, and users' too (which the store does not keep).
pub fn aggregate(dimension: &str, key: &str, minute: u64, cost: f64) -> Vec<u8> {
    let end = T0 + minute * 60_000;
    serde_json::to_vec(&json!({
        "id": format!("{dimension}-{key}-{minute}"),
        "dimension": dimension,
        "key": key,
        "window_start": sentinel_dataflows::time::format_rfc3339_ms(end - 60_000),
        "window_end": sentinel_dataflows::time::format_rfc3339_ms(end),
        "width_ms": 60_000,
        "requests": 10, "errors": 1, "request_events": 10, "tool_calls": 0, "error_rate": 0.1,
        "prompt_tokens": 100, "completion_tokens": 50, "total_tokens": 150,
        "cost": cost,
        "latency_mean_ms": 200.0, "latency_p95_ms": 400.0, "latency_p99_ms": 500.0,
    }))
    .unwrap()
}
