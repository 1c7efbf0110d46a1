//! Helpers shared by the integration tests.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs `sentinel` and insists it succeeds.
pub fn sentinel(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_sentinel"))
        .args(args)
        .output()
        .expect("run sentinel");
    assert!(
        out.status.success(),
        "sentinel {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Writes a two-process host file on loopback, with ports derived from the process id and
/// `salt` so that parallel tests do not collide; returns the first port.
pub fn two_process_hosts(path: &Path, salt: u16) -> u16 {
    let base = 20_000 + (std::process::id() % 20_000) as u16 + salt * 2;
    std::fs::write(path, format!("127.0.0.1:{base}\n127.0.0.1:{}\n", base + 1)).unwrap();
    base
}

/// Starts process `process` of a two-process `sentinel run` with `args`.
pub fn spawn_cluster_process(hosts: &Path, process: &str, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_sentinel"))
        .args(["run", "--no-progress", "-n", "2", "-p", process, "-h"])
        .arg(hosts)
        .args(args)
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Waits for every child; kills them all and fails if any is still running after `limit`
/// (timely retries connections forever, so a taken port would otherwise hang the test).
pub fn wait_all(children: &mut [Child], limit: Duration) {
    let deadline = Instant::now() + limit;
    let mut statuses = vec![None; children.len()];
    while statuses.iter().any(Option::is_none) {
        for (slot, child) in statuses.iter_mut().zip(children.iter_mut()) {
            if slot.is_none() {
                *slot = child.try_wait().unwrap();
            }
        }
        if Instant::now() > deadline {
            for child in children.iter_mut() {
                let _ = child.kill();
                let _ = child.wait();
            }
            panic!("the cluster run did not finish within {limit:?} (port taken?)");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // All have exited; `wait` just collects them.
    for child in children.iter_mut() {
        let _ = child.wait();
    }
    assert!(statuses.iter().all(|s| s.is_some_and(|s| s.success())), "{statuses:?}");
}
