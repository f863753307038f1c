//! `/v1/status/leader` and `/v1/status/peers`: liveness probes for many clients.

use axum::extract::{RawQuery, State};
use axum::response::Response;

use crate::error::ApiError;
use crate::params::{check_dc, Params};
use crate::render;
use crate::Ctx;

pub async fn leader(
    State(ctx): State<Ctx>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref());
    check_dc(&ctx, &params)?;
    let addr = ctx.node.leader_view().leader_addr.unwrap_or_default();
    Ok(render::json(&addr, params.pretty() || ctx.agent.dev))
}

pub async fn peers(
    State(ctx): State<Ctx>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref());
    check_dc(&ctx, &params)?;
    Ok(render::json(
        &ctx.node.voter_addrs(),
        params.pretty() || ctx.agent.dev,
    ))
}
