//! `ingest:`: the HTTP listener of `run --listen`, where applications post telemetry events.

use sentinel_serve::auth::{Keys, Scope};
use serde::Deserialize;

/// The `ingest:` section.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestSection {
    /// Bearer keys senders present (`${ENV}` is expanded at load). None: the listener accepts
    /// only a loopback address.
    #[serde(default)]
    pub api_keys: Vec<IngestKeyConfig>,
    /// Largest request body, and largest once gunzipped, in bytes.
    #[serde(default = "max_body_bytes")]
    pub max_body_bytes: usize,
    /// Most events in one batch.
    #[serde(default = "max_batch_events")]
    pub max_batch_events: usize,
    /// Events waiting for the job at most, per worker; a request that does not fit is answered
    /// 429 with `Retry-After`.
    #[serde(default = "queue_events")]
    pub queue_events: usize,
}

impl Default for IngestSection {
    fn default() -> Self {
        IngestSection {
            api_keys: Vec::new(),
            max_body_bytes: max_body_bytes(),
            max_batch_events: max_batch_events(),
            queue_events: queue_events(),
        }
    }
}

fn max_body_bytes() -> usize {
    10 << 20
}

fn max_batch_events() -> usize {
    10_000
}

fn queue_events() -> usize {
    65_536
}

/// One sender's key.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestKeyConfig {
    /// The secret.
    pub key: String,
}

impl std::fmt::Debug for IngestKeyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IngestKeyConfig").finish_non_exhaustive()
    }
}

impl IngestSection {
    /// The keys and limits, checked.
    pub fn keys(&self) -> Result<Keys, (String, String)> {
        let keys = super::serve::checked_keys("ingest", self.api_keys.iter().map(|k| (k.key.as_str(), Scope::Read)))?;
        for (name, value) in [
            ("max_body_bytes", self.max_body_bytes),
            ("max_batch_events", self.max_batch_events),
            ("queue_events", self.queue_events),
        ] {
            if value == 0 {
                return Err((format!("ingest.{name}"), "must be at least 1".into()));
            }
        }
        if self.queue_events < self.max_batch_events {
            return Err((
                "ingest.queue_events".into(),
                format!(
                    "must hold at least one full batch (ingest.max_batch_events, {})",
                    self.max_batch_events
                ),
            ));
        }
        Ok(keys)
    }
}
