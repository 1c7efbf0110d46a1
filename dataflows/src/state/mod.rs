//! Compact keyed state containers shared by the operators.

mod keyed;
mod offset_ledger;

pub use keyed::KeyedSlab;
pub use offset_ledger::{CommitPoint, OffsetLedger};
