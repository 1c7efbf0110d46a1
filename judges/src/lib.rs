//! Sentinel's shadow-agent judges. The dataflow's judge stage talks to a
//! [`JudgeService`](sentinel_dataflows::judge::JudgeService); this crate provides the live one
//! ([`LiveJudges`]: provider calls on their own runtime, off the timely workers) and the
//! journal replay ([`JournalReplay`]).

pub mod breaker;
pub mod config;
pub mod loopback;
pub mod prompts;
pub mod provider;
pub mod replay;
pub mod service;
pub mod verdict;

pub use breaker::{BreakerReading, BreakerState, CircuitBreaker, Clock, ManualClock, SystemClock};
pub use config::{BreakerConfig, JudgeConfig, ProviderKind};
pub use replay::JournalReplay;
pub use service::{LiveJudges, ServiceStats};
