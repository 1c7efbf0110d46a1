//! Two `sentinel` processes on loopback, connected by timely's `-n/-p/-h` flags, give the same
//! anomalies as one process.

mod common;

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

    let expected = common::ids(&common::read_jsonl(&single.join("anomalies.jsonl")));
    assert!(expected.len() >= 5, "the trace has injected anomalies");
    assert_eq!(
        common::ids(&common::read_jsonl(&cluster.join("anomalies.jsonl"))),
        expected
    );
    let (s0, s1) = (
        common::read_json(&dir.path().join("summary-0.json")),
        common::read_json(&dir.path().join("summary-1.json")),
    );
    let read = s0["records_in"].as_u64().unwrap() + s1["records_in"].as_u64().unwrap();
    assert_eq!(read, 150_000, "the processes share the input without overlap");
    assert!(s0["records_in"].as_u64().unwrap() > 0 && s1["records_in"].as_u64().unwrap() > 0);
}
