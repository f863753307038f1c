use super::*;

const NOW: u64 = 1_800_000_000_000;
const A1: &str = "6a1253d2-1785-24fd-91c2-f8e78c745511";
const S1: &str = "45a3bd52-07c7-47a4-52fd-0745e0cfe967";
const A2: &str = "1f7c2b43-8d59-4b7e-9b2e-4f0a1d2c3b4a";
const S2: &str = "9b0c1d2e-3f40-4a5b-8c6d-7e8f90a1b2c3";
const P1: &str = "e359bd81-baca-903e-7e64-1ccd9fdc78f5";
const R1: &str = "aa770e5b-8b0b-7fcf-e5a1-8535fcc388b4";

fn initialized() -> AclStore {
    let mut store = AclStore::default();
    store
        .apply(
            AclOp::Initialize {
                initial_management: None,
            },
            1,
            NOW,
        )
        .unwrap();
    store
}

fn policy(id: &str, name: &str, rules: &str) -> PolicyWrite {
    PolicyWrite {
        id: id.to_owned(),
        name: name.to_owned(),
        rules: rules.to_owned(),
        ..PolicyWrite::default()
    }
}

fn token(accessor: &str, secret: &str) -> TokenWrite {
    TokenWrite {
        accessor_id: accessor.to_owned(),
        secret_id: secret.to_owned(),
        ..TokenWrite::default()
    }
}

fn err(result: Result<AclApplied, AclError>) -> String {
    result.expect_err("the write must be refused").to_string()
}

#[test]
fn initialization_creates_the_builtins_once() {
    let mut store = initialized();
    assert!(store.initialized());
    assert_eq!(
        store.policy(MANAGEMENT_POLICY_ID).unwrap().name,
        MANAGEMENT_POLICY_NAME
    );
    assert_eq!(
        store.policy_by_name(READ_ONLY_POLICY_NAME).unwrap().id,
        READ_ONLY_POLICY_ID
    );
    let anonymous = store.token_by_secret(ANONYMOUS_SECRET_ID).unwrap();
    assert_eq!(anonymous.accessor_id, ANONYMOUS_ACCESSOR_ID);
    assert!(anonymous.policies.is_empty());
    // Again at a later index: nothing changes.
    let before = store.clone();
    store
        .apply(
            AclOp::Initialize {
                initial_management: None,
            },
            7,
            NOW,
        )
        .unwrap();
    assert_eq!(store, before);
}

#[test]
fn bootstrap_happens_once_unless_reset_with_its_index() {
    let mut store = initialized();
    let bootstrap = |accessor: &str, secret: &str, reset_index| AclOp::Bootstrap {
        accessor_id: accessor.to_owned(),
        secret_id: secret.to_owned(),
        reset_index,
    };
    let Ok(AclApplied::Token(first)) = store.apply(bootstrap(A1, S1, None), 5, NOW) else {
        panic!("the first bootstrap succeeds");
    };
    assert_eq!(first.description, "Bootstrap Token (Global Management)");
    assert_eq!(first.policies, [MANAGEMENT_POLICY_ID]);
    assert_eq!(
        err(store.apply(bootstrap(A2, S2, None), 6, NOW)),
        "ACL bootstrap no longer allowed (reset index: 5)"
    );
    assert_eq!(
        err(store.apply(bootstrap(A2, S2, Some(4)), 6, NOW)),
        "ACL bootstrap no longer allowed (reset index: 5)"
    );
    assert!(store.apply(bootstrap(A2, S2, Some(5)), 6, NOW).is_ok());
    assert_eq!(
        err(store.apply(bootstrap(A1, S1, Some(5)), 7, NOW)),
        "ACL bootstrap no longer allowed (reset index: 6)"
    );
}

#[test]
fn the_initial_management_token_ends_bootstrapping() {
    let mut store = AclStore::default();
    let init = AclOp::Initialize {
        initial_management: Some((A1.to_owned(), S1.to_owned())),
    };
    store.apply(init.clone(), 3, NOW).unwrap();
    let management = store.token_by_secret(S1).unwrap();
    assert_eq!(management.accessor_id, A1);
    assert_eq!(management.policies, [MANAGEMENT_POLICY_ID]);
    let bootstrap = AclOp::Bootstrap {
        accessor_id: A2.to_owned(),
        secret_id: S2.to_owned(),
        reset_index: None,
    };
    assert_eq!(
        err(store.apply(bootstrap, 4, NOW)),
        "ACL bootstrap no longer allowed (reset index: 3)"
    );
    // A later leader with the same configuration creates nothing new.
    let before = store.clone();
    store.apply(init, 9, NOW).unwrap();
    assert_eq!(store, before);
}

#[test]
fn token_ids_are_checked_as_consul_checks_them() {
    let mut store = initialized();
    let reserved = "00000000-0000-0000-0000-000000000099";
    assert_eq!(
        err(store.apply(AclOp::CreateToken(token(reserved, S1)), 2, NOW)),
        "Invalid Token: AccessorID - UUIDs with the prefix \"00000000-0000-0000-0000-0000000000\" are reserved"
    );
    assert_eq!(
        err(store.apply(AclOp::CreateToken(token(A1, "secret")), 2, NOW)),
        "Invalid Token: SecretID - not a valid UUID"
    );
    store
        .apply(AclOp::CreateToken(token(A1, S1)), 2, NOW)
        .unwrap();
    assert_eq!(
        err(store.apply(AclOp::CreateToken(token(A1, S2)), 3, NOW)),
        "Invalid Token: AccessorID is already in use"
    );
    // A secret may not be another token's accessor either.
    assert_eq!(
        err(store.apply(AclOp::CreateToken(token(A2, A1)), 3, NOW)),
        "Invalid Token: SecretID is already in use"
    );
}

#[test]
fn expiration_is_bounded_and_fixed_at_creation() {
    let mut store = initialized();
    let with = |ttl: Option<i64>, at: Option<u64>| TokenWrite {
        expiration_ttl_ms: ttl,
        expiration_time_ms: at,
        ..token(A1, S1)
    };
    let create = |store: &mut AclStore, write| store.apply(AclOp::CreateToken(write), 2, NOW);
    assert_eq!(
        err(create(&mut store, with(Some(-1000), None))),
        "Token Expiration TTL '-1s' should be > 0"
    );
    assert_eq!(
        err(create(&mut store, with(Some(60_000), Some(NOW + 60_000)))),
        "Token Expiration TTL and Expiration Time cannot both be set"
    );
    assert_eq!(
        err(create(&mut store, with(Some(25 * 3_600_000), None))),
        "ExpirationTime cannot be more than 24h0m0s in the future (was 25h0m0s)"
    );
    assert_eq!(
        err(create(&mut store, with(Some(1_500), None))),
        "ExpirationTime cannot be less than 1m0s in the future (was 1.5s)"
    );
    assert_eq!(
        err(create(&mut store, with(None, Some(NOW - 1)))),
        "ExpirationTime cannot be before CreateTime"
    );
    let Ok(AclApplied::Token(made)) = create(&mut store, with(Some(120_000), None)) else {
        panic!("a two-minute token is fine");
    };
    assert_eq!(made.expiration_time_ms, Some(NOW + 120_000));
    assert!(store
        .resolve(S1, NOW + 119_999, "dc1", DefaultPolicy::Deny)
        .is_ok());
    assert_eq!(
        store
            .resolve(S1, NOW + 120_000, "dc1", DefaultPolicy::Deny)
            .unwrap_err(),
        AclError::NotFound
    );
    let update = TokenWrite {
        expiration_ttl_ms: Some(60_000),
        ..token(A1, "")
    };
    assert_eq!(
        err(store.apply(AclOp::UpdateToken(update), 3, NOW)),
        format!("Cannot change expiration time of {A1}")
    );
}

#[test]
fn links_resolve_by_name_and_are_stored_by_id() {
    let mut store = initialized();
    store
        .apply(
            AclOp::SetPolicy {
                policy: policy(P1, "kv-read", r#"key_prefix "" { policy = "read" }"#),
                create: true,
            },
            2,
            NOW,
        )
        .unwrap();
    let by_name = TokenWrite {
        policies: vec![Link {
            id: String::new(),
            name: "kv-read".into(),
        }],
        ..token(A1, S1)
    };
    let Ok(AclApplied::Token(made)) = store.apply(AclOp::CreateToken(by_name), 3, NOW) else {
        panic!("a link by name resolves");
    };
    assert_eq!(made.policies, [P1]);
    let missing = TokenWrite {
        policies: vec![Link {
            id: String::new(),
            name: "nope".into(),
        }],
        ..token(A2, S2)
    };
    assert_eq!(
        err(store.apply(AclOp::CreateToken(missing), 4, NOW)),
        "No such ACL policy with name \"nope\""
    );
    let missing_role = TokenWrite {
        roles: vec![Link {
            id: R1.into(),
            name: String::new(),
        }],
        ..token(A2, S2)
    };
    assert_eq!(
        err(store.apply(AclOp::CreateToken(missing_role), 4, NOW)),
        format!("No such ACL role with ID {R1:?}")
    );
    // Deleting the policy drops the token's link to it.
    store
        .apply(AclOp::DeletePolicy { id: P1.into() }, 5, NOW)
        .unwrap();
    assert!(store.token(A1).unwrap().policies.is_empty());
}

#[test]
fn updates_keep_what_consul_keeps() {
    let mut store = initialized();
    store
        .apply(AclOp::CreateToken(token(A1, S1)), 2, NOW)
        .unwrap();
    assert_eq!(
        err(store.apply(AclOp::UpdateToken(token(A1, S2)), 3, NOW)),
        "Changing a token's SecretID is not permitted"
    );
    let local = TokenWrite {
        local: true,
        ..token(A1, "")
    };
    assert_eq!(
        err(store.apply(AclOp::UpdateToken(local), 3, NOW)),
        format!("Cannot toggle local mode of {A1}")
    );
    assert_eq!(
        err(store.apply(AclOp::UpdateToken(token(A2, "")), 3, NOW)),
        format!("Cannot find token {A2:?}")
    );
    let described = TokenWrite {
        description: "ops".into(),
        ..token(A1, "")
    };
    let Ok(AclApplied::Token(updated)) = store.apply(AclOp::UpdateToken(described), 4, NOW + 5)
    else {
        panic!("the description changes");
    };
    assert_eq!(
        (updated.secret_id.as_str(), updated.description.as_str()),
        (S1, "ops")
    );
    assert_eq!((updated.create_index, updated.modify_index), (2, 4));
    assert_eq!(updated.create_time_ms, NOW);
    assert_eq!(store.tokens_index(), 4);
}

#[test]
fn deletes_refuse_the_anonymous_and_the_requesting_token() {
    let mut store = initialized();
    store
        .apply(AclOp::CreateToken(token(A1, S1)), 2, NOW)
        .unwrap();
    let delete = |accessor: &str, requester: &str| AclOp::DeleteToken {
        accessor_id: accessor.to_owned(),
        requester: requester.to_owned(),
    };
    assert_eq!(
        err(store.apply(delete(ANONYMOUS_ACCESSOR_ID, S2), 3, NOW)),
        "Delete operation not permitted on the anonymous token"
    );
    assert_eq!(
        err(store.apply(delete(A1, S1), 3, NOW)),
        "Deletion of the request's authorization token is not permitted"
    );
    assert_eq!(
        err(store.apply(delete("nope", S2), 3, NOW)),
        "Accessor ID is missing or an invalid UUID"
    );
    // An unknown token is already gone.
    assert_eq!(store.apply(delete(A2, S2), 3, NOW), Ok(AclApplied::Done));
    store.apply(delete(A1, S2), 4, NOW).unwrap();
    assert!(store.token_by_secret(S1).is_none());
    assert_eq!(
        store
            .resolve(S1, NOW, "dc1", DefaultPolicy::Allow)
            .unwrap_err(),
        AclError::NotFound
    );
}

#[test]
fn policies_keep_unique_names_and_builtins_keep_their_rules() {
    let mut store = initialized();
    let set = |store: &mut AclStore, write: PolicyWrite, create| {
        store.apply(
            AclOp::SetPolicy {
                policy: write,
                create,
            },
            2,
            NOW,
        )
    };
    assert_eq!(
        err(set(&mut store, policy(P1, "", ""), true)),
        "Invalid Policy: no Name is set"
    );
    assert_eq!(
        err(set(&mut store, policy(P1, "no spaces", ""), true)),
        "Invalid Policy: invalid Name. Only alphanumeric characters, '-' and '_' are allowed"
    );
    assert_eq!(
        err(set(
            &mut store,
            policy(P1, MANAGEMENT_POLICY_NAME, ""),
            true
        )),
        "Invalid Policy: A Policy with Name \"global-management\" already exists"
    );
    assert_eq!(
        err(set(&mut store, policy(P1, "ops", ""), false)),
        format!("cannot find policy {P1}")
    );
    set(&mut store, policy(P1, "ops", ""), true).unwrap();
    let mut renamed = store.policy(MANAGEMENT_POLICY_ID).unwrap().clone();
    renamed.name = "root".into();
    let keep_rules = PolicyWrite {
        id: renamed.id.clone(),
        name: renamed.name.clone(),
        description: renamed.description.clone(),
        rules: renamed.rules.clone(),
        datacenters: Vec::new(),
    };
    set(&mut store, keep_rules.clone(), false).unwrap();
    assert_eq!(store.policy(MANAGEMENT_POLICY_ID).unwrap().name, "root");
    let new_rules = PolicyWrite {
        rules: "operator = \"read\"".into(),
        ..keep_rules
    };
    assert_eq!(
        err(set(&mut store, new_rules, false)),
        "Changing the Rules for the builtin global-management policy is not permitted"
    );
    assert_eq!(
        err(store.apply(
            AclOp::DeletePolicy {
                id: MANAGEMENT_POLICY_ID.into()
            },
            3,
            NOW
        )),
        "Delete operation not permitted on the builtin global-management policy"
    );
}

#[test]
fn roles_validate_names_and_identities() {
    let mut store = initialized();
    let role = |name: &str, services: &[&str]| RoleWrite {
        id: R1.into(),
        name: name.into(),
        service_identities: services
            .iter()
            .map(|s| ServiceIdentity {
                service_name: (*s).into(),
                datacenters: Vec::new(),
            })
            .collect(),
        ..RoleWrite::default()
    };
    let set = |store: &mut AclStore, write, create| {
        store.apply(
            AclOp::SetRole {
                role: write,
                create,
            },
            2,
            NOW,
        )
    };
    assert_eq!(
        err(set(&mut store, role("", &[]), true)),
        "Role name is missing"
    );
    assert_eq!(
        err(set(&mut store, role("web", &["Web"]), true)),
        "Service identity \"Web\" has an invalid name. Only lowercase alphanumeric characters, '-' and '_' are allowed"
    );
    let Ok(AclApplied::Role(made)) = set(&mut store, role("web", &["web", "web"]), true) else {
        panic!("a role with a service identity");
    };
    assert_eq!(made.service_identities.len(), 1, "identities deduplicated");
    let linked = TokenWrite {
        roles: vec![Link {
            id: String::new(),
            name: "web".into(),
        }],
        ..token(A1, S1)
    };
    store.apply(AclOp::CreateToken(linked), 3, NOW).unwrap();
    assert_eq!(store.token(A1).unwrap().roles, [R1]);
    store
        .apply(AclOp::DeleteRole { id: R1.into() }, 4, NOW)
        .unwrap();
    assert!(store.token(A1).unwrap().roles.is_empty());
}

#[test]
fn resolution_finds_the_anonymous_token_for_no_secret() {
    // Before initialization the anonymous token has nothing but the default.
    let store = AclStore::default();
    let resolved = store.resolve("", NOW, "dc1", DefaultPolicy::Deny).unwrap();
    assert_eq!(resolved.accessor_id, ANONYMOUS_ACCESSOR_ID);
    assert!(!resolved.authorizer.is_management());
    let store = initialized();
    let resolved = store.resolve("", NOW, "dc1", DefaultPolicy::Deny).unwrap();
    assert_eq!(resolved.accessor_id, ANONYMOUS_ACCESSOR_ID);
    assert_eq!(
        store
            .resolve("not-a-token", NOW, "dc1", DefaultPolicy::Allow)
            .unwrap_err(),
        AclError::NotFound
    );
}

#[test]
fn a_management_link_resolves_to_the_management_authorizer() {
    let mut store = initialized();
    let write = TokenWrite {
        policies: vec![Link {
            id: MANAGEMENT_POLICY_ID.into(),
            name: String::new(),
        }],
        ..token(A1, S1)
    };
    store.apply(AclOp::CreateToken(write), 2, NOW).unwrap();
    let resolved = store.resolve(S1, NOW, "dc1", DefaultPolicy::Deny).unwrap();
    assert_eq!(resolved.accessor_id, A1);
    assert!(resolved.authorizer.is_management());
}

#[test]
fn a_round_trip_through_serde_rebuilds_the_indexes() {
    let mut store = initialized();
    store
        .apply(AclOp::CreateToken(token(A1, S1)), 2, NOW)
        .unwrap();
    let text = serde_json::to_string(&store).unwrap();
    let back: AclStore = serde_json::from_str(&text).unwrap();
    assert_eq!(back, store);
    assert_eq!(back.token_by_secret(S1).unwrap().accessor_id, A1);
}

#[test]
fn go_durations_print_as_go_prints_them() {
    for (ms, text) in [
        (0, "0s"),
        (500, "500ms"),
        (1_500, "1.5s"),
        (60_000, "1m0s"),
        (86_400_000, "24h0m0s"),
        (-1_000, "-1s"),
    ] {
        assert_eq!(go_duration_ms(ms), text);
    }
}

#[test]
fn a_grant_resolves_on_an_agent_as_on_the_server() {
    let mut store = initialized();
    store
        .apply(
            AclOp::SetPolicy {
                policy: policy(P1, "kv", r#"key_prefix "app/" { policy = "write" }"#),
                create: true,
            },
            2,
            NOW,
        )
        .unwrap();
    let write = TokenWrite {
        policies: vec![Link {
            id: P1.into(),
            name: String::new(),
        }],
        service_identities: vec![ServiceIdentity {
            service_name: "web".into(),
            datacenters: vec!["dc2".into()],
        }],
        node_identities: vec![NodeIdentity {
            node_name: "n1".into(),
            datacenter: "dc1".into(),
        }],
        ..token(A1, S1)
    };
    store.apply(AclOp::CreateToken(write), 3, NOW).unwrap();
    let grant = store.grant(S1, NOW, "dc1").unwrap();
    assert_eq!(grant.accessor_id, A1);
    assert_eq!(grant.rules.len(), 1);
    assert!(grant.service_identities.is_empty(), "web is for dc2 only");
    assert_eq!(grant.node_identities, ["n1"]);
    let on_agent = grant.resolve(DefaultPolicy::Deny);
    let on_server = store.resolve(S1, NOW, "dc1", DefaultPolicy::Deny).unwrap();
    for (resource, name, access) in [
        (crate::Resource::Key, "app/x", crate::Access::Write),
        (crate::Resource::Key, "other", crate::Access::Read),
        (crate::Resource::Node, "n1", crate::Access::Write),
        (crate::Resource::Service, "web", crate::Access::Write),
    ] {
        assert_eq!(
            on_agent.authorizer.allows(resource, name, access),
            on_server.authorizer.allows(resource, name, access),
            "{resource:?} {name} {access:?}"
        );
    }
    assert_eq!(store.grant("nope", NOW, "dc1"), Err(AclError::NotFound));
    assert_eq!(
        store.grant("", NOW, "dc1").unwrap().accessor_id,
        ANONYMOUS_ACCESSOR_ID
    );
}
