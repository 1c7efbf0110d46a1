//! Two `sentinel` processes on loopback, connected by timely's `-n/-p/-h` flags, give the same
//! anomalies as one process.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

fn anomaly_ids(dir: &Path) -> BTreeSet<String> {
    std::fs::read_to_string(dir.join("anomalies.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

fn summary(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn two_processes_find_what_one_process_finds() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace.jsonl");
    common::sentinel(&[
        "gen-trace",
        "--events",
        "150000",
        "--rate",
        "8",
        "--seed",
        "11",
        "--out",
        trace.to_str().unwrap(),
    ]);
    let input = format!("file:{}", trace.display());

    let single = dir.path().join("single");
    let single_output = format!("file:{}", single.display());
    common::sentinel(&[
        "run",
        "--no-progress",
        "-w",
        "2",
        "--input",
        &input,
        "--output",
        &single_output,
    ]);

    let hosts = dir.path().join("hosts.txt");
    common::two_process_hosts(&hosts, 0);
    let cluster = dir.path().join("cluster");
    let output = format!("file:{}", cluster.display());
    let spawn = |process: &str| {
        let summary = dir.path().join(format!("summary-{process}.json"));
        let args = [
            "-w",
            "2",
            "--input",
            &input,
            "--output",
            &output,
            "--summary",
            summary.to_str().unwrap(),
        ];
        common::spawn_cluster_process(&hosts, process, &args)
    };
    let one = spawn("1");
    let zero = spawn("0");
    common::wait_all(&mut [zero, one], std::time::Duration::from_secs(180));

    let expected = anomaly_ids(&single);
    assert!(expected.len() >= 5, "the trace has injected anomalies");
    assert_eq!(anomaly_ids(&cluster), expected);
    let (s0, s1) = (
        summary(&dir.path().join("summary-0.json")),
        summary(&dir.path().join("summary-1.json")),
    );
    let read = s0["records_in"].as_u64().unwrap() + s1["records_in"].as_u64().unwrap();
    assert_eq!(read, 150_000, "the processes share the input without overlap");
    assert!(s0["records_in"].as_u64().unwrap() > 0 && s1["records_in"].as_u64().unwrap() > 0);
}
