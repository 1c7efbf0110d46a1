//! Splits a byte stream into lines, bounding the memory an oversized line can take.

use std::io::{self, Read};

/// One line, without its terminator.
#[derive(Debug)]
pub struct Line<'a> {
    /// The line's bytes, cut to the limit if it was longer.
    pub bytes: &'a [u8],
    /// The full length of the line.
    pub original_len: usize,
    /// Byte offset of the line's start in the underlying stream.
    pub offset: u64,
}

/// Reads lines from any `Read`. Lines longer than `max_line` are returned cut to `max_line`
/// bytes with their true `original_len`, and the rest is skipped without being buffered.
pub struct LineSplitter<R> {
    src: R,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
    offset: u64,
    max_line: usize,
    scratch: Vec<u8>,
    /// Stream offset past which only short reads are made: the caller needs just the rest of
    /// the line that straddles it.
    bulk_until: u64,
}

/// Read size once past [`LineSplitter::bulk_until`].
const TAIL_READ: usize = 16 << 10;

impl<R: Read> LineSplitter<R> {
    /// A splitter over `src`, whose first byte sits at `offset` in the stream.
    pub fn new(src: R, offset: u64, max_line: usize) -> Self {
        Self::with_buffer(src, offset, max_line, Vec::new())
    }

    /// Like [`LineSplitter::new`], reusing `buf` (from [`LineSplitter::into_buffer`]) so that a
    /// reader opening many splitters does not allocate and zero a buffer for each.
    pub fn with_buffer(src: R, offset: u64, max_line: usize, mut buf: Vec<u8>) -> Self {
        let cap = (1 << 20).max(max_line.saturating_add(1).min(64 << 20));
        buf.resize(cap, 0);
        LineSplitter {
            src,
            buf,
            start: 0,
            end: 0,
            eof: false,
            offset,
            max_line,
            scratch: Vec::new(),
            bulk_until: u64::MAX,
        }
    }

    /// Past stream offset `until`, reads only what finishing the current line needs.
    pub fn bulk_until(mut self, until: u64) -> Self {
        self.bulk_until = until;
        self
    }

    /// The buffer, for [`LineSplitter::with_buffer`].
    pub fn into_buffer(self) -> Vec<u8> {
        self.buf
    }

    /// Byte offset of the next unread byte.
    pub fn position(&self) -> u64 {
        self.offset
    }

    fn fill(&mut self) -> io::Result<()> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        // Stream offset of buf[end].
        let end_offset = self.offset + (self.end - self.start) as u64;
        let limit = if end_offset >= self.bulk_until {
            (self.end + TAIL_READ).min(self.buf.len())
        } else {
            self.buf.len()
        };
        while self.end < limit {
            match self.src.read(&mut self.buf[self.end..limit]) {
                Ok(0) => {
                    self.eof = true;
                    break;
                }
                Ok(n) => {
                    self.end += n;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The next line, or `None` at the end of the stream. A final line without a newline counts.
    pub fn next_line(&mut self) -> io::Result<Option<Line<'_>>> {
        loop {
            if let Some(nl) = memchr::memchr(b'\n', &self.buf[self.start..self.end]) {
                let (s, e) = (self.start, self.start + nl);
                let offset = self.offset;
                self.start = e + 1;
                self.offset += nl as u64 + 1;
                let line = trim_cr(&self.buf[s..e]);
                if line.len() > self.max_line {
                    return Ok(Some(Line {
                        bytes: &line[..self.max_line],
                        original_len: line.len(),
                        offset,
                    }));
                }
                return Ok(Some(Line {
                    bytes: line,
                    original_len: line.len(),
                    offset,
                }));
            }
            let pending = self.end - self.start;
            if pending > self.max_line {
                return self.skip_oversized().map(Some);
            }
            if self.eof {
                if pending == 0 {
                    return Ok(None);
                }
                let (s, e) = (self.start, self.end);
                let offset = self.offset;
                self.start = e;
                self.offset += pending as u64;
                return Ok(Some(Line {
                    bytes: trim_cr(&self.buf[s..e]),
                    original_len: pending,
                    offset,
                }));
            }
            self.fill()?;
        }
    }

    /// Keeps the first `max_line` bytes of an oversized line and discards the rest as it streams by.
    fn skip_oversized(&mut self) -> io::Result<Line<'_>> {
        let offset = self.offset;
        self.scratch.clear();
        self.scratch
            .extend_from_slice(&self.buf[self.start..self.start + self.max_line]);
        let mut len = 0usize;
        loop {
            let window = &self.buf[self.start..self.end];
            if let Some(nl) = memchr::memchr(b'\n', window) {
                len += nl;
                self.start += nl + 1;
                self.offset += nl as u64 + 1;
                break;
            }
            len += window.len();
            self.offset += window.len() as u64;
            self.start = self.end;
            if self.eof {
                break;
            }
            self.fill()?;
        }
        Ok(Line {
            bytes: &self.scratch,
            original_len: len,
            offset,
        })
    }
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8], max: usize) -> Vec<(Vec<u8>, usize, u64)> {
        let mut s = LineSplitter::new(input, 0, max);
        let mut out = Vec::new();
        while let Some(l) = s.next_line().unwrap() {
            out.push((l.bytes.to_vec(), l.original_len, l.offset));
        }
        out
    }

    #[test]
    fn splits_lines_with_offsets_and_a_final_partial_line() {
        let got = lines(b"ab\r\ncd\n\nlast", 100);
        assert_eq!(
            got,
            vec![
                (b"ab".to_vec(), 2, 0),
                (b"cd".to_vec(), 2, 4),
                (vec![], 0, 7),
                (b"last".to_vec(), 4, 8)
            ]
        );
    }

    #[test]
    fn cuts_oversized_lines_without_buffering_them() {
        let mut input = vec![b'x'; 3 << 20];
        input.extend_from_slice(b"\nok\n");
        let got = lines(&input, 10);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0, vec![b'x'; 10]);
        assert_eq!(got[0].1, 3 << 20);
        assert_eq!(got[1], (b"ok".to_vec(), 2, (3 << 20) + 1));
    }
}
