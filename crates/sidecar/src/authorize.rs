//! Inbound authorization from the intentions the sidecar keeps cached: those towards its
//! service (`/v1/connect/intentions/match?by=destination`) and the agent's default policy. A
//! connection (L4) or request (L7) is decided locally, from memory, and a new set of
//! intentions applies to the next one.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use intentions::{DefaultPolicy, HttpRequest, Intention};
use proxy::{Authorization, Authorize, SpiffeId};

/// The intentions that decide who may reach one service.
#[derive(Debug, Clone)]
pub struct IntentionsAuthorizer {
    destination: String,
    current: Arc<RwLock<Arc<Policy>>>,
    /// Denials by source service, for the metrics.
    denials: Arc<Mutex<BTreeMap<String, u64>>>,
}

#[derive(Debug)]
struct Policy {
    intentions: Vec<Intention>,
    default: DefaultPolicy,
}

impl IntentionsAuthorizer {
    /// Until the first [`IntentionsAuthorizer::update`], nothing is allowed.
    pub fn new(destination: &str) -> IntentionsAuthorizer {
        IntentionsAuthorizer {
            destination: destination.to_owned(),
            current: Arc::new(RwLock::new(Arc::new(Policy {
                intentions: Vec::new(),
                default: DefaultPolicy::Intention { allow: false },
            }))),
            denials: Arc::default(),
        }
    }

    /// Replaces the intentions (towards the destination, any order) and the default policy.
    pub fn update(&self, intentions: Vec<Intention>, default: DefaultPolicy) {
        let policy = Arc::new(Policy {
            intentions,
            default,
        });
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = policy;
    }

    /// How many connections or requests each source service was denied.
    pub fn denials(&self) -> Vec<(String, u64)> {
        let denials = self.denials.lock().unwrap_or_else(PoisonError::into_inner);
        denials.iter().map(|(s, n)| (s.clone(), *n)).collect()
    }

    fn policy(&self) -> Arc<Policy> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Authorize for IntentionsAuthorizer {
    fn authorize(&self, source: &SpiffeId, request: Option<&HttpRequest<'_>>) -> Authorization {
        let policy = self.policy();
        let decision = intentions::authorize_in(
            &policy.intentions,
            &source.namespace,
            &source.service,
            &self.destination,
            request,
            policy.default,
        );
        if !decision.allowed {
            let mut denials = self.denials.lock().unwrap_or_else(PoisonError::into_inner);
            *denials.entry(source.service.clone()).or_default() += 1;
        }
        decision.into()
    }
}

#[cfg(test)]
mod tests {
    use intentions::{wire::parse_intention, DefaultPolicy};
    use serde_json::json;

    use super::*;

    fn source(service: &str) -> SpiffeId {
        SpiffeId::service("11111111-2222-3333-4444-555555555555.mesh", "dc1", service)
    }

    fn intention(source: &str, body: serde_json::Value) -> Intention {
        let mut value = json!({
            "SourceNS": "default", "SourceName": source,
            "DestinationNS": "default", "DestinationName": "db",
            "SourceType": "consul",
        });
        value
            .as_object_mut()
            .unwrap()
            .extend(body.as_object().unwrap().clone());
        let mut ixn = parse_intention(value).unwrap();
        ixn.precedence = intentions::precedence("default", source, "default", "db");
        ixn
    }

    #[test]
    fn connections_follow_the_intentions_and_the_default() {
        let authz = IntentionsAuthorizer::new("db");
        assert!(
            !authz.authorize(&source("web"), None).allowed,
            "nothing is allowed before the first intentions arrive"
        );
        authz.update(
            vec![
                intention("web", json!({"Action": "allow"})),
                intention("*", json!({"Action": "deny"})),
            ],
            DefaultPolicy::Acl { allow: true },
        );
        let web = authz.authorize(&source("web"), None);
        assert!(web.allowed, "{web:?}");
        assert!(web.reason.starts_with("Matched L4 intention"), "{web:?}");
        assert!(!authz.authorize(&source("api"), None).allowed);
        assert_eq!(
            authz.denials(),
            vec![("api".to_owned(), 1), ("web".to_owned(), 1)]
        );

        authz.update(Vec::new(), DefaultPolicy::Intention { allow: false });
        let web = authz.authorize(&source("web"), None);
        assert_eq!(
            (web.allowed, web.reason.as_str()),
            (false, "Default intention policy")
        );
    }

    #[test]
    fn requests_follow_l7_permissions() {
        let authz = IntentionsAuthorizer::new("db");
        authz.update(
            vec![intention(
                "web",
                json!({"Permissions": [
                    {"Action": "deny", "HTTP": {"PathPrefix": "/admin"}},
                    {"Action": "allow", "HTTP": {"PathPrefix": "/"}}
                ]}),
            )],
            DefaultPolicy::Intention { allow: false },
        );
        let request = |path| HttpRequest {
            method: "GET",
            path,
            headers: Vec::new(),
        };
        let web = source("web");
        assert!(authz.authorize(&web, Some(&request("/users"))).allowed);
        assert!(!authz.authorize(&web, Some(&request("/admin/keys"))).allowed);
        // A connection cannot be decided by an L7 intention.
        assert!(!authz.authorize(&web, None).allowed);
    }
}
