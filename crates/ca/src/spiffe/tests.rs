use super::{SpiffeError, SpiffeId};

#[test]
fn service_ids_round_trip() {
    let id = SpiffeId::service("11111111-2222-3333-4444-555555555555.mesh", "dc1", "web");
    let uri = "spiffe://11111111-2222-3333-4444-555555555555.mesh/ns/default/dc/dc1/svc/web";
    assert_eq!(id.uri(), uri);
    assert_eq!(SpiffeId::parse(uri), Ok(id));

    let with_partition = "spiffe://td.mesh/ap/part1/ns/ns1/dc/dc2/svc/db";
    let parsed = SpiffeId::parse(with_partition).expect("valid id");
    assert_eq!(parsed.partition.as_deref(), Some("part1"));
    assert_eq!(parsed.namespace, "ns1");
    assert_eq!(parsed.datacenter, "dc2");
    assert_eq!(parsed.service, "db");
    assert_eq!(parsed.uri(), with_partition);
}

#[test]
fn rejects_non_service_ids() {
    let cases = [
        ("https://td.mesh/ns/default/dc/dc1/svc/web", "not spiffe"),
        ("spiffe:///ns/default/dc/dc1/svc/web", "no trust domain"),
        ("spiffe://td.mesh", "signing id"),
        ("spiffe://td.mesh/agent/client/dc/dc1/id/abc", "agent id"),
        ("spiffe://td.mesh/ns/default/dc/dc1/svc/", "empty service"),
        (
            "spiffe://td.mesh/ns/default/dc/dc1/svc/web/extra",
            "extra segment",
        ),
    ];
    for (uri, why) in cases {
        assert!(
            SpiffeId::parse(uri).is_err(),
            "{uri} ({why}) should not parse"
        );
    }
    assert_eq!(
        SpiffeId::parse("spiffe://td.mesh/agent/client/dc/dc1/id/abc"),
        Err(SpiffeError::NotService(
            "spiffe://td.mesh/agent/client/dc/dc1/id/abc".to_owned()
        ))
    );
}
