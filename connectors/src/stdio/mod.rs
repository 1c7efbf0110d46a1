//! Standard output as a line sink.

use std::io::{self, Write};

/// Collects lines and writes them to stdout in whole-line chunks, so that several workers
/// sharing stdout never interleave within a line.
#[derive(Default)]
pub struct StdoutLines {
    pending: Vec<u8>,
}

impl StdoutLines {
    /// Queues `record` and a newline.
    pub fn write_line(&mut self, record: &[u8]) {
        self.pending.extend_from_slice(record);
        self.pending.push(b'\n');
        if self.pending.len() > 1 << 16 {
            let _ = self.flush();
        }
    }

    /// Writes queued lines under the stdout lock.
    pub fn flush(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let mut out = io::stdout().lock();
        let result = out.write_all(&self.pending).and_then(|_| out.flush());
        self.pending.clear();
        result
    }
}
