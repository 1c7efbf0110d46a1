//! `serve:`: the serving layer's API keys, store and retention.

use std::path::PathBuf;

use sentinel_serve::auth::{ApiKey, Keys, Scope};
use sentinel_serve::store::KeptDecisions;
use serde::Deserialize;

use super::DurationValue;

/// Keys shorter than this are refused: a guessable key is no key.
const MIN_KEY_CHARS: usize = 16;

/// The `serve:` section.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeConfig {
    /// Bearer keys (`${ENV}` is expanded at load). None: the API listens on loopback only.
    #[serde(default)]
    pub api_keys: Vec<ApiKeyConfig>,
    /// The store's SQLite file (`--store` overrides it).
    #[serde(default)]
    pub store: Option<PathBuf>,
    /// Anomalies older than this, against the newest stored, are dropped.
    #[serde(default)]
    pub retention: Option<DurationValue>,
    /// At most this many anomalies are kept, and as many of each other kind of record.
    #[serde(default)]
    pub max_anomalies: Option<u64>,
    /// Which decisions the store keeps: `flagged` (warn tier and above), `all` or `none`.
    #[serde(default)]
    pub decisions: KeptDecisions,
}

/// One API key.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyConfig {
    /// The secret.
    pub key: String,
    /// `read` (queries) or `admin` (also acknowledge and resolve).
    #[serde(default = "read_scope")]
    pub scope: ScopeName,
}

impl std::fmt::Debug for ApiKeyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeyConfig")
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

/// A key's scope, as written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScopeName {
    /// Queries only.
    Read,
    /// Queries and lifecycle changes.
    Admin,
}

fn read_scope() -> ScopeName {
    ScopeName::Read
}

/// Checks the keys of section `section`: each long enough and none twice.
pub(super) fn checked_keys<'a>(
    section: &str,
    keys: impl Iterator<Item = (&'a str, Scope)>,
) -> Result<Keys, (String, String)> {
    let mut checked: Vec<ApiKey> = Vec::new();
    for (i, (key, scope)) in keys.enumerate() {
        let key = key.trim();
        if key.chars().count() < MIN_KEY_CHARS {
            return Err((
                format!("{section}.api_keys[{i}].key"),
                format!("must be at least {MIN_KEY_CHARS} characters (use a random secret, e.g. from ${{ENV}})"),
            ));
        }
        if checked.iter().any(|other| other.key == key) {
            return Err((
                format!("{section}.api_keys[{i}].key"),
                "the same key is listed twice".into(),
            ));
        }
        checked.push(ApiKey {
            key: key.to_owned(),
            scope,
        });
    }
    Ok(Keys::new(checked))
}

impl ServeConfig {
    /// The keys, checked: each long enough and none twice.
    pub fn keys(&self) -> Result<Keys, (String, String)> {
        let keys = checked_keys(
            "serve",
            self.api_keys.iter().map(|k| {
                let scope = match k.scope {
                    ScopeName::Read => Scope::Read,
                    ScopeName::Admin => Scope::Admin,
                };
                (k.key.as_str(), scope)
            }),
        )?;
        if self.retention.is_some_and(|r| r.0 == 0) {
            return Err(("serve.retention".into(), "must be positive".into()));
        }
        if self.max_anomalies == Some(0) {
            return Err(("serve.max_anomalies".into(), "must be at least 1".into()));
        }
        Ok(keys)
    }
}
