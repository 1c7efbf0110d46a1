//! The entity kinds Sentinel aggregates by.

use serde::{Deserialize, Serialize};

use crate::model::{KeyField, MetricEvent};

/// An entity kind that metrics are grouped by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dimension {
    /// `application_id`.
    Application,
    /// `data.model`.
    Model,
    /// `tenant_id`.
    Tenant,
    /// `metadata.user_id`.
    User,
}

impl Dimension {
    /// Every dimension.
    pub const ALL: [Dimension; 4] = [
        Dimension::Application,
        Dimension::Model,
        Dimension::Tenant,
        Dimension::User,
    ];

    /// The event field holding this dimension's key.
    pub fn field(self) -> KeyField {
        match self {
            Dimension::Application => KeyField::Application,
            Dimension::Model => KeyField::Model,
            Dimension::Tenant => KeyField::Tenant,
            Dimension::User => KeyField::User,
        }
    }

    /// The key of `event` in this dimension; `None` when the event does not carry it.
    #[inline]
    pub fn key_of(self, event: &MetricEvent) -> Option<&str> {
        Some(event.keys.get(self.field())).filter(|k| !k.is_empty())
    }

    /// Lower-case name, as used in config and output.
    pub fn as_str(self) -> &'static str {
        match self {
            Dimension::Application => "application",
            Dimension::Model => "model",
            Dimension::Tenant => "tenant",
            Dimension::User => "user",
        }
    }

    /// Parses a config name.
    pub fn parse(s: &str) -> Option<Self> {
        Dimension::ALL.into_iter().find(|d| d.as_str() == s)
    }
}
