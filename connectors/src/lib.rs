//! Byte transports for Sentinel. Sources yield raw records with their position; sinks take
//! serialized records. Nothing here knows what a telemetry event is.
#![warn(missing_docs)]

pub mod file;
pub mod grpc;
pub mod http;
pub mod kafka;
pub mod stdio;
pub mod wake;
