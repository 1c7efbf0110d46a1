//! `sentinel run --serve`: the embedded job feeds its store, and an outside client in the seed's
//! shape (Python `requests`) reads, pages, counts and acknowledges over HTTP.

mod common;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use common::{every_page, ids, read_jsonl, run_file_job, sentinel, values_of, ServedJob};
use serde_json::Value;

/// The trace both tests serve: 120,000 events, an hour of event time.
fn served_trace(dir: &std::path::Path) -> std::path::PathBuf {
    let trace = dir.join("trace.jsonl");
    sentinel(&[
        "gen-trace",
        "--events",
        "120000",
        "--seed",
        "5",
        "--out",
        trace.to_str().unwrap(),
    ]);
    trace
}

#[test]
fn the_embedded_store_serves_every_anomaly_of_the_run_to_the_seeds_client() {
    let dir = tempfile::tempdir().unwrap();
    let trace = served_trace(dir.path());
    let config = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/sentinel.yaml");
    let out = dir.path().join("file");
    run_file_job(&config, &trace, &out, &[]);
    let expected = ids(&read_jsonl(&out.join("anomalies.jsonl")));
    assert!(
        expected.len() >= 5,
        "the trace should raise anomalies: {}",
        expected.len()
    );

    // testDetector's data: one event the file run found an injection in, and one it found
    // nothing in.
    let anomalies = read_jsonl(&out.join("anomalies.jsonl"));
    let injected = anomalies
        .iter()
        .find(|a| a["detector_id"] == "prompt-injection")
        .expect("the trace holds prompt injections");
    let sampled: BTreeSet<&str> = anomalies
        .iter()
        .flat_map(|a| a["context"]["sample_events"].as_array().unwrap())
        .filter_map(|e| e.as_str())
        .collect();
    let events = read_jsonl(&trace);
    let attack_event = events
        .iter()
        .find(|e| e["event_id"] == injected["context"]["sample_events"][0])
        .unwrap();
    let clean_event = events
        .iter()
        .find(|e| e["event_type"] == "llm.request" && !sampled.contains(e["event_id"].as_str().unwrap()))
        .unwrap();
    let attack = dir.path().join("attack.json");
    let clean = dir.path().join("clean.json");
    std::fs::write(&attack, serde_json::to_vec(&[attack_event]).unwrap()).unwrap();
    std::fs::write(&clean, serde_json::to_vec(&[clean_event]).unwrap()).unwrap();

    let mut job = ServedJob::start(
        &config,
        &trace,
        &dir.path().join("serve.db"),
        // Two workers: each builds the same dataflow, and worker 0 feeds the store.
        &["--metrics", "127.0.0.1:0", "-w", "2"],
    );
    let metrics_line = job.wait_for_line("Prometheus metrics on ", Duration::from_secs(30));
    let metrics_url = metrics_line
        .split("Prometheus metrics on ")
        .nth(1)
        .unwrap()
        .trim()
        .to_owned();
    job.wait_stored(Duration::from_secs(120));
    let url = job.url.clone();

    // What was done, and why: the store holds the file run's Shield actions and incident
    // requests, and its decisions at the warn tier and above, each once.
    let actions = read_jsonl(&out.join("actions.jsonl"));
    assert!(!actions.is_empty(), "the trace's cost spikes are rate-limited");
    let served_actions = every_page(&url, "/api/v1/actions", "actions");
    assert_eq!(served_actions.len(), actions.len());
    assert_eq!(
        values_of(&served_actions, "delivery_id"),
        values_of(&actions, "delivery_id")
    );
    let incidents = read_jsonl(&out.join("incidents.jsonl"));
    let served_incidents = every_page(&url, "/api/v1/incidents", "incidents");
    assert_eq!(ids(&served_incidents), ids(&incidents));
    let flagged: Vec<Value> = read_jsonl(&out.join("decisions.jsonl"))
        .into_iter()
        .filter(|d| d["tier"] != "allow")
        .collect();
    assert!(!flagged.is_empty(), "the trace holds attacks");
    let served_decisions = every_page(&url, "/api/v1/decisions", "decisions");
    assert_eq!(served_decisions.len(), flagged.len());
    assert_eq!(
        values_of(&served_decisions, "event_id"),
        values_of(&flagged, "event_id")
    );
    let acted_on = actions[0]["anomaly_id"].as_str().unwrap();
    let one: Value = reqwest::blocking::get(format!("{url}/api/v1/anomalies/{acted_on}"))
        .unwrap()
        .json()
        .unwrap();
    let its_actions: Vec<Value> = actions
        .iter()
        .filter(|a| a["anomaly_id"] == acted_on)
        .cloned()
        .collect();
    assert_eq!(
        values_of(one["shield_actions"].as_array().unwrap(), "delivery_id"),
        values_of(&its_actions, "delivery_id"),
        "{one}"
    );
    let blocked = &flagged[0]["event_id"];
    let why: Value = reqwest::blocking::get(format!("{url}/api/v1/decisions/{}", blocked.as_str().unwrap()))
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(why["decision"], flagged[0]);

    // The job's resolutions, through the anomaly-events stream: each condition that ended
    // resolved every anomaly its detector raised on its entity while it lasted.
    let resolutions = read_jsonl(&out.join("anomaly_events.jsonl"));
    assert!(!resolutions.is_empty(), "conditions of the trace end before it does");
    let ms = |a: &Value| sentinel_dataflows::time::parse_rfc3339_ms(a["timestamp"].as_str().unwrap()).unwrap();
    let mut want_resolved = BTreeSet::new();
    for r in &resolutions {
        assert_eq!(
            (r["action"].as_str(), r["source"].as_str()),
            (Some("resolve"), Some("job"))
        );
        let scope = &r["condition"];
        for a in &anomalies {
            let entity = format!(
                "{}:{}",
                a["affected_entity"]["type"].as_str().unwrap(),
                a["affected_entity"]["id"].as_str().unwrap()
            );
            let at = ms(a);
            if a["detector_id"] == scope["detector_id"]
                && entity == scope["entity"].as_str().unwrap()
                && at >= scope["from_ms"].as_u64().unwrap()
                && at <= scope["through_ms"].as_u64().unwrap()
            {
                want_resolved.insert(a["id"].as_str().unwrap().to_owned());
            }
        }
    }
    let resolved: Value = reqwest::blocking::get(format!("{url}/api/v1/anomalies?status=resolved&limit=1000"))
        .unwrap()
        .json()
        .unwrap();
    let resolved_ids: BTreeSet<String> = resolved["anomalies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(resolved_ids, want_resolved, "resolved by the job's conditions");
    let history: Value = reqwest::blocking::get(format!(
        "{url}/api/v1/anomalies/{}",
        resolutions[0]["anomaly_id"].as_str().unwrap()
    ))
    .unwrap()
    .json()
    .unwrap();
    assert_eq!(history["history"][0]["by"], "sentinel", "{history}");

    let client = Command::new("python3")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/sentinel_client.py"))
        .arg(&url)
        .args(["--metrics-url", &metrics_url])
        .args(["--test-detector", "prompt-injection"])
        .args([&attack, &clean])
        .output()
        .expect("python3 with requests (see .ci/run)");
    let status = job.stop();
    assert!(
        client.status.success(),
        "client failed: {}",
        String::from_utf8_lossy(&client.stderr)
    );
    assert!(status.success(), "SIGTERM stops the server cleanly: {status}");
    let seen: Value = serde_json::from_slice(&client.stdout).unwrap();

    // Every anomaly the file run wrote, once, newest first.
    let served: Vec<String> = seen["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(served.len() as u64, seen["total"].as_u64().unwrap());
    assert_eq!(served.iter().cloned().collect::<BTreeSet<_>>(), expected);
    assert_eq!(
        seen["statistics"]["total_anomalies"].as_u64().unwrap() as usize,
        expected.len()
    );
    let grouped: u64 = seen["statistics"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["count"].as_u64().unwrap())
        .sum();
    assert_eq!(grouped as usize, expected.len(), "groups add up to the total");
    // The trace is from 2024: nothing in the last 24 hours of the wall clock.
    assert_eq!(seen["last_24h_total"], 0);

    // Prometheus, on the API's address and on --metrics: the same registry, in OpenMetrics text.
    for scrape in seen["prometheus"].as_array().unwrap() {
        assert!(scrape["content_type"]
            .as_str()
            .unwrap()
            .starts_with("application/openmetrics-text"));
        let text = scrape["text"].as_str().unwrap();
        let value = |prefix: &str| -> u64 {
            text.lines()
                .filter(|l| l.starts_with(prefix))
                .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
                .sum()
        };
        assert_eq!(value("sentinel_events_in_total "), events.len() as u64, "{text}");
        assert_eq!(
            value("sentinel_anomalies_total{"),
            expected.len() as u64,
            "by detector and severity"
        );
        assert!(text.ends_with("# EOF\n"));
    }
    assert_eq!(seen["prometheus"].as_array().unwrap().len(), 2);

    // GraphQL, as the seed's dashboard asks: the same total, the newest first.
    let gql = &seen["graphql"]["data"]["anomalies"];
    assert_eq!(
        gql["totalCount"].as_u64().unwrap() as usize,
        expected.len(),
        "{}",
        seen["graphql"]
    );
    let first: Vec<&str> = gql["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["id"].as_str().unwrap())
        .collect();
    assert!(!first.is_empty() && first.iter().all(|id| expected.contains(*id)));
    // The seed's get_metrics: the anomaly rate over a day of the year 2000 is zero throughout.
    assert_eq!(seen["metrics"][0]["name"], "anomaly_rate");
    assert_eq!(seen["metrics"][0]["datapoints"].as_array().unwrap().len(), 24);
    // testDetector runs the job's own code: the injection is found under the file run's id;
    // the clean event raises nothing.
    let found = &seen["tests"][0]["data"]["testDetector"];
    assert_eq!(found["detected"], true, "{}", seen["tests"]);
    assert_eq!(found["eventsTested"], 1);
    assert_eq!(found["anomalies"][0]["id"], injected["id"]);
    let quiet = &seen["tests"][1]["data"]["testDetector"];
    assert_eq!(quiet["detected"], false, "{}", seen["tests"]);

    if seen["critical_active"].as_u64().unwrap() > 0 {
        let acked = &seen["acknowledged"];
        assert_eq!(acked["status"], "acknowledged");
        assert_eq!(acked["acknowledged_by"], "outside-client");
        assert_eq!(seen["acknowledged_after"], serde_json::json!([acked["id"]]));
    }
}

/// Replay pace of the dashboard's job: the trace's hour of event time in about half a minute.
const DASHBOARD_SPEED: &str = "100";

/// The dashboard in headless Chromium, against a job still emitting anomalies: rows arrive
/// without a reload, the rendered rows are the API's first page in its order once the job is
/// done, and a click on acknowledge changes the status that the API returns.
#[test]
fn the_dashboard_shows_anomalies_live_and_acknowledges_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let trace = served_trace(dir.path());
    let config = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/sentinel.yaml");
    // Paced, so the anomalies come over tens of seconds while the page is open.
    let job = ServedJob::start(
        &config,
        &trace,
        &dir.path().join("serve.db"),
        &["--speed", DASHBOARD_SPEED],
    );
    let screenshot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    let check = Command::new("python3")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/dashboard_check.py"))
        .arg(&job.url)
        .arg(&screenshot)
        .output()
        .expect("python3 with requests (see .ci/run)");
    let status = job.stop();
    let report: Value = serde_json::from_slice(&check.stdout).unwrap_or_else(|_| {
        panic!(
            "dashboard check printed no report: {}{}",
            String::from_utf8_lossy(&check.stdout),
            String::from_utf8_lossy(&check.stderr)
        )
    });
    assert!(check.status.success(), "dashboard check failed: {report}");
    assert!(status.success(), "{status}");
    assert_eq!(report["live_state"], "live");
    assert!(report["live_count"].as_u64().unwrap() > 0, "{report}");
    assert!(!report["arrived_ids"].as_array().unwrap().is_empty());
    assert_eq!(report["reloaded"], false, "rows arrived without a reload");
    assert_eq!(
        report["dom_ids"], report["api_ids"],
        "the page shows the API's first page, in order"
    );
    assert!(!report["dom_ids"].as_array().unwrap().is_empty());
    assert_eq!(report["total_shown"], report["api_total"]);
    // Acknowledged through the page; the job may have resolved its condition since.
    let history = report["api_history_after"].as_array().unwrap();
    assert_eq!(history[0], serde_json::json!(["acknowledge", "dashboard"]), "{report}");
    assert!(
        report["api_status_after"] == "acknowledged"
            || (report["api_status_after"] == "resolved" && history.len() == 2 && history[1][1] == "sentinel"),
        "{report}"
    );
    assert_eq!(report["dom_status_after"], "acknowledged");
    assert_eq!(report["acknowledged_by"], "dashboard");
    assert_eq!(report["message"], "", "no error shown");
}
