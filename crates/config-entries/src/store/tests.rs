use super::*;
use crate::model::Mode;
use crate::wire;

fn write(body: &str) -> ConfigEntryWrite {
    wire::decode(body.as_bytes()).unwrap_or_else(|e| panic!("{body}: {e}"))
}

fn service(name: &str, protocol: &str) -> ConfigEntryWrite {
    write(&format!(
        r#"{{"Kind":"service-defaults","Name":"{name}","Protocol":"{protocol}"}}"#
    ))
}

fn upsert(store: &mut ConfigEntries, w: &ConfigEntryWrite, cas: Option<u64>, index: u64) -> bool {
    let op = ConfigEntryOp::Upsert {
        entry: Box::new(w.clone()),
        cas,
    };
    store.validate(&op).expect("valid");
    let before = store.clone();
    let applied = store.apply(&op, index).expect("valid");
    assert_eq!(
        applied.changed,
        store != &before,
        "changed says what happened"
    );
    applied.done
}

fn delete(store: &mut ConfigEntries, kind: Kind, name: &str, cas: Option<u64>, index: u64) -> bool {
    let op = ConfigEntryOp::Delete {
        kind,
        name: name.to_owned(),
        cas,
    };
    let before = store.clone();
    let applied = store.apply(&op, index).expect("valid");
    assert_eq!(
        applied.changed,
        store != &before,
        "changed says what happened"
    );
    applied.done
}

fn indexes(store: &ConfigEntries, name: &str) -> Option<(u64, u64)> {
    store
        .get(Kind::ServiceDefaults, name)
        .map(|e| (e.create_index, e.modify_index))
}

#[test]
fn upserts_keep_the_create_index_and_move_the_table_index() {
    let mut store = ConfigEntries::new();
    assert_eq!(store.index(), 0);
    assert!(upsert(&mut store, &service("web", "http"), None, 5));
    assert_eq!(indexes(&store, "web"), Some((5, 5)));
    assert!(upsert(&mut store, &service("web", "grpc"), None, 9));
    assert_eq!(indexes(&store, "web"), Some((5, 9)));
    assert_eq!(store.index(), 9);
    let entry = store.get(Kind::ServiceDefaults, "web").expect("kept");
    assert_eq!(
        (entry.protocol, entry.mode),
        (Protocol::Grpc, Mode::Default)
    );
    // Names ignore case: one entry, shown as last written.
    assert!(upsert(&mut store, &service("WEB", "tcp"), None, 11));
    assert_eq!(store.len(), 1);
    assert_eq!(indexes(&store, "Web"), Some((5, 11)));
    assert_eq!(
        store
            .get(Kind::ServiceDefaults, "web")
            .map(|e| e.name.as_str()),
        Some("WEB")
    );
    assert!(
        store.get(Kind::ProxyDefaults, "web").is_none(),
        "kinds are apart"
    );
}

#[test]
fn check_and_set_answers_false_and_changes_nothing() {
    let mut store = ConfigEntries::new();
    // cas=0 creates only.
    assert!(upsert(&mut store, &service("web", "http"), Some(0), 4));
    assert!(!upsert(&mut store, &service("web", "grpc"), Some(0), 5));
    assert_eq!(indexes(&store, "web"), Some((4, 4)));
    // Otherwise the modify index must match, and the entry must exist.
    assert!(!upsert(&mut store, &service("web", "grpc"), Some(3), 6));
    assert!(!upsert(&mut store, &service("db", "grpc"), Some(4), 6));
    assert!(store.get(Kind::ServiceDefaults, "db").is_none());
    assert!(upsert(&mut store, &service("web", "grpc"), Some(4), 7));
    assert_eq!(indexes(&store, "web"), Some((4, 7)));
    assert_eq!(store.index(), 7);
    // Deletes alike.
    assert!(!delete(
        &mut store,
        Kind::ServiceDefaults,
        "web",
        Some(4),
        8
    ));
    assert!(!delete(
        &mut store,
        Kind::ServiceDefaults,
        "web",
        Some(0),
        8
    ));
    assert!(!delete(
        &mut store,
        Kind::ServiceDefaults,
        "nope",
        Some(7),
        8
    ));
    assert_eq!(store.index(), 7);
    assert!(delete(&mut store, Kind::ServiceDefaults, "WEB", Some(7), 9));
    assert!(store.is_empty());
    assert_eq!(store.index(), 9, "a delete moves the table's index");
}

#[test]
fn plain_deletes_succeed_whether_or_not_there_is_an_entry() {
    let mut store = ConfigEntries::new();
    assert!(delete(&mut store, Kind::ServiceDefaults, "web", None, 3));
    assert_eq!(store.index(), 0, "nothing changed");
    let global = write(r#"{"Kind":"proxy-defaults","Config":{"protocol":"http"}}"#);
    assert!(upsert(&mut store, &global, None, 4));
    // A proxy-defaults delete without a name means `global`.
    assert!(delete(&mut store, Kind::ProxyDefaults, "", None, 5));
    assert!(store.is_empty());
    let op = ConfigEntryOp::Delete {
        kind: Kind::ProxyDefaults,
        name: "other".into(),
        cas: None,
    };
    let err = store.validate(&op).expect_err("only global");
    assert_eq!(store.apply(&op, 6), Err(err));
    assert_eq!(store.index(), 5);
}

#[test]
fn an_invalid_write_changes_nothing() {
    let mut store = ConfigEntries::new();
    assert!(upsert(&mut store, &service("web", "http"), None, 2));
    let before = store.clone();
    let op = ConfigEntryOp::Upsert {
        entry: Box::new(service("web", "smtp")),
        cas: None,
    };
    let err = store.validate(&op).expect_err("unsupported protocol");
    assert_eq!(store.apply(&op, 3), Err(err));
    assert_eq!(store, before);
}

#[test]
fn lists_are_in_consuls_order() {
    let mut store = ConfigEntries::new();
    for (i, name) in ["web", "Api", "db"].into_iter().enumerate() {
        assert!(upsert(
            &mut store,
            &service(name, "tcp"),
            None,
            i as u64 + 1
        ));
    }
    let global = write(r#"{"Kind":"proxy-defaults"}"#);
    assert!(upsert(&mut store, &global, None, 10));
    let names = |kind| -> Vec<String> {
        store
            .list(kind)
            .into_iter()
            .map(|e| format!("{}/{}", e.kind, e.name))
            .collect()
    };
    assert_eq!(
        names(Some(Kind::ServiceDefaults)),
        [
            "service-defaults/Api",
            "service-defaults/db",
            "service-defaults/web"
        ]
    );
    assert_eq!(names(Some(Kind::ProxyDefaults)), ["proxy-defaults/global"]);
    assert_eq!(names(None).len(), 4);
    assert_eq!(names(None)[0], "proxy-defaults/global");
}

#[test]
fn a_service_protocol_falls_back_to_proxy_defaults_then_tcp() {
    let mut store = ConfigEntries::new();
    assert_eq!(store.protocol_of("web"), Protocol::Tcp);
    let global = write(r#"{"Kind":"proxy-defaults","Config":{"protocol":"http"}}"#);
    assert!(upsert(&mut store, &global, None, 1));
    assert_eq!(store.protocol_of("web"), Protocol::Http);
    assert!(upsert(&mut store, &service("web", "grpc"), None, 2));
    assert!(upsert(&mut store, &service("db", ""), None, 3));
    assert_eq!(store.protocol_of("web"), Protocol::Grpc);
    assert_eq!(
        store.protocol_of("db"),
        Protocol::Http,
        "unset falls through"
    );
}

#[test]
fn the_store_survives_postcard() {
    let mut store = ConfigEntries::new();
    let rich = write(concat!(
        r#"{"Kind":"service-defaults","Name":"web","Protocol":"http","Meta":{"a":"b"},"#,
        r#""UpstreamConfig":{"Overrides":[{"Name":"db","ConnectTimeoutMs":1.5}]},"TransparentProxy":{"DialedDirectly":true}}"#
    ));
    assert!(upsert(&mut store, &rich, None, 1));
    let global =
        write(r#"{"Kind":"proxy-defaults","Config":{"z":{"b":1,"a":[null,2]},"protocol":"grpc"}}"#);
    assert!(upsert(&mut store, &global, None, 2));
    let bytes = postcard::to_stdvec(&store).expect("encodes");
    let back: ConfigEntries = postcard::from_bytes(&bytes).expect("decodes");
    assert_eq!(back, store);
    let op = ConfigEntryOp::Upsert {
        entry: Box::new(rich),
        cas: Some(3),
    };
    let bytes = postcard::to_stdvec(&op).expect("encodes");
    assert_eq!(
        postcard::from_bytes::<ConfigEntryOp>(&bytes).expect("decodes"),
        op
    );
}
