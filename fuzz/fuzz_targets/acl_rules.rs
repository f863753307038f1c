//! ACL policy rules (`acl::Rules::parse`, HCL1 or JSON) from arbitrary text, and the
//! `acl::Authorizer` built from them answering every kind of question.
//!
//! Properties: parsing never panics and is deterministic; an authorizer whose default is deny
//! never grants what the same rules with default allow refuse; merging a policy with itself
//! changes no decision.

#![no_main]

use acl::{Access, Authorizer, DefaultPolicy, Resource, Rules};
use libfuzzer_sys::fuzz_target;

const RESOURCES: [Resource; 13] = [
    Resource::Acl,
    Resource::Agent,
    Resource::Event,
    Resource::Intention,
    Resource::Key,
    Resource::Keyring,
    Resource::Mesh,
    Resource::Node,
    Resource::Operator,
    Resource::Peering,
    Resource::Query,
    Resource::Service,
    Resource::Session,
];

const ACCESSES: [Access; 4] = [Access::Deny, Access::Read, Access::List, Access::Write];

/// Names the seeds' rules use, the empty name, and `*` (any intention).
const SEGMENTS: [&str; 8] = [
    "",
    "*",
    "web",
    "web-sidecar-proxy",
    "foo/bar",
    "foo",
    "db",
    "é",
];

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = Rules::parse(text);
    assert_eq!(parsed, Rules::parse(text), "parsing is deterministic");
    let Ok(rules) = parsed else {
        return;
    };
    let allow = Authorizer::new([&rules], DefaultPolicy::Allow);
    let deny = Authorizer::new([&rules], DefaultPolicy::Deny);
    let twice = Authorizer::new([&rules, &rules], DefaultPolicy::Deny);
    // Segments taken from the input too, so that prefixes it writes are asked about.
    let from_input: Vec<&str> = text.split('"').skip(1).step_by(2).take(8).collect();
    for resource in RESOURCES {
        for access in ACCESSES {
            for segment in SEGMENTS.iter().chain(&from_input) {
                let by_deny = deny.allows(resource, segment, access);
                assert!(
                    !by_deny || allow.allows(resource, segment, access),
                    "default deny grants {access:?} on {resource:?} {segment:?} that allow refuses"
                );
                assert_eq!(
                    by_deny,
                    twice.allows(resource, segment, access),
                    "a policy merged with itself changes {access:?} on {resource:?} {segment:?}"
                );
            }
            let _ = deny.allows_all(resource, access);
            let _ = deny.allows_any(resource, access);
            let _ = allow.allows_all(resource, access);
            let _ = allow.allows_any(resource, access);
        }
    }
    for segment in SEGMENTS.iter().chain(&from_input) {
        let _ = deny.allows_key_write_prefix(segment);
        let _ = allow.allows_key_write_prefix(segment);
    }
});
