//! Where deliveries go, resolved from the job's config: receivers, webhooks, Shield, the
//! incident manager, and how hard to try.

use std::collections::BTreeMap;
use std::time::Duration;

use sentinel_connectors::http::retry::RetryPolicy;
use sentinel_connectors::http::signing::WebhookSecret;

use crate::template::Template;

/// An HTTP endpoint deliveries POST to.
#[derive(Clone, Debug)]
pub struct HttpTarget {
    /// A name for statuses and logs.
    pub name: String,
    /// The URL.
    pub url: String,
    /// Extra headers (secrets already expanded).
    pub headers: Vec<(String, String)>,
    /// Signs bodies, Standard Webhooks style, when set.
    pub secret: Option<WebhookSecret>,
    /// The body's template; the record as JSON when absent.
    pub template: Option<Template>,
    /// Per-attempt timeout.
    pub timeout: Duration,
    /// Retries.
    pub retry: RetryPolicy,
}

/// Where a named receiver delivers.
#[derive(Clone, Debug)]
pub enum Receiver {
    /// A generic webhook: the alert as JSON (or its template).
    Webhook(HttpTarget),
    /// A Slack incoming webhook: a text message with blocks.
    Slack(HttpTarget),
    /// PagerDuty Events API v2: trigger and resolve, threaded by `dedup_key`.
    PagerDuty {
        /// The Events API endpoint (`https://events.pagerduty.com/v2/enqueue`).
        target: HttpTarget,
        /// The service's integration key.
        routing_key: String,
    },
}

/// The incident manager, with the seed's API.
#[derive(Clone, Debug)]
pub struct IncidentManager {
    /// Base URL; `/api/v1/incidents` is appended.
    pub target: HttpTarget,
}

/// Shield's gRPC endpoint, for actions whose config names none.
#[derive(Clone, Debug)]
pub struct ShieldTarget {
    /// `host:port` or a URL.
    pub endpoint: String,
    /// Per-attempt timeout.
    pub timeout: Duration,
    /// Retries.
    pub retry: RetryPolicy,
}

/// Everything the delivery needs.
#[derive(Clone, Debug)]
pub struct DeliveryConfig {
    /// Named receivers of alerts.
    pub receivers: BTreeMap<String, Receiver>,
    /// The job's webhooks, by the index the planner gave them.
    pub webhooks: Vec<HttpTarget>,
    /// Shield's default endpoint.
    pub shield: Option<ShieldTarget>,
    /// The incident manager.
    pub incident_manager: Option<IncidentManager>,
    /// Deliveries in flight at once (lanes); one key's deliveries keep their order.
    pub concurrency: usize,
    /// Deliveries queued per lane before the outbox reader waits.
    pub queue: usize,
    /// Retries for Shield calls without their own.
    pub retry: RetryPolicy,
    /// Timeout of calls without their own.
    pub timeout: Duration,
    /// Runtime threads.
    pub threads: usize,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            receivers: BTreeMap::new(),
            webhooks: Vec::new(),
            shield: None,
            incident_manager: None,
            concurrency: 32,
            queue: 64,
            retry: RetryPolicy::default(),
            timeout: Duration::from_secs(10),
            threads: 2,
        }
    }
}

impl DeliveryConfig {
    /// Whether there is anywhere to deliver to.
    pub fn delivers(&self) -> bool {
        !self.receivers.is_empty()
            || !self.webhooks.is_empty()
            || self.shield.is_some()
            || self.incident_manager.is_some()
    }
}
