//! The local agent itself: `info` (its stats), `version` (this binary's, no agent needed),
//! `reload` (its configuration files) and `maint` (node or service maintenance mode).

use std::collections::BTreeMap;

use hyper::body::Bytes;
use hyper::Method;
use serde_json::{json, Value};

use super::text::go_json;
use super::{encode_path, fail, percent_encode, HttpArgs};

/// The gossip protocol versions a Consul 1.x agent speaks, which ours match.
const PROTOCOL_DEFAULT: u32 = 2;
const PROTOCOL_MIN: u32 = 2;
const PROTOCOL_MAX: u32 = 3;

#[derive(Debug, clap::Args)]
pub struct InfoArgs {
    #[command(flatten)]
    http: HttpArgs,
}

#[derive(Debug, clap::Args)]
pub struct VersionArgs {
    /// `pretty` or `json`.
    #[arg(long, default_value = "pretty")]
    format: String,
}

#[derive(Debug, clap::Args)]
pub struct ReloadArgs {
    #[command(flatten)]
    http: HttpArgs,
}

#[derive(Debug, clap::Args)]
pub struct MaintArgs {
    #[command(flatten)]
    http: HttpArgs,
    /// Enable maintenance mode.
    #[arg(long)]
    enable: bool,
    /// Disable maintenance mode.
    #[arg(long)]
    disable: bool,
    /// Why (with `-enable`); shown in the maintenance check's notes.
    #[arg(long, default_value = "")]
    reason: String,
    /// A service ID, for that service's maintenance rather than the node's.
    #[arg(long, default_value = "")]
    service: String,
}

pub async fn info(args: InfoArgs) -> anyhow::Result<()> {
    let api = args.http.api()?;
    let agent = api
        .get_json("/v1/agent/self")
        .await
        .map_err(|err| fail(format!("Error querying agent: {err:#}")))?;
    print!("{}", stats_listing(&agent["Stats"]));
    Ok(())
}

/// `info`: each stats group (sorted) and its `key = value` lines (sorted), tab-indented.
fn stats_listing(stats: &Value) -> String {
    let groups: BTreeMap<&String, &Value> = stats.as_object().into_iter().flatten().collect();
    let mut out = String::new();
    for (group, values) in groups {
        out.push_str(&format!("{group}:\n"));
        let values: BTreeMap<&String, &Value> = values.as_object().into_iter().flatten().collect();
        for (key, value) in values {
            let value = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            out.push_str(&format!("\t{key} = {value}\n"));
        }
    }
    out
}

pub fn version(args: VersionArgs) -> anyhow::Result<()> {
    print!("{}", version_text(&args.format).map_err(fail)?);
    Ok(())
}

/// `version` in Consul's `pretty` or `json` layout, for this build.
fn version_text(format: &str) -> Result<String, String> {
    let version = env!("CARGO_PKG_VERSION");
    match format {
        "pretty" => Ok(format!(
            "Mesh v{version}\nProtocol {PROTOCOL_DEFAULT} spoken by default, understands \
             {PROTOCOL_MIN} to {PROTOCOL_MAX} (agent will automatically use protocol \
             >{PROTOCOL_DEFAULT} when speaking to compatible agents)\n"
        )),
        "json" => Ok(format!(
            "{}\n",
            go_json(
                &json!({
                    "Version": version,
                    "Revision": "",
                    "Prerelease": "",
                    "RPC": {"Default": PROTOCOL_DEFAULT, "Min": PROTOCOL_MIN, "Max": PROTOCOL_MAX},
                }),
                "  "
            )
        )),
        other => Err(format!("Unknown format: {other}")),
    }
}

pub async fn reload(args: ReloadArgs) -> anyhow::Result<()> {
    let api = args.http.api()?;
    api.call(Method::PUT, "/v1/agent/reload", Bytes::new())
        .await
        .map_err(|err| fail(format!("Error reloading: {err:#}")))?;
    println!("Configuration reload triggered");
    Ok(())
}

pub async fn maint(args: MaintArgs) -> anyhow::Result<()> {
    if args.enable && args.disable {
        return Err(fail("Only one of -enable or -disable may be provided"));
    }
    if !args.enable && !args.reason.is_empty() {
        return Err(fail("Reason may only be provided with -enable"));
    }
    if !args.enable && !args.disable && !args.service.is_empty() {
        return Err(fail("Service requires either -enable or -disable"));
    }
    let api = args.http.api()?;
    let agent = api
        .get_json("/v1/agent/self")
        .await
        .map_err(|err| fail(format!("Error querying Consul agent: {err:#}")))?;
    if !args.enable && !args.disable {
        let checks = api
            .get_json("/v1/agent/checks")
            .await
            .map_err(|err| fail(format!("Error getting checks: {err:#}")))?;
        let node = agent["Config"]["NodeName"].as_str().unwrap_or_default();
        print!("{}", maintenance_listing(node, &checks));
        return Ok(());
    }
    let enable = args.enable;
    let mut query = format!("enable={enable}");
    if enable && !args.reason.is_empty() {
        query.push_str(&format!("&reason={}", percent_encode(&args.reason)));
    }
    let (path, what) = if args.service.is_empty() {
        (format!("/v1/agent/maintenance?{query}"), "node".to_owned())
    } else {
        (
            format!(
                "/v1/agent/service/maintenance/{}?{query}",
                encode_path(&args.service)
            ),
            "service".to_owned(),
        )
    };
    let verb = if enable { "enabling" } else { "disabling" };
    api.call(Method::PUT, &path, Bytes::new())
        .await
        .map_err(|err| fail(format!("Error {verb} {what} maintenance: {err:#}")))?;
    let state = if enable { "enabled" } else { "disabled" };
    if args.service.is_empty() {
        println!("Node maintenance is now {state}");
    } else {
        println!("Service maintenance is now {state} for {:?}", args.service);
    }
    Ok(())
}

/// `maint` without flags: the node and services in maintenance, with the reasons.
fn maintenance_listing(node: &str, checks: &Value) -> String {
    let mut out = String::new();
    for check in checks.as_object().into_iter().flatten().map(|(_, c)| c) {
        let id = check["CheckID"].as_str().unwrap_or_default();
        let notes = check["Notes"].as_str().unwrap_or_default();
        if id == "_node_maintenance" {
            out.push_str(&format!("Node:\n  Name:   {node}\n  Reason: {notes}\n\n"));
        } else if id.starts_with("_service_maintenance:") {
            let service = check["ServiceID"].as_str().unwrap_or_default();
            out.push_str(&format!(
                "Service:\n  ID:     {service}\n  Reason: {notes}\n\n"
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_are_grouped_and_sorted() {
        let stats = json!({
            "raft": {"term": "2", "applied_index": "10"},
            "agent": {"services": "1"},
        });
        assert_eq!(
            stats_listing(&stats),
            "agent:\n\tservices = 1\nraft:\n\tapplied_index = 10\n\tterm = 2\n"
        );
    }

    #[test]
    fn versions_print_pretty_or_json() {
        let pretty = version_text("pretty").unwrap();
        assert!(pretty.starts_with(&format!("Mesh v{}\n", env!("CARGO_PKG_VERSION"))));
        assert!(pretty.contains("Protocol 2 spoken by default, understands 2 to 3"));
        let json: Value = serde_json::from_str(&version_text("json").unwrap()).unwrap();
        assert_eq!(json["RPC"]["Max"], 3);
        assert!(version_text("yaml").is_err());
    }

    #[test]
    fn maintenance_lists_node_and_services() {
        let checks = json!({
            "_node_maintenance": {"CheckID": "_node_maintenance", "Notes": "upgrade"},
            "_service_maintenance:web": {"CheckID": "_service_maintenance:web",
                "ServiceID": "web", "Notes": "deploy"},
            "serfHealth": {"CheckID": "serfHealth", "Notes": ""},
        });
        assert_eq!(
            maintenance_listing("node-1", &checks),
            "Node:\n  Name:   node-1\n  Reason: upgrade\n\n\
             Service:\n  ID:     web\n  Reason: deploy\n\n"
        );
    }
}
