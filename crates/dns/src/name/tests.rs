use super::*;

fn domains() -> Vec<Name> {
    vec![
        Name::from_ascii("mesh.").unwrap(),
        Name::from_ascii("example.org.").unwrap(),
    ]
}

fn svc(service: &str, tag: Option<&str>, dc: Option<&str>) -> MeshName {
    MeshName::Service {
        service: service.into(),
        tag: tag.map(Into::into),
        dc: dc.map(Into::into),
    }
}

fn node(node: &str, dc: Option<&str>) -> MeshName {
    MeshName::Node {
        node: node.into(),
        dc: dc.map(Into::into),
    }
}

fn connect(service: &str, dc: Option<&str>) -> MeshName {
    MeshName::Connect {
        service: service.into(),
        dc: dc.map(Into::into),
    }
}

fn addr(ip: &str) -> MeshName {
    MeshName::Addr {
        ip: ip.parse().unwrap(),
    }
}

#[track_caller]
fn check(qname: &str, qtype: RecordType, expected: Zone) {
    // Questions arrive lower-cased, as hickory's `LowerQuery` gives them.
    let name = Name::from_ascii(qname).unwrap().to_lowercase();
    assert_eq!(
        classify(&name, qtype, &domains()),
        expected,
        "{qname} {qtype}"
    );
}

#[track_caller]
fn mesh(qname: &str, qtype: RecordType, expected: MeshName) {
    check(
        qname,
        qtype,
        Zone::Mesh {
            domain: 0,
            name: expected,
        },
    );
}

#[test]
fn service_names() {
    use RecordType::*;
    mesh("web.service.mesh.", A, svc("web", None, None));
    mesh("web.service.dc2.mesh.", A, svc("web", None, Some("dc2")));
    mesh("web.service.dc2.dc.mesh.", A, svc("web", None, Some("dc2")));
    mesh("v1.web.service.mesh.", A, svc("web", Some("v1"), None));
    mesh(
        "v1.2.web.service.mesh.",
        SRV,
        svc("web", Some("v1.2"), None),
    );
    mesh("WEB.Service.MESH.", A, svc("web", None, None));
    mesh(
        "Primary.Web.service.DC1.mesh.",
        A,
        svc("web", Some("primary"), Some("dc1")),
    );
    mesh("service.service.mesh.", A, svc("service", None, None));
    mesh("_web._tcp.service.mesh.", SRV, svc("web", None, None));
    mesh("_web._v1.service.mesh.", SRV, svc("web", Some("v1"), None));
    mesh(
        "_web._tcp.service.dc2.mesh.",
        A,
        svc("web", None, Some("dc2")),
    );
    // For SRV questions the `service` label is optional.
    mesh("_web._tcp.mesh.", SRV, svc("web", None, None));
    mesh(
        "_web._v1.dc2.mesh.",
        SRV,
        svc("web", Some("v1"), Some("dc2")),
    );
    mesh("_web._tcp.mesh.", A, MeshName::Invalid);
    mesh(
        ".service.mesh.".trim_start_matches('.'),
        A,
        MeshName::Invalid,
    );
    mesh("web.service.a.b.mesh.", A, MeshName::Invalid);
}

#[test]
fn node_connect_and_addr_names() {
    use RecordType::*;
    mesh("foo.node.mesh.", A, node("foo", None));
    mesh("foo.node.dc2.mesh.", AAAA, node("foo", Some("dc2")));
    mesh("foo.bar.baz.node.mesh.", A, node("foo.bar.baz", None));
    mesh("Foo.Node.mesh.", TXT, node("foo", None));
    mesh("node.mesh.", A, MeshName::Invalid);
    mesh("web.connect.mesh.", A, connect("web", None));
    mesh("web.connect.dc2.mesh.", SRV, connect("web", Some("dc2")));
    mesh("v1.web.connect.mesh.", A, MeshName::Invalid);
    mesh("7f000001.addr.mesh.", A, addr("127.0.0.1"));
    mesh("7F000001.addr.dc1.mesh.", A, addr("127.0.0.1"));
    mesh(
        "20010db8000000000000000000000001.addr.mesh.",
        AAAA,
        addr("2001:db8::1"),
    );
    mesh("7f00001.addr.mesh.", A, MeshName::Invalid);
    mesh("zz000001.addr.mesh.", A, MeshName::Invalid);
    mesh("a.7f000001.addr.mesh.", A, MeshName::Invalid);
}

#[test]
fn other_mesh_names() {
    use RecordType::*;
    mesh("mesh.", SOA, MeshName::Apex);
    mesh("MESH.", NS, MeshName::Apex);
    mesh("foo.mesh.", A, MeshName::Invalid);
    mesh("foo.bar.mesh.", A, MeshName::Invalid);
    mesh("geo.query.mesh.", A, MeshName::Unsupported("query"));
    mesh("web.ingress.mesh.", A, MeshName::Unsupported("ingress"));
    mesh("web.virtual.mesh.", A, MeshName::Unsupported("virtual"));
}

#[test]
fn zones() {
    use RecordType::*;
    check(
        "web.service.example.org.",
        A,
        Zone::Mesh {
            domain: 1,
            name: svc("web", None, None),
        },
    );
    check("example.com.", A, Zone::Outside);
    check("mesh.example.com.", A, Zone::Outside);
    check("org.", A, Zone::Outside);
    check(
        "1.0.0.127.in-addr.arpa.",
        PTR,
        Zone::Reverse(Some("127.0.0.1".parse().unwrap())),
    );
    check("0.0.127.in-addr.arpa.", PTR, Zone::Reverse(None));
    check("x.0.0.127.in-addr.arpa.", PTR, Zone::Reverse(None));
    check("300.0.0.127.in-addr.arpa.", PTR, Zone::Reverse(None));
    check(
        "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.IP6.ARPA.",
        PTR,
        Zone::Reverse(Some("2001:db8::1".parse().unwrap())),
    );
    check("8.b.d.0.1.0.0.2.ip6.arpa.", PTR, Zone::Reverse(None));
    check("arpa.", PTR, Zone::Outside);
}

#[test]
fn addr_spelling_round_trips() {
    for ip in ["10.1.2.3", "2001:db8::ff", "::1"] {
        let ip: IpAddr = ip.parse().unwrap();
        assert_eq!(super::addr(&encode_addr(ip)), Some(ip));
    }
    assert_eq!(encode_addr("10.1.2.3".parse().unwrap()), "0a010203");
}
