//! HTTP pieces shared by the deliveries (webhooks, incident managers) and the test receivers.

pub mod retry;
pub mod signing;
