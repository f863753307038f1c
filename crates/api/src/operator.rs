//! `/v1/operator/raft/*`: the raft configuration and removing a server from it.

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::blocking;
use crate::error::ApiError;
use crate::params::{check_dc, Params, ReadOptions};
use crate::render;
use crate::Ctx;

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct RaftConfiguration {
    servers: Vec<RaftServer>,
    index: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct RaftServer {
    #[serde(rename = "ID")]
    id: String,
    node: String,
    address: String,
    leader: bool,
    voter: bool,
    protocol_version: &'static str,
    last_index: u64,
}

/// The server's ID as Consul shows it: the node UUID, or the raft id where none is recorded.
fn server_id(server: &consensus::RaftServer) -> String {
    if server.node.node_id.is_empty() {
        server.raft_id.to_string()
    } else {
        server.node.node_id.clone()
    }
}

pub async fn configuration(
    State(ctx): State<Ctx>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref());
    let opts = ReadOptions::parse(&ctx, &params)?;
    blocking::barrier(&ctx, opts.consistency).await?;
    let (servers, index) = ctx.node.configuration();
    let metrics = ctx.node.raft().metrics().borrow().clone();
    let last_index = |raft_id| {
        if raft_id == metrics.id {
            return metrics.last_log_index.unwrap_or(0);
        }
        metrics
            .replication
            .as_ref()
            .and_then(|r| r.get(&raft_id).cloned().flatten())
            .map_or(0, |id| id.index)
    };
    let body = RaftConfiguration {
        servers: servers
            .iter()
            .map(|s| RaftServer {
                id: server_id(s),
                node: s.node.name.clone(),
                address: s.node.addr.clone(),
                leader: s.leader,
                voter: s.voter,
                protocol_version: "3",
                last_index: last_index(s.raft_id),
            })
            .collect(),
        index,
    };
    let meta = blocking::meta(&ctx, index, opts.consistency);
    Ok(render::json_with_meta(&body, opts.pretty, &meta))
}

pub async fn remove_peer(
    State(ctx): State<Ctx>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref());
    check_dc(&ctx, &params)?;
    let id = params.get("id").filter(|v| !v.is_empty());
    let address = params.get("address").filter(|v| !v.is_empty());
    let (servers, _) = ctx.node.configuration();
    let target = match (id, address) {
        (Some(id), _) => servers
            .iter()
            .find(|s| server_id(s) == id || s.raft_id.to_string() == id)
            .ok_or_else(|| ApiError::Internal(format!("id {id:?} was not found in the Raft configuration")))?,
        (None, Some(address)) => servers
            .iter()
            .find(|s| s.node.addr == address)
            .ok_or_else(|| {
                ApiError::Internal(format!("address {address:?} was not found in the Raft configuration"))
            })?,
        (None, None) => {
            return Err(ApiError::BadRequest(
                "Must specify either ?id with the server's ID or ?address with IP:port of peer to remove".into(),
            ))
        }
    };
    ctx.node.remove_voter(target.raft_id).await?;
    tracing::info!(server = %target.node, "removed a server from the raft configuration");
    Ok(StatusCode::OK.into_response())
}

/// `POST /v1/operator/raft/transfer-leader[?id=]`: hand leadership to the given server (by node
/// ID or raft id), or to the most up-to-date other voter. `{"Success": true}` once it has moved.
pub async fn transfer_leader(
    State(ctx): State<Ctx>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref());
    check_dc(&ctx, &params)?;
    let to = match params.get("id").filter(|v| !v.is_empty()) {
        None => None,
        Some(id) => {
            let (servers, _) = ctx.node.configuration();
            let server = servers
                .iter()
                .find(|s| server_id(s) == id || s.raft_id.to_string() == id)
                .ok_or_else(|| {
                    ApiError::Internal(format!("id {id:?} was not found in the Raft configuration"))
                })?;
            Some(server.raft_id)
        }
    };
    let new_leader = ctx.node.transfer_leadership(to).await?;
    tracing::info!(new_leader, "leadership transferred");
    Ok(render::json(
        &serde_json::json!({ "Success": true }),
        params.pretty(),
    ))
}
