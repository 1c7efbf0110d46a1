//! Two `sentinel` processes on loopback, connected by timely's `-n/-p/-h` flags, give the same
//! anomalies as one process.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};

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
    let exe = env!("CARGO_BIN_EXE_sentinel");
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace.jsonl");
    let status = Command::new(exe)
        .args([
            "gen-trace",
            "--events",
            "150000",
            "--rate",
            "8",
            "--seed",
            "11",
            "--out",
        ])
        .arg(&trace)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let input = format!("file:{}", trace.display());

    let single = dir.path().join("single");
    let status = Command::new(exe)
        .args(["run", "--no-progress", "-w", "2", "--input", &input, "--output"])
        .arg(format!("file:{}", single.display()))
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());

    // Ports derived from the process id, so parallel test runs do not collide.
    let base = 20_000 + (std::process::id() % 20_000) as u16;
    let hosts = dir.path().join("hosts.txt");
    std::fs::write(&hosts, format!("127.0.0.1:{base}\n127.0.0.1:{}\n", base + 1)).unwrap();
    let cluster = dir.path().join("cluster");
    let spawn = |process: &str| {
        Command::new(exe)
            .args(["run", "--no-progress", "-w", "2", "-n", "2", "-p", process, "-h"])
            .arg(&hosts)
            .args(["--input", &input, "--output"])
            .arg(format!("file:{}", cluster.display()))
            .arg("--summary")
            .arg(dir.path().join(format!("summary-{process}.json")))
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut one = spawn("1");
    let mut zero = spawn("0");
    // Timely retries connections forever; a taken port must fail the test, not hang it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
    let mut statuses = [None, None];
    while statuses.iter().any(Option::is_none) {
        for (slot, child) in statuses.iter_mut().zip([&mut zero, &mut one]) {
            if slot.is_none() {
                *slot = child.try_wait().unwrap();
            }
        }
        if std::time::Instant::now() > deadline {
            let _ = zero.kill();
            let _ = zero.wait();
            let _ = one.kill();
            let _ = one.wait();
            panic!("the two-process run did not finish within 180 s (port {base} taken?)");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // Both have exited; `wait` just collects them (and tells clippy they are reaped).
    let _ = zero.wait();
    let _ = one.wait();
    assert!(statuses.iter().all(|s| s.is_some_and(|s| s.success())));

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
