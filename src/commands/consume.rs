//! `sentinel consume`: prints a topic's records as lines, from the start to the end it had when
//! the command started (for checking outputs, and for tests).

use std::io::Write;
use std::time::Duration;

use sentinel_connectors::kafka::{read_topic, KafkaSettings};

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
    let records = read_topic(&settings, topic, Duration::from_secs(timeout))?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for (_, payload) in records {
        out.write_all(&payload)
            .and_then(|()| out.write_all(b"\n"))
            .map_err(|e| format!("writing stdout: {e}"))?;
    }
    out.flush().map_err(|e| format!("writing stdout: {e}"))
}
