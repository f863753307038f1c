//! The one place where failures become HTTP responses: Consul's status codes and plain-text
//! bodies, which clients match on.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use consensus::ConsensusError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    TooLarge(String),
    /// Consul's `ErrRateLimited` (CSR signing): 429.
    #[error("{0}")]
    TooManyRequests(String),
    #[error("method {method} not allowed")]
    MethodNotAllowed { method: String, allow: String },
    /// ACL permission denied and `ACL not found`: 403.
    #[error("{0}")]
    Forbidden(String),
    /// `ACL support disabled`: 401.
    #[error("{0}")]
    Unauthorized(String),

    /// Consul answers errors that come back from its RPC layer with a 500 and their text.
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// `OPTIONS` on a known route: 200, no body, the `Allow` list.
    pub(crate) fn options(allow: &str) -> Response {
        let mut resp = StatusCode::OK.into_response();
        if let Ok(value) = HeaderValue::from_str(allow) {
            resp.headers_mut().insert(header::ALLOW, value);
        }
        resp
    }
}

impl From<ConsensusError> for ApiError {
    fn from(err: ConsensusError) -> Self {
        ApiError::Internal(err.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::warn!(%status, error = %self, "request failed");
        }
        let allow = match &self {
            ApiError::MethodNotAllowed { allow, .. } => HeaderValue::from_str(allow).ok(),
            _ => None,
        };
        let mut resp = (
            status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            self.to_string(),
        )
            .into_response();
        if let Some(allow) = allow {
            resp.headers_mut().insert(header::ALLOW, allow);
        }
        resp
    }
}
