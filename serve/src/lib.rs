//! Sentinel's serving layer: a store fed from the job's output streams, the anomaly lifecycle,
//! and the REST API over them. It runs on its own threads and runtime, never a worker's.

pub mod api;
pub mod auth;
pub mod bench;
pub mod exporter;
pub mod feed;
pub mod lifecycle;
pub mod live;
pub mod metrics;
pub mod store;
