//! The agent's view of the gossip pool: `/v1/agent/members`, `/v1/agent/join/:address` and
//! `/v1/agent/force-leave/:node`.

use agent::membership::{Membership, MembershipError};
use axum::extract::{Path, RawQuery, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use gossip::Member;
use serde_json::{json, Value};

use crate::catalog::ListFilter;
use crate::error::ApiError;
use crate::params::Params;
use crate::{methods, render};

#[derive(Debug, Clone)]
struct MembersContext {
    membership: Membership,
    dev: bool,
}

pub(crate) fn routes(membership: Membership, dev: bool) -> Router {
    let put = &[Method::PUT];
    Router::new()
        .route("/v1/agent/members", methods(&[Method::GET], members))
        .route("/v1/agent/join/{address}", methods(put, join))
        .route("/v1/agent/force-leave/{node}", methods(put, force_leave))
        .with_state(MembersContext { membership, dev })
}

/// A serf member as Consul reports it: `Status` is serf's integer code.
fn member_json(member: &Member) -> Value {
    json!({
        "Name": member.name,
        "Addr": member.addr.ip().to_string(),
        "Port": member.addr.port(),
        "Tags": member.tags,
        "Status": member.status.code(),
        "ProtocolMin": 1,
        "ProtocolMax": 5,
        "ProtocolCur": 2,
        "DelegateMin": 2,
        "DelegateMax": 5,
        "DelegateCur": 4,
    })
}

/// `GET /v1/agent/members?filter`: every member this agent knows, by name. `?wan` lists the
/// WAN pool, which mesh does not have: an empty list, as a client agent answers in Consul.
async fn members(
    State(ctx): State<MembersContext>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(q.as_deref());
    if params.has("wan") && params.has("segment") {
        return Err(ApiError::BadRequest(
            "Cannot provide a segment with wan=true".into(),
        ));
    }
    let list = ListFilter::parse(&params)?;
    let mut members = if params.has("wan") {
        Vec::new()
    } else {
        ctx.membership.members()
    };
    members.sort_by(|a, b| a.name.cmp(&b.name));
    let body = list.keep(members.iter().map(member_json));
    Ok(render::json(&body, ctx.dev || params.pretty()))
}

/// `PUT /v1/agent/join/:address`: 200 with an empty body, or 500 with why no agent answered.
async fn join(
    State(ctx): State<MembersContext>,
    Path(address): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    if Params::parse(q.as_deref()).has("wan") {
        return Err(ApiError::Internal("WAN federation is not supported".into()));
    }
    ctx.membership
        .join(&[address])
        .await
        .map_err(|err| ApiError::Internal(err.to_string()))?;
    Ok(StatusCode::OK.into_response())
}

/// `PUT /v1/agent/force-leave/:node?prune`: a failed member is marked left; `prune` forgets
/// it at once.
async fn force_leave(
    State(ctx): State<MembersContext>,
    Path(node): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(q.as_deref());
    if params.has("wan") {
        return Err(ApiError::Internal("WAN federation is not supported".into()));
    }
    ctx.membership
        .force_leave(&node, params.has("prune"))
        .await
        .map_err(|err| match err {
            MembershipError::Refused(text) => ApiError::Internal(text),
            other => ApiError::Internal(other.to_string()),
        })?;
    Ok(StatusCode::OK.into_response())
}
