//! `sentinel consume`: prints a topic's records as lines, from the start to the end it had when
//! the command started (for checking outputs, and for tests).

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sentinel_connectors::kafka::{
    end_offsets, partitions_of, Assignment, KafkaSettings, PartitionReader, ReaderStatus,
};

const HELP: &str = "\
sentinel consume: print a Kafka topic's records, one per line, then exit

  --brokers LIST      bootstrap servers (default 127.0.0.1:9092)
  --timeout SECS      give up when the end is not reached within this long (default 60)
  TOPIC               the topic (e.g. sentinel.anomalies)
";

/// Entry point.
pub fn main(args: Vec<String>) -> Result<(), String> {
    let mut opts = getopts::Options::new();
    opts.optopt("", "brokers", "", "LIST");
    opts.optopt("", "timeout", "", "SECS");
    opts.optflag("", "help", "");
    let m = opts.parse(&args).map_err(|e| format!("{e}\n\n{HELP}"))?;
    if m.opt_present("help") {
        print!("{HELP}");
        return Ok(());
    }
    let [topic] = m.free.as_slice() else {
        return Err(format!("expected one topic\n\n{HELP}"));
    };
    let timeout = m
        .opt_str("timeout")
        .map(|s| {
            s.parse::<u64>()
                .map_err(|_| format!("--timeout: `{s}` is not a number of seconds"))
        })
        .transpose()?
        .unwrap_or(60);
    let settings = KafkaSettings {
        brokers: m.opt_str("brokers").unwrap_or_else(|| "127.0.0.1:9092".into()),
        ..KafkaSettings::default()
    };
    let ids = partitions_of(&settings, std::slice::from_ref(topic))?;
    let ends = end_offsets(&settings, &ids)?;
    let assignments: Vec<Assignment> = ids
        .into_iter()
        .zip(ends)
        .map(|((topic, partition), end)| Assignment {
            topic,
            partition,
            start: None,
            end_at_start: end,
        })
        .collect();
    let group = format!("sentinel-consume-{}", std::process::id());
    let mut reader = PartitionReader::open(&settings, &group, &assignments, Arc::new(|| {}))?;
    let deadline = Instant::now() + Duration::from_secs(timeout);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut failed = None;
    while !reader.caught_up() {
        let status = reader.read(4096, &mut |rec| {
            if let Err(e) = out.write_all(rec.payload).and_then(|()| out.write_all(b"\n")) {
                failed = Some(e.to_string());
                return false;
            }
            true
        });
        if let Some(e) = failed {
            return Err(format!("writing stdout: {e}"));
        }
        if Instant::now() > deadline {
            return Err(format!("{topic}: the end was not reached within {timeout} s"));
        }
        if status == ReaderStatus::Idle {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    out.flush().map_err(|e| format!("writing stdout: {e}"))
}
