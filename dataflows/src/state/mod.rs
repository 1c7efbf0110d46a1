//! Compact state containers shared by the operators.

mod keyed;
mod offset_ledger;
mod time_buffer;

pub use keyed::KeyedSlab;
pub use offset_ledger::{CommitPoint, OffsetLedger};
pub use time_buffer::TimeBuffer;
