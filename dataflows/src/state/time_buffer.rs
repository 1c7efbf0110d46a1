//! Items held until event time passes them, grouped by second, so that releasing touches only
//! the items released (a flat list would be re-scanned and moved on every activation: with a
//! lagging frontier that cost grew with everything held).

use std::collections::BTreeMap;

/// Width of one group.
const SLICE_MS: u64 = 1000;

/// A buffer of `(time, item)` pairs released in groups once a frontier passes them.
///
/// ```
/// use sentinel_dataflows::state::TimeBuffer;
/// let mut b = TimeBuffer::default();
/// for (t, x) in [(2500, 'c'), (100, 'a'), (1200, 'b')] {
///     b.push(t, x);
/// }
/// let mut out = Vec::new();
/// b.take_before(1300, &mut out);
/// out.sort();
/// assert_eq!(out, vec!['a', 'b']);
/// assert_eq!(b.min_time(), Some(2500));
/// ```
#[derive(Debug)]
pub struct TimeBuffer<T> {
    slices: BTreeMap<u64, Vec<(u64, T)>>,
    len: usize,
}

impl<T> Default for TimeBuffer<T> {
    fn default() -> Self {
        TimeBuffer {
            slices: BTreeMap::new(),
            len: 0,
        }
    }
}

impl<T> TimeBuffer<T> {
    /// Holds `item` at `time`.
    pub fn push(&mut self, time: u64, item: T) {
        self.slices.entry(time / SLICE_MS).or_default().push((time, item));
        self.len += 1;
    }

    /// Items held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The earliest time held.
    pub fn min_time(&self) -> Option<u64> {
        self.slices
            .values()
            .next()
            .and_then(|s| s.iter().map(|(t, _)| *t).min())
    }

    /// Moves every item with a time before `now` into `out` (in no particular order).
    pub fn take_before(&mut self, now: u64, out: &mut Vec<T>) {
        while let Some(mut entry) = self.slices.first_entry() {
            let slice = *entry.key();
            if slice.saturating_mul(SLICE_MS) >= now {
                break;
            }
            if (slice + 1).saturating_mul(SLICE_MS) <= now {
                let items = entry.remove();
                self.len -= items.len();
                out.extend(items.into_iter().map(|(_, x)| x));
                continue;
            }
            // The slice `now` falls in: release its earlier part only.
            let items = entry.get_mut();
            let before = items.len();
            let mut i = 0;
            while i < items.len() {
                if items[i].0 < now {
                    out.push(items.swap_remove(i).1);
                } else {
                    i += 1;
                }
            }
            self.len -= before - items.len();
            if items.is_empty() {
                entry.remove();
            }
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_exactly_what_is_before_the_frontier() {
        let mut b = TimeBuffer::default();
        let times = [5, 999, 1000, 1001, 1999, 2000, 7500, 7499, 3];
        for (i, t) in times.iter().enumerate() {
            b.push(*t, i);
        }
        let mut out = Vec::new();
        b.take_before(1001, &mut out);
        let mut released: Vec<u64> = out.iter().map(|&i| times[i]).collect();
        released.sort();
        assert_eq!(released, vec![3, 5, 999, 1000]);
        assert_eq!((b.len(), b.min_time()), (5, Some(1001)));
        out.clear();
        b.take_before(u64::MAX, &mut out);
        assert_eq!((out.len(), b.len(), b.min_time()), (5, 0, None));
        assert!(b.is_empty());
    }
}
