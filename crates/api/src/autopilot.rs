//! `/v1/operator/autopilot/configuration`, `/v1/operator/autopilot/health` and
//! `/v1/operator/autopilot/state`.

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use consensus::{AutopilotConfig, Op, Response as Applied};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::blocking;
use crate::error::ApiError;
use crate::kv::read_body;
use crate::params::{check_dc, Params, ReadOptions};
use crate::render;
use crate::wire::{self, field, string_field, u64_field};
use crate::Ctx;

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ConfigJson {
    cleanup_dead_servers: bool,
    last_contact_threshold: String,
    max_trailing_logs: u64,
    min_quorum: u32,
    server_stabilization_time: String,
    redundancy_zone_tag: String,
    disable_upgrade_migration: bool,
    upgrade_version_tag: String,
    create_index: u64,
    modify_index: u64,
}

impl From<&AutopilotConfig> for ConfigJson {
    fn from(c: &AutopilotConfig) -> Self {
        ConfigJson {
            cleanup_dead_servers: c.cleanup_dead_servers,
            last_contact_threshold: config::format_go_duration(c.last_contact_threshold),
            max_trailing_logs: c.max_trailing_logs,
            min_quorum: c.min_quorum,
            server_stabilization_time: config::format_go_duration(c.server_stabilization_time),
            redundancy_zone_tag: c.redundancy_zone_tag.clone(),
            disable_upgrade_migration: c.disable_upgrade_migration,
            upgrade_version_tag: c.upgrade_version_tag.clone(),
            create_index: c.create_index,
            modify_index: c.modify_index,
        }
    }
}

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
        let config = ctx.node.reader().state().autopilot.clone();
        let meta = blocking::meta(&ctx, config.modify_index, opts.consistency);
        return Ok(render::json_with_meta(
            &ConfigJson::from(&config),
            opts.pretty,
            &meta,
        ));
    }
    check_dc(&ctx, &params)?;
    let cas = params.u64("cas")?;
    let body = read_body(&headers, body, 64 * 1024, |len| {
        format!("Request body({len} bytes) too large, max size: 65536 bytes")
    })
    .await?;
    let Value::Object(obj) = wire::decode_body(&body)? else {
        return Err(ApiError::BadRequest(
            "Request decode failed: expected an object".into(),
        ));
    };
    // Fields left out keep their current values.
    let current = ctx.node.reader().state().autopilot.clone();
    let config = merge(current, &obj)?;
    let written = ctx.node.write(Op::SetAutopilot { config, cas }).await?;
    match written.response {
        Applied::Bool(done) => Ok(render::json(&done, params.pretty())),
        other => Err(ApiError::Internal(format!(
            "unexpected write result: {other:?}"
        ))),
    }
}

fn bool_field(obj: &Map<String, Value>, name: &str) -> Result<Option<bool>, ApiError> {
    match field(obj, name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(ApiError::BadRequest(format!(
            "Request decode failed: field {name}: expected a boolean, got {other}"
        ))),
    }
}

fn duration_field(
    obj: &Map<String, Value>,
    name: &str,
) -> Result<Option<std::time::Duration>, ApiError> {
    match field(obj, name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => config::parse_go_duration(s)
            .map(Some)
            .map_err(|e| ApiError::BadRequest(format!("Request decode failed: field {name}: {e}"))),
        Some(Value::Number(n)) => n
            .as_u64()
            .map(|ns| Some(std::time::Duration::from_nanos(ns)))
            .ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "Request decode failed: field {name}: invalid duration {n}"
                ))
            }),
        Some(other) => Err(ApiError::BadRequest(format!(
            "Request decode failed: field {name}: expected a duration, got {other}"
        ))),
    }
}

fn merge(mut c: AutopilotConfig, obj: &Map<String, Value>) -> Result<AutopilotConfig, ApiError> {
    if let Some(v) = bool_field(obj, "CleanupDeadServers")? {
        c.cleanup_dead_servers = v;
    }
    if let Some(v) = duration_field(obj, "LastContactThreshold")? {
        c.last_contact_threshold = v;
    }
    if let Some(v) = u64_field(obj, "MaxTrailingLogs")? {
        c.max_trailing_logs = v;
    }
    if let Some(v) = u64_field(obj, "MinQuorum")? {
        c.min_quorum = u32::try_from(v).map_err(|_| {
            ApiError::BadRequest(format!("Request decode failed: MinQuorum {v} is too large"))
        })?;
    }
    if let Some(v) = duration_field(obj, "ServerStabilizationTime")? {
        c.server_stabilization_time = v;
    }
    if let Some(v) = string_field(obj, "RedundancyZoneTag")? {
        c.redundancy_zone_tag = v;
    }
    if let Some(v) = bool_field(obj, "DisableUpgradeMigration")? {
        c.disable_upgrade_migration = v;
    }
    if let Some(v) = string_field(obj, "UpgradeVersionTag")? {
        c.upgrade_version_tag = v;
    }
    Ok(c)
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct HealthJson {
    healthy: bool,
    failure_tolerance: usize,
    servers: Vec<ServerJson>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ServerJson {
    #[serde(rename = "ID")]
    id: String,
    name: String,
    address: String,
    serf_status: &'static str,
    version: &'static str,
    leader: bool,
    last_contact: String,
    last_term: u64,
    last_index: u64,
    healthy: bool,
    voter: bool,
    stable_since: String,
}

fn server_id(s: &rpc::ServerHealth) -> String {
    if s.node_id.is_empty() {
        s.raft_id.to_string()
    } else {
        s.node_id.clone()
    }
}

/// Whether the leader has heard from the server at all (`Duration::MAX`: never, or no longer).
fn reachable(s: &rpc::ServerHealth) -> bool {
    s.last_contact != std::time::Duration::MAX
}

fn last_contact(s: &rpc::ServerHealth) -> String {
    if reachable(s) {
        config::format_go_duration(s.last_contact)
    } else {
        "-1ns".to_owned()
    }
}

fn server_json(s: &rpc::ServerHealth) -> ServerJson {
    ServerJson {
        id: server_id(s),
        name: s.name.clone(),
        address: s.address.clone(),
        // A server is "alive" while it answers the leader's server RPC in time.
        serf_status: if reachable(s) { "alive" } else { "failed" },
        version: crate::agent::CONSUL_COMPAT_VERSION,
        leader: s.leader,
        last_contact: last_contact(s),
        last_term: s.last_term,
        last_index: s.last_index,
        healthy: s.healthy,
        voter: s.voter,
        stable_since: wire::rfc3339_from_unix_ms(s.stable_since_ms),
    }
}

/// Autopilot's health as the leader sees it; 429 when any server is unhealthy, as Consul does.
pub async fn health(
    State(ctx): State<Ctx>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref());
    check_dc(&ctx, &params)?;
    let health = ctx
        .autopilot
        .leader_health(&ctx.node)
        .await
        .map_err(ApiError::Internal)?;
    let body = HealthJson {
        healthy: health.healthy,
        failure_tolerance: health.failure_tolerance,
        servers: health.servers.iter().map(server_json).collect(),
    };
    let status = if health.healthy {
        StatusCode::OK
    } else {
        StatusCode::TOO_MANY_REQUESTS
    };
    Ok((
        status,
        render::json(&body, params.pretty() || ctx.agent.dev),
    )
        .into_response())
}

/// `GET /v1/operator/autopilot/state`: the leader's whole autopilot view, in Consul's shape
/// (servers keyed by ID, the leader, the voters). Always 200, healthy or not.
pub async fn state(
    State(ctx): State<Ctx>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref());
    check_dc(&ctx, &params)?;
    let health = ctx
        .autopilot
        .leader_health(&ctx.node)
        .await
        .map_err(ApiError::Internal)?;
    let body = state_json(&health);
    Ok(render::json(&body, params.pretty() || ctx.agent.dev).into_response())
}

fn state_json(health: &rpc::Health) -> Value {
    let voters: Vec<String> = health
        .servers
        .iter()
        .filter(|s| s.voter)
        .map(server_id)
        .collect();
    let healthy_voters = health
        .servers
        .iter()
        .filter(|s| s.voter && s.healthy)
        .count();
    let quorum = voters.len() / 2 + 1;
    let servers: Map<String, Value> = health
        .servers
        .iter()
        .map(|s| {
            let status = match (s.leader, s.voter) {
                (true, _) => "leader",
                (false, true) => "voter",
                (false, false) => "non-voter",
            };
            let server = serde_json::json!({
                "ID": server_id(s),
                "Name": s.name,
                "Address": s.address,
                "NodeStatus": if reachable(s) { "alive" } else { "failed" },
                "Version": crate::agent::CONSUL_COMPAT_VERSION,
                "LastContact": last_contact(s),
                "LastTerm": s.last_term,
                "LastIndex": s.last_index,
                "Healthy": s.healthy,
                "StableSince": wire::rfc3339_from_unix_ms(s.stable_since_ms),
                "ReadReplica": false,
                "Status": status,
                "Meta": {},
                "NodeType": "voter",
            });
            (server_id(s), server)
        })
        .collect();
    serde_json::json!({
        "Healthy": health.healthy,
        "FailureTolerance": health.failure_tolerance,
        "OptimisticFailureTolerance": healthy_voters.saturating_sub(quorum),
        "Servers": servers,
        "Leader": health.servers.iter().find(|s| s.leader).map(server_id).unwrap_or_default(),
        "Voters": voters,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(raft_id: u64, leader: bool, voter: bool, healthy: bool) -> rpc::ServerHealth {
        rpc::ServerHealth {
            raft_id,
            node_id: format!("node-{raft_id}"),
            name: format!("s{raft_id}"),
            address: format!("10.0.0.{raft_id}:8300"),
            leader,
            voter,
            last_contact: std::time::Duration::from_millis(if leader { 0 } else { 20 }),
            last_term: 2,
            last_index: 10,
            healthy,
            stable_since_ms: 0,
        }
    }

    #[test]
    fn state_names_the_leader_the_voters_and_what_could_fail() {
        let health = rpc::Health {
            healthy: false,
            failure_tolerance: 0,
            servers: vec![
                server(1, true, true, true),
                server(2, false, true, true),
                server(3, false, true, false),
                server(4, false, false, true),
            ],
        };
        let state = state_json(&health);
        assert_eq!(state["Leader"], "node-1");
        assert_eq!(
            state["Voters"],
            serde_json::json!(["node-1", "node-2", "node-3"])
        );
        // Two healthy voters of three: quorum is two, so none more may fail.
        assert_eq!(state["OptimisticFailureTolerance"], 0);
        assert_eq!(state["Servers"]["node-1"]["Status"], "leader");
        assert_eq!(state["Servers"]["node-3"]["Healthy"], false);
        assert_eq!(state["Servers"]["node-4"]["Status"], "non-voter");
        assert_eq!(state["Servers"]["node-2"]["LastContact"], "20ms");
    }
}
