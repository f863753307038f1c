//! `/v1/catalog/*`: register, deregister, datacenters, nodes, services, service/:name,
//! connect/:name, node/:node and node-services/:node.
//!
//! Every read blocks on its own index (`service.<name>`, `node.<name>`, a table), so a watcher
//! of one service never wakes for a change to another.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use catalog::wire::{self as cw, DeregisterBody, RegisterBody, RegisterError};
use catalog::{topic, CatalogOp, Node, Service};
use serde_json::{json, Map, Value};

use crate::authz::Authz;
use crate::blocking::{self, Watch};
use crate::error::ApiError;
use crate::kv::{read_body, write_bool};
use crate::params::{check_dc, Params, ReadOptions};
use crate::render;
use crate::Ctx;

/// Registrations are small; Consul's default limit for request bodies is far above this.
const MAX_BODY: usize = 4 * 1024 * 1024;

pub async fn register(
    State(ctx): State<Ctx>,
    authz: Authz,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref());
    check_dc(&ctx, &params)?;
    let body = read_body(&headers, body, MAX_BODY, too_large).await?;
    let request: RegisterBody = cw::decode(&body).map_err(decode_failed)?;
    let registration =
        request
            .into_registration(&ctx.agent.datacenter)
            .map_err(|err| match err {
                RegisterError::BadRequest(text) => ApiError::BadRequest(text),
                RegisterError::Catalog(err) => ApiError::Internal(err.to_string()),
            })?;
    let op = CatalogOp::Register(Box::new(registration));
    // Refuse what the state machine would refuse before it costs a raft entry.
    {
        let state = ctx.node.reader().state();
        if let CatalogOp::Register(registration) = &op {
            state
                .catalog
                .validate(registration)
                .map_err(|err| ApiError::Internal(err.to_string()))?;
        }
        vet(&authz, &state.catalog, &op)?;
    }
    write_bool(&ctx, consensus::Op::Catalog(op), params.pretty()).await
}

pub async fn deregister(
    State(ctx): State<Ctx>,
    authz: Authz,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref());
    check_dc(&ctx, &params)?;
    let body = read_body(&headers, body, MAX_BODY, too_large).await?;
    let request: DeregisterBody = cw::decode(&body).map_err(decode_failed)?;
    let op = request
        .into_op()
        .ok_or_else(|| ApiError::Internal("Must provide node".into()))?;
    vet(&authz, &ctx.node.reader().state().catalog, &op)?;
    write_bool(&ctx, consensus::Op::Catalog(op), params.pretty()).await
}

/// Consul's checks of a catalog write (`consensus::vet_catalog_op`), as this request's 403.
fn vet(authz: &Authz, catalog: &catalog::Catalog, op: &CatalogOp) -> Result<(), ApiError> {
    let Some(authorizer) = authz.authorizer() else {
        return Ok(());
    };
    consensus::vet_catalog_op(authorizer, catalog, op)
        .map_err(|missing| authz.denied(missing.resource, Some(&missing.segment), missing.access))
}

pub async fn datacenters(
    State(ctx): State<Ctx>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref());
    Ok(render::json(&[&ctx.agent.datacenter], params.pretty()))
}

pub async fn nodes(
    State(ctx): State<Ctx>,
    authz: Authz,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref());
    let read = CatalogRead::parse(&ctx, &params, "catalog/nodes", authz)?;
    read.run(&ctx, topic::NODES, |catalog, list| {
        list.keep(
            catalog
                .nodes()
                .filter(|n| list.node_meta_matches(n) && list.node_readable(&n.name))
                .map(cw::node),
        )
    })
    .await
}

pub async fn services(
    State(ctx): State<Ctx>,
    authz: Authz,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref());
    let read = CatalogRead::parse(&ctx, &params, "catalog/services", authz)?;
    read.run(&ctx, topic::SERVICES, |catalog, list| {
        let mut out: Map<String, Value> = Map::new();
        let mut instances: Vec<(&Node, &Service)> = catalog.service_instances().collect();
        instances.sort_by(|a, b| a.1.service.cmp(&b.1.service));
        for (node, service) in instances {
            if !list.node_meta_matches(node)
                || !list.filter_matches(&cw::service_node(node, service))
                || !list.service_readable(&service.service)
            {
                continue;
            }
            let tags = out
                .entry(service.service.clone())
                .or_insert_with(|| json!([]));
            if let Value::Array(tags) = tags {
                for tag in &service.tags {
                    if !tags.iter().any(|t| t == tag) {
                        tags.push(json!(tag));
                    }
                }
            }
        }
        Value::Object(out)
    })
    .await
}

/// `/v1/catalog/service/` with no name.
pub async fn missing_service_name() -> ApiError {
    ApiError::BadRequest("Missing service name".into())
}

pub async fn service(
    State(ctx): State<Ctx>,
    authz: Authz,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    service_nodes(ctx, authz, name, query, false).await
}

pub async fn connect(
    State(ctx): State<Ctx>,
    authz: Authz,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    service_nodes(ctx, authz, name, query, true).await
}

async fn service_nodes(
    ctx: Ctx,
    authz: Authz,
    name: String,
    query: Option<String>,
    connect: bool,
) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref());
    let read = CatalogRead::parse(&ctx, &params, "catalog/service", authz)?;
    let instances = Instances {
        name: &name,
        connect,
    };
    read.run(&ctx, &instances.topic(), |catalog, list| {
        let rows = instances
            .select(catalog, list)
            .into_iter()
            .map(|(node, service)| cw::service_node(node, service));
        list.keep(rows)
    })
    .await
}

pub async fn node(
    State(ctx): State<Ctx>,
    authz: Authz,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref());
    let read = CatalogRead::parse(&ctx, &params, "catalog/node", authz)?;
    read.run(&ctx, &topic::node(&name), |catalog, list| {
        let Some((node, services)) = catalog.node_services(&name) else {
            return Value::Null;
        };
        if !list.node_readable(&node.name) {
            return Value::Null;
        }
        let services: Map<String, Value> = services
            .into_iter()
            .filter(|s| list.service_readable(&s.service))
            .map(|s| (s.id.clone(), cw::node_service(s)))
            .filter(|(_, v)| list.filter_matches(v))
            .collect();
        json!({"Node": cw::node(node), "Services": services})
    })
    .await
}

pub async fn node_services(
    State(ctx): State<Ctx>,
    authz: Authz,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref());
    let read = CatalogRead::parse(&ctx, &params, "catalog/node-services", authz)?;
    read.run(&ctx, &topic::node(&name), |catalog, list| {
        let Some((node, services)) = catalog.node_services(&name) else {
            return Value::Null;
        };
        if !list.node_readable(&node.name) {
            return Value::Null;
        }
        let services = list.keep(
            services
                .into_iter()
                .filter(|s| list.service_readable(&s.service))
                .map(cw::node_service),
        );
        json!({"Node": cw::node(node), "Services": services})
    })
    .await
}

/// A catalog or health read: Consul's read options and list filters, parsed up front (so bad
/// input is refused before anything else), then one blocking evaluation on a catalog topic.
///
/// Bodies are rendered once per index and shared (see [`crate::renders`]), so a body must be a
/// function of the endpoint, the topic, the topic's index and the query parameters alone.
pub(crate) struct CatalogRead {
    opts: ReadOptions,
    pub(crate) list: ListFilter,
    authz: Authz,
    /// The endpoint and the parameters that shape its body: the render cache's key.
    question: String,
}

impl CatalogRead {
    pub(crate) fn parse(
        ctx: &Ctx,
        params: &Params,
        endpoint: &str,
        authz: Authz,
    ) -> Result<Self, ApiError> {
        let opts = ReadOptions::parse(ctx, params)?;
        let mut list = ListFilter::parse(params)?;
        list.acl = authz.authorizer().filter(|a| !a.is_management()).cloned();
        let question = format!("{endpoint}?{}", params.shape());
        Ok(CatalogRead {
            opts,
            list,
            authz,
            question,
        })
    }

    /// Evaluates `body` against the catalog, blocking on `topic` when asked, and answers with
    /// the topic's index.
    pub(crate) async fn run(
        self,
        ctx: &Ctx,
        topic: &str,
        body: impl Fn(&catalog::Catalog, &ListFilter) -> Value,
    ) -> Result<Response, ApiError> {
        let list = &self.list;
        let question = format!("{topic} {}", self.question);
        let notifier = ctx.node.reader().notifier();
        let (meta, body) = blocking::read(ctx, &self.opts, Watch::Catalog(topic), |state| {
            let index = state.catalog.index(topic);
            let render = || {
                render::to_json(&body(&state.catalog, list), self.opts.pretty)
                    .expect("a JSON value always serializes")
            };
            // Shared only while no restore is under way (see `Notifier::generation`); `state`
            // holds the read lock, so no replacement can begin while it is held.
            // A body filtered for one token is that token's alone: not shared.
            let generation = notifier.generation();
            let body = if generation.is_multiple_of(2) && list.acl.is_none() {
                ctx.renders
                    .get_or_render(&question, index, generation, render)
            } else {
                render()
            };
            (index, body)
        })
        .await?;
        let mut resp = render::json_bytes(body);
        meta.apply(&mut resp);
        self.authz
            .mark_filtered(list.dropped.load(Ordering::Relaxed), &mut resp);
        Ok(resp)
    }
}

/// The instances of a service, or (for the `connect` endpoints) the proxies for it and its
/// mesh-native instances; each kind blocks on its own index.
pub(crate) struct Instances<'a> {
    pub(crate) name: &'a str,
    pub(crate) connect: bool,
}

impl Instances<'_> {
    pub(crate) fn topic(&self) -> String {
        if self.connect {
            topic::connect(self.name)
        } else {
            topic::service(self.name)
        }
    }

    /// The instances that pass the `?node-meta` and `?tag` filters.
    pub(crate) fn select<'c>(
        &self,
        catalog: &'c catalog::Catalog,
        list: &ListFilter,
    ) -> Vec<(&'c Node, &'c Service)> {
        let all = if self.connect {
            catalog.connect_nodes(self.name)
        } else {
            catalog.service_nodes(self.name)
        };
        all.into_iter()
            .filter(|(node, service)| list.node_meta_matches(node) && list.tags_match(service))
            .filter(|(node, service)| {
                list.node_readable(&node.name) && list.service_readable(&service.service)
            })
            .collect()
    }
}

/// The list filters catalog and health reads share: `?filter`, `?node-meta` (repeatable,
/// `key:value`) and `?tag` (repeatable; every tag must be present).
#[derive(Debug)]
pub(crate) struct ListFilter {
    filter: Option<catalog::filter::Filter>,
    node_meta: Vec<(String, String)>,
    tags: Vec<String>,
    /// The token's decisions when they restrict what is seen (ACLs on, not management).
    acl: Option<Arc<acl::Authorizer>>,
    /// Whether the token's decisions dropped anything.
    dropped: AtomicBool,
}

impl ListFilter {
    pub(crate) fn parse(params: &Params) -> Result<Self, ApiError> {
        let filter = match params.get("filter") {
            None | Some("") => None,
            Some(expr) => Some(
                catalog::filter::Filter::parse(expr)
                    .map_err(|err| ApiError::BadRequest(err.to_string()))?,
            ),
        };
        let node_meta = params
            .all("node-meta")
            .map(|kv| match kv.split_once(':') {
                Some((k, v)) => (k.to_owned(), v.to_owned()),
                None => (kv.to_owned(), String::new()),
            })
            .collect();
        let tags = params.all("tag").map(str::to_owned).collect();
        Ok(ListFilter {
            filter,
            node_meta,
            tags,
            acl: None,
            dropped: AtomicBool::new(false),
        })
    }

    fn readable(&self, resource: acl::Resource, name: &str) -> bool {
        let allowed = self
            .acl
            .as_ref()
            .is_none_or(|a| a.allows(resource, name, acl::Access::Read));
        if !allowed {
            self.dropped.store(true, Ordering::Relaxed);
        }
        allowed
    }

    /// Whether the token may see node `name` (`node:read`); what it may not is dropped.
    pub(crate) fn node_readable(&self, name: &str) -> bool {
        self.readable(acl::Resource::Node, name)
    }

    /// Whether the token may see service `name` (`service:read`).
    pub(crate) fn service_readable(&self, name: &str) -> bool {
        self.readable(acl::Resource::Service, name)
    }

    /// Whether the token may see a check: its service's `service:read`, or for a node check
    /// its node's `node:read`.
    pub(crate) fn check_readable(&self, check: &catalog::HealthCheck) -> bool {
        if check.service_name.is_empty() {
            self.node_readable(&check.node)
        } else {
            self.service_readable(&check.service_name)
        }
    }

    pub(crate) fn node_meta_matches(&self, node: &Node) -> bool {
        self.node_meta
            .iter()
            .all(|(k, v)| node.meta.get(k).is_some_and(|have| have == v))
    }

    /// Whether the node a check is on passes `?node-meta`.
    pub(crate) fn check_node_matches(
        &self,
        catalog: &catalog::Catalog,
        check: &catalog::HealthCheck,
    ) -> bool {
        catalog
            .node(&check.node)
            .is_some_and(|n| self.node_meta_matches(n))
    }

    pub(crate) fn tags_match(&self, service: &Service) -> bool {
        self.tags
            .iter()
            .all(|tag| service.tags.iter().any(|t| t == tag))
    }

    pub(crate) fn filter_matches(&self, value: &Value) -> bool {
        self.filter.as_ref().is_none_or(|f| f.matches(value))
    }

    /// The rows the filter expression keeps, as a JSON array (`[]` when none).
    pub(crate) fn keep(&self, rows: impl Iterator<Item = Value>) -> Value {
        Value::Array(rows.filter(|row| self.filter_matches(row)).collect())
    }
}

fn too_large(len: u64) -> String {
    format!("Request body({len} bytes) too large, max size: {MAX_BODY} bytes")
}

pub(crate) fn decode_failed(err: String) -> ApiError {
    ApiError::BadRequest(format!("Request decode failed: {err}"))
}
