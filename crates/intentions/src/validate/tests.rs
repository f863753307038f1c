use super::*;

#[test]
fn uuid_errors_as_go_memdb_words_them() {
    let check = |id: &str, expected: Option<&str>| {
        assert_eq!(uuid_error(id).as_deref(), expected, "{id}");
    };
    check("11111111-2222-3333-4444-555555555555", None);
    check("ABCDEF12-2222-3333-4444-555555555555", None);
    check("", Some("UUID must be 36 characters"));
    check(
        "1-1-1-1-1-11111111111111111111111111",
        Some(r#"UUID should have maximum of 4 "-"; got 5"#),
    );
    check(
        "1111111122223333444455555555555555-5",
        Some("Input (without hyphens) must be even length"),
    );
    check(
        "11111111-2222-3333-4444-55555555555z",
        Some("Invalid UUID: encoding/hex: invalid byte: U+007A 'z'"),
    );
}

#[test]
fn legacy_write_lists_every_problem_in_consul_order() {
    let mut w = IntentionWrite {
        source_ns: "default".into(),
        destination_ns: "default".into(),
        source_name: "we*".into(),
        destination_name: "d*".into(),
        description: "x".repeat(513),
        source_type: "consul".into(),
        ..IntentionWrite::default()
    };
    w.meta.insert("k".repeat(129), "v".repeat(513));
    assert_eq!(
        validate_legacy_write(&w),
        vec![
            "SourceName: wildcard character '*' cannot be used with partial values".to_owned(),
            "DestinationName: wildcard character '*' cannot be used with partial values".into(),
            "Description exceeds maximum length 512".into(),
            format!(
                "Meta key \"{}\" exceeds maximum length 128",
                "k".repeat(129)
            ),
            format!(
                "Meta value for key \"{}\" exceeds maximum length 512",
                "k".repeat(129)
            ),
            "Action must be set to 'allow' or 'deny'".into(),
        ]
    );
    let many: BTreeMap<String, String> = (0..65).map(|i| (i.to_string(), String::new())).collect();
    let w = IntentionWrite {
        source_ns: "*".into(),
        destination_ns: "default".into(),
        source_name: "web".into(),
        destination_name: "db".into(),
        action: "allow".into(),
        source_type: "consul".into(),
        meta: many,
        ..IntentionWrite::default()
    };
    assert_eq!(
        validate_legacy_write(&w),
        vec![
            "SourceName: exact value cannot follow wildcard namespace".to_owned(),
            "Meta exceeds maximum element count 64".into(),
        ]
    );
}

#[test]
fn legacy_entry_checks_meta_limits_per_source() {
    let mut meta = BTreeMap::new();
    meta.insert("k".to_owned(), "v".repeat(513));
    let mut sources = vec![SourceDraft {
        name: "web".into(),
        action: "allow".into(),
        legacy_id: "11111111-2222-3333-4444-555555555555".into(),
        legacy_meta: Some(meta),
        legacy_create_time: Some("t".into()),
        legacy_update_time: Some("t".into()),
        ..SourceDraft::default()
    }];
    normalize_entry("db", &mut sources, true);
    assert_eq!(
        validate_entry("db", &sources, true),
        Err(r#"Sources[0].Meta value for key "k" exceeds maximum length 512"#.to_owned())
    );
}
