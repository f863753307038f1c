//! Operator commands that talk to the local agent's HTTP API, with Consul's names, flags and
//! output: `members`, `join`, `leave`, `force-leave`, `keyring`, `event`, and `keygen` (which
//! needs no agent). Errors go to stderr and exit with status 1.

mod http;

use anyhow::{bail, Context};
use hyper::body::Bytes;
use hyper::Method;
use serde_json::Value;

use self::http::Api;

/// Where the agent's HTTP API is, for every command that talks to it.
#[derive(Debug, clap::Args)]
pub struct HttpArgs {
    /// The agent's HTTP address (default: `MESH_HTTP_ADDR`, `CONSUL_HTTP_ADDR`, or
    /// 127.0.0.1:8500).
    #[arg(long = "http-addr")]
    http_addr: Option<String>,
}

impl HttpArgs {
    fn api(&self) -> anyhow::Result<Api> {
        Api::new(self.http_addr.as_deref())
    }
}

#[derive(Debug, clap::Args)]
pub struct MembersArgs {
    #[command(flatten)]
    http: HttpArgs,
    /// Only members whose status matches this regular expression.
    #[arg(long)]
    status: Option<String>,
    /// Every tag of every member.
    #[arg(long)]
    detailed: bool,
}

#[derive(Debug, clap::Args)]
pub struct JoinArgs {
    #[command(flatten)]
    http: HttpArgs,
    /// Gossip addresses of agents already in the pool (port 8301 by default).
    #[arg(required = true)]
    addresses: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct LeaveArgs {
    #[command(flatten)]
    http: HttpArgs,
}

#[derive(Debug, clap::Args)]
pub struct ForceLeaveArgs {
    #[command(flatten)]
    http: HttpArgs,
    /// Forget the member at once rather than keeping it as left.
    #[arg(long)]
    prune: bool,
    node: String,
}

#[derive(Debug, clap::Args)]
pub struct KeyringArgs {
    #[command(flatten)]
    http: HttpArgs,
    /// Lists the keys installed on the members.
    #[arg(long)]
    list: bool,
    /// Installs a key on every member.
    #[arg(long, value_name = "KEY")]
    install: Option<String>,
    /// Makes an installed key the one that encrypts.
    #[arg(long = "use", value_name = "KEY")]
    use_key: Option<String>,
    /// Removes a key other than the primary from every member.
    #[arg(long, value_name = "KEY")]
    remove: Option<String>,
    /// With `-list`: only the keys of the agent asked.
    #[arg(long = "local-only")]
    local_only: bool,
}

#[derive(Debug, clap::Args)]
pub struct EventArgs {
    #[command(flatten)]
    http: HttpArgs,
    #[arg(long)]
    name: String,
    /// Regular expression on node names.
    #[arg(long, default_value = "")]
    node: String,
    /// Regular expression on service names.
    #[arg(long, default_value = "")]
    service: String,
    /// Regular expression on service tags (needs `-service`).
    #[arg(long, default_value = "")]
    tag: String,
    /// The payload, at most 512 bytes with the name.
    payload: Option<String>,
}

/// Prints a new gossip encryption key.
pub fn keygen() {
    println!("{}", gossip::driver::generate_key());
}

pub async fn members(args: MembersArgs) -> anyhow::Result<()> {
    let status = args
        .status
        .as_deref()
        .map(regex::Regex::new)
        .transpose()
        .context("invalid -status")?;
    let members = args.http.api()?.get_json("/v1/agent/members").await?;
    let rows: Vec<Vec<String>> = members
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| member_row(m, args.detailed))
        .filter(|row| status.as_ref().is_none_or(|re| re.is_match(&row[2])))
        .collect();
    if rows.is_empty() {
        bail!("no members matched");
    }
    let header: Vec<String> = if args.detailed {
        ["Node", "Address", "Status", "Tags"]
            .map(String::from)
            .into()
    } else {
        [
            "Node",
            "Address",
            "Status",
            "Type",
            "Build",
            "Protocol",
            "DC",
            "Partition",
            "Segment",
        ]
        .map(String::from)
        .into()
    };
    print!("{}", columns(std::iter::once(header).chain(rows)));
    Ok(())
}

fn member_row(member: &Value, detailed: bool) -> Vec<String> {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let tags = &member["Tags"];
    let address = format!("{}:{}", text(&member["Addr"]), member["Port"]);
    let status = match member["Status"].as_u64() {
        Some(1) => "alive",
        Some(2) => "leaving",
        Some(3) => "left",
        Some(4) => "failed",
        _ => "none",
    };
    let mut row = vec![text(&member["Name"]), address, status.to_owned()];
    if detailed {
        let pairs: Vec<String> = tags
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| format!("{k}={}", text(v)))
            .collect();
        row.push(pairs.join(","));
        return row;
    }
    let server = tags["role"] == "consul";
    row.extend([
        (if server { "server" } else { "client" }).to_owned(),
        text(&tags["build"]),
        "2".to_owned(),
        text(&tags["dc"]),
        "default".to_owned(),
        (if server { "<all>" } else { "<default>" }).to_owned(),
    ]);
    row
}

/// Left-aligned columns two spaces apart, like Consul's `columnize`.
fn columns(rows: impl IntoIterator<Item = Vec<String>>) -> String {
    let rows: Vec<Vec<String>> = rows.into_iter().collect();
    let mut widths = Vec::new();
    for row in &rows {
        widths.resize(widths.len().max(row.len()), 0);
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, cell)| format!("{cell:<width$}", width = widths[i]))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

pub async fn join(args: JoinArgs) -> anyhow::Result<()> {
    let api = args.http.api()?;
    let mut joined = 0;
    for address in &args.addresses {
        let path = format!("/v1/agent/join/{address}");
        match api.call(Method::PUT, &path, Bytes::new()).await {
            Ok(_) => joined += 1,
            Err(err) => eprintln!("Error joining address '{address}': {err}"),
        }
    }
    if joined == 0 {
        bail!("Failed to join any nodes.");
    }
    println!("Successfully joined cluster by contacting {joined} nodes.");
    Ok(())
}

pub async fn leave(args: LeaveArgs) -> anyhow::Result<()> {
    let api = args.http.api()?;
    api.call(Method::PUT, "/v1/agent/leave", Bytes::new())
        .await
        .context("Error leaving")?;
    println!("Graceful leave complete");
    Ok(())
}

pub async fn force_leave(args: ForceLeaveArgs) -> anyhow::Result<()> {
    let api = args.http.api()?;
    let prune = if args.prune { "?prune" } else { "" };
    let path = format!("/v1/agent/force-leave/{}{prune}", args.node);
    api.call(Method::PUT, &path, Bytes::new())
        .await
        .context("Error force leaving")?;
    Ok(())
}

pub async fn keyring(args: KeyringArgs) -> anyhow::Result<()> {
    let operations = [
        args.list,
        args.install.is_some(),
        args.use_key.is_some(),
        args.remove.is_some(),
    ];
    match operations.iter().filter(|op| **op).count() {
        0 => bail!("one of -list, -install, -use or -remove is required"),
        1 => {}
        _ => bail!("Only a single action is allowed"),
    }
    if args.local_only && !args.list {
        bail!("-local-only can only be used with -list");
    }
    let api = args.http.api()?;
    let change = |key: &String| Bytes::from(serde_json::json!({ "Key": key }).to_string());
    let (method, body, banner) = if let Some(key) = &args.install {
        (
            Method::POST,
            change(key),
            "Installing new gossip encryption key...",
        )
    } else if let Some(key) = &args.use_key {
        (
            Method::PUT,
            change(key),
            "Changing primary gossip encryption key...",
        )
    } else if let Some(key) = &args.remove {
        (
            Method::DELETE,
            change(key),
            "Removing gossip encryption key...",
        )
    } else {
        let local = if args.local_only { "?local-only" } else { "" };
        println!("==> Gathering installed encryption keys...");
        let pools = api
            .get_json(&format!("/v1/operator/keyring{local}"))
            .await?;
        print!("{}", keyring_listing(&pools));
        return Ok(());
    };
    println!("==> {banner}");
    api.call(method, "/v1/operator/keyring", body).await?;
    Ok(())
}

/// Consul's listing: per pool, each key with how many of the members hold it.
fn keyring_listing(pools: &Value) -> String {
    let mut out = String::new();
    for pool in pools.as_array().into_iter().flatten() {
        let kind = if pool["WAN"] == true { "WAN" } else { "LAN" };
        let total = pool["NumNodes"].as_u64().unwrap_or_default();
        out.push_str(&format!(
            "\n{} ({kind}):\n",
            pool["Datacenter"].as_str().unwrap_or_default()
        ));
        for (key, count) in pool["Keys"].as_object().into_iter().flatten() {
            let primary = pool["PrimaryKeys"][key].as_u64().unwrap_or_default();
            let mark = if primary > 0 { " (primary)" } else { "" };
            out.push_str(&format!("  {key} [{count}/{total}]{mark}\n"));
        }
    }
    out
}

pub async fn event(args: EventArgs) -> anyhow::Result<()> {
    let api = args.http.api()?;
    let mut query = Vec::new();
    for (key, value) in [
        ("node", &args.node),
        ("service", &args.service),
        ("tag", &args.tag),
    ] {
        if !value.is_empty() {
            query.push(format!("{key}={}", percent_encode(value)));
        }
    }
    let query = if query.is_empty() {
        String::new()
    } else {
        format!("?{}", query.join("&"))
    };
    let path = format!("/v1/event/fire/{}{query}", percent_encode(&args.name));
    let payload = Bytes::from(args.payload.unwrap_or_default());
    let body = api
        .call(Method::PUT, &path, payload)
        .await
        .context("Error firing event")?;
    let fired: Value = serde_json::from_slice(&body).context("reading the agent's answer")?;
    println!("Event ID: {}", fired["ID"].as_str().unwrap_or_default());
    Ok(())
}

/// Percent-encodes everything but unreserved characters (for regexes in query strings).
fn percent_encode(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn members_print_like_consuls() {
        let member = json!({"Name": "node-1", "Addr": "10.0.0.1", "Port": 8301, "Status": 1,
            "Tags": {"role": "consul", "dc": "dc1", "build": "0.1.0"}});
        let client = json!({"Name": "web-1", "Addr": "10.0.0.2", "Port": 8301, "Status": 4,
            "Tags": {"role": "node", "dc": "dc1", "build": "0.1.0"}});
        let table = columns([
            vec!["Node".into(), "Address".into(), "Status".into()],
            member_row(&member, false)[..3].to_vec(),
        ]);
        assert_eq!(
            table,
            "Node    Address        Status\nnode-1  10.0.0.1:8301  alive\n"
        );
        assert_eq!(
            member_row(&client, false),
            [
                "web-1",
                "10.0.0.2:8301",
                "failed",
                "client",
                "0.1.0",
                "2",
                "dc1",
                "default",
                "<default>"
            ]
        );
        assert_eq!(member_row(&client, true)[3], "role=node,dc=dc1,build=0.1.0");
    }

    #[test]
    fn keyring_lists_count_members_per_key() {
        let pools = json!([{"WAN": false, "Datacenter": "dc1", "NumNodes": 3,
            "Keys": {"K1": 3, "K2": 1}, "PrimaryKeys": {"K1": 3}}]);
        assert_eq!(
            keyring_listing(&pools),
            "\ndc1 (LAN):\n  K1 [3/3] (primary)\n  K2 [1/3]\n"
        );
    }

    #[test]
    fn filters_are_percent_encoded() {
        assert_eq!(percent_encode("^web$"), "%5Eweb%24");
        assert_eq!(percent_encode("a-b_c.d~"), "a-b_c.d~");
    }
}
