//! `sentinel run --listen`: telemetry posted over HTTP by an outside sender in the seed's shape
//! (Python `requests`, a bearer key, single events and batches, one gzipped) feeds the job
//! directly, and the job finds what a file run of the same trace finds.

mod common;

use std::collections::BTreeSet;
use std::process::Command;

use common::{ids, read_jsonl, run_file_job, sentinel, values_of, ServedJob};
use serde_json::Value;

/// The sender's key, in the test's config.
const KEY: &str = "ingest-test-key-0123456789";

#[test]
fn events_posted_over_http_find_the_file_runs_anomalies_and_faults_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace.jsonl");
    sentinel(&[
        "gen-trace",
        "--events",
        "60000",
        "--seed",
        "9",
        "--out",
        trace.to_str().unwrap(),
    ]);
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/sentinel.yaml");
    let config = dir.path().join("listen.yaml");
    std::fs::write(
        &config,
        format!(
            "{}\ningest:\n  api_keys:\n    - {{key: {KEY}}}\n  max_body_bytes: 2097152\n",
            std::fs::read_to_string(&example).unwrap()
        ),
    )
    .unwrap();
    let from_file = dir.path().join("file");
    run_file_job(&config, &trace, &from_file, &[]);
    let expected = ids(&read_jsonl(&from_file.join("anomalies.jsonl")));
    assert!(
        expected.len() >= 5,
        "the trace should raise anomalies: {}",
        expected.len()
    );

    let out = dir.path().join("listen");
    let job = ServedJob::listening(&config, &out);
    let sender = Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/clients/telemetry_exporter.py"
        ))
        .arg(&job.url)
        .arg(&trace)
        .args(["--key", KEY])
        .output()
        .expect("python3 with requests (see .ci/run)");
    // Every request was answered once the job had its events: a stop now loses none of them.
    let status = job.stop();
    assert!(
        sender.status.success(),
        "sender failed: {}",
        String::from_utf8_lossy(&sender.stderr)
    );
    assert!(
        status.success(),
        "SIGTERM ends the input and the job finishes: {status}"
    );
    let seen: Value = serde_json::from_slice(&sender.stdout).unwrap();

    let events = read_jsonl(&trace).len() as u64;
    assert_eq!(seen["accepted"], events, "{seen}");
    assert_eq!(seen["rejected"], 2);
    let faults = &seen["faults"];
    assert_eq!(
        (faults["no_key"].as_u64(), faults["wrong_key"].as_u64()),
        (Some(401), Some(401))
    );
    assert_eq!(
        (faults["bad_gzip"].as_u64(), faults["bad_gzip_error"].as_str()),
        (Some(400), Some("bad_encoding"))
    );
    assert_eq!(faults["oversized"], 413);
    let errors = seen["partial"]["errors"].as_array().unwrap();
    let places: Vec<u64> = errors.iter().map(|e| e["index"].as_u64().unwrap()).collect();
    assert_eq!(places, [1, 2], "{errors:?}");

    // The same anomalies as the file run; the two refused events dead-lettered with the
    // reasons the sender was given, and nothing else.
    assert_eq!(ids(&read_jsonl(&out.join("anomalies.jsonl"))), expected);
    let dead = read_jsonl(&out.join("deadletter.jsonl"));
    assert_eq!(dead.len(), 2, "{dead:?}");
    assert_eq!(values_of(&dead, "reason"), values_of(errors, "reason"));
    let file_dead: BTreeSet<String> = values_of(&read_jsonl(&from_file.join("deadletter.jsonl")), "reason");
    assert!(file_dead.is_empty(), "the trace itself is clean: {file_dead:?}");
}
