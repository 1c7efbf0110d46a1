//! API errors: a status code and a JSON body that says what was wrong.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

/// What went wrong, by kind; the body names the parameter or value at fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApiError {
    /// A parameter or body field is missing, unknown or has a bad value: 400.
    BadRequest(String),
    /// No or an unknown key: 401.
    Unauthenticated,
    /// The key lacks the scope: 403.
    Forbidden,
    /// No such anomaly: 404.
    NotFound(String),
    /// The lifecycle does not allow the change: 409.
    Conflict(String),
    /// The store failed: 500.
    Internal(String),
    /// A change could not be published, or did not come back in time: 503, try again.
    Unavailable(String),
}

impl ApiError {
    fn parts(&self) -> (StatusCode, &'static str, String) {
        match self {
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, "bad_request", m.clone()),
            ApiError::Unauthenticated => (
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "send a configured API key as `Authorization: Bearer <key>`".into(),
            ),
            ApiError::Forbidden => (
                StatusCode::FORBIDDEN,
                "forbidden",
                "this key may only read; changes need an admin key".into(),
            ),
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, "not_found", m.clone()),
            ApiError::Conflict(m) => (StatusCode::CONFLICT, "conflict", m.clone()),
            ApiError::Internal(m) => (StatusCode::INTERNAL_SERVER_ERROR, "internal", m.clone()),
            ApiError::Unavailable(m) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable", m.clone()),
        }
    }
}

impl From<crate::auth::Denied> for ApiError {
    fn from(d: crate::auth::Denied) -> Self {
        match d {
            crate::auth::Denied::Unauthenticated => ApiError::Unauthenticated,
            crate::auth::Denied::Forbidden => ApiError::Forbidden,
        }
    }
}

impl ApiError {
    /// Its kind, as the JSON body's `code` and GraphQL's `extensions.code` name it.
    pub fn code(&self) -> &'static str {
        self.parts().1
    }

    /// What was wrong, for the client.
    pub fn message(&self) -> String {
        self.parts().2
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message) = self.parts();
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(%message, "serve: request failed");
        }
        let mut response = (status, Json(json!({"error": {"code": code, "message": message}}))).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}
