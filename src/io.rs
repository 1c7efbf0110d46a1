//! Adapters between the byte transports in `sentinel-connectors` and the dataflow's reader and
//! sink traits. This is the only place the two crates meet.

use std::path::{Path, PathBuf};

use sentinel_connectors::file::{FileShardReader, FileWriter, ShardStatus};
use sentinel_connectors::stdio::StdoutLines;
use sentinel_dataflows::operators::{RawRecord, ReadStatus, RecordReader, RecordSink};
use sentinel_dataflows::synth::{TraceConfig, TraceGenerator};

/// One worker's share of a trace file.
pub struct FileSource {
    name: String,
    reader: FileShardReader,
}

impl FileSource {
    /// Opens worker `index` of `peers`'s share of `path`.
    pub fn open(path: &Path, index: usize, peers: usize, max_record: usize) -> std::io::Result<Self> {
        Ok(FileSource {
            name: format!("file:{}", path.display()),
            reader: FileShardReader::open(path, index, peers, max_record)?,
        })
    }
}

impl RecordReader for FileSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn read(&mut self, budget: usize, each: &mut dyn FnMut(RawRecord<'_>) -> bool) -> ReadStatus {
        let result = self.reader.read(budget, &mut |bytes, original_len, line, offset| {
            each(RawRecord {
                bytes,
                original_len,
                line,
                partition: None,
                offset: offset.map(|o| o as i64),
            })
        });
        match result {
            Ok(ShardStatus::More) => ReadStatus::More,
            Ok(ShardStatus::Done) => ReadStatus::Done,
            Err(e) => {
                // A read error ends this shard; the summary shows how far it got.
                tracing::error!(source = %self.name, error = %e, "read failed; stopping this source");
                ReadStatus::Done
            }
        }
    }
}

/// One worker's share of the built-in synthetic trace (every `peers`-th event).
pub struct SyntheticSource {
    generator: TraceGenerator,
    index: u64,
    peers: u64,
    position: u64,
}

impl SyntheticSource {
    /// Worker `index` of `peers`.
    pub fn new(cfg: TraceConfig, index: usize, peers: usize) -> Self {
        SyntheticSource {
            generator: TraceGenerator::new(cfg),
            index: index as u64,
            peers: peers.max(1) as u64,
            position: 0,
        }
    }
}

impl RecordReader for SyntheticSource {
    fn name(&self) -> &str {
        "synthetic"
    }

    fn read(&mut self, budget: usize, each: &mut dyn FnMut(RawRecord<'_>) -> bool) -> ReadStatus {
        let mut taken = 0;
        while taken < budget {
            let Some((_, json)) = self.generator.next() else {
                return ReadStatus::Done;
            };
            self.position += 1;
            if (self.position - 1) % self.peers != self.index {
                continue;
            }
            taken += 1;
            let rec = RawRecord {
                bytes: json.as_bytes(),
                original_len: json.len(),
                line: Some(self.position),
                partition: None,
                offset: None,
            };
            if !each(rec) {
                break;
            }
        }
        ReadStatus::More
    }
}

/// Where an output stream goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OutputTarget {
    /// Standard output (dead letters go to stderr, so stdout stays parseable).
    Stdout,
    /// One `<stream>.jsonl` per stream in this directory.
    Dir(PathBuf),
    /// Nowhere (benchmarks): records are still built and serialized, then dropped.
    Discard,
}

impl OutputTarget {
    /// Parses `stdout`, `file:DIR` or `none`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "stdout" => Some(OutputTarget::Stdout),
            "none" => Some(OutputTarget::Discard),
            _ => s
                .strip_prefix("file:")
                .filter(|d| !d.is_empty())
                .map(|d| OutputTarget::Dir(PathBuf::from(d))),
        }
    }

    /// A sink for stream `name` (e.g. `anomalies`).
    pub fn open(&self, name: &str) -> std::io::Result<Box<dyn RecordSink>> {
        Ok(match self {
            OutputTarget::Stdout if name == "deadletter" => Box::new(StderrSink),
            OutputTarget::Stdout => Box::new(StdoutSink(StdoutLines::default())),
            OutputTarget::Dir(dir) => Box::new(FileSink(FileWriter::create(&dir.join(format!("{name}.jsonl")))?)),
            OutputTarget::Discard => Box::new(Discard),
        })
    }
}

/// A sink that keeps nothing.
pub struct Discard;

impl RecordSink for Discard {
    fn write(&mut self, _key: &str, _payload: &[u8]) {}
    fn flush(&mut self) {}
}

struct StdoutSink(StdoutLines);

impl RecordSink for StdoutSink {
    fn write(&mut self, _key: &str, payload: &[u8]) {
        self.0.write_line(payload);
    }
    fn flush(&mut self) {
        if let Err(e) = self.0.flush() {
            tracing::error!(error = %e, "stdout write failed");
        }
    }
}

struct StderrSink;

impl RecordSink for StderrSink {
    fn write(&mut self, _key: &str, payload: &[u8]) {
        eprintln!("deadletter {}", String::from_utf8_lossy(payload));
    }
    fn flush(&mut self) {}
}

struct FileSink(FileWriter);

impl RecordSink for FileSink {
    fn write(&mut self, _key: &str, payload: &[u8]) {
        if let Err(e) = self.0.write_line(payload) {
            tracing::error!(error = %e, "output file write failed");
        }
    }
    fn flush(&mut self) {
        if let Err(e) = self.0.flush() {
            tracing::error!(error = %e, "output file flush failed");
        }
    }
}
