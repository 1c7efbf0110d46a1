//! When to try a delivery again: exponential backoff with jitter (or linear, or fixed), a
//! receiver's `Retry-After` honoured, and no retry of a request the receiver refused for good
//! (a 4xx other than 408 and 429). After the last attempt the delivery gives up, and the
//! caller dead-letters it with the receiver's answer.

use std::time::Duration;

use backon::{BackoffBuilder, ConstantBuilder, ExponentialBuilder};

/// How one attempt ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Attempt {
    /// A 2xx.
    Delivered,
    /// Any other HTTP status, with the `Retry-After` it carried.
    Status {
        /// The status code.
        code: u16,
        /// `Retry-After`, when given.
        retry_after: Option<Duration>,
    },
    /// No answer within the per-attempt timeout.
    TimedOut,
    /// No connection (refused, reset, DNS).
    Unreachable,
}

/// What to do after an attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Next {
    /// Delivered: nothing more.
    Done,
    /// Try again after this long.
    RetryAfter(Duration),
    /// Stop; the reason goes to the dead letter.
    GiveUp(String),
}

/// How the wait between attempts grows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Growth {
    /// Doubling from `base`, with jitter.
    Exponential,
    /// `base`, `2 × base`, `3 × base`...
    Linear,
    /// Always `base`, with jitter.
    Fixed,
}

/// A delivery's retry settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// How waits grow.
    pub growth: Growth,
    /// The first wait.
    pub base: Duration,
    /// The longest wait the backoff gives.
    pub max: Duration,
    /// The longest `Retry-After` honoured; a receiver asking for more is given up on.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            growth: Growth::Exponential,
            base: Duration::from_millis(500),
            max: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(300),
        }
    }
}

/// The retry state of one delivery.
///
/// ```
/// use std::time::Duration;
/// use sentinel_connectors::http::retry::{Attempt, Next, RetryPolicy, Retries};
/// let mut r = Retries::new(RetryPolicy::default());
/// assert!(matches!(r.after(&Attempt::Status { code: 503, retry_after: None }), Next::RetryAfter(_)));
/// assert!(matches!(r.after(&Attempt::Status { code: 400, retry_after: None }), Next::GiveUp(_)));
/// ```
pub struct Retries {
    policy: RetryPolicy,
    delays: Box<dyn Iterator<Item = Duration> + Send>,
    attempts: u32,
}

impl std::fmt::Debug for Retries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Retries")
            .field("policy", &self.policy)
            .field("attempts", &self.attempts)
            .finish()
    }
}

impl Retries {
    /// Before the first attempt.
    pub fn new(policy: RetryPolicy) -> Self {
        let (base, max) = (policy.base, policy.max.max(policy.base));
        let delays: Box<dyn Iterator<Item = Duration> + Send> = match policy.growth {
            Growth::Exponential => Box::new(
                ExponentialBuilder::new()
                    .with_min_delay(base)
                    .with_max_delay(max)
                    .with_jitter()
                    .without_max_times()
                    .build(),
            ),
            Growth::Fixed => Box::new(
                ConstantBuilder::new()
                    .with_delay(base)
                    .with_jitter()
                    .without_max_times()
                    .build(),
            ),
            Growth::Linear => Box::new((1u32..).map(move |n| base.saturating_mul(n).min(max))),
        };
        Retries {
            policy,
            delays,
            attempts: 0,
        }
    }

    /// Attempts made so far.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Records one attempt and says what comes next.
    pub fn after(&mut self, attempt: &Attempt) -> Next {
        self.attempts += 1;
        let retry_after = match attempt {
            Attempt::Delivered => return Next::Done,
            Attempt::Status { code, .. } if (200..300).contains(code) => return Next::Done,
            Attempt::Status { code, .. } if !retryable(*code) => {
                return Next::GiveUp(format!("HTTP {code}: refused, not retried"))
            }
            Attempt::Status { retry_after, .. } => *retry_after,
            Attempt::TimedOut | Attempt::Unreachable => None,
        };
        if self.attempts >= self.policy.max_attempts.max(1) {
            return Next::GiveUp(format!("{} attempts, the last {}", self.attempts, describe(attempt)));
        }
        if let Some(wait) = retry_after.filter(|w| *w > self.policy.max_retry_after) {
            return Next::GiveUp(format!(
                "{}, asking to wait {} s, past the {} s honoured",
                describe(attempt),
                wait.as_secs(),
                self.policy.max_retry_after.as_secs()
            ));
        }
        let backoff = self.delays.next().unwrap_or(self.policy.max);
        Next::RetryAfter(retry_after.map_or(backoff, |w| w.max(backoff)))
    }
}

/// 408, 429 and 5xx are worth another try; other statuses are an answer.
fn retryable(code: u16) -> bool {
    matches!(code, 408 | 429) || (500..600).contains(&code)
}

fn describe(attempt: &Attempt) -> String {
    match attempt {
        Attempt::Delivered => "delivered".into(),
        Attempt::Status { code, .. } => format!("HTTP {code}"),
        Attempt::TimedOut => "timed out".into(),
        Attempt::Unreachable => "unreachable".into(),
    }
}

/// Reads a `Retry-After` header: seconds (HTTP dates are not honoured, and read as absent).
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16) -> Attempt {
        Attempt::Status {
            code,
            retry_after: None,
        }
    }

    #[test]
    fn server_errors_timeouts_and_throttling_retry_until_the_last_attempt() {
        let mut r = Retries::new(RetryPolicy {
            max_attempts: 4,
            ..RetryPolicy::default()
        });
        for attempt in [status(503), Attempt::TimedOut, status(429)] {
            assert!(matches!(r.after(&attempt), Next::RetryAfter(_)), "{attempt:?}");
        }
        let Next::GiveUp(why) = r.after(&Attempt::Unreachable) else {
            panic!()
        };
        assert_eq!(why, "4 attempts, the last unreachable");
        assert_eq!(r.attempts(), 4);
    }

    #[test]
    fn a_refusal_is_final_and_success_is_done() {
        for code in [400, 401, 403, 404, 410, 422] {
            let mut r = Retries::new(RetryPolicy::default());
            assert_eq!(
                r.after(&status(code)),
                Next::GiveUp(format!("HTTP {code}: refused, not retried"))
            );
        }
        let mut r = Retries::new(RetryPolicy::default());
        // 408 is worth another try: after the first backoff, jitter included (base to 2 × base).
        let Next::RetryAfter(wait) = r.after(&status(408)) else {
            panic!()
        };
        assert!(
            wait >= Duration::from_millis(500) && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        assert_eq!(r.after(&status(204)), Next::Done);
        assert_eq!(
            Retries::new(RetryPolicy::default()).after(&Attempt::Delivered),
            Next::Done
        );
    }

    #[test]
    fn waits_grow_with_jitter_within_bounds_and_retry_after_is_honoured() {
        let policy = RetryPolicy {
            max_attempts: 10,
            base: Duration::from_millis(100),
            max: Duration::from_secs(1),
            ..RetryPolicy::default()
        };
        let mut r = Retries::new(policy);
        let waits: Vec<Duration> = (0..6)
            .map(|_| match r.after(&status(502)) {
                Next::RetryAfter(w) => w,
                other => panic!("{other:?}"),
            })
            .collect();
        assert!(
            waits[0] >= Duration::from_millis(100) && waits[0] <= Duration::from_millis(200),
            "{waits:?}"
        );
        assert!(
            waits.iter().all(|w| *w <= Duration::from_secs(2)),
            "capped, jitter included: {waits:?}"
        );
        assert!(waits[5] >= Duration::from_secs(1), "grown to the cap: {waits:?}");
        // A receiver's Retry-After wins over a shorter backoff...
        let asked = Attempt::Status {
            code: 429,
            retry_after: Some(Duration::from_secs(7)),
        };
        assert_eq!(
            Retries::new(policy).after(&asked),
            Next::RetryAfter(Duration::from_secs(7))
        );
        // ...up to the longest honoured.
        let too_long = Attempt::Status {
            code: 503,
            retry_after: Some(Duration::from_secs(3600)),
        };
        assert!(matches!(Retries::new(policy).after(&too_long), Next::GiveUp(w) if w.contains("3600 s")));
        // Linear and fixed growth.
        let mut linear = Retries::new(RetryPolicy {
            growth: Growth::Linear,
            ..policy
        });
        let steps: Vec<Next> = (0..3).map(|_| linear.after(&Attempt::TimedOut)).collect();
        let ms = |n| Next::RetryAfter(Duration::from_millis(n));
        assert_eq!(steps, [ms(100), ms(200), ms(300)]);
        let mut fixed = Retries::new(RetryPolicy {
            growth: Growth::Fixed,
            ..policy
        });
        for _ in 0..3 {
            let Next::RetryAfter(w) = fixed.after(&Attempt::TimedOut) else {
                panic!()
            };
            assert!(
                w >= Duration::from_millis(100) && w <= Duration::from_millis(200),
                "{w:?}"
            );
        }
    }

    #[test]
    fn retry_after_in_seconds_is_read_and_dates_are_not() {
        assert_eq!(parse_retry_after(" 12 "), Some(Duration::from_secs(12)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }
}
