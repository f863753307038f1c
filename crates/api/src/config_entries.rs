//! `/v1/config*`: Consul's config entries of kinds `service-defaults` and `proxy-defaults`.
//! `PUT /v1/config` writes one (optionally check-and-set), `GET /v1/config/:kind[/:name]`
//! reads one or lists a kind (blocking on the config entries table), `DELETE
//! /v1/config/:kind/:name` removes one.
//!
//! The checks run in Consul's order with Consul's statuses: the HTTP handler's (path, kind,
//! body decoding, enterprise parameters: 400 and 404) here; the server's (`?cas`, datacenter,
//! normalization and validation: 500) here and in the `config-entries` crate, which a leader
//! runs before proposing so that a refused write never costs a raft entry. Any kind other than
//! the two is refused with Consul's `invalid config entry kind`.

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse, Response};
use config_entries::wire;
use config_entries::{ConfigEntries, ConfigEntryError, ConfigEntryOp, Kind};
use consensus::TABLE_CONFIG_ENTRIES;
use serde_json::json;

use crate::authz::Authz;
use crate::blocking::{self, Watch};
use go_text::quote as go_quote;

use crate::connect_intentions::reject_enterprise_meta;
use crate::error::ApiError;
use crate::kv::read_body;
use crate::params::{check_dc, Params, ReadOptions};
use crate::render;
use crate::Ctx;

/// A config entry is a few hundred bytes; large upstream override lists a few hundred KiB.
const MAX_BODY: usize = 4 * 1024 * 1024;

/// `PUT /v1/config[?cas=N]`: answers `true`, or `false` when the check-and-set did not hold.
pub async fn apply(
    State(ctx): State<Ctx>,
    authz: Authz,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref());
    let body = read_body(&headers, body, MAX_BODY, too_large).await?;
    let entry = wire::decode(&body)
        .map(Box::new)
        .map_err(|e| ApiError::BadRequest(format!("Request decoding failed: {e}")))?;
    reject_enterprise_meta(&params, &headers)?;
    require_write(&authz, entry.kind, &entry.name)?;
    let cas = cas(&params)?;
    check_dc(&ctx, &params)?;
    let done = write(&ctx, ConfigEntryOp::Upsert { entry, cas }).await?;
    Ok(render::json(&done, params.pretty()))
}

/// `GET /v1/config/` (every kind) and `DELETE /v1/config/` (refused).
pub async fn root(
    State(ctx): State<Ctx>,
    authz: Authz,
    method: Method,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref());
    if method == Method::DELETE {
        return Err(no_name_to_delete());
    }
    list(&ctx, &authz, &params, &headers, "").await
}

/// `GET /v1/config/:kind` (list) and `DELETE /v1/config/:kind` (refused: no name).
pub async fn kind(
    State(ctx): State<Ctx>,
    authz: Authz,
    method: Method,
    Path(kind): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref());
    if method == Method::DELETE {
        return Err(no_name_to_delete());
    }
    list(&ctx, &authz, &params, &headers, &kind).await
}

/// `GET|DELETE /v1/config/:kind/` (an empty name).
pub async fn empty_name(
    state: State<Ctx>,
    method: Method,
    Path(kind): Path<String>,
    query: RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    entry(state, method, Path((kind, String::new())), query, headers).await
}

/// `GET|DELETE /v1/config/:kind/:name`. The name is the rest of the path, slashes included,
/// as Consul splits it.
pub async fn entry(
    State(ctx): State<Ctx>,
    method: Method,
    Path((kind, name)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref());
    if method == Method::DELETE {
        delete(&ctx, &params, &headers, &kind, name).await
    } else {
        get(&ctx, &params, &headers, &kind, &name).await
    }
}

// ---- ACLs ------------------------------------------------------------------------------------

/// Consul's `CanRead` of an entry: `service:read` on a service-defaults' service; everyone
/// may read proxy-defaults.
fn readable(authz: &Authz, kind: &str, name: &str) -> bool {
    match kind {
        "service-defaults" => authz.allows(acl::Resource::Service, name, acl::Access::Read),
        _ => true,
    }
}

/// Consul's `CanWrite`: `service:write` on a service-defaults' service, `mesh:write` (or
/// `operator:write`) for proxy-defaults.
fn require_write(authz: &Authz, kind: Kind, name: &str) -> Result<(), ApiError> {
    match kind {
        Kind::ServiceDefaults => authz.require(acl::Resource::Service, name, acl::Access::Write),
        Kind::ProxyDefaults => authz.require_global(acl::Resource::Mesh, acl::Access::Write),
    }
}

// ---- reads -----------------------------------------------------------------------------------

async fn list(
    ctx: &Ctx,
    authz: &Authz,
    params: &Params,
    headers: &HeaderMap,
    kind: &str,
) -> Result<Response, ApiError> {
    let opts = ReadOptions::parse_query(ctx, params)?;
    reject_enterprise_meta(params, headers)?;
    check_dc(ctx, params)?;
    // An empty kind lists every kind; an unknown one is the RPC's refusal.
    let kind = match kind {
        "" => None,
        kind => Some(Kind::parse(kind).map_err(read_refused)?),
    };
    let (meta, mut body) =
        read(ctx, &opts, |entries| wire::entries_json(entries.list(kind))).await?;
    let mut filtered = false;
    if let serde_json::Value::Array(rows) = &mut body {
        let before = rows.len();
        rows.retain(|row| {
            readable(
                authz,
                row["Kind"].as_str().unwrap_or_default(),
                row["Name"].as_str().unwrap_or_default(),
            )
        });
        filtered = rows.len() != before;
    }
    let mut resp = render::json_with_meta(&body, opts.pretty, &meta);
    authz.mark_filtered(filtered, &mut resp);
    Ok(resp)
}

/// One entry. A missing one is a 404 that still carries `X-Consul-Index`, and a blocking read
/// of it waits like any other, so a client can wait for an entry to be created.
async fn get(
    ctx: &Ctx,
    params: &Params,
    headers: &HeaderMap,
    kind_text: &str,
    name: &str,
) -> Result<Response, ApiError> {
    let opts = ReadOptions::parse_query(ctx, params)?;
    reject_enterprise_meta(params, headers)?;
    check_dc(ctx, params)?;
    let kind = Kind::parse(kind_text).map_err(read_refused)?;
    let (meta, found) = read(ctx, &opts, |entries| {
        entries.get(kind, name).map(wire::entry_json)
    })
    .await?;
    match found {
        Some(entry) => Ok(render::json_with_meta(&entry, opts.pretty, &meta)),
        None => {
            let mut resp = ApiError::NotFound(wire::not_found(kind_text, name)).into_response();
            meta.apply(&mut resp);
            Ok(resp)
        }
    }
}

/// A read of the config entries, blocking on their table.
async fn read<T>(
    ctx: &Ctx,
    opts: &ReadOptions,
    eval: impl Fn(&ConfigEntries) -> T,
) -> Result<(render::QueryMeta, T), ApiError> {
    blocking::read(ctx, opts, Watch::Table(TABLE_CONFIG_ENTRIES), |state| {
        (state.config_entries.index(), eval(&state.config_entries))
    })
    .await
}

// ---- writes ----------------------------------------------------------------------------------

/// Answers `{}`, or with `?cas` whether the entry was deleted.
async fn delete(
    ctx: &Ctx,
    params: &Params,
    headers: &HeaderMap,
    kind: &str,
    name: String,
) -> Result<Response, ApiError> {
    let kind = Kind::parse(kind).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    reject_enterprise_meta(params, headers)?;
    let cas = cas(params)?;
    check_dc(ctx, params)?;
    let done = write(ctx, ConfigEntryOp::Delete { kind, name, cas }).await?;
    Ok(match cas {
        Some(_) => render::json(&done, params.pretty()),
        // Consul's answer to a plain delete, kept for its older clients.
        None => render::json(&json!({}), params.pretty()),
    })
}

/// Proposes a write and returns Consul's answer. The leader checks the write against its
/// state first; a follower forwards and lets the state machine refuse.
async fn write(ctx: &Ctx, op: ConfigEntryOp) -> Result<bool, ApiError> {
    if ctx.node.leader_view().is_leader {
        let valid = ctx.node.reader().state().config_entries.validate(&op);
        valid.map_err(write_refused)?;
    }
    let written = ctx
        .node
        .write(consensus::Op::ConfigEntry(Box::new(op)))
        .await?;
    match written.response {
        consensus::Response::ConfigEntry(Ok(done)) => Ok(done),
        consensus::Response::ConfigEntry(Err(err)) => Err(write_refused(err)),
        other => Err(ApiError::Internal(format!(
            "unexpected write result: {other:?}"
        ))),
    }
}

// ---- request checks ----------------------------------------------------------------------------

/// `?cas=N` (empty: none). Consul returns `strconv.ParseUint`'s error as is: a 500.
fn cas(params: &Params) -> Result<Option<u64>, ApiError> {
    let raw = match params.get("cas") {
        None | Some("") => return Ok(None),
        Some(raw) => raw,
    };
    let why = if !raw.bytes().all(|b| b.is_ascii_digit()) {
        "invalid syntax"
    } else {
        match raw.parse::<u64>() {
            Ok(cas) => return Ok(Some(cas)),
            Err(_) => "value out of range",
        }
    };
    Err(ApiError::Internal(format!(
        "strconv.ParseUint: parsing {}: {why}",
        go_quote(raw)
    )))
}

fn no_name_to_delete() -> ApiError {
    ApiError::NotFound("Must provide both a kind and name to delete".into())
}

/// A refusal by the server's RPC of a read: 500.
fn read_refused(err: ConfigEntryError) -> ApiError {
    ApiError::Internal(err.to_string())
}

/// A refused write with Consul's status.
fn write_refused(err: ConfigEntryError) -> ApiError {
    match err.write_status() {
        400 => ApiError::BadRequest(err.to_string()),
        _ => ApiError::Internal(err.to_string()),
    }
}

fn too_large(len: u64) -> String {
    format!("Request body({len} bytes) too large, max size: {MAX_BODY} bytes")
}
