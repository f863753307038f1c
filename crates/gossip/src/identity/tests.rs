use foca::Identity;

use super::*;

fn identity(incarnation: u64) -> NodeIdentity {
    NodeIdentity::new(
        "node-1",
        "10.0.0.1:8301".parse().unwrap(),
        incarnation,
        Tags::new(),
    )
    .unwrap()
}

#[test]
fn renewed_identity_wins_the_conflict() {
    let old = identity(7);
    let new = old.renew().unwrap();
    assert_eq!(new.incarnation, 8);
    assert_eq!(new.addr(), old.addr());
    assert!(new.win_addr_conflict(&old));
    assert!(!old.win_addr_conflict(&new));
}

#[test]
fn tag_change_is_a_newer_life() {
    let old = identity(1);
    let new = old
        .with_tags(Tags::from([("role".into(), "consul".into())]))
        .unwrap();
    assert!(new.win_addr_conflict(&old));
    assert_eq!(new.tags.get("role").map(String::as_str), Some("consul"));
}

#[test]
fn the_key_follows_the_name_through_the_wire() {
    let identity = identity(3);
    let bytes = postcard::to_allocvec(&identity).unwrap();
    let decoded: NodeIdentity = postcard::from_bytes(&bytes).unwrap();
    assert_eq!(decoded, identity);
    assert_eq!(decoded.addr(), name_key("node-1"));
    assert_ne!(name_key("node-1"), name_key("node-2"));
}

#[test]
fn names_and_identities_are_bounded() {
    let addr = "10.0.0.1:8301".parse().unwrap();
    assert!(matches!(
        NodeIdentity::new("", addr, 0, Tags::new()),
        Err(Error::InvalidName { .. })
    ));
    let long_tags = Tags::from([("k".into(), "v".repeat(400))]);
    assert!(matches!(
        NodeIdentity::new("n", addr, 0, long_tags),
        Err(Error::IdentityTooLarge {
            limit: MAX_IDENTITY_LEN,
            ..
        })
    ));
}

#[test]
fn the_life_hash_covers_the_whole_identity_and_survives_the_wire() {
    let base = identity(3);
    let lives = [
        base.life(),
        identity(4).life(),
        NodeIdentity::new("node-2", base.addr, 3, Tags::new())
            .unwrap()
            .life(),
        NodeIdentity::new("node-1", "10.0.0.2:8301".parse().unwrap(), 3, Tags::new())
            .unwrap()
            .life(),
        NodeIdentity::new(
            "node-1",
            "[::ffff:10.0.0.1]:8301".parse().unwrap(),
            3,
            Tags::new(),
        )
        .unwrap()
        .life(),
        base.with_tags(Tags::from([("role".into(), "node".into())]))
            .unwrap()
            .life(),
        NodeIdentity::new(
            "node-1",
            base.addr,
            3,
            Tags::from([("role".into(), "node".into())]),
        )
        .unwrap()
        .life(),
    ];
    let distinct: std::collections::BTreeSet<u64> = lives.iter().copied().collect();
    assert_eq!(distinct.len(), lives.len(), "{lives:x?}");
    let bytes = postcard::to_allocvec(&base).unwrap();
    let decoded: NodeIdentity = postcard::from_bytes(&bytes).unwrap();
    assert_eq!(decoded.life(), base.life());
    assert_eq!(base.renew().unwrap().life(), identity(4).life());
}
