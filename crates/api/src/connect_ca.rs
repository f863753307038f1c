//! `/v1/connect/ca/roots` and `/v1/connect/ca/configuration`: the Connect CA as Consul serves
//! it. Roots are a blocking read of the replicated CA; a configuration change is computed on
//! the server that receives it (a rotation creates keys) and replicated conditionally.

use std::time::SystemTime;

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, Method};
use axum::response::{IntoResponse, Response};
use consensus::{CaUpdateError, TABLE_CA};

use crate::blocking::{self, Watch};
use crate::error::ApiError;
use crate::kv::read_body;
use crate::params::{check_dc, Params, ReadOptions};
use crate::render;
use crate::Ctx;

/// The largest configuration body (a PEM root and key fit many times over).
const MAX_CONFIG_BODY: usize = 64 * 1024;

/// What the CA endpoints say while no leader has created the CA yet.
const NOT_INITIALIZED: &str = "CA is not initialized yet";

/// `GET /v1/connect/ca/roots[?pem]`.
pub async fn roots(
    State(ctx): State<Ctx>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref());
    let opts = ReadOptions::parse(&ctx, &params)?;
    let pem = params.has("pem");
    let (meta, body) = blocking::read(&ctx, &opts, Watch::Table(TABLE_CA), |state| {
        match &state.ca {
            Some(ca) if pem => (ca.roots_modify_index, RootsBody::Pem(ca.roots_pem())),
            Some(ca) => (ca.roots_modify_index, RootsBody::Json(ca.roots_response())),
            None => (
                0,
                RootsBody::Json(ca::wire::IndexedCaRoots {
                    active_root_id: String::new(),
                    trust_domain: String::new(),
                    roots: Vec::new(),
                }),
            ),
        }
    })
    .await?;
    Ok(match body {
        RootsBody::Json(roots) => render::json_with_meta(&roots, opts.pretty, &meta),
        RootsBody::Pem(text) => {
            let mut resp = (
                [(header::CONTENT_TYPE, "application/pem-certificate-chain")],
                text,
            )
                .into_response();
            meta.apply(&mut resp);
            resp
        }
    })
}

enum RootsBody {
    Json(ca::wire::IndexedCaRoots),
    Pem(String),
}

/// `GET|PUT /v1/connect/ca/configuration`.
pub async fn configuration(
    State(ctx): State<Ctx>,
    method: Method,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref());
    if method != Method::PUT {
        let opts = ReadOptions::parse(&ctx, &params)?;
        blocking::barrier(&ctx, opts.consistency).await?;
        let config = ctx
            .node
            .reader()
            .state()
            .ca
            .as_ref()
            .map(|ca| ca.config.redacted())
            .ok_or_else(|| ApiError::Internal(NOT_INITIALIZED.into()))?;
        let meta = blocking::meta(&ctx, config.modify_index, opts.consistency);
        return Ok(render::json_with_meta(&config, opts.pretty, &meta));
    }
    check_dc(&ctx, &params)?;
    let body = read_body(&headers, body, MAX_CONFIG_BODY, |len| {
        format!("Request body({len} bytes) too large, max size: {MAX_CONFIG_BODY} bytes")
    })
    .await?;
    let new: ca::CaConfig = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("Request decode failed: {e}")))?;
    let written = ctx
        .node
        .update_ca(|current| {
            let mut ca = current.ok_or_else(|| NOT_INITIALIZED.to_owned())?;
            let rotation = ca
                .set_config(new.clone(), SystemTime::now())
                .map_err(|e| e.to_string())?;
            if let Some(note) = rotation {
                tracing::info!(
                    old = %note.old_root_id,
                    new = %note.new_root_id,
                    cross_signed = note.cross_signed,
                    "rotating the Connect CA root"
                );
            }
            Ok(Some(ca))
        })
        .await;
    match written {
        // Consul's handler returns no value: a 200 with an empty body.
        Ok(_) => Ok(axum::http::StatusCode::OK.into_response()),
        Err(CaUpdateError::Ca(text)) => Err(ApiError::Internal(text)),
        Err(CaUpdateError::Consensus(err)) => Err(err.into()),
    }
}
