//! A partition's event-time clock that no single record can move.
//!
//! Event time is untrusted input: one record stamped 2090 must not carry a partition's
//! watermark 66 years ahead and make every honest record after it late. So a record may move
//! its partition's clock on its own by at most `max_step_ms` (by default the allowed lateness:
//! then no honest record at or after the old newest time can become late because of it). A
//! record further ahead is *held*, and the records after it vote: a later record that is not
//! behind it (by more than the lateness) says the stream really moved (a replay with a gap, a
//! partition that was quiet, a producer whose clock was fixed); one that is behind it says the
//! old clock goes on. With `confirm_records` votes for it and twice as many for as against, the
//! record is released and the clock follows; outvoted, it goes to the dead letters with its own
//! reason. At most `4 × confirm_records` records wait at once: the oldest is then rejected
//! unless it already has a clear vote. Live sources also reject records stamped more than `max_future_ms` ahead of the
//! wall clock.
//!
//! A real jump therefore costs at most `confirm_records` records of delay, or less when the
//! source has nothing more to read ([`EventClock::settle`]).

/// How far, and how, a partition's clock may move.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClockPolicy {
    /// How far the watermark trails the newest accepted event time.
    pub lateness_ms: u64,
    /// Live sources: a record stamped more than this ahead of the wall clock is rejected at
    /// once. `None` for replays, whose event times have nothing to do with today.
    pub max_future_ms: Option<u64>,
    /// How far one record may move the clock on its own; a record further ahead waits for the
    /// records after it to confirm the jump. `None` turns the check off.
    pub max_step_ms: Option<u64>,
    /// Votes that confirm a held record.
    pub confirm_records: usize,
}

impl Default for ClockPolicy {
    fn default() -> Self {
        ClockPolicy {
            lateness_ms: 5_000,
            max_future_ms: None,
            max_step_ms: Some(5_000),
            confirm_records: 8,
        }
    }
}

/// What became of a record offered to the clock. Every offered record comes back exactly once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Admission<T> {
    /// On time: process it.
    Accepted {
        /// The record.
        item: T,
        /// Its event time.
        timestamp_ms: u64,
    },
    /// Behind the partition's watermark.
    Late {
        /// The record.
        item: T,
        /// Its event time.
        timestamp_ms: u64,
        /// The watermark it missed.
        watermark_ms: u64,
    },
    /// Stamped further ahead of the wall clock than `max_future_ms` (live sources).
    InFuture {
        /// The record.
        item: T,
        /// Its event time.
        timestamp_ms: u64,
        /// The wall clock when it was read.
        wall_ms: u64,
    },
    /// Further ahead of the partition's clock than `max_step_ms`, and the records after it
    /// did not follow.
    Jump {
        /// The record.
        item: T,
        /// Its event time.
        timestamp_ms: u64,
        /// The partition's newest accepted event time (`None` when no clock was established).
        clock_ms: Option<u64>,
    },
}

/// A record waiting for the records after it to confirm its jump.
#[derive(Debug)]
struct Held<T> {
    ts: u64,
    /// Later records not behind it, itself included.
    votes_for: usize,
    /// Later records behind it.
    votes_against: usize,
    item: T,
}

/// One partition's event-time clock (see the module docs).
///
/// ```
/// use sentinel_dataflows::time::{Admission, ClockPolicy, EventClock};
/// let mut clock = EventClock::new(ClockPolicy::default(), None);
/// let mut out = Vec::new();
/// let t0 = 1_717_200_000_000; // 2024-06-01
/// let mut stamps = vec![t0, 4_000_000_000_000]; // the second one is stamped 2096
/// stamps.extend((1..20).map(|i| t0 + i * 1_000));
/// for (i, ts) in stamps.into_iter().enumerate() {
///     clock.offer(ts, 0, 0, i, &mut |a| out.push(a));
/// }
/// clock.settle(0, 0, &mut |a| out.push(a));
/// // The record stamped 2096 is rejected; the clock never left 2024.
/// assert!(out.iter().any(|a| matches!(a, Admission::Jump { item: 1, .. })));
/// assert_eq!(clock.newest(), Some(t0 + 19_000));
/// ```
#[derive(Debug)]
pub struct EventClock<T> {
    policy: ClockPolicy,
    /// Newest accepted event time; `None` until the partition's clock is established.
    newest: Option<u64>,
    /// Held records, in arrival order.
    held: std::collections::VecDeque<Held<T>>,
    /// The largest jump the records confirmed so far: at the end of a replay, a lone record
    /// that jumps no further than twice this is how the partition moves (a sparse trace).
    largest_confirmed_jump: u64,
}

impl<T> EventClock<T> {
    /// A clock, established at `restored` (a checkpoint's newest event time) when given.
    pub fn new(policy: ClockPolicy, restored: Option<u64>) -> Self {
        EventClock {
            policy,
            newest: restored,
            held: std::collections::VecDeque::new(),
            largest_confirmed_jump: 0,
        }
    }

    /// Newest accepted event time.
    pub fn newest(&self) -> Option<u64> {
        self.newest
    }

    /// Newest accepted event time less the lateness.
    pub fn watermark(&self) -> Option<u64> {
        self.newest.map(|n| n.saturating_sub(self.policy.lateness_ms))
    }

    /// Records held while their jump is being decided.
    pub fn pending(&self) -> usize {
        self.held.len()
    }

    /// Whether a record stamped `timestamp_ms` would be decided at once, without being held:
    /// the caller then need not keep a copy of it.
    pub fn admits_directly(&self, timestamp_ms: u64, wall_ms: u64) -> bool {
        self.held.is_empty()
            && self.within_step(timestamp_ms)
            && self
                .policy
                .max_future_ms
                .is_none_or(|ahead| timestamp_ms <= wall_ms.saturating_add(ahead))
    }

    /// Offers one record stamped `timestamp_ms`, read at wall time `wall_ms`. `floor` is a
    /// watermark the record must not be behind whatever this partition's own says (the
    /// source's, which other partitions may have moved). Verdicts, for this record and for
    /// held ones it decided, go to `out`.
    pub fn offer(&mut self, timestamp_ms: u64, wall_ms: u64, floor: u64, item: T, out: &mut impl FnMut(Admission<T>)) {
        if let Some(ahead) = self.policy.max_future_ms {
            if timestamp_ms > wall_ms.saturating_add(ahead) {
                return out(Admission::InFuture {
                    item,
                    timestamp_ms,
                    wall_ms,
                });
            }
        }
        if self.held.is_empty() && self.within_step(timestamp_ms) {
            return self.admit(timestamp_ms, item, floor, out);
        }
        let lateness = self.policy.lateness_ms;
        for h in &mut self.held {
            if timestamp_ms.saturating_add(lateness) >= h.ts {
                h.votes_for += 1;
            } else {
                h.votes_against += 1;
            }
        }
        if self.within_step(timestamp_ms) {
            self.admit(timestamp_ms, item, floor, out);
        } else {
            self.held.push_back(Held {
                ts: timestamp_ms,
                votes_for: 1,
                votes_against: 0,
                item,
            });
        }
        self.decide(Settle::No, floor, out);
    }

    /// The source has nothing more to read for now. At the end of a replay (`wall_ms` = 0)
    /// every held record is decided by majority, and one that no later record corroborates
    /// is rejected, unless it jumps no further than twice the largest jump confirmed before
    /// on the partition (the last record of a sparse trace). On a live source (`wall_ms` = now), a quiet partition that is caught up
    /// with real time releases a held record the majority does not reject once the wall clock
    /// is within the lateness of it (it can then make no honest record late) and it is no
    /// older than `max_future_ms`; a backlog being read keeps waiting for votes.
    pub fn settle(&mut self, wall_ms: u64, floor: u64, out: &mut impl FnMut(Admission<T>)) {
        if !self.held.is_empty() {
            self.decide(Settle::At(wall_ms), floor, out);
        }
    }

    fn within_step(&self, ts: u64) -> bool {
        match (self.newest, self.policy.max_step_ms) {
            (Some(n), Some(step)) => ts <= n.saturating_add(step),
            (_, None) => true,
            // No clock yet: the first record is held and confirmed like a jump.
            (None, Some(_)) => false,
        }
    }

    fn admit(&mut self, ts: u64, item: T, floor: u64, out: &mut impl FnMut(Admission<T>)) {
        let watermark = floor.max(self.watermark().unwrap_or(0));
        if ts < watermark {
            out(Admission::Late {
                item,
                timestamp_ms: ts,
                watermark_ms: watermark,
            });
        } else {
            self.newest = Some(self.newest.map_or(ts, |n| n.max(ts)));
            out(Admission::Accepted { item, timestamp_ms: ts });
        }
    }

    /// Decides held records, oldest first, until the oldest one cannot be decided yet.
    fn decide(&mut self, settle: Settle, floor: u64, out: &mut impl FnMut(Admission<T>)) {
        let needed = self.policy.confirm_records.max(1);
        loop {
            // Records the clock has caught up with are ordinary now, in arrival order.
            let mut i = 0;
            while i < self.held.len() {
                if self.within_step(self.held[i].ts) {
                    let h = self.held.remove(i).expect("index in range");
                    self.admit(h.ts, h.item, floor, out);
                    i = 0;
                } else {
                    i += 1;
                }
            }
            let Some(h) = self.held.front() else { return };
            let (yes, no) = (h.votes_for, h.votes_against);
            let majority = yes >= 2 * no;
            let outvoted = no >= needed && no > 2 * yes;
            let full = self.held.len() >= 4 * needed;
            let confirm = match settle {
                _ if yes >= needed && majority => true,
                // A full queue decides its oldest record now, and only a clear vote moves
                // the clock: a bare majority is too easy to reach by chance when many records
                // carry random times.
                _ if full => false,
                Settle::No => false,
                // Nothing after it corroborates a lone record, unless it is all there is or
                // the partition has moved this way before.
                Settle::At(0) => {
                    let usual = self
                        .newest
                        .is_none_or(|n| h.ts.saturating_sub(n) <= self.largest_confirmed_jump.saturating_mul(2));
                    majority && (yes >= 2.min(needed) || usual)
                }
                Settle::At(wall) => {
                    let recent = self.policy.max_future_ms.unwrap_or(self.policy.lateness_ms);
                    majority
                        && h.ts <= wall.saturating_add(self.policy.lateness_ms)
                        && h.ts.saturating_add(recent) >= wall
                }
            };
            let reject = !confirm && (outvoted || full || settle == Settle::At(0));
            if confirm {
                let h = self.held.pop_front().expect("front exists");
                if let Some(n) = self.newest {
                    self.largest_confirmed_jump = self.largest_confirmed_jump.max(h.ts.saturating_sub(n));
                }
                self.newest = Some(self.newest.map_or(h.ts, |n| n.max(h.ts)));
                self.admit(h.ts, h.item, floor, out);
            } else if reject {
                let h = self.held.pop_front().expect("front exists");
                out(Admission::Jump {
                    item: h.item,
                    timestamp_ms: h.ts,
                    clock_ms: self.newest,
                });
            } else {
                return;
            }
        }
    }
}

/// Whether the source has nothing more to read, and the wall clock then (0 for replays).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Settle {
    No,
    At(u64),
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_717_200_000_000; // 2024-06-01
    const Y2090: u64 = 3_786_912_000_000;
    const HOUR: u64 = 3_600_000;
    const DAY: u64 = 86_400_000;

    #[derive(Default)]
    struct Tally {
        accepted: Vec<usize>,
        late: Vec<usize>,
        future: Vec<usize>,
        jump: Vec<usize>,
    }

    impl Tally {
        fn take(&mut self, a: Admission<usize>) {
            match a {
                Admission::Accepted { item, .. } => self.accepted.push(item),
                Admission::Late { item, .. } => self.late.push(item),
                Admission::InFuture { item, .. } => self.future.push(item),
                Admission::Jump { item, .. } => self.jump.push(item),
            }
        }
        fn total(&self) -> usize {
            self.accepted.len() + self.late.len() + self.future.len() + self.jump.len()
        }
    }

    /// Offers `stamps` one per record (item = index) read at wall time `wall`, then settles
    /// as at the end of a replay.
    fn run(policy: ClockPolicy, restored: Option<u64>, wall: u64, stamps: &[u64]) -> (Tally, EventClock<usize>) {
        let mut clock = EventClock::new(policy, restored);
        let mut tally = Tally::default();
        for (i, &ts) in stamps.iter().enumerate() {
            clock.offer(ts, wall, 0, i, &mut |a| tally.take(a));
        }
        clock.settle(0, 0, &mut |a| tally.take(a));
        assert_eq!(tally.total(), stamps.len(), "every record comes back once");
        assert_eq!(clock.pending(), 0);
        (tally, clock)
    }

    fn steady(n: usize, from: u64, step: u64) -> Vec<u64> {
        (0..n as u64).map(|i| from + i * step).collect()
    }

    #[test]
    fn one_record_far_ahead_is_rejected_and_the_rest_flow() {
        for at in [0, 1, 500, 999, 1000] {
            let mut stamps = steady(1000, T0, 1000);
            stamps.insert(at, Y2090);
            let (t, clock) = run(ClockPolicy::default(), None, 0, &stamps);
            assert_eq!(t.jump, vec![at], "poison at {at}");
            assert_eq!(t.accepted.len(), 1000, "poison at {at}");
            assert!(t.late.is_empty());
            assert_eq!(clock.newest(), Some(T0 + 999_000));
        }
    }

    #[test]
    fn two_days_ahead_in_a_replay_is_rejected() {
        let mut stamps = steady(300, T0, 1000);
        stamps.insert(150, T0 + 150_000 + 2 * DAY);
        let (t, _) = run(ClockPolicy::default(), None, 0, &stamps);
        assert_eq!(t.jump, vec![150]);
        assert_eq!(t.accepted.len(), 300);
    }

    #[test]
    fn a_lasting_jump_is_followed_after_a_few_records_and_nothing_is_lost() {
        let mut stamps = steady(200, T0, 1000);
        stamps.extend(steady(200, T0 + 200_000 + HOUR, 1000));
        let (t, clock) = run(ClockPolicy::default(), None, 0, &stamps);
        assert_eq!(t.accepted.len(), 400);
        assert!(t.jump.is_empty() && t.late.is_empty());
        // Released in arrival order.
        assert!(t.accepted.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(clock.newest(), Some(T0 + 399_000 + HOUR));
    }

    #[test]
    fn the_jump_is_confirmed_within_confirm_records() {
        let policy = ClockPolicy::default();
        let mut clock = EventClock::new(policy, Some(T0));
        let mut tally = Tally::default();
        for i in 0..policy.confirm_records {
            clock.offer(T0 + HOUR + i as u64, 0, 0, i, &mut |a| tally.take(a));
        }
        assert_eq!(tally.accepted.len(), policy.confirm_records);
        assert_eq!(clock.pending(), 0);
    }

    #[test]
    fn a_poisoned_first_record_does_not_set_the_clock() {
        let mut stamps = vec![Y2090];
        stamps.extend(steady(100, T0, 1000));
        let (t, clock) = run(ClockPolicy::default(), None, 0, &stamps);
        assert_eq!(t.jump, vec![0]);
        assert_eq!(t.accepted.len(), 100);
        assert_eq!(clock.newest(), Some(T0 + 99_000));
    }

    #[test]
    fn short_and_sparse_replays_lose_nothing() {
        let (t, clock) = run(ClockPolicy::default(), None, 0, &[T0]);
        assert_eq!((t.accepted, clock.newest()), (vec![0], Some(T0)));
        let (t, _) = run(ClockPolicy::default(), None, 0, &[T0, T0 + 5]);
        assert_eq!(t.accepted, vec![0, 1]);
        // One record an hour: every record is a jump, each confirmed by the ones after it.
        let (t, _) = run(ClockPolicy::default(), None, 0, &steady(50, T0, HOUR));
        assert_eq!(t.accepted, (0..50).collect::<Vec<_>>());
    }

    #[test]
    fn interleaved_poison_never_takes_the_clock() {
        // Every third record is stamped in 2090: it never gets a majority.
        let stamps: Vec<u64> = (0..600u64)
            .map(|i| if i % 3 == 0 { Y2090 + i } else { T0 + i * 100 })
            .collect();
        let (t, clock) = run(ClockPolicy::default(), None, 0, &stamps);
        assert_eq!(t.jump.len(), 200);
        assert_eq!(t.accepted.len(), 400);
        assert!(clock.newest().unwrap() < T0 + DAY);
    }

    #[test]
    fn random_stamps_do_not_blind_the_honest_ones() {
        // Half the records carry a random time anywhere in 2000..2100, as a fuzzer makes them.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut stamps = Vec::new();
        for i in 0..300_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if i % 2 == 0 {
                stamps.push(T0 + i * 50);
            } else {
                stamps.push(crate::time::MIN_EVENT_MS + x % (crate::time::MAX_EVENT_MS - crate::time::MIN_EVENT_MS));
            }
        }
        let (t, _) = run(ClockPolicy::default(), None, 0, &stamps);
        let honest_lost = t.jump.iter().chain(&t.late).filter(|i| *i % 2 == 0).count();
        assert_eq!(honest_lost, 0);
        assert_eq!(t.accepted.iter().filter(|i| *i % 2 == 0).count(), 150_000);
    }

    #[test]
    fn a_step_by_step_walk_needs_a_majority() {
        // One attacker record every other record, each a step ahead of the last: the clock
        // must not walk away from the honest records.
        let policy = ClockPolicy::default();
        let mut stamps = Vec::new();
        for i in 0..2_000u64 {
            stamps.push(T0 + i * 10);
            if i % 4 == 0 {
                stamps.push(T0 + 60_000 + i * 5_000);
            }
        }
        let (t, _) = run(policy, None, 0, &stamps);
        assert!(t.late.is_empty(), "{} honest records late", t.late.len());
        assert_eq!(t.accepted.iter().filter(|&&i| stamps[i] < T0 + 60_000).count(), 2_000);
    }

    #[test]
    fn live_sources_reject_records_from_the_future() {
        let policy = ClockPolicy {
            max_future_ms: Some(300_000),
            ..ClockPolicy::default()
        };
        let wall = T0 + 1_000;
        let (t, _) = run(policy, None, wall, &[T0, Y2090, T0 + 400_000, T0 + 2_000]);
        assert_eq!(t.future, vec![1, 2]);
        assert_eq!(t.accepted, vec![0, 3]);
    }

    #[test]
    fn live_settling_releases_a_record_once_the_wall_clock_reaches_it() {
        let policy = ClockPolicy {
            max_future_ms: Some(60_000),
            ..ClockPolicy::default()
        };
        let mut clock = EventClock::new(policy, Some(T0));
        let mut tally = Tally::default();
        // A backlog two days behind real time: a jump in it waits for votes.
        clock.offer(T0 + 60_000, T0 + 2 * DAY, 0, 7, &mut |a| tally.take(a));
        clock.settle(T0 + 2 * DAY, 0, &mut |a| tally.take(a));
        assert_eq!(clock.pending(), 1);
        let mut clock = EventClock::new(policy, Some(T0));
        // A quiet live partition: the next record comes a minute later.
        clock.offer(T0 + 60_000, T0 + 60_000, 0, 0, &mut |a| tally.take(a));
        assert_eq!(clock.pending(), 1);
        clock.settle(T0 + 50_000, 0, &mut |a| tally.take(a));
        assert_eq!(clock.pending(), 1, "still ahead of the wall clock");
        clock.settle(T0 + 60_000, 0, &mut |a| tally.take(a));
        assert_eq!((tally.accepted, clock.newest()), (vec![0], Some(T0 + 60_000)));
    }

    #[test]
    fn lateness_is_judged_as_before() {
        let (t, _) = run(
            ClockPolicy::default(),
            Some(T0),
            0,
            &[T0 - 4_000, T0 - 6_000, T0 + 10, T0 - 100],
        );
        assert_eq!(t.accepted, vec![0, 2, 3]);
        assert_eq!(t.late, vec![1]);
    }

    #[test]
    fn the_check_can_be_turned_off() {
        let policy = ClockPolicy {
            max_step_ms: None,
            ..ClockPolicy::default()
        };
        let (t, _) = run(policy, None, 0, &[T0, Y2090, T0 + 1]);
        assert_eq!(t.accepted, vec![0, 1]);
        assert_eq!(t.late, vec![2]);
    }
}
