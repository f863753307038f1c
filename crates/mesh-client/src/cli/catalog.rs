//! `catalog datacenters|nodes|services`: Consul's catalog listings.

use std::collections::BTreeMap;

use clap::Subcommand;
use hyper::body::Bytes;
use hyper::{Method, StatusCode};
use serde_json::Value;

use super::text::tabwriter;
use super::{columns, encode_path, fail, percent_encode, HttpArgs, OrFail};

#[derive(Debug, Subcommand)]
pub enum CatalogCommand {
    /// Lists all known datacenters.
    Datacenters(DatacentersArgs),
    /// Lists all nodes in the datacenter.
    Nodes(NodesArgs),
    /// Lists all registered services in the datacenter.
    Services(ServicesArgs),
}

#[derive(Debug, clap::Args)]
pub struct DatacentersArgs {
    #[command(flatten)]
    http: HttpArgs,
    #[arg(num_args = 0..)]
    args: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct NodesArgs {
    #[command(flatten)]
    http: HttpArgs,
    /// Full node IDs, tagged addresses and metadata.
    #[arg(long)]
    detailed: bool,
    /// Only nodes providing this service (ID or name).
    #[arg(long, default_value = "")]
    service: String,
    /// Only nodes with this `key=value` metadata; repeatable.
    #[arg(long = "node-meta", value_name = "KEY=VALUE")]
    node_meta: Vec<String>,
    #[arg(num_args = 0..)]
    args: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct ServicesArgs {
    #[command(flatten)]
    http: HttpArgs,
    /// Only the services of this node (ID or name).
    #[arg(long, default_value = "")]
    node: String,
    /// Only services on nodes with this `key=value` metadata; repeatable.
    #[arg(long = "node-meta", value_name = "KEY=VALUE")]
    node_meta: Vec<String>,
    /// Each service's tags beside it.
    #[arg(long)]
    tags: bool,
    #[arg(num_args = 0..)]
    args: Vec<String>,
}

pub async fn run(command: CatalogCommand) -> anyhow::Result<()> {
    match command {
        CatalogCommand::Datacenters(args) => datacenters(args).await,
        CatalogCommand::Nodes(args) => nodes(args).await,
        CatalogCommand::Services(args) => services(args).await,
    }
}

fn no_arguments(args: &[String]) -> anyhow::Result<()> {
    if args.is_empty() {
        Ok(())
    } else {
        Err(fail(format!(
            "Too many arguments (expected 0, got {})",
            args.len()
        )))
    }
}

/// `?node-meta=k:v&...` from `-node-meta k=v` flags.
fn node_meta_query(flags: &[String]) -> anyhow::Result<String> {
    let mut query = String::new();
    for flag in flags {
        let (key, value) = super::key_value(flag).map_err(fail)?;
        query.push_str(&format!(
            "&node-meta={}:{}",
            percent_encode(&key),
            percent_encode(&value)
        ));
    }
    Ok(query)
}

async fn datacenters(args: DatacentersArgs) -> anyhow::Result<()> {
    no_arguments(&args.args)?;
    let api = args.http.api()?;
    let dcs = api
        .get_json("/v1/catalog/datacenters")
        .await
        .or_fail("Error listing datacenters")?;
    for dc in dcs.as_array().into_iter().flatten() {
        println!("{}", dc.as_str().unwrap_or_default());
    }
    Ok(())
}

async fn nodes(args: NodesArgs) -> anyhow::Result<()> {
    no_arguments(&args.args)?;
    let api = args.http.api()?;
    let meta = node_meta_query(&args.node_meta)?;
    let nodes: Vec<Value> = if args.service.is_empty() {
        let nodes = api
            .get_json(&format!("/v1/catalog/nodes?{meta}"))
            .await
            .or_fail("Error listing nodes")?;
        nodes.as_array().cloned().unwrap_or_default()
    } else {
        let path = format!("/v1/catalog/service/{}?{meta}", encode_path(&args.service));
        let instances = api
            .get_json(&path)
            .await
            .or_fail("Error listing nodes for service")?;
        instances
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| {
                serde_json::json!({
                    "ID": s["ID"], "Node": s["Node"], "Address": s["Address"],
                    "Datacenter": s["Datacenter"], "TaggedAddresses": s["TaggedAddresses"],
                    "Meta": s["NodeMeta"],
                })
            })
            .collect()
    };
    if nodes.is_empty() {
        return Err(super::Exit {
            code: 0,
            message: Some("No nodes match the given query - try expanding your search.".into()),
        }
        .into());
    }
    print!("{}", nodes_table(&nodes, args.detailed));
    Ok(())
}

/// `catalog nodes`: Node, ID (its first group unless `detailed`), Address, DC, and with
/// `detailed` the tagged addresses and metadata as sorted `k=v` lists.
fn nodes_table(nodes: &[Value], detailed: bool) -> String {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let pairs = |v: &Value| {
        let sorted: BTreeMap<&String, String> = v
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k, text(v)))
            .collect();
        sorted
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut header: Vec<String> = ["Node", "ID", "Address", "DC"].map(String::from).into();
    if detailed {
        header.extend(["TaggedAddresses".into(), "Meta".into()]);
    }
    let rows = nodes.iter().map(|node| {
        let id = text(&node["ID"]);
        let id = if detailed {
            id
        } else {
            match id.find('-') {
                Some(at) if at > 0 => id[..at].to_owned(),
                _ => id,
            }
        };
        let mut row = vec![
            text(&node["Node"]),
            id,
            text(&node["Address"]),
            text(&node["Datacenter"]),
        ];
        if detailed {
            row.extend([pairs(&node["TaggedAddresses"]), pairs(&node["Meta"])]);
        }
        row
    });
    columns(std::iter::once(header).chain(rows))
}

async fn services(args: ServicesArgs) -> anyhow::Result<()> {
    no_arguments(&args.args)?;
    let api = args.http.api()?;
    let meta = node_meta_query(&args.node_meta)?;
    let mut services: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t.as_str().map(str::to_owned))
            .collect()
    };
    if args.node.is_empty() {
        let listed = api
            .get_json(&format!("/v1/catalog/services?{meta}"))
            .await
            .or_fail("Error listing services")?;
        for (name, tags) in listed.as_object().into_iter().flatten() {
            services.insert(name.clone(), strings(tags));
        }
    } else {
        let path = format!("/v1/catalog/node/{}?{meta}", encode_path(&args.node));
        let node = async {
            let reply = api.send(Method::GET, &path, Bytes::new()).await?;
            if reply.status == StatusCode::NOT_FOUND {
                return Ok(Value::Null);
            }
            let body = reply.ok()?;
            Ok(serde_json::from_slice(&body)?)
        }
        .await
        .or_fail("Error listing services for node")?;
        for service in node["Services"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(_, s)| s)
        {
            let name = service["Service"].as_str().unwrap_or_default().to_owned();
            services
                .entry(name)
                .or_default()
                .extend(strings(&service["Tags"]));
        }
    }
    if services.is_empty() {
        return Err(super::Exit {
            code: 0,
            message: Some("No services match the given query - try expanding your search.".into()),
        }
        .into());
    }
    println!("{}", services_listing(&services, args.tags));
    Ok(())
}

/// `catalog services`: one name per line, or with `tags` each name and its sorted tags.
fn services_listing(services: &BTreeMap<String, Vec<String>>, tags: bool) -> String {
    if !tags {
        return services.keys().cloned().collect::<Vec<_>>().join("\n");
    }
    let lines: String = services
        .iter()
        .map(|(name, tags)| {
            let mut tags = tags.clone();
            tags.sort();
            format!("{name}\t{}\n", tags.join(","))
        })
        .collect();
    tabwriter(&lines, 0, 6).trim().to_owned()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn nodes_print_like_consuls() {
        let nodes = [json!({
            "ID": "f1b2c3d4-0000-1111-2222-333344445555", "Node": "node-1",
            "Address": "10.0.0.1", "Datacenter": "dc1",
            "TaggedAddresses": {"wan": "1.2.3.4", "lan": "10.0.0.1"}, "Meta": {"rack": "a"},
        })];
        assert_eq!(
            nodes_table(&nodes, false),
            "Node    ID        Address   DC\nnode-1  f1b2c3d4  10.0.0.1  dc1\n"
        );
        let detailed = nodes_table(&nodes, true);
        assert!(
            detailed.ends_with(
                "node-1  f1b2c3d4-0000-1111-2222-333344445555  10.0.0.1  dc1  lan=10.0.0.1, wan=1.2.3.4  rack=a\n"
            ),
            "{detailed}"
        );
        assert!(detailed.starts_with("Node    ID  "), "{detailed}");
    }

    #[test]
    fn services_list_with_and_without_tags() {
        let services = BTreeMap::from([
            ("web".to_owned(), vec!["v2".to_owned(), "prod".to_owned()]),
            ("consul".to_owned(), vec![]),
        ]);
        assert_eq!(services_listing(&services, false), "consul\nweb");
        assert_eq!(
            services_listing(&services, true),
            "consul      \nweb         prod,v2"
        );
    }
}
