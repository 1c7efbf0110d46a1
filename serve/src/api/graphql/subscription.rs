//! Subscriptions: new anomalies as the store takes them.

use async_graphql::{Context, ErrorExtensions, Subscription};
use futures_util::{Stream, StreamExt};

use super::types::{AnomalyFilterInput, AnomalyNode};
use super::Shared;
use crate::live::{Delivery, BEHIND};

/// The subscriptions.
pub struct SubscriptionRoot;

#[Subscription]
impl SubscriptionRoot {
    /// Each new anomaly matching `filter`, as soon as it is stored. A subscriber that falls
    /// more than a thousand anomalies behind gets an error with `extensions.code = "behind"`
    /// and the backlog, then every anomaly it missed, oldest first: none is skipped.
    async fn anomaly_detected(
        &self,
        ctx: &Context<'_>,
        filter: Option<AnomalyFilterInput>,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<AnomalyNode>>> {
        let shared = ctx.data::<Shared>()?;
        let filter = filter.unwrap_or_default().to_store(None);
        let deliveries = shared.api.live.anomalies(shared.api.store.clone(), filter);
        Ok(deliveries.filter_map(|d| async move {
            match d {
                Delivery::Anomaly(value) => AnomalyNode::from_value(value).map(Ok),
                Delivery::Behind { backlog } => Some(Err(async_graphql::Error::new(format!(
                    "this subscriber fell {backlog} anomalies behind (more than {BEHIND}); \
                     every one it missed follows, oldest first"
                ))
                .extend_with(|_, ext| {
                    ext.set("code", "behind");
                    ext.set("backlog", backlog);
                }))),
                Delivery::Failed(why) => Some(Err(async_graphql::Error::new(format!(
                    "the store could not be read ({why}); retrying at the next anomaly"
                ))
                .extend_with(|_, ext| ext.set("code", "internal")))),
            }
        }))
    }
}
