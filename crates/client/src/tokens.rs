//! ACL tokens on a client agent: each secret's grant comes from a server and is cached for
//! `TOKEN_TTL`, as Consul's agents cache resolved tokens (`acl.token_ttl`, 30 s). When no server
//! answers, `acl.down_policy` decides: a cached grant is used past its time (`extend-cache`,
//! Consul's default, and `async-cache`) and a secret never seen is refused; or every token may
//! do everything (`allow`) or nothing (`deny`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use acl::DefaultPolicy;
use api::{ApiError, TokenResolver};
use futures::future::BoxFuture;
use rpc::{Request, Response};

/// How long a resolved token is used before a server is asked again.
const TOKEN_TTL: Duration = Duration::from_secs(30);
/// How many secrets are cached; beyond, the oldest half is dropped.
const MAX_CACHED: usize = 4096;
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug)]
struct Cached {
    at: Instant,
    /// Unix milliseconds after which the token no longer resolves.
    expires_ms: Option<u64>,
    resolved: Result<acl::Resolved, acl::AclError>,
}

/// Resolves tokens through the servers, with a cache.
#[derive(Debug)]
pub(crate) struct RemoteTokens {
    servers: rpc::Servers,
    default_policy: DefaultPolicy,
    down_policy: config::DownPolicy,
    cache: Mutex<HashMap<String, Arc<Cached>>>,
}

impl RemoteTokens {
    pub(crate) fn new(
        servers: rpc::Servers,
        default_policy: DefaultPolicy,
        down_policy: config::DownPolicy,
    ) -> Self {
        RemoteTokens {
            servers,
            default_policy,
            down_policy,
            cache: Mutex::new(HashMap::new()),
        }
    }

    fn cached(&self, secret: &str) -> Option<Arc<Cached>> {
        self.cache
            .lock()
            .expect("token cache lock")
            .get(secret)
            .cloned()
    }

    fn remember(&self, secret: &str, cached: Cached) {
        let mut cache = self.cache.lock().expect("token cache lock");
        if cache.len() >= MAX_CACHED {
            let mut ages: Vec<(Instant, String)> =
                cache.iter().map(|(k, v)| (v.at, k.clone())).collect();
            ages.sort();
            for (_, key) in ages.into_iter().take(MAX_CACHED / 2) {
                cache.remove(&key);
            }
        }
        cache.insert(secret.to_owned(), Arc::new(cached));
    }

    async fn ask(&self, secret: &str) -> Result<Cached, String> {
        let request = Request::ResolveToken(secret.to_owned());
        let grant = match self.servers.request(&request, RESOLVE_TIMEOUT, true).await {
            Ok(Response::ResolveToken(grant)) => grant,
            Ok(_) => return Err("unexpected answer to a token resolution".to_owned()),
            Err(err) => return Err(err.to_string()),
        };
        Ok(Cached {
            at: Instant::now(),
            expires_ms: grant.as_ref().ok().and_then(|g| g.expiration_time_ms),
            resolved: grant.map(|g| g.resolve(self.default_policy)),
        })
    }
}

impl TokenResolver for RemoteTokens {
    fn resolve<'a>(&'a self, secret: &'a str) -> BoxFuture<'a, Result<acl::Resolved, ApiError>> {
        Box::pin(async move {
            let cached = self.cached(secret);
            let expired = |c: &Cached| c.expires_ms.is_some_and(|at| at <= now_ms());
            let fresh = cached
                .as_ref()
                .filter(|c| c.at.elapsed() < TOKEN_TTL && !expired(c));
            let entry = match fresh {
                Some(entry) => entry.clone(),
                None => match self.ask(secret).await {
                    Ok(answer) => {
                        self.remember(secret, answer);
                        self.cached(secret)
                            .ok_or_else(|| ApiError::Internal("token cache lost an entry".into()))?
                    }
                    Err(err) => {
                        let usable = cached.filter(|c| !expired(c));
                        return when_down(self.down_policy, usable.as_deref(), &err);
                    }
                },
            };
            if expired(&entry) {
                return Err(api::acl_error(acl::AclError::NotFound));
            }
            entry.resolved.clone().map_err(api::acl_error)
        })
    }
}

/// What `acl.down_policy` decides about a token when no server answered (`err`), given the
/// grant cached for it, if any and not expired.
fn when_down(
    down_policy: config::DownPolicy,
    cached: Option<&Cached>,
    err: &str,
) -> Result<acl::Resolved, ApiError> {
    use config::DownPolicy::*;
    let everyone = |default| acl::Resolved {
        accessor_id: cached
            .and_then(|c| c.resolved.as_ref().ok())
            .map_or_else(String::new, |r| r.accessor_id.clone()),
        authorizer: Arc::new(acl::Authorizer::default_only(default)),
    };
    match (down_policy, cached) {
        (Allow, _) => {
            tracing::warn!(%err, "acl: no server answered; down_policy allows everything");
            Ok(everyone(DefaultPolicy::Allow))
        }
        (Deny, _) => Ok(everyone(DefaultPolicy::Deny)),
        (ExtendCache | AsyncCache, Some(stale)) => {
            tracing::warn!(%err, "acl: no server answered; using a cached token");
            stale.resolved.clone().map_err(api::acl_error)
        }
        (ExtendCache | AsyncCache, None) => {
            Err(ApiError::Internal(format!("ACL resolution failed: {err}")))
        }
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cached(rules: &str) -> Cached {
        let grant = acl::TokenGrant {
            accessor_id: "a1".into(),
            management: false,
            rules: vec![rules.to_owned()],
            service_identities: Vec::new(),
            node_identities: Vec::new(),
            expiration_time_ms: None,
        };
        Cached {
            at: Instant::now(),
            expires_ms: None,
            resolved: Ok(grant.resolve(DefaultPolicy::Deny)),
        }
    }

    #[test]
    fn the_down_policy_decides_when_no_server_answers() {
        use config::DownPolicy::*;
        let reads_kv = cached(r#"key_prefix "" { policy = "read" }"#);
        let can_read = |r: &acl::Resolved| {
            r.authorizer
                .allows(acl::Resource::Key, "k", acl::Access::Read)
        };
        for policy in [ExtendCache, AsyncCache] {
            let resolved = when_down(policy, Some(&reads_kv), "down").unwrap();
            assert!(can_read(&resolved), "{policy:?} keeps the cached grant");
            assert!(
                when_down(policy, None, "down").is_err(),
                "{policy:?}: unknown token"
            );
        }
        let allowed = when_down(Allow, None, "down").unwrap();
        assert!(allowed
            .authorizer
            .allows(acl::Resource::Service, "any", acl::Access::Write));
        let denied = when_down(Deny, Some(&reads_kv), "down").unwrap();
        assert!(!can_read(&denied), "deny ignores the cache");
        assert_eq!(denied.accessor_id, "a1");
    }
}
