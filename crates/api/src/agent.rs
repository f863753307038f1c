//! `/v1/agent/self`: the agent's configuration, gossip member record and stats, in Consul's
//! shape. Values in `Stats` are strings, as Consul's are.

use axum::extract::{RawQuery, State};
use axum::response::Response;
use serde_json::json;

use crate::error::ApiError;
use crate::params::{check_dc, Params};
use crate::render;
use crate::{AgentInfo, Ctx};
use intentions::DefaultPolicy;

/// The Consul release whose API we match. Tools gate features on `Config.Version`, so this is
/// what they see; our own version is in `Stats.build.mesh_version`.
pub const CONSUL_COMPAT_VERSION: &str = "1.21.0";

/// `DebugConfig.DefaultIntentionPolicy`: the configured `default_intention_policy`, empty
/// when the ACL default decides.
pub(crate) fn default_intention_policy(agent: &AgentInfo) -> &'static str {
    match agent.intention_default {
        DefaultPolicy::Intention { allow } => allow_or_deny(allow),
        DefaultPolicy::Acl { .. } => "",
    }
}

/// `DebugConfig.ACLResolverSettings.ACLDefaultPolicy` (`allow` while ACLs are disabled).
pub(crate) fn acl_default_policy(agent: &AgentInfo) -> &'static str {
    match agent.intention_default {
        DefaultPolicy::Acl { allow } => allow_or_deny(allow),
        DefaultPolicy::Intention { .. } => "allow",
    }
}

fn allow_or_deny(allow: bool) -> &'static str {
    if allow {
        "allow"
    } else {
        "deny"
    }
}

pub async fn self_(
    State(ctx): State<Ctx>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref());
    check_dc(&ctx, &params)?;
    let agent = &ctx.agent;
    let view = ctx.node.leader_view();
    let metrics = ctx.node.raft().metrics().borrow().clone();
    let role = if agent.server { "consul" } else { "node" };
    let body = json!({
        "Config": {
            "Datacenter": agent.datacenter,
            "PrimaryDatacenter": agent.datacenter,
            "NodeName": agent.node_name,
            "NodeID": agent.node_id,
            "Revision": agent.revision,
            "Server": agent.server,
            "Version": CONSUL_COMPAT_VERSION,
            "BuildDate": "",
        },
        "DebugConfig": {
            "Datacenter": agent.datacenter,
            "NodeName": agent.node_name,
            "NodeID": agent.node_id,
            "ServerMode": agent.server,
            "DevMode": agent.dev,
            "HTTPPort": agent.http_port,
            "ServerPort": agent.server_port,
            "GRPCPort": -1,
            "KVMaxValueSize": ctx.kv_max_value_size,
            "TxnMaxReqLen": ctx.txn_max_req_len,
            "DefaultIntentionPolicy": default_intention_policy(agent),
            "ACLResolverSettings": {"ACLDefaultPolicy": acl_default_policy(agent)},
        },
        "Coord": {
            "Vec": [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
            "Error": 1.5,
            "Adjustment": 0.0,
            "Height": 1.0e-5,
        },
        "Member": {
            "Name": agent.node_name,
            "Addr": agent.advertise_addr,
            "Port": 8301,
            "Tags": {
                "role": role,
                "dc": agent.datacenter,
                "id": agent.node_id,
                "port": agent.server_port.to_string(),
                "build": CONSUL_COMPAT_VERSION,
                "vsn": "2",
                "vsn_min": "2",
                "vsn_max": "3",
                "raft_vsn": "3",
            },
            "Status": 1,
            "ProtocolMin": 1,
            "ProtocolMax": 5,
            "ProtocolCur": 2,
            "DelegateMin": 2,
            "DelegateMax": 5,
            "DelegateCur": 4,
        },
        "Stats": {
            "agent": {
                "check_monitors": "0",
                "check_ttls": "0",
                "checks": "0",
                "services": "0",
            },
            "build": {
                "prerelease": "",
                "revision": agent.revision,
                "version": CONSUL_COMPAT_VERSION,
                "mesh_version": agent.version,
            },
            "consul": {
                "bootstrap": "false",
                "known_datacenters": "1",
                "leader": view.is_leader.to_string(),
                "leader_addr": view.leader_addr.clone().unwrap_or_default(),
                "server": agent.server.to_string(),
            },
            "raft": {
                "applied_index": metrics.last_applied.map_or(0, |id| id.index).to_string(),
                "commit_index": metrics.last_applied.map_or(0, |id| id.index).to_string(),
                "last_log_index": metrics.last_log_index.unwrap_or(0).to_string(),
                "last_snapshot_index": metrics.snapshot.map_or(0, |id| id.index).to_string(),
                "num_peers": ctx.node.voter_addrs().len().saturating_sub(1).to_string(),
                "state": format!("{:?}", metrics.state),
                "term": metrics.current_term.to_string(),
                "last_contact": if view.is_leader { "0".to_owned() } else { format!("{}ms", view.last_contact_ms) },
            },
            "runtime": {
                "arch": std::env::consts::ARCH,
                "os": std::env::consts::OS,
                "cpu_count": std::thread::available_parallelism().map_or(1, |n| n.get()).to_string(),
            },
        },
        "Meta": {},
    });
    Ok(render::json(&body, params.pretty() || agent.dev))
}
