//! Shield's `ShieldAction` service (`proto/shield.proto`): the client Sentinel's deliveries call,
//! and the server trait a Shield (or a test) implements.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::http::retry::Attempt;

/// The generated messages, client and server.
#[allow(missing_docs, clippy::all)]
pub mod proto {
    tonic::include_proto!("shield.v1");
}

pub use proto::shield_action_client::ShieldActionClient;
pub use proto::shield_action_server::{ShieldAction, ShieldActionServer};
pub use proto::{ActionRequest, ActionResponse, ActionType};

/// One enforcement request, in plain types.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Enforcement {
    /// The action's id (an unblock names the action it lifts).
    pub action_id: String,
    /// What Shield does.
    pub action_type: ActionType,
    /// `type:id`.
    pub target_entity: String,
    /// Why.
    pub reason: String,
    /// How long it lasts.
    pub duration: Duration,
    /// Kind-specific parameters.
    pub parameters: BTreeMap<String, String>,
}

impl Enforcement {
    /// The wire message.
    pub fn request(&self) -> ActionRequest {
        ActionRequest {
            action_id: self.action_id.clone(),
            r#type: self.action_type as i32,
            target_entity: self.target_entity.clone(),
            reason: self.reason.clone(),
            duration: Some(prost_types::Duration {
                seconds: self.duration.as_secs().min(i64::MAX as u64) as i64,
                nanos: self.duration.subsec_nanos() as i32,
            }),
            parameters: self.parameters.clone().into_iter().collect(),
        }
    }
}

/// Shield's answer, or why there was none.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Enforced {
    /// Shield answered; `success` false means it refused.
    Answered {
        /// Whether it acted.
        success: bool,
        /// Its message.
        message: String,
    },
    /// The call failed: how, for the retry policy, and the error text.
    Failed(Attempt, String),
}

/// Calls `EnforceAction` on `endpoint` (`host:port` or a URL), within `timeout`.
pub async fn enforce(endpoint: &str, enforcement: &Enforcement, timeout: Duration) -> Enforced {
    let url = if endpoint.contains("://") {
        endpoint.to_owned()
    } else {
        format!("http://{endpoint}")
    };
    let channel = match tonic::transport::Endpoint::from_shared(url) {
        Ok(e) => e.connect_timeout(timeout).timeout(timeout),
        Err(e) => {
            return Enforced::Failed(
                Attempt::Status {
                    code: 400,
                    retry_after: None,
                },
                e.to_string(),
            )
        }
    };
    let channel = match channel.connect().await {
        Ok(c) => c,
        Err(e) => return Enforced::Failed(Attempt::Unreachable, e.to_string()),
    };
    let mut client = ShieldActionClient::new(channel);
    match client.enforce_action(enforcement.request()).await {
        Ok(answer) => {
            let answer = answer.into_inner();
            Enforced::Answered {
                success: answer.success,
                message: answer.message,
            }
        }
        Err(status) => Enforced::Failed(attempt_of(&status), status.to_string()),
    }
}

/// How a gRPC status counts for the retry policy: transient codes as a 503, the rest as a
/// refusal (400).
fn attempt_of(status: &tonic::Status) -> Attempt {
    use tonic::Code;
    match status.code() {
        Code::DeadlineExceeded => Attempt::TimedOut,
        Code::Unavailable | Code::ResourceExhausted | Code::Aborted | Code::Internal | Code::Unknown => {
            Attempt::Status {
                code: 503,
                retry_after: None,
            }
        }
        _ => Attempt::Status {
            code: 400,
            retry_after: None,
        },
    }
}
