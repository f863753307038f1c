//! Operator commands that talk to the local agent's HTTP API, with Consul's names, flags,
//! output and exit statuses: `members`, `join`, `leave`, `force-leave`, `keyring`, `event`
//! here, the command families in the submodules (`kv`, `catalog`, `services`, `intention`,
//! `config`, `connect`, `operator`, `snapshot`, `info`/`version`/`reload`/`maint`, `lock`,
//! `watch`, `tls`), and `keygen` (which needs no agent, as `tls` needs none). Output layouts
//! are pure functions tested next to them.

pub mod args;
pub mod catalog;
pub mod config;
pub mod connect;
mod http;
pub mod info;
pub mod intention;
pub mod kv;
pub mod lock;
pub mod operator;
pub mod services;
pub mod snapshot;
mod text;
pub mod tls;
pub mod watch;

use std::fmt;
use std::io::{IsTerminal, Read, Write};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use hyper::body::Bytes;
use hyper::Method;
use serde_json::Value;

use self::http::Api;

/// How a command ends when not with plain success: the line Consul prints on stderr (if
/// any) and its exit status. `main` prints any other error as `Error: ...` with status 1.
#[derive(Debug)]
pub struct Exit {
    pub code: i32,
    pub message: Option<String>,
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.message {
            Some(message) => f.write_str(message),
            None => write!(f, "exit status {}", self.code),
        }
    }
}

impl std::error::Error for Exit {}

/// Ends the command with status 1 and `message` as it is on stderr (Consul's
/// `c.UI.Error(...); return 1`).
pub fn fail(message: impl Into<String>) -> anyhow::Error {
    Exit {
        code: 1,
        message: Some(message.into()),
    }
    .into()
}

/// Ends the command with `code` and nothing more on stderr.
pub fn exit_with(code: i32) -> anyhow::Error {
    Exit {
        code,
        message: None,
    }
    .into()
}

/// Consul's way of reporting a failed step: `<what>: <why>` on stderr, status 1.
trait OrFail<T> {
    fn or_fail(self, what: &str) -> anyhow::Result<T>;
}

impl<T> OrFail<T> for anyhow::Result<T> {
    fn or_fail(self, what: &str) -> anyhow::Result<T> {
        self.map_err(|err| match err.downcast::<Exit>() {
            Ok(exit) => exit.into(),
            Err(err) => fail(format!("{what}: {err:#}")),
        })
    }
}

/// Where the agent's HTTP API is, for every command that talks to it.
#[derive(Debug, Default, clap::Args)]
pub struct HttpArgs {
    /// The agent's HTTP address (default: `MESH_HTTP_ADDR`, `CONSUL_HTTP_ADDR`, or
    /// 127.0.0.1:8500).
    #[arg(long = "http-addr")]
    http_addr: Option<String>,
    /// The ACL token to send (default: `MESH_HTTP_TOKEN` or `CONSUL_HTTP_TOKEN`).
    #[arg(long = "token")]
    token: Option<String>,
    /// HTTPS: the CA to check the agent's certificate against (default: `MESH_CACERT` or
    /// `CONSUL_CACERT`, else the system's roots).
    #[arg(long = "ca-file")]
    ca_file: Option<std::path::PathBuf>,
    /// HTTPS: the client certificate to present (default: `MESH_CLIENT_CERT` or
    /// `CONSUL_CLIENT_CERT`).
    #[arg(long = "client-cert")]
    client_cert: Option<std::path::PathBuf>,
    /// HTTPS: the client certificate's key (default: `MESH_CLIENT_KEY` or `CONSUL_CLIENT_KEY`).
    #[arg(long = "client-key")]
    client_key: Option<std::path::PathBuf>,
    /// HTTPS: the name the agent's certificate must carry, instead of the address's host
    /// (default: `MESH_TLS_SERVER_NAME` or `CONSUL_TLS_SERVER_NAME`).
    #[arg(long = "tls-server-name")]
    tls_server_name: Option<String>,
}

impl HttpArgs {
    fn api(&self) -> anyhow::Result<Api> {
        let tls = self::http::TlsOptions {
            ca_file: self.ca_file.clone(),
            client_cert: self.client_cert.clone(),
            client_key: self.client_key.clone(),
            server_name: self.tls_server_name.clone(),
        };
        Api::new(self.http_addr.as_deref(), self.token.as_deref(), &tls)
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

/// Percent-encodes a KV key or other path for a URL path, keeping its `/`s.
fn encode_path(path: &str) -> String {
    path.split('/')
        .map(percent_encode)
        .collect::<Vec<_>>()
        .join("/")
}

/// A DATA argument as Consul's `kv put` and `kv import` read it: `@file` is the file's
/// contents, `-` is stdin, anything else (`-x` included) is itself.
fn read_data(arg: &str) -> anyhow::Result<Vec<u8>> {
    if let Some(path) = arg.strip_prefix('@') {
        return std::fs::read(path).map_err(|err| anyhow::anyhow!("Failed to read file: {err}"));
    }
    if arg == "-" {
        let mut data = Vec::new();
        std::io::stdin()
            .read_to_end(&mut data)
            .map_err(|err| anyhow::anyhow!("Failed to read stdin: {err}"))?;
        return Ok(data);
    }
    Ok(arg.as_bytes().to_vec())
}

/// Progress of a long transfer on stderr: redrawn in place at most ten times a second on a
/// terminal, else one line each time another `step` is done.
#[derive(Debug)]
struct Progress {
    label: &'static str,
    total: Option<u64>,
    step: u64,
    render: fn(u64) -> String,
    terminal: bool,
    next_line: u64,
    last_draw: Option<Instant>,
    /// The amount the last line (not on a terminal) showed.
    shown: Option<u64>,
}

impl Progress {
    fn new(label: &'static str, total: Option<u64>, step: u64, render: fn(u64) -> String) -> Self {
        Progress {
            label,
            total,
            step: step.max(1),
            render,
            terminal: std::io::stderr().is_terminal(),
            next_line: step.max(1),
            last_draw: None,
            shown: None,
        }
    }

    fn line(&self, done: u64) -> String {
        match self.total {
            Some(total) if total > 0 => format!(
                "{}: {}/{} ({}%)",
                self.label,
                (self.render)(done),
                (self.render)(total),
                done * 100 / total
            ),
            _ => format!("{}: {}", self.label, (self.render)(done)),
        }
    }

    fn update(&mut self, done: u64) {
        let mut stderr = std::io::stderr();
        if self.terminal {
            let due = self
                .last_draw
                .is_none_or(|at| at.elapsed() >= Duration::from_millis(100));
            if due {
                let _ = write!(stderr, "\r{}", self.line(done));
                self.last_draw = Some(Instant::now());
            }
        } else if done >= self.next_line {
            let _ = writeln!(stderr, "{}", self.line(done));
            self.shown = Some(done);
            while self.next_line <= done {
                self.next_line += self.step;
            }
        }
    }

    fn finish(&mut self, done: u64) {
        let mut stderr = std::io::stderr();
        if self.terminal {
            let _ = writeln!(stderr, "\r{}", self.line(done));
        } else if self.shown != Some(done) {
            let _ = writeln!(stderr, "{}", self.line(done));
        }
    }
}

/// A child command as Consul's `lock` and `watch` run it: with `shell`, the arguments
/// joined into one script for `$SHELL -c` (`/bin/sh` by default), else the program and its
/// arguments as given.
fn child_command(args: &[String], shell: bool) -> anyhow::Result<tokio::process::Command> {
    if shell {
        let program = std::env::var("SHELL")
            .ok()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "/bin/sh".to_owned());
        let mut command = tokio::process::Command::new(program);
        command.arg("-c").arg(args.join(" "));
        return Ok(command);
    }
    let (program, rest) = args.split_first().context("a child command is required")?;
    let mut command = tokio::process::Command::new(program);
    command.args(rest);
    Ok(command)
}

/// A Go `-flag key=value` map entry.
fn key_value(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("missing '=' in {text:?}: expected key=value"))
}

/// A Go duration flag (`15s`, `1m30s`).
fn go_duration(text: &str) -> Result<Duration, String> {
    ::config::parse_go_duration(text).map_err(|err| err.to_string())
}

/// Flushes stdout, for output written before an early exit.
pub fn flush_stdout() {
    let _ = std::io::stdout().flush();
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
    fn paths_keep_their_slashes() {
        assert_eq!(encode_path("a b/c?d/"), "a%20b/c%3Fd/");
    }

    #[test]
    fn data_arguments_are_files_stdin_or_themselves() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("value");
        std::fs::write(&file, b"from a file").unwrap();
        assert_eq!(
            read_data(&format!("@{}", file.display())).unwrap(),
            b"from a file"
        );
        assert_eq!(read_data("-x").unwrap(), b"-x");
        assert_eq!(read_data("plain").unwrap(), b"plain");
        let missing = read_data("@/nonexistent/file").unwrap_err().to_string();
        assert!(missing.starts_with("Failed to read file: "), "{missing}");
    }

    #[test]
    fn progress_lines_say_how_far() {
        let progress = Progress::new("Importing keys", Some(4000), 400, |n| n.to_string());
        assert_eq!(progress.line(1000), "Importing keys: 1000/4000 (25%)");
        let progress = Progress::new("Downloading snapshot", None, 1, text::byte_size);
        assert_eq!(progress.line(2048), "Downloading snapshot: 2KB");
    }

    #[test]
    fn filters_are_percent_encoded() {
        assert_eq!(percent_encode("^web$"), "%5Eweb%24");
        assert_eq!(percent_encode("a-b_c.d~"), "a-b_c.d~");
    }
}
