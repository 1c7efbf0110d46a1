//! Reads one worker's share of a line-delimited file, plain or gzip.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;

use super::lines::LineSplitter;

/// Plain files are shared in blocks of this size, dealt round-robin to the shards, so that every
/// shard moves through the file's timeline at about the same pace.
pub const BLOCK_BYTES: u64 = 1 << 20;

/// Receives `(bytes, original_len, line_number, byte_offset)` for each line; returns `false` to stop.
pub type LineCallback<'a> = dyn FnMut(&[u8], usize, Option<u64>, Option<u64>) -> bool + 'a;

/// What a read left behind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShardStatus {
    /// More lines remain.
    More,
    /// The shard is finished.
    Done,
}

enum Mode {
    /// Plain file: blocks `shard, shard + shards, ...`; a line belongs to the block holding its first byte.
    Blocks {
        file: File,
        len: u64,
        next_block: u64,
        current: Option<(LineSplitter<io::Take<File>>, u64)>,
    },
    /// Gzip: every shard decompresses the stream and keeps lines `shard, shard + shards, ...`.
    Gzip {
        lines: LineSplitter<MultiGzDecoder<BufReader<File>>>,
        line_no: u64,
    },
    Finished,
}

/// One shard of a file's lines.
///
/// ```
/// use sentinel_connectors::file::{FileShardReader, ShardStatus};
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("t.jsonl");
/// std::fs::write(&path, "a\nb\nc\n").unwrap();
/// let mut seen = Vec::new();
/// let mut r = FileShardReader::open(&path, 0, 1, 1024).unwrap();
/// while r.read(10, &mut |line, _, _, _| { seen.push(line.to_vec()); true }).unwrap() == ShardStatus::More {}
/// assert_eq!(seen, vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
/// ```
pub struct FileShardReader {
    path: PathBuf,
    shard: u64,
    shards: u64,
    max_line: usize,
    mode: Mode,
    /// The last block's buffer, reused by the next.
    spare: Vec<u8>,
}

impl FileShardReader {
    /// Opens shard `shard` of `shards` of the file at `path`. A `.gz` name means gzip.
    pub fn open(path: &Path, shard: usize, shards: usize, max_line: usize) -> io::Result<Self> {
        let file = File::open(path)?;
        let gzip = path.extension().is_some_and(|e| e == "gz");
        let mode = if gzip {
            Mode::Gzip {
                lines: LineSplitter::new(MultiGzDecoder::new(BufReader::new(file)), 0, max_line),
                line_no: 0,
            }
        } else {
            let len = file.metadata()?.len();
            Mode::Blocks {
                file,
                len,
                next_block: shard as u64,
                current: None,
            }
        };
        Ok(FileShardReader {
            path: path.to_owned(),
            shard: shard as u64,
            shards: shards.max(1) as u64,
            max_line,
            mode,
            spare: Vec::new(),
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Passes up to `budget` lines to `each(bytes, original_len, line_number, byte_offset)`;
    /// stops early when it returns `false`. Line numbers are known for gzip files only, byte
    /// offsets for plain files only. Blank lines are skipped.
    pub fn read(&mut self, budget: usize, each: &mut LineCallback<'_>) -> io::Result<ShardStatus> {
        let mut taken = 0;
        while taken < budget {
            match &mut self.mode {
                Mode::Finished => return Ok(ShardStatus::Done),
                Mode::Gzip { lines, line_no } => {
                    let Some(line) = lines.next_line()? else {
                        self.mode = Mode::Finished;
                        return Ok(ShardStatus::Done);
                    };
                    *line_no += 1;
                    if (*line_no - 1) % self.shards != self.shard || is_blank(line.bytes) {
                        continue;
                    }
                    taken += 1;
                    if !each(line.bytes, line.original_len, Some(*line_no), None) {
                        break;
                    }
                }
                Mode::Blocks {
                    file,
                    len,
                    next_block,
                    current,
                } => {
                    if current.is_none() {
                        let start = *next_block * BLOCK_BYTES;
                        if start >= *len {
                            self.mode = Mode::Finished;
                            return Ok(ShardStatus::Done);
                        }
                        *next_block += self.shards;
                        let buf = std::mem::take(&mut self.spare);
                        *current = Some(open_block(file, start, *len, self.max_line, buf)?);
                    }
                    let Some((lines, block_end)) = current.as_mut() else {
                        continue;
                    };
                    let line = match lines.next_line()? {
                        Some(l) if l.offset < *block_end => l,
                        _ => {
                            if let Some((lines, _)) = current.take() {
                                self.spare = lines.into_buffer();
                            }
                            continue;
                        }
                    };
                    if is_blank(line.bytes) {
                        continue;
                    }
                    taken += 1;
                    if !each(line.bytes, line.original_len, None, Some(line.offset)) {
                        break;
                    }
                }
            }
        }
        Ok(ShardStatus::More)
    }
}

/// Positions a splitter at the first line that starts inside the block at `start`.
fn open_block(
    file: &File,
    start: u64,
    len: u64,
    max_line: usize,
    buf: Vec<u8>,
) -> io::Result<(LineSplitter<io::Take<File>>, u64)> {
    let mut handle = file.try_clone()?;
    let block_end = (start + BLOCK_BYTES).min(len);
    // Begin one byte early: if that byte is a newline, a line starts exactly at `start`.
    let from = start.saturating_sub(1);
    handle.seek(SeekFrom::Start(from))?;
    let mut lines = LineSplitter::with_buffer(handle.take(len - from), from, max_line, buf).bulk_until(block_end);
    if start > 0 {
        lines.next_line()?; // the tail of the previous block's last line
    }
    Ok((lines, block_end))
}

fn is_blank(line: &[u8]) -> bool {
    line.iter().all(|b| b.is_ascii_whitespace())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn read_all(path: &Path, shards: usize) -> Vec<Vec<u8>> {
        let mut all = Vec::new();
        for shard in 0..shards {
            let mut r = FileShardReader::open(path, shard, shards, 1 << 16).unwrap();
            while r
                .read(1000, &mut |l, _, _, _| {
                    all.push(l.to_vec());
                    true
                })
                .unwrap()
                == ShardStatus::More
            {}
        }
        all.sort();
        all
    }

    #[test]
    fn shards_cover_every_line_exactly_once_across_block_boundaries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.jsonl");
        let mut expected = Vec::new();
        let mut f = File::create(&path).unwrap();
        let (mut written, mut long_lines) = (0u64, 0);
        for i in 0..200_000u32 {
            // A line starting just before each block end is long (50 KB), so it straddles the
            // boundary by more than one short read.
            let to_block_end = BLOCK_BYTES - written % BLOCK_BYTES;
            let pad = if to_block_end < 64 { 50_000 } else { (i % 37) as usize };
            let line = format!("{{\"n\":{i},\"pad\":\"{}\"}}", "y".repeat(pad));
            writeln!(f, "{line}").unwrap();
            written += line.len() as u64 + 1;
            long_lines += usize::from(pad == 50_000);
            expected.push(line.into_bytes());
        }
        drop(f);
        assert!(std::fs::metadata(&path).unwrap().len() > 3 * BLOCK_BYTES);
        assert!(long_lines >= 3, "{long_lines} lines straddle block ends");
        expected.sort();
        for shards in [1, 2, 3, 5] {
            assert_eq!(read_all(&path, shards), expected, "{shards} shards");
        }
    }

    #[test]
    fn gzip_shards_by_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.jsonl.gz");
        let mut gz = flate2::write::GzEncoder::new(File::create(&path).unwrap(), flate2::Compression::fast());
        for i in 0..1000 {
            writeln!(gz, "line {i}").unwrap();
        }
        gz.finish().unwrap();
        assert_eq!(read_all(&path, 3).len(), 1000);
        let mut r = FileShardReader::open(&path, 1, 3, 100).unwrap();
        let mut first = None;
        r.read(1, &mut |l, _, line, _| {
            first = Some((l.to_vec(), line));
            true
        })
        .unwrap();
        assert_eq!(first, Some((b"line 1".to_vec(), Some(2))));
    }
}
