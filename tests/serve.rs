//! `sentinel run --serve`: the embedded job feeds its store, and an outside client in the seed's
//! shape (Python `requests`) reads, pages, counts and acknowledges over HTTP.

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{ids, read_jsonl, run_file_job, sentinel};
use serde_json::Value;

#[test]
fn the_embedded_store_serves_every_anomaly_of_the_run_to_the_seeds_client() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace.jsonl");
    sentinel(&[
        "gen-trace",
        "--events",
        "120000",
        "--seed",
        "5",
        "--out",
        trace.to_str().unwrap(),
    ]);
    let config = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/sentinel.yaml");
    let out = dir.path().join("file");
    run_file_job(&config, &trace, &out, &[]);
    let expected = ids(&read_jsonl(&out.join("anomalies.jsonl")));
    assert!(
        expected.len() >= 5,
        "the trace should raise anomalies: {}",
        expected.len()
    );

    let mut job = Command::new(env!("CARGO_BIN_EXE_sentinel"))
        .args(["run", "--config", config.to_str().unwrap(), "--no-progress"])
        .args(["--input", &format!("file:{}", trace.display()), "--output", "none"])
        .args(["--serve", "127.0.0.1:0"])
        .args(["--store", dir.path().join("serve.db").to_str().unwrap()])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let (lines, received) = mpsc::channel();
    let stderr = job.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let mut url = None;
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let line = received
            .recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
            .expect("the job said where it serves and when the store is full");
        if let Some(rest) = line.split("serving the API on ").nth(1) {
            url = Some(rest.trim().to_owned());
        }
        if line.contains("anomalies stored") {
            break;
        }
    }
    let url = url.expect("the job printed its URL");

    let client = Command::new("python3")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/sentinel_client.py"))
        .arg(&url)
        .output()
        .expect("python3 with requests (see .ci/run)");
    let _ = Command::new("kill").arg(job.id().to_string()).status();
    let status = job.wait().unwrap();
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
    if seen["critical_active"].as_u64().unwrap() > 0 {
        let acked = &seen["acknowledged"];
        assert_eq!(acked["status"], "acknowledged");
        assert_eq!(acked["acknowledged_by"], "outside-client");
        assert_eq!(seen["acknowledged_after"], serde_json::json!([acked["id"]]));
    }
}
