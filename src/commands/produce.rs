//! `sentinel produce`: publishes a JSONL trace to a Kafka topic, one record per line.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use sentinel_connectors::kafka::{partitions_of, publish_all, KafkaSettings};

const HELP: &str = "\
sentinel produce: publish a JSONL trace (plain or .gz) to a Kafka topic

  --brokers LIST      bootstrap servers (default 127.0.0.1:9092)
  --topic T           topic (default llm-telemetry)
  --property K=V      a librdkafka producer property (repeatable)
  --partitions N      use only the first N partitions (the rest stay empty)
  FILE                the trace; line i goes to partition i mod the partition count,
                      so a publish is reproducible
";

/// Entry point.
pub fn main(args: Vec<String>) -> Result<(), String> {
    let mut opts = getopts::Options::new();
    opts.optopt("", "brokers", "", "LIST");
    opts.optopt("", "topic", "", "T");
    opts.optmulti("", "property", "", "K=V");
    opts.optopt("", "partitions", "", "N");
    opts.optflag("", "help", "");
    let m = opts.parse(&args).map_err(|e| format!("{e}\n\n{HELP}"))?;
    if m.opt_present("help") {
        print!("{HELP}");
        return Ok(());
    }
    let [path] = m.free.as_slice() else {
        return Err(format!("expected one trace file\n\n{HELP}"));
    };
    let mut properties = Vec::new();
    for p in m.opt_strs("property") {
        let (k, v) = p
            .split_once('=')
            .ok_or_else(|| format!("--property: expected K=V, got `{p}`"))?;
        properties.push((k.to_owned(), v.to_owned()));
    }
    let settings = KafkaSettings {
        brokers: m.opt_str("brokers").unwrap_or_else(|| "127.0.0.1:9092".into()),
        producer_properties: properties,
        ..KafkaSettings::default()
    };
    let topic = m.opt_str("topic").unwrap_or_else(|| "llm-telemetry".into());
    let mut partitions = partitions_of(&settings, std::slice::from_ref(&topic))?.len() as i32;
    if let Some(n) = m.opt_str("partitions") {
        let n: i32 = n.parse().map_err(|_| format!("--partitions: `{n}` is not a number"))?;
        partitions = partitions.min(n.max(1));
    }
    let lines = read_lines(Path::new(path))?;
    let sent = publish_all(&settings, &topic, partitions, lines.iter().map(Vec::as_slice))?;
    eprintln!("published {sent} records to {topic} ({partitions} partitions)");
    Ok(())
}

/// The file's non-blank lines (gzip when the name ends in `.gz`).
pub(crate) fn read_lines(path: &Path) -> Result<Vec<Vec<u8>>, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let reader: Box<dyn Read> = if path.extension().is_some_and(|e| e == "gz") {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    };
    let mut out = Vec::new();
    for line in BufReader::new(reader).split(b'\n') {
        let mut line = line.map_err(|e| format!("{}: {e}", path.display()))?;
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        if !line.iter().all(u8::is_ascii_whitespace) {
            out.push(line);
        }
    }
    Ok(out)
}
