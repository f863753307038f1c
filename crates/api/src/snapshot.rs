//! `GET /v1/snapshot` saves the whole replicated state as a checksummed, compressed archive;
//! `PUT /v1/snapshot` restores one through raft, so every server replaces its state at the same
//! log index and every blocking query returns.

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use consensus::Op;

use crate::blocking;
use crate::error::ApiError;
use crate::kv::read_body;
use crate::params::{check_dc, Params, ReadOptions};
use crate::Ctx;

/// The largest archive a restore accepts.
const MAX_ARCHIVE: usize = 256 << 20;

pub async fn handle(
    State(ctx): State<Ctx>,
    method: Method,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref());
    if method == Method::PUT {
        restore(&ctx, &params, &headers, body).await
    } else {
        save(&ctx, &params).await
    }
}

async fn save(ctx: &Ctx, params: &Params) -> Result<Response, ApiError> {
    let opts = ReadOptions::parse(ctx, params)?;
    blocking::barrier(ctx, opts.consistency).await?;
    let (state, index, term) = {
        let guard = ctx.node.reader().state();
        let metrics = ctx.node.raft().metrics().borrow().clone();
        let applied = metrics.last_applied;
        (
            (*guard).clone(),
            applied.map_or(0, |id| id.index),
            applied.map_or(0, |id| id.leader_id.term),
        )
    };
    let meta = consensus::ArchiveMeta {
        version: consensus::ARCHIVE_VERSION,
        index,
        term,
        datacenter: ctx.agent.datacenter.clone(),
    };
    // Compression is CPU work; keep it off the async workers.
    let archive = tokio::task::spawn_blocking(move || consensus::pack(&meta, &state))
        .await
        .map_err(|e| ApiError::Internal(format!("snapshot task failed: {e}")))?
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut resp = (
        [(header::CONTENT_TYPE, "application/x-gzip")],
        Body::from(archive),
    )
        .into_response();
    blocking::meta(ctx, index, opts.consistency).apply(&mut resp);
    Ok(resp)
}

async fn restore(
    ctx: &Ctx,
    params: &Params,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    check_dc(ctx, params)?;
    let archive = read_body(headers, body, MAX_ARCHIVE, |len| {
        format!("Request body({len} bytes) too large, max size: {MAX_ARCHIVE} bytes")
    })
    .await?;
    let (meta, state) = tokio::task::spawn_blocking(move || consensus::unpack(&archive))
        .await
        .map_err(|e| ApiError::Internal(format!("restore task failed: {e}")))?
        .map_err(|e| ApiError::BadRequest(format!("Snapshot restore failed: {e}")))?;
    ctx.node.write(Op::Restore(Box::new(state))).await?;
    tracing::info!(index = meta.index, dc = %meta.datacenter, "restored a snapshot");
    Ok(StatusCode::OK.into_response())
}
