//! GraphQL over HTTP and WebSockets on loopback, with real clients: the seed's queries and
//! mutation, scopes, errors, and subscriptions in both WebSocket protocols, a lagging one included.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{anomaly, Api};
use futures_util::{SinkExt, StreamExt};
use reqwest::StatusCode;
use sentinel_serve::api::{ApiError, DetectorTest, TestDetector};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

const READ: &str = "read-key-1";
const ADMIN: &str = "admin-key-1";

fn gql(api: &Api, key: Option<&str>, query: &str, variables: Value) -> (StatusCode, Value) {
    let mut req = api
        .client
        .post(api.url("/graphql"))
        .json(&json!({"query": query, "variables": variables}));
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    let resp = req.send().unwrap();
    (resp.status(), resp.json().unwrap_or(Value::Null))
}

fn id_of(i: u64) -> String {
    serde_json::from_slice::<Value>(&anomaly(i)).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

const ANOMALIES: &str = "query($filter: AnomalyFilter, $timeRange: TimeRange!, $pagination: Pagination) {
  anomalies(filter: $filter, timeRange: $timeRange, pagination: $pagination) {
    edges { node { id timestamp detectorId detectorType severity score status title
                   affectedEntity { type id name } relatedAnomalies { id } } cursor }
    pageInfo { hasNextPage endCursor }
    totalCount
  }
}";

#[test]
fn the_seeds_queries_answer_from_the_store_with_cursor_pages() {
    let api = Api::start();
    let range = json!({"start": "2024-06-01T00:00:00Z", "end": "2024-06-02T00:00:00Z"});
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let pagination = match &after {
            Some(c) => json!({"limit": 4, "after": c}),
            None => json!({"limit": 4}),
        };
        let (status, body) = gql(
            &api,
            Some(READ),
            ANOMALIES,
            json!({"filter": {"severities": ["CRITICAL"]}, "timeRange": range, "pagination": pagination}),
        );
        assert_eq!(status, StatusCode::OK);
        assert!(body["errors"].is_null(), "{body}");
        let page = &body["data"]["anomalies"];
        assert_eq!(page["totalCount"], 15, "the even ones of 30");
        for edge in page["edges"].as_array().unwrap() {
            let node = &edge["node"];
            assert_eq!(node["severity"], "CRITICAL");
            assert_eq!(node["status"], "ACTIVE");
            assert_eq!(node["detectorType"], "STATISTICAL");
            assert_eq!(node["affectedEntity"]["type"], "application");
            seen.push(node["id"].as_str().unwrap().to_owned());
        }
        if page["pageInfo"]["hasNextPage"] == true {
            after = Some(page["pageInfo"]["endCursor"].as_str().unwrap().to_owned());
        } else {
            break;
        }
    }
    let want: Vec<String> = (0..30u64).rev().filter(|i| i.is_multiple_of(2)).map(id_of).collect();
    assert_eq!(seen, want, "every critical one once, newest first");

    let (_, body) = gql(
        &api,
        Some(READ),
        "query($id: ID!) { anomaly(id: $id) { id score metrics { observedValue } context { windowEnd } } }",
        json!({"id": id_of(3)}),
    );
    assert_eq!(body["data"]["anomaly"]["id"], id_of(3));
    assert_eq!(body["data"]["anomaly"]["metrics"]["observedValue"], 5.0);
    let (_, body) = gql(&api, Some(READ), "{ anomaly(id: \"nope\") { id } }", json!({}));
    assert!(body["data"]["anomaly"].is_null());

    let (_, body) = gql(
        &api,
        Some(READ),
        "query($t: TimeRange!) { statistics(timeRange: $t, groupBy: [\"detector_id\"]) {
            totalAnomalies averageScore detectionRate mttr
            anomaliesByDetector { detectorId count }
            anomaliesBySeverity { severity count }
            anomaliesByApplication { applicationId count }
            topAffectedEntities { entity count } } }",
        json!({"t": range}),
    );
    let stats = &body["data"]["statistics"];
    assert_eq!(stats["totalAnomalies"], 30);
    assert_eq!(
        stats["anomaliesByDetector"][0],
        json!({"detectorId": "cost-spike", "count": 30})
    );
    let by_severity: Vec<(String, i64)> = stats["anomaliesBySeverity"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["severity"].as_str().unwrap().to_owned(), s["count"].as_i64().unwrap()))
        .collect();
    assert_eq!(by_severity.iter().map(|(_, n)| n).sum::<i64>(), 30);
    assert!(by_severity.contains(&("CRITICAL".into(), 15)));
    assert_eq!(stats["anomaliesByApplication"][0]["applicationId"], "chat");
    assert_eq!(stats["detectionRate"], 30.0 / 24.0, "per hour over the day");
    assert!(stats["mttr"].is_null(), "nothing resolved yet");

    let (_, body) = gql(
        &api,
        Some(READ),
        "query($t: TimeRange!) { metrics(names: [\"anomaly_rate\"], timeRange: $t, aggregation: AVG, granularity: \"15m\") {
            name unit aggregation datapoints { timestamp value } } }",
        json!({"t": {"start": "2024-06-01T00:00:00Z", "end": "2024-06-01T00:30:00Z"}}),
    );
    let series = &body["data"]["metrics"][0];
    assert_eq!(series["name"], "anomaly_rate", "{body}");
    assert_eq!(series["aggregation"], "AVG");
    assert_eq!(
        series["datapoints"],
        json!([{"timestamp": "2024-06-01T00:00:00.000Z", "value": 1.0}, {"timestamp": "2024-06-01T00:15:00.000Z", "value": 1.0}])
    );

    let (_, body) = gql(&api, Some(READ), "{ detectors { id enabled } }", json!({}));
    assert_eq!(body["data"]["detectors"][0]["id"], "cost-spike");
}

#[test]
fn keys_scopes_and_bad_input_are_refused_clearly() {
    let api = Api::start();
    let (status, body) = gql(&api, None, "{ detectors { id } }", json!({}));
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // A form post (no preflight in a browser) is not taken for a query.
    let form = api
        .client
        .post(api.url("/graphql"))
        .bearer_auth(ADMIN)
        .header("Content-Type", "text/plain")
        .body(r#"{"query": "mutation { acknowledgeAnomaly(id: \"x\", acknowledgedBy: \"y\") { id } }"}"#)
        .send()
        .unwrap();
    assert_eq!(form.status(), StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "unauthenticated");

    let ack = "mutation($id: ID!) { acknowledgeAnomaly(id: $id, acknowledgedBy: \"ana@example.com\", note: \"on it\") {
        id status acknowledgedBy acknowledgedAt note } }";
    let (_, body) = gql(&api, Some(READ), ack, json!({"id": id_of(4)}));
    assert_eq!(body["errors"][0]["extensions"]["code"], "forbidden", "{body}");
    assert!(api.published.lock().unwrap().is_empty());

    let (_, body) = gql(&api, Some(ADMIN), ack, json!({"id": id_of(4)}));
    let node = &body["data"]["acknowledgeAnomaly"];
    assert_eq!(node["status"], "ACKNOWLEDGED", "{body}");
    assert_eq!(node["acknowledgedBy"], "ana@example.com");
    assert_eq!(node["acknowledgedAt"], "2024-06-01T01:00:00.000Z");
    assert_eq!(node["note"], "on it");
    let (_, again) = gql(&api, Some(ADMIN), ack, json!({"id": id_of(4)}));
    assert_eq!(again["errors"][0]["extensions"]["code"], "conflict", "{again}");
    let (_, missing) = gql(&api, Some(ADMIN), ack, json!({"id": "nope"}));
    assert_eq!(missing["errors"][0]["extensions"]["code"], "not_found");
    assert_eq!(api.published.lock().unwrap().len(), 1, "one change, published once");
    // REST sees what GraphQL did.
    let (_, rest) = api.get(&format!("/api/v1/anomalies/{}", id_of(4)), Some(READ));
    assert_eq!(rest["status"], "acknowledged");

    let (_, body) = gql(
        &api,
        Some(READ),
        ANOMALIES,
        json!({"filter": {"severities": ["URGENT"]}, "timeRange": {"start": "2024-06-01T00:00:00Z", "end": "x"}}),
    );
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("URGENT") || message.contains("\"x\""), "{message}");

    let (_, body) = gql(
        &api,
        Some(ADMIN),
        "mutation { updateDetector(id: \"cost-spike\", config: {threshold: 4}) { id } }",
        json!({}),
    );
    assert_eq!(body["errors"][0]["extensions"]["code"], "not_supported", "{body}");
    assert!(body["errors"][0]["message"].as_str().unwrap().contains("restart"));
}

#[test]
fn test_detector_runs_what_the_server_was_given_and_names_unknown_detectors() {
    // The job's own tester is exercised in the binary's tests; here, the API's side of it.
    let tester: TestDetector = Arc::new(|id: &str, data: Value| {
        if id != "cost-spike" {
            return Err(ApiError::NotFound(format!("no detector `{id}`")));
        }
        let events = data.as_array().map_or(0, |e| e.len()) as u64;
        let anomalies = (0..events)
            .map(|i| serde_json::from_slice(&anomaly(100 + i)).unwrap())
            .collect();
        Ok(DetectorTest { events, anomalies })
    });
    let api = Api::start_with(Some(tester), sentinel_serve::live::BEHIND);
    let q = "mutation($id: ID!, $data: JSON!) { testDetector(id: $id, testData: $data) {
        detectorId eventsTested detected anomalies { id } } }";
    let (_, body) = gql(&api, Some(READ), q, json!({"id": "cost-spike", "data": [{}, {}]}));
    let result = &body["data"]["testDetector"];
    assert_eq!(result["eventsTested"], 2, "{body}");
    assert_eq!(result["detected"], true);
    assert_eq!(result["anomalies"][1]["id"], id_of(101));
    let (_, body) = gql(&api, Some(READ), q, json!({"id": "nope", "data": []}));
    assert_eq!(body["errors"][0]["extensions"]["code"], "not_found");
}

/// A subscription client speaking `protocol`.
struct Subscriber {
    socket: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    legacy: bool,
}

impl Subscriber {
    async fn connect(api: &Api, protocol: &str, key: &str) -> Result<Subscriber, String> {
        let mut request = format!("ws://{}/graphql", api.server.addr)
            .into_client_request()
            .unwrap();
        request
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", protocol.parse().unwrap());
        let (mut socket, _) = tokio_tungstenite::connect_async(request)
            .await
            .map_err(|e| e.to_string())?;
        let init = json!({"type": "connection_init", "payload": {"Authorization": format!("Bearer {key}")}});
        socket.send(Message::text(init.to_string())).await.unwrap();
        let mut s = Subscriber {
            socket,
            legacy: protocol == "graphql-ws",
        };
        match s.next().await {
            Some(m) if m["type"] == "connection_ack" => Ok(s),
            other => Err(format!("{other:?}")),
        }
    }

    async fn subscribe(&mut self, query: &str) {
        let kind = if self.legacy { "start" } else { "subscribe" };
        let msg = json!({"id": "1", "type": kind, "payload": {"query": query}});
        self.socket.send(Message::text(msg.to_string())).await.unwrap();
    }

    /// The next protocol message that is not a keep-alive.
    async fn next(&mut self) -> Option<Value> {
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(10), self.socket.next())
                .await
                .ok()??
                .ok()?;
            if let Message::Text(text) = msg {
                let v: Value = serde_json::from_str(&text).unwrap();
                if v["type"] != "ka" && v["type"] != "ping" && v["type"] != "pong" {
                    return Some(v);
                }
            }
        }
    }

    /// The next result's payload (`next` or, legacy, `data`).
    async fn result(&mut self) -> Value {
        let m = self.next().await.expect("a result before the timeout");
        let kind = if self.legacy { "data" } else { "next" };
        assert_eq!(m["type"], kind, "{m}");
        m["payload"].clone()
    }
}

const CRITICAL_ONLY: &str = "subscription { anomalyDetected(filter: {severities: [CRITICAL]}) { id severity } }";

/// The client's runtime (the blocking HTTP client in `Api` must not be dropped inside one).
fn client_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn subscriptions_deliver_new_anomalies_in_both_protocols() {
    let api = Api::start();
    client_runtime().block_on(async {
        for protocol in ["graphql-transport-ws", "graphql-ws"] {
            let mut sub = Subscriber::connect(&api, protocol, READ).await.unwrap();
            sub.subscribe(CRITICAL_ONLY).await;
            // The subscription is set up once the server has the message; give it a moment.
            tokio::time::sleep(Duration::from_millis(200)).await;
            let base = if protocol == "graphql-ws" { 200 } else { 100 };
            api.add((base..base + 10).map(anomaly));
            let mut got = Vec::new();
            for _ in 0..5 {
                let payload = sub.result().await;
                assert!(payload["errors"].is_null(), "{payload}");
                assert_eq!(payload["data"]["anomalyDetected"]["severity"], "CRITICAL");
                got.push(payload["data"]["anomalyDetected"]["id"].as_str().unwrap().to_owned());
            }
            let want: Vec<String> = (base..base + 10).filter(|i| i.is_multiple_of(2)).map(id_of).collect();
            assert_eq!(
                got, want,
                "{protocol}: the new critical ones, in order, not the stored ones"
            );
        }
        assert!(
            Subscriber::connect(&api, "graphql-transport-ws", "wrong-key")
                .await
                .is_err(),
            "an unknown key is refused at connection_init"
        );
    });
}

#[test]
fn a_subscriber_that_falls_behind_is_told_and_resent_everything() {
    let api = Api::start_with(None, 50);
    client_runtime().block_on(async {
        let mut sub = Subscriber::connect(&api, "graphql-transport-ws", READ).await.unwrap();
        sub.subscribe("subscription { anomalyDetected { id } }").await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        api.add((1_000..1_200).map(anomaly));
        let told = sub.result().await;
        assert_eq!(told["errors"][0]["extensions"]["code"], "behind", "{told}");
        assert_eq!(told["errors"][0]["extensions"]["backlog"], 200);
        let mut got = Vec::new();
        while got.len() < 200 {
            let payload = sub.result().await;
            got.push(payload["data"]["anomalyDetected"]["id"].as_str().unwrap().to_owned());
        }
        let want: Vec<String> = (1_000..1_200).map(id_of).collect();
        assert_eq!(got, want, "every one, in arrival order, none twice");
    });
}

#[test]
fn metric_updates_come_one_per_window_and_name_as_the_store_takes_them() {
    let api = Api::start();
    client_runtime().block_on(async {
        let mut sub = Subscriber::connect(&api, "graphql-transport-ws", READ).await.unwrap();
        sub.subscribe(
            "subscription { metricsUpdated(names: [\"cost\", \"error_rate\"]) \
             { name timestamp value windowSeconds unit dimensions { name value } } }",
        )
        .await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let records = vec![
            common::aggregate("application", "chat", 1, 0.5),
            common::aggregate("user", "u1", 1, 9.0),
            common::aggregate("application", "search", 1, 0.25),
        ];
        let added = api.store.add_aggregates(records).unwrap();
        api.live.aggregates_stored(added.last_seq);
        let mut got = Vec::new();
        for _ in 0..4 {
            let payload = sub.result().await;
            assert!(payload["errors"].is_null(), "{payload}");
            let u = &payload["data"]["metricsUpdated"];
            assert_eq!(u["windowSeconds"], 60);
            assert_eq!(u["dimensions"][0]["name"], "application");
            got.push((
                u["name"].as_str().unwrap().to_owned(),
                u["dimensions"][0]["value"].as_str().unwrap().to_owned(),
                u["value"].as_f64().unwrap(),
                u["unit"].as_str().unwrap().to_owned(),
            ));
        }
        let want = [
            ("cost", "chat", 0.5, "usd"),
            ("error_rate", "chat", 0.1, "ratio"),
            ("cost", "search", 0.25, "usd"),
            ("error_rate", "search", 0.1, "ratio"),
        ];
        let want: Vec<(String, String, f64, String)> = want
            .iter()
            .map(|(n, k, v, u)| ((*n).to_owned(), (*k).to_owned(), *v, (*u).to_owned()))
            .collect();
        assert_eq!(got, want, "each window, in arrival order; users' are not stored");

        let mut refused = Subscriber::connect(&api, "graphql-transport-ws", READ).await.unwrap();
        refused
            .subscribe("subscription { metricsUpdated(names: [\"anomaly_rate\"]) { name } }")
            .await;
        // Refused at once: as a `next` with errors, or as an `error` message (whose payload
        // is the list of errors).
        let answer = refused.next().await.expect("an answer before the timeout");
        let errors = match answer["type"].as_str() {
            Some("error") => answer["payload"].clone(),
            _ => answer["payload"]["errors"].clone(),
        };
        let message = errors[0]["message"].as_str().unwrap_or_default().to_owned();
        assert!(
            message.contains("`anomaly_rate`") && message.contains("cost"),
            "{answer}"
        );
    });
}

fn alert(i: u64, status: &str, receivers: &[&str]) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "id": sentinel_dataflows::hash::StableId::of(&[b"alert", &i.to_le_bytes()]),
        "group_key": "cost-spike|application|chat",
        "sequence": i,
        "reason": if i == 0 { "new" } else { "changed" },
        "status": status,
        "severity": if i.is_multiple_of(2) { "critical" } else { "warning" },
        "title": format!("cost spike {i}"),
        "receivers": receivers,
        "detector_id": "cost-spike",
        "entities": [{"type": "application", "id": "chat", "name": "chat"}],
        "firing": [id_of(i)],
        "resolved": [],
        "timestamp": sentinel_dataflows::time::format_rfc3339_ms(common::T0 + i * 60_000),
    }))
    .unwrap()
}

#[test]
fn the_alert_history_answers_in_graphql_and_rest() {
    let api = Api::start();
    let alerts: Vec<Vec<u8>> = (0..6)
        .map(|i| {
            let status = if i == 5 { "resolved" } else { "firing" };
            let receivers: &[&str] = if i < 3 { &["ops"] } else { &["ops", "security"] };
            alert(i, status, receivers)
        })
        .collect();
    assert_eq!(api.store.add_alerts(alerts).unwrap(), 6);
    let query = "query($f: AlertFilter, $p: Pagination) {
        alerts(filter: $f, timeRange: {start: \"2024-06-01T00:00:00Z\", end: \"2024-06-02T00:00:00Z\"}, pagination: $p) {
            totalCount pageInfo { hasNextPage endCursor }
            edges { cursor node { id title status severity reason receivers sequence firingAnomalyIds entities { type id } } }
        } }";
    let (status, answer) = gql(&api, Some(READ), query, json!({"p": {"limit": 4}}));
    assert_eq!(status, StatusCode::OK, "{answer}");
    let alerts = &answer["data"]["alerts"];
    assert_eq!(alerts["totalCount"], 6, "{answer}");
    assert_eq!(alerts["pageInfo"]["hasNextPage"], true);
    let titles: Vec<&str> = alerts["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["cost spike 5", "cost spike 4", "cost spike 3", "cost spike 2"]);
    assert_eq!(alerts["edges"][0]["node"]["status"], "RESOLVED");
    assert_eq!(alerts["edges"][0]["node"]["firingAnomalyIds"][0], id_of(5));
    assert_eq!(alerts["edges"][0]["node"]["entities"][0]["type"], "application");
    let after = alerts["pageInfo"]["endCursor"].as_str().unwrap().to_owned();
    let (_, next) = gql(&api, Some(READ), query, json!({"p": {"limit": 4, "after": after}}));
    let rest: Vec<&str> = next["data"]["alerts"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["title"].as_str().unwrap())
        .collect();
    assert_eq!(rest, ["cost spike 1", "cost spike 0"], "the page after the cursor");
    assert_eq!(next["data"]["alerts"]["pageInfo"]["hasNextPage"], false);
    let (_, security) = gql(
        &api,
        Some(READ),
        query,
        json!({"f": {"receivers": ["security"], "statuses": ["FIRING"]}}),
    );
    assert_eq!(security["data"]["alerts"]["totalCount"], 2, "3 and 4: {security}");

    let (status, answer) = api.get("/api/v1/alerts?severity=critical&limit=2", Some(READ));
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["total"], 3, "0, 2 and 4");
    assert_eq!(answer["alerts"].as_array().unwrap().len(), 2);
    assert_eq!(answer["alerts"][0]["title"], "cost spike 4");
    let (status, answer) = api.get("/api/v1/alerts?status=pending", Some(READ));
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        answer["error"]["message"].as_str().unwrap().contains("`pending`"),
        "{answer}"
    );
    let (status, _) = api.get("/api/v1/alerts", None);
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}
