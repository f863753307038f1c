//! The agent's own endpoints: `/v1/agent/services`, `/service/:id`, `/checks`,
//! `/service/register|deregister|maintenance`, `/maintenance`, `/check/*` and
//! `/health/service/id|name`. They read and change the local agent, never the servers
//! directly; anti-entropy carries the changes to the catalog.

use std::sync::Arc;

use acl::{Access, Resource};
use agent::definition::{CheckBody, ServiceBody};
use agent::{Agent, AgentError, Source};
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use catalog::wire as cw;
use catalog::{HealthCheck, Service, Status};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::authz::Authz;
use crate::catalog::{decode_failed, ListFilter};
use crate::error::ApiError;
use crate::health::parse_go_bool;
use crate::kv::read_body;
use crate::params::{Params, DEFAULT_WAIT, MAX_WAIT};
use crate::{methods, render};

const MAX_BODY: usize = 4 * 1024 * 1024;

/// What the agent endpoints share.
#[derive(Debug, Clone)]
pub struct LocalContext {
    pub agent: Agent,
    /// The agent's gossip membership.
    pub membership: agent::membership::Membership,
    /// User events fired and kept by this agent.
    pub events: agent::events::UserEvents,
    pub datacenter: String,
    /// Always pretty-print (`-dev`).
    pub dev: bool,
    /// `/v1/agent/metrics?format=prometheus` is on (`telemetry.prometheus_retention_time`).
    pub prometheus: bool,
    /// Connect's cache: CA roots, leaves of local services, intentions.
    pub connect: agent::connect::Connect,
    /// What the agent measures, for `/v1/agent/metrics`, and its log lines, for
    /// `/v1/agent/monitor`.
    pub telemetry: crate::Telemetry,
    /// ACL settings, sharing the agent's tokens with its enforcer and DNS.
    pub acl: crate::AclSettings,
}

type Ctx = Arc<LocalContext>;

/// The agent endpoints, with their state applied.
pub fn routes(ctx: LocalContext) -> Router {
    let members = crate::members::routes(ctx.membership.clone(), ctx.datacenter.clone(), ctx.dev)
        .merge(crate::events::routes(
            ctx.events.clone(),
            ctx.datacenter.clone(),
            ctx.dev,
        ))
        .merge(crate::agent_connect::routes(ctx.connect.clone(), ctx.dev))
        .merge(crate::metrics::routes(crate::metrics::Observed {
            telemetry: ctx.telemetry.clone(),
            local: Some(crate::metrics::LocalAgent {
                agent: ctx.agent.clone(),
                membership: ctx.membership.clone(),
            }),
            prometheus: ctx.prometheus,
            dev: ctx.dev,
        }));
    let ctx = Arc::new(ctx);
    let put = &[Method::PUT];
    let get = &[Method::GET];
    Router::new()
        .route("/v1/agent/services", methods(get, services))
        .route("/v1/agent/service/{id}", methods(get, service))
        .route("/v1/agent/checks", methods(get, checks))
        .route("/v1/agent/service/register", methods(put, register_service))
        .route(
            "/v1/agent/service/deregister/{id}",
            methods(put, deregister_service),
        )
        .route(
            "/v1/agent/service/maintenance/{id}",
            methods(put, service_maintenance),
        )
        .route("/v1/agent/maintenance", methods(put, node_maintenance))
        .route("/v1/agent/check/register", methods(put, register_check))
        .route(
            "/v1/agent/check/deregister/{id}",
            methods(put, deregister_check),
        )
        .route("/v1/agent/check/pass/{id}", methods(put, check_pass))
        .route("/v1/agent/check/warn/{id}", methods(put, check_warn))
        .route("/v1/agent/check/fail/{id}", methods(put, check_fail))
        .route("/v1/agent/check/update/{id}", methods(put, check_update))
        .route(
            "/v1/agent/health/service/id/{id}",
            methods(get, health_by_id),
        )
        .route(
            "/v1/agent/health/service/name/{name}",
            methods(get, health_by_name),
        )
        .route("/v1/agent/leave", methods(put, leave))
        .route("/v1/agent/token/{kind}", methods(put, agent_token))
        .route("/v1/agent/reload", methods(put, reload))
        .with_state(ctx)
        .merge(members)
}

impl From<AgentError> for ApiError {
    fn from(err: AgentError) -> Self {
        match err {
            AgentError::Invalid(text) => ApiError::BadRequest(text),
            AgentError::NotFound(text) => ApiError::NotFound(text),
            AgentError::Internal(text) => ApiError::Internal(text),
        }
    }
}

/// An `AgentService`: a `NodeService` without raft indexes, with the datacenter.
fn agent_service(s: &Service, datacenter: &str) -> Value {
    let mut v = cw::node_service(s);
    if let Value::Object(map) = &mut v {
        map.remove("CreateIndex");
        map.remove("ModifyIndex");
        map.remove("PeerName");
        if s.kind != "connect-proxy" {
            map.remove("Proxy");
        }
        if !s.connect_native {
            map.remove("Connect");
        }
        map.insert("Datacenter".into(), json!(datacenter));
    }
    v
}

fn pretty(ctx: &Ctx, params: &Params) -> bool {
    ctx.dev || params.pretty()
}

async fn services(
    State(ctx): State<Ctx>,
    authz: Authz,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(q.as_deref());
    let list = ListFilter::parse(&params)?;
    let mut services = ctx.agent.services();
    services.sort_by(|a, b| a.id.cmp(&b.id));
    let filtered = authz.filter(&mut services, Resource::Service, Access::Read, |s| {
        &s.service
    });
    let out: Map<String, Value> = services
        .iter()
        .map(|s| (s.id.clone(), agent_service(s, &ctx.datacenter)))
        .filter(|(_, v)| list.filter_matches(v))
        .collect();
    let mut resp = render::json(&out, pretty(&ctx, &params));
    authz.mark_filtered(filtered, &mut resp);
    Ok(resp)
}

/// What changing or reading a local service needs: its name's `service:<access>`. An unknown
/// ID passes, so that the handler answers it as it always does.
fn require_service(ctx: &Ctx, authz: &Authz, id: &str, access: Access) -> Result<(), ApiError> {
    match ctx.agent.service(id) {
        Some(service) => authz.require(Resource::Service, &service.service, access),
        None => Ok(()),
    }
}

/// What writing to a local check needs: its service's `service:write`, or for a node check
/// the node's `node:write`. An unknown ID passes, as [`require_service`].
fn require_check_write(ctx: &Ctx, authz: &Authz, id: &str) -> Result<(), ApiError> {
    let checks = ctx.agent.checks();
    let Some(check) = checks.iter().find(|c| c.check_id == id) else {
        return Ok(());
    };
    if check.service_name.is_empty() {
        authz.require(Resource::Node, &check.node, Access::Write)
    } else {
        authz.require(Resource::Service, &check.service_name, Access::Write)
    }
}

/// What registering a service needs, as Consul's `vetServiceRegister`: `service:write` on its
/// name, on its sidecar's, and for a proxy on the service it stands for.
fn require_service_register(authz: &Authz, def: &ServiceBody) -> Result<(), ApiError> {
    authz.require(Resource::Service, &def.name, Access::Write)?;
    if let Some(destination) = def
        .proxy
        .as_ref()
        .map(|p| p.destination_service_name.as_str())
        .filter(|d| !d.is_empty())
    {
        authz.require(Resource::Service, destination, Access::Write)?;
    }
    if let Some(sidecar) = def
        .connect
        .as_ref()
        .and_then(|c| c.sidecar_service.as_ref())
    {
        let name = if sidecar.name.is_empty() {
            format!("{}-sidecar-proxy", def.name)
        } else {
            sidecar.name.clone()
        };
        authz.require(Resource::Service, &name, Access::Write)?;
    }
    Ok(())
}

/// A stable hash of what a service looks like, for `?hash=` blocking.
fn content_hash(v: &Value) -> String {
    // FNV-1a over the JSON text: stable across runs, which std's hasher is not.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in v.to_string().bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

async fn service(
    State(ctx): State<Ctx>,
    authz: Authz,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    require_service(&ctx, &authz, &id, Access::Read)?;
    let params = Params::parse(q.as_deref());
    let wait = match params.get("wait") {
        None | Some("") => DEFAULT_WAIT,
        Some(raw) => config::parse_go_duration(raw)
            .map_err(|_| ApiError::BadRequest("Invalid wait time".into()))?
            .min(MAX_WAIT),
    };
    let wanted = params
        .get("hash")
        .filter(|h| !h.is_empty())
        .map(str::to_owned);
    let mut changes = ctx.agent.watch_changes();
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        changes.borrow_and_update();
        let Some(service) = ctx.agent.service(&id) else {
            return Err(ApiError::NotFound(format!("unknown service ID: {id}")));
        };
        let mut body = agent_service(&service, &ctx.datacenter);
        let hash = content_hash(&body);
        if let Value::Object(map) = &mut body {
            map.insert("ContentHash".into(), json!(hash));
        }
        let unchanged = wanted.as_deref() == Some(hash.as_str());
        if unchanged && tokio::time::Instant::now() < deadline {
            tokio::select! {
                _ = changes.changed() => continue,
                () = tokio::time::sleep_until(deadline) => {}
            }
        }
        let mut resp = render::json(&body, pretty(&ctx, &params));
        if let Ok(value) = HeaderValue::from_str(&hash) {
            resp.headers_mut().insert("X-Consul-ContentHash", value);
        }
        return Ok(resp);
    }
}

async fn checks(
    State(ctx): State<Ctx>,
    authz: Authz,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(q.as_deref());
    let list = ListFilter::parse(&params)?;
    let mut checks = ctx.agent.checks();
    let before = checks.len();
    checks.retain(|c| {
        if c.service_name.is_empty() {
            authz.allows(Resource::Node, &c.node, Access::Read)
        } else {
            authz.allows(Resource::Service, &c.service_name, Access::Read)
        }
    });
    let filtered = checks.len() != before;
    let out: Map<String, Value> = checks
        .iter()
        .map(|c| (c.check_id.clone(), local_check(c)))
        .filter(|(_, v)| list.filter_matches(v))
        .collect();
    let mut resp = render::json(&out, pretty(&ctx, &params));
    authz.mark_filtered(filtered, &mut resp);
    Ok(resp)
}

/// A local check as the agent shows it: no raft indexes.
fn local_check(c: &HealthCheck) -> Value {
    let mut v = cw::check(c);
    if let Value::Object(map) = &mut v {
        map.remove("CreateIndex");
        map.remove("ModifyIndex");
    }
    v
}

async fn body_of(headers: &HeaderMap, body: Body) -> Result<axum::body::Bytes, ApiError> {
    read_body(headers, body, MAX_BODY, |len| {
        format!("Request body({len} bytes) too large, max size: {MAX_BODY} bytes")
    })
    .await
}

async fn register_service(
    State(ctx): State<Ctx>,
    authz: Authz,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let params = Params::parse(q.as_deref());
    let replace = match params.get("replace-existing-checks") {
        None => false,
        Some(raw) => parse_go_bool(raw).ok_or_else(|| {
            ApiError::BadRequest("Invalid value for ?replace-existing-checks".into())
        })?,
    };
    let bytes = body_of(&headers, body).await?;
    let def: ServiceBody = cw::decode(&bytes).map_err(decode_failed)?;
    require_service_register(&authz, &def)?;
    ctx.agent.register_service(def, replace, Source::Api)?;
    Ok(StatusCode::OK.into_response())
}

async fn deregister_service(
    State(ctx): State<Ctx>,
    authz: Authz,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    require_service(&ctx, &authz, &id, Access::Write)?;
    ctx.agent.deregister_service(&id);
    Ok(StatusCode::OK.into_response())
}

/// `?enable=` (required, a Go bool) and `?reason=`.
fn maintenance_params(params: &Params) -> Result<(bool, String), ApiError> {
    let enable = match params.get("enable") {
        None | Some("") => return Err(ApiError::BadRequest("Missing value for enable".into())),
        Some(raw) => parse_go_bool(raw)
            .ok_or_else(|| ApiError::BadRequest(format!("Invalid value for enable: {raw:?}")))?,
    };
    Ok((enable, params.get("reason").unwrap_or_default().to_owned()))
}

async fn service_maintenance(
    State(ctx): State<Ctx>,
    authz: Authz,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let (enable, reason) = maintenance_params(&Params::parse(q.as_deref()))?;
    require_service(&ctx, &authz, &id, Access::Write)?;
    ctx.agent.service_maintenance(&id, enable, &reason)?;
    Ok(StatusCode::OK.into_response())
}

async fn node_maintenance(
    State(ctx): State<Ctx>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let (enable, reason) = maintenance_params(&Params::parse(q.as_deref()))?;
    ctx.agent.node_maintenance(enable, &reason);
    Ok(StatusCode::OK.into_response())
}

async fn register_check(
    State(ctx): State<Ctx>,
    authz: Authz,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let bytes = body_of(&headers, body).await?;
    let def: CheckBody = cw::decode(&bytes).map_err(decode_failed)?;
    if def.service_id.is_empty() {
        authz.require(Resource::Node, &ctx.agent.node().name, Access::Write)?;
    } else {
        require_service(&ctx, &authz, &def.service_id, Access::Write)?;
    }
    if def.name.is_empty() {
        return Err(ApiError::BadRequest("Missing check name".into()));
    }
    if !def.status.is_empty() && Status::parse(&def.status).is_none() {
        return Err(ApiError::BadRequest("Bad check status".into()));
    }
    ctx.agent.register_check(def, Source::Api)?;
    Ok(StatusCode::OK.into_response())
}

async fn deregister_check(
    State(ctx): State<Ctx>,
    authz: Authz,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    require_check_write(&ctx, &authz, &id)?;
    ctx.agent.deregister_check(&id);
    Ok(StatusCode::OK.into_response())
}

async fn ttl(
    ctx: Ctx,
    authz: Authz,
    id: String,
    q: Option<String>,
    status: Status,
) -> Result<Response, ApiError> {
    require_check_write(&ctx, &authz, &id)?;
    let params = Params::parse(q.as_deref());
    let note = params.get("note").unwrap_or_default();
    ctx.agent.ttl_update(&id, status, note)?;
    Ok(StatusCode::OK.into_response())
}

async fn check_pass(
    State(ctx): State<Ctx>,
    authz: Authz,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    ttl(ctx, authz, id, q, Status::Passing).await
}

async fn check_warn(
    State(ctx): State<Ctx>,
    authz: Authz,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    ttl(ctx, authz, id, q, Status::Warning).await
}

async fn check_fail(
    State(ctx): State<Ctx>,
    authz: Authz,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    ttl(ctx, authz, id, q, Status::Critical).await
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct UpdateBody {
    status: String,
    output: String,
}

async fn check_update(
    State(ctx): State<Ctx>,
    authz: Authz,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    require_check_write(&ctx, &authz, &id)?;
    let bytes = body_of(&headers, body).await?;
    let update: UpdateBody = cw::decode(&bytes).map_err(decode_failed)?;
    let status = Status::parse(&update.status).ok_or_else(|| {
        ApiError::BadRequest(format!("Invalid check status: '{}'", update.status))
    })?;
    ctx.agent.ttl_update(&id, status, &update.output)?;
    Ok(StatusCode::OK.into_response())
}

/// `PUT /v1/agent/token/:type` with `{"Token": "..."}`: changes a token the agent uses itself,
/// kept in `data_dir` with `acl.enable_token_persistence`. `default` is the token of requests
/// that carry none, `agent` the one of its own requests to servers, `dns` the one DNS answers
/// with. 401 `ACL support disabled` with ACLs off.
async fn agent_token(
    State(ctx): State<Ctx>,
    Path(kind): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    if !ctx.acl.enabled {
        return Err(ApiError::Unauthorized("ACL support disabled".into()));
    }
    let bytes = body_of(&headers, body).await?;
    let body = crate::wire::decode_body(if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        &bytes
    })?;
    let token = match &body {
        Value::Object(obj) => crate::wire::string_field(obj, "Token")?,
        _ => None,
    }
    .filter(|t| !t.is_empty());
    let set: fn(&crate::AgentTokens, Option<String>) = match kind.as_str() {
        "default" | "acl_token" => crate::AgentTokens::set_default,
        "agent" | "acl_agent_token" => crate::AgentTokens::set_agent,
        "dns" => crate::AgentTokens::set_dns,
        "agent_recovery"
        | "agent_master"
        | "acl_agent_master_token"
        | "replication"
        | "acl_replication_token"
        | "config_file_service_registration" => {
            return Err(ApiError::BadRequest(format!(
                "Token type {kind:?} is not supported by this agent yet"
            )))
        }
        _ => return Err(ApiError::NotFound(format!("Token {kind:?} is unknown"))),
    };
    ctx.acl
        .tokens
        .set_and_keep(|tokens| set(tokens, token))
        .map_err(|err| ApiError::Internal(format!("Failed to persist tokens - {err}")))?;
    Ok(StatusCode::OK.into_response())
}

/// `PUT /v1/agent/leave`: 200 once the node is out of the catalog; the process then exits.
/// `PUT /v1/agent/reload`: 200 with an empty body, or a 500 naming what failed to load.
async fn reload(State(ctx): State<Ctx>) -> Result<Response, ApiError> {
    ctx.agent.reload()?;
    Ok(StatusCode::OK.into_response())
}

async fn leave(State(ctx): State<Ctx>) -> Result<Response, ApiError> {
    ctx.membership.leave_datacenter(&ctx.agent).await?;
    Ok(StatusCode::OK.into_response())
}

/// A service's local health: `maintenance` beats `critical` beats `warning`.
fn aggregated(service: &Service, checks: &[HealthCheck]) -> (&'static str, Vec<Value>) {
    let mine: Vec<&HealthCheck> = checks
        .iter()
        .filter(|c| c.service_id == service.id || c.service_id.is_empty())
        .collect();
    let maintenance = mine.iter().any(|c| c.check_type == "maintenance");
    let status = if maintenance {
        "maintenance"
    } else {
        catalog::aggregate(mine.iter().map(|c| c.status)).as_str()
    };
    (status, mine.into_iter().map(local_check).collect())
}

fn status_code(status: &str) -> StatusCode {
    match status {
        "passing" => StatusCode::OK,
        "warning" => StatusCode::TOO_MANY_REQUESTS,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    }
}

fn wants_text(params: &Params, headers: &HeaderMap) -> bool {
    params.get("format") == Some("text")
        || headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/plain"))
}

fn text(code: StatusCode, body: String) -> Response {
    (code, [(header::CONTENT_TYPE, "text/plain")], body).into_response()
}

async fn health_by_id(
    State(ctx): State<Ctx>,
    authz: Authz,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    require_service(&ctx, &authz, &id, Access::Read)?;
    let params = Params::parse(q.as_deref());
    let as_text = wants_text(&params, &headers);
    let Some(service) = ctx.agent.service(&id) else {
        return Ok(text(
            StatusCode::NOT_FOUND,
            format!("ServiceId {id} not found"),
        ));
    };
    let checks = ctx.agent.checks();
    let (status, checks) = aggregated(&service, &checks);
    let code = status_code(status);
    if as_text {
        return Ok(text(code, status.to_owned()));
    }
    let body = json!({
        "AggregatedStatus": status,
        "Service": agent_service(&service, &ctx.datacenter),
        "Checks": checks,
    });
    let mut resp = render::json(&body, pretty(&ctx, &params));
    *resp.status_mut() = code;
    Ok(resp)
}

async fn health_by_name(
    State(ctx): State<Ctx>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let params = Params::parse(q.as_deref());
    let as_text = wants_text(&params, &headers);
    let mut services: Vec<Service> = ctx
        .agent
        .services()
        .into_iter()
        .filter(|s| s.service == name)
        .collect();
    services.sort_by(|a, b| a.id.cmp(&b.id));
    if services.is_empty() {
        return Ok(text(
            StatusCode::NOT_FOUND,
            format!("ServiceName {name} Not Found"),
        ));
    }
    let checks = ctx.agent.checks();
    let rank = |s: &str| match s {
        "passing" => 0,
        "warning" => 1,
        "critical" => 2,
        _ => 3,
    };
    let mut worst = "passing";
    let mut rows = Vec::new();
    for service in &services {
        let (status, checks) = aggregated(service, &checks);
        if rank(status) > rank(worst) {
            worst = status;
        }
        rows.push(json!({
            "AggregatedStatus": status,
            "Service": agent_service(service, &ctx.datacenter),
            "Checks": checks,
        }));
    }
    let code = status_code(worst);
    if as_text {
        return Ok(text(code, worst.to_owned()));
    }
    let mut resp = render::json(&rows, pretty(&ctx, &params));
    *resp.status_mut() = code;
    Ok(resp)
}
