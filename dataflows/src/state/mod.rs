//! Compact keyed state containers shared by the operators.

mod keyed;

pub use keyed::KeyedSlab;
