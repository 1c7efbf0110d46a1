//! Appends records as lines to a file.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::Path;

/// Writes one record per line. Buffered; `flush` pushes the buffer to the OS.
pub struct FileWriter {
    out: BufWriter<File>,
}

impl FileWriter {
    /// Creates (truncating) the file at `path`, making parent directories as needed.
    pub fn create(path: &Path) -> io::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).write(true).truncate(true).open(path)?;
        Ok(FileWriter {
            out: BufWriter::with_capacity(1 << 16, file),
        })
    }

    /// Opens the file at `path` to append to it, creating it (and its directories) if needed.
    pub fn append(path: &Path) -> io::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(FileWriter {
            out: BufWriter::with_capacity(1 << 16, file),
        })
    }

    /// Appends `record` and a newline.
    pub fn write_line(&mut self, record: &[u8]) -> io::Result<()> {
        self.out.write_all(record)?;
        self.out.write_all(b"\n")
    }

    /// Pushes buffered lines to the OS.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}
