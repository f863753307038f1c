use super::*;
use crate::model::Action;
use crate::wire;

const ID1: &str = "a1111111-2222-3333-4444-55555555555b";
const ID2: &str = "22222222-3333-4444-5555-666666666666";
const T1: &str = "2024-01-02T03:04:05.000000006Z";
const T2: &str = "2024-02-03T04:05:06Z";

fn body(json: &str) -> IntentionWrite {
    wire::decode(json.as_bytes()).expect("a valid body")
}

fn allow() -> IntentionWrite {
    body(r#"{"Action":"allow"}"#)
}

fn legacy(source: &str, destination: &str, action: &str) -> IntentionWrite {
    body(&format!(
        r#"{{"SourceName":"{source}","DestinationName":"{destination}","Action":"{action}"}}"#
    ))
}

/// The error an exact upsert of `json` from `source` to `destination` gets on `store`.
fn upsert_error(store: &Intentions, source: &str, destination: &str, json: &str) -> String {
    let op = IntentionOp::Upsert {
        source: source.to_owned(),
        destination: destination.to_owned(),
        write: body(json),
    };
    let err = store.validate(&op).expect_err("the upsert must fail");
    let mut copy = store.clone();
    assert_eq!(
        copy.apply(&op, 99),
        Err(err.clone()),
        "apply agrees with validate"
    );
    assert_eq!(&copy, store, "a refused write changes nothing");
    err.to_string()
}

#[test]
fn exact_upsert_validation_texts() {
    let empty = Intentions::new();
    let check = |source: &str, destination: &str, json: &str, expected: &str| {
        assert_eq!(
            upsert_error(&empty, source, destination, json),
            expected,
            "{source} => {destination}: {json}"
        );
    };
    let long = "x".repeat(513);
    check(
        "web",
        "db",
        "{}",
        "Sources[0].Action must be set to 'allow' or 'deny'",
    );
    check(
        "web",
        "db",
        r#"{"Action":"ALLOW"}"#,
        "Sources[0].Action must be set to 'allow' or 'deny'",
    );
    check(
        "we*",
        "db",
        r#"{"Action":"allow"}"#,
        "Sources[0].Name: wildcard character '*' cannot be used with partial values",
    );
    check(
        "web",
        "d*",
        r#"{"Action":"allow"}"#,
        "Name: wildcard character '*' cannot be used with partial values",
    );
    check(
        "web",
        "db",
        &format!(r#"{{"Action":"allow","Description":"{long}"}}"#),
        "Sources[0].Description exceeds maximum length 512",
    );
    check(
        "web",
        "db",
        r#"{"Action":"allow","SourceType":"aws"}"#,
        "Sources[0].Type must be set to 'consul'",
    );
    check(
        "web",
        "db",
        r#"{"Action":"allow","Meta":{"a":"b"}}"#,
        "Meta must not be specified",
    );
    check(
        "web",
        "db",
        r#"{"Action":"allow","SourcePeer":"other"}"#,
        "SourcePeer field is not supported on this endpoint. Use config entries instead",
    );
    check(
        "web",
        "db",
        r#"{"Action":"allow","Permissions":[{"Action":"allow","HTTP":{"PathExact":"/"}}]}"#,
        "Sources[0].Action must be omitted if Permissions are specified",
    );
    check(
        "web",
        "*",
        r#"{"Permissions":[{"Action":"allow","HTTP":{"PathExact":"/"}}]}"#,
        "Sources[0].Permissions cannot be specified on intentions with wildcarded destinations",
    );
    check(
        "web",
        "db",
        r#"{"Permissions":[{"Action":"maybe","HTTP":{"PathExact":"/"}}]}"#,
        "Sources[0].Permissions[0].Action must be set to 'allow' or 'deny'",
    );
    check(
        "web",
        "db",
        r#"{"Permissions":[{"Action":"allow"}]}"#,
        "Sources[0].Permissions[0].HTTP is required",
    );
    check(
        "web",
        "db",
        r#"{"Permissions":[{"Action":"allow","HTTP":{}}]}"#,
        "Sources[0].Permissions[0].HTTP should not be empty",
    );
    check(
        "web",
        "db",
        r#"{"Permissions":[{"Action":"allow","HTTP":{"PathExact":"api"}}]}"#,
        r#"Sources[0].Permissions[0].HTTP.PathExact doesn't start with '/': "api""#,
    );
    check(
        "web",
        "db",
        r#"{"Permissions":[{"Action":"allow","HTTP":{"PathPrefix":"api"}}]}"#,
        r#"Sources[0].Permissions[0].HTTP.PathPrefix doesn't start with '/': "api""#,
    );
    check("web", "db", r#"{"Permissions":[{"Action":"allow","HTTP":{"PathExact":"/a","PathRegex":"/b"}}]}"#, "Sources[0].Permissions[0].HTTP should only contain at most one of PathExact, PathPrefix, or PathRegex");
    check(
        "web",
        "db",
        r#"{"Permissions":[{"Action":"allow","HTTP":{"PathRegex":"/(a"}}]}"#,
        r#"Sources[0].Permissions[0].HTTP.PathRegex is not a valid regular expression: "/(a""#,
    );
    check(
        "web",
        "db",
        r#"{"Permissions":[{"Action":"allow","HTTP":{"Header":[{"Exact":"x"}]}}]}"#,
        "Sources[0].Permissions[0].HTTP.Header[0] missing required Name field",
    );
    check("web", "db", r#"{"Permissions":[{"Action":"allow","HTTP":{"Header":[{"Name":"x-a"}]}}]}"#, "Sources[0].Permissions[0].HTTP.Header[0] should only contain one of Present, Exact, Prefix, Suffix, or Regex");
    check("web", "db", r#"{"Permissions":[{"Action":"allow","HTTP":{"Header":[{"Name":"x-a","Present":true,"Suffix":"b"}]}}]}"#, "Sources[0].Permissions[0].HTTP.Header[0] should only contain one of Present, Exact, Prefix, Suffix, or Regex");
    check(
        "web",
        "db",
        r#"{"Permissions":[{"Action":"allow","HTTP":{"Header":[{"Name":"x-a","Regex":"["}]}}]}"#,
        r#"Sources[0].Permissions[0].HTTP.Header[0].Regex is not a valid regular expression: "[""#,
    );
    check(
        "web",
        "db",
        r#"{"Permissions":[{"Action":"allow","HTTP":{"Methods":["FETCH"]}}]}"#,
        r#"Sources[0].Permissions[0].HTTP.Methods contains an invalid method "FETCH""#,
    );
    check(
        "web",
        "db",
        r#"{"Permissions":[{"Action":"allow","HTTP":{"Methods":["get","GET"]}}]}"#,
        r#"Sources[0].Permissions[0].HTTP.Methods contains "GET" more than once"#,
    );
    check(
        "web",
        "db",
        r#"{"Permissions":[{"Action":"allow","HTTP":{"PathPrefix":"/"}},{"Action":"deny","HTTP":{"PathRegex":"["}}]}"#,
        r#"Sources[0].Permissions[1].HTTP.PathRegex is not a valid regular expression: "[""#,
    );
}

#[test]
fn errors_count_sources_in_consul_order() {
    let mut store = Intentions::new();
    store.upsert("web", "db", allow(), 10).unwrap();
    store.upsert("*", "db", allow(), 11).unwrap();
    // The new source lands after the other precedence-9 one and before the wildcard (8).
    assert_eq!(
        upsert_error(&store, "api", "db", "{}"),
        "Sources[1].Action must be set to 'allow' or 'deny'"
    );
    // Replacing keeps the source's place.
    assert_eq!(
        upsert_error(&store, "*", "db", "{}"),
        "Sources[1].Action must be set to 'allow' or 'deny'"
    );
    assert_eq!(
        upsert_error(
            &store,
            "web",
            "db",
            r#"{"Action":"allow","Meta":{"k":"v"}}"#
        ),
        "Meta must not be specified, or should be unchanged during an update."
    );
}

#[test]
fn exact_upsert_flow_and_indexes() {
    let mut store = Intentions::new();
    let applied = store.upsert("web", "db", allow(), 10).unwrap();
    assert_eq!(
        applied,
        Applied {
            id: None,
            changed: true
        }
    );
    let ixn = store.get_exact("web", "db").unwrap();
    assert_eq!(ixn.action, Some(Action::Allow));
    assert_eq!(
        (ixn.precedence, ixn.create_index, ixn.modify_index),
        (9, 10, 10)
    );
    assert_eq!(ixn.id, "");
    assert_eq!(ixn.created_at, None);
    assert_eq!(store.index(), 10);

    // Another source towards the same destination shares the entry and its indexes.
    store
        .upsert(
            "api",
            "db",
            body(r#"{"action":"deny","description":"no"}"#),
            11,
        )
        .unwrap();
    for source in ["web", "api"] {
        let ixn = store.get_exact(source, "db").unwrap();
        assert_eq!((ixn.create_index, ixn.modify_index), (10, 11), "{source}");
    }
    assert_eq!(store.get_exact("api", "db").unwrap().description, "no");

    // Replacing an intention keeps the entry's create index.
    store
        .upsert("web", "db", body(r#"{"Action":"deny"}"#), 12)
        .unwrap();
    let ixn = store.get_exact("web", "db").unwrap();
    assert_eq!(
        (ixn.action, ixn.create_index, ixn.modify_index),
        (Some(Action::Deny), 10, 12)
    );
    assert_eq!(store.len(), 2);

    assert_eq!(
        store.get_exact("web", "cache"),
        Err(IntentionError::NotFound)
    );
    assert_eq!(
        store.get_exact("cache", "db").unwrap_err().to_string(),
        "Intention not found"
    );
}

#[test]
fn l7_upsert_is_stored_typed() {
    let mut store = Intentions::new();
    let json = r#"{"Permissions":[
        {"Action":"deny","HTTP":{"PathPrefix":"/admin","Methods":["post"]}},
        {"Action":"allow","HTTP":{"PathRegex":"/v[12]/.*","Header":[{"Name":"X-Env","Exact":"prod","Invert":true}]}}
    ]}"#;
    store.upsert("web", "api", body(json), 5).unwrap();
    let ixn = store.get_exact("web", "api").unwrap();
    assert_eq!(ixn.action, None);
    assert_eq!(ixn.permissions.len(), 2);
    assert_eq!(ixn.permissions[0].http.methods, vec!["POST".to_owned()]);
    assert_eq!(
        ixn.permissions[0].http.path,
        Some(crate::PathMatch::Prefix("/admin".into()))
    );
    let header = &ixn.permissions[1].http.header[0];
    assert_eq!(header.kind, crate::HeaderMatchKind::Exact("prod".into()));
    assert!(header.invert);
}

#[test]
fn legacy_create_flow() {
    let mut store = Intentions::new();
    let mut w = legacy("web", "db", "allow");
    w.meta.insert("owner".into(), "team-a".into());
    let applied = store.create(ID1, T1, w, 20).unwrap();
    assert_eq!(applied.id.as_deref(), Some(ID1));
    let ixn = store.get(ID1).unwrap();
    assert_eq!(ixn.source_name, "web");
    assert_eq!(ixn.source_ns, "default");
    assert_eq!(ixn.created_at.as_deref(), Some(T1));
    assert_eq!(ixn.updated_at.as_deref(), Some(T1));
    assert_eq!(ixn.meta.get("owner").map(String::as_str), Some("team-a"));
    assert_eq!(
        (ixn.precedence, ixn.create_index, ixn.modify_index),
        (9, 20, 20)
    );
    assert!(store.contains_id(ID1));
    assert_eq!(store.get_exact("web", "db").unwrap().id, ID1);

    // The same pair again: Consul's config-entry validation names the duplicate source.
    let err = store
        .create(ID2, T2, legacy("web", "db", "deny"), 21)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"Sources[1] defines "web" more than once"#
    );
    assert_eq!(err.http_status(), 500);
    assert!(!store.contains_id(ID2));
}

#[test]
fn legacy_create_validation_texts() {
    let store = Intentions::new();
    let check = |json: &str, expected: &str, status: u16| {
        let op = IntentionOp::Create {
            id: ID1.to_owned(),
            now: T1.to_owned(),
            write: body(json),
        };
        let err = store.validate(&op).unwrap_err();
        assert_eq!(err.to_string(), expected, "{json}");
        assert_eq!(err.http_status(), status, "{json}");
    };
    check(
        r#"{"SourceName":"web","DestinationName":"db","Action":"allow","ID":"x"}"#,
        "ID must be empty when creating a new intention",
        500,
    );
    check(
        r#"{"DestinationName":"db"}"#,
        "2 errors occurred:\n\t* SourceName must be set\n\t* Action must be set to 'allow' or 'deny'\n\n",
        500,
    );
    check(
        r#"{"SourceName":"web","DestinationName":"db","Permissions":[{"Action":"allow","HTTP":{"PathExact":"/"}}]}"#,
        "2 errors occurred:\n\t* Action must be set to 'allow' or 'deny'\n\t* Permissions must not be set when using the legacy APIs\n\n",
        500,
    );
    check(
        r#"{"SourceName":"w*","DestinationName":"db","Action":"allow","SourceType":"x"}"#,
        "2 errors occurred:\n\t* SourceName: wildcard character '*' cannot be used with partial values\n\t* SourceType must be set to 'consul'\n\n",
        500,
    );
    check(
        r#"{"SourceName":"web","DestinationName":"db","Action":"deny","Meta":{"k":""}, "Description":"ok", "SourcePeer":"p"}"#,
        "SourcePeer field is not supported on this endpoint. Use config entries instead",
        500,
    );
    check(
        r#"{"SourceName":"web","DestinationName":"db","Action":"allow","DestinationPartition":"eu"}"#,
        "Cannot specify a destination partition with this endpoint",
        400,
    );
    check(
        r#"{"SourceName":"web","DestinationName":"db","Action":"allow","SourcePartition":"eu"}"#,
        "Cannot specify a source partition with this endpoint",
        400,
    );
    check(
        r#"{"SourceName":"web","DestinationName":"db","Action":"allow","SourceNS":"team"}"#,
        "Invalid SourceNS(team): Namespaces is a Consul Enterprise feature",
        400,
    );
    let fine = IntentionOp::Create {
        id: ID1.to_owned(),
        now: T1.to_owned(),
        write: body(
            r#"{"SourceName":"web","DestinationName":"db","Action":"allow","SourceNS":"Default","DestinationPartition":"default"}"#,
        ),
    };
    assert_eq!(store.validate(&fine), Ok(()));
}

#[test]
fn legacy_writes_refused_after_exact_writes() {
    let mut store = Intentions::new();
    store
        .create(ID1, T1, legacy("web", "db", "allow"), 1)
        .unwrap();
    // A by-name write to the destination makes its intentions non-legacy: IDs are gone.
    store.upsert("api", "db", allow(), 2).unwrap();
    assert_eq!(store.get(ID1), Err(IntentionError::NotFound));
    assert_eq!(store.get_exact("web", "db").unwrap().id, "");
    assert_eq!(store.get_exact("web", "db").unwrap().created_at, None);
    let err = store
        .create(ID2, T2, legacy("cache", "db", "allow"), 3)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"cannot use legacy intention API to edit intentions with a destination of "db" after editing them via a service-intentions config entry"#
    );
    // Other destinations are unaffected.
    store
        .create(ID2, T2, legacy("cache", "web", "allow"), 4)
        .unwrap();
}

#[test]
fn legacy_update_flow() {
    let mut store = Intentions::new();
    store
        .create(ID1, T1, legacy("web", "db", "allow"), 30)
        .unwrap();
    store
        .create(ID2, T1, legacy("api", "db", "allow"), 31)
        .unwrap();

    let mut w = legacy("web", "db", "deny");
    w.description = "closed".into();
    let applied = store.update(ID1, T2, w, 32).unwrap();
    assert_eq!(applied.id.as_deref(), Some(ID1));
    let ixn = store.get(ID1).unwrap();
    assert_eq!(ixn.action, Some(Action::Deny));
    assert_eq!(ixn.description, "closed");
    assert_eq!(
        ixn.created_at.as_deref(),
        Some(T1),
        "creation time survives"
    );
    assert_eq!(ixn.updated_at.as_deref(), Some(T2));
    assert_eq!((ixn.create_index, ixn.modify_index), (30, 32));

    // Renaming the source is allowed, onto a taken name is not.
    store
        .update(ID1, T2, legacy("cache", "db", "deny"), 33)
        .unwrap();
    assert_eq!(store.get_exact("cache", "db").unwrap().id, ID1);
    let err = store
        .update(ID1, T2, legacy("api", "db", "deny"), 34)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"Sources[1] defines "api" more than once"#
    );
}

#[test]
fn legacy_update_errors() {
    let mut store = Intentions::new();
    store
        .create(ID1, T1, legacy("web", "db", "allow"), 1)
        .unwrap();
    let check = |id: &str, json: &str, expected: &str| {
        let op = IntentionOp::Update {
            id: id.to_owned(),
            now: T2.to_owned(),
            write: body(json),
        };
        assert_eq!(
            store.validate(&op).unwrap_err().to_string(),
            expected,
            "{id} {json}"
        );
    };
    let ok = r#"{"SourceName":"web","DestinationName":"db","Action":"deny"}"#;
    check(
        ID2,
        ok,
        &format!("Cannot modify non-existent intention: '{ID2}'"),
    );
    check(
        "abc",
        ok,
        "Intention lookup failed: failed config entry lookup: UUID must be 36 characters",
    );
    check(
        &ID1.to_uppercase(),
        ok,
        &format!(
            "Cannot modify non-existent intention: '{}'",
            ID1.to_uppercase()
        ),
    );
    check(
        ID1,
        r#"{"SourceName":"web","DestinationName":"cache","Action":"deny"}"#,
        "Cannot modify Destination partition/namespace/name for an intention once it exists.",
    );
    check(
        ID1,
        r#"{"SourceName":"web","Action":"deny"}"#,
        "Cannot modify Destination partition/namespace/name for an intention once it exists.",
    );
    check(
        ID1,
        r#"{"SourceName":"web","DestinationName":"db","Action":"deny","SourceNS":"team"}"#,
        r#"Invalid source namespace "team": Namespaces is a Consul Enterprise feature"#,
    );
    check(ID1, r#"{"DestinationName":"db","Action":"nope"}"#, "2 errors occurred:\n\t* SourceName must be set\n\t* Action must be set to 'allow' or 'deny'\n\n");
    check(
        ID1,
        r#"{"SourceName":"web","DestinationName":"db","Action":"deny","DestinationPartition":"x"}"#,
        "Cannot specify a destination partition with this endpoint",
    );
}

#[test]
fn delete_flows() {
    let mut store = Intentions::new();
    store
        .create(ID1, T1, legacy("web", "db", "allow"), 1)
        .unwrap();
    store
        .create(ID2, T1, legacy("api", "db", "allow"), 2)
        .unwrap();

    assert_eq!(
        store.delete("abc", 3).unwrap_err().to_string(),
        "Intention lookup failed: failed config entry lookup: UUID must be 36 characters"
    );
    store.delete(ID1, 3).unwrap();
    assert_eq!(store.get(ID1), Err(IntentionError::NotFound));
    assert_eq!(
        store.delete(ID1, 4).unwrap_err().to_string(),
        format!("Cannot delete non-existent intention: '{ID1}'")
    );
    let left = store.get(ID2).unwrap();
    assert_eq!((left.create_index, left.modify_index), (1, 3));
    assert_eq!(store.index(), 3);

    // Exact deletes of what is not there succeed and change nothing.
    let applied = store.delete_exact("web", "db", 5).unwrap();
    assert_eq!(
        applied,
        Applied {
            id: None,
            changed: false
        }
    );
    assert!(!store.delete_exact("web", "nothing", 5).unwrap().changed);
    assert_eq!(store.index(), 3);

    // Deleting the last source removes the entry; a new one starts new indexes.
    assert!(store.delete_exact("api", "db", 6).unwrap().changed);
    assert!(store.is_empty());
    assert_eq!(store.index(), 6);
    assert!(!store.contains_id(ID2));
    store.upsert("api", "db", allow(), 7).unwrap();
    assert_eq!(store.get_exact("api", "db").unwrap().create_index, 7);
}

#[test]
fn exact_delete_in_a_legacy_entry_strips_legacy_fields() {
    let mut store = Intentions::new();
    store
        .create(ID1, T1, legacy("web", "db", "allow"), 1)
        .unwrap();
    store
        .create(ID2, T1, legacy("api", "db", "allow"), 2)
        .unwrap();
    store.delete_exact("web", "db", 3).unwrap();
    let api = store.get_exact("api", "db").unwrap();
    assert_eq!((api.id.as_str(), api.modify_index), ("", 3));
    assert_eq!(store.get(ID2), Err(IntentionError::NotFound));
}

#[test]
fn exact_delete_refused_when_legacy_meta_would_be_lost() {
    let mut store = Intentions::new();
    store
        .create(ID1, T1, legacy("web", "db", "allow"), 1)
        .unwrap();
    let mut w = legacy("api", "db", "allow");
    w.meta.insert("k".into(), "v".into());
    store.create(ID2, T1, w, 2).unwrap();
    // Consul keeps LegacyMeta to fail such writes rather than silently dropping metadata.
    let err = store.delete_exact("web", "db", 3).unwrap_err();
    assert_eq!(err.to_string(), "Sources[0].LegacyMeta must be omitted");
}

#[test]
fn get_by_id_errors() {
    let store = Intentions::new();
    let check = |id: &str, expected: &str, status: u16| {
        let err = store.get(id).unwrap_err();
        assert_eq!(
            (err.to_string().as_str(), err.http_status()),
            (expected, status),
            "{id}"
        );
    };
    check(ID1, "Intention not found", 404);
    check(
        "abc",
        "failed config entry lookup: UUID must be 36 characters",
        400,
    );
    check(
        "11111111-2222-3333-4444-5555-5555555",
        r#"failed config entry lookup: UUID should have maximum of 4 "-"; got 5"#,
        400,
    );
    check(
        "111111112222-3333-4444-5555555555555",
        "failed config entry lookup: Input (without hyphens) must be even length",
        400,
    );
    check(
        "g1111111-2222-3333-4444-555555555555",
        "failed config entry lookup: Invalid UUID: encoding/hex: invalid byte: U+0067 'g'",
        400,
    );
}

#[test]
fn list_and_match_by_precedence() {
    let mut store = Intentions::new();
    store
        .upsert("*", "*", body(r#"{"Action":"deny"}"#), 1)
        .unwrap();
    store.upsert("web", "*", allow(), 2).unwrap();
    store.upsert("*", "db", allow(), 3).unwrap();
    store.upsert("web", "db", allow(), 4).unwrap();
    store.upsert("api", "db", allow(), 5).unwrap();
    store.upsert("web", "cache", allow(), 6).unwrap();
    let names = |list: Vec<&Intention>| -> Vec<String> {
        list.iter()
            .map(|i| format!("{}>{}", i.source_name, i.destination_name))
            .collect()
    };
    assert_eq!(
        names(store.list()),
        ["api>db", "web>cache", "web>db", "*>db", "web>*", "*>*"]
    );
    assert_eq!(
        names(store.matching(MatchBy::Destination, "db")),
        ["api>db", "web>db", "*>db", "web>*", "*>*"]
    );
    assert_eq!(
        names(store.matching(MatchBy::Source, "web")),
        ["web>cache", "web>db", "*>db", "web>*", "*>*"]
    );
    assert_eq!(
        names(store.matching(MatchBy::Destination, "*")),
        ["web>*", "*>*"]
    );
    assert_eq!(
        names(store.matching(MatchBy::Destination, "nothing")),
        ["web>*", "*>*"]
    );
}

#[test]
fn check_endpoint() {
    let mut store = Intentions::new();
    store
        .upsert("*", "db", body(r#"{"Action":"deny"}"#), 1)
        .unwrap();
    store.upsert("web", "db", allow(), 2).unwrap();
    store
        .upsert(
            "api",
            "db",
            body(r#"{"Permissions":[{"Action":"allow","HTTP":{"PathPrefix":"/"}}]}"#),
            3,
        )
        .unwrap();
    assert!(store.check("web", "db", false));
    assert!(
        !store.check("other", "db", true),
        "the wildcard deny wins over the default"
    );
    assert!(
        !store.check("api", "db", true),
        "L7 intentions count as deny"
    );
    assert!(store.check("web", "cache", true));
    assert!(!store.check("web", "cache", false));
}

#[test]
fn replicated_state_round_trips_through_postcard() {
    let mut store = Intentions::new();
    store
        .create(ID1, T1, legacy("web", "db", "allow"), 1)
        .unwrap();
    let l7 = r#"{"Permissions":[{"Action":"allow","HTTP":{"PathRegex":"/v[0-9]+/.*","Header":[{"Name":"x","Regex":"a+","Invert":true},{"Name":"y","Present":true}],"Methods":["GET"]}}]}"#;
    store.upsert("api", "cache", body(l7), 2).unwrap();
    let bytes = postcard::to_stdvec(&store).unwrap();
    let back: Intentions = postcard::from_bytes(&bytes).unwrap();
    assert_eq!(back, store);

    let op = IntentionOp::Update {
        id: ID1.into(),
        now: T2.into(),
        write: legacy("web", "db", "deny"),
    };
    let bytes = postcard::to_stdvec(&op).unwrap();
    assert_eq!(postcard::from_bytes::<IntentionOp>(&bytes).unwrap(), op);
}

#[test]
fn replicas_applying_the_same_ops_agree() {
    let ops = [
        IntentionOp::Create {
            id: ID1.into(),
            now: T1.into(),
            write: legacy("web", "db", "allow"),
        },
        IntentionOp::Upsert {
            source: "api".into(),
            destination: "db".into(),
            write: allow(),
        },
        IntentionOp::Create {
            id: ID2.into(),
            now: T2.into(),
            write: legacy("web", "db", "deny"),
        },
        IntentionOp::DeleteExact {
            source: "web".into(),
            destination: "db".into(),
        },
        IntentionOp::Delete { id: ID1.into() },
    ];
    let run = || {
        let mut store = Intentions::new();
        let results: Vec<_> = ops
            .iter()
            .enumerate()
            .map(|(i, op)| store.apply(op, i as u64 + 1).map_err(|e| e.to_string()))
            .collect();
        (store, results)
    };
    let (a, ra) = run();
    let (b, rb) = run();
    assert_eq!(a, b);
    assert_eq!(ra, rb);
    assert!(ra[2].is_err() && ra[4].is_err());
}
