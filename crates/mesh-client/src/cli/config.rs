//! `config write|read|list|delete`: Consul's centralized config entries (`/v1/config`), with
//! Consul's flags, output and exit statuses. `write` takes the entry in HCL or JSON, as
//! Consul's `hcl.Decode` does (JSON when the text starts with `{`), and checks it with the
//! same decoder the servers use before sending it.

use clap::Subcommand;
use hyper::body::Bytes;
use hyper::Method;
use serde_json::Value;

use super::text::go_json;
use super::{encode_path, fail, percent_encode, HttpArgs};

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Creates or updates a centralized config entry.
    Write(WriteArgs),
    /// Reads a centralized config entry.
    Read(ReadArgs),
    /// Lists centralized config entries of a given kind.
    List(ListArgs),
    /// Deletes a centralized config entry.
    Delete(DeleteArgs),
}

#[derive(Debug, clap::Args)]
pub struct WriteArgs {
    #[command(flatten)]
    http: HttpArgs,
    /// Perform a Check-And-Set operation; requires -modify-index.
    #[arg(long)]
    cas: bool,
    /// The ModifyIndex of the config entry, for -cas.
    #[arg(long = "modify-index", default_value_t = 0)]
    modify_index: u64,
    /// A file holding the entry (HCL or JSON), or `-` for stdin.
    #[arg(num_args = 0..)]
    args: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct ReadArgs {
    #[command(flatten)]
    http: HttpArgs,
    /// The kind of configuration to read.
    #[arg(long, default_value = "")]
    kind: String,
    /// The name of configuration to read.
    #[arg(long, default_value = "")]
    name: String,
}

#[derive(Debug, clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    http: HttpArgs,
    /// The kind of configurations to list.
    #[arg(long, default_value = "")]
    kind: String,
}

#[derive(Debug, clap::Args)]
pub struct DeleteArgs {
    #[command(flatten)]
    http: HttpArgs,
    /// The kind of configuration to delete.
    #[arg(long, default_value = "")]
    kind: String,
    /// The name of configuration to delete.
    #[arg(long, default_value = "")]
    name: String,
    /// Perform a Check-And-Set operation; requires -modify-index.
    #[arg(long)]
    cas: bool,
    /// The ModifyIndex of the config entry, for -cas.
    #[arg(long = "modify-index", default_value_t = 0)]
    modify_index: u64,
}

pub async fn run(command: ConfigCommand) -> anyhow::Result<()> {
    match command {
        ConfigCommand::Write(args) => write(args).await,
        ConfigCommand::Read(args) => read(args).await,
        ConfigCommand::List(args) => list(args).await,
        ConfigCommand::Delete(args) => delete(args).await,
    }
}

/// A config entry to write: the body to send, and its kind and name as Consul prints them.
#[derive(Debug, PartialEq)]
struct Entry {
    body: Value,
    kind: &'static str,
    name: String,
}

/// Consul's `helpers.ParseConfigEntry`: HCL (or JSON, which HCL reads too) into an entry,
/// refused with Consul's texts when it is not one (no kind, an unknown field, ...).
fn parse_entry(text: &str) -> Result<Entry, String> {
    let body = to_json(text).map_err(|e| format!("Failed to decode config entry input: {e}"))?;
    let entry = config_entries::wire::decode_value(body.clone())
        .map_err(|e| format!("Failed to decode config entry input: {e}"))?;
    Ok(Entry {
        body,
        kind: entry.kind.as_str(),
        name: entry.name,
    })
}

/// The entry's text as JSON: JSON as it is, anything else as HCL (blocks as objects).
fn to_json(text: &str) -> Result<Value, String> {
    if text.trim_start().starts_with('{') {
        return serde_json::from_str(text).map_err(|e| e.to_string());
    }
    ::config::hcl_to_json(text)
}

/// Consul's `LoadDataSourceNoRaw`: a file, or stdin for `-`.
fn load_data(arg: &str) -> anyhow::Result<String> {
    if arg.is_empty() {
        anyhow::bail!("must specify a file path or '-' for stdin");
    }
    let path = if arg == "-" {
        arg.to_owned()
    } else {
        format!("@{arg}")
    };
    let data = super::read_data(&path)?;
    Ok(String::from_utf8_lossy(&data).into_owned())
}

fn cas_query(cas: bool, modify_index: u64) -> String {
    if cas {
        format!("?cas={modify_index}")
    } else {
        String::new()
    }
}

fn entry_path(kind: &str, name: &str) -> String {
    format!("/v1/config/{}/{}", percent_encode(kind), encode_path(name))
}

async fn write(args: WriteArgs) -> anyhow::Result<()> {
    let [source] = args.args.as_slice() else {
        return Err(fail(
            "Must provide exactly one positional argument to specify the config entry to write",
        ));
    };
    let text = load_data(source).map_err(|e| fail(format!("Failed to load data: {e:#}")))?;
    let entry = parse_entry(&text).map_err(fail)?;
    let api = args
        .http
        .api()
        .map_err(|e| fail(format!("Error connect to Consul agent: {e:#}")))?;
    let path = format!("/v1/config{}", cas_query(args.cas, args.modify_index));
    let written = api
        .put_json(Method::PUT, &path, &entry.body)
        .await
        .and_then(|body| Ok(serde_json::from_slice::<bool>(&body)?))
        .map_err(|e| {
            fail(format!(
                "Error writing config entry {}/{}: {e:#}",
                entry.kind, entry.name
            ))
        })?;
    if !written {
        return Err(fail(format!(
            "Config entry not updated: {}/{}",
            entry.kind, entry.name
        )));
    }
    println!("Config entry written: {}/{}", entry.kind, entry.name);
    Ok(())
}

/// Consul's checks of `-kind` and `-name`, in its order.
fn require(kind: &str, name: Option<&str>) -> anyhow::Result<()> {
    if kind.is_empty() {
        return Err(fail("Must specify the -kind parameter"));
    }
    if name.is_some_and(str::is_empty) {
        return Err(fail("Must specify the -name parameter"));
    }
    Ok(())
}

async fn read(args: ReadArgs) -> anyhow::Result<()> {
    require(&args.kind, Some(&args.name))?;
    let api = args
        .http
        .api()
        .map_err(|e| fail(format!("Error connect to Consul agent: {e:#}")))?;
    let entry = api
        .get_json(&entry_path(&args.kind, &args.name))
        .await
        .map_err(|e| {
            fail(format!(
                "Error reading config entry {:?} / {:?}: {e:#}",
                args.kind, args.name
            ))
        })?;
    println!("{}", go_json(&entry, "    "));
    Ok(())
}

async fn list(args: ListArgs) -> anyhow::Result<()> {
    require(&args.kind, None)?;
    let api = args
        .http
        .api()
        .map_err(|e| fail(format!("Error connect to Consul agent: {e:#}")))?;
    let entries = api
        .get_json(&format!("/v1/config/{}", percent_encode(&args.kind)))
        .await
        .map_err(|e| {
            fail(format!(
                "Error listing config entries for kind {:?}: {e:#}",
                args.kind
            ))
        })?;
    print!("{}", name_lines(&entries));
    Ok(())
}

/// `config list`: the entries' names, one per line, sorted.
fn name_lines(entries: &Value) -> String {
    let mut names: Vec<&str> = entries
        .as_array()
        .into_iter()
        .flatten()
        .map(|entry| entry["Name"].as_str().unwrap_or_default())
        .collect();
    names.sort_unstable();
    names.iter().map(|name| format!("{name}\n")).collect()
}

async fn delete(args: DeleteArgs) -> anyhow::Result<()> {
    require(&args.kind, Some(&args.name))?;
    let api = args
        .http
        .api()
        .map_err(|e| fail(format!("Error connect to Consul agent: {e:#}")))?;
    let path = format!(
        "{}{}",
        entry_path(&args.kind, &args.name),
        cas_query(args.cas, args.modify_index)
    );
    let deleted = api
        .call(Method::DELETE, &path, Bytes::new())
        .await
        .and_then(|body| {
            // Without `?cas` the answer is `{}`: deleted, or already gone.
            Ok(!args.cas || serde_json::from_slice::<bool>(&body)?)
        })
        .map_err(|e| {
            fail(format!(
                "Error deleting config entry {}/{}: {e:#}",
                args.kind, args.name
            ))
        })?;
    if !deleted {
        return Err(fail(format!(
            "Config entry not deleted: {}/{}",
            args.kind, args.name
        )));
    }
    println!("Config entry deleted: {}/{}", args.kind, args.name);
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn hcl_entries_become_json() {
        let entry = parse_entry(
            r#"
            Kind = "service-defaults"
            Name = "web"
            Protocol = "http"
            MeshGateway {
              Mode = "local"
            }
            Meta {
              team = "a"
            }
            "#,
        )
        .unwrap();
        assert_eq!(entry.kind, "service-defaults");
        assert_eq!(entry.name, "web");
        assert_eq!(
            entry.body,
            json!({"Kind": "service-defaults", "Name": "web", "Protocol": "http",
                "MeshGateway": {"Mode": "local"}, "Meta": {"team": "a"}})
        );
        // Consul's snake_case and lower-case keys, and expressions.
        let entry = parse_entry(
            "kind = \"proxy-defaults\"\nname = \"global\"\nconfig {\n  protocol = \"http\"\n  local_connect_timeout_ms = -1\n}\n",
        )
        .unwrap();
        assert_eq!(
            (entry.kind, entry.name.as_str()),
            ("proxy-defaults", "global")
        );
        assert_eq!(entry.body["config"]["local_connect_timeout_ms"], json!(-1));
    }

    #[test]
    fn json_entries_are_read_as_they_are() {
        let text = r#"  {"Kind": "service-defaults", "Name": "db", "Protocol": "tcp"}"#;
        let entry = parse_entry(text).unwrap();
        assert_eq!(
            (
                entry.kind,
                entry.name.as_str(),
                entry.body["Protocol"].clone()
            ),
            ("service-defaults", "db", json!("tcp"))
        );
    }

    #[test]
    fn entries_that_are_not_entries_are_refused_with_consuls_texts() {
        assert_eq!(
            parse_entry("Name = \"web\"").unwrap_err(),
            "Failed to decode config entry input: Payload does not contain a kind/Kind key at the top level"
        );
        let bad = parse_entry("Kind = \"service-defaults\"\nName = ").unwrap_err();
        assert!(
            bad.starts_with("Failed to decode config entry input: line "),
            "{bad}"
        );
        let bad = parse_entry("{\"Kind\": ").unwrap_err();
        assert!(
            bad.starts_with("Failed to decode config entry input: "),
            "{bad}"
        );
    }

    #[test]
    fn list_prints_sorted_names_and_paths_are_encoded() {
        let entries = json!([{"Kind": "service-defaults", "Name": "web"},
            {"Kind": "service-defaults", "Name": "api"}]);
        assert_eq!(name_lines(&entries), "api\nweb\n");
        assert_eq!(name_lines(&json!([])), "");
        assert_eq!(
            entry_path("service-defaults", "a b"),
            "/v1/config/service-defaults/a%20b"
        );
        assert_eq!(cas_query(true, 0), "?cas=0");
        assert_eq!(cas_query(false, 7), "");
    }

    #[test]
    fn read_prints_indented_json_like_consuls() {
        let entry = json!({"Kind": "service-defaults", "Name": "web", "Protocol": "http",
            "CreateIndex": 5, "ModifyIndex": 5});
        assert_eq!(
            go_json(&entry, "    "),
            "{\n    \"Kind\": \"service-defaults\",\n    \"Name\": \"web\",\n    \"Protocol\": \"http\",\n    \"CreateIndex\": 5,\n    \"ModifyIndex\": 5\n}"
        );
    }
}
