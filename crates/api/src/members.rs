//! The agent's view of the gossip pool: `/v1/agent/members`, `/v1/agent/join/:address`,
//! `/v1/agent/force-leave/:node`, and the pool's keyring, `/v1/operator/keyring`.

use agent::membership::{KeyringReport, KeyringRequest, Membership, MembershipError};
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use gossip::Member;
use serde_json::{json, Value};

use crate::catalog::{decode_failed, ListFilter};
use crate::error::ApiError;
use crate::kv::read_body;
use crate::params::Params;
use crate::{methods, render};

#[derive(Debug, Clone)]
struct MembersContext {
    membership: Membership,
    datacenter: String,
    dev: bool,
}

pub(crate) fn routes(membership: Membership, datacenter: String, dev: bool) -> Router {
    let put = &[Method::PUT];
    let keyring_methods = &[Method::GET, Method::POST, Method::PUT, Method::DELETE];
    Router::new()
        .route("/v1/agent/members", methods(&[Method::GET], members))
        .route("/v1/agent/join/{address}", methods(put, join))
        .route("/v1/agent/force-leave/{node}", methods(put, force_leave))
        .route("/v1/operator/keyring", methods(keyring_methods, keyring))
        .with_state(MembersContext {
            membership,
            datacenter,
            dev,
        })
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
    authz: crate::authz::Authz,
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
    let filtered = authz.filter(&mut members, acl::Resource::Node, acl::Access::Read, |m| {
        &m.name
    });
    let body = list.keep(members.iter().map(member_json));
    let mut resp = render::json(&body, ctx.dev || params.pretty());
    authz.mark_filtered(filtered, &mut resp);
    Ok(resp)
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

/// `/v1/operator/keyring`: GET lists the keys of every live member (`?local-only`: this
/// agent's), POST installs `{"Key"}` everywhere, PUT makes it primary, DELETE removes it.
/// Every member persists its keyring in its data directory. A member that fails or does not
/// answer makes it a 500 that says so, as in Consul.
async fn keyring(
    State(ctx): State<MembersContext>,
    method: Method,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let params = Params::parse(q.as_deref());
    let relay = params.get("relay-factor").unwrap_or("0");
    if !matches!(relay.parse::<u8>(), Ok(0..=5)) {
        return Err(ApiError::BadRequest(
            "Relay factor must be in range: [0, 5]".into(),
        ));
    }
    let local_only = params
        .get("local-only")
        .is_some_and(|v| v.is_empty() || v == "true");
    if local_only && method != Method::GET {
        return Err(ApiError::BadRequest(
            "local-only can only be set for list requests".into(),
        ));
    }
    let request = if method == Method::GET {
        KeyringRequest::List
    } else {
        let key = read_key(&headers, body).await?;
        // A key that can never be installed is refused here rather than by every member.
        gossip::Keyring::new(&key)
            .map_err(|err| ApiError::Internal(format!("Invalid key: {err}")))?;
        match method {
            Method::POST => KeyringRequest::Install(key),
            Method::PUT => KeyringRequest::Use(key),
            _ => KeyringRequest::Remove(key),
        }
    };
    let listing = request == KeyringRequest::List;
    let report = if local_only {
        ctx.membership.keyring_local().await
    } else {
        ctx.membership
            .keyring(request)
            .await
            .map_err(|err| ApiError::Internal(err.to_string()))?
    };
    if let Some(error) = report.error() {
        return Err(ApiError::Internal(error));
    }
    if !listing {
        return Ok(StatusCode::OK.into_response());
    }
    let body = json!([keyring_json(&report, &ctx.datacenter)]);
    Ok(render::json(&body, ctx.dev || params.pretty()))
}

/// The body of a keyring change: `{"Key": "<base64>"}`.
async fn read_key(headers: &HeaderMap, body: Body) -> Result<String, ApiError> {
    #[derive(serde::Deserialize)]
    struct KeyBody {
        #[serde(rename = "Key", default)]
        key: String,
    }
    let bytes = read_body(headers, body, 64 * 1024, |len| {
        format!("Request body({len} bytes) too large")
    })
    .await?;
    let parsed: KeyBody =
        serde_json::from_slice(&bytes).map_err(|e| decode_failed(e.to_string()))?;
    Ok(parsed.key)
}

/// The LAN pool's entry in Consul's keyring list (mesh has no WAN pool).
fn keyring_json(report: &KeyringReport, datacenter: &str) -> Value {
    json!({
        "WAN": false,
        "Datacenter": datacenter,
        "Segment": "",
        "Messages": report.messages,
        "Keys": report.keys,
        "PrimaryKeys": report.primary_keys,
        "NumNodes": report.num_nodes,
    })
}
