//! `sentinel gen-trace`: writes a synthetic trace and its labels.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use sentinel_dataflows::synth::{ArrivalSample, TraceConfig, TraceGenerator};
use sentinel_dataflows::time::parse_rfc3339_ms;

const HELP: &str = "\
sentinel gen-trace: deterministic multi-tenant LLM telemetry with labeled anomalies

  --events N          events to write (default 320000)
  --seed S            random seed (default 42)
  --out FILE          trace file; a .gz name writes gzip
  --labels FILE       ground-truth labels as JSON lines
  --prompt-bytes B    prompt text per request, 0 = numbers only (default 0)
  --response-bytes B  response text per response (default: a quarter of --prompt-bytes)
  --rate R            mean model calls per second of event time (default 15)
  --start TIME        RFC 3339 time of the first event (default 2024-06-01T00:00:00Z)
  --clean             inject nothing (same traffic, no anomalies)
  --arrivals CSV      replay arrival gaps and token counts from a CSV with
                      TIMESTAMP,ContextTokens,GeneratedTokens columns (e.g. the Azure LLM trace)
";

/// Entry point.
pub fn main(args: Vec<String>) -> Result<(), String> {
    let mut opts = getopts::Options::new();
    for (name, hint) in [
        ("events", "N"),
        ("seed", "S"),
        ("out", "FILE"),
        ("labels", "FILE"),
        ("prompt-bytes", "B"),
        ("response-bytes", "B"),
        ("rate", "R"),
        ("start", "TIME"),
        ("arrivals", "CSV"),
    ] {
        opts.optopt("", name, "", hint);
    }
    opts.optflag("", "clean", "");
    opts.optflag("", "help", "");
    let m = opts.parse(&args).map_err(|e| format!("{e}\n\n{HELP}"))?;
    if m.opt_present("help") {
        print!("{HELP}");
        return Ok(());
    }
    let defaults = TraceConfig::default();
    let num = |name: &str| -> Result<Option<f64>, String> {
        m.opt_str(name)
            .map(|v| v.parse::<f64>().map_err(|_| format!("--{name}: `{v}` is not a number")))
            .transpose()
    };
    let start_ms = match m.opt_str("start") {
        Some(s) => parse_rfc3339_ms(&s).ok_or_else(|| format!("--start: `{s}` is not RFC 3339"))?,
        None => defaults.start_ms,
    };
    let arrivals = match m.opt_str("arrivals") {
        Some(path) => Some(read_arrivals(Path::new(&path))?),
        None => None,
    };
    let cfg = TraceConfig {
        events: num("events")?.map_or(defaults.events, |v| v as u64),
        seed: num("seed")?.map_or(defaults.seed, |v| v as u64),
        start_ms,
        calls_per_sec: num("rate")?.unwrap_or(defaults.calls_per_sec),
        prompt_bytes: num("prompt-bytes")?.map_or(0, |v| v as usize),
        response_bytes: num("response-bytes")?.map(|v| v as usize),
        inject: !m.opt_present("clean"),
        arrivals,
    };
    let out = m.opt_str("out").ok_or_else(|| format!("--out is required\n\n{HELP}"))?;
    let generator = TraceGenerator::new(cfg);
    if let Some(labels) = m.opt_str("labels") {
        let mut w = BufWriter::new(File::create(&labels).map_err(|e| format!("{labels}: {e}"))?);
        for label in generator.labels() {
            serde_json::to_writer(&mut w, label).map_err(|e| e.to_string())?;
            w.write_all(b"\n").map_err(|e| e.to_string())?;
        }
        w.flush().map_err(|e| format!("{labels}: {e}"))?;
    }
    let file = File::create(&out).map_err(|e| format!("{out}: {e}"))?;
    let mut sink: Box<dyn Write> = if out.ends_with(".gz") {
        Box::new(flate2::write::GzEncoder::new(
            BufWriter::new(file),
            flate2::Compression::fast(),
        ))
    } else {
        Box::new(BufWriter::with_capacity(1 << 20, file))
    };
    let mut count = 0u64;
    for (_, json) in generator {
        sink.write_all(json.as_bytes())
            .and_then(|_| sink.write_all(b"\n"))
            .map_err(|e| format!("{out}: {e}"))?;
        count += 1;
    }
    sink.flush().map_err(|e| format!("{out}: {e}"))?;
    drop(sink);
    eprintln!("wrote {count} events to {out}");
    Ok(())
}

/// Reads `TIMESTAMP,ContextTokens,GeneratedTokens` rows into arrival gaps and token counts.
fn read_arrivals(path: &Path) -> Result<Vec<ArrivalSample>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut samples = Vec::new();
    let mut previous: Option<f64> = None;
    for (n, line) in text.lines().enumerate().skip(1) {
        let fields: Vec<&str> = line.split(',').collect();
        let [ts, prompt, completion] = fields.as_slice() else {
            return Err(format!("{}:{}: expected 3 columns", path.display(), n + 1));
        };
        // "2023-11-16 18:17:03.9799600": keep it to milliseconds and parse as UTC.
        let iso = format!(
            "{}Z",
            ts.trim().replacen(' ', "T", 1).chars().take(23).collect::<String>()
        );
        let ms =
            parse_rfc3339_ms(&iso).ok_or_else(|| format!("{}:{}: bad timestamp `{ts}`", path.display(), n + 1))? as f64;
        let parse = |v: &str| {
            v.trim()
                .parse::<u32>()
                .map_err(|_| format!("{}:{}: bad token count `{v}`", path.display(), n + 1))
        };
        samples.push(ArrivalSample {
            gap_ms: previous.map_or(0.0, |p| (ms - p).max(0.0)),
            prompt_tokens: parse(prompt)?,
            completion_tokens: parse(completion)?,
        });
        previous = Some(ms);
    }
    if samples.is_empty() {
        return Err(format!("{}: no rows", path.display()));
    }
    Ok(samples)
}
