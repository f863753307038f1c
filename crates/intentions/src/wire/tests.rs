use super::*;
use crate::model::{HeaderMatch, HeaderMatchKind, HttpMatch, PathMatch, Pattern};
use crate::testing::{l4, l7};
use crate::write::IntentionWrite;

#[test]
fn legacy_l4_json_in_go_order() {
    let mut ixn = l4("web", "db", "allow");
    ixn.id = "11111111-2222-3333-4444-555555555555".into();
    ixn.created_at = Some("2024-01-02T03:04:05Z".into());
    ixn.updated_at = Some("2024-01-02T03:04:06Z".into());
    ixn.meta.insert("owner".into(), "a".into());
    ixn.create_index = 7;
    ixn.modify_index = 8;
    assert_eq!(
        intention_json(&ixn).to_string(),
        concat!(
            r#"{"CreatedAt":"2024-01-02T03:04:05Z","UpdatedAt":"2024-01-02T03:04:06Z","#,
            r#""ID":"11111111-2222-3333-4444-555555555555","SourceNS":"default","SourceName":"web","#,
            r#""DestinationNS":"default","DestinationName":"db","SourceType":"consul","Action":"allow","#,
            r#""Meta":{"owner":"a"},"Precedence":9,"CreateIndex":7,"ModifyIndex":8}"#
        )
    );
}

#[test]
fn l7_json_omits_action_and_empty_fields() {
    let mut ixn = l7(
        "web",
        "api",
        vec![crate::Permission {
            action: Action::Deny,
            http: HttpMatch {
                path: Some(PathMatch::Prefix("/admin".into())),
                header: vec![HeaderMatch {
                    name: "x-a".into(),
                    kind: HeaderMatchKind::Present,
                    invert: true,
                }],
                methods: vec!["POST".into()],
            },
        }],
    );
    ixn.description = "L7".into();
    assert_eq!(
        intention_json(&ixn).to_string(),
        concat!(
            r#"{"Description":"L7","SourceNS":"default","SourceName":"web","DestinationNS":"default","#,
            r#""DestinationName":"api","SourceType":"consul","Permissions":[{"Action":"deny","HTTP":"#,
            r#"{"PathPrefix":"/admin","Header":[{"Name":"x-a","Present":true,"Invert":true}],"#,
            r#""Methods":["POST"]}}],"Precedence":9,"CreateIndex":0,"ModifyIndex":0}"#
        )
    );
    assert_eq!(intentions_json([]).to_string(), "[]");
}

#[test]
fn json_round_trips() {
    let mut legacy = l4("*", "db", "deny");
    legacy.id = "11111111-2222-3333-4444-555555555555".into();
    legacy.created_at = Some("2024-01-02T03:04:05.123456789Z".into());
    legacy.updated_at = Some("2024-01-02T03:04:05.123456789Z".into());
    legacy.meta.insert("k".into(), "v".into());
    let l7 = l7(
        "web",
        "api",
        vec![
            crate::Permission {
                action: Action::Allow,
                http: HttpMatch {
                    path: Some(PathMatch::Regex(Pattern::new("/v[0-9]/.*").unwrap())),
                    header: vec![HeaderMatch {
                        name: "x-env".into(),
                        kind: HeaderMatchKind::Regex(Pattern::new("prod|stage").unwrap()),
                        invert: false,
                    }],
                    methods: vec![],
                },
            },
            crate::Permission {
                action: Action::Deny,
                http: HttpMatch {
                    path: Some(PathMatch::Exact("/".into())),
                    header: vec![HeaderMatch {
                        name: "x-b".into(),
                        kind: HeaderMatchKind::Suffix("z".into()),
                        invert: true,
                    }],
                    methods: vec!["GET".into(), "PUT".into()],
                },
            },
        ],
    );
    for ixn in [legacy, l7] {
        assert_eq!(parse_intention(intention_json(&ixn)).unwrap(), ixn);
    }
}

#[test]
fn parse_rejects_what_cannot_be_enforced() {
    let bad_action = json!({"SourceName":"a","DestinationName":"b","Action":"maybe"});
    assert!(parse_intention(bad_action).is_err());
    let bad_regex = json!({"SourceName":"a","DestinationName":"b",
        "Permissions":[{"Action":"allow","HTTP":{"PathRegex":"("}}]});
    assert!(parse_intention(bad_regex).is_err());
}

#[test]
fn request_bodies_decode_like_go() {
    let w: IntentionWrite = decode(
        br#"{"sourcename":"web","DESTINATIONNAME":"db","action":"allow","Meta":{"Owner":"a","n":null},
            "Description":null,"Permissions":[{"action":"allow","http":{"pathexact":"/","header":null,"Methods":["GET"]}}],
            "Precedence":3,"SomethingElse":{"x":1}}"#,
    )
    .unwrap();
    assert_eq!(w.source_name, "web");
    assert_eq!(w.destination_name, "db");
    assert_eq!(w.action, "allow");
    assert_eq!(w.description, "");
    assert_eq!(
        w.meta.get("Owner").map(String::as_str),
        Some("a"),
        "meta keys kept as sent"
    );
    assert_eq!(w.meta.get("n").map(String::as_str), Some(""));
    let http = w.permissions[0].http.as_ref().unwrap();
    assert_eq!(http.path_exact, "/");
    assert_eq!(http.methods, vec!["GET".to_owned()]);

    assert_eq!(
        decode::<IntentionWrite>(b"").unwrap_err().to_string(),
        "EOF"
    );
    assert_eq!(
        decode::<IntentionWrite>(b" \n").unwrap_err().to_string(),
        "EOF"
    );
    assert_eq!(
        decode::<IntentionWrite>(b"null").unwrap(),
        IntentionWrite::default()
    );
    assert!(decode::<IntentionWrite>(br#"{"Action":5}"#).is_err());
    assert!(decode::<IntentionWrite>(b"{").is_err());
}

#[test]
fn exact_field_name_wins_over_folded_one() {
    // Both spellings map to SourceName; as in Go, the later one wins.
    let w: IntentionWrite = decode(br#"{"SourceName":"a","sourcename":"b"}"#).unwrap();
    assert_eq!(w.source_name, "b");
}

#[test]
fn name_forms() {
    let check =
        |input: &str, allow_peer: bool, expected: Result<(&str, &str, &str, &str), &str>| {
            let got = parse_name(input, allow_peer);
            let want = expected
                .map(|(peer, partition, namespace, name)| IntentionName {
                    peer: peer.into(),
                    partition: partition.into(),
                    namespace: namespace.into(),
                    name: name.into(),
                })
                .map_err(str::to_owned);
            assert_eq!(got, want, "{input}");
        };
    check("web", false, Ok(("", "", "", "web")));
    check("team/web", false, Ok(("", "", "team", "web")));
    check("eu/team/web", false, Ok(("", "eu", "team", "web")));
    check("peer:other/web", true, Ok(("other", "", "", "web")));
    check(
        "peer:other/team/web",
        true,
        Ok(("other", "", "team", "web")),
    );
    check("peer:other/web", false, Err("cannot specify a peer here"));
    check(
        "peer:other",
        true,
        Err("need to specify the service name as well"),
    );
    check("a/b/c/d", false, Err("input can contain at most two '/'"));
}
