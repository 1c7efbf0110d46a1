//! Sentinel's dataflows: the telemetry data model, detector logic as plain structs, and the
//! timely/differential operators that run them. Knows nothing about Kafka or files: sources
//! arrive as [`operators::ingest::RecordReader`]s and sinks as [`operators::sink::RecordSink`]s.
#![warn(missing_docs)]

pub mod act;
pub mod detect;
pub mod guard;
pub mod hash;
pub mod judge;
pub mod ml;
pub mod model;
pub mod operators;
pub mod state;
pub mod synth;
pub mod time;
pub mod window;
