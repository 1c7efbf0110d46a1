//! Sentinel's action delivery: Shield over gRPC, alerts to receivers (webhooks, Slack,
//! PagerDuty), the incident manager, and webhooks, at least once and never twice in effect.
//!
//! It reads the job's outbox (the action streams, durable first), keeps one key's deliveries
//! in order, retries with backoff, signs webhooks, dead-letters what it gives up on, and logs
//! every outcome, on its own runtime, off the timely workers.
#![warn(missing_docs)]

pub mod config;
pub mod engine;
pub mod kafka_outbox;
pub mod loopback;
pub mod outbox;
pub mod render;
pub mod template;

pub use config::{DeliveryConfig, HttpTarget, IncidentManager, Receiver, ShieldTarget};
pub use engine::{Delivery, DeliveryStats};
pub use kafka_outbox::{KafkaOutbox, KafkaStatusLog};
pub use outbox::{FileOutbox, FileStatusLog, Outbox, OutboxRecord, StatusLog};
pub use render::{template_context, OutboxStream, Subject};
pub use template::Template;
