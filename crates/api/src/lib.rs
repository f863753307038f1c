//! Consul's `/v1` HTTP API over a mesh server's replicated store, as an axum router.
//!
//! Everything a Consul client observes is decided here: paths, methods, JSON field casing,
//! `true` bodies, plain-text errors, the `X-Consul-*` headers, blocking queries and consistency
//! modes. The router is socket-free; the binary binds it, with [`listener`] sized for thousands of
//! blocking queries. This crate never touches RocksDB or
//! raft internals directly: it goes through [`consensus::RaftNode`].

mod acl;
mod agent;
mod agent_connect;
mod authz;
mod autopilot;
mod blocking;
mod catalog;
mod config_entries;
mod conn_limit;
mod connect_ca;
mod connect_intentions;
mod error;
mod events;
mod forward;
mod health;
mod kv;
mod limits;
mod local;
mod members;
mod metrics;
mod monitor;
mod operator;
mod params;
mod render;
mod renders;
mod session;
mod snapshot;
mod status;
mod tls;
mod txn;
mod wire;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::http::{HeaderValue, Method};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::Router;

pub use authz::{
    acl_error, follow_dns_token, AclSettings, AgentTokens, Authz, Enforcer, LocalTables,
    TokenResolver,
};
pub use error::ApiError;
pub use forward::{client_router, handler as forward_handler};
pub use local::{routes as agent_routes, LocalContext};
pub use metrics::Telemetry;
pub use tls::{https_config, serve_api, serve_https};

/// Facts about the local agent that the API reports (`/v1/agent/self`) or needs.
#[derive(Debug, Clone)]
pub struct AgentInfo {
    pub node_name: String,
    pub node_id: String,
    pub datacenter: String,
    pub server: bool,
    pub dev: bool,
    pub version: String,
    pub revision: String,
    /// LAN address the agent advertises.
    pub advertise_addr: String,
    pub http_port: u16,
    pub server_port: u16,
    /// What intentions decide when none matches (`default_intention_policy`, else the ACL
    /// default): `/v1/connect/intentions/check`, and sidecars read it from `/v1/agent/self`.
    pub intention_default: intentions::DefaultPolicy,
}

/// Everything handlers share.
#[derive(Debug, Clone)]
pub struct ApiContext {
    pub node: consensus::RaftNode,
    pub agent: AgentInfo,
    pub kv_max_value_size: usize,
    pub txn_max_req_len: usize,
    pub session_ttl_min: Duration,
    /// This server as other servers see it, for `/v1/agent/join`.
    pub identity: rpc::Identity,
    pub autopilot: rpc::Autopilot,
    /// The agent's measurements (blocking queries in flight, forwarded calls); the same one
    /// as its [`LocalContext`]'s.
    pub telemetry: Telemetry,
    /// How requests' tokens are checked.
    pub acl: AclSettings,
    /// The server's data directory (`acl-bootstrap-reset` is read from it); none in tests.
    pub data_dir: Option<std::path::PathBuf>,
}

/// What the server routes share: the context the binary built, and state of the API's own.
#[derive(Debug)]
pub(crate) struct Shared {
    ctx: ApiContext,
    pub(crate) renders: renders::RenderCache,
}

impl std::ops::Deref for Shared {
    type Target = ApiContext;

    fn deref(&self) -> &ApiContext {
        &self.ctx
    }
}

pub(crate) type Ctx = Arc<Shared>;

/// The whole `/v1` API of a server, with its own agent's endpoints, each request checked
/// against its token and timed.
pub fn router(ctx: ApiContext, local: LocalContext) -> Router {
    let telemetry = local.telemetry.clone();
    let policy = ctx.acl.default_policy;
    let enforcer = enforcer(&ctx);
    let routes = server_routes(ctx)
        .merge(agent_routes(local))
        .route_layer(middleware::from_fn_with_state(enforcer, authz::enforce));
    finish(routes, policy).layer(middleware::from_fn_with_state(
        telemetry,
        metrics::observe_http,
    ))
}

/// The server's routes as they answer calls client agents forward ([`forward_handler`]),
/// checked and timed as such.
pub fn forwarded_router(ctx: ApiContext) -> Router {
    let telemetry = ctx.telemetry.clone();
    let policy = ctx.acl.default_policy;
    let enforcer = enforcer(&ctx);
    let routes =
        server_routes(ctx).route_layer(middleware::from_fn_with_state(enforcer, authz::enforce));
    finish(routes, policy).layer(middleware::from_fn_with_state(
        telemetry,
        metrics::observe_forwarded,
    ))
}

fn enforcer(ctx: &ApiContext) -> Arc<authz::Enforcer> {
    Arc::new(authz::Enforcer {
        settings: ctx.acl.clone(),
        resolver: Arc::new(authz::LocalTables {
            reader: ctx.node.reader().clone(),
            datacenter: ctx.agent.datacenter.clone(),
            default_policy: ctx.acl.default_policy,
        }),
        node_name: ctx.agent.node_name.clone(),
    })
}

/// How many connections may wait to be accepted. Thousands of blocking queries reconnect at
/// once after a restart or a long poll's end; the kernel's usual 128 drops most of them into
/// SYN retries a second later.
const ACCEPT_BACKLOG: u32 = 4096;

/// A TCP listener for the HTTP API on `addr`.
pub fn listener(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(ACCEPT_BACKLOG)
}

/// Consul's answers for what no route takes, and the headers on every response.
pub fn finish(routes: Router, default_policy: ::acl::DefaultPolicy) -> Router {
    routes
        .fallback(not_found)
        .layer(middleware::from_fn(limits::bound_request))
        .layer(middleware::from_fn_with_state(
            default_policy,
            common_headers,
        ))
}

/// The endpoints a server answers from its replicated state.
pub fn server_routes(ctx: ApiContext) -> Router {
    let ctx = Arc::new(Shared {
        ctx,
        renders: renders::RenderCache::default(),
    });
    Router::new()
        .route(
            "/v1/kv/",
            methods(&[Method::GET, Method::PUT, Method::DELETE], kv::root),
        )
        .route(
            "/v1/kv/{*key}",
            methods(&[Method::GET, Method::PUT, Method::DELETE], kv::handle),
        )
        .route("/v1/txn", methods(&[Method::PUT], txn::apply))
        .route(
            "/v1/session/create",
            methods(&[Method::PUT], session::create),
        )
        .route(
            "/v1/session/destroy/{id}",
            methods(&[Method::PUT], session::destroy),
        )
        .route(
            "/v1/session/renew/{id}",
            methods(&[Method::PUT], session::renew),
        )
        .route(
            "/v1/session/info/{id}",
            methods(&[Method::GET], session::info),
        )
        .route(
            "/v1/session/node/{node}",
            methods(&[Method::GET], session::node),
        )
        .route("/v1/session/list", methods(&[Method::GET], session::list))
        .route(
            "/v1/catalog/register",
            methods(&[Method::PUT], catalog::register),
        )
        .route(
            "/v1/catalog/deregister",
            methods(&[Method::PUT], catalog::deregister),
        )
        .route(
            "/v1/catalog/datacenters",
            methods(&[Method::GET], catalog::datacenters),
        )
        .route("/v1/catalog/nodes", methods(&[Method::GET], catalog::nodes))
        .route(
            "/v1/catalog/services",
            methods(&[Method::GET], catalog::services),
        )
        .route(
            "/v1/catalog/service/",
            methods(&[Method::GET], catalog::missing_service_name),
        )
        .route(
            "/v1/catalog/service/{name}",
            methods(&[Method::GET], catalog::service),
        )
        .route(
            "/v1/catalog/connect/{name}",
            methods(&[Method::GET], catalog::connect),
        )
        .route(
            "/v1/catalog/node/{node}",
            methods(&[Method::GET], catalog::node),
        )
        .route(
            "/v1/catalog/node-services/{node}",
            methods(&[Method::GET], catalog::node_services),
        )
        .route(
            "/v1/health/node/{node}",
            methods(&[Method::GET], health::node),
        )
        .route(
            "/v1/health/checks/{service}",
            methods(&[Method::GET], health::checks),
        )
        .route(
            "/v1/health/service/{service}",
            methods(&[Method::GET], health::service),
        )
        .route(
            "/v1/health/connect/{service}",
            methods(&[Method::GET], health::connect),
        )
        .route(
            "/v1/health/state/{state}",
            methods(&[Method::GET], health::state),
        )
        .route("/v1/status/leader", methods(&[Method::GET], status::leader))
        .route("/v1/status/peers", methods(&[Method::GET], status::peers))
        .route("/v1/agent/self", methods(&[Method::GET], agent::self_))
        .route(
            "/v1/operator/raft/configuration",
            methods(&[Method::GET], operator::configuration),
        )
        .route(
            "/v1/operator/raft/peer",
            methods(&[Method::DELETE], operator::remove_peer),
        )
        .route(
            "/v1/operator/raft/transfer-leader",
            methods(&[Method::POST], operator::transfer_leader),
        )
        .route(
            "/v1/snapshot",
            methods(&[Method::GET, Method::PUT], snapshot::handle),
        )
        .route(
            "/v1/operator/autopilot/configuration",
            methods(&[Method::GET, Method::PUT], autopilot::configuration),
        )
        .route(
            "/v1/operator/autopilot/health",
            methods(&[Method::GET], autopilot::health),
        )
        .route(
            "/v1/operator/autopilot/state",
            methods(&[Method::GET], autopilot::state),
        )
        .route(
            "/v1/connect/intentions",
            methods(&[Method::GET, Method::POST], connect_intentions::root),
        )
        .route(
            "/v1/connect/intentions/exact",
            methods(
                &[Method::GET, Method::PUT, Method::DELETE],
                connect_intentions::exact,
            ),
        )
        .route(
            "/v1/connect/intentions/match",
            methods(&[Method::GET], connect_intentions::matching),
        )
        .route(
            "/v1/connect/intentions/check",
            methods(&[Method::GET], connect_intentions::check),
        )
        .route(
            "/v1/connect/intentions/{*id}",
            methods(
                &[Method::GET, Method::PUT, Method::DELETE],
                connect_intentions::by_id,
            ),
        )
        .route("/v1/config", methods(&[Method::PUT], config_entries::apply))
        .route(
            "/v1/config/",
            methods(&[Method::GET, Method::DELETE], config_entries::root),
        )
        .route(
            "/v1/config/{kind}",
            methods(&[Method::GET, Method::DELETE], config_entries::kind),
        )
        .route(
            "/v1/config/{kind}/",
            methods(&[Method::GET, Method::DELETE], config_entries::empty_name),
        )
        .route(
            "/v1/config/{kind}/{*name}",
            methods(&[Method::GET, Method::DELETE], config_entries::entry),
        )
        .route(
            "/v1/connect/ca/roots",
            methods(&[Method::GET], connect_ca::roots),
        )
        .route(
            "/v1/connect/ca/configuration",
            methods(&[Method::GET, Method::PUT], connect_ca::configuration),
        )
        .merge(acl::routes())
        .with_state(ctx)
}

/// A route that answers `methods`, `OPTIONS` with its `Allow` list, and anything else with
/// Consul's 405.
fn methods<H, T, S>(allowed: &'static [Method], handler: H) -> MethodRouter<S>
where
    H: axum::handler::Handler<T, S>,
    T: 'static,
    S: Clone + Send + Sync + 'static,
{
    let filter = allowed
        .iter()
        .map(|m| MethodFilter::try_from(m.clone()).expect("standard method"))
        .reduce(MethodFilter::or)
        .expect("at least one method");
    let allow = std::iter::once("OPTIONS")
        .chain(allowed.iter().map(Method::as_str))
        .collect::<Vec<_>>()
        .join(",");
    let allow_for_options = allow.clone();
    let not_allowed = move |method: Method| async move {
        ApiError::MethodNotAllowed {
            method: method.to_string(),
            allow,
        }
    };
    let router = on(filter, handler)
        .options(move || async move { ApiError::options(&allow_for_options) })
        .fallback(not_allowed.clone());
    // axum answers HEAD with the GET handler unless HEAD has its own; Consul refuses it.
    if allowed.contains(&Method::HEAD) {
        router
    } else {
        router.head(not_allowed)
    }
}

async fn not_found() -> ApiError {
    ApiError::NotFound("Invalid URL path: not a recognized HTTP API endpoint".into())
}

/// Headers Consul sets on every response: the ACL default policy even when ACLs are off.
pub(crate) async fn common_headers(
    axum::extract::State(default_policy): axum::extract::State<::acl::DefaultPolicy>,
    req: Request,
    next: Next,
) -> Response {
    let mut resp = next.run(req).await.into_response();
    resp.headers_mut().insert(
        "X-Consul-Default-ACL-Policy",
        HeaderValue::from_static(default_policy.as_str()),
    );
    resp
}
