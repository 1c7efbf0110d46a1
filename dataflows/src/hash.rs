//! Stable hashing. Ids and routing must not change across runs, processes or Rust versions,
//! so this uses xxh3 with a fixed seed rather than `std::hash`.

use xxhash_rust::xxh3::{xxh3_128_with_seed, xxh3_64_with_seed};

const SEED: u64 = 0x5e47_1e1e_5e47_1e1e;

/// Stable 64-bit hash of a byte string; used to route keys to workers.
pub fn hash64(bytes: &[u8]) -> u64 {
    xxh3_64_with_seed(bytes, SEED)
}

/// Deterministic 128-bit id, as 32 lowercase hex digits, of an ordered list of parts.
/// Parts are length-prefixed so that `["ab", "c"]` and `["a", "bc"]` differ.
///
/// ```
/// use sentinel_dataflows::hash::stable_id;
/// assert_eq!(stable_id(&[b"det", b"app-1"]), stable_id(&[b"det", b"app-1"]));
/// assert_ne!(stable_id(&[b"ab", b"c"]), stable_id(&[b"a", b"bc"]));
/// ```
pub fn stable_id(parts: &[&[u8]]) -> String {
    let mut buf = Vec::with_capacity(parts.iter().map(|p| p.len() + 4).sum());
    for p in parts {
        buf.extend_from_slice(&(p.len() as u32).to_le_bytes());
        buf.extend_from_slice(p);
    }
    format!("{:032x}", xxh3_128_with_seed(&buf, SEED))
}
