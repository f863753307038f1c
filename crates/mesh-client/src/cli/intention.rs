//! `intention create|delete|get|check|list|match`: Connect intentions, with Consul's
//! output and exit statuses (`check`: 0 allowed, 1 denied, 2 on error).

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::Subcommand;
use hyper::body::Bytes;
use hyper::{Method, StatusCode};
use serde_json::{json, Value};

use super::http::Api;
use super::text::{go_json, rfc850};
use super::{columns, encode_path, fail, key_value, percent_encode, Exit, HttpArgs};

#[derive(Debug, Subcommand)]
pub enum IntentionCommand {
    /// Creates intentions for service connections.
    Create(CreateArgs),
    /// Deletes an intention.
    Delete(TargetArgs),
    /// Shows an intention.
    Get(TargetArgs),
    /// Checks whether a connection between two services is allowed.
    Check(CheckArgs),
    /// Lists all intentions.
    List(ListArgs),
    /// Shows the intentions that match a source or destination.
    Match(MatchArgs),
}

#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    #[command(flatten)]
    http: HttpArgs,
    /// An intention that allows (the default).
    #[arg(long)]
    allow: bool,
    /// An intention that denies.
    #[arg(long)]
    deny: bool,
    /// The arguments are files holding intentions (JSON), `-` for stdin.
    #[arg(long)]
    file: bool,
    /// Replace an intention with the same source and destination.
    #[arg(long)]
    replace: bool,
    /// `key=value` metadata; repeatable.
    #[arg(long, value_name = "KEY=VALUE")]
    meta: Vec<String>,
    /// SRC DST, or with `-file` FILE...
    #[arg(num_args = 0..)]
    args: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct TargetArgs {
    #[command(flatten)]
    http: HttpArgs,
    /// SRC DST, or ID
    #[arg(num_args = 0..)]
    args: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    #[command(flatten)]
    http: HttpArgs,
    /// SRC DST
    #[arg(num_args = 0..)]
    args: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    http: HttpArgs,
}

#[derive(Debug, clap::Args)]
pub struct MatchArgs {
    #[command(flatten)]
    http: HttpArgs,
    /// Match intentions by source.
    #[arg(long)]
    source: bool,
    /// Match intentions by destination (the default).
    #[arg(long)]
    destination: bool,
    /// SRC or DST
    #[arg(num_args = 0..)]
    args: Vec<String>,
}

pub async fn run(command: IntentionCommand) -> anyhow::Result<()> {
    match command {
        IntentionCommand::Create(args) => create(args).await,
        IntentionCommand::Delete(args) => delete(args).await,
        IntentionCommand::Get(args) => get(args).await,
        IntentionCommand::Check(args) => check(args).await,
        IntentionCommand::List(args) => list(args).await,
        IntentionCommand::Match(args) => matching(args).await,
    }
}

/// `[partition/][namespace/]name`, as Consul's `ParseIntentionTarget`.
fn parse_target(input: &str) -> Result<(String, String, String), String> {
    let parts: Vec<&str> = input.split('/').collect();
    match parts.as_slice() {
        [name] => Ok((String::new(), String::new(), (*name).to_owned())),
        [ns, name] => Ok((String::new(), (*ns).to_owned(), (*name).to_owned())),
        [partition, ns, name] => Ok((
            (*partition).to_owned(),
            (*ns).to_owned(),
            (*name).to_owned(),
        )),
        _ => Err("input can contain at most two '/'".to_owned()),
    }
}

/// A source or destination as Consul shows it: the default namespace and partition left out.
fn shown_name(partition: &Value, namespace: &Value, name: &Value) -> String {
    fn not_default(v: &Value) -> Option<&str> {
        v.as_str().filter(|s| !s.is_empty() && *s != "default")
    }
    let name = name.as_str().unwrap_or_default();
    match (not_default(partition), not_default(namespace)) {
        (Some(p), ns) => format!("{p}/{}/{name}", ns.unwrap_or("default")),
        (None, Some(ns)) => format!("{ns}/{name}"),
        (None, None) => name.to_owned(),
    }
}

fn source(ixn: &Value) -> String {
    shown_name(
        &ixn["SourcePartition"],
        &ixn["SourceNS"],
        &ixn["SourceName"],
    )
}

fn destination(ixn: &Value) -> String {
    shown_name(
        &ixn["DestinationPartition"],
        &ixn["DestinationNS"],
        &ixn["DestinationName"],
    )
}

/// `web => db (allow)`, as Consul's `Intention.String`.
fn summary(ixn: &Value) -> String {
    format!(
        "{} => {} ({})",
        source(ixn),
        destination(ixn),
        ixn["Action"].as_str().unwrap_or_default()
    )
}

async fn create(args: CreateArgs) -> anyhow::Result<()> {
    if args.allow && args.deny {
        return Err(fail("Only one of -allow or -deny may be specified."));
    }
    let action = if args.deny { "deny" } else { "allow" };
    let intentions =
        intentions_from_args(&args, action).map_err(|err| fail(format!("Error: {err}")))?;
    let api = args.http.api()?;
    for ixn in intentions {
        let (src, dst) = (exact_name(&ixn, "Source"), exact_name(&ixn, "Destination"));
        if args.replace {
            let old = get_exact(&api, &src, &dst).await.map_err(|err| {
                fail(format!(
                    "Error looking up intention for replacement with source {src:?} and destination {dst:?}: {err:#}"
                ))
            })?;
            if let Some(old) = old {
                let id = old["ID"].as_str().unwrap_or_default();
                let mut ixn = ixn.clone();
                ixn["ID"] = json!(id);
                api.put_json(
                    Method::PUT,
                    &format!("/v1/connect/intentions/{}", encode_path(id)),
                    &ixn,
                )
                .await
                .map_err(|err| {
                    fail(format!(
                        "Error replacing intention with source {src:?} and destination {dst:?}: {err:#}"
                    ))
                })?;
                continue;
            }
        }
        api.put_json(Method::POST, "/v1/connect/intentions", &ixn)
            .await
            .map_err(|err| {
                fail(format!(
                    "Error creating intention {:?}: {err:#}",
                    summary(&ixn)
                ))
            })?;
        println!("Created: {}", summary(&ixn));
    }
    Ok(())
}

/// `namespace/name` of a side of an intention body, as the `exact` endpoints take it.
fn exact_name(ixn: &Value, side: &str) -> String {
    let name = ixn[format!("{side}Name")].as_str().unwrap_or_default();
    match ixn[format!("{side}NS")]
        .as_str()
        .filter(|ns| !ns.is_empty())
    {
        Some(ns) => format!("{ns}/{name}"),
        None => name.to_owned(),
    }
}

/// The intention bodies to create: SRC DST with the action and metadata flags, or the
/// files' intentions.
fn intentions_from_args(args: &CreateArgs, action: &str) -> Result<Vec<Value>, String> {
    if args.file {
        return args
            .args
            .iter()
            .map(|path| {
                let data = super::read_data(&if path == "-" {
                    path.clone()
                } else {
                    format!("@{path}")
                })
                .map_err(|e| e.to_string())?;
                let ixn: Value = serde_json::from_slice(&data).map_err(|e| e.to_string())?;
                if ixn["Permissions"].as_array().is_some_and(|p| !p.is_empty()) {
                    return Err(format!(
                        "cannot create L7 intention from file {:?} using this CLI; use 'consul config write' instead",
                        PathBuf::from(path)
                    ));
                }
                Ok(ixn)
            })
            .collect();
    }
    let [src, dst] = args.args.as_slice() else {
        return Err("Must specify two arguments: source and destination".to_owned());
    };
    let (src_partition, src_ns, src_name) =
        parse_target(src).map_err(|e| format!("Invalid intention source: {e}"))?;
    let (dst_partition, dst_ns, dst_name) =
        parse_target(dst).map_err(|e| format!("Invalid intention destination: {e}"))?;
    let mut meta = BTreeMap::new();
    for entry in &args.meta {
        let (k, v) = key_value(entry)?;
        meta.insert(k, v);
    }
    let mut ixn = json!({
        "SourceName": src_name,
        "DestinationName": dst_name,
        "SourceType": "consul",
        "Action": action,
    });
    for (field, value) in [
        ("SourcePartition", src_partition),
        ("SourceNS", src_ns),
        ("DestinationPartition", dst_partition),
        ("DestinationNS", dst_ns),
    ] {
        if !value.is_empty() {
            ixn[field] = json!(value);
        }
    }
    if !meta.is_empty() {
        ixn["Meta"] = json!(meta);
    }
    Ok(vec![ixn])
}

/// The intention from `source` to `destination`, if there is one.
async fn get_exact(api: &Api, source: &str, destination: &str) -> anyhow::Result<Option<Value>> {
    let path = format!(
        "/v1/connect/intentions/exact?source={}&destination={}",
        percent_encode(source),
        percent_encode(destination)
    );
    let reply = api.send(Method::GET, &path, Bytes::new()).await?;
    if reply.status == StatusCode::NOT_FOUND {
        return Ok(None);
    }
    let body = reply.ok()?;
    Ok(Some(serde_json::from_slice(&body)?))
}

/// The intention that SRC DST or ID names, as Consul's `GetFromArgs`.
async fn from_args(api: &Api, args: &[String]) -> anyhow::Result<Value> {
    match args {
        [id] => {
            let path = format!("/v1/connect/intentions/{}", encode_path(id));
            let reply = api
                .send(Method::GET, &path, Bytes::new())
                .await
                .map_err(|err| fail(format!("Error reading the intention: {err:#}")))?;
            if reply.status == StatusCode::NOT_FOUND {
                return Err(fail(format!("Intention not found with ID {id:?}")));
            }
            let body = reply
                .ok()
                .map_err(|err| fail(format!("Error reading the intention: {err:#}")))?;
            Ok(serde_json::from_slice(&body)?)
        }
        [source, destination] => get_exact(api, source, destination)
            .await
            .map_err(|err| fail(format!("Error reading the intention: {err:#}")))?
            .ok_or_else(|| {
                fail(format!(
                    "Intention not found with source {source:?} and destination {destination:?}"
                ))
            }),
        _ => Err(fail("command requires exactly 1 or 2 arguments")),
    }
}

async fn get(args: TargetArgs) -> anyhow::Result<()> {
    let api = args.http.api()?;
    let ixn = from_args(&api, &args.args).await?;
    print!("{}", details(&ixn));
    Ok(())
}

/// `intention get`: the intention's fields one per line, then any L7 permissions as JSON.
fn details(ixn: &Value) -> String {
    let text = |field: &str| ixn[field].as_str().unwrap_or_default().to_owned();
    let mut rows = vec![
        vec!["Source:".to_owned(), source(ixn)],
        vec!["Destination:".to_owned(), destination(ixn)],
    ];
    for (label, field) in [
        ("Action:", "Action"),
        ("ID:", "ID"),
        ("Description:", "Description"),
    ] {
        if !text(field).is_empty() {
            rows.push(vec![label.to_owned(), text(field)]);
        }
    }
    let meta: BTreeMap<&String, &Value> = ixn["Meta"].as_object().into_iter().flatten().collect();
    for (k, v) in meta {
        rows.push(vec![
            format!("Meta[{k}]:"),
            v.as_str().unwrap_or_default().to_owned(),
        ]);
    }
    let created = text("CreatedAt");
    rows.push(vec![
        "Created At:".to_owned(),
        rfc850(&created).unwrap_or(created),
    ]);
    let mut out = columns(rows);
    if let Some(permissions) = ixn["Permissions"].as_array().filter(|p| !p.is_empty()) {
        out.push_str(&format!(
            "Permissions:\n{}\n",
            go_json(&Value::Array(permissions.clone()), "  ")
        ));
    }
    out
}

async fn delete(args: TargetArgs) -> anyhow::Result<()> {
    let api = args.http.api()?;
    let deleted = match args.args.as_slice() {
        [id] => {
            let path = format!("/v1/connect/intentions/{}", encode_path(id));
            api.call(Method::DELETE, &path, Bytes::new()).await
        }
        [source, destination] => {
            let path = format!(
                "/v1/connect/intentions/exact?source={}&destination={}",
                percent_encode(source),
                percent_encode(destination)
            );
            api.call(Method::DELETE, &path, Bytes::new()).await
        }
        _ => return Err(fail("command requires exactly 1 or 2 arguments")),
    };
    deleted.map_err(|err| fail(format!("Error deleting the intention: {err:#}")))?;
    println!("Intention deleted.");
    Ok(())
}

async fn check(args: CheckArgs) -> anyhow::Result<()> {
    let error = |message: String| -> anyhow::Error {
        Exit {
            code: 2,
            message: Some(message),
        }
        .into()
    };
    let [source, destination] = args.args.as_slice() else {
        return Err(error(
            "Error: command requires exactly two arguments: src and dst".to_owned(),
        ));
    };
    let api = args.http.api().map_err(|err| error(format!("{err:#}")))?;
    let path = format!(
        "/v1/connect/intentions/check?source={}&destination={}",
        percent_encode(source),
        percent_encode(destination)
    );
    let answer = api
        .get_json(&path)
        .await
        .map_err(|err| error(format!("Error checking the connection: {err:#}")))?;
    if answer["Allowed"] == json!(true) {
        println!("Allowed");
        Ok(())
    } else {
        println!("Denied");
        Err(super::exit_with(1))
    }
}

async fn list(args: ListArgs) -> anyhow::Result<()> {
    let api = args.http.api()?;
    let ixns = api
        .get_json("/v1/connect/intentions")
        .await
        .map_err(|err| fail(format!("Failed to retrieve the intentions list: {err:#}")))?;
    let ixns = ixns.as_array().cloned().unwrap_or_default();
    if ixns.is_empty() {
        return Err(Exit {
            code: 2,
            message: Some("There are no intentions.".to_owned()),
        }
        .into());
    }
    print!("{}", list_table(&ixns));
    Ok(())
}

/// `intention list`: ID, Source, Action, Destination, Precedence.
fn list_table(ixns: &[Value]) -> String {
    let header = ["ID", "Source", "Action", "Destination", "Precedence"].map(String::from);
    let rows = ixns.iter().map(|ixn| {
        let text = |field: &str| ixn[field].as_str().unwrap_or_default().to_owned();
        vec![
            text("ID"),
            text("SourceName"),
            text("Action"),
            text("DestinationName"),
            ixn["Precedence"].as_u64().unwrap_or_default().to_string(),
        ]
    });
    columns(std::iter::once(header.into()).chain(rows))
}

async fn matching(args: MatchArgs) -> anyhow::Result<()> {
    let [name] = args.args.as_slice() else {
        return Err(fail(
            "Error: command requires exactly one argument: src or dst",
        ));
    };
    if args.source && args.destination {
        return Err(fail(
            "Error: only one of -source or -destination may be specified",
        ));
    }
    let by = if args.source { "source" } else { "destination" };
    let api = args.http.api()?;
    let path = format!(
        "/v1/connect/intentions/match?by={by}&name={}",
        percent_encode(name)
    );
    let matches = api
        .get_json(&path)
        .await
        .map_err(|err| fail(format!("Error matching the connection: {err:#}")))?;
    for ixn in matches[name.as_str()].as_array().into_iter().flatten() {
        println!("{}", summary(ixn));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn intention() -> Value {
        json!({
            "ID": "8f2e-1", "SourceNS": "default", "SourceName": "web",
            "DestinationNS": "default", "DestinationName": "db", "Action": "allow",
            "Precedence": 9, "Meta": {"team": "a", "env": "prod"},
            "CreatedAt": "2024-05-01T10:00:00.5Z",
        })
    }

    #[test]
    fn targets_parse_like_consuls() {
        assert_eq!(
            parse_target("web"),
            Ok((String::new(), String::new(), "web".into()))
        );
        assert_eq!(
            parse_target("ns/web"),
            Ok((String::new(), "ns".into(), "web".into()))
        );
        assert_eq!(
            parse_target("p/ns/web"),
            Ok(("p".into(), "ns".into(), "web".into()))
        );
        assert!(parse_target("a/b/c/d").is_err());
    }

    #[test]
    fn intentions_print_like_consuls() {
        let ixn = intention();
        assert_eq!(summary(&ixn), "web => db (allow)");
        let mut other = ixn.clone();
        other["SourceNS"] = json!("team");
        assert_eq!(summary(&other), "team/web => db (allow)");
        assert_eq!(
            details(&ixn),
            "Source:       web\n\
             Destination:  db\n\
             Action:       allow\n\
             ID:           8f2e-1\n\
             Meta[env]:    prod\n\
             Meta[team]:   a\n\
             Created At:   Wednesday, 01-May-24 10:00:00 UTC\n"
        );
        assert_eq!(
            list_table(&[ixn]),
            "ID      Source  Action  Destination  Precedence\n\
             8f2e-1  web     allow   db           9\n"
        );
    }

    #[test]
    fn create_builds_the_body_from_arguments() {
        let args = CreateArgs {
            http: HttpArgs::default(),
            allow: false,
            deny: true,
            file: false,
            replace: false,
            meta: vec!["k=v".into()],
            args: vec!["web".into(), "ns/db".into()],
        };
        let ixns = intentions_from_args(&args, "deny").unwrap();
        assert_eq!(
            ixns,
            [
                json!({"SourceName": "web", "DestinationName": "db", "SourceType": "consul",
                "Action": "deny", "DestinationNS": "ns", "Meta": {"k": "v"}})
            ]
        );
        assert_eq!(exact_name(&ixns[0], "Destination"), "ns/db");
        let args = CreateArgs {
            args: vec!["web".into()],
            ..args
        };
        assert!(intentions_from_args(&args, "allow").is_err());
    }
}
