//! Event time is untrusted input: one record stamped far ahead must not blind the job, and a
//! real, lasting jump of the whole stream must still be followed.

mod common;

use std::path::{Path, PathBuf};

use common::{ids, read_json, read_jsonl, sentinel};
use serde_json::Value;

const EVENTS: u64 = 50_000;

/// A generated 2024 trace with injected anomalies, as JSON values.
fn trace(dir: &Path) -> Vec<Value> {
    let path = dir.join("clean.jsonl");
    sentinel(&[
        "gen-trace",
        "--events",
        &EVENTS.to_string(),
        "--rate",
        "9",
        "--seed",
        "11",
        "--out",
        path.to_str().unwrap(),
    ]);
    read_jsonl(&path)
}

fn write(dir: &Path, name: &str, events: &[Value]) -> PathBuf {
    let path = dir.join(name);
    let text: String = events.iter().map(|e| format!("{e}\n")).collect();
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs the job over `trace` with `workers` threads: anomalies, dead letters and summary.
fn run(trace: &Path, out: &Path, workers: &str) -> (Vec<Value>, Vec<Value>, Value) {
    run_with(trace, out, workers, &[])
}

fn run_with(trace: &Path, out: &Path, workers: &str, extra: &[&str]) -> (Vec<Value>, Vec<Value>, Value) {
    let summary = out.join("summary.json");
    let (input, output) = (format!("file:{}", trace.display()), format!("file:{}", out.display()));
    let mut args = vec![
        "run",
        "--input",
        &input,
        "--output",
        &output,
        "--summary",
        summary.to_str().unwrap(),
        "--no-progress",
        "-w",
        workers,
    ];
    args.extend(extra);
    sentinel(&args);
    (
        read_jsonl(&out.join("anomalies.jsonl")),
        read_jsonl(&out.join("deadletter.jsonl")),
        read_json(&summary),
    )
}

fn ms(e: &Value) -> u64 {
    sentinel_dataflows::time::parse_rfc3339_ms(e["timestamp"].as_str().unwrap()).unwrap()
}

fn stamped(e: &Value, id: &str, at_ms: u64) -> Value {
    let mut e = e.clone();
    e["event_id"] = id.into();
    e["timestamp"] = sentinel_dataflows::time::format_rfc3339_ms(at_ms).into();
    e
}

fn reason_count(summary: &Value, reason: &str) -> u64 {
    summary["dead_letters_by_reason"]
        .as_array()
        .unwrap()
        .iter()
        .find(|pair| pair[0] == reason)
        .map_or(0, |pair| pair[1].as_u64().unwrap())
}

#[test]
fn one_poisoned_record_does_not_blind_detection() {
    let dir = tempfile::tempdir().unwrap();
    let clean = trace(dir.path());
    let clean_path = write(dir.path(), "clean-copy.jsonl", &clean);
    let (baseline, _, base_summary) = run(&clean_path, &dir.path().join("base"), "2");
    assert!(baseline.len() >= 3, "the trace carries anomalies to find");
    let y2090 = sentinel_dataflows::time::parse_rfc3339_ms("2090-01-01T00:00:00Z").unwrap();
    let cases = [
        ("at-2090-first", 0, Some(y2090)),
        ("at-2090-middle", clean.len() / 2, Some(y2090)),
        ("two-days-ahead", clean.len() / 3, None),
    ];
    for (name, at, stamp) in cases {
        let mut events = clean.clone();
        let ts = stamp.unwrap_or_else(|| ms(&clean[at]) + 2 * 86_400_000);
        events.insert(at, stamped(&clean[at], &format!("poison-{name}"), ts));
        let path = write(dir.path(), &format!("{name}.jsonl"), &events);
        for workers in ["1", "2"] {
            let (anomalies, dead, summary) = run(&path, &dir.path().join(format!("{name}-w{workers}")), workers);
            assert_eq!(summary["records_in"], EVENTS + 1, "{name}");
            assert_eq!(
                summary["events_decoded"], base_summary["events_decoded"],
                "{name} -w {workers}"
            );
            assert_eq!(summary["late"], base_summary["late"], "{name} -w {workers}");
            assert_eq!(reason_count(&summary, "timestamp_jump"), 1, "{name} -w {workers}");
            let poison: Vec<&Value> = dead.iter().filter(|d| d["reason"] == "timestamp_jump").collect();
            assert_eq!(poison.len(), 1);
            assert!(
                poison[0]["original"]
                    .as_str()
                    .unwrap()
                    .contains(&format!("poison-{name}")),
                "the dead letter keeps the original bytes"
            );
            assert_eq!(ids(&anomalies), ids(&baseline), "{name} -w {workers}: same detections");
        }
    }
}

#[test]
fn a_lasting_jump_of_the_whole_stream_is_followed() {
    let dir = tempfile::tempdir().unwrap();
    let clean = trace(dir.path());
    let half = clean.len() / 2;
    let hour = 3_600_000;
    let shifted: Vec<Value> = clean
        .iter()
        .enumerate()
        .map(|(i, e)| {
            if i < half {
                e.clone()
            } else {
                stamped(e, e["event_id"].as_str().unwrap(), ms(e) + hour)
            }
        })
        .collect();
    let path = write(dir.path(), "shifted.jsonl", &shifted);
    let cut = ms(&clean[half]) + hour;
    for workers in ["1", "2"] {
        let out = dir.path().join(format!("shifted-w{workers}"));
        let (_, _, summary) = run_with(&path, &out, workers, &["--aggregates"]);
        assert_eq!(summary["records_in"], EVENTS);
        assert_eq!(summary["dead_lettered"], 0, "-w {workers}: {summary}");
        assert_eq!(summary["events_decoded"], EVENTS);
        // Every event after the jump was counted in a window after it.
        let counted_after: u64 = read_jsonl(&out.join("aggregates.jsonl"))
            .iter()
            .filter(|a| a["dimension"] == "application" && a["width_ms"] == 60_000)
            .filter(|a| sentinel_dataflows::time::parse_rfc3339_ms(a["window_start"].as_str().unwrap()).unwrap() >= cut)
            .map(|a| a["requests"].as_u64().unwrap())
            .sum();
        assert!(counted_after > 0, "-w {workers}: windows after the jump were computed");
    }
}
