//! A string-keyed map that stores each key once, values densely, and only a 4-byte index per
//! hash slot, so per-key memory stays close to the size of the value itself.

use std::hash::BuildHasher;

use hashbrown::{DefaultHashBuilder, HashTable};

/// Map from string keys to `V`: entries live in a dense `Vec`, the hash table holds indices.
///
/// ```
/// use sentinel_dataflows::state::KeyedSlab;
/// let mut slab = KeyedSlab::default();
/// *slab.get_or_insert_with("a", || 0u32) += 1;
/// *slab.get_or_insert_with("a", || 0u32) += 1;
/// assert_eq!(slab.get("a"), Some(&2));
/// slab.retain(|_, v| *v > 5);
/// assert!(slab.is_empty());
/// ```
pub struct KeyedSlab<V> {
    entries: Vec<(Box<str>, V)>,
    index: HashTable<u32>,
    hasher: DefaultHashBuilder,
}

impl<V> Default for KeyedSlab<V> {
    fn default() -> Self {
        KeyedSlab {
            entries: Vec::new(),
            index: HashTable::new(),
            hasher: DefaultHashBuilder::default(),
        }
    }
}

impl<V> KeyedSlab<V> {
    fn hash(&self, key: &str) -> u64 {
        self.hasher.hash_one(key)
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&V> {
        let entries = &self.entries;
        self.index
            .find(self.hash(key), |&i| &*entries[i as usize].0 == key)
            .map(|&i| &entries[i as usize].1)
    }

    /// The value of `key`, mutably.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut V> {
        let hash = self.hash(key);
        let entries = &self.entries;
        let i = *self.index.find(hash, |&i| &*entries[i as usize].0 == key)?;
        Some(&mut self.entries[i as usize].1)
    }

    /// The value of `key`, inserting `make()` first if absent (allocating the key only then).
    pub fn get_or_insert_with(&mut self, key: &str, make: impl FnOnce() -> V) -> &mut V {
        let hash = self.hash(key);
        let entries = &self.entries;
        if let Some(&i) = self.index.find(hash, |&i| &*entries[i as usize].0 == key) {
            return &mut self.entries[i as usize].1;
        }
        let i = self.entries.len();
        self.entries.push((key.into(), make()));
        let (entries, hasher) = (&self.entries, &self.hasher);
        self.index
            .insert_unique(hash, i as u32, |&j| hasher.hash_one(&*entries[j as usize].0));
        &mut self.entries[i].1
    }

    /// Inserts `value` under an owned `key`, or folds it into the present value with `combine`.
    /// Moving the key in saves the copy that [`KeyedSlab::get_or_insert_with`] would make.
    pub fn upsert(&mut self, key: Box<str>, value: V, combine: impl FnOnce(&mut V, V)) {
        let hash = self.hash(&key);
        let entries = &self.entries;
        if let Some(&i) = self.index.find(hash, |&i| entries[i as usize].0 == key) {
            combine(&mut self.entries[i as usize].1, value);
            return;
        }
        let i = self.entries.len();
        self.entries.push((key, value));
        let (entries, hasher) = (&self.entries, &self.hasher);
        self.index
            .insert_unique(hash, i as u32, |&j| hasher.hash_one(&*entries[j as usize].0));
    }

    /// Keeps the entries for which `keep` is true.
    pub fn retain(&mut self, mut keep: impl FnMut(&str, &mut V) -> bool) {
        let before = self.entries.len();
        self.entries.retain_mut(|(k, v)| keep(k, v));
        if self.entries.len() != before {
            self.rebuild_index();
        }
    }

    fn rebuild_index(&mut self) {
        self.index.clear();
        self.index.shrink_to(self.entries.len(), |_| 0);
        let (entries, hasher) = (&self.entries, &self.hasher);
        for (i, (k, _)) in entries.iter().enumerate() {
            self.index.insert_unique(hasher.hash_one(&**k), i as u32, |&j| {
                hasher.hash_one(&*entries[j as usize].0)
            });
        }
    }

    /// Removes and returns every entry, in insertion order.
    pub fn drain(&mut self) -> std::vec::Drain<'_, (Box<str>, V)> {
        self.index = HashTable::new();
        self.entries.drain(..)
    }

    /// Every entry.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &V)> {
        self.entries.iter().map(|(k, v)| (&**k, v))
    }

    /// Approximate bytes held, keys and table included (values' own heap not included).
    pub fn bytes(&self) -> usize {
        self.entries.capacity() * std::mem::size_of::<(Box<str>, V)>()
            + self.entries.iter().map(|(k, _)| k.len()).sum::<usize>()
            + self.index.capacity() * 5
    }
}

impl<V> IntoIterator for KeyedSlab<V> {
    type Item = (Box<str>, V);
    type IntoIter = std::vec::IntoIter<(Box<str>, V)>;

    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaves_like_a_map_through_inserts_and_retains() {
        let mut slab = KeyedSlab::default();
        let mut oracle = std::collections::HashMap::new();
        for i in 0..10_000u32 {
            let key = format!("k{}", i % 1_500);
            *slab.get_or_insert_with(&key, || 0) += i;
            *oracle.entry(key).or_insert(0) += i;
            if i % 2_500 == 0 {
                slab.retain(|_, v| *v % 3 != 0);
                oracle.retain(|_, v| *v % 3 != 0);
            }
        }
        assert_eq!(slab.len(), oracle.len());
        for (k, v) in &oracle {
            assert_eq!(slab.get(k), Some(v), "{k}");
        }
        let drained: std::collections::HashMap<String, u32> = slab.drain().map(|(k, v)| (k.into(), v)).collect();
        assert_eq!(drained, oracle);
        assert!(slab.get("k1").is_none());
    }

    #[test]
    fn upsert_inserts_then_combines() {
        let mut slab = KeyedSlab::default();
        slab.upsert("a".into(), 2u32, |v, x| *v += x);
        slab.upsert("b".into(), 5, |v, x| *v += x);
        slab.upsert("a".into(), 3, |v, x| *v += x);
        assert_eq!(slab.get("a"), Some(&5));
        assert_eq!(slab.get("b"), Some(&5));
        assert_eq!(slab.len(), 2);
    }
}
