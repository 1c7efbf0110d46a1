//! HTTP pieces: the deliveries' client (webhooks, incident managers), the ingest listener, and
//! the test receivers.

pub mod client;
pub mod ingest;
pub mod retry;
pub mod server;
pub mod signing;
