use std::collections::BTreeMap;
use std::net::SocketAddr;

use catalog::{Proxy, Status};
use hickory_proto::op::Query;
use hickory_proto::rr::RData;
use rand::rngs::StdRng;

use super::*;
use crate::config::DnsConfig;
pub(crate) use crate::memory::{instance, node, MemoryLookup};

/// dc1: `web` on five nodes (web-1 tagged `v1`, web-5 critical), `many` on 100 nodes, a
/// sidecar proxy for `web`, node `foo.bar` with metadata, server `s1`; dc2: `db`.
pub(crate) fn catalog() -> Arc<MemoryLookup> {
    let lookup = MemoryLookup::new();
    for i in 1..=5 {
        let mut web = instance(
            node(&format!("web-{i}"), &format!("10.0.0.{i}"), "dc1"),
            "web",
            80,
        );
        if i == 1 {
            web.service.tags = vec!["v1".into()];
        }
        if i == 5 {
            let check =
                catalog::HealthCheck::new(&web.node.name, "serfHealth", "Serf", Status::Critical);
            web.checks.push(check);
        }
        lookup.add_instance(web);
    }
    for i in 0..100u16 {
        let addr = format!("10.1.{}.{}", i / 250, i % 250 + 1);
        lookup.add_instance(instance(
            node(&format!("many-{i}"), &addr, "dc1"),
            "many",
            8000,
        ));
    }
    let mut proxy = instance(node("web-1", "10.0.0.1", "dc1"), "web-sidecar-proxy", 21000);
    proxy.service.kind = "connect-proxy".into();
    proxy.service.proxy = Some(Proxy {
        destination_service_name: "web".into(),
        ..Proxy::default()
    });
    lookup.add_instance(proxy);
    let mut foo = node("foo.bar", "10.0.2.1", "dc1");
    foo.meta = BTreeMap::from([("rack".into(), "r1".into())]);
    lookup.add_node(foo);
    lookup.add_server(node("s1", "10.0.3.1", "dc1"));
    let mut db = instance(node("db-1", "10.2.0.1", "dc2"), "db", 5432);
    db.service.address = "10.2.0.100".into();
    lookup.add_instance(db);
    Arc::new(lookup)
}

pub(crate) fn handler(f: impl FnOnce(&mut DnsConfig), lookup: Arc<MemoryLookup>) -> DnsHandler {
    let mut config = DnsConfig {
        alt_domain: Some("consul.".into()),
        ..DnsConfig::default()
    };
    f(&mut config);
    DnsHandler::new(&config, lookup).expect("valid config")
}

/// A query as a client would send it.
pub(crate) fn query(name: &str, qtype: RecordType, edns: Option<u16>) -> Message {
    let mut m = Message::query();
    m.metadata.id = 4242;
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    if let Some(payload) = edns {
        let mut e = Edns::new();
        e.set_max_payload(payload);
        m.edns = Some(e);
    }
    m
}

async fn ask_message(h: &DnsHandler, m: Message, protocol: Protocol) -> Message {
    let src: SocketAddr = "127.0.0.1:5353".parse().unwrap();
    let request = Request::from_bytes(m.to_vec().unwrap(), src, protocol).unwrap();
    let mut rng = StdRng::seed_from_u64(3);
    let response = h.respond(&request, &mut rng, 1_700_000_000).await;
    assert_eq!(response.metadata.id, 4242);
    assert_eq!(response.metadata.message_type, MessageType::Response);
    response
}

async fn ask(h: &DnsHandler, name: &str, qtype: RecordType) -> Message {
    ask_message(h, query(name, qtype, None), Protocol::Tcp).await
}

fn rdata(m: &Message) -> Vec<String> {
    let mut v: Vec<String> = m.answers.iter().map(|r| r.data.to_string()).collect();
    v.sort();
    v
}

fn soa_only(m: &Message) -> bool {
    m.answers.is_empty()
        && m.authorities.len() == 1
        && matches!(m.authorities[0].data, RData::SOA(_))
}

#[tokio::test]
async fn services_by_every_name_form() {
    let h = handler(|_| {}, catalog());
    let web = ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"];
    for name in [
        "web.service.mesh.",
        "WEB.Service.Mesh.",
        "web.service.dc1.mesh.",
        "web.service.dc1.dc.mesh.",
        "web.service.consul.",
    ] {
        let m = ask(&h, name, RecordType::A).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{name}");
        assert!(m.metadata.authoritative, "{name}");
        assert!(!m.metadata.recursion_available, "{name}");
        assert_eq!(rdata(&m), web, "{name}");
        // Records are named as asked, in the domain asked.
        assert!(
            m.answers.iter().all(|r| r.name.to_ascii() == name),
            "{name}"
        );
    }
    let m = ask(&h, "v1.web.service.mesh.", RecordType::A).await;
    assert_eq!(rdata(&m), ["10.0.0.1"]);
    let m = ask(&h, "_web._v1.service.mesh.", RecordType::SRV).await;
    assert_eq!(rdata(&m), ["1 1 80 web-1.node.dc1.mesh."]);
    let m = ask(&h, "_web._tcp.mesh.", RecordType::SRV).await;
    assert_eq!(m.answers.len(), 4);
    assert_eq!(m.additionals.len(), 4);
    let m = ask(&h, "web.service.consul.", RecordType::SRV).await;
    assert!(
        rdata(&m).contains(&"1 1 80 web-2.node.dc1.consul.".to_string()),
        "{:?}",
        rdata(&m)
    );
    let m = ask(&h, "db.service.dc2.mesh.", RecordType::SRV).await;
    assert_eq!(rdata(&m), ["1 1 5432 0a020064.addr.dc2.mesh."]);
    assert_eq!(
        m.additionals[0].to_string(),
        "0a020064.addr.dc2.mesh. 0 IN A 10.2.0.100"
    );
    let m = ask(&h, "web.connect.mesh.", RecordType::SRV).await;
    assert_eq!(rdata(&m), ["1 1 21000 web-1.node.dc1.mesh."]);
}

#[tokio::test]
async fn negative_answers() {
    let h = handler(|_| {}, catalog());
    for (name, qtype, rcode) in [
        ("nope.service.mesh.", RecordType::A, ResponseCode::NXDomain),
        (
            "web.service.dc9.mesh.",
            RecordType::A,
            ResponseCode::NXDomain,
        ),
        (
            "v2.web.service.mesh.",
            RecordType::A,
            ResponseCode::NXDomain,
        ),
        ("nope.node.mesh.", RecordType::A, ResponseCode::NXDomain),
        ("nope.connect.mesh.", RecordType::A, ResponseCode::NXDomain),
        ("foo.mesh.", RecordType::A, ResponseCode::NXDomain),
        ("geo.query.mesh.", RecordType::A, ResponseCode::NXDomain),
        ("web.service.mesh.", RecordType::AAAA, ResponseCode::NoError),
        ("web.service.mesh.", RecordType::MX, ResponseCode::NoError),
        (
            "foo.bar.node.mesh.",
            RecordType::AAAA,
            ResponseCode::NoError,
        ),
        ("mesh.", RecordType::A, ResponseCode::NoError),
    ] {
        let m = ask(&h, name, qtype).await;
        assert_eq!(m.metadata.response_code, rcode, "{name} {qtype}");
        assert!(soa_only(&m), "{name} {qtype}: {m:?}");
        assert!(m.metadata.authoritative, "{name} {qtype}");
    }
    let m = ask(&h, "nope.service.consul.", RecordType::A).await;
    assert_eq!(
        m.authorities[0].name.to_ascii(),
        "consul.",
        "the SOA of the domain asked"
    );
}

#[tokio::test]
async fn nodes_addrs_and_apex() {
    let h = handler(|_| {}, catalog());
    let m = ask(&h, "foo.bar.node.mesh.", RecordType::A).await;
    assert_eq!(rdata(&m), ["10.0.2.1"]);
    assert_eq!(
        m.additionals[0].to_string(),
        "foo.bar.node.mesh. 0 IN TXT rack=r1"
    );
    let m = ask(&h, "foo.bar.node.mesh.", RecordType::TXT).await;
    assert_eq!(rdata(&m), ["rack=r1"]);
    let m = ask(&h, "0a000001.addr.mesh.", RecordType::A).await;
    assert_eq!(rdata(&m), ["10.0.0.1"]);
    let m = ask(&h, "mesh.", RecordType::SOA).await;
    assert_eq!(
        rdata(&m),
        ["ns.mesh. hostmaster.mesh. 1700000000 3600 600 86400 0"]
    );
    assert_eq!(
        m.authorities[0].to_string(),
        "mesh. 0 IN NS s1.node.dc1.mesh."
    );
    assert_eq!(
        m.additionals[0].to_string(),
        "s1.node.dc1.mesh. 0 IN A 10.0.3.1"
    );
    let m = ask(&h, "consul.", RecordType::NS).await;
    assert_eq!(rdata(&m), ["s1.node.dc1.consul."]);
}

#[tokio::test]
async fn reverse_lookups() {
    let h = handler(|_| {}, catalog());
    let m = ask(&h, "1.2.0.10.in-addr.arpa.", RecordType::PTR).await;
    assert_eq!(rdata(&m), ["foo.bar.node.dc1.mesh."]);
    assert!(m.metadata.authoritative);
    // Not a node address, but a service's own address (in the local datacenter only).
    let m = ask(&h, "100.0.2.10.in-addr.arpa.", RecordType::PTR).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    let lookup = catalog();
    let mut api = instance(node("api-1", "10.0.0.9", "dc1"), "api", 80);
    api.service.address = "10.9.9.9".into();
    lookup.add_instance(api);
    let h = handler(|_| {}, lookup);
    let m = ask(&h, "9.9.9.10.in-addr.arpa.", RecordType::PTR).await;
    assert_eq!(rdata(&m), ["api.service.mesh."]);
}

#[tokio::test]
async fn questions_are_counted_by_kind() {
    let lookup = catalog();
    let h = handler(|_| {}, lookup.clone());
    // The second question for `web` is answered from the cache: counted the same.
    ask(&h, "web.service.mesh.", RecordType::A).await;
    ask(&h, "web.service.mesh.", RecordType::A).await;
    ask(&h, "1.2.0.10.in-addr.arpa.", RecordType::PTR).await;
    ask(&h, "example.com.", RecordType::A).await;
    lookup.set_failing(true);
    ask(&h, "db.service.dc2.mesh.", RecordType::A).await;
    let counts = h.stats().read();
    assert_eq!(
        (
            counts.domain_query.count,
            counts.ptr_query.count,
            counts.recursed.count,
            counts.other,
            counts.servfail
        ),
        (3, 1, 0, 1, 1)
    );
    let domain = counts.domain_query;
    assert!(domain.min_us <= domain.max_us && domain.max_us <= domain.sum_us);
}

#[tokio::test]
async fn failures_refusals_and_unsupported_requests() {
    let lookup = catalog();
    let h = handler(|_| {}, lookup.clone());
    lookup.set_failing(true);
    let m = ask(&h, "web.service.mesh.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    assert!(m.answers.is_empty() && m.authorities.is_empty());
    // The SOA needs no lookup: it is answered without the NS records.
    let m = ask(&h, "mesh.", RecordType::SOA).await;
    assert_eq!(
        (m.metadata.response_code, m.answers.len()),
        (ResponseCode::NoError, 1)
    );
    assert!(m.authorities.is_empty());
    lookup.set_failing(false);

    let m = ask(&h, "example.com.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    assert!(!m.metadata.authoritative);
    let m = ask(&h, "mesh.", RecordType::AXFR).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NotImp);

    let mut two = query("web.service.mesh.", RecordType::A, None);
    two.add_query(Query::query(
        Name::from_ascii("db.service.mesh.").unwrap(),
        RecordType::A,
    ));
    let m = ask_message(&h, two, Protocol::Udp).await;
    assert_eq!(m.metadata.response_code, ResponseCode::FormErr);

    let mut v1 = query("web.service.mesh.", RecordType::A, Some(1232));
    v1.edns.as_mut().unwrap().set_version(1);
    let m = ask_message(&h, v1, Protocol::Udp).await;
    assert_eq!(m.metadata.response_code, ResponseCode::BADVERS);
    assert!(m.edns.is_some());

    let h = handler(
        |c| c.recursors = vec!["127.0.0.1:9".parse().unwrap()],
        catalog(),
    );
    let m = ask(&h, "web.service.mesh.", RecordType::A).await;
    assert!(
        m.metadata.recursion_available,
        "ra is set when recursors exist"
    );
}

#[tokio::test]
async fn truncation_sets_tc_and_honours_edns() {
    let h = handler(|_| {}, catalog());
    // UDP without EDNS: the answer limit (3) and 512 bytes, and TC.
    let m = ask_message(
        &h,
        query("many.service.mesh.", RecordType::A, None),
        Protocol::Udp,
    )
    .await;
    assert_eq!(m.answers.len(), 3);
    assert!(m.metadata.truncation);
    assert!(fit::encoded_len(&m) <= 512);
    // The four healthy web instances are cut to three as well.
    let m = ask_message(
        &h,
        query("web.service.mesh.", RecordType::A, None),
        Protocol::Udp,
    )
    .await;
    assert_eq!((m.answers.len(), m.metadata.truncation), (3, true));
    let m = ask_message(
        &h,
        query("many.service.mesh.", RecordType::SRV, None),
        Protocol::Udp,
    )
    .await;
    assert!(m.metadata.truncation);
    assert!(fit::encoded_len(&m) <= 512);
    assert_eq!(
        m.additionals.len(),
        m.answers.len(),
        "one A per kept SRV target"
    );

    // EDNS with 4096 bytes: all 100 A records fit.
    let m = ask_message(
        &h,
        query("many.service.mesh.", RecordType::A, Some(4096)),
        Protocol::Udp,
    )
    .await;
    assert_eq!(m.answers.len(), 100);
    assert!(!m.metadata.truncation);
    assert_eq!(m.edns.as_ref().map(Edns::max_payload), Some(4096));
    // EDNS with 1232 bytes: SRV records with their additionals do not all fit.
    let m = ask_message(
        &h,
        query("many.service.mesh.", RecordType::SRV, Some(1232)),
        Protocol::Udp,
    )
    .await;
    assert!(m.metadata.truncation);
    assert!(
        m.answers.len() > 3 && m.answers.len() < 100,
        "{}",
        m.answers.len()
    );
    assert!(fit::encoded_len(&m) <= 1232);

    // TCP: everything.
    let m = ask_message(
        &h,
        query("many.service.mesh.", RecordType::SRV, None),
        Protocol::Tcp,
    )
    .await;
    assert_eq!((m.answers.len(), m.additionals.len()), (100, 100));
    assert!(!m.metadata.truncation);

    // With enable_truncate off (Consul's default), answers are still cut, but TC is not set.
    let h = handler(|c| c.enable_truncate = false, catalog());
    let m = ask_message(
        &h,
        query("many.service.mesh.", RecordType::A, None),
        Protocol::Udp,
    )
    .await;
    assert_eq!((m.answers.len(), m.metadata.truncation), (3, false));
}

/// Random questions, well-formed or not, never panic the handler: names built from labels
/// that mean something to it (and junk), every record type, with and without EDNS, over both
/// transports; and random bytes that happen to decode as a request.
#[tokio::test]
async fn random_questions_never_panic() {
    use rand::{Rng, SeedableRng};
    let h = handler(|_| {}, catalog());
    let mut rng = StdRng::seed_from_u64(0x6d657368);
    let labels = [
        "web",
        "v1",
        "service",
        "node",
        "connect",
        "addr",
        "query",
        "dc1",
        "dc2",
        "dc",
        "mesh",
        "consul",
        "_web",
        "_tcp",
        "_v1",
        "in-addr",
        "arpa",
        "ip6",
        "10",
        "0",
        "255",
        "7f000001",
        "20010db8000000000000000000000001",
        "many",
        "foo",
        "bar",
        "x-y",
        "",
        "*",
        "ingress",
        "virtual",
        "peer",
        "ns",
        "ap",
    ];
    let types = [
        RecordType::A,
        RecordType::AAAA,
        RecordType::SRV,
        RecordType::TXT,
        RecordType::PTR,
        RecordType::SOA,
        RecordType::NS,
        RecordType::ANY,
        RecordType::CNAME,
        RecordType::AXFR,
        RecordType::MX,
        RecordType::Unknown(65280),
    ];
    for _ in 0..3_000 {
        let count = rng.random_range(0..8);
        let name: Vec<&str> = (0..count)
            .map(|_| labels[rng.random_range(0..labels.len())])
            .filter(|l| !l.is_empty())
            .collect();
        let name = format!("{}.", name.join("."));
        let Ok(parsed) = Name::from_ascii(&name) else {
            continue;
        };
        let mut m = Message::query();
        m.metadata.id = 4242;
        m.add_query(Query::query(
            parsed,
            types[rng.random_range(0..types.len())],
        ));
        if rng.random_bool(0.5) {
            let mut e = Edns::new();
            e.set_max_payload(rng.random_range(0..=u16::MAX));
            m.edns = Some(e);
        }
        let protocol = if rng.random_bool(0.5) {
            Protocol::Udp
        } else {
            Protocol::Tcp
        };
        let response = ask_message(&h, m, protocol).await;
        let bytes = response.to_vec().expect("every response encodes");
        if protocol == Protocol::Udp {
            assert!(bytes.len() <= 65_535, "{name}");
        }
    }

    // Valid queries with a few random bytes changed: most still decode, with strange names,
    // types, classes, flags, counts and EDNS options.
    let src: SocketAddr = "127.0.0.1:5353".parse().unwrap();
    let mut decoded = 0;
    for i in 0..20_000u64 {
        let kind = types[rng.random_range(0..types.len())];
        let mut bytes = query("v1.web.service.dc1.mesh.", kind, Some(1232))
            .to_vec()
            .unwrap();
        for _ in 0..rng.random_range(1..5) {
            let at = rng.random_range(0..bytes.len());
            bytes[at] = rng.random();
        }
        if rng.random_bool(0.2) {
            bytes.truncate(rng.random_range(12..bytes.len()));
        }
        if let Ok(request) = Request::from_bytes(bytes, src, Protocol::Udp) {
            decoded += 1;
            let mut answer_rng = StdRng::seed_from_u64(i);
            let response = h.respond(&request, &mut answer_rng, 1_700_000_000).await;
            response.to_vec().expect("every response encodes");
        }
    }
    assert!(decoded > 1_000, "mutated packets decode: {decoded}");
}

fn web_turns(lookup: &MemoryLookup, node: &str, status: Status) {
    lookup.edit_instances("dc1", |instances| {
        for i in instances.iter_mut().filter(|i| i.node.name == node) {
            i.checks = vec![catalog::HealthCheck::new(
                node,
                "serfHealth",
                "Serf",
                status,
            )];
        }
    });
}

#[tokio::test]
async fn service_records_are_built_once_per_set_of_instances() {
    let lookup = catalog();
    let h = handler(|_| {}, lookup.clone());
    let key = cache::Key::new(
        &Name::from_ascii("web.service.mesh.").unwrap(),
        RecordType::A,
    )
    .unwrap();
    let web = ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"];
    assert_eq!(
        rdata(&ask(&h, "web.service.mesh.", RecordType::A).await),
        web
    );
    let built = h.cache.get(&key).expect("cached");
    assert_eq!(
        rdata(&ask(&h, "web.service.mesh.", RecordType::A).await),
        web
    );
    let reused = h.cache.get(&key).expect("cached");
    assert!(
        Arc::ptr_eq(&built, &reused),
        "the second answer reuses the records"
    );
    // Another spelling or type is another entry; every answer is named as asked.
    let m = ask(&h, "Web.Service.Mesh.", RecordType::A).await;
    assert!(m
        .answers
        .iter()
        .all(|r| r.name.to_ascii() == "Web.Service.Mesh."));
    ask(&h, "web.service.mesh.", RecordType::SRV).await;
    assert_eq!(h.cache.len(), 3);

    // An instance that turns critical drops out of the very next answer.
    web_turns(&lookup, "web-2", Status::Critical);
    let m = ask(&h, "web.service.mesh.", RecordType::A).await;
    assert_eq!(rdata(&m), ["10.0.0.1", "10.0.0.3", "10.0.0.4"]);
    let rebuilt = h.cache.get(&key).expect("cached");
    assert!(!Arc::ptr_eq(&built, &rebuilt));
    let m = ask(&h, "_web._tcp.service.mesh.", RecordType::SRV).await;
    assert_eq!(m.answers.len(), 3);
    assert!(m
        .additionals
        .iter()
        .all(|r| !r.name.to_ascii().starts_with("web-2.")));
    // Every instance critical: NXDOMAIN with the SOA of this question's time.
    for node in ["web-1", "web-3", "web-4"] {
        web_turns(&lookup, node, Status::Critical);
    }
    let m = ask(&h, "web.service.mesh.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert!(soa_only(&m));
    // And back.
    web_turns(&lookup, "web-2", Status::Passing);
    let m = ask(&h, "web.service.mesh.", RecordType::A).await;
    assert_eq!(rdata(&m), ["10.0.0.2"]);
    // A lookup failure is SERVFAIL, not the cached answer.
    lookup.set_failing(true);
    let m = ask(&h, "web.service.mesh.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
}

#[tokio::test]
async fn cached_records_are_shuffled_and_cut_per_question() {
    let h = handler(|_| {}, catalog());
    let src: SocketAddr = "127.0.0.1:5353".parse().unwrap();
    let ask_seeded = |m: Message, protocol: Protocol, seed: u64| {
        let request = Request::from_bytes(m.to_vec().unwrap(), src, protocol).unwrap();
        let h = &h;
        async move {
            let mut rng = StdRng::seed_from_u64(seed);
            h.respond(&request, &mut rng, 1_700_000_000).await
        }
    };
    let mut orders = std::collections::HashSet::new();
    for seed in 0..20 {
        let m = ask_seeded(
            query("many.service.mesh.", RecordType::A, None),
            Protocol::Tcp,
            seed,
        )
        .await;
        assert_eq!(m.answers.len(), 100);
        assert!(!m.metadata.truncation);
        orders.insert(
            m.answers
                .iter()
                .map(|r| r.data.to_string())
                .collect::<Vec<_>>(),
        );
    }
    assert_eq!(orders.len(), 20, "every question gets its own order");

    // Over UDP, the cached records are cut as fresh ones are, with TC, every time.
    let mut firsts = std::collections::HashSet::new();
    for seed in 0..20 {
        let m = ask_seeded(
            query("many.service.mesh.", RecordType::SRV, None),
            Protocol::Udp,
            seed,
        )
        .await;
        assert!(m.metadata.truncation);
        assert!(fit::encoded_len(&m) <= 512);
        assert_eq!(m.additionals.len(), m.answers.len());
        firsts.insert(m.answers[0].data.to_string());
        let m = ask_seeded(
            query("web.service.mesh.", RecordType::A, Some(1232)),
            Protocol::Udp,
            seed,
        )
        .await;
        assert_eq!((m.answers.len(), m.metadata.truncation), (4, false));
        assert_eq!(m.edns.as_ref().map(Edns::max_payload), Some(1232));
    }
    assert!(
        firsts.len() > 10,
        "cut from a fresh order: {}",
        firsts.len()
    );
}
