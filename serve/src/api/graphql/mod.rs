//! GraphQL at `/graphql`, in the shape of the seed's schema.graphql: queries and mutations over
//! HTTP, subscriptions over WebSockets in both the graphql-transport-ws and the legacy
//! graphql-ws protocols.

pub mod alerts;
mod mutation;
mod query;
mod subscription;
pub mod types;

use async_graphql::{ErrorExtensions, Schema};
use async_graphql_axum::{GraphQLProtocol, GraphQLRequest, GraphQLResponse, GraphQLWebSocket};
use axum::extract::{State, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

use super::{authorization, ApiError, ApiState};
use crate::auth::Scope;

pub use mutation::MutationRoot;
pub use query::QueryRoot;
pub use subscription::SubscriptionRoot;

/// The schema.
pub type SentinelSchema = Schema<QueryRoot, MutationRoot, SubscriptionRoot>;

/// What every resolver reads: the API's state.
#[derive(Clone)]
pub struct Shared {
    /// The state REST uses too.
    pub api: ApiState,
}

/// What the caller's key may do, for the resolvers that change things.
#[derive(Clone, Copy, Debug)]
pub struct Caller(pub Scope);

/// Builds the schema over `state`.
pub fn schema(state: ApiState) -> SentinelSchema {
    Schema::build(QueryRoot, MutationRoot, SubscriptionRoot)
        .data(Shared { api: state })
        .limit_depth(12)
        .limit_complexity(5_000)
        .finish()
}

/// The schema in SDL, for clients' code generators.
pub fn sdl(schema: &SentinelSchema) -> String {
    schema.sdl()
}

/// An API error as a GraphQL error, with its kind in `extensions.code`.
pub fn gql_error(e: ApiError) -> async_graphql::Error {
    let code = e.code();
    async_graphql::Error::new(e.message()).extend_with(|_, ext| ext.set("code", code))
}

/// Needs `needed`, or says why not.
pub fn require(ctx: &async_graphql::Context<'_>, needed: Scope) -> async_graphql::Result<()> {
    match ctx.data::<Caller>() {
        Ok(Caller(scope)) if *scope >= needed => Ok(()),
        _ => Err(gql_error(ApiError::Forbidden)),
    }
}

fn scope_of(state: &ApiState, authorization: Option<&str>) -> Result<Scope, ApiError> {
    Ok(state.keys.scope_of(authorization)?)
}

/// Whether a request's `Origin` (sent by browsers) is this server, as its `Host` names it.
/// Browsers apply no CORS to WebSockets, so without this any page could subscribe.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(axum::http::header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true; // not a browser
    };
    let host = headers.get(axum::http::header::HOST).and_then(|v| v.to_str().ok());
    let origin_host = origin.split_once("://").map(|(_, rest)| rest);
    matches!((origin_host, host), (Some(o), Some(h)) if o.eq_ignore_ascii_case(h))
}

/// `POST /graphql`: a key is needed to ask anything; admin to change. Only JSON bodies, so
/// a cross-site form cannot post a mutation without the browser asking first.
pub async fn http(
    State((state, schema)): State<(ApiState, SentinelSchema)>,
    headers: HeaderMap,
    request: GraphQLRequest,
) -> Result<GraphQLResponse, ApiError> {
    let json = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json"));
    if !json {
        return Err(ApiError::BadRequest(
            "send the query as `Content-Type: application/json`".into(),
        ));
    }
    let scope = scope_of(&state, authorization(&headers))?;
    Ok(schema.execute(request.into_inner().data(Caller(scope))).await.into())
}

/// `GET /graphql/ws` (or `/graphql` with an upgrade): subscriptions. Browsers cannot set
/// headers on a WebSocket, so the key may also come in the `connection_init` payload, as
/// `{"Authorization": "Bearer <key>"}`.
pub async fn websocket(
    State((state, schema)): State<(ApiState, SentinelSchema)>,
    headers: HeaderMap,
    protocol: GraphQLProtocol,
    upgrade: WebSocketUpgrade,
) -> Response {
    if !same_origin(&headers) {
        return ApiError::Forbidden.into_response();
    }
    let from_header = authorization(&headers).map(str::to_owned);
    upgrade
        .protocols(async_graphql::http::ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |socket| {
            GraphQLWebSocket::new(socket, schema, protocol)
                .on_connection_init(move |payload| async move {
                    let from_payload = ["Authorization", "authorization"]
                        .iter()
                        .find_map(|k| payload.get(k).and_then(|v| v.as_str()).map(str::to_owned));
                    let presented = from_payload.or(from_header);
                    let scope = scope_of(&state, presented.as_deref()).map_err(gql_error)?;
                    let mut data = async_graphql::Data::default();
                    data.insert(Caller(scope));
                    Ok(data)
                })
                .serve()
        })
        .into_response()
}
