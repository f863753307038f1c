//! The agent's Connect endpoints, answered from the agent's own cache (`agent::connect`):
//! `/v1/agent/connect/ca/roots`, `/v1/agent/connect/ca/leaf/:service` and
//! `/v1/agent/connect/authorize`. Blocking requests (`?index`) wait on the cache, which the
//! agent keeps current with blocking reads on the servers: thousands of sidecars blocking here
//! cost the servers one watch per agent.

use std::time::Duration;

use agent::connect::{Connect, ConnectError};
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method};
use axum::response::Response;
use axum::Router;
use intentions::{AuthorizeRequest, AuthorizeResponse};

use crate::error::ApiError;
use crate::kv::read_body;
use crate::params::{Blocking, Params};
use crate::{methods, render};

/// Largest authorize request body.
const MAX_AUTHORIZE_BODY: usize = 64 * 1024;

#[derive(Debug, Clone)]
struct ConnectContext {
    connect: Connect,
    dev: bool,
}

pub(crate) fn routes(connect: Connect, dev: bool) -> Router {
    let get = &[Method::GET];
    Router::new()
        .route("/v1/agent/connect/ca/roots", methods(get, roots))
        .route("/v1/agent/connect/ca/leaf/{service}", methods(get, leaf))
        .route(
            "/v1/agent/connect/authorize",
            methods(&[Method::POST], authorize),
        )
        .with_state(ConnectContext { connect, dev })
}

fn status(err: ConnectError) -> ApiError {
    match err {
        ConnectError::RateLimited => ApiError::TooManyRequests(err.to_string()),
        ConnectError::Unavailable(text) => ApiError::Internal(text),
    }
}

/// `?index` and `?wait`: what the client has seen and how long it waits for news.
fn blocking(params: &Params) -> Result<(u64, Duration), ApiError> {
    Ok(match Blocking::parse(params)? {
        Some(b) => (b.index, b.wait),
        None => (0, Duration::ZERO),
    })
}

fn with_index(mut resp: Response, index: u64) -> Response {
    resp.headers_mut()
        .insert("X-Consul-Index", HeaderValue::from(index.max(1)));
    resp
}

async fn roots(
    State(ctx): State<ConnectContext>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref());
    let (index, wait) = blocking(&params)?;
    let roots = ctx.connect.roots(index, wait).await.map_err(status)?;
    let resp = render::json(&roots.roots, ctx.dev || params.pretty());
    Ok(with_index(resp, roots.index))
}

async fn leaf(
    State(ctx): State<ConnectContext>,
    Path(service): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref());
    let (index, wait) = blocking(&params)?;
    let leaf = ctx
        .connect
        .leaf(&service, index, wait)
        .await
        .map_err(status)?;
    let resp = render::json(&leaf.to_wire(), ctx.dev || params.pretty());
    Ok(with_index(resp, leaf.index))
}

async fn authorize(
    State(ctx): State<ConnectContext>,
    authz: crate::authz::Authz,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref());
    let body = read_body(&headers, body, MAX_AUTHORIZE_BODY, |len| {
        format!("Request body({len} bytes) too large, max size: {MAX_AUTHORIZE_BODY} bytes")
    })
    .await?;
    let request =
        AuthorizeRequest::decode(&body).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    // Consul's `service:write` on the target: only the target's own proxy asks.
    authz.require(acl::Resource::Service, &request.target, acl::Access::Write)?;
    let decision = ctx
        .connect
        .authorize(&request)
        .await
        .map_err(status)?
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    Ok(render::json(
        &AuthorizeResponse::from(&decision),
        ctx.dev || params.pretty(),
    ))
}
