//! `/v1/session/*`: create, destroy, renew, info, node, list.

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::{Map, Value};
use std::time::Duration;

use consensus::{Op, Response as Applied};

use crate::authz::Authz;
use crate::blocking::{self, Watch};
use crate::error::ApiError;
use crate::kv::{read_body, write_bool};
use crate::params::{check_dc, Params, ReadOptions};
use crate::render;
use crate::wire::{self, field, string_field, strings_field};
use crate::Ctx;

/// The largest session body we accept; a session definition is a few hundred bytes.
const MAX_SESSION_BODY: usize = 64 * 1024;

pub async fn create(
    State(ctx): State<Ctx>,
    authz: Authz,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref());
    check_dc(&ctx, &params)?;
    let body = read_body(&headers, body, MAX_SESSION_BODY, |len| {
        format!("Request body({len} bytes) too large, max size: {MAX_SESSION_BODY} bytes")
    })
    .await?;
    let request = if body.iter().all(u8::is_ascii_whitespace) {
        session_request(&ctx, &Map::new())?
    } else {
        match wire::decode_body(&body)? {
            Value::Object(obj) => session_request(&ctx, &obj)?,
            Value::Null => session_request(&ctx, &Map::new())?,
            other => {
                return Err(ApiError::BadRequest(format!(
                    "Request decode failed: expected an object, got {other}"
                )))
            }
        }
    };
    // Consul's `session:write` on the node the session is tied to.
    authz.require(acl::Resource::Session, &request.node, acl::Access::Write)?;
    let id = request.id.clone();
    let written = ctx.node.write(Op::CreateSession(request)).await?;
    match written.response {
        Applied::None => Ok(render::json(
            &serde_json::json!({ "ID": id }),
            params.pretty(),
        )),
        Applied::Rejected(reason) => Err(ApiError::Internal(reason)),
        other => Err(ApiError::Internal(format!(
            "unexpected write result: {other:?}"
        ))),
    }
}

/// Builds a session from Consul's create body, applying Consul's defaults.
fn session_request(ctx: &Ctx, obj: &Map<String, Value>) -> Result<kv::SessionRequest, ApiError> {
    let behavior = match string_field(obj, "Behavior")?.as_deref() {
        None | Some("") | Some("release") => kv::Behavior::Release,
        Some("delete") => kv::Behavior::Delete,
        Some(other) => {
            return Err(ApiError::Internal(format!(
                "Invalid Behavior setting '{other}'"
            )))
        }
    };
    let lock_delay = match field(obj, "LockDelay") {
        None | Some(Value::Null) => kv::DEFAULT_LOCK_DELAY,
        Some(Value::Number(n)) => {
            let nanos = n.as_u64().ok_or_else(|| {
                ApiError::BadRequest(format!("Request decode failed: invalid LockDelay {n}"))
            })?;
            kv::normalize_lock_delay(Duration::from_nanos(nanos))
        }
        Some(Value::String(s)) => {
            kv::normalize_lock_delay(config::parse_go_duration(s).map_err(|err| {
                ApiError::BadRequest(format!("Request decode failed: LockDelay: {err}"))
            })?)
        }
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "Request decode failed: invalid LockDelay {other}"
            )))
        }
    };
    let ttl = match string_field(obj, "TTL")? {
        None => None,
        Some(raw) if raw.is_empty() => None,
        Some(raw) => {
            let parsed = config::parse_go_duration(&raw)
                .map_err(|err| ApiError::Internal(format!("Session TTL '{raw}' invalid: {err}")))?;
            kv::validate_session_ttl(parsed, ctx.session_ttl_min)
                .map_err(|err| ApiError::Internal(err.to_string()))?
        }
    };
    // A body that names its checks replaces the default `serfHealth`, even with an empty list.
    let node_checks = match (
        strings_field(obj, "NodeChecks")?,
        strings_field(obj, "Checks")?,
    ) {
        (None, None) => vec!["serfHealth".to_owned()],
        (node, legacy) => node.into_iter().chain(legacy).flatten().collect(),
    };
    let service_checks = match field(obj, "ServiceChecks") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::Object(check) => Ok(kv::ServiceCheck {
                    id: string_field(check, "ID")?.unwrap_or_default(),
                    namespace: string_field(check, "Namespace")?.unwrap_or_default(),
                }),
                other => Err(ApiError::BadRequest(format!(
                    "Request decode failed: ServiceChecks: expected objects, got {other}"
                ))),
            })
            .collect::<Result<_, _>>()?,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "Request decode failed: ServiceChecks: expected a list, got {other}"
            )))
        }
    };
    Ok(kv::SessionRequest {
        id: uuid::Uuid::new_v4().to_string(),
        name: string_field(obj, "Name")?.unwrap_or_default(),
        node: string_field(obj, "Node")?
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| ctx.agent.node_name.clone()),
        lock_delay,
        behavior,
        ttl,
        node_checks,
        service_checks,
    })
}

pub async fn destroy(
    State(ctx): State<Ctx>,
    authz: Authz,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref());
    check_dc(&ctx, &params)?;
    require_session_write(&ctx, &authz, &id)?;
    // Destroy is idempotent: `true` whether or not the session existed.
    write_bool(&ctx, Op::DestroySession { id }, params.pretty())
        .await
        .map(|_| render::json(&true, params.pretty()))
}

pub async fn renew(
    State(ctx): State<Ctx>,
    authz: Authz,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref());
    check_dc(&ctx, &params)?;
    require_session_write(&ctx, &authz, &id)?;
    // Timers live on the leader; a follower forwards the renew there.
    if !ctx.node.renew_session(&id).await? {
        return Err(ApiError::NotFound(format!("Session id '{id}' not found")));
    }
    let state = ctx.node.reader().state();
    let sessions: Vec<wire::Session> = state
        .kv
        .session(&id)
        .map(wire::Session::new)
        .into_iter()
        .collect();
    Ok(render::json(&sessions, params.pretty()))
}

/// `session:write` on the node of session `id` (an unknown one passes: it is answered as
/// before).
fn require_session_write(ctx: &Ctx, authz: &Authz, id: &str) -> Result<(), ApiError> {
    let node = ctx
        .node
        .reader()
        .state()
        .kv
        .session(id)
        .map(|s| s.node.clone());
    match node {
        Some(node) => authz.require(acl::Resource::Session, &node, acl::Access::Write),
        None => Ok(()),
    }
}

/// A session list, keeping the sessions whose node the token may `session:read`.
async fn list_sessions(
    ctx: &Ctx,
    authz: &Authz,
    query: Option<String>,
    select: impl Fn(&kv::KvStore) -> Vec<kv::Session>,
) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref());
    let opts = ReadOptions::parse(ctx, &params)?;
    let (meta, mut sessions) = blocking::read(ctx, &opts, Watch::Sessions, |state| {
        (state.kv.sessions_index(), select(&state.kv))
    })
    .await?;
    let filtered = authz.filter(
        &mut sessions,
        acl::Resource::Session,
        acl::Access::Read,
        |s| &s.node,
    );
    let wire: Vec<wire::Session> = sessions.iter().map(wire::Session::new).collect();
    let mut resp = render::json_with_meta(&wire, opts.pretty, &meta);
    authz.mark_filtered(filtered, &mut resp);
    Ok(resp)
}

pub async fn info(
    State(ctx): State<Ctx>,
    authz: Authz,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    list_sessions(&ctx, &authz, query, |kv| {
        kv.session(&id).cloned().into_iter().collect()
    })
    .await
}

pub async fn node(
    State(ctx): State<Ctx>,
    authz: Authz,
    Path(node): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    list_sessions(&ctx, &authz, query, |kv| {
        kv.node_sessions(&node).into_iter().cloned().collect()
    })
    .await
}

pub async fn list(
    State(ctx): State<Ctx>,
    authz: Authz,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    list_sessions(&ctx, &authz, query, |kv| {
        kv.sessions().into_iter().cloned().collect()
    })
    .await
}
