use super::*;

fn service(uri: &str) -> SpiffeIdService {
    match CertUri::parse(uri) {
        Ok(CertUri::Service(svc)) => svc,
        other => panic!("{uri}: {other:?}"),
    }
}

#[test]
fn service_identities() {
    let svc =
        service("spiffe://11111111-2222-3333-4444-555555555555.consul/ns/default/dc/dc1/svc/web");
    assert_eq!(
        svc,
        SpiffeIdService {
            host: "11111111-2222-3333-4444-555555555555.consul".into(),
            partition: "default".into(),
            namespace: "default".into(),
            datacenter: "dc1".into(),
            service: "web".into(),
        }
    );
    let svc = service("SPIFFE://td.consul/ap/eu/ns/team/dc/dc2/svc/db");
    assert_eq!(
        (svc.partition.as_str(), svc.namespace.as_str()),
        ("eu", "team")
    );
    let svc = service("spiffe://td.consul/ns/default/dc/dc1/svc/my%2Fsvc");
    assert_eq!(svc.service, "my/svc");
}

#[test]
fn other_identities() {
    assert_eq!(
        CertUri::parse("spiffe://td.consul/agent/client/dc/dc1/id/abc"),
        Ok(CertUri::Agent {
            host: "td.consul".into(),
            partition: "default".into(),
            datacenter: "dc1".into(),
            agent: "abc".into(),
        })
    );
    assert_eq!(
        CertUri::parse("spiffe://td.consul/agent/server/dc/dc1"),
        Ok(CertUri::Server {
            host: "td.consul".into(),
            datacenter: "dc1".into(),
        })
    );
    assert_eq!(
        CertUri::parse("spiffe://td.consul/gateway/mesh/dc/dc1"),
        Ok(CertUri::MeshGateway {
            host: "td.consul".into(),
            partition: "default".into(),
            datacenter: "dc1".into(),
        })
    );
    assert_eq!(
        CertUri::parse("spiffe://1111.consul"),
        Ok(CertUri::Signing {
            cluster_id: "1111".into(),
            domain: "consul".into(),
        })
    );
}

#[test]
fn invalid_uris() {
    let check = |uri: &str, expected: &str| {
        let err = CertUri::parse(uri).expect_err(uri);
        assert_eq!(err.to_string(), expected, "{uri}");
    };
    check("", "SPIFFE ID must have 'spiffe' scheme");
    check(
        "https://td.consul/ns/default/dc/dc1/svc/web",
        "SPIFFE ID must have 'spiffe' scheme",
    );
    check(
        "td.consul/ns/default/dc/dc1/svc/web",
        "SPIFFE ID must have 'spiffe' scheme",
    );
    check(
        "spiffe://td.consul/ns/default/dc/dc1/svc/web/extra",
        "SPIFFE ID is not in the expected format: spiffe://td.consul/ns/default/dc/dc1/svc/web/extra",
    );
    check(
        "spiffe://td.consul/ns//dc/dc1/svc/web",
        "SPIFFE ID is not in the expected format: spiffe://td.consul/ns//dc/dc1/svc/web",
    );
    check(
        "spiffe://nodot",
        "SPIFFE ID is not in the expected format: spiffe://nodot",
    );
    check(
        "spiffe://td.consul/ns/default/dc/dc1/svc/w%zz",
        r#"invalid URL escape "%zz""#,
    );
}
