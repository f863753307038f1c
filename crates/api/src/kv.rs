//! `/v1/kv/*`: reads (single, `?recurse`, `?keys`, `?raw`), writes (`?flags`, `?cas`,
//! `?acquire`, `?release`) and deletes (`?recurse`, `?cas`).

use acl::{Access, Resource};
use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use consensus::{Op, Response as Applied};
use http_body_util::BodyExt;

use crate::authz::Authz;
use crate::blocking::{self, Watch};
use crate::error::ApiError;
use crate::params::{check_dc, Params, ReadOptions};
use crate::render;
use crate::wire;
use crate::Ctx;

pub async fn root(
    State(ctx): State<Ctx>,
    authz: Authz,
    method: Method,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    dispatch(ctx, authz, method, String::new(), query, headers, body).await
}

pub async fn handle(
    State(ctx): State<Ctx>,
    authz: Authz,
    method: Method,
    Path(key): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    dispatch(ctx, authz, method, key, query, headers, body).await
}

async fn dispatch(
    ctx: Ctx,
    authz: Authz,
    method: Method,
    key: String,
    query: Option<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref());
    // Consul parses the read options of every KV request, writes included, before anything
    // else: `PUT ?index=abc` is a 400, not a write.
    ReadOptions::parse_query(&ctx, &params)?;
    match method {
        Method::GET if params.has("keys") => get_keys(&ctx, &authz, &key, &params).await,
        Method::GET => get(&ctx, &authz, &key, &params).await,
        Method::PUT => put(&ctx, key, &params, &headers, body).await,
        Method::DELETE => delete(&ctx, key, &params).await,
        other => Err(ApiError::MethodNotAllowed {
            method: other.to_string(),
            allow: "OPTIONS,GET,PUT,DELETE".into(),
        }),
    }
}

async fn get(ctx: &Ctx, authz: &Authz, key: &str, params: &Params) -> Result<Response, ApiError> {
    let recurse = params.has("recurse");
    if !recurse && key.is_empty() {
        return Err(ApiError::BadRequest("Missing key name".into()));
    }
    let opts = ReadOptions::parse(ctx, params)?;
    // The middleware checked a single key; a listing keeps what the token may read.
    let mut filtered = false;
    let (meta, entries) = if recurse {
        let (meta, mut entries) = blocking::read(ctx, &opts, Watch::Prefix(key), |state| {
            let entries: Vec<kv::DirEntry> = state.kv.list(key).into_iter().cloned().collect();
            (state.kv.prefix_index(key), entries)
        })
        .await?;
        filtered = authz.filter(&mut entries, Resource::Key, Access::Read, |e| &e.key);
        (meta, entries)
    } else {
        blocking::read(ctx, &opts, Watch::Key(key), |state| {
            let entries: Vec<kv::DirEntry> = state.kv.get(key).into_iter().cloned().collect();
            (state.kv.key_index(key), entries)
        })
        .await?
    };
    if entries.is_empty() {
        let mut resp = render::empty_with_meta(StatusCode::NOT_FOUND, &meta);
        authz.mark_filtered(filtered, &mut resp);
        return Ok(resp);
    }
    if params.has("raw") && !recurse {
        let value = entries[0].value.clone();
        let mut resp = (
            [
                (header::CONTENT_TYPE, "text/plain"),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                (header::CONTENT_SECURITY_POLICY, "sandbox"),
            ],
            value,
        )
            .into_response();
        meta.apply(&mut resp);
        return Ok(resp);
    }
    let wire: Vec<wire::DirEntry> = entries.iter().map(wire::DirEntry::new).collect();
    let mut resp = render::json_with_meta(&wire, opts.pretty, &meta);
    authz.mark_filtered(filtered, &mut resp);
    Ok(resp)
}

async fn get_keys(
    ctx: &Ctx,
    authz: &Authz,
    prefix: &str,
    params: &Params,
) -> Result<Response, ApiError> {
    let opts = ReadOptions::parse(ctx, params)?;
    // Consul still honours its historic misspelling; the correct one wins when both are given.
    let separator = params
        .get("separator")
        .or_else(|| params.get("seperator"))
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    let (meta, keys) = blocking::read(ctx, &opts, Watch::Prefix(prefix), |state| {
        (
            state.kv.prefix_index(prefix),
            state.kv.keys(prefix, separator.as_deref()),
        )
    })
    .await?;
    let mut keys = keys;
    let filtered = authz.filter(&mut keys, Resource::Key, Access::Read, |k| k.as_str());
    let mut resp = if keys.is_empty() && !prefix.is_empty() {
        render::empty_with_meta(StatusCode::NOT_FOUND, &meta)
    } else {
        render::json_with_meta(&keys, opts.pretty, &meta)
    };
    authz.mark_filtered(filtered, &mut resp);
    Ok(resp)
}

/// Reads a request body of at most `max` bytes, answering Consul's 413 otherwise.
pub(crate) async fn read_body(
    headers: &HeaderMap,
    body: Body,
    max: usize,
    too_large: impl Fn(u64) -> String,
) -> Result<Bytes, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(len) = declared {
        if len > max as u64 {
            return Err(ApiError::TooLarge(too_large(len)));
        }
    }
    let limited = http_body_util::Limited::new(body, max);
    match limited.collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err) if err.is::<http_body_util::LengthLimitError>() => {
            Err(ApiError::TooLarge(too_large(max as u64 + 1)))
        }
        Err(err) => Err(ApiError::BadRequest(format!(
            "Request body read failed: {err}"
        ))),
    }
}

async fn put(
    ctx: &Ctx,
    key: String,
    params: &Params,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    check_dc(ctx, params)?;
    if key.is_empty() {
        return Err(ApiError::BadRequest("Missing key name".into()));
    }
    params.at_most_one_of(&["cas", "acquire", "release"])?;
    let flags = params.u64("flags")?.unwrap_or(0);
    let cas = params.u64("cas")?;
    let max = ctx.kv_max_value_size;
    let value = read_body(headers, body, max, |len| {
        format!(
            "Request body({len} bytes) too large, max size: {max} bytes. See https://developer.hashicorp.com/docs/agent/config/config-files#kv_max_value_size."
        )
    })
    .await?
    .to_vec();
    let op = if let Some(index) = cas {
        kv::KvOp::Cas {
            key,
            value,
            flags,
            index,
        }
    } else if let Some(session) = params.get("acquire") {
        kv::KvOp::Acquire {
            key,
            value,
            flags,
            session: session.to_owned(),
        }
    } else if let Some(session) = params.get("release") {
        kv::KvOp::Release {
            key,
            value,
            flags,
            session: session.to_owned(),
        }
    } else {
        kv::KvOp::Set { key, value, flags }
    };
    write_bool(ctx, Op::Kv(op), params.pretty()).await
}

async fn delete(ctx: &Ctx, key: String, params: &Params) -> Result<Response, ApiError> {
    check_dc(ctx, params)?;
    params.at_most_one_of(&["recurse", "cas"])?;
    let op = if params.has("recurse") {
        kv::KvOp::DeleteTree { prefix: key }
    } else if key.is_empty() {
        return Err(ApiError::BadRequest("Missing key name".into()));
    } else if let Some(index) = params.u64("cas")? {
        kv::KvOp::DeleteCas { key, index }
    } else {
        kv::KvOp::Delete { key }
    };
    write_bool(ctx, Op::Kv(op), params.pretty()).await
}

/// Proposes a write whose answer is Consul's `true`/`false`.
pub(crate) async fn write_bool(ctx: &Ctx, op: Op, pretty: bool) -> Result<Response, ApiError> {
    let written = ctx.node.write(op).await?;
    match written.response {
        Applied::Bool(done) => Ok(render::json(&done, pretty)),
        Applied::Rejected(reason) => Err(ApiError::Internal(reason)),
        other => Err(ApiError::Internal(format!(
            "unexpected write result: {other:?}"
        ))),
    }
}
