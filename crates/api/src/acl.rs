//! `/v1/acl/*`: bootstrap, tokens, policies and roles, with Consul's shapes, permissions
//! (`acl:read` to read, `acl:write` to write and to see secrets) and texts. With ACLs off,
//! every one of them answers 401 `ACL support disabled`.

use acl::store::{Link, NodeIdentity, PolicyWrite, RoleWrite, ServiceIdentity, TokenWrite};
use acl::{wire as acl_wire, Access, AclApplied, AclOp, Resource};
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use axum::routing::Router;
use consensus::TABLE_ACL;
use serde_json::{Map, Value};

use crate::authz::{acl_error, Authz};
use crate::blocking::{self, Watch};
use crate::error::ApiError;
use crate::kv::read_body;
use crate::params::{Params, ReadOptions};
use crate::wire::{decode_body, field, string_field, strings_field};
use crate::{methods, render, Ctx};

/// A token, policy or role is a few KiB; rules of a large policy a few hundred.
const MAX_BODY: usize = 1024 * 1024;

pub(crate) fn routes() -> Router<Ctx> {
    let get = &[Method::GET];
    let put = &[Method::PUT];
    let one = &[Method::GET, Method::PUT, Method::DELETE];
    Router::new()
        .route("/v1/acl/bootstrap", methods(put, bootstrap))
        .route("/v1/acl/token", methods(put, create_token))
        .route("/v1/acl/token/self", methods(get, token_self))
        .route("/v1/acl/token/{id}", methods(one, token))
        .route("/v1/acl/tokens", methods(get, tokens))
        .route("/v1/acl/policy", methods(put, create_policy))
        .route("/v1/acl/policy/name/{name}", methods(get, policy_by_name))
        .route("/v1/acl/policy/{id}", methods(one, policy))
        .route("/v1/acl/policies", methods(get, policies))
        .route("/v1/acl/role", methods(put, create_role))
        .route("/v1/acl/role/name/{name}", methods(get, role_by_name))
        .route("/v1/acl/role/{id}", methods(one, role))
        .route("/v1/acl/roles", methods(get, roles))
}

fn enabled(ctx: &Ctx) -> Result<(), ApiError> {
    if ctx.acl.enabled {
        Ok(())
    } else {
        Err(ApiError::Unauthorized("ACL support disabled".into()))
    }
}

fn not_found() -> ApiError {
    ApiError::Forbidden("ACL not found".into())
}

async fn write(ctx: &Ctx, op: AclOp) -> Result<AclApplied, ApiError> {
    let written = ctx.node.write(consensus::Op::Acl(Box::new(op))).await?;
    match written.response {
        consensus::Response::Acl(result) => result.map_err(acl_error),
        other => Err(ApiError::Internal(format!(
            "unexpected write result: {other:?}"
        ))),
    }
}

fn uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// `PUT /v1/acl/bootstrap`: the first management token. Once done, 403 with the index an
/// operator writes to `<data_dir>/acl-bootstrap-reset` to allow it again.
async fn bootstrap(
    State(ctx): State<Ctx>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    enabled(&ctx)?;
    let params = Params::parse(query.as_deref());
    let reset_file = ctx
        .data_dir
        .as_ref()
        .map(|dir| dir.join("acl-bootstrap-reset"));
    let reset_index = reset_file
        .as_ref()
        .and_then(|path| std::fs::read_to_string(path).ok())
        .and_then(|text| text.trim().parse::<u64>().ok());
    let op = AclOp::Bootstrap {
        accessor_id: uuid(),
        secret_id: uuid(),
        reset_index,
    };
    let AclApplied::Token(token) = write(&ctx, op).await? else {
        return Err(ApiError::Internal("bootstrap made no token".into()));
    };
    if let (Some(path), Some(_)) = (&reset_file, reset_index) {
        if let Err(err) = std::fs::remove_file(path) {
            tracing::warn!(path = %path.display(), %err, "could not remove the ACL bootstrap reset file");
        }
    }
    let state = ctx.node.reader().state();
    Ok(render::json(
        &acl_wire::bootstrap_token(&state.acl, &token),
        params.pretty(),
    ))
}

// ---- tokens ------------------------------------------------------------------------------------

async fn create_token(
    State(ctx): State<Ctx>,
    authz: Authz,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    enabled(&ctx)?;
    authz.require_global(Resource::Acl, Access::Write)?;
    let params = Params::parse(query.as_deref());
    let body = read_body(&headers, body, MAX_BODY, too_large).await?;
    let mut write_req = token_write(&body)?;
    if write_req.accessor_id.is_empty() {
        write_req.accessor_id = uuid();
    }
    if write_req.secret_id.is_empty() {
        write_req.secret_id = uuid();
    }
    let AclApplied::Token(token) = write(&ctx, AclOp::CreateToken(write_req)).await? else {
        return Err(ApiError::Internal("token write made no token".into()));
    };
    let state = ctx.node.reader().state();
    Ok(render::json(
        &acl_wire::token(&state.acl, &token, true),
        params.pretty(),
    ))
}

/// `GET|PUT|DELETE /v1/acl/token/:accessor`.
async fn token(
    State(ctx): State<Ctx>,
    authz: Authz,
    method: Method,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    enabled(&ctx)?;
    let params = Params::parse(query.as_deref());
    match method {
        Method::GET => {
            authz.require_global(Resource::Acl, Access::Read)?;
            let secrets = authz.allows(Resource::Acl, "", Access::Write);
            let opts = ReadOptions::parse(&ctx, &params)?;
            let (meta, value) = blocking::read(&ctx, &opts, Watch::Table(TABLE_ACL), |state| {
                let value = state
                    .acl
                    .token(&id)
                    .map(|t| acl_wire::token(&state.acl, t, secrets));
                (state.acl.tokens_index(), value)
            })
            .await?;
            let value = value.ok_or_else(not_found)?;
            Ok(render::json_with_meta(&value, opts.pretty, &meta))
        }
        Method::PUT => {
            authz.require_global(Resource::Acl, Access::Write)?;
            let body = read_body(&headers, body, MAX_BODY, too_large).await?;
            let mut write_req = token_write(&body)?;
            if !write_req.accessor_id.is_empty() && write_req.accessor_id != id {
                return Err(ApiError::BadRequest(
                    "Token Accessor ID in URL and payload do not match".into(),
                ));
            }
            write_req.accessor_id = id;
            let AclApplied::Token(token) = write(&ctx, AclOp::UpdateToken(write_req)).await? else {
                return Err(ApiError::Internal("token write made no token".into()));
            };
            let state = ctx.node.reader().state();
            Ok(render::json(
                &acl_wire::token(&state.acl, &token, true),
                params.pretty(),
            ))
        }
        _ => {
            authz.require_global(Resource::Acl, Access::Write)?;
            write(
                &ctx,
                AclOp::DeleteToken {
                    accessor_id: id,
                    requester: authz.secret().to_owned(),
                },
            )
            .await?;
            Ok(render::json(&true, params.pretty()))
        }
    }
}

/// `GET /v1/acl/token/self`: the request's own token, whatever it may do.
async fn token_self(
    State(ctx): State<Ctx>,
    authz: Authz,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    enabled(&ctx)?;
    let params = Params::parse(query.as_deref());
    let secret = match authz.secret() {
        "" => acl::store::ANONYMOUS_SECRET_ID,
        secret => secret,
    };
    let state = ctx.node.reader().state();
    let token = state.acl.token_by_secret(secret).ok_or_else(not_found)?;
    Ok(render::json(
        &acl_wire::token(&state.acl, token, true),
        params.pretty(),
    ))
}

/// `GET /v1/acl/tokens[?policy=ID][&role=ID]`.
async fn tokens(
    State(ctx): State<Ctx>,
    authz: Authz,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    enabled(&ctx)?;
    authz.require_global(Resource::Acl, Access::Read)?;
    let secrets = authz.allows(Resource::Acl, "", Access::Write);
    let params = Params::parse(query.as_deref());
    let opts = ReadOptions::parse(&ctx, &params)?;
    let policy = params.get("policy").filter(|p| !p.is_empty());
    let role = params.get("role").filter(|r| !r.is_empty());
    let (meta, list) = blocking::read(&ctx, &opts, Watch::Table(TABLE_ACL), |state| {
        let list: Vec<Value> = state
            .acl
            .tokens()
            .filter(|t| policy.is_none_or(|p| t.policies.iter().any(|id| id == p)))
            .filter(|t| role.is_none_or(|r| t.roles.iter().any(|id| id == r)))
            .map(|t| acl_wire::token_stub(&state.acl, t, secrets))
            .collect();
        (state.acl.tokens_index(), list)
    })
    .await?;
    Ok(render::json_with_meta(&list, opts.pretty, &meta))
}

/// A token body as Consul decodes it (field names in any case).
fn token_write(body: &[u8]) -> Result<TokenWrite, ApiError> {
    let obj = object(body)?;
    let expiration_time_ms = match string_field(&obj, "ExpirationTime")? {
        None => None,
        Some(text) => Some(acl_wire::parse_rfc3339_ms(&text).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "Request decode failed: parsing time {text:?} as RFC 3339"
            ))
        })?),
    };
    let expiration_ttl_ms = match field(&obj, "ExpirationTTL") {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => Some(duration_ms(text)?),
        Some(Value::Number(n)) => Some(n.as_i64().map_or(0, |ns| ns / 1_000_000)),
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "Request decode failed: ExpirationTTL: expected a duration, got {other}"
            )))
        }
    };
    Ok(TokenWrite {
        accessor_id: string_field(&obj, "AccessorID")?.unwrap_or_default(),
        secret_id: string_field(&obj, "SecretID")?.unwrap_or_default(),
        description: string_field(&obj, "Description")?.unwrap_or_default(),
        policies: links(&obj, "Policies")?,
        roles: links(&obj, "Roles")?,
        service_identities: service_identities(&obj)?,
        node_identities: node_identities(&obj)?,
        local: bool_field(&obj, "Local")?,
        expiration_time_ms,
        expiration_ttl_ms,
    })
}

/// A Go duration text (`"10m"`, `"-1s"`) in milliseconds.
fn duration_ms(text: &str) -> Result<i64, ApiError> {
    let (negative, magnitude) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let parsed = config::parse_go_duration(magnitude).map_err(|_| {
        ApiError::BadRequest(format!(
            "Request decode failed: time: invalid duration {text:?}"
        ))
    })?;
    let ms = i64::try_from(parsed.as_millis()).unwrap_or(i64::MAX);
    Ok(if negative { -ms } else { ms })
}

// ---- policies ----------------------------------------------------------------------------------

async fn create_policy(
    State(ctx): State<Ctx>,
    authz: Authz,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    enabled(&ctx)?;
    authz.require_global(Resource::Acl, Access::Write)?;
    let params = Params::parse(query.as_deref());
    let body = read_body(&headers, body, MAX_BODY, too_large).await?;
    let mut policy = policy_write(&body)?;
    policy.id = uuid();
    let applied = write(
        &ctx,
        AclOp::SetPolicy {
            policy,
            create: true,
        },
    )
    .await?;
    policy_answer(applied, params.pretty())
}

fn policy_answer(applied: AclApplied, pretty: bool) -> Result<Response, ApiError> {
    match applied {
        AclApplied::Policy(policy) => Ok(render::json(&acl_wire::policy(&policy), pretty)),
        _ => Err(ApiError::Internal("policy write made no policy".into())),
    }
}

/// `GET|PUT|DELETE /v1/acl/policy/:id`.
async fn policy(
    State(ctx): State<Ctx>,
    authz: Authz,
    method: Method,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    enabled(&ctx)?;
    let params = Params::parse(query.as_deref());
    match method {
        Method::GET => {
            authz.require_global(Resource::Acl, Access::Read)?;
            read_one(&ctx, &params, |state| {
                (
                    state.acl.policies_index(),
                    state.acl.policy(&id).map(acl_wire::policy),
                )
            })
            .await
        }
        Method::PUT => {
            authz.require_global(Resource::Acl, Access::Write)?;
            let body = read_body(&headers, body, MAX_BODY, too_large).await?;
            let mut policy = policy_write(&body)?;
            if !policy.id.is_empty() && policy.id != id {
                return Err(ApiError::BadRequest(
                    "Policy ID in URL and payload do not match".into(),
                ));
            }
            policy.id = id;
            let applied = write(
                &ctx,
                AclOp::SetPolicy {
                    policy,
                    create: false,
                },
            )
            .await?;
            policy_answer(applied, params.pretty())
        }
        _ => {
            authz.require_global(Resource::Acl, Access::Write)?;
            write(&ctx, AclOp::DeletePolicy { id }).await?;
            Ok(render::json(&true, params.pretty()))
        }
    }
}

async fn policy_by_name(
    State(ctx): State<Ctx>,
    authz: Authz,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    enabled(&ctx)?;
    authz.require_global(Resource::Acl, Access::Read)?;
    let params = Params::parse(query.as_deref());
    read_one(&ctx, &params, |state| {
        (
            state.acl.policies_index(),
            state.acl.policy_by_name(&name).map(acl_wire::policy),
        )
    })
    .await
}

async fn policies(
    State(ctx): State<Ctx>,
    authz: Authz,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    enabled(&ctx)?;
    authz.require_global(Resource::Acl, Access::Read)?;
    let params = Params::parse(query.as_deref());
    let opts = ReadOptions::parse(&ctx, &params)?;
    let (meta, list) = blocking::read(&ctx, &opts, Watch::Table(TABLE_ACL), |state| {
        let list: Vec<Value> = state.acl.policies().map(acl_wire::policy_stub).collect();
        (state.acl.policies_index(), list)
    })
    .await?;
    Ok(render::json_with_meta(&list, opts.pretty, &meta))
}

fn policy_write(body: &[u8]) -> Result<PolicyWrite, ApiError> {
    let obj = object(body)?;
    Ok(PolicyWrite {
        id: string_field(&obj, "ID")?.unwrap_or_default(),
        name: string_field(&obj, "Name")?.unwrap_or_default(),
        description: string_field(&obj, "Description")?.unwrap_or_default(),
        rules: string_field(&obj, "Rules")?.unwrap_or_default(),
        datacenters: strings(&obj, "Datacenters")?,
    })
}

// ---- roles -------------------------------------------------------------------------------------

async fn create_role(
    State(ctx): State<Ctx>,
    authz: Authz,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    enabled(&ctx)?;
    authz.require_global(Resource::Acl, Access::Write)?;
    let params = Params::parse(query.as_deref());
    let body = read_body(&headers, body, MAX_BODY, too_large).await?;
    let mut role = role_write(&body)?;
    role.id = uuid();
    let applied = write(&ctx, AclOp::SetRole { role, create: true }).await?;
    role_answer(&ctx, applied, params.pretty())
}

fn role_answer(ctx: &Ctx, applied: AclApplied, pretty: bool) -> Result<Response, ApiError> {
    match applied {
        AclApplied::Role(role) => {
            let state = ctx.node.reader().state();
            Ok(render::json(&acl_wire::role(&state.acl, &role), pretty))
        }
        _ => Err(ApiError::Internal("role write made no role".into())),
    }
}

/// `GET|PUT|DELETE /v1/acl/role/:id`.
async fn role(
    State(ctx): State<Ctx>,
    authz: Authz,
    method: Method,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    enabled(&ctx)?;
    let params = Params::parse(query.as_deref());
    match method {
        Method::GET => {
            authz.require_global(Resource::Acl, Access::Read)?;
            read_one(&ctx, &params, |state| {
                (
                    state.acl.roles_index(),
                    state.acl.role(&id).map(|r| acl_wire::role(&state.acl, r)),
                )
            })
            .await
        }
        Method::PUT => {
            authz.require_global(Resource::Acl, Access::Write)?;
            let body = read_body(&headers, body, MAX_BODY, too_large).await?;
            let mut role = role_write(&body)?;
            if !role.id.is_empty() && role.id != id {
                return Err(ApiError::BadRequest(
                    "Role ID in URL and payload do not match".into(),
                ));
            }
            role.id = id;
            let applied = write(
                &ctx,
                AclOp::SetRole {
                    role,
                    create: false,
                },
            )
            .await?;
            role_answer(&ctx, applied, params.pretty())
        }
        _ => {
            authz.require_global(Resource::Acl, Access::Write)?;
            write(&ctx, AclOp::DeleteRole { id }).await?;
            Ok(render::json(&true, params.pretty()))
        }
    }
}

async fn role_by_name(
    State(ctx): State<Ctx>,
    authz: Authz,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    enabled(&ctx)?;
    authz.require_global(Resource::Acl, Access::Read)?;
    let params = Params::parse(query.as_deref());
    read_one(&ctx, &params, |state| {
        (
            state.acl.roles_index(),
            state
                .acl
                .role_by_name(&name)
                .map(|r| acl_wire::role(&state.acl, r)),
        )
    })
    .await
}

async fn roles(
    State(ctx): State<Ctx>,
    authz: Authz,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    enabled(&ctx)?;
    authz.require_global(Resource::Acl, Access::Read)?;
    let params = Params::parse(query.as_deref());
    let opts = ReadOptions::parse(&ctx, &params)?;
    let policy = params.get("policy").filter(|p| !p.is_empty());
    let (meta, list) = blocking::read(&ctx, &opts, Watch::Table(TABLE_ACL), |state| {
        let list: Vec<Value> = state
            .acl
            .roles()
            .filter(|r| policy.is_none_or(|p| r.policies.iter().any(|id| id == p)))
            .map(|r| acl_wire::role(&state.acl, r))
            .collect();
        (state.acl.roles_index(), list)
    })
    .await?;
    Ok(render::json_with_meta(&list, opts.pretty, &meta))
}

fn role_write(body: &[u8]) -> Result<RoleWrite, ApiError> {
    let obj = object(body)?;
    Ok(RoleWrite {
        id: string_field(&obj, "ID")?.unwrap_or_default(),
        name: string_field(&obj, "Name")?.unwrap_or_default(),
        description: string_field(&obj, "Description")?.unwrap_or_default(),
        policies: links(&obj, "Policies")?,
        service_identities: service_identities(&obj)?,
        node_identities: node_identities(&obj)?,
    })
}

// ---- shared ------------------------------------------------------------------------------------

/// One object read by ID or name: 403 `ACL not found` when there is none, as Consul answers.
async fn read_one(
    ctx: &Ctx,
    params: &Params,
    eval: impl Fn(&consensus::State) -> (u64, Option<Value>),
) -> Result<Response, ApiError> {
    let opts = ReadOptions::parse(ctx, params)?;
    let (meta, value) = blocking::read(ctx, &opts, Watch::Table(TABLE_ACL), eval).await?;
    let value = value.ok_or_else(not_found)?;
    Ok(render::json_with_meta(&value, opts.pretty, &meta))
}

fn too_large(len: u64) -> String {
    format!("Request body({len} bytes) too large, max size: {MAX_BODY} bytes")
}

fn object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match decode_body(body)? {
        Value::Object(obj) => Ok(obj),
        other => Err(ApiError::BadRequest(format!(
            "Request decode failed: expected an object, got {other}"
        ))),
    }
}

fn decode_error(name: &str, expected: &str, got: &Value) -> ApiError {
    ApiError::BadRequest(format!(
        "Request decode failed: field {name}: expected {expected}, got {got}"
    ))
}

fn bool_field(obj: &Map<String, Value>, name: &str) -> Result<bool, ApiError> {
    match field(obj, name) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(decode_error(name, "a boolean", other)),
    }
}

fn array<'a>(obj: &'a Map<String, Value>, name: &str) -> Result<&'a [Value], ApiError> {
    match field(obj, name) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(items)) => Ok(items),
        Some(other) => Err(decode_error(name, "a list", other)),
    }
}

fn item_object<'a>(name: &str, item: &'a Value) -> Result<&'a Map<String, Value>, ApiError> {
    item.as_object()
        .ok_or_else(|| decode_error(name, "a list of objects", item))
}

/// A list of strings; absent or `null` is empty.
fn strings(obj: &Map<String, Value>, name: &str) -> Result<Vec<String>, ApiError> {
    Ok(strings_field(obj, name)?.unwrap_or_default())
}

fn links(obj: &Map<String, Value>, name: &str) -> Result<Vec<Link>, ApiError> {
    array(obj, name)?
        .iter()
        .map(|item| {
            let link = item_object(name, item)?;
            Ok(Link {
                id: string_field(link, "ID")?.unwrap_or_default(),
                name: string_field(link, "Name")?.unwrap_or_default(),
            })
        })
        .collect()
}

fn service_identities(obj: &Map<String, Value>) -> Result<Vec<ServiceIdentity>, ApiError> {
    array(obj, "ServiceIdentities")?
        .iter()
        .map(|item| {
            let identity = item_object("ServiceIdentities", item)?;
            Ok(ServiceIdentity {
                service_name: string_field(identity, "ServiceName")?.unwrap_or_default(),
                datacenters: strings(identity, "Datacenters")?,
            })
        })
        .collect()
}

fn node_identities(obj: &Map<String, Value>) -> Result<Vec<NodeIdentity>, ApiError> {
    array(obj, "NodeIdentities")?
        .iter()
        .map(|item| {
            let identity = item_object("NodeIdentities", item)?;
            Ok(NodeIdentity {
                node_name: string_field(identity, "NodeName")?.unwrap_or_default(),
                datacenter: string_field(identity, "Datacenter")?.unwrap_or_default(),
            })
        })
        .collect()
}
