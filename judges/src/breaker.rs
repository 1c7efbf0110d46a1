//! A circuit breaker per provider and model: closed, open after `failure_threshold`
//! consecutive transient failures, half-open once `open_for` (or the provider's longer
//! `retry-after`) has passed, closed again after `success_threshold` consecutive successes.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::BreakerConfig;

/// Where time comes from: the real clock, or a test's.
pub trait Clock: Send + Sync {
    /// Now.
    fn now(&self) -> Instant;
}

/// The monotonic clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// A clock a test moves by hand.
#[derive(Debug)]
pub struct ManualClock(Mutex<Instant>);

impl Default for ManualClock {
    fn default() -> Self {
        ManualClock(Mutex::new(Instant::now()))
    }
}

impl ManualClock {
    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The breaker's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls go through.
    Closed,
    /// Calls fall back at once.
    Open,
    /// Calls go through as probes.
    HalfOpen,
}

impl BreakerState {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }
}

#[derive(Debug)]
struct Inner {
    state: BreakerState,
    failures: u32,
    successes: u32,
    open_until: Instant,
    opened: u64,
    half_opened: u64,
    closed: u64,
}

/// One breaker. Cheap to share: the state is behind a mutex held for a few instructions.
pub struct CircuitBreaker {
    cfg: BreakerConfig,
    clock: Arc<dyn Clock>,
    inner: Mutex<Inner>,
}

/// A reading of a breaker: its state and how often it moved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BreakerReading {
    /// State now.
    pub state: BreakerState,
    /// Times it opened.
    pub opened: u64,
    /// Times it went half-open.
    pub half_opened: u64,
    /// Times it closed again.
    pub closed: u64,
}

impl CircuitBreaker {
    /// A closed breaker.
    pub fn new(cfg: BreakerConfig, clock: Arc<dyn Clock>) -> Self {
        let now = clock.now();
        CircuitBreaker {
            cfg,
            clock,
            inner: Mutex::new(Inner {
                state: BreakerState::Closed,
                failures: 0,
                successes: 0,
                open_until: now,
                opened: 0,
                half_opened: 0,
                closed: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a call may go out now. An open breaker whose time is up turns half-open.
    pub fn allow(&self) -> bool {
        if !self.cfg.enabled {
            return true;
        }
        let mut s = self.lock();
        if s.state == BreakerState::Open {
            if self.clock.now() < s.open_until {
                return false;
            }
            s.state = BreakerState::HalfOpen;
            s.successes = 0;
            s.half_opened += 1;
            tracing::info!("judge circuit breaker half-open: probing the provider");
        }
        true
    }

    /// A call succeeded (the provider answered, whatever it said).
    pub fn success(&self) {
        let mut s = self.lock();
        s.failures = 0;
        if s.state == BreakerState::HalfOpen {
            s.successes += 1;
            if s.successes >= self.cfg.success_threshold {
                s.state = BreakerState::Closed;
                s.closed += 1;
                tracing::info!("judge circuit breaker closed");
            }
        }
    }

    /// A call failed transiently; `retry_after` is the provider's own wait, if any.
    pub fn failure(&self, retry_after: Option<Duration>) {
        if !self.cfg.enabled {
            return;
        }
        let mut s = self.lock();
        s.failures += 1;
        let trips = match s.state {
            BreakerState::HalfOpen => true,
            BreakerState::Closed => s.failures >= self.cfg.failure_threshold,
            BreakerState::Open => false,
        };
        if trips {
            let wait = retry_after.map_or(self.cfg.open_for, |r| r.max(self.cfg.open_for));
            s.state = BreakerState::Open;
            s.open_until = self.clock.now() + wait;
            s.opened += 1;
            s.failures = 0;
            tracing::warn!(open_for_ms = wait.as_millis() as u64, "judge circuit breaker opened");
        }
    }

    /// State and transition counts.
    pub fn reading(&self) -> BreakerReading {
        let s = self.lock();
        BreakerReading {
            state: s.state,
            opened: s.opened,
            half_opened: s.half_opened,
            closed: s.closed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_consecutive_failures_waits_then_probes_and_closes() {
        let clock = Arc::new(ManualClock::default());
        let b = CircuitBreaker::new(BreakerConfig::default(), clock.clone());
        for _ in 0..4 {
            b.failure(None);
        }
        b.success();
        for _ in 0..4 {
            b.failure(None);
            assert!(b.allow(), "a success reset the count");
        }
        b.failure(None);
        assert_eq!(b.reading().state, BreakerState::Open);
        assert!(!b.allow());
        clock.advance(Duration::from_secs(59));
        assert!(!b.allow());
        clock.advance(Duration::from_secs(1));
        assert!(b.allow());
        assert_eq!(b.reading().state, BreakerState::HalfOpen);
        // A failed probe reopens at once, for the provider's longer retry-after.
        b.failure(Some(Duration::from_secs(120)));
        clock.advance(Duration::from_secs(60));
        assert!(!b.allow());
        clock.advance(Duration::from_secs(60));
        assert!(b.allow());
        for _ in 0..2 {
            b.success();
            assert_eq!(b.reading().state, BreakerState::HalfOpen);
        }
        b.success();
        let r = b.reading();
        assert_eq!(
            (r.state, r.opened, r.half_opened, r.closed),
            (BreakerState::Closed, 2, 2, 1)
        );
    }
}
