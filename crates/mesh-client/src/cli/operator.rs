//! `operator raft list-peers|remove-peer|transfer-leader` and `operator autopilot
//! get-config|set-config|state`: the servers' raft configuration, autopilot's settings and its
//! view of the servers.

use std::collections::HashMap;

use clap::Subcommand;
use hyper::body::Bytes;
use hyper::Method;
use serde_json::{json, Value};

use super::{columns, exit_with, fail, go_duration, percent_encode, HttpArgs};

#[derive(Debug, Subcommand)]
pub enum OperatorCommand {
    /// The servers' raft peer set.
    Raft {
        #[command(subcommand)]
        command: RaftCommand,
    },
    /// Autopilot's settings.
    Autopilot {
        #[command(subcommand)]
        command: AutopilotCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum RaftCommand {
    /// Displays the current raft peer configuration.
    ListPeers(ListPeersArgs),
    /// Removes a server from the raft configuration.
    RemovePeer(RemovePeerArgs),
    /// Transfers raft leadership to another server.
    TransferLeader(TransferLeaderArgs),
}

#[derive(Debug, Subcommand)]
pub enum AutopilotCommand {
    /// Displays the current autopilot configuration.
    GetConfig(GetConfigArgs),
    /// Modifies the autopilot configuration.
    SetConfig(SetConfigArgs),
    /// Displays autopilot's view of the servers (health, failure tolerance, voters).
    State(StateArgs),
}

#[derive(Debug, clap::Args)]
pub struct StateArgs {
    #[command(flatten)]
    http: HttpArgs,
    /// Output format: `pretty` or `json`.
    #[arg(long, default_value = "pretty")]
    format: String,
}

#[derive(Debug, clap::Args)]
pub struct ListPeersArgs {
    #[command(flatten)]
    http: HttpArgs,
}

#[derive(Debug, clap::Args)]
pub struct RemovePeerArgs {
    #[command(flatten)]
    http: HttpArgs,
    /// The address (`ip:port`) of the server to remove.
    #[arg(long, default_value = "")]
    address: String,
    /// The ID of the server to remove.
    #[arg(long, default_value = "")]
    id: String,
}

#[derive(Debug, clap::Args)]
pub struct TransferLeaderArgs {
    #[command(flatten)]
    http: HttpArgs,
    /// The ID of the server to hand leadership to (default: the most up to date voter).
    #[arg(long, default_value = "")]
    id: String,
}

#[derive(Debug, clap::Args)]
pub struct GetConfigArgs {
    #[command(flatten)]
    http: HttpArgs,
}

#[derive(Debug, clap::Args)]
pub struct SetConfigArgs {
    #[command(flatten)]
    http: HttpArgs,
    /// Remove dead servers when new ones join (`true|false`).
    #[arg(long = "cleanup-dead-servers")]
    cleanup_dead_servers: Option<bool>,
    /// How many log entries a server may trail the leader by and stay healthy.
    #[arg(long = "max-trailing-logs")]
    max_trailing_logs: Option<u64>,
    /// How many servers must remain before autopilot prunes dead ones.
    #[arg(long = "min-quorum")]
    min_quorum: Option<u32>,
    /// How long a server may go without contact from the leader and stay healthy (`200ms`).
    #[arg(long = "last-contact-threshold", value_parser = go_duration_text)]
    last_contact_threshold: Option<String>,
    /// How long a new server must be healthy before it becomes a voter (`10s`).
    #[arg(long = "server-stabilization-time", value_parser = go_duration_text)]
    server_stabilization_time: Option<String>,
    #[arg(long = "redundancy-zone-tag")]
    redundancy_zone_tag: Option<String>,
    #[arg(long = "disable-upgrade-migration")]
    disable_upgrade_migration: Option<bool>,
    #[arg(long = "upgrade-version-tag")]
    upgrade_version_tag: Option<String>,
}

/// A Go duration, kept as written once it parses.
fn go_duration_text(text: &str) -> Result<String, String> {
    go_duration(text).map(|_| text.to_owned())
}

pub async fn run(command: OperatorCommand) -> anyhow::Result<()> {
    match command {
        OperatorCommand::Raft { command } => match command {
            RaftCommand::ListPeers(args) => list_peers(args).await,
            RaftCommand::RemovePeer(args) => remove_peer(args).await,
            RaftCommand::TransferLeader(args) => transfer_leader(args).await,
        },
        OperatorCommand::Autopilot { command } => match command {
            AutopilotCommand::GetConfig(args) => get_config(args).await,
            AutopilotCommand::SetConfig(args) => set_config(args).await,
            AutopilotCommand::State(args) => state(args).await,
        },
    }
}

async fn list_peers(args: ListPeersArgs) -> anyhow::Result<()> {
    let api = args.http.api()?;
    let configuration = api
        .get_json("/v1/operator/raft/configuration")
        .await
        .map_err(|err| {
            fail(format!(
                "Error getting peers: Failed to retrieve raft configuration: {err:#}"
            ))
        })?;
    // Commit indexes come from autopilot's view on the leader; without it (no leader, say)
    // the peers are still worth showing.
    let health = api.get_json("/v1/operator/autopilot/health").await.ok();
    print!("{}", peers_table(&configuration, health.as_ref()));
    Ok(())
}

/// `operator raft list-peers`: Node, ID, Address, State, Voter, RaftProtocol, and from
/// autopilot's health each server's commit index and how far it trails the leader.
fn peers_table(configuration: &Value, health: Option<&Value>) -> String {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let health: HashMap<String, &Value> = health
        .and_then(|h| h["Servers"].as_array())
        .into_iter()
        .flatten()
        .map(|s| (text(&s["ID"]), s))
        .collect();
    let servers = configuration["Servers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let last_index = |s: &Value| {
        health
            .get(&text(&s["ID"]))
            .map(|h| h["LastIndex"].as_u64().unwrap_or_default())
    };
    let leader_index = servers
        .iter()
        .find(|s| s["Leader"] == json!(true))
        .and_then(last_index)
        .unwrap_or_default();
    let header = [
        "Node",
        "ID",
        "Address",
        "State",
        "Voter",
        "RaftProtocol",
        "Commit Index",
        "Trails Leader By",
    ]
    .map(String::from);
    let rows = servers.iter().map(|s| {
        let leader = s["Leader"] == json!(true);
        let protocol = text(&s["ProtocolVersion"]);
        let mut row = vec![
            text(&s["Node"]),
            text(&s["ID"]),
            text(&s["Address"]),
            (if leader { "leader" } else { "follower" }).to_owned(),
            (s["Voter"] == json!(true)).to_string(),
            if protocol.is_empty() {
                "<=1".to_owned()
            } else {
                protocol
            },
        ];
        match last_index(s) {
            Some(index) => {
                let behind = leader_index.saturating_sub(index);
                row.push(index.to_string());
                row.push(if leader {
                    "_".to_owned()
                } else if behind <= 1 {
                    format!("{behind} Commit")
                } else {
                    format!("{behind} Commits")
                });
            }
            None => row.push("_".to_owned()),
        }
        row
    });
    columns(std::iter::once(header.into()).chain(rows))
}

async fn remove_peer(args: RemovePeerArgs) -> anyhow::Result<()> {
    let failed = |why: &str| fail(format!("Error removing peer: {why}"));
    if args.address.is_empty() && args.id.is_empty() {
        return Err(failed(
            "an address or id is required for the peer to remove",
        ));
    }
    if !args.address.is_empty() && !args.id.is_empty() {
        return Err(failed("cannot give both an address and id"));
    }
    let api = args.http.api()?;
    let query = if args.address.is_empty() {
        format!("id={}", percent_encode(&args.id))
    } else {
        format!("address={}", percent_encode(&args.address))
    };
    api.call(
        Method::DELETE,
        &format!("/v1/operator/raft/peer?{query}"),
        Bytes::new(),
    )
    .await
    .map_err(|err| failed(&format!("{err:#}")))?;
    if args.address.is_empty() {
        println!("Removed peer with id {:?}", args.id);
    } else {
        println!("Removed peer with address {:?}", args.address);
    }
    Ok(())
}

async fn transfer_leader(args: TransferLeaderArgs) -> anyhow::Result<()> {
    let api = args.http.api()?;
    let path = if args.id.is_empty() {
        "/v1/operator/raft/transfer-leader".to_owned()
    } else {
        format!(
            "/v1/operator/raft/transfer-leader?id={}",
            percent_encode(&args.id)
        )
    };
    let answer = async {
        let body = api.call(Method::POST, &path, Bytes::new()).await?;
        anyhow::Ok(serde_json::from_slice::<Value>(&body)?)
    }
    .await
    .map_err(|err| {
        fail(format!(
            "Error transfering leadership: Failed to transfer leadership {err:#}"
        ))
    })?;
    if answer["Success"] != json!(true) {
        return Err(fail(
            "Error transfering leadership: Failed to transfer leadership",
        ));
    }
    println!("Success");
    Ok(())
}

async fn get_config(args: GetConfigArgs) -> anyhow::Result<()> {
    let api = args.http.api()?;
    let config = api
        .get_json("/v1/operator/autopilot/configuration")
        .await
        .map_err(|err| fail(format!("Error querying Autopilot configuration: {err:#}")))?;
    print!("{}", autopilot_listing(&config));
    Ok(())
}

/// `operator autopilot get-config`: `Name = value`, strings quoted as Go's `%q` does.
fn autopilot_listing(config: &Value) -> String {
    let plain = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let quoted = |v: &Value| go_text::quote(v.as_str().unwrap_or_default());
    let mut out = String::new();
    for (field, show) in [
        ("CleanupDeadServers", false),
        ("LastContactThreshold", false),
        ("MaxTrailingLogs", false),
        ("MinQuorum", false),
        ("ServerStabilizationTime", false),
        ("RedundancyZoneTag", true),
        ("DisableUpgradeMigration", false),
        ("UpgradeVersionTag", true),
    ] {
        let value = &config[field];
        let value = if show { quoted(value) } else { plain(value) };
        out.push_str(&format!("{field} = {value}\n"));
    }
    out
}

async fn set_config(args: SetConfigArgs) -> anyhow::Result<()> {
    let api = args.http.api()?;
    let current = api
        .get_json("/v1/operator/autopilot/configuration")
        .await
        .map_err(|err| fail(format!("Error querying Autopilot configuration: {err:#}")))?;
    let mut change = serde_json::Map::new();
    let mut set = |field: &str, value: Option<Value>| {
        if let Some(value) = value {
            change.insert(field.to_owned(), value);
        }
    };
    set(
        "CleanupDeadServers",
        args.cleanup_dead_servers.map(Value::from),
    );
    set("MaxTrailingLogs", args.max_trailing_logs.map(Value::from));
    set("MinQuorum", args.min_quorum.map(Value::from));
    set(
        "LastContactThreshold",
        args.last_contact_threshold.map(Value::from),
    );
    set(
        "ServerStabilizationTime",
        args.server_stabilization_time.map(Value::from),
    );
    set(
        "RedundancyZoneTag",
        args.redundancy_zone_tag.map(Value::from),
    );
    set(
        "DisableUpgradeMigration",
        args.disable_upgrade_migration.map(Value::from),
    );
    set(
        "UpgradeVersionTag",
        args.upgrade_version_tag.map(Value::from),
    );
    let cas = current["ModifyIndex"].as_u64().unwrap_or_default();
    let updated = async {
        let body = api
            .put_json(
                Method::PUT,
                &format!("/v1/operator/autopilot/configuration?cas={cas}"),
                &Value::Object(change),
            )
            .await?;
        anyhow::Ok(serde_json::from_slice::<Value>(&body)? == json!(true))
    }
    .await
    .map_err(|err| fail(format!("Error setting Autopilot configuration: {err:#}")))?;
    if updated {
        println!("Configuration updated!");
        Ok(())
    } else {
        println!("Configuration could not be atomically updated, please try again");
        Err(exit_with(1))
    }
}

async fn state(args: StateArgs) -> anyhow::Result<()> {
    if args.format != "pretty" && args.format != "json" {
        return Err(fail(format!("Unknown format: {}", args.format)));
    }
    let api = args.http.api()?;
    let state = api
        .get_json("/v1/operator/autopilot/state")
        .await
        .map_err(|err| fail(format!("Error querying Autopilot state: {err:#}")))?;
    let out = match args.format.as_str() {
        "json" => {
            let mut out = Vec::new();
            let indent = serde_json::ser::PrettyFormatter::with_indent(b"    ");
            serde::Serialize::serialize(
                &state,
                &mut serde_json::Serializer::with_formatter(&mut out, indent),
            )?;
            String::from_utf8(out)?
        }
        _ => state_listing(&state),
    };
    println!("{out}");
    Ok(())
}

/// `operator autopilot state` in Consul's pretty format: the datacenter's health and voters,
/// then each server (sorted by ID) with its status, contact and log position.
fn state_listing(state: &Value) -> String {
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    let mut out = String::new();
    out.push_str(&format!(
        "Healthy:                      {}\n",
        text(&state["Healthy"])
    ));
    out.push_str(&format!(
        "Failure Tolerance:            {}\n",
        text(&state["FailureTolerance"])
    ));
    out.push_str(&format!(
        "Optimistic Failure Tolerance: {}\n",
        text(&state["OptimisticFailureTolerance"])
    ));
    out.push_str(&format!(
        "Leader:                       {}\n",
        text(&state["Leader"])
    ));
    out.push_str("Voters:\n");
    for voter in state["Voters"].as_array().into_iter().flatten() {
        out.push_str(&format!("   {}\n", text(voter)));
    }
    out.push_str("Servers:\n");
    let mut servers: Vec<(&String, &Value)> = state["Servers"]
        .as_object()
        .map(|servers| servers.iter().collect())
        .unwrap_or_default();
    servers.sort_by(|a, b| a.0.cmp(b.0));
    for (id, server) in servers {
        out.push_str(&format!("   {id}\n"));
        for (label, field) in [
            ("Name:           ", "Name"),
            ("Address:        ", "Address"),
            ("Version:        ", "Version"),
            ("Status:         ", "Status"),
            ("Node Type:      ", "NodeType"),
            ("Node Status:    ", "NodeStatus"),
            ("Healthy:        ", "Healthy"),
            ("Last Contact:   ", "LastContact"),
            ("Last Term:      ", "LastTerm"),
            ("Last Index:     ", "LastIndex"),
        ] {
            out.push_str(&format!("      {label} {}\n", text(&server[field])));
        }
        if let Some(meta) = server["Meta"].as_object().filter(|m| !m.is_empty()) {
            out.push_str("      Meta\n");
            let mut pairs: Vec<_> = meta.iter().collect();
            pairs.sort_by(|a, b| a.0.cmp(b.0));
            for (key, value) in pairs {
                out.push_str(&format!(
                    "         {}: {}\n",
                    go_text::quote(key),
                    go_text::quote(&text(value))
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configuration() -> Value {
        json!({"Servers": [
            {"ID": "aaaa", "Node": "node-1", "Address": "127.0.0.1:8300", "Leader": true,
             "Voter": true, "ProtocolVersion": "3"},
            {"ID": "bbbb", "Node": "node-2", "Address": "127.0.0.2:8300", "Leader": false,
             "Voter": true, "ProtocolVersion": "3"},
            {"ID": "cccc", "Node": "node-3", "Address": "127.0.0.3:8300", "Leader": false,
             "Voter": false, "ProtocolVersion": ""},
        ], "Index": 10})
    }

    #[test]
    fn peers_print_like_consuls() {
        let health = json!({"Servers": [
            {"ID": "aaaa", "LastIndex": 120}, {"ID": "bbbb", "LastIndex": 119},
            {"ID": "cccc", "LastIndex": 100},
        ]});
        assert_eq!(
            peers_table(&configuration(), Some(&health)),
            "Node    ID    Address         State     Voter  RaftProtocol  Commit Index  Trails Leader By\n\
             node-1  aaaa  127.0.0.1:8300  leader    true   3             120           _\n\
             node-2  bbbb  127.0.0.2:8300  follower  true   3             119           1 Commit\n\
             node-3  cccc  127.0.0.3:8300  follower  false  <=1           100           20 Commits\n"
        );
        let without = peers_table(&configuration(), None);
        assert!(
            without.ends_with("node-3  cccc  127.0.0.3:8300  follower  false  <=1           _\n"),
            "{without}"
        );
    }

    #[test]
    fn autopilot_state_prints_like_consuls() {
        let server = |id: &str, name: &str, status: &str, contact: &str, index: u64| {
            json!({
                "ID": id, "Name": name, "Address": format!("198.18.0.{}:8300", &name[4..]),
                "NodeStatus": "alive", "Version": "1.9.0", "LastContact": contact,
                "LastTerm": 3, "LastIndex": index, "Healthy": true,
                "StableSince": "2026-11-25T00:00:00Z", "ReadReplica": false,
                "Status": status, "Meta": {"zone": "b"}, "NodeType": "voter",
            })
        };
        let state = json!({
            "Healthy": true, "FailureTolerance": 1, "OptimisticFailureTolerance": 0,
            "Servers": {
                "cccc": server("cccc", "node3", "voter", "2ms", 39),
                "aaaa": server("aaaa", "node1", "leader", "0s", 42),
            },
            "Leader": "aaaa", "Voters": ["aaaa", "cccc"],
        });
        let listing = state_listing(&state);
        assert!(
            listing.starts_with(
                "Healthy:                      true\n\
                 Failure Tolerance:            1\n\
                 Optimistic Failure Tolerance: 0\n\
                 Leader:                       aaaa\n\
                 Voters:\n   aaaa\n   cccc\n\
                 Servers:\n   aaaa\n\
                 \x20     Name:            node1\n\
                 \x20     Address:         198.18.0.1:8300\n\
                 \x20     Version:         1.9.0\n\
                 \x20     Status:          leader\n\
                 \x20     Node Type:       voter\n\
                 \x20     Node Status:     alive\n\
                 \x20     Healthy:         true\n\
                 \x20     Last Contact:    0s\n\
                 \x20     Last Term:       3\n\
                 \x20     Last Index:      42\n\
                 \x20     Meta\n\
                 \x20        \"zone\": \"b\"\n\
                 \x20  cccc\n"
            ),
            "{listing}"
        );
        assert!(
            listing.ends_with("      Last Index:      39\n      Meta\n         \"zone\": \"b\"\n")
        );
    }

    #[test]
    fn autopilot_settings_print_like_consuls() {
        let config = json!({
            "CleanupDeadServers": true, "LastContactThreshold": "200ms",
            "MaxTrailingLogs": 250, "MinQuorum": 0, "ServerStabilizationTime": "10s",
            "RedundancyZoneTag": "", "DisableUpgradeMigration": false,
            "UpgradeVersionTag": "", "CreateIndex": 4, "ModifyIndex": 4,
        });
        assert_eq!(
            autopilot_listing(&config),
            "CleanupDeadServers = true\nLastContactThreshold = 200ms\nMaxTrailingLogs = 250\n\
             MinQuorum = 0\nServerStabilizationTime = 10s\nRedundancyZoneTag = \"\"\n\
             DisableUpgradeMigration = false\nUpgradeVersionTag = \"\"\n"
        );
    }
}
