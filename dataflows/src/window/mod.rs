//! Event-time window state: per-key accumulators, latency sketches and closed-window aggregates.

pub mod accumulator;
pub mod aggregate;
pub mod dimension;
pub mod sketch;

pub use accumulator::WindowAccumulator;
pub use aggregate::{AggregateRecord, WindowAggregate};
pub use dimension::Dimension;
pub use sketch::LatencySketch;

/// End (exclusive) of the tumbling window of width `width_ms` that holds `ts_ms`.
///
/// ```
/// use sentinel_dataflows::window::window_end;
/// assert_eq!(window_end(59_999, 60_000), 60_000);
/// assert_eq!(window_end(60_000, 60_000), 120_000);
/// ```
#[inline]
pub fn window_end(ts_ms: u64, width_ms: u64) -> u64 {
    (ts_ms / width_ms + 1) * width_ms
}
