//! Consul's JSON for tokens, policies and roles (`agent/structs/acl.go`): Go's field order,
//! `omitempty` where Consul has it, links shown with the current name of what they point to.

use base64::Engine as _;
use serde_json::{json, Map, Value};

use crate::store::{AclStore, NodeIdentity, Policy, Role, ServiceIdentity, Token};

/// What Consul shows instead of a secret to a token that may only read ACLs.
pub const REDACTED: &str = "<hidden>";

/// A token as `GET /v1/acl/token/:id` shows it; `secret` false hides the SecretID.
pub fn token(store: &AclStore, token: &Token, secret: bool) -> Value {
    token_value(store, token, secret, false)
}

/// A token as `/v1/acl/bootstrap` answers it: with the legacy `ID` (its secret) first.
pub fn bootstrap_token(store: &AclStore, token: &Token) -> Value {
    token_value(store, token, true, true)
}

/// An entry of `GET /v1/acl/tokens` (Consul's `ACLTokenListStub`).
pub fn token_stub(store: &AclStore, token: &Token, secret: bool) -> Value {
    let mut value = token_value(store, token, secret, false);
    if let Value::Object(out) = &mut value {
        out.insert("Legacy".into(), json!(false));
    }
    value
}

fn token_value(store: &AclStore, token: &Token, secret: bool, legacy_id: bool) -> Value {
    let mut out = Map::new();
    if legacy_id {
        out.insert("ID".into(), json!(token.secret_id));
    }
    out.insert("AccessorID".into(), json!(token.accessor_id));
    out.insert("SecretID".into(), json!(shown_secret(token, secret)));
    out.insert("Description".into(), json!(token.description));
    links_into(&mut out, "Policies", policy_links(store, &token.policies));
    links_into(&mut out, "Roles", role_links(store, &token.roles));
    identities_into(&mut out, &token.service_identities, &token.node_identities);
    out.insert("Local".into(), json!(token.local));
    if let Some(at) = token.expiration_time_ms {
        out.insert("ExpirationTime".into(), json!(rfc3339_ms(at)));
    }
    out.insert("CreateTime".into(), json!(rfc3339_ms(token.create_time_ms)));
    out.insert("Hash".into(), json!(hash(&token.hash)));
    out.insert("CreateIndex".into(), json!(token.create_index));
    out.insert("ModifyIndex".into(), json!(token.modify_index));
    Value::Object(out)
}

fn shown_secret(token: &Token, secret: bool) -> &str {
    if secret {
        &token.secret_id
    } else {
        REDACTED
    }
}

/// A policy with its rules (`GET /v1/acl/policy/:id`).
pub fn policy(policy: &Policy) -> Value {
    let mut out = policy_head(policy);
    out.insert("Rules".into(), json!(policy.rules));
    policy_tail(policy, &mut out);
    Value::Object(out)
}

/// An entry of `GET /v1/acl/policies`: no rules.
pub fn policy_stub(policy: &Policy) -> Value {
    let mut out = policy_head(policy);
    policy_tail(policy, &mut out);
    Value::Object(out)
}

fn policy_head(policy: &Policy) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("ID".into(), json!(policy.id));
    out.insert("Name".into(), json!(policy.name));
    out.insert("Description".into(), json!(policy.description));
    out
}

fn policy_tail(policy: &Policy, out: &mut Map<String, Value>) {
    if !policy.datacenters.is_empty() {
        out.insert("Datacenters".into(), json!(policy.datacenters));
    }
    out.insert("Hash".into(), json!(hash(&policy.hash)));
    out.insert("CreateIndex".into(), json!(policy.create_index));
    out.insert("ModifyIndex".into(), json!(policy.modify_index));
}

/// A role (`GET /v1/acl/role/:id`, and each entry of `GET /v1/acl/roles`).
pub fn role(store: &AclStore, role: &Role) -> Value {
    let mut out = Map::new();
    out.insert("ID".into(), json!(role.id));
    out.insert("Name".into(), json!(role.name));
    out.insert("Description".into(), json!(role.description));
    links_into(&mut out, "Policies", policy_links(store, &role.policies));
    identities_into(&mut out, &role.service_identities, &role.node_identities);
    out.insert("Hash".into(), json!(hash(&role.hash)));
    out.insert("CreateIndex".into(), json!(role.create_index));
    out.insert("ModifyIndex".into(), json!(role.modify_index));
    Value::Object(out)
}

fn policy_links(store: &AclStore, ids: &[String]) -> Vec<Value> {
    ids.iter()
        .map(|id| {
            let name = store.policy(id).map_or("", |p| p.name.as_str());
            json!({"ID": id, "Name": name})
        })
        .collect()
}

fn role_links(store: &AclStore, ids: &[String]) -> Vec<Value> {
    ids.iter()
        .map(|id| {
            let name = store.role(id).map_or("", |r| r.name.as_str());
            json!({"ID": id, "Name": name})
        })
        .collect()
}

/// Go's `omitempty` on a slice: absent when empty.
fn links_into(out: &mut Map<String, Value>, field: &str, links: Vec<Value>) {
    if !links.is_empty() {
        out.insert(field.into(), Value::Array(links));
    }
}

fn identities_into(
    out: &mut Map<String, Value>,
    services: &[ServiceIdentity],
    nodes: &[NodeIdentity],
) {
    if !services.is_empty() {
        let services = services
            .iter()
            .map(|s| {
                let mut one = Map::new();
                one.insert("ServiceName".into(), json!(s.service_name));
                if !s.datacenters.is_empty() {
                    one.insert("Datacenters".into(), json!(s.datacenters));
                }
                Value::Object(one)
            })
            .collect();
        out.insert("ServiceIdentities".into(), Value::Array(services));
    }
    if !nodes.is_empty() {
        let nodes = nodes
            .iter()
            .map(|n| json!({"NodeName": n.node_name, "Datacenter": n.datacenter}))
            .collect();
        out.insert("NodeIdentities".into(), Value::Array(nodes));
    }
}

fn hash(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Unix milliseconds as Go marshals a UTC `time.Time` (`2026-11-25T10:00:00.123Z`).
pub fn rfc3339_ms(ms: u64) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// An RFC 3339 time (Go's `time.Time` in JSON) as Unix milliseconds.
pub fn parse_rfc3339_ms(text: &str) -> Option<u64> {
    let at =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    u64::try_from(at.unix_timestamp_nanos() / 1_000_000).ok()
}
