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
    let hex = StableId::of(parts).hex();
    std::str::from_utf8(&hex).unwrap_or_default().to_owned()
}

/// A [`stable_id`] kept as its 128 bits: no allocation until it is written. Serializes as the
/// same 32 lowercase hex digits.
///
/// ```
/// use sentinel_dataflows::hash::{stable_id, StableId};
/// assert_eq!(StableId::of(&[b"det", b"app-1"]).to_string(), stable_id(&[b"det", b"app-1"]));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StableId(pub u128);

impl StableId {
    /// The id of an ordered list of parts (see [`stable_id`]).
    pub fn of(parts: &[&[u8]]) -> Self {
        let mut buf = smallvec::SmallVec::<[u8; 128]>::new();
        for p in parts {
            buf.extend_from_slice(&(p.len() as u32).to_le_bytes());
            buf.extend_from_slice(p);
        }
        StableId(xxh3_128_with_seed(&buf, SEED))
    }

    /// The 32 hex digits.
    pub fn hex(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        // Cannot fail: the output is exactly twice the input's length.
        let _ = const_hex::encode_to_slice(self.0.to_be_bytes(), &mut out);
        out
    }
}

impl std::fmt::Display for StableId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hex = self.hex();
        f.write_str(std::str::from_utf8(&hex).map_err(|_| std::fmt::Error)?)
    }
}

impl serde::Serialize for StableId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let hex = self.hex();
        s.serialize_str(std::str::from_utf8(&hex).map_err(serde::ser::Error::custom)?)
    }
}

impl std::str::FromStr for StableId {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || format!("an id is 32 hex digits, not `{text}`");
        if text.len() != 32 {
            return Err(bad());
        }
        u128::from_str_radix(text, 16).map(StableId).map_err(|_| bad())
    }
}

impl<'de> serde::Deserialize<'de> for StableId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}
