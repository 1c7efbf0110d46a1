//! A small mergeable quantile sketch for latencies.
//!
//! Values fall in logarithmic buckets 2% wide, so any quantile is within 1% of a value actually seen
//! (the DDSketch guarantee). Buckets are stored sparsely and sorted, so a key that saw three calls
//! costs three entries, and partial sketches from different workers merge exactly.

use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

const GAMMA_LN: f64 = 0.019_802_627_296_179_712; // ln((1 + 0.01) / (1 - 0.01))
const ZERO_BUCKET: i16 = i16::MIN;

/// Sparse log-bucketed histogram of non-negative values.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySketch {
    // Two buckets inline: most per-user windows hold one or two calls and need no heap at all.
    buckets: SmallVec<[(i16, u32); 2]>,
}

impl LatencySketch {
    fn bucket(value: f64) -> i16 {
        if value <= 1e-3 {
            ZERO_BUCKET
        } else {
            (value.ln() / GAMMA_LN).ceil().clamp(-30_000.0, 30_000.0) as i16
        }
    }

    fn representative(bucket: i16) -> f64 {
        if bucket == ZERO_BUCKET {
            0.0
        } else {
            // Midpoint of (gamma^(b-1), gamma^b] in relative terms.
            2.0 * (f64::from(bucket) * GAMMA_LN).exp() / (1.0 + GAMMA_LN.exp())
        }
    }

    /// Adds one value; NaN and negative values are ignored.
    pub fn insert(&mut self, value: f64) {
        if value.is_nan() || value < 0.0 {
            return;
        }
        let b = Self::bucket(value);
        match self.buckets.binary_search_by_key(&b, |e| e.0) {
            Ok(i) => self.buckets[i].1 += 1,
            Err(i) => self.buckets.insert(i, (b, 1)),
        }
    }

    /// Adds every value of `other`.
    pub fn merge(&mut self, other: &LatencySketch) {
        if self.buckets.is_empty() {
            self.buckets.extend_from_slice(&other.buckets);
            return;
        }
        let (a, b) = (&self.buckets, &other.buckets);
        let mut merged = SmallVec::with_capacity(a.len() + b.len());
        let (mut i, mut j) = (0, 0);
        while i < a.len() && j < b.len() {
            match a[i].0.cmp(&b[j].0) {
                std::cmp::Ordering::Equal => {
                    merged.push((a[i].0, a[i].1 + b[j].1));
                    i += 1;
                    j += 1;
                }
                std::cmp::Ordering::Less => {
                    merged.push(a[i]);
                    i += 1;
                }
                std::cmp::Ordering::Greater => {
                    merged.push(b[j]);
                    j += 1;
                }
            }
        }
        merged.extend_from_slice(&a[i..]);
        merged.extend_from_slice(&b[j..]);
        self.buckets = merged;
    }

    /// Number of values.
    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|b| u64::from(b.1)).sum()
    }

    /// The `q`-quantile (0..=1), or `None` when empty.
    ///
    /// ```
    /// use sentinel_dataflows::window::LatencySketch;
    /// let mut s = LatencySketch::default();
    /// for v in 1..=100 { s.insert(v as f64); }
    /// let p95 = s.quantile(0.95).unwrap();
    /// assert!((p95 - 95.0).abs() <= 95.0 * 0.011, "{p95}");
    /// ```
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let n = self.count();
        if n == 0 {
            return None;
        }
        // Nearest-rank definition: the smallest value with at least q·n values at or below it.
        let rank = ((q.clamp(0.0, 1.0) * n as f64).ceil() as u64).max(1);
        let mut seen = 0u64;
        for &(b, c) in &self.buckets {
            seen += u64::from(c);
            if seen >= rank {
                return Some(Self::representative(b));
            }
        }
        self.buckets.last().map(|b| Self::representative(b.0))
    }

    /// Heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        if self.buckets.spilled() {
            self.buckets.capacity() * std::mem::size_of::<(i16, u32)>()
        } else {
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_stay_within_relative_error() {
        let mut s = LatencySketch::default();
        let values: Vec<f64> = (0..10_000).map(|i| 5.0 + (i as f64).powf(1.3)).collect();
        for v in &values {
            s.insert(*v);
        }
        for q in [0.5, 0.95, 0.99] {
            let exact = values[((q * values.len() as f64).ceil() as usize) - 1];
            let got = s.quantile(q).unwrap();
            assert!((got - exact).abs() <= exact * 0.0101, "q={q} exact={exact} got={got}");
        }
    }

    #[test]
    fn merge_equals_inserting_everything() {
        let (mut a, mut b, mut all) = (
            LatencySketch::default(),
            LatencySketch::default(),
            LatencySketch::default(),
        );
        for i in 0..500 {
            let v = (i * 37 % 1000) as f64;
            if i % 3 == 0 {
                a.insert(v)
            } else {
                b.insert(v)
            }
            all.insert(v);
        }
        a.merge(&b);
        assert_eq!(a, all);
        assert_eq!(a.count(), 500);
    }

    #[test]
    fn zero_and_nan() {
        let mut s = LatencySketch::default();
        s.insert(0.0);
        s.insert(f64::NAN);
        assert_eq!(s.count(), 1);
        assert_eq!(s.quantile(0.99), Some(0.0));
    }
}
