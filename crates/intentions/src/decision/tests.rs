use super::*;
use crate::model::{Pattern, Permission};
use crate::testing::{l4, l7};

const ACL_ALLOW: DefaultPolicy = DefaultPolicy::Acl { allow: true };
const ACL_DENY: DefaultPolicy = DefaultPolicy::Acl { allow: false };

fn perm(action: Action, http: HttpMatch) -> Permission {
    Permission { action, http }
}

fn path(m: PathMatch) -> HttpMatch {
    HttpMatch {
        path: Some(m),
        ..HttpMatch::default()
    }
}

fn get(path: &str) -> HttpRequest<'_> {
    HttpRequest {
        method: "GET",
        path,
        headers: Vec::new(),
    }
}

#[test]
fn l4_decisions_and_reasons() {
    let mut legacy = l4("web", "db", "deny");
    legacy.id = "5e1c0b4e-0000-4000-8000-000000000001".into();
    let ixns = [l4("*", "db", "allow"), legacy, l4("api", "db", "allow")];

    let d = authorize(&ixns, "api", "db", None, ACL_DENY);
    assert!(d.allowed);
    assert_eq!(
        d.reason,
        "Matched L4 intention: default/api => default/db (Precedence: 9, Action: ALLOW)"
    );
    let m = d.matched.unwrap();
    assert_eq!(
        (m.source.as_str(), m.precedence, m.permission),
        ("api", 9, None)
    );

    let d = authorize(&ixns, "web", "db", None, ACL_ALLOW);
    assert!(!d.allowed, "the exact deny outranks the wildcard allow");
    assert_eq!(
        d.reason,
        "Matched L4 intention: default/web => default/db (ID: 5e1c0b4e-0000-4000-8000-000000000001, Precedence: 9, Action: DENY)"
    );

    let d = authorize(&ixns, "other", "db", None, ACL_DENY);
    assert!(d.allowed);
    assert_eq!(d.matched.unwrap().source, "*");
}

#[test]
fn default_decisions() {
    let ixns = [l4("web", "db", "allow")];
    let check = |default: DefaultPolicy, allowed: bool, reason: &str| {
        let d = authorize(&ixns, "api", "db", None, default);
        assert_eq!(
            (d.allowed, d.reason.as_str(), d.matched),
            (allowed, reason, None)
        );
    };
    check(ACL_ALLOW, true, "Default behavior configured by ACLs");
    check(ACL_DENY, false, "Default behavior configured by ACLs");
    check(
        DefaultPolicy::Intention { allow: true },
        true,
        "Default intention policy",
    );
    check(
        DefaultPolicy::Intention { allow: false },
        false,
        "Default intention policy",
    );
    // An intention towards another destination never applies.
    let d = authorize(&ixns, "web", "cache", None, ACL_DENY);
    assert!(!d.allowed);
}

#[test]
fn precedence_table_decides_between_wildcards() {
    let ixns = [
        l4("*", "*", "deny"),
        l4("web", "*", "allow"),
        l4("*", "db", "deny"),
        l4("web", "db", "allow"),
    ];
    let check = |source: &str, destination: &str, allowed: bool, winner: (&str, &str)| {
        let d = authorize(&ixns, source, destination, None, ACL_ALLOW);
        let m = d.matched.expect("a match");
        assert_eq!(
            (d.allowed, m.source.as_str(), m.destination.as_str()),
            (allowed, winner.0, winner.1),
            "{source} => {destination}"
        );
    };
    check("web", "db", true, ("web", "db"));
    check("api", "db", false, ("*", "db"));
    check("web", "cache", true, ("web", "*"));
    check("api", "cache", false, ("*", "*"));
}

#[test]
fn l7_intention_denies_connections_and_evaluates_requests() {
    let ixn = l7(
        "web",
        "api",
        vec![
            perm(Action::Deny, path(PathMatch::Prefix("/admin".into()))),
            perm(Action::Allow, path(PathMatch::Prefix("/".into()))),
        ],
    );
    let ixns = [ixn];
    let d = authorize(&ixns, "web", "api", None, ACL_ALLOW);
    assert!(!d.allowed, "authorize without a request treats L7 as deny");
    assert_eq!(
        d.reason,
        "Matched L7 intention: default/web => default/api (Precedence: 9, Permissions: 2)"
    );

    let d = authorize(&ixns, "web", "api", Some(&get("/admin/users")), ACL_ALLOW);
    assert!(!d.allowed, "first match wins: the deny comes first");
    assert_eq!(d.matched.unwrap().permission, Some(0));
    assert_eq!(
        d.reason,
        "Matched L7 intention: default/web => default/api (Precedence: 9, Permissions: 2), permission 0: DENY"
    );
    let d = authorize(&ixns, "web", "api", Some(&get("/users")), ACL_DENY);
    assert!(d.allowed);
    assert_eq!(d.matched.unwrap().permission, Some(1));
}

#[test]
fn unmatched_request_gets_the_default_and_shadows_lower_intentions() {
    let ixns = [
        l7(
            "web",
            "api",
            vec![perm(
                Action::Allow,
                path(PathMatch::Exact("/health".into())),
            )],
        ),
        l4("*", "api", "allow"),
    ];
    let d = authorize(&ixns, "web", "api", Some(&get("/data")), ACL_DENY);
    assert!(!d.allowed, "the wildcard allow does not apply to web");
    assert_eq!(d.reason, "Default behavior configured by ACLs");
    let m = d.matched.unwrap();
    assert_eq!((m.source.as_str(), m.permission), ("web", None));

    let d = authorize(&ixns, "web", "api", Some(&get("/data")), ACL_ALLOW);
    assert!(d.allowed);
    let d = authorize(
        &ixns,
        "web",
        "api",
        Some(&get("/health?verbose=1")),
        ACL_DENY,
    );
    assert!(d.allowed, "the query string is not part of the path");
}

/// Whether a permission with `rule` matches `request` (its action is then `allow`).
fn check_request(rule: HttpMatch, request: HttpRequest<'_>, expected: bool) {
    let ixns = [l7("web", "api", vec![perm(Action::Allow, rule.clone())])];
    let d = authorize(&ixns, "web", "api", Some(&request), ACL_DENY);
    assert_eq!(d.allowed, expected, "{rule:?} against {request:?}");
}

#[test]
fn path_rules() {
    let exact = || path(PathMatch::Exact("/v1/items".into()));
    let prefix = || path(PathMatch::Prefix("/v1/".into()));
    let regex = || path(PathMatch::Regex(Pattern::new("/v[0-9]+/items").unwrap()));
    check_request(exact(), get("/v1/items"), true);
    check_request(exact(), get("/v1/items/"), false);
    check_request(exact(), get("/v1/items?x=1"), true);
    check_request(exact(), get("/V1/items"), false);
    check_request(prefix(), get("/v1/items"), true);
    check_request(prefix(), get("/v1"), false);
    check_request(regex(), get("/v22/items"), true);
    check_request(regex(), get("/v2/items/1"), false);
    check_request(regex(), get("/api/v2/items"), false);
}

#[test]
fn method_rules() {
    let rule = HttpMatch {
        methods: vec!["GET".into(), "HEAD".into()],
        ..HttpMatch::default()
    };
    let with = |method| HttpRequest {
        method,
        path: "/",
        headers: Vec::new(),
    };
    check_request(rule.clone(), with("GET"), true);
    check_request(rule.clone(), with("HEAD"), true);
    check_request(rule.clone(), with("POST"), false);
    check_request(rule, with("get"), false);
    let both = HttpMatch {
        path: Some(PathMatch::Prefix("/api".into())),
        methods: vec!["POST".into()],
        ..HttpMatch::default()
    };
    let post = HttpRequest {
        method: "POST",
        path: "/api/x",
        headers: Vec::new(),
    };
    check_request(both.clone(), post, true);
    check_request(both, get("/api/x"), false);
}

#[test]
fn header_rules() {
    let rule = |kind: HeaderMatchKind, invert: bool| HttpMatch {
        header: vec![HeaderMatch {
            name: "X-Env".into(),
            kind,
            invert,
        }],
        ..HttpMatch::default()
    };
    let with = |headers: Vec<(&'static str, &'static str)>| HttpRequest {
        method: "GET",
        path: "/",
        headers,
    };
    let exact = || HeaderMatchKind::Exact("prod".into());
    let regex = || HeaderMatchKind::Regex(Pattern::new("pr[a-z]+").unwrap());
    let cases = [
        (
            rule(HeaderMatchKind::Present, false),
            vec![("x-env", "")],
            true,
        ),
        (rule(HeaderMatchKind::Present, false), vec![], false),
        (rule(HeaderMatchKind::Present, true), vec![], true),
        (
            rule(HeaderMatchKind::Present, true),
            vec![("X-ENV", "a")],
            false,
        ),
        (rule(exact(), false), vec![("x-env", "prod")], true),
        (rule(exact(), false), vec![("x-env", "Prod")], false),
        (rule(exact(), true), vec![("x-env", "dev")], true),
        (rule(exact(), true), vec![("x-env", "prod")], false),
        // Envoy: a missing header never matches a value rule, inverted or not.
        (rule(exact(), true), vec![], false),
        (
            rule(HeaderMatchKind::Prefix("pr".into()), false),
            vec![("x-env", "prod")],
            true,
        ),
        (
            rule(HeaderMatchKind::Suffix("od".into()), false),
            vec![("x-env", "prod")],
            true,
        ),
        (
            rule(HeaderMatchKind::Suffix("od".into()), true),
            vec![("x-env", "prod")],
            false,
        ),
        (rule(regex(), false), vec![("x-env", "prod")], true),
        (rule(regex(), false), vec![("x-env", "xprod")], false),
        (rule(regex(), true), vec![("x-env", "dev")], true),
        // Repeated headers are joined with a comma before matching.
        (
            rule(HeaderMatchKind::Exact("a,b".into()), false),
            vec![("x-env", "a"), ("X-Env", "b")],
            true,
        ),
    ];
    for (rule, headers, expected) in cases {
        check_request(rule, with(headers), expected);
    }
    let pseudo = HttpMatch {
        header: vec![HeaderMatch {
            name: ":method".into(),
            kind: HeaderMatchKind::Exact("GET".into()),
            invert: false,
        }],
        ..HttpMatch::default()
    };
    check_request(pseudo, get("/"), true);
}

#[test]
fn all_header_rules_must_match() {
    let rule = HttpMatch {
        header: vec![
            HeaderMatch {
                name: "a".into(),
                kind: HeaderMatchKind::Present,
                invert: false,
            },
            HeaderMatch {
                name: "b".into(),
                kind: HeaderMatchKind::Exact("1".into()),
                invert: false,
            },
        ],
        ..HttpMatch::default()
    };
    let with = |headers| HttpRequest {
        method: "GET",
        path: "/",
        headers,
    };
    check_request(rule.clone(), with(vec![("a", "x"), ("b", "1")]), true);
    check_request(rule, with(vec![("a", "x")]), false);
}
