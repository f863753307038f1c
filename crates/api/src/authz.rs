//! ACL enforcement for the HTTP API: the request's token (Consul's resolution order), its
//! authorizer from the replicated tables, and what each route requires.
//!
//! One middleware runs on every routed request of a server's API. It resolves the token once,
//! checks the route's requirement from [`requirement`] (a table keyed by the matched route and
//! method, so a route nobody listed needs a management token), and leaves the [`Authz`] in the
//! request's extensions for the handlers that filter lists or decide per item.

use std::sync::Arc;

use acl::{Access, Authorizer, DefaultPolicy, Resource};
use axum::extract::{FromRequestParts, MatchedPath, RawPathParams, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::future::BoxFuture;

use crate::error::ApiError;
use crate::params::Params;

/// How an agent's API treats tokens (`acl.*` in the configuration). Clones share the agent's
/// tokens, which `PUT /v1/agent/token/:type` changes.
#[derive(Debug, Clone, Default)]
pub struct AclSettings {
    pub enabled: bool,
    pub default_policy: DefaultPolicy,
    pub tokens: AgentTokens,
}

impl AclSettings {
    /// The settings of `config`, with the tokens kept in its data directory when
    /// `acl.enable_token_persistence` is on (they win over the configuration's, as Consul's).
    pub fn from_config(config: &config::Config) -> Self {
        let acl = &config.acl;
        let tokens = AgentTokens::new(acl.default_token.clone());
        tokens.set_agent(acl.agent_token.clone());
        tokens.set_dns(acl.dns_token.clone());
        if acl.enable_token_persistence {
            if let Some(dir) = &config.data_dir {
                tokens.persist_in(dir.join(PERSISTED_TOKENS));
            }
        }
        AclSettings {
            enabled: acl.enabled,
            default_policy: if acl.default_deny {
                DefaultPolicy::Deny
            } else {
                DefaultPolicy::Allow
            },
            tokens,
        }
    }
}

/// Where an agent keeps the tokens set through its API (`acl.enable_token_persistence`).
pub const PERSISTED_TOKENS: &str = "acl-tokens.json";

/// The tokens an agent uses itself: `default` for requests that carry none, `agent` for its
/// own requests to servers and `dns` for DNS answers (both the default one when unset). Set
/// from the configuration and by `PUT /v1/agent/token/:type`, and kept in a file when
/// [`AgentTokens::persist_in`] says where.
#[derive(Debug, Clone)]
pub struct AgentTokens(Arc<tokio::sync::watch::Sender<Tokens>>);

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Tokens {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    default: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    agent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dns: Option<String>,
    /// Where they are kept (`acl.enable_token_persistence`).
    #[serde(skip)]
    file: Option<std::path::PathBuf>,
}

impl Default for AgentTokens {
    fn default() -> Self {
        AgentTokens::new(None)
    }
}

impl AgentTokens {
    pub fn new(default: Option<String>) -> Self {
        let (tokens, _) = tokio::sync::watch::channel(Tokens {
            default,
            ..Tokens::default()
        });
        AgentTokens(Arc::new(tokens))
    }

    /// Keeps the tokens in `file` from now on; the tokens it already holds win over the
    /// configured ones. A file that cannot be read is logged and left to be replaced.
    pub fn persist_in(&self, file: std::path::PathBuf) {
        let kept: Option<Tokens> = match std::fs::read(&file) {
            Ok(bytes) => match serde_json::from_slice(&bytes) {
                Ok(kept) => Some(kept),
                Err(err) => {
                    tracing::warn!(path = %file.display(), %err, "acl: ignoring an unreadable token file");
                    None
                }
            },
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => None,
            Err(err) => {
                tracing::warn!(path = %file.display(), %err, "acl: cannot read the token file");
                None
            }
        };
        self.0.send_modify(|tokens| {
            if let Some(kept) = kept {
                tokens.default = kept.default.or(tokens.default.take());
                tokens.agent = kept.agent.or(tokens.agent.take());
                tokens.dns = kept.dns.or(tokens.dns.take());
            }
            tokens.file = Some(file);
        });
    }

    /// Writes the tokens to their file, if they have one: written whole to a temporary file,
    /// readable by the agent's user only, then renamed over the old one.
    fn save(&self) -> std::io::Result<()> {
        let tokens = self.0.borrow().clone();
        let Some(file) = &tokens.file else {
            return Ok(());
        };
        let text = serde_json::to_vec_pretty(&tokens).map_err(std::io::Error::other)?;
        let temporary = file.with_extension("json.tmp");
        {
            use std::io::Write as _;
            use std::os::unix::fs::OpenOptionsExt as _;
            let mut out = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&temporary)?;
            out.write_all(&text)?;
            out.sync_all()?;
        }
        std::fs::rename(&temporary, file)
    }

    /// The token of the agent's own requests to servers.
    pub fn agent_token(&self) -> Option<String> {
        let tokens = self.0.borrow();
        tokens.agent.clone().or_else(|| tokens.default.clone())
    }

    pub fn default_token(&self) -> Option<String> {
        self.0.borrow().default.clone()
    }

    /// The token DNS answers with.
    pub fn dns_token(&self) -> Option<String> {
        let tokens = self.0.borrow();
        tokens.dns.clone().or_else(|| tokens.default.clone())
    }

    pub fn set_default(&self, token: Option<String>) {
        self.0.send_modify(|tokens| tokens.default = token);
    }

    pub fn set_agent(&self, token: Option<String>) {
        self.0.send_modify(|tokens| tokens.agent = token);
    }

    pub fn set_dns(&self, token: Option<String>) {
        self.0.send_modify(|tokens| tokens.dns = token);
    }

    /// Sets one token from `PUT /v1/agent/token/:type` and keeps it when the agent keeps
    /// its tokens.
    pub fn set_and_keep(&self, set: impl FnOnce(&AgentTokens)) -> std::io::Result<()> {
        set(self);
        self.save()
    }

    fn changes(&self) -> tokio::sync::watch::Receiver<Tokens> {
        self.0.subscribe()
    }
}

/// What a request may do.
#[derive(Debug, Clone)]
pub struct Authz {
    /// `None` when ACLs are off: everything is allowed and nothing is filtered.
    resolved: Option<acl::Resolved>,
    /// The secret the request came with (the default token's when it had none).
    secret: String,
    /// Whether the request itself named a token: Consul reports filtering only then.
    token_given: bool,
}

impl Authz {
    /// Everything allowed, as when ACLs are off.
    pub fn unrestricted() -> Authz {
        Authz {
            resolved: None,
            secret: String::new(),
            token_given: false,
        }
    }

    /// Resolves the token of a request with these `headers` and `query` through `resolver`.
    pub async fn resolve(
        settings: &AclSettings,
        resolver: &dyn TokenResolver,
        headers: &HeaderMap,
        query: &Params,
    ) -> Result<Authz, ApiError> {
        if !settings.enabled {
            return Ok(Authz::unrestricted());
        }
        let given = request_token(headers, query);
        let token_given = given.is_some();
        let secret = given
            .or_else(|| settings.tokens.default_token())
            .unwrap_or_default();
        let resolved = resolver.resolve(&secret).await?;
        Ok(Authz {
            resolved: Some(resolved),
            secret,
            token_given,
        })
    }

    pub fn enabled(&self) -> bool {
        self.resolved.is_some()
    }

    pub fn secret(&self) -> &str {
        &self.secret
    }

    pub fn authorizer(&self) -> Option<&Arc<Authorizer>> {
        self.resolved.as_ref().map(|r| &r.authorizer)
    }

    pub fn allows(&self, resource: Resource, segment: &str, access: Access) -> bool {
        self.authorizer()
            .is_none_or(|authz| authz.allows(resource, segment, access))
    }

    /// Consul's permission-denied error unless `access` on `resource` `segment` is granted.
    pub fn require(
        &self,
        resource: Resource,
        segment: &str,
        access: Access,
    ) -> Result<(), ApiError> {
        if self.allows(resource, segment, access) {
            return Ok(());
        }
        Err(self.denied(resource, Some(segment), access))
    }

    /// Like [`Authz::require`] for a resource without names (`operator`, `acl`, `keyring`...).
    pub fn require_global(&self, resource: Resource, access: Access) -> Result<(), ApiError> {
        if self.allows(resource, "", access) {
            return Ok(());
        }
        Err(self.denied(resource, None, access))
    }

    /// Keeps the items of `items` whose name `name_of` gives is granted `access`; says whether
    /// any was dropped.
    pub fn filter<T>(
        &self,
        items: &mut Vec<T>,
        resource: Resource,
        access: Access,
        name_of: impl Fn(&T) -> &str,
    ) -> bool {
        let Some(authz) = self.authorizer() else {
            return false;
        };
        let before = items.len();
        items.retain(|item| authz.allows(resource, name_of(item), access));
        items.len() != before
    }

    /// Adds Consul's `X-Consul-Results-Filtered-By-ACLs` to a list answer that lost entries,
    /// when the request named a token.
    pub fn mark_filtered(&self, filtered: bool, resp: &mut Response) {
        if filtered && self.token_given {
            resp.headers_mut().insert(
                "X-Consul-Results-Filtered-By-ACLs",
                HeaderValue::from_static("true"),
            );
        }
    }

    /// Consul's `PermissionDeniedError` text: `Permission denied: token with AccessorID '…'
    /// lacks permission 'service:write' on "web"`.
    pub fn denied(&self, resource: Resource, segment: Option<&str>, access: Access) -> ApiError {
        let accessor = self
            .resolved
            .as_ref()
            .map_or("", |r| r.accessor_id.as_str());
        ApiError::Forbidden(acl::permission_denied(accessor, resource, segment, access))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Authz {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        Ok(parts
            .extensions
            .get::<Authz>()
            .cloned()
            .unwrap_or_else(Authz::unrestricted))
    }
}

/// Where the grant of a token's secret comes from: the replicated tables on a server
/// ([`LocalTables`]), a server asked over RPC (and cached) on a client agent.
pub trait TokenResolver: Send + Sync + std::fmt::Debug {
    /// The secret's decisions; `ACL not found` (403) for an unknown or expired one.
    fn resolve<'a>(&'a self, secret: &'a str) -> BoxFuture<'a, Result<acl::Resolved, ApiError>>;
}

/// A server's resolver: its own applied state.
#[derive(Debug, Clone)]
pub struct LocalTables {
    pub reader: consensus::StoreReader,
    pub datacenter: String,
    pub default_policy: DefaultPolicy,
}

impl TokenResolver for LocalTables {
    fn resolve<'a>(&'a self, secret: &'a str) -> BoxFuture<'a, Result<acl::Resolved, ApiError>> {
        let resolved = self
            .reader
            .state()
            .acl
            .resolve(secret, now_ms(), &self.datacenter, self.default_policy)
            .map_err(acl_error);
        Box::pin(std::future::ready(resolved))
    }
}

/// How often DNS's token is resolved again (Consul's `acl.token_ttl`).
const DNS_TOKEN_REFRESH: std::time::Duration = std::time::Duration::from_secs(30);

/// Keeps `dns` answering with the current decisions of the agent's DNS token (its default
/// token when unset, the anonymous one without either), until `shutdown`: again every 30
/// seconds and at once when the tokens change. Until the token first resolves, DNS shows only
/// what the default policy allows; a failed refresh keeps the last decisions.
pub async fn follow_dns_token(
    settings: AclSettings,
    resolver: Arc<dyn TokenResolver>,
    dns: agent::dns::DnsAcl,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    if !settings.enabled {
        return;
    }
    dns.set(Some(Arc::new(Authorizer::default_only(
        settings.default_policy,
    ))));
    let mut changes = settings.tokens.changes();
    loop {
        changes.borrow_and_update();
        let secret = settings.tokens.dns_token().unwrap_or_default();
        match resolver.resolve(&secret).await {
            Ok(resolved) => dns.set(Some(resolved.authorizer)),
            Err(err) => tracing::warn!(error = %err, "acl: resolving the DNS token failed"),
        }
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = changes.changed() => {}
            () = tokio::time::sleep(DNS_TOKEN_REFRESH) => {}
        }
    }
}

/// An ACL error as Consul's HTTP layer answers it.
pub fn acl_error(err: acl::AclError) -> ApiError {
    match err {
        acl::AclError::NotFound
        | acl::AclError::BootstrapDone { .. }
        | acl::AclError::Denied(_) => ApiError::Forbidden(err.to_string()),
        acl::AclError::Invalid(text) => ApiError::Internal(text),
    }
}

/// The token a request names, in Consul's order: `?token=`, `X-Consul-Token`, then
/// `Authorization: Bearer`.
pub fn request_token(headers: &HeaderMap, query: &Params) -> Option<String> {
    if let Some(token) = query.get("token").filter(|t| !t.is_empty()) {
        return Some(token.to_owned());
    }
    if let Some(token) = headers
        .get("X-Consul-Token")
        .and_then(|v| v.to_str().ok())
        .filter(|t| !t.is_empty())
    {
        return Some(token.to_owned());
    }
    let authorization = headers.get(axum::http::header::AUTHORIZATION)?;
    let mut words = authorization.to_str().ok()?.split_whitespace();
    let scheme = words.next()?;
    let token = words.next()?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.to_owned())
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// What a route needs before its handler runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Need {
    /// Open to every token (status, CA roots, the ACL endpoints that decide for themselves).
    Nothing,
    /// The handler decides: it filters its list or checks each item it touches.
    Handler,
    One(Resource, String, Access),
    Global(Resource, Access),
    /// Write on every key under a prefix (recursive delete).
    KeyWritePrefix(String),
}

/// What the middleware needs: the settings, where tokens resolve, and the agent's node name
/// (the segment of its `agent` and `node` rules).
#[derive(Debug, Clone)]
pub struct Enforcer {
    pub settings: AclSettings,
    pub resolver: Arc<dyn TokenResolver>,
    pub node_name: String,
}

/// The middleware: resolves the token, checks the route's [`Need`], and hands the [`Authz`]
/// on to the handler.
pub async fn enforce(
    State(enforcer): State<Arc<Enforcer>>,
    request: Request,
    next: Next,
) -> Response {
    if !enforcer.settings.enabled {
        return next.run(request).await;
    }
    let (mut parts, body) = request.into_parts();
    let route = parts
        .extensions
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_default();
    let params: Vec<(String, String)> =
        match RawPathParams::from_request_parts(&mut parts, &()).await {
            Ok(params) => params
                .iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            Err(_) => Vec::new(),
        };
    let query = Params::parse(parts.uri.query());
    let need = requirement(&route, &parts.method, &params, &query, &enforcer.node_name);
    // Consul does not even look at the token of what is open to all.
    if need == Need::Nothing {
        return next.run(Request::from_parts(parts, body)).await;
    }
    let authz = Authz::resolve(
        &enforcer.settings,
        enforcer.resolver.as_ref(),
        &parts.headers,
        &query,
    )
    .await;
    let authz = match authz {
        Ok(authz) => authz,
        Err(err) => return err.into_response(),
    };
    let checked = match need {
        Need::Nothing | Need::Handler => Ok(()),
        Need::One(resource, segment, access) => authz.require(resource, &segment, access),
        Need::Global(resource, access) => authz.require_global(resource, access),
        Need::KeyWritePrefix(prefix) => {
            if authz
                .authorizer()
                .is_none_or(|a| a.allows_key_write_prefix(&prefix))
            {
                Ok(())
            } else {
                Err(authz.denied(Resource::Key, Some(&prefix), Access::Write))
            }
        }
    };
    if let Err(err) = checked {
        return err.into_response();
    }
    parts.extensions.insert(authz);
    next.run(Request::from_parts(parts, body)).await
}

/// What `method` on `route` (axum's matched path) needs, from its path `params` and `query`.
/// A route missing here needs `acl:write`, the management level: new routes start closed.
pub(crate) fn requirement(
    route: &str,
    method: &Method,
    params: &[(String, String)],
    query: &Params,
    node_name: &str,
) -> Need {
    use Access::{Read, Write};
    use Resource::*;
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map_or(String::new(), |(_, v)| v.clone())
    };
    let read_or_write = if *method == Method::GET { Read } else { Write };
    match route {
        "/v1/status/leader" | "/v1/status/peers" | "/v1/catalog/datacenters" => Need::Nothing,
        "/v1/connect/ca/roots" | "/v1/agent/connect/ca/roots" => Need::Nothing,
        r if r.starts_with("/v1/acl/") => Need::Handler,
        "/v1/kv/" | "/v1/kv/{*key}" => {
            let key = param("key");
            match *method {
                Method::GET if query.has("recurse") || query.has("keys") => Need::Handler,
                Method::GET => Need::One(Key, key, Read),
                Method::DELETE if query.has("recurse") => Need::KeyWritePrefix(key),
                _ => Need::One(Key, key, Write),
            }
        }
        "/v1/catalog/nodes"
        | "/v1/catalog/services"
        | "/v1/catalog/service/{name}"
        | "/v1/catalog/connect/{name}"
        | "/v1/catalog/node/{node}"
        | "/v1/catalog/node-services/{node}"
        | "/v1/health/node/{node}"
        | "/v1/health/checks/{service}"
        | "/v1/health/service/{service}"
        | "/v1/health/connect/{service}"
        | "/v1/health/state/{state}"
        | "/v1/catalog/register"
        | "/v1/catalog/deregister"
        | "/v1/agent/services"
        | "/v1/agent/service/{id}"
        | "/v1/agent/checks"
        | "/v1/agent/service/register"
        | "/v1/agent/service/deregister/{id}"
        | "/v1/agent/service/maintenance/{id}"
        | "/v1/agent/check/register"
        | "/v1/agent/check/deregister/{id}"
        | "/v1/agent/check/pass/{id}"
        | "/v1/agent/check/warn/{id}"
        | "/v1/agent/check/fail/{id}"
        | "/v1/agent/check/update/{id}"
        | "/v1/agent/health/service/id/{id}"
        | "/v1/session/create"
        | "/v1/session/destroy/{id}"
        | "/v1/session/renew/{id}"
        | "/v1/session/info/{id}"
        | "/v1/session/node/{node}"
        | "/v1/session/list"
        | "/v1/event/list"
        | "/v1/agent/members"
        | "/v1/txn"
        | "/v1/connect/intentions"
        | "/v1/connect/intentions/match"
        | "/v1/connect/intentions/{*id}"
        | "/v1/config"
        | "/v1/config/"
        | "/v1/config/{kind}"
        | "/v1/config/{kind}/"
        | "/v1/agent/connect/authorize" => Need::Handler,
        "/v1/agent/token/{kind}" => Need::Global(Acl, Write),
        // Consul's `CanRead`/`CanWrite` of the two kinds; anything else is refused by the
        // handler as an unknown kind.
        "/v1/config/{kind}/{*name}" => match (param("kind").as_str(), *method == Method::GET) {
            ("service-defaults", _) => Need::One(Service, param("name"), read_or_write),
            // Every token may read it (the token must still resolve).
            ("proxy-defaults", true) => Need::Handler,
            ("proxy-defaults", false) => Need::Global(Mesh, Write),
            _ => Need::Handler,
        },
        "/v1/connect/intentions/check" => {
            Need::One(Service, query_value(query, "destination"), Read)
        }
        "/v1/connect/intentions/exact" => {
            Need::One(Intention, query_value(query, "destination"), read_or_write)
        }
        "/v1/event/fire/{name}" => Need::One(Event, param("name"), Write),
        "/v1/event/fire/" => Need::Nothing,
        "/v1/agent/self" | "/v1/agent/metrics" | "/v1/agent/monitor" => {
            Need::One(Agent, node_name.to_owned(), Read)
        }
        "/v1/agent/leave" | "/v1/agent/reload" | "/v1/agent/join/{address}" => {
            Need::One(Agent, node_name.to_owned(), Write)
        }
        "/v1/agent/force-leave/{node}" => Need::Global(Operator, Write),
        "/v1/agent/maintenance" => Need::One(Node, node_name.to_owned(), Write),
        "/v1/agent/connect/ca/leaf/{service}" => Need::One(Service, param("service"), Write),
        "/v1/agent/health/service/name/{name}" => Need::One(Service, param("name"), Read),
        "/v1/operator/keyring" => Need::Global(Keyring, read_or_write),
        "/v1/operator/raft/configuration"
        | "/v1/operator/autopilot/health"
        | "/v1/operator/autopilot/state" => Need::Global(Operator, Read),
        "/v1/operator/raft/peer"
        | "/v1/operator/raft/transfer-leader"
        | "/v1/operator/autopilot/configuration"
        | "/v1/connect/ca/configuration" => Need::Global(Operator, read_or_write),
        // A snapshot holds every secret: management only, as Consul's.
        "/v1/snapshot" => Need::Global(Acl, Write),
        _ => Need::Global(Acl, Write),
    }
}

fn query_value(query: &Params, name: &str) -> String {
    query.get(name).unwrap_or_default().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_tokens_survive_a_restart_and_win_over_the_configured_ones() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(PERSISTED_TOKENS);
        let tokens = AgentTokens::new(Some("configured".into()));
        tokens.persist_in(file.clone());
        assert_eq!(tokens.default_token().as_deref(), Some("configured"));
        tokens
            .set_and_keep(|t| t.set_agent(Some("agent-from-api".into())))
            .unwrap();
        tokens
            .set_and_keep(|t| t.set_default(Some("default-from-api".into())))
            .unwrap();
        let mode = std::fs::metadata(&file).unwrap().permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );

        // The next start: the configuration says otherwise, the file wins.
        let restarted = AgentTokens::new(Some("configured".into()));
        restarted.set_dns(Some("dns-configured".into()));
        restarted.persist_in(file);
        assert_eq!(
            restarted.default_token().as_deref(),
            Some("default-from-api")
        );
        assert_eq!(restarted.agent_token().as_deref(), Some("agent-from-api"));
        assert_eq!(restarted.dns_token().as_deref(), Some("dns-configured"));
    }

    #[test]
    fn without_a_file_tokens_stay_in_memory() {
        let tokens = AgentTokens::new(None);
        tokens
            .set_and_keep(|t| t.set_dns(Some("dns".into())))
            .unwrap();
        assert_eq!(tokens.dns_token().as_deref(), Some("dns"));
        assert_eq!(tokens.agent_token(), None);
    }
}
