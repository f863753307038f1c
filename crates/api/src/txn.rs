//! `PUT /v1/txn`: atomic multi-key KV transactions. All-read transactions are served like
//! reads (honouring `?stale`/`?consistent`); anything with a write goes through raft.

use std::str::FromStr;

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Map, Value};

use consensus::{Op, Response as Applied};

use crate::authz::Authz;
use crate::blocking;
use crate::error::ApiError;
use crate::kv::read_body;
use crate::params::{check_dc, Params, ReadOptions};
use crate::render;
use crate::wire::{self, field, string_field, u64_field};
use crate::Ctx;

/// Consul's current limit on operations per transaction.
pub const MAX_TXN_OPS: usize = 128;

/// Consul's `vetTxnOp` for a KV op: reads are filtered on the way out, checks need
/// `key:read`, writes `key:write`, a tree delete write on the whole prefix. The refusal is
/// Consul's bare `Permission denied`, in the op's error.
fn vet(authz: &Authz, op: &kv::TxnKvOp) -> Result<(), &'static str> {
    use acl::{Access, Resource};
    use kv::TxnVerb::*;
    let Some(authorizer) = authz.authorizer() else {
        return Ok(());
    };
    let allowed = match op.verb {
        Get | GetTree | GetOrEmpty => true,
        CheckIndex | CheckSession | CheckNotExists => {
            authorizer.allows(Resource::Key, &op.key, Access::Read)
        }
        DeleteTree => authorizer.allows_key_write_prefix(&op.key),
        Set | Cas | Lock | Unlock | Delete | DeleteCas => {
            authorizer.allows(Resource::Key, &op.key, Access::Write)
        }
    };
    if allowed {
        Ok(())
    } else {
        Err("Permission denied")
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct TxnResponse<'a> {
    results: Option<Vec<KvResult<'a>>>,
    errors: Option<Vec<TxnErrorJson<'a>>>,
}

#[derive(Serialize)]
struct KvResult<'a> {
    #[serde(rename = "KV")]
    kv: wire::DirEntry<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct TxnErrorJson<'a> {
    op_index: usize,
    what: &'a str,
}

fn parse_error(what: impl std::fmt::Display) -> ApiError {
    ApiError::BadRequest(format!("Failed to parse body: {what}"))
}

pub async fn apply(
    State(ctx): State<Ctx>,
    authz: Authz,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref());
    check_dc(&ctx, &params)?;
    let max_len = ctx.txn_max_req_len.max(ctx.kv_max_value_size);
    let body = read_body(&headers, body, max_len, |_| {
        format!("Request body too large, max size: {max_len} bytes")
    })
    .await?;
    let parsed = parse_ops(&ctx, &body)?;
    let verb_errors: Vec<kv::TxnError> = parsed
        .iter()
        .enumerate()
        .filter_map(|(op_index, op)| match op {
            Err(err) => Some(err.clone()),
            Ok(op) => vet(&authz, op).err().map(|what| kv::TxnError {
                op_index,
                what: what.to_owned(),
            }),
        })
        .collect();
    let ops: Vec<kv::TxnKvOp> = parsed.into_iter().filter_map(Result::ok).collect();
    let writes = ops.iter().any(|op| op.verb.is_write());
    let (result, meta) = if !verb_errors.is_empty() {
        // Consul reports an unknown verb as a rolled-back transaction, not a decode error.
        (Err(verb_errors), None)
    } else if writes {
        let written = ctx.node.write(Op::Txn(ops)).await?;
        match written.response {
            Applied::Txn(result) => (result, None),
            Applied::Rejected(reason) => return Err(ApiError::Internal(reason)),
            other => {
                return Err(ApiError::Internal(format!(
                    "unexpected write result: {other:?}"
                )))
            }
        }
    } else {
        let opts = ReadOptions::parse(&ctx, &params)?;
        blocking::barrier(&ctx, opts.consistency).await?;
        let result = ctx.node.reader().state().kv.read_txn(&ops);
        let index = ctx.node.reader().last_applied_index();
        (result, Some(blocking::meta(&ctx, index, opts.consistency)))
    };
    let pretty = params.pretty() || ctx.agent.dev;
    let mut resp = match &result {
        Ok(results) => render::json(
            &TxnResponse {
                results: Some(
                    results
                        .iter()
                        .filter(|kv::TxnResult::Entry(e)| {
                            authz.allows(acl::Resource::Key, &e.key, acl::Access::Read)
                        })
                        .map(|kv::TxnResult::Entry(e)| KvResult {
                            kv: wire::DirEntry::new(e),
                        })
                        .collect(),
                ),
                errors: None,
            },
            pretty,
        ),
        Err(errors) => {
            let body = TxnResponse {
                results: None,
                errors: Some(
                    errors
                        .iter()
                        .map(|e| TxnErrorJson {
                            op_index: e.op_index,
                            what: &e.what,
                        })
                        .collect(),
                ),
            };
            (StatusCode::CONFLICT, render::json(&body, pretty)).into_response()
        }
    };
    if let Some(meta) = meta {
        // Read-only transactions do not block, but report leadership like other reads.
        meta.apply(&mut resp);
        resp.headers_mut().remove("X-Consul-Index");
    }
    Ok(resp)
}

/// Decodes the operations. An operation with an unknown verb becomes its `TxnError`.
type ParsedOp = Result<kv::TxnKvOp, kv::TxnError>;

fn parse_ops(ctx: &Ctx, body: &[u8]) -> Result<Vec<ParsedOp>, ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(parse_error)?;
    let items = match value {
        Value::Array(items) => items,
        Value::Null => Vec::new(),
        other => {
            return Err(parse_error(format!(
                "expected a list of operations, got {other}"
            )))
        }
    };
    if items.len() > MAX_TXN_OPS {
        return Err(ApiError::TooLarge(format!(
            "Transaction contains too many operations ({} > {MAX_TXN_OPS})",
            items.len()
        )));
    }
    items
        .iter()
        .enumerate()
        .map(|(op_index, item)| {
            let obj = item
                .as_object()
                .ok_or_else(|| parse_error(format!("expected an operation object, got {item}")))?;
            match field(obj, "KV") {
                Some(Value::Object(op)) => parse_kv_op(ctx, op, op_index),
                _ => {
                    let kind = obj.keys().next().map_or("empty", String::as_str);
                    Err(ApiError::BadRequest(format!(
                        "Transaction operation {kind:?} is not supported yet: only KV operations are"
                    )))
                }
            }
        })
        .collect()
}

fn parse_kv_op(ctx: &Ctx, op: &Map<String, Value>, op_index: usize) -> Result<ParsedOp, ApiError> {
    let key = string_field(op, "Key")?.unwrap_or_default();
    let verb_text = string_field(op, "Verb")?.unwrap_or_default();
    let verb = match kv::TxnVerb::from_str(&verb_text) {
        Ok(verb) => verb,
        Err(err) => {
            return Ok(Err(kv::TxnError {
                op_index,
                what: err.to_string(),
            }))
        }
    };
    let value = match string_field(op, "Value")? {
        None => Vec::new(),
        Some(encoded) => wire::decode_base64(&encoded)
            .map_err(|err| parse_error(format!("failed to decode value: {err}")))?,
    };
    if value.len() > ctx.kv_max_value_size {
        return Err(ApiError::TooLarge(format!(
            "Value for key {key:?} is too large ({} > {} bytes)",
            value.len(),
            ctx.kv_max_value_size
        )));
    }
    Ok(Ok(kv::TxnKvOp {
        verb,
        key,
        value,
        flags: u64_field(op, "Flags")?.unwrap_or(0),
        index: u64_field(op, "Index")?.unwrap_or(0),
        session: string_field(op, "Session")?.unwrap_or_default(),
    }))
}
