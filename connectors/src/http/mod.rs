//! HTTP pieces shared by the deliveries (webhooks, incident managers) and the test receivers.

pub mod client;
pub mod retry;
pub mod signing;
