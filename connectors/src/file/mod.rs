//! Line-delimited files: sharded readers, followers of a growing file, and writers.

mod lines;
mod reader;
mod tail;
mod writer;

pub use lines::{Line, LineSplitter};
pub use reader::{FileShardReader, LineCallback, ShardStatus};
pub use tail::{FileTail, TailLine};
pub use writer::FileWriter;
