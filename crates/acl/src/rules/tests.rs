use super::*;

fn seg(resource: Resource, name: &str, prefix: bool, access: Access) -> SegmentRule {
    SegmentRule {
        resource,
        name: name.to_owned(),
        prefix,
        access,
        intentions: None,
    }
}

fn err(text: &str) -> String {
    match Rules::parse(text) {
        Ok(rules) => panic!("{text:?} parsed to {rules:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn every_resource_form_in_hcl_and_json() {
    use Access::*;
    use Resource::*;
    let cases: &[(&str, &str, SegmentRule)] = &[
        ("agent", "a", seg(Agent, "a", false, Read)),
        ("agent_prefix", "a", seg(Agent, "a", true, Write)),
        ("key", "k", seg(Key, "k", false, List)),
        ("key_prefix", "", seg(Key, "", true, Deny)),
        ("node", "n", seg(Node, "n", false, Write)),
        ("node_prefix", "n", seg(Node, "n", true, Read)),
        ("service", "s", seg(Service, "s", false, Write)),
        ("service_prefix", "s", seg(Service, "s", true, Deny)),
        ("session", "x", seg(Session, "x", false, Read)),
        ("session_prefix", "x", seg(Session, "x", true, Write)),
        ("event", "e", seg(Event, "e", false, Deny)),
        ("event_prefix", "e", seg(Event, "e", true, Read)),
        ("query", "q", seg(Query, "q", false, Write)),
        ("query_prefix", "q", seg(Query, "q", true, Read)),
    ];
    for (key, label, want) in cases {
        let policy = want.access.as_str();
        let hcl = format!("{key} \"{label}\" {{\n  policy = \"{policy}\"\n}}\n");
        let json = format!(r#"{{"{key}": {{"{label}": {{"policy": "{policy}"}}}}}}"#);
        for text in [&hcl, &json] {
            let rules = Rules::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(rules.segments, vec![want.clone()], "{text}");
        }
    }
    for (key, access) in [
        ("acl", Write),
        ("keyring", Read),
        ("operator", Deny),
        ("mesh", Write),
        ("peering", Read),
    ] {
        let hcl = format!("{key} = \"{access}\"");
        let json = format!(r#"{{"{key}": "{access}"}}"#);
        for text in [&hcl, &json] {
            let rules = Rules::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            let got = match key {
                "acl" => rules.acl,
                "keyring" => rules.keyring,
                "operator" => rules.operator,
                "mesh" => rules.mesh,
                _ => rules.peering,
            };
            assert_eq!(got, Some(access), "{text}");
        }
    }
}

#[test]
fn consul_examples() {
    let hcl = r#"
        key_prefix "" { policy = "read" }
        key "foo/bar" { policy = "write" }
        # comment
        service "web" { policy = "write"  intentions = "read" }
        // another
        node_prefix "" { policy = "read" } /* block */
        operator = "read"
    "#;
    let json = r#"{
        "key_prefix": {"": {"policy": "read"}},
        "key": {"foo/bar": {"policy": "write"}},
        "service": {"web": {"policy": "write", "intentions": "read"}},
        "node_prefix": {"": {"policy": "read"}},
        "operator": "read"
    }"#;
    let mut web = seg(Resource::Service, "web", false, Access::Write);
    web.intentions = Some(Access::Read);
    let want = Rules {
        segments: vec![
            seg(Resource::Key, "foo/bar", false, Access::Write),
            seg(Resource::Key, "", true, Access::Read),
            seg(Resource::Node, "", true, Access::Read),
            web,
        ],
        operator: Some(Access::Read),
        ..Rules::default()
    };
    assert_eq!(Rules::parse(hcl), Ok(want.clone()));
    assert_eq!(Rules::parse(json), Ok(want));
}

#[test]
fn several_blocks_of_one_kind_are_kept() {
    let hcl = "key \"a\" { policy = \"read\" }\nkey \"b\" { policy = \"write\" }\nkey \"a\" { policy = \"deny\" }";
    let json = r#"{"key": [{"a": {"policy": "read"}}, {"b": {"policy": "write"}}, {"a": {"policy": "deny"}}]}"#;
    let want = vec![
        seg(Resource::Key, "a", false, Access::Read),
        seg(Resource::Key, "b", false, Access::Write),
        seg(Resource::Key, "a", false, Access::Deny),
    ];
    assert_eq!(Rules::parse(hcl).map(|r| r.segments), Ok(want.clone()));
    assert_eq!(Rules::parse(json).map(|r| r.segments), Ok(want));
}

#[test]
fn hcl1_forms() {
    let key = |name: &str, access| seg(Resource::Key, name, false, access);
    let cases: &[(&str, Vec<SegmentRule>)] = &[
        // Object assignment instead of a block.
        (r#"key = { "a" = { policy = "read" } }"#, vec![key("a", Access::Read)]),
        // Keys match case-insensitively, values too; commas separate items.
        (r#"KEY "a" { Policy = "WRITE", }"#, vec![key("a", Access::Write)]),
        // Unknown keys (enterprise-only ones included) are ignored.
        (
            "namespace \"ns\" { policy = \"read\" }\nfoo = 1\nkey \"a\" { policy = \"read\" other = true }",
            vec![key("a", Access::Read)],
        ),
        // Heredoc values.
        ("key \"a\" {\n policy = <<EOT\nread\nEOT\n}", vec![]),
        // Quoted keys.
        (r#""key" "a" { "policy" = "list" }"#, vec![key("a", Access::List)]),
    ];
    for (text, want) in cases {
        match Rules::parse(text) {
            Ok(rules) => assert_eq!(&rules.segments, want, "{text}"),
            // The heredoc keeps its newline, which no level matches.
            Err(e) => assert!(
                want.is_empty() && e.to_string().starts_with("Invalid key policy"),
                "{text}: {e}"
            ),
        }
    }
}

#[test]
fn empty_rules() {
    for text in ["", "   \n", "# only a comment", "{}"] {
        assert_eq!(Rules::parse(text), Ok(Rules::default()), "{text:?}");
    }
    assert!(Rules::default().is_empty());
    // An empty unsegmented value means "no rule", as in Consul.
    for text in [
        r#"operator = """#,
        r#"{"mesh": ""}"#,
        r#"peering = """#,
        r#"keyring = """#,
    ] {
        assert_eq!(Rules::parse(text), Ok(Rules::default()), "{text:?}");
    }
}

#[test]
fn invalid_values_have_consul_texts() {
    let cases: &[(&str, &str)] = &[
        (r#"acl = "list""#, r#"Invalid acl policy: "list""#),
        (
            r#"agent "foo" { policy = "nope" }"#,
            r#"Invalid agent policy: &acl.AgentRule{Node:"foo", Policy:"nope"}"#,
        ),
        (
            r#"agent_prefix "foo" { policy = "list" }"#,
            r#"Invalid agent_prefix policy: &acl.AgentRule{Node:"foo", Policy:"list"}"#,
        ),
        (
            r#"key "foo" { policy = "nope" }"#,
            r#"Invalid key policy: &acl.KeyRule{Prefix:"foo", Policy:"nope", EnterpriseRule:acl.EnterpriseRule{}}"#,
        ),
        (
            r#"key_prefix "foo" { }"#,
            r#"Invalid key_prefix policy: &acl.KeyRule{Prefix:"foo", Policy:"", EnterpriseRule:acl.EnterpriseRule{}}"#,
        ),
        (
            r#"node "foo" { policy = "nope" }"#,
            r#"Invalid node policy: &acl.NodeRule{Name:"foo", Policy:"nope", EnterpriseRule:acl.EnterpriseRule{}}"#,
        ),
        (
            r#"node_prefix "foo" { policy = "list" }"#,
            r#"Invalid node_prefix policy: &acl.NodeRule{Name:"foo", Policy:"list", EnterpriseRule:acl.EnterpriseRule{}}"#,
        ),
        (
            r#"service "foo" { policy = "nope" }"#,
            r#"Invalid service policy: &acl.ServiceRule{Name:"foo", Policy:"nope", Intentions:"", EnterpriseRule:acl.EnterpriseRule{}}"#,
        ),
        (
            r#"service "foo" { policy = "write" intentions = "foo" }"#,
            r#"Invalid service intentions policy: &acl.ServiceRule{Name:"foo", Policy:"write", Intentions:"foo", EnterpriseRule:acl.EnterpriseRule{}}"#,
        ),
        (
            r#"service_prefix "foo" { policy = "nope" }"#,
            r#"Invalid service_prefix policy: &acl.ServiceRule{Name:"foo", Policy:"nope", Intentions:"", EnterpriseRule:acl.EnterpriseRule{}}"#,
        ),
        (
            r#"service_prefix "" { policy = "read" intentions = "list" }"#,
            r#"Invalid service_prefix intentions policy: &acl.ServiceRule{Name:"", Policy:"read", Intentions:"list", EnterpriseRule:acl.EnterpriseRule{}}"#,
        ),
        (
            r#"session "foo" { policy = "nope" }"#,
            r#"Invalid session policy: &acl.SessionRule{Node:"foo", Policy:"nope"}"#,
        ),
        (
            r#"session_prefix "foo" { policy = "nope" }"#,
            r#"Invalid session_prefix policy: &acl.SessionRule{Node:"foo", Policy:"nope"}"#,
        ),
        (
            r#"event "foo" { policy = "nope" }"#,
            r#"Invalid event policy: &acl.EventRule{Event:"foo", Policy:"nope"}"#,
        ),
        (
            r#"event_prefix "foo" { policy = "nope" }"#,
            r#"Invalid event_prefix policy: &acl.EventRule{Event:"foo", Policy:"nope"}"#,
        ),
        (
            r#"query "foo" { policy = "nope" }"#,
            r#"Invalid query policy: &acl.PreparedQueryRule{Prefix:"foo", Policy:"nope"}"#,
        ),
        (
            r#"query_prefix "foo" { policy = "nope" }"#,
            r#"Invalid query_prefix policy: &acl.PreparedQueryRule{Prefix:"foo", Policy:"nope"}"#,
        ),
        (r#"keyring = "nope""#, r#"Invalid keyring policy: "nope""#),
        (r#"operator = "nope""#, r#"Invalid operator policy: "nope""#),
        (r#"mesh = "nope""#, r#"Invalid mesh policy: "nope""#),
        (r#"peering = "list""#, r#"Invalid peering policy: "list""#),
        // Go quoting of odd characters.
        (
            "operator = \"a\\tb\\\"\\u00e9\\u0001\"",
            r#"Invalid operator policy: "a\tb\"é\x01""#,
        ),
        // Validation order is Consul's: acl first, then the segmented kinds, then the rest.
        (
            "operator = \"x\"\nkey \"k\" { policy = \"x\" }\nacl = \"x\"",
            r#"Invalid acl policy: "x""#,
        ),
        (
            "operator = \"x\"\nquery \"q\" { policy = \"x\" }\nagent \"a\" { policy = \"x\" }",
            r#"Invalid agent policy: &acl.AgentRule{Node:"a", Policy:"x"}"#,
        ),
    ];
    for (text, want) in cases {
        assert_eq!(err(text), *want, "{text}");
    }
    // JSON gives the same texts.
    assert_eq!(
        err(r#"{ "service": { "foo": { "policy": "write", "intentions": "foo" }}}"#),
        r#"Invalid service intentions policy: &acl.ServiceRule{Name:"foo", Policy:"write", Intentions:"foo", EnterpriseRule:acl.EnterpriseRule{}}"#
    );
    assert_eq!(
        err(r#"{ "mesh": "nope" }"#),
        r#"Invalid mesh policy: "nope""#
    );
}

#[test]
fn syntax_errors() {
    let cases: &[(&str, &str)] = &[
        (
            "operator = \"read\"\noperator = \"write\"",
            r#"Failed to parse ACL rules: The argument "operator" at 2:1 was already set. Each argument can only be defined once"#,
        ),
        (
            r#"path "foo/" { policy = "read" policy = "read" }"#,
            r#"Failed to parse ACL rules: The argument "policy" at 1:31 was already set. Each argument can only be defined once"#,
        ),
        ("key \"a\" {", "Failed to parse ACL rules: "),
        ("key \"a\"", "Failed to parse ACL rules: "),
        ("= \"read\"", "Failed to parse ACL rules: "),
        ("operator = \"read", "Failed to parse ACL rules: "),
        ("{\"key\": ", "Failed to parse ACL rules: "),
        (
            "operator = true",
            "Failed to parse ACL rules: root.operator: unknown type for string",
        ),
        (
            r#"operator "x" { policy = "read" }"#,
            "Failed to parse ACL rules: root.operator: unknown type for string",
        ),
        (
            r#"key = "read""#,
            "Failed to parse ACL rules: root.key: not an object type",
        ),
        (
            r#"{"key": {"a": {"policy": ["read"]}}}"#,
            "Failed to parse ACL rules: root.key.Policy: unknown type for string",
        ),
    ];
    for (text, want) in cases {
        let got = err(text);
        assert!(got.starts_with(want), "{text:?}: {got}");
    }
    // The same block label twice is not a duplicate argument.
    assert!(
        Rules::parse("key \"a\" { policy = \"read\" }\nkey \"a\" { policy = \"read\" }").is_ok()
    );
}

#[test]
fn literal_where_a_body_belongs() {
    // Consul decodes `key { policy = "read" }` as the rule `key "policy" { policy = "read" }`.
    assert_eq!(
        Rules::parse(r#"key { policy = "read" }"#).map(|r| r.segments),
        Ok(vec![seg(Resource::Key, "policy", false, Access::Read)])
    );
    assert!(err(r#"key { foo = "read" }"#)
        .starts_with("Invalid key policy: &acl.KeyRule{Prefix:\"foo\", Policy:\"\""));
}

#[test]
fn identities() {
    let web = Rules::service_identity("web");
    assert_eq!(
        web.segments,
        vec![
            seg(Resource::Service, "web", false, Access::Write),
            seg(Resource::Service, "web-sidecar-proxy", false, Access::Write),
            seg(Resource::Service, "", true, Access::Read),
            seg(Resource::Node, "", true, Access::Read),
        ]
    );
    // The same as Consul's template for service identities, parsed.
    let template = "service \"web\" {\n\tpolicy = \"write\"\n}\nservice \"web-sidecar-proxy\" {\n\tpolicy = \"write\"\n}\nservice_prefix \"\" {\n\tpolicy = \"read\"\n}\nnode_prefix \"\" {\n\tpolicy = \"read\"\n}";
    let mut parsed = Rules::parse(template)
        .map(|r| r.segments)
        .unwrap_or_default();
    let mut built = web.segments.clone();
    parsed.sort_by(|a, b| (a.resource, a.prefix, &a.name).cmp(&(b.resource, b.prefix, &b.name)));
    built.sort_by(|a, b| (a.resource, a.prefix, &a.name).cmp(&(b.resource, b.prefix, &b.name)));
    assert_eq!(parsed, built);

    assert_eq!(
        Rules::node_identity("n1").segments,
        vec![
            seg(Resource::Node, "n1", false, Access::Write),
            seg(Resource::Service, "", true, Access::Read)
        ]
    );
}

#[test]
fn access_and_resource_names() {
    for access in [Access::Deny, Access::Read, Access::List, Access::Write] {
        assert_eq!(Access::from_policy(access.as_str()), Some(access));
        assert_eq!(
            serde_json::to_string(&access).ok(),
            Some(format!("\"{access}\""))
        );
    }
    assert_eq!(Resource::Peering.as_str(), "peering");
    assert!(!Resource::Mesh.is_segmented());
    assert!(Resource::Session.is_segmented());
}

proptest::proptest! {
    #[test]
    fn parse_never_panics(text in "\\PC*") {
        let _ = Rules::parse(&text);
    }

    #[test]
    fn parse_never_panics_on_rule_like_text(
        text in r##"([ \n{}\[\]=,"#/*<-]|key|_prefix|policy|"read"|"[a-z]*"|<<EOT\n|EOT|[0-9.e-]+|\\[a-z]){0,40}"##
    ) {
        let _ = Rules::parse(&text);
    }
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let deep = format!("a = {}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(Rules::parse(&deep).is_err());
    let deep_json = format!("{{\"a\": {}{}}}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(Rules::parse(&deep_json).is_err());
}
