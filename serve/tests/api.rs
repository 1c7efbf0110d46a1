//! The REST API over HTTP on loopback, with a real client: auth scopes, errors that name what is
//! wrong, paging, and lifecycle changes that are published once.

mod common;

use std::sync::Arc;

use common::Api;
use reqwest::StatusCode;
use sentinel_dataflows::act::{IncidentOp, IncidentRecord, ShieldActionType, ShieldRecord};
use sentinel_dataflows::hash::StableId;
use sentinel_dataflows::model::{Decision, Tier};
use sentinel_dataflows::time::format_rfc3339_ms;
use sentinel_serve::api::{ApiState, Server};
use sentinel_serve::auth::Keys;
use sentinel_serve::live::Live;
use sentinel_serve::store::{OutcomeKind, SqliteStore, StoreOptions};
use serde_json::{json, Value};

#[test]
fn keys_scopes_and_errors_that_name_the_fault() {
    let api = Api::start();
    let (status, body) = api.get("/api/v1/anomalies", None);
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "unauthenticated");
    assert_eq!(api.get("/api/v1/anomalies", Some("wrong")).0, StatusCode::UNAUTHORIZED);
    assert_eq!(api.get("/api/v1/anomalies", Some("read-key-1")).0, StatusCode::OK);
    assert_eq!(
        api.get("/metrics", None).0,
        StatusCode::UNAUTHORIZED,
        "metrics need a key too"
    );
    let scrape = api
        .client
        .get(api.url("/metrics"))
        .bearer_auth("read-key-1")
        .send()
        .unwrap();
    assert!(scrape.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text"));
    assert!(scrape.text().unwrap().ends_with("# EOF\n"));
    // The page itself needs no key; it holds no data.
    let page = api.client.get(api.url("/")).send().unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("default-src 'none'"));

    let (status, body) = api.get("/api/v1/anomalies?severity=critical,urgent", Some("read-key-1"));
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("`urgent`") && message.contains("severity"),
        "{message}"
    );
    let (status, body) = api.get("/api/v1/anomalies?severty=critical", Some("read-key-1"));
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"]["message"].as_str().unwrap().contains("`severty`"));
    let (status, body) = api.get("/api/v1/anomalies?start=yesterday", Some("read-key-1"));
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"]["message"].as_str().unwrap().contains("`start`"));
    let (status, body) = api.get("/api/v1/statistics?group_by=colour", Some("read-key-1"));
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"]["message"].as_str().unwrap().contains("`colour`"));
    assert_eq!(
        api.get("/api/v1/anomalies/nope", Some("read-key-1")).0,
        StatusCode::NOT_FOUND
    );

    // Reading keys cannot change anything.
    let (_, page) = api.get("/api/v1/anomalies?limit=1", Some("read-key-1"));
    let id = page["anomalies"][0]["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/anomalies/{id}/acknowledge");
    let (status, _) = api.post(&path, "read-key-1", json!({"acknowledged_by": "ana"}));
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = api.post(&path, "admin-key-1", json!({"note": "no name"}));
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"]["message"].as_str().unwrap().contains("acknowledged_by"));
    assert!(api.published.lock().unwrap().is_empty());
}

#[test]
fn pages_filters_and_the_lifecycle_over_http() {
    let api = Api::start();
    let key = Some("read-key-1");
    // The seed's client: start, end, severity, status, limit.
    let start = "2024-06-01T00:10:00";
    let end = "2024-06-01T00:20:00Z";
    let (status, body) = api.get(
        &format!("/api/v1/anomalies?start={start}&end={end}&severity=critical&status=active&limit=100"),
        key,
    );
    assert_eq!(status, StatusCode::OK, "{body}");
    // Minutes 10..20 (exclusive), critical on even minutes.
    assert_eq!(body["total"], 5);
    assert!(body["anomalies"]
        .as_array()
        .unwrap()
        .iter()
        .all(|a| a["severity"] == "critical" && a["status"] == "active"));

    // Cursor pages cover every anomaly once.
    let mut ids = std::collections::BTreeSet::new();
    let mut path = "/api/v1/anomalies?limit=7".to_owned();
    loop {
        let (_, page) = api.get(&path, key);
        for a in page["anomalies"].as_array().unwrap() {
            assert!(ids.insert(a["id"].as_str().unwrap().to_owned()));
        }
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/api/v1/anomalies?limit=7&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(ids.len(), 30);

    let id = ids.iter().next().unwrap().clone();
    let ack = format!("/api/v1/anomalies/{id}/acknowledge");
    let (status, body) = api.post(&ack, "admin-key-1", json!({"acknowledged_by": "ana", "note": "on it"}));
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "acknowledged");
    assert_eq!(body["acknowledged_by"], "ana");
    assert_eq!(body["acknowledged_at"], "2024-06-01T01:00:00.000Z");
    let (status, body) = api.post(&ack, "admin-key-1", json!({"acknowledged_by": "bo"}));
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let resolve = format!("/api/v1/anomalies/{id}/resolve");
    assert_eq!(
        api.post(&resolve, "admin-key-1", json!({"resolved_by": "ana"})).0,
        StatusCode::OK
    );
    let (_, one) = api.get(&format!("/api/v1/anomalies/{id}"), key);
    assert_eq!(one["status"], "resolved");
    assert_eq!(one["history"].as_array().unwrap().len(), 2);
    let published = api.published.lock().unwrap().clone();
    assert_eq!(published.len(), 2, "each accepted change published once");
    assert_eq!(published[0].anomaly_id, id);

    let (_, stats) = api.get("/api/v1/statistics?group_by=detector_id,severity", key);
    assert_eq!(stats["total_anomalies"], 30);
    assert_eq!(stats["groups"].as_array().unwrap().len(), 2);
    assert_eq!(stats["groups"][0]["detector_id"], "cost-spike");
    assert!(stats["mttr_seconds"].as_f64().unwrap() > 0.0);
    let (_, detectors) = api.get("/api/v1/detectors", key);
    assert_eq!(detectors["detectors"][0]["id"], "cost-spike");
}

#[test]
fn metric_series_count_the_stored_anomalies_per_bucket() {
    let api = Api::start();
    let body = json!({
        "metrics": ["anomaly_rate", "anomaly_count", "detection_latency_p99"],
        "start": "2024-06-01T00:00:00Z",
        "end": "2024-06-01T00:40:00Z",
        "aggregation": "avg",
        "granularity": "10m",
    });
    let (status, answer) = api.post("/api/v1/metrics/query", "read-key-1", body.clone());
    assert_eq!(status, StatusCode::OK, "{answer}");
    let series = answer["series"].as_array().unwrap();
    let values = |i: usize| -> Vec<f64> {
        series[i]["datapoints"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["value"].as_f64().unwrap())
            .collect()
    };
    // Thirty anomalies a minute apart from 00:00: ten in each of the first three buckets.
    assert_eq!(series[0]["name"], "anomaly_rate");
    assert_eq!(values(0), vec![1.0, 1.0, 1.0, 0.0]);
    assert_eq!(series[0]["unit"], "anomalies/min");
    assert_eq!(values(1), vec![10.0, 10.0, 10.0, 0.0]);
    assert_eq!(series[1]["datapoints"][2]["timestamp"], "2024-06-01T00:20:00.000Z");
    assert_eq!(values(2).len(), 3, "no latency where nothing was detected");
    assert!(values(2).iter().all(|l| *l > 0.0));

    let mut bad = body.clone();
    bad["metrics"] = json!(["anomaly_rate", "cpu"]);
    let (status, answer) = api.post("/api/v1/metrics/query", "read-key-1", bad);
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(answer["error"]["message"].as_str().unwrap().contains("`cpu`"));
    let mut bad = body;
    bad["granularity"] = json!("whenever");
    let (status, answer) = api.post("/api/v1/metrics/query", "read-key-1", bad);
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(answer["error"]["message"].as_str().unwrap().contains("granularity"));
}

#[test]
fn aggregate_metrics_come_one_series_per_application() {
    let api = Api::start();
    let mut records = Vec::new();
    for minute in 1..=20 {
        records.push(common::aggregate("application", "chat", minute, 0.5));
        records.push(common::aggregate("application", "search", minute, 0.25));
        records.push(common::aggregate("user", "u1", minute, 9.0));
    }
    // A copy (at-least-once) replaces, and does not add.
    records.push(common::aggregate("application", "chat", 1, 0.5));
    assert_eq!(
        api.store.add_aggregates(records).unwrap().new,
        41,
        "users' are not kept"
    );
    let query = json!({
        "metrics": ["cost", "error_rate"],
        "start": "2024-06-01T00:00:00Z",
        "end": "2024-06-01T00:20:00Z",
        "aggregation": "sum",
        "granularity": "10m",
    });
    let (status, answer) = api.post("/api/v1/metrics/query", "read-key-1", query.clone());
    assert_eq!(status, StatusCode::OK, "{answer}");
    let series = answer["series"].as_array().unwrap();
    let of = |name: &str, app: &str| {
        series
            .iter()
            .find(|s| s["name"] == name && s["dimensions"]["application_id"] == app)
            .unwrap_or_else(|| panic!("{name} of {app}: {answer}"))["datapoints"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["value"].as_f64().unwrap())
            .collect::<Vec<_>>()
    };
    // Windows ending 00:01..00:10 fall in the first bucket, 00:11..00:20 in the second.
    assert_eq!(of("cost", "chat"), vec![5.0, 5.0]);
    assert_eq!(of("cost", "search"), vec![2.5, 2.5]);
    assert_eq!(
        of("error_rate", "chat"),
        vec![0.1, 0.1],
        "errors over requests, whatever the aggregation"
    );
    assert_eq!(series.len(), 4);

    let mut one = query.clone();
    one["dimensions"] = json!([{"name": "application_id", "value": "search"}]);
    let (_, answer) = api.post("/api/v1/metrics/query", "read-key-1", one);
    assert!(answer["series"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["dimensions"]["application_id"] == "search"));
    let mut bad = query;
    bad["dimensions"] = json!([{"name": "region"}]);
    let (status, answer) = api.post("/api/v1/metrics/query", "read-key-1", bad);
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(answer["error"]["message"].as_str().unwrap().contains("`region`"));
}

#[test]
fn without_keys_only_loopback_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(StoreOptions::at(dir.path().join("s.db"))).unwrap();
    let store: Arc<dyn sentinel_serve::store::Store> = Arc::new(store);
    let state = ApiState {
        live: Live::of(&*store),
        store,
        keys: Keys::default(),
        detectors: Arc::new(Vec::new()),
        publish: Arc::new(|_| Ok(())),
        clock: || 0,
        test_detector: None,
        metrics: Arc::new(sentinel_serve::exporter::registry(None, None, || 0)),
    };
    let refused = Server::start("0.0.0.0:0".parse().unwrap(), state.clone())
        .err()
        .unwrap();
    assert!(refused.contains("loopback"), "{refused}");
    let server = Server::start("127.0.0.1:0".parse().unwrap(), state).unwrap();
    let body: Value = reqwest::blocking::get(format!("http://{}/api/v1/anomalies", server.addr))
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(body["total"], 0);
}

/// A Shield request behind `anomaly`, `minute` minutes after `T0`.
fn shield(anomaly: &str, action: ShieldActionType, minute: u64) -> Vec<u8> {
    let action_id = StableId::of(&[anomaly.as_bytes()]);
    serde_json::to_vec(&ShieldRecord {
        action_id,
        delivery_id: ShieldRecord::delivery_id_of(action_id, action),
        action,
        target_entity: "application:chat".into(),
        reason: "cost spike".into(),
        duration_seconds: 600,
        parameters: Default::default(),
        anomaly_id: anomaly.into(),
        detector_id: "cost-spike".into(),
        endpoint: None,
        timestamp: format_rfc3339_ms(common::T0 + minute * 60_000),
    })
    .unwrap()
}

#[test]
fn what_was_done_about_an_anomaly_and_why_a_request_was_stopped() {
    let api = Api::start();
    let key = Some("read-key-1");
    let (_, page) = api.get("/api/v1/anomalies?limit=2", key);
    let first = page["anomalies"][0]["id"].as_str().unwrap().to_owned();
    let second = page["anomalies"][1]["id"].as_str().unwrap().to_owned();
    let store = &api.store;
    // A block and, ten minutes on, its unblock for the first; a rate limit for the second.
    store
        .add_outcomes(
            OutcomeKind::Action,
            vec![
                shield(&first, ShieldActionType::Block, 30),
                shield(&first, ShieldActionType::Unblock, 40),
                shield(&second, ShieldActionType::RateLimit, 31),
            ],
        )
        .unwrap();
    let resolve = IncidentRecord {
        id: StableId::of(&[b"incident-resolve"]),
        incident_key: StableId::of(&[b"incident"]),
        entity: "application:chat".into(),
        anomaly_id: first.clone(),
        detector_id: "cost-spike".into(),
        op: IncidentOp::Resolve {
            resolution: "quiet again".into(),
        },
        timestamp: format_rfc3339_ms(common::T0 + 40 * 60_000),
    };
    store
        .add_outcomes(OutcomeKind::Incident, vec![serde_json::to_vec(&resolve).unwrap()])
        .unwrap();
    let decisions = [
        ("e-allowed", Tier::Allow),
        ("e-warned", Tier::Warn),
        ("e-blocked", Tier::Block),
    ];
    let kept = store
        .add_outcomes(
            OutcomeKind::Decision,
            decisions
                .iter()
                .enumerate()
                .map(|(i, (id, tier))| {
                    serde_json::to_vec(&Decision::sample(id, "chat", *tier, common::T0 + i as u64 * 1_000)).unwrap()
                })
                .collect(),
        )
        .unwrap();
    assert_eq!(kept, 2, "a request let through unflagged is not kept");
    let mut verdict: Value = serde_json::from_str(include_str!("judgement.json")).unwrap();
    verdict["event_id"] = json!("e-blocked");
    verdict["key"] = json!("e-blocked|shadow_input");
    store
        .add_outcomes(OutcomeKind::Judgement, vec![serde_json::to_vec(&verdict).unwrap()])
        .unwrap();

    // One anomaly, with what was done about it, newest first.
    let (status, one) = api.get(&format!("/api/v1/anomalies/{first}"), key);
    assert_eq!(status, StatusCode::OK, "{one}");
    let types: Vec<&str> = one["shield_actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["unblock", "block"]);
    assert_eq!(
        one["incident_requests"][0]["op"]["resolve"]["resolution"],
        "quiet again"
    );

    let (_, listed) = api.get(&format!("/api/v1/actions?anomaly_id={second}"), key);
    assert_eq!(
        (listed["total"].as_u64(), listed["actions"][0]["type"].as_str()),
        (Some(1), Some("rate_limit"))
    );
    let (_, listed) = api.get("/api/v1/actions?type=block,unblock&target=application:chat", key);
    assert_eq!(listed["total"], 2);
    let (_, listed) = api.get("/api/v1/actions?end=2024-06-01T00:35:00Z", key);
    assert_eq!(listed["total"], 2, "the unblock is after the end");
    let (_, listed) = api.get("/api/v1/incidents?op=resolve", key);
    assert_eq!(listed["incidents"][0]["anomaly_id"], first.as_str());

    // Decisions: the flagged ones, filtered by tier and application, and one request's
    // decision with the judges' verdicts.
    let (_, listed) = api.get("/api/v1/decisions", key);
    assert_eq!(listed["total"], 2);
    assert_eq!(listed["decisions"][0]["event_id"], "e-blocked", "newest first");
    let (_, listed) = api.get("/api/v1/decisions?tier=block&application_id=chat", key);
    assert_eq!(listed["total"], 1);
    let (status, why) = api.get("/api/v1/decisions/e-blocked", key);
    assert_eq!(status, StatusCode::OK, "{why}");
    assert_eq!(why["decision"]["blocked"], true);
    assert_eq!(why["judgements"][0]["analysis"]["agent_type"], "shadow_input");
    let (_, listed) = api.get("/api/v1/judgements?event_id=e-blocked&agent=shadow_input", key);
    assert_eq!(listed["total"], 1);
    let (status, _) = api.get("/api/v1/decisions/e-allowed", key);
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Errors name the parameter or value; reading needs a key.
    let (status, body) = api.get("/api/v1/actions?type=ban", key);
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("`type`") && message.contains("`ban`"), "{message}");
    let (status, body) = api.get("/api/v1/incidents?event_id=e-1", key);
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"]["message"].as_str().unwrap().contains("`event_id`"));
    assert_eq!(api.get("/api/v1/decisions", None).0, StatusCode::UNAUTHORIZED);
    assert_eq!(api.get("/api/v1/decisions/e-blocked", None).0, StatusCode::UNAUTHORIZED);
}
