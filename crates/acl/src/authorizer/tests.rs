use super::*;
use Access::{Deny, List, Read, Write};
use DefaultPolicy::{Allow as DefAllow, Deny as DefDeny};
use Resource::*;

fn authz(texts: &[&str], default: DefaultPolicy) -> Authorizer {
    let rules: Vec<Rules> = texts
        .iter()
        .map(|t| Rules::parse(t).unwrap_or_else(|e| panic!("{t}: {e}")))
        .collect();
    Authorizer::new(&rules, default)
}

/// `(resource, segment, access, expected)` rows against one authorizer.
fn check(a: &Authorizer, rows: &[(Resource, &str, Access, bool)]) {
    for &(resource, segment, access, want) in rows {
        assert_eq!(
            a.allows(resource, segment, access),
            want,
            "{resource} {segment:?} {access}"
        );
    }
}

#[test]
fn granted_levels_for_keys() {
    let a = authz(
        &[
            r#"key "r" { policy = "read" } key "l" { policy = "list" } key "w" { policy = "write" } key "d" { policy = "deny" }"#,
        ],
        DefAllow,
    );
    check(
        &a,
        &[
            (Key, "r", Read, true),
            (Key, "r", List, false),
            (Key, "r", Write, false),
            (Key, "l", Read, true),
            (Key, "l", List, true),
            (Key, "l", Write, false),
            (Key, "w", Read, true),
            (Key, "w", List, true),
            (Key, "w", Write, true),
            (Key, "d", Read, false),
            (Key, "d", List, false),
            (Key, "d", Write, false),
            // Asking for deny is never granted.
            (Key, "w", Deny, false),
            (Key, "other", Deny, false),
        ],
    );
}

#[test]
fn exact_then_longest_prefix_then_default() {
    let text = r#"
        key_prefix "" { policy = "read" }
        key_prefix "foo/" { policy = "write" }
        key_prefix "foo/bar/" { policy = "read" }
        key "foo/bar/baz" { policy = "deny" }
        key "foo/exact" { policy = "read" }
        service_prefix "we" { policy = "write" }
        service "web" { policy = "read" }
    "#;
    for default in [DefAllow, DefDeny] {
        let a = authz(&[text], default);
        check(
            &a,
            &[
                (Key, "zzz", Read, true),
                (Key, "zzz", Write, false),
                (Key, "foo/", Write, true),
                (Key, "foo/x", Write, true),
                (Key, "foo/bar/", Write, false),
                (Key, "foo/bar/x", Read, true),
                (Key, "foo/bar/x", Write, false),
                (Key, "foo/bar/baz", Read, false),
                (Key, "foo/bar/baz/more", Read, true),
                // An exact rule wins over a longer-matching prefix rule.
                (Key, "foo/exact", Write, false),
                (Key, "foo/exactly", Write, true),
                (Service, "web", Write, false),
                (Service, "web", Read, true),
                (Service, "wea", Write, true),
                (Service, "webx", Write, true),
            ],
        );
        // Without a matching rule the default decides.
        let allowed = default == DefAllow;
        check(
            &a,
            &[
                (Service, "api", Read, allowed),
                (Service, "w", Write, allowed),
                (Node, "n", Write, allowed),
            ],
        );
    }
}

#[test]
fn default_only() {
    let allow = Authorizer::default_only(DefAllow);
    let deny = Authorizer::default_only(DefDeny);
    for resource in [
        Agent, Event, Intention, Key, Keyring, Mesh, Node, Operator, Peering, Query, Service,
        Session,
    ] {
        for access in [Read, List, Write] {
            assert!(allow.allows(resource, "x", access), "{resource} {access}");
            assert!(!deny.allows(resource, "x", access), "{resource} {access}");
        }
        assert!(allow.allows_all(resource, Write));
        assert!(!deny.allows_all(resource, Read));
    }
    // Consul's static allow-all authorizer never grants ACL management.
    assert!(!allow.allows(Acl, "", Read));
    assert!(!allow.allows(Acl, "", Write));
    assert!(allow.allows_key_write_prefix("any/"));
    assert!(!deny.allows_key_write_prefix("any/"));
    assert!(!allow.is_management());
}

#[test]
fn unsegmented_and_mesh_peering_fallback() {
    type Row = (Resource, Access, bool);
    let cases: &[(&str, DefaultPolicy, &[Row])] = &[
        (
            r#"operator = "read""#,
            DefAllow,
            &[
                (Operator, Read, true),
                (Operator, Write, false),
                (Mesh, Read, true),
                (Mesh, Write, false),
                (Peering, Read, true),
                (Peering, Write, false),
            ],
        ),
        (
            r#"operator = "write""#,
            DefDeny,
            &[
                (Mesh, Write, true),
                (Peering, Write, true),
                (Keyring, Read, false),
            ],
        ),
        (
            r#"operator = "write" mesh = "read""#,
            DefDeny,
            &[
                (Mesh, Read, true),
                (Mesh, Write, false),
                (Peering, Write, true),
            ],
        ),
        (
            r#"operator = "deny" peering = "write""#,
            DefAllow,
            &[
                (Mesh, Read, false),
                (Peering, Write, true),
                (Operator, Read, false),
            ],
        ),
        (
            r#"mesh = "deny""#,
            DefAllow,
            &[
                (Mesh, Read, false),
                (Operator, Write, true),
                (Peering, Write, true),
            ],
        ),
        (
            r#"acl = "read""#,
            DefDeny,
            &[(Acl, Read, true), (Acl, Write, false)],
        ),
        (
            r#"acl = "write" keyring = "write""#,
            DefDeny,
            &[
                (Acl, Write, true),
                (Keyring, Write, true),
                (Operator, Read, false),
            ],
        ),
        (
            r#"keyring = "deny""#,
            DefAllow,
            &[(Keyring, Read, false), (Keyring, List, false)],
        ),
    ];
    for (text, default, rows) in cases {
        let a = authz(&[text], *default);
        for &(resource, access, want) in rows.iter() {
            assert_eq!(
                a.allows(resource, "ignored", access),
                want,
                "{text}: {resource} {access}"
            );
        }
    }
}

#[test]
fn intentions() {
    let text = r#"
        service "w" { policy = "write" }
        service "r" { policy = "read" }
        service "d" { policy = "deny" }
        service "wr" { policy = "deny" intentions = "write" }
        service "iw" { policy = "read" intentions = "write" }
        service "id" { policy = "write" intentions = "deny" }
        service_prefix "p-" { policy = "write" }
    "#;
    let a = authz(&[text], DefDeny);
    check(
        &a,
        &[
            (Intention, "w", Read, true),
            (Intention, "w", Write, false),
            (Intention, "r", Read, true),
            (Intention, "r", Write, false),
            (Intention, "d", Read, false),
            (Intention, "wr", Write, true),
            (Intention, "wr", Read, true),
            (Service, "wr", Read, false),
            (Intention, "iw", Write, true),
            (Intention, "id", Read, false),
            (Service, "id", Write, true),
            (Intention, "p-x", Read, true),
            (Intention, "p-x", Write, false),
            (Intention, "other", Read, false),
        ],
    );
    // `*` asks about any intention: read needs some grant, write needs every name.
    assert!(a.allows(Intention, "*", Read));
    assert!(!a.allows(Intention, "*", Write));
    let all = authz(
        &[r#"service_prefix "" { policy = "write" intentions = "write" }"#],
        DefDeny,
    );
    assert!(all.allows(Intention, "*", Write));
    let none = authz(&[r#"service_prefix "" { policy = "deny" }"#], DefAllow);
    assert!(!none.allows(Intention, "*", Read));
}

#[test]
fn merging_policies() {
    let a = authz(
        &[
            r#"key "k" { policy = "read" } key_prefix "k" { policy = "write" } node "n" { policy = "write" } operator = "read""#,
            r#"key "k" { policy = "write" } key_prefix "k" { policy = "deny" } node "n" { policy = "read" } operator = "deny""#,
            r#"key "k" { policy = "list" } agent "a" { policy = "read" } acl = "read""#,
            r#"agent "a" { policy = "write" } acl = "write" event_prefix "" { policy = "read" }"#,
            r#"event_prefix "" { policy = "write" }"#,
        ],
        DefDeny,
    );
    check(
        &a,
        &[
            // write beats list and read for the exact rule; deny wins for the prefix rule.
            (Key, "k", Write, true),
            (Key, "kx", Read, false),
            (Node, "n", Write, true),
            (Operator, "", Read, false),
            (Agent, "a", Write, true),
            (Acl, "", Write, true),
            (Event, "e", Write, true),
        ],
    );
    // Deny wins whatever the order; within one policy too.
    for texts in [
        [
            r#"service "s" { policy = "write" }"#,
            r#"service "s" { policy = "deny" }"#,
        ],
        [
            r#"service "s" { policy = "deny" }"#,
            r#"service "s" { policy = "write" }"#,
        ],
    ] {
        assert!(!authz(&texts, DefAllow).allows(Service, "s", Read));
    }
    assert!(!authz(
        &["key \"a\" { policy = \"deny\" }\nkey \"a\" { policy = \"write\" }"],
        DefAllow
    )
    .allows(Key, "a", Read));
    // Intentions merge on their own, then are derived from the merged policy.
    let merged = authz(
        &[
            r#"service "s" { policy = "deny" }"#,
            r#"service "s" { policy = "read" intentions = "write" }"#,
        ],
        DefDeny,
    );
    assert!(!merged.allows(Service, "s", Read));
    assert!(merged.allows(Intention, "s", Write));
    let derived = authz(
        &[
            r#"service "s" { policy = "read" }"#,
            r#"service "s" { policy = "write" }"#,
        ],
        DefDeny,
    );
    assert!(derived.allows(Intention, "s", Read));
    assert!(!derived.allows(Intention, "s", Write));
    // Identities merge with policies.
    let web = Rules::service_identity("web");
    let deny =
        Rules::parse(r#"service "web-sidecar-proxy" { policy = "deny" }"#).unwrap_or_default();
    let a = Authorizer::new([&web, &deny], DefDeny);
    check(
        &a,
        &[
            (Service, "web", Write, true),
            (Service, "web-sidecar-proxy", Read, false),
            (Service, "db", Read, true),
            (Service, "db", Write, false),
            (Node, "n", Read, true),
            (Key, "k", Read, false),
        ],
    );
    let node = Authorizer::new([&Rules::node_identity("n1")], DefDeny);
    check(
        &node,
        &[
            (Node, "n1", Write, true),
            (Node, "n2", Write, false),
            (Node, "n2", Read, false),
            (Service, "s", Read, true),
        ],
    );
}

#[test]
fn allows_all() {
    let cases: &[(&str, DefaultPolicy, Resource, Access, bool)] = &[
        (
            r#"service_prefix "" { policy = "read" }"#,
            DefDeny,
            Service,
            Read,
            true,
        ),
        (
            r#"service_prefix "" { policy = "read" }"#,
            DefDeny,
            Service,
            Write,
            false,
        ),
        (
            r#"service_prefix "" { policy = "read" } service "x" { policy = "deny" }"#,
            DefAllow,
            Service,
            Read,
            false,
        ),
        (
            r#"service_prefix "" { policy = "read" } service_prefix "x" { policy = "deny" }"#,
            DefAllow,
            Service,
            Read,
            false,
        ),
        (
            r#"service_prefix "" { policy = "write" } service "x" { policy = "read" }"#,
            DefAllow,
            Service,
            Read,
            true,
        ),
        (
            r#"service_prefix "" { policy = "write" } service "x" { policy = "read" }"#,
            DefAllow,
            Service,
            Write,
            false,
        ),
        (
            r#"service_prefix "" { policy = "deny" } service "x" { policy = "write" }"#,
            DefAllow,
            Service,
            Read,
            false,
        ),
        // Without a "" rule the default decides, unless a rule denies.
        (
            r#"node "x" { policy = "write" }"#,
            DefAllow,
            Node,
            Read,
            true,
        ),
        (
            r#"node "x" { policy = "write" }"#,
            DefDeny,
            Node,
            Read,
            false,
        ),
        (
            r#"node "x" { policy = "deny" }"#,
            DefAllow,
            Node,
            Read,
            false,
        ),
        (
            r#"key_prefix "" { policy = "list" }"#,
            DefDeny,
            Key,
            List,
            true,
        ),
        (
            r#"key_prefix "" { policy = "list" } key "a" { policy = "read" }"#,
            DefDeny,
            Key,
            List,
            false,
        ),
        (r#"operator = "read""#, DefDeny, Operator, Read, true),
        (r#"operator = "read""#, DefDeny, Mesh, Write, false),
        (
            r#"node_prefix "" { policy = "read" }"#,
            DefDeny,
            Service,
            Read,
            false,
        ),
    ];
    for (text, default, resource, access, want) in cases {
        assert_eq!(
            authz(&[text], *default).allows_all(*resource, *access),
            *want,
            "{text}: {resource} {access}"
        );
    }
    let a = authz(&[r#"service "a" { policy = "write" }"#], DefDeny);
    assert!(a.allows_any(Service, Write));
    assert!(!a.allows_any(Node, Read));
}

#[test]
fn key_write_prefix() {
    let text = r#"
        key_prefix "" { policy = "read" }
        key_prefix "foo/" { policy = "write" }
        key_prefix "foo/bar/" { policy = "read" }
        key "foo/baz" { policy = "deny" }
        key_prefix "app/" { policy = "write" }
        key "app/x" { policy = "write" }
    "#;
    for default in [DefAllow, DefDeny] {
        let a = authz(&[text], default);
        let rows = [
            ("app/", true),
            ("app/x", true),
            ("foo/", false),
            ("foo/q", true),
            ("foo/ba", false),
            ("foo/bar/", false),
            ("foo/bar/x", false),
            ("foo/baz", false),
            ("foo/bazz", true),
            ("other", false),
            ("", false),
        ];
        for (prefix, want) in rows {
            assert_eq!(
                a.allows_key_write_prefix(prefix),
                want,
                "{prefix:?} {default}"
            );
        }
    }
    // Without an applicable prefix rule the default decides, unless a rule below is not write.
    let a = authz(
        &[r#"key "x/y" { policy = "write" } key "z/y" { policy = "list" }"#],
        DefAllow,
    );
    assert!(a.allows_key_write_prefix("x/"));
    assert!(!a.allows_key_write_prefix("z/"));
    assert!(!authz(&[r#"key "x/y" { policy = "write" }"#], DefDeny).allows_key_write_prefix("x/"));
}

#[test]
fn management() {
    let m = Authorizer::management();
    assert!(m.is_management());
    for resource in [
        Acl, Agent, Event, Intention, Key, Keyring, Mesh, Node, Operator, Peering, Query, Service,
        Session,
    ] {
        for access in [Read, List, Write] {
            assert!(m.allows(resource, "anything", access));
            assert!(m.allows_all(resource, access));
        }
    }
    assert!(m.allows(Intention, "*", Write));
    assert!(m.allows_key_write_prefix(""));
}

#[test]
fn default_policy_strings() {
    assert_eq!("allow".parse(), Ok(DefAllow));
    assert_eq!("deny".parse(), Ok(DefDeny));
    assert!("Allow".parse::<DefaultPolicy>().is_err());
    assert_eq!(DefDeny.as_str(), "deny");
    assert_eq!(
        serde_json::to_string(&DefAllow).ok().as_deref(),
        Some("\"allow\"")
    );
    assert_eq!(
        serde_json::from_str::<DefaultPolicy>("\"deny\"").ok(),
        Some(DefDeny)
    );
    assert_eq!(DefaultPolicy::default(), DefAllow);
}

#[test]
fn lookups_scale() {
    let text: String = (0..2000)
        .map(|i| format!("service \"svc-{i}\" {{ policy = \"write\" }}\nkey_prefix \"k/{i}/\" {{ policy = \"read\" }}\n"))
        .collect();
    let rules = Rules::parse(&text).unwrap_or_default();
    let a = Authorizer::new([&rules], DefDeny);
    let granted = (0..10_000)
        .filter(|i| a.allows(Service, &format!("svc-{}", i % 4000), Write))
        .count();
    assert_eq!(granted, 6_000);
    assert!(a.allows(Key, "k/1999/deep/key", Read));
    assert!(!a.allows(Key, "k/1999/deep/key", Write));
}

proptest::proptest! {
    #[test]
    fn allows_never_panics(
        names in proptest::collection::vec("[a-c/]{0,4}", 0..8),
        segment in "\\PC{0,8}",
        default_allow in proptest::bool::ANY,
    ) {
        let text: String = names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let kind = ["key", "key_prefix", "service", "service_prefix"][i % 4];
                let level = ["read", "write", "deny", "read"][i % 4];
                format!("{kind} \"{n}\" {{\n policy = \"{level}\"\n}}\n")
            })
            .collect();
        let rules = Rules::parse(&text).unwrap_or_default();
        let default = if default_allow { DefAllow } else { DefDeny };
        let a = Authorizer::new([&rules], default);
        for resource in [Acl, Agent, Event, Intention, Key, Keyring, Mesh, Node, Operator, Peering, Query, Service, Session] {
            for access in [Deny, Read, List, Write] {
                let _ = a.allows(resource, &segment, access);
                let _ = a.allows_all(resource, access);
                let _ = a.allows_any(resource, access);
            }
        }
        let _ = a.allows_key_write_prefix(&segment);
    }

    /// A rule's own lookup agrees with a brute-force reading of Consul's semantics.
    #[test]
    fn lookup_matches_reference(
        rules in proptest::collection::vec(("[ab]{0,3}", proptest::bool::ANY, 0usize..4), 0..10),
        segment in "[ab]{0,4}",
    ) {
        let levels = [Read, List, Write, Deny];
        let mut tree = RuleTree::default();
        for (name, prefix, level) in &rules {
            tree.insert(name, *prefix, levels[*level]);
        }
        let strongest = |want_prefix: bool, name: &str| {
            rules
                .iter()
                .filter(|(n, p, _)| *p == want_prefix && n == name)
                .map(|(_, _, l)| levels[*l])
                .max_by_key(|l| l.precedence())
        };
        let exact = strongest(false, &segment);
        let prefix = (0..=segment.len()).rev().find_map(|len| strongest(true, &segment[..len]));
        proptest::prop_assert_eq!(tree.lookup(&segment), exact.or(prefix));
    }
}
