//! Line-delimited files: sharded readers and appending writers.

mod lines;
mod reader;
mod writer;

pub use lines::{Line, LineSplitter};
pub use reader::{FileShardReader, LineCallback, ShardStatus};
pub use writer::FileWriter;
