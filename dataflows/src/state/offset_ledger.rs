//! Which source offsets are safe to commit: those whose every derived output is acknowledged.
//!
//! Each record read has a *horizon*: the dataflow time of the last output it can affect (the
//! end of the widest window it falls in, or the time its dead letter was sent at). Once the
//! acknowledged frontier passes a record's horizon, nothing more depends on it. The safe offset
//! of a partition is then the first offset whose record still has a horizon at or beyond the
//! frontier: a restart that resumes there re-reads every record of every window not yet fully
//! acknowledged, and none before.

use std::collections::BTreeMap;

/// A partition's resume point: where to read from after a restart, and the event-time state
/// to restore with it, so the restarted job judges lateness exactly as before.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommitPoint {
    /// The reader's partition slot.
    pub slot: usize,
    /// Next offset to read.
    pub offset: i64,
    /// Newest event time among the records before `offset`.
    pub max_ts: u64,
    /// Every output at a time before this was acknowledged; a restart need not emit them again.
    pub durable: u64,
}

#[derive(Clone, Debug, Default)]
struct PartitionLedger {
    /// Horizon → (first offset with that horizon, newest event time before that offset).
    open: BTreeMap<u64, (i64, u64)>,
    /// Offset after the last record seen (`None` before any).
    next: Option<i64>,
    /// Newest event time seen.
    max_ts: u64,
    /// Records read but not yet decided (held by the event-time clock): offset → newest event
    /// time before it. They keep the resume point at or before them.
    held: BTreeMap<i64, u64>,
}

/// Per-partition record horizons, for offset commits.
///
/// ```
/// use sentinel_dataflows::state::OffsetLedger;
/// let mut ledger = OffsetLedger::new(&[(Some(100), 0)]);
/// ledger.record(0, 100, 60_000, Some(1_000)); // outputs up to t=60s depend on offset 100
/// ledger.record(0, 101, 120_000, Some(61_000));
/// // Nothing acknowledged yet: resume at 100.
/// assert_eq!(ledger.safe_points(0)[0].offset, 100);
/// // Everything before t=60,001 acknowledged: offset 100 is done, resume at 101.
/// assert_eq!(ledger.safe_points(60_001)[0].offset, 101);
/// ```
#[derive(Clone, Debug)]
pub struct OffsetLedger {
    partitions: Vec<PartitionLedger>,
}

impl OffsetLedger {
    /// One entry per partition slot: `(resume offset, restored newest event time)`.
    pub fn new(starts: &[(Option<i64>, u64)]) -> Self {
        OffsetLedger {
            partitions: starts
                .iter()
                .map(|&(start, max_ts)| PartitionLedger {
                    open: BTreeMap::new(),
                    next: start,
                    max_ts,
                    held: BTreeMap::new(),
                })
                .collect(),
        }
    }

    /// Notes the record at `offset` of `slot`, whose outputs all lie at times ≤ `horizon`, with
    /// its event time if it had one.
    /// A record that was held (see [`OffsetLedger::hold`]) may be noted after later ones.
    pub fn record(&mut self, slot: usize, offset: i64, horizon: u64, event_ts: Option<u64>) {
        let Some(p) = self.partitions.get_mut(slot) else {
            return;
        };
        let prior_max = if p.held.is_empty() {
            p.max_ts
        } else {
            p.held.remove(&offset).unwrap_or(p.max_ts)
        };
        let entry = p.open.entry(horizon).or_insert((offset, prior_max));
        if offset < entry.0 {
            *entry = (offset, prior_max);
        }
        p.next = Some(p.next.map_or(offset + 1, |n| n.max(offset + 1)));
        if let Some(ts) = event_ts {
            p.max_ts = p.max_ts.max(ts);
        }
    }

    /// Notes that the record at `offset` was read but is not decided yet: until it is
    /// [recorded](OffsetLedger::record), no resume point passes it.
    pub fn hold(&mut self, slot: usize, offset: i64) {
        let Some(p) = self.partitions.get_mut(slot) else {
            return;
        };
        p.held.insert(offset, p.max_ts);
        p.next = Some(p.next.map_or(offset + 1, |n| n.max(offset + 1)));
    }

    /// The newest event time seen on `slot` (restored or read).
    pub fn max_ts(&self, slot: usize) -> u64 {
        self.partitions.get(slot).map_or(0, |p| p.max_ts)
    }

    /// Forgets records whose horizon is before `durable` (every output at an earlier time is
    /// acknowledged) and returns each partition's safe resume point. Partitions that have not
    /// read anything and had no start are left out.
    pub fn safe_points(&mut self, durable: u64) -> Vec<CommitPoint> {
        let mut points = Vec::with_capacity(self.partitions.len());
        for (slot, p) in self.partitions.iter_mut().enumerate() {
            p.open = p.open.split_off(&durable);
            let Some(next) = p.next else { continue };
            let held = p.held.first_key_value().map(|(o, m)| (*o, *m));
            let (offset, max_ts) = p
                .open
                .values()
                .copied()
                .chain(held)
                .min_by_key(|(offset, _)| *offset)
                .unwrap_or((next, p.max_ts));
            points.push(CommitPoint {
                slot,
                offset,
                max_ts,
                durable,
            });
        }
        points
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resumes_at_the_oldest_record_of_any_unacknowledged_window() {
        let mut l = OffsetLedger::new(&[(None, 0), (Some(7), 500)]);
        // Slot 0: records 0..6, horizons by 1-minute window; record 3 is out of order (older).
        for (offset, ts) in [
            (0, 10_000),
            (1, 50_000),
            (2, 70_000),
            (3, 20_000),
            (4, 130_000),
            (5, 140_000),
        ] {
            l.record(0, offset, (ts / 60_000 + 1) * 60_000, Some(ts));
        }
        assert_eq!(l.safe_points(0)[0].offset, 0);
        // Window ending at 60s acknowledged... but not the one ending at 120s: the earliest
        // record in a window ending at or after 60,001 is offset 2.
        let p = l.safe_points(60_001);
        assert_eq!((p[0].offset, p[0].max_ts), (2, 50_000));
        // Offset 3 (ts 20s, horizon 60s) was dropped with that window, so the resume point
        // does not fall back to it.
        let p = l.safe_points(120_001);
        assert_eq!((p[0].offset, p[0].max_ts), (4, 70_000));
        // All acknowledged: resume after the last record, with the newest event time.
        let p = l.safe_points(u64::MAX);
        assert_eq!((p[0].offset, p[0].max_ts, p[0].durable), (6, 140_000, u64::MAX));
        // Slot 1 never read: resumes where it started, with the restored time.
        assert_eq!((p[1].offset, p[1].max_ts), (7, 500));
    }

    #[test]
    fn a_held_record_keeps_the_resume_point_until_it_is_decided() {
        let mut l = OffsetLedger::new(&[(Some(0), 0)]);
        l.record(0, 0, 60_000, Some(1_000));
        l.hold(0, 1);
        l.record(0, 2, 60_000, Some(2_000));
        assert_eq!(l.safe_points(u64::MAX)[0].offset, 1);
        // Decided later (a dead letter at t=70s): the resume point moves on once that is acknowledged.
        l.record(0, 1, 70_000, None);
        assert_eq!(l.safe_points(65_000)[0].offset, 1);
        let p = l.safe_points(70_001);
        assert_eq!((p[0].offset, p[0].max_ts), (3, 2_000));
    }

    #[test]
    fn a_partition_with_no_start_and_no_records_is_not_committed() {
        let mut l = OffsetLedger::new(&[(None, 0)]);
        assert!(l.safe_points(10).is_empty());
        l.record(0, 41, 100, None);
        assert_eq!(l.safe_points(10)[0].offset, 41);
        assert_eq!(l.safe_points(101)[0].offset, 42);
    }
}
