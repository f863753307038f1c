//! `services register|deregister`: services of the local agent, from Consul's service
//! definition files (JSON or HCL, read the way the agent reads its config files) or flags.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::Subcommand;
use hyper::body::Bytes;
use hyper::Method;
use serde_json::{json, Value};

use super::{encode_path, fail, key_value, HttpArgs};

#[derive(Debug, Subcommand)]
pub enum ServicesCommand {
    /// Registers services with the local agent.
    Register(RegisterArgs),
    /// Deregisters services from the local agent.
    Deregister(DeregisterArgs),
}

#[derive(Debug, clap::Args)]
pub struct RegisterArgs {
    #[command(flatten)]
    http: HttpArgs,
    /// The service's ID (default: its name).
    #[arg(long, default_value = "")]
    id: String,
    /// The service's name, to register one from flags rather than files.
    #[arg(long, default_value = "")]
    name: String,
    #[arg(long, default_value = "")]
    address: String,
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// A tag; repeatable.
    #[arg(long = "tag")]
    tags: Vec<String>,
    /// `key=value` metadata; repeatable.
    #[arg(long, value_name = "KEY=VALUE")]
    meta: Vec<String>,
    /// `key=address:port`; repeatable.
    #[arg(long = "tagged-address", value_name = "KEY=ADDRESS:PORT")]
    tagged_addresses: Vec<String>,
    /// The service's kind (`connect-proxy`, ...).
    #[arg(long, default_value = "")]
    kind: String,
    /// Service definition files (`.json` or `.hcl`).
    #[arg(num_args = 0..)]
    files: Vec<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct DeregisterArgs {
    #[command(flatten)]
    http: HttpArgs,
    /// The ID of the service to deregister, rather than those in files.
    #[arg(long, default_value = "")]
    id: String,
    /// Service definition files (`.json` or `.hcl`).
    #[arg(num_args = 0..)]
    files: Vec<PathBuf>,
}

pub async fn run(command: ServicesCommand) -> anyhow::Result<()> {
    match command {
        ServicesCommand::Register(args) => register(args).await,
        ServicesCommand::Deregister(args) => deregister(args).await,
    }
}

/// The service definitions in `files` (`service` or `services` blocks), as agent API
/// registration bodies. Like Consul, the files are read as agent config files in dev mode,
/// so every form the agent accepts (JSON or HCL, snake_case or Go's names) works here.
fn services_from_files(files: &[PathBuf]) -> anyhow::Result<Vec<Value>> {
    let overrides = config::Overrides {
        dev: Some(true),
        ..Default::default()
    };
    let loaded = config::load(files, &[], &overrides)?;
    let (services, _) = agent::definition::from_config(&loaded.services, &[])?;
    Ok(services.iter().map(|s| s.to_json()).collect())
}

/// The registration `-name` and the other flags describe.
fn service_from_flags(args: &RegisterArgs) -> anyhow::Result<Value> {
    let mut meta = BTreeMap::new();
    for entry in &args.meta {
        let (k, v) = key_value(entry).map_err(fail)?;
        meta.insert(k, v);
    }
    let mut tagged = serde_json::Map::new();
    for entry in &args.tagged_addresses {
        let (k, v) = key_value(entry).map_err(fail)?;
        let (address, port) =
            service_address(&v).map_err(|why| fail(format!("Invalid Tagged Address: {why}")))?;
        tagged.insert(k, json!({"Address": address, "Port": port}));
    }
    Ok(json!({
        "Kind": args.kind,
        "ID": args.id,
        "Name": args.name,
        "Address": args.address,
        "Port": args.port,
        "Tags": args.tags,
        "Meta": meta,
        "TaggedAddresses": tagged,
    }))
}

/// `host:port` or `host` (port 0), as Consul's `api.ParseServiceAddr`.
fn service_address(text: &str) -> Result<(String, u16), String> {
    match text.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && !port.is_empty() => {
            let port = port
                .parse()
                .map_err(|_| format!("invalid port {port:?} in {text:?}"))?;
            Ok((host.trim_matches(['[', ']']).to_owned(), port))
        }
        _ => Ok((text.to_owned(), 0)),
    }
}

async fn register(args: RegisterArgs) -> anyhow::Result<()> {
    if args.files.is_empty() && args.name.is_empty() {
        return Err(fail(
            "Service registration requires at least one argument or flags.",
        ));
    }
    if !args.files.is_empty() && !args.name.is_empty() {
        return Err(fail(
            "Service registration requires arguments or -id, not both.",
        ));
    }
    let services = if args.files.is_empty() {
        vec![service_from_flags(&args)?]
    } else {
        services_from_files(&args.files).map_err(|err| fail(format!("Error: {err:#}")))?
    };
    let api = args.http.api()?;
    for service in &services {
        let name = service["Name"].as_str().unwrap_or_default();
        api.put_json(Method::PUT, "/v1/agent/service/register", service)
            .await
            .map_err(|err| fail(format!("Error registering service {name:?}: {err:#}")))?;
        println!("Registered service: {name}");
    }
    Ok(())
}

async fn deregister(args: DeregisterArgs) -> anyhow::Result<()> {
    if args.files.is_empty() && args.id.is_empty() {
        return Err(fail(
            "Service deregistration requires at least one argument or -id.",
        ));
    }
    if !args.files.is_empty() && !args.id.is_empty() {
        return Err(fail(
            "Service deregistration requires arguments or -id, not both.",
        ));
    }
    let services = if args.files.is_empty() {
        vec![json!({"ID": args.id})]
    } else {
        services_from_files(&args.files).map_err(|err| fail(format!("Error: {err:#}")))?
    };
    let api = args.http.api()?;
    for service in &services {
        let id = [&service["ID"], &service["Name"]]
            .into_iter()
            .filter_map(Value::as_str)
            .find(|s| !s.is_empty());
        let Some(id) = id else { continue };
        let path = format!("/v1/agent/service/deregister/{}", encode_path(id));
        api.call(Method::PUT, &path, Bytes::new())
            .await
            .map_err(|err| fail(format!("Error deregistering service {id:?}: {err:#}")))?;
        println!("Deregistered service: {id}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definition_files_are_read_as_json_or_hcl() {
        let dir = tempfile::tempdir().unwrap();
        let json_file = dir.path().join("web.json");
        std::fs::write(
            &json_file,
            r#"{"service": {"name": "web", "port": 80, "tags": ["v1"],
                "check": {"ttl": "10s"}}}"#,
        )
        .unwrap();
        let hcl_file = dir.path().join("more.hcl");
        std::fs::write(
            &hcl_file,
            "services = [\n  { id = \"db-1\"\n    name = \"db\"\n    port = 5432 },\n  { name = \"cache\" }\n]\n",
        )
        .unwrap();
        let services = services_from_files(&[json_file, hcl_file]).unwrap();
        let names: Vec<&str> = services.iter().filter_map(|s| s["Name"].as_str()).collect();
        assert_eq!(names, ["web", "db", "cache"]);
        assert_eq!(services[0]["Port"], 80);
        assert_eq!(services[0]["Tags"], json!(["v1"]));
        assert_eq!(services[0]["Check"]["TTL"], "10s");
        assert_eq!(services[1]["ID"], "db-1");

        let wrong = dir.path().join("web.yaml");
        std::fs::write(&wrong, "service: {}").unwrap();
        assert!(services_from_files(&[wrong]).is_err());
    }

    #[test]
    fn tagged_addresses_take_consuls_forms() {
        assert_eq!(service_address("10.0.0.1:80"), Ok(("10.0.0.1".into(), 80)));
        assert_eq!(service_address("[::1]:80"), Ok(("::1".into(), 80)));
        assert_eq!(
            service_address("example.com"),
            Ok(("example.com".into(), 0))
        );
        assert!(service_address("host:http").is_err());
    }
}
