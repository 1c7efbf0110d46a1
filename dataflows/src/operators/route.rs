//! How records are routed to workers: by a stable hash of their entity key.

use crate::hash::hash64;
use crate::window::Dimension;

/// The routing hash of an entity, the same for every operator that partitions by entity.
#[inline]
pub fn entity_route(dimension: Dimension, key: &str) -> u64 {
    hash64(key.as_bytes()) ^ (dimension as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}
