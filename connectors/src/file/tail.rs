//! Follows a file another writer appends to: complete lines only, from a byte offset, so a
//! reader can resume where it left off and never sees half a record.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// A line read, with the byte offset where it starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TailLine {
    /// Offset of the line's first byte.
    pub offset: u64,
    /// The line, without its newline.
    pub bytes: Vec<u8>,
}

/// Reads the lines appended to one file.
///
/// ```
/// use std::io::Write;
/// use sentinel_connectors::file::FileTail;
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("outbox.jsonl");
/// let mut tail = FileTail::new(&path, 0);
/// assert!(tail.poll(10).unwrap().is_empty(), "no file yet");
/// let mut f = std::fs::File::create(&path).unwrap();
/// f.write_all(b"{\"a\":1}\n{\"b\"").unwrap();
/// let lines = tail.poll(10).unwrap();
/// assert_eq!(lines.len(), 1, "the half-written line waits");
/// f.write_all(b":2}\n").unwrap();
/// assert_eq!(tail.poll(10).unwrap()[0].offset, 8);
/// ```
#[derive(Debug)]
pub struct FileTail {
    path: PathBuf,
    file: Option<File>,
    /// Offset of the next unread byte.
    position: u64,
    /// Bytes read past `position` that do not yet end a line.
    partial: Vec<u8>,
}

impl FileTail {
    /// Follows `path` from byte `position`.
    pub fn new(path: &Path, position: u64) -> Self {
        FileTail {
            path: path.to_owned(),
            file: None,
            position,
            partial: Vec::new(),
        }
    }

    /// Offset just past the last complete line returned.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Up to `max` complete lines appended since the last call. A missing file is no lines
    /// yet. A file shorter than what was read (truncated and rewritten) is read again from
    /// the start.
    pub fn poll(&mut self, max: usize) -> io::Result<Vec<TailLine>> {
        if self.file.is_none() {
            match File::open(&self.path) {
                Ok(f) => self.file = Some(f),
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
                Err(e) => return Err(e),
            }
        }
        let file = self.file.as_mut().expect("opened above");
        let len = file.metadata()?.len();
        let read_to = self.position + self.partial.len() as u64;
        if len < read_to {
            self.position = 0;
            self.partial.clear();
        }
        let start = self.position + self.partial.len() as u64;
        if len > start {
            file.seek(SeekFrom::Start(start))?;
            let mut chunk = Vec::with_capacity((len - start).min(1 << 20) as usize);
            file.take((len - start).min(1 << 20)).read_to_end(&mut chunk)?;
            self.partial.extend_from_slice(&chunk);
        }
        let mut lines = Vec::new();
        let mut consumed = 0usize;
        while lines.len() < max {
            let Some(end) = memchr::memchr(b'\n', &self.partial[consumed..]) else {
                break;
            };
            let line = &self.partial[consumed..consumed + end];
            if !line.is_empty() {
                lines.push(TailLine {
                    offset: self.position + consumed as u64,
                    bytes: line.to_vec(),
                });
            }
            consumed += end + 1;
        }
        self.partial.drain(..consumed);
        self.position += consumed as u64;
        Ok(lines)
    }
}
