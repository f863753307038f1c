//! Every HTTP request body decoder that is public, chosen by the first byte, each followed as far
//! as the server takes a body: decoded, validated, applied to a fresh pure store and rendered as
//! Consul's JSON again.
//!
//! | byte % 10 | body                                   | entry points                                      |
//! |-----------|----------------------------------------|---------------------------------------------------|
//! | 0         | `PUT /v1/catalog/register`             | `catalog::wire::decode::<RegisterBody>`, `into_registration`, `Catalog::apply` |
//! | 1         | `PUT /v1/catalog/deregister`           | `catalog::wire::decode::<DeregisterBody>`, `into_op`, `Catalog::apply` |
//! | 2         | `PUT /v1/config`                       | `config_entries::wire::decode`, `ConfigEntries::upsert`, `entry_json`, `parse_entry` |
//! | 3         | `POST /v1/connect/intentions`          | `intentions::wire::decode::<IntentionWrite>`, `Intentions::create`, `intention_json`, `parse_intention` |
//! | 4         | `POST /v1/agent/connect/authorize`     | `intentions::wire::decode::<AuthorizeRequest>`, `Intentions::authorize` |
//! | 5         | `PUT /v1/agent/service/register`       | `catalog::wire::decode::<agent::definition::ServiceBody>`, `validate` |
//! | 6         | `PUT /v1/agent/check/register`         | `catalog::wire::decode::<agent::definition::CheckBody>`, `validate` |
//! | 7         | an ACL policy's `Rules`                | `acl::Rules::parse`                               |
//! | 8         | any other JSON body                    | `serde_json::from_slice::<Value>`                 |
//! | 9         | `?filter=` (first line) over a JSON value (the rest) | `catalog::filter::Filter::parse`, `matches` |
//!
//! Round trips: a stored config entry and a stored intention read back from their JSON equal
//! themselves; encoded JSON values decode again.

#![no_main]

use catalog::wire::{self as cw, DeregisterBody, RegisterBody};
use catalog::{Catalog, CatalogOp};
use config_entries::ConfigEntries;
use intentions::{AuthorizeRequest, IntentionWrite, Intentions};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    match selector % 10 {
        0 => catalog_register(body),
        1 => catalog_deregister(body),
        2 => config_entry(body),
        3 => intention_create(body),
        4 => intention_authorize(body),
        5 => agent_service(body),
        6 => agent_check(body),
        7 => {
            if let Ok(text) = std::str::from_utf8(body) {
                let _ = acl::Rules::parse(text);
            }
        }
        8 => json_value(body),
        _ => filter(body),
    }
});

fn catalog_register(body: &[u8]) {
    let Ok(request) = cw::decode::<RegisterBody>(body) else {
        return;
    };
    let Ok(registration) = request.into_registration("dc1") else {
        return;
    };
    let node = registration.node.name.clone();
    let mut catalog = Catalog::new();
    if catalog
        .apply(CatalogOp::Register(Box::new(registration)), 1)
        .is_err()
    {
        return;
    }
    if let Some((node, services)) = catalog.node_services(&node) {
        let _ = cw::node(node);
        for service in services {
            let _ = cw::node_service(service);
            let _ = cw::service_node(node, service);
            let health = catalog.health(catalog.service_nodes(&service.service));
            for instance in &health {
                let _ = cw::service_health(instance);
            }
        }
    }
    for check in catalog.node_checks(&node) {
        let _ = cw::check(check);
    }
}

fn catalog_deregister(body: &[u8]) {
    let Some(op) = cw::decode::<DeregisterBody>(body)
        .ok()
        .and_then(DeregisterBody::into_op)
    else {
        return;
    };
    // A node with a service and a check, so that deregistering can find something.
    let registration = cw::decode::<RegisterBody>(
        br#"{"Node":"n1","Address":"10.0.0.1","Service":{"ID":"web1","Service":"web","Port":80},
            "Check":{"CheckID":"c1","Name":"c1","ServiceID":"web1","Status":"passing"}}"#,
    )
    .expect("the fixed registration decodes")
    .into_registration("dc1")
    .expect("the fixed registration is valid");
    let mut catalog = Catalog::new();
    catalog
        .apply(CatalogOp::Register(Box::new(registration)), 1)
        .expect("the fixed registration applies");
    let _ = catalog.apply(op, 2);
}

fn config_entry(body: &[u8]) {
    let Ok(write) = config_entries::wire::decode(body) else {
        return;
    };
    let mut entries = ConfigEntries::new();
    if entries.upsert(&write, None, 7).is_err() {
        return;
    }
    let stored = entries
        .get(write.kind, &write.name)
        .expect("an entry that was upserted is there")
        .clone();
    let json = config_entries::wire::entry_json(&stored);
    let text = serde_json::to_vec(&json).expect("JSON values encode");
    let again = config_entries::wire::parse_entry(&text)
        .unwrap_or_else(|e| panic!("a stored entry's JSON does not read back: {e}\n{json}"));
    assert_eq!(
        again, stored,
        "a stored entry's JSON reads back as another entry"
    );
    let _ = config_entries::wire::entries_json(entries.list(None));
}

fn intention_create(body: &[u8]) {
    let Ok(write) = intentions::wire::decode::<IntentionWrite>(body) else {
        return;
    };
    let mut store = Intentions::new();
    let id = "8f4b6a51-2b0c-4e7d-9a39-0c4c1f6f2b11";
    if store
        .create(id, "2024-01-02T03:04:05.123456789Z", write, 3)
        .is_err()
    {
        return;
    }
    let stored = store
        .get(id)
        .expect("an intention that was created is there")
        .clone();
    let json = intentions::wire::intention_json(&stored);
    let again = intentions::wire::parse_intention(json.clone())
        .unwrap_or_else(|e| panic!("a stored intention's JSON does not read back: {e}\n{json}"));
    assert_eq!(
        again, stored,
        "a stored intention's JSON reads back as another"
    );
    let _ = intentions::wire::intentions_json(store.list());
    let allow = intentions::DefaultPolicy::Acl { allow: true };
    let _ = store.authorize(&stored.source_name, &stored.destination_name, None, allow);
    let _ = store.check(&stored.source_name, &stored.destination_name, false);
}

fn intention_authorize(body: &[u8]) {
    let Ok(request) = intentions::wire::decode::<AuthorizeRequest>(body) else {
        return;
    };
    let mut store = Intentions::new();
    let write = intentions::wire::decode::<IntentionWrite>(
        br#"{"SourceName":"web","DestinationName":"db","Action":"allow"}"#,
    )
    .expect("the fixed intention decodes");
    store
        .create(
            "2b4f8a61-0c7d-4e2a-9b1f-3d5e6a7b8c9d",
            "2024-01-02T03:04:05Z",
            write,
            1,
        )
        .expect("the fixed intention applies");
    let deny = intentions::DefaultPolicy::Acl { allow: false };
    let _ = store.authorize(&request.client_cert_uri, &request.target, None, deny);
    let _ = store.authorize("web", &request.target, None, deny);
}

fn agent_service(body: &[u8]) {
    let Ok(definition) = cw::decode::<agent::definition::ServiceBody>(body) else {
        return;
    };
    let _ = definition.to_json();
    if let Ok(valid) = definition.validate(&|port| port % 2 == 0) {
        for check in &valid.checks {
            let _ = check.health_check("n1", Some(&valid.service));
        }
    }
}

fn agent_check(body: &[u8]) {
    let Ok(definition) = cw::decode::<agent::definition::CheckBody>(body) else {
        return;
    };
    let _ = definition.to_json();
    if let Ok(valid) = definition.validate("check-id", "check name") {
        let _ = valid.health_check("n1", None);
    }
}

fn json_value(body: &[u8]) {
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return;
    };
    let text = serde_json::to_vec(&value).expect("JSON values encode");
    // Not compared with `value`: without serde_json's `float_roundtrip` feature, a number of
    // more than 17 digits may read back one ULP away (2.888…8e100 from 97 eights).
    let _: Value = serde_json::from_slice(&text).expect("encoded JSON decodes");
    let _ = cw::normalize_keys(value.clone());
    let _ = intentions::wire::normalize_keys(value);
}

fn filter(body: &[u8]) {
    let Ok(text) = std::str::from_utf8(body) else {
        return;
    };
    let (expression, json) = text.split_once('\n').unwrap_or((text, "{}"));
    let Ok(filter) = catalog::filter::Filter::parse(expression) else {
        return;
    };
    let value = serde_json::from_str::<Value>(json).unwrap_or(Value::Null);
    let _ = filter.matches(&value);
}
