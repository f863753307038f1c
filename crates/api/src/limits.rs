//! Bounds on what a request carries besides its body (each endpoint bounds its own body):
//! 512 query parameters. The rest of the head is bounded before a request reaches the router:
//! its target (and so KV keys and names in paths) at 64 KiB by the `http` crate, which hyper
//! answers with 414, and its headers at 100 (431).

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// The most query parameters a request may have.
pub const MAX_QUERY_PARAMETERS: usize = 512;

/// Refuses a request with too many query parameters before any handler parses them.
pub(crate) async fn bound_request(req: Request, next: Next) -> Response {
    let parameters = req.uri().query().map_or(0, |query| {
        query.split('&').filter(|p| !p.is_empty()).count()
    });
    if parameters > MAX_QUERY_PARAMETERS {
        return ApiError::BadRequest(format!(
            "Too many query parameters ({parameters}, limit: {MAX_QUERY_PARAMETERS})"
        ))
        .into_response();
    }
    next.run(req).await
}
