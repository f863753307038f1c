use std::net::Ipv4Addr;
use std::str::FromStr;

use hickory_proto::op::{Edns, MessageType, OpCode, Query};
use hickory_proto::rr::rdata::{A, SRV};
use hickory_proto::rr::RecordType;

use super::*;

fn name(s: &str) -> Name {
    Name::from_str(s).unwrap()
}

fn message(qname: &str, qtype: RecordType, edns: Option<u16>) -> Message {
    let mut m = Message::new(1, MessageType::Response, OpCode::Query);
    m.queries.push(Query::query(name(qname), qtype));
    if let Some(payload) = edns {
        let mut e = Edns::new();
        e.set_max_payload(payload);
        m.edns = Some(e);
    }
    m
}

fn a_records(m: &mut Message, n: u8) {
    for i in 0..n {
        let rdata = RData::A(A(Ipv4Addr::new(10, 0, 0, i)));
        m.answers
            .push(Record::from_rdata(name("web.service.mesh."), 0, rdata));
    }
}

/// `n` SRV answers, each with its target's A record (in reverse order, to check that the
/// additional section is filtered by name, not by position).
fn srv_records(m: &mut Message, n: u8) {
    for i in 0..n {
        let target = name(&format!("node-{i}.node.dc1.mesh."));
        let srv = SRV::new(1, 1, 8080, target.clone());
        m.answers.push(Record::from_rdata(
            name("web.service.mesh."),
            0,
            RData::SRV(srv),
        ));
        let a = RData::A(A(Ipv4Addr::new(10, 0, 0, i)));
        m.additionals.insert(0, Record::from_rdata(target, 0, a));
    }
}

#[test]
fn limits_by_transport() {
    #[track_caller]
    fn check(
        transport: Transport,
        edns: Option<u16>,
        answer_limit: usize,
        bytes: usize,
        answers: usize,
    ) {
        let expected = Limits {
            max_bytes: bytes,
            max_answers: answers,
        };
        assert_eq!(Limits::new(transport, edns, answer_limit), expected);
    }
    check(Transport::Udp, None, 3, 512, 3);
    check(Transport::Udp, None, 20, 512, 8);
    check(Transport::Udp, None, 0, 512, usize::MAX);
    check(Transport::Udp, Some(100), 3, 512, 3);
    check(Transport::Udp, Some(1232), 3, 1232, usize::MAX);
    check(Transport::Udp, Some(4096), 3, 4096, usize::MAX);
    check(Transport::Udp, Some(u16::MAX), 3, 65467, usize::MAX);
    check(Transport::Tcp, None, 3, 65535, usize::MAX);
    check(Transport::Tcp, Some(1232), 3, 65535, usize::MAX);
}

#[test]
fn a_small_answer_is_left_alone() {
    let mut m = message("web.service.mesh.", RecordType::A, None);
    a_records(&mut m, 3);
    let before = m.clone();
    assert!(!fit(&mut m, Limits::new(Transport::Udp, None, 3)));
    assert_eq!(m, before);
}

#[test]
fn udp_without_edns_gets_the_answer_limit() {
    let mut m = message("web.service.mesh.", RecordType::A, None);
    a_records(&mut m, 100);
    assert!(fit(&mut m, Limits::new(Transport::Udp, None, 3)));
    assert_eq!(m.answers.len(), 3);
    assert!(encoded_len(&m) <= 512);
}

#[test]
fn udp_without_edns_fills_512_bytes_without_a_count_limit() {
    let mut m = message("web.service.mesh.", RecordType::A, None);
    a_records(&mut m, 100);
    assert!(fit(&mut m, Limits::new(Transport::Udp, None, 0)));
    let len = encoded_len(&m);
    assert!(len <= 512, "{len}");
    // One more record would not have fit (a compressed A record is 16 bytes).
    assert!(len + 16 > 512, "{len}");
    assert!(m.answers.len() > 20, "{}", m.answers.len());
}

#[test]
fn edns_buffer_size_is_honoured() {
    let mut m = message("web.service.mesh.", RecordType::A, Some(1232));
    a_records(&mut m, 100);
    assert!(fit(&mut m, Limits::new(Transport::Udp, Some(1232), 3)));
    let len = encoded_len(&m);
    assert!(len <= 1232 && len + 16 > 1232, "{len}");

    let mut m = message("web.service.mesh.", RecordType::A, Some(4096));
    a_records(&mut m, 100);
    assert!(!fit(&mut m, Limits::new(Transport::Udp, Some(4096), 3)));
    assert_eq!(m.answers.len(), 100);
}

#[test]
fn tcp_gets_everything_that_fits_64k() {
    let mut m = message("web.service.mesh.", RecordType::A, None);
    a_records(&mut m, 200);
    assert!(!fit(&mut m, Limits::new(Transport::Tcp, None, 3)));
    assert_eq!(m.answers.len(), 200);
}

#[test]
fn additionals_follow_the_srv_answers_kept() {
    let mut m = message("web.service.mesh.", RecordType::SRV, None);
    srv_records(&mut m, 50);
    assert!(fit(&mut m, Limits::new(Transport::Udp, None, 0)));
    assert!(encoded_len(&m) <= 512);
    assert!(!m.answers.is_empty());
    let targets: Vec<Name> = m
        .answers
        .iter()
        .map(|r| match &r.data {
            RData::SRV(srv) => srv.target.clone(),
            other => panic!("{other}"),
        })
        .collect();
    let mut glue: Vec<Name> = m.additionals.iter().map(|r| r.name.clone()).collect();
    glue.sort();
    let mut expected = targets.clone();
    expected.sort();
    assert_eq!(
        glue, expected,
        "one A record for each kept target, no others"
    );
}

#[test]
fn authority_that_cannot_fit_is_dropped() {
    let mut m = message("web.service.mesh.", RecordType::A, None);
    for i in 0..100u8 {
        let rdata = RData::A(A(Ipv4Addr::new(10, 0, 1, i)));
        m.authorities
            .push(Record::from_rdata(name(&format!("n{i}.mesh.")), 0, rdata));
    }
    a_records(&mut m, 1);
    assert!(fit(&mut m, Limits::new(Transport::Udp, None, 3)));
    assert!(m.answers.is_empty() && m.authorities.is_empty());
    assert!(encoded_len(&m) <= 512);
}

/// The size without compression bounds the real size from above, so a message whose bound
/// fits is never cut (and never encoded to find out); with no records it is exact.
#[test]
fn the_uncompressed_size_bounds_the_encoded_size() {
    use hickory_proto::rr::rdata::{AAAA, CNAME, NS, PTR, SOA, TXT};
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    for edns in [None, Some(1232)] {
        let m = message("web.service.mesh.", RecordType::A, edns);
        assert_eq!(upper_len(&m), Some(encoded_len(&m)), "{edns:?}");
    }

    let mut rng = StdRng::seed_from_u64(0x6669);
    let names = [
        "web.service.mesh.",
        "WEB.Service.mesh.",
        "node-1.node.dc1.mesh.",
        "0a000001.addr.dc1.mesh.",
        "mesh.",
        "db.example.com.",
        ".",
    ];
    let pick = |rng: &mut StdRng| name(names[rng.random_range(0..names.len())]);
    for _ in 0..2_000 {
        let mut m = message("web.service.mesh.", RecordType::ANY, Some(4096));
        for _ in 0..rng.random_range(0..12) {
            let owner = pick(&mut rng);
            let data = match rng.random_range(0..8) {
                0 => RData::A(A(Ipv4Addr::new(10, 0, 0, rng.random()))),
                1 => RData::AAAA(AAAA("2001:db8::1".parse().unwrap())),
                2 => RData::SRV(SRV::new(1, 1, 80, pick(&mut rng))),
                3 => RData::CNAME(CNAME(pick(&mut rng))),
                4 => RData::NS(NS(pick(&mut rng))),
                5 => RData::PTR(PTR(pick(&mut rng))),
                6 => RData::TXT(TXT::new(vec!["rack=r1".into(), String::new()])),
                _ => RData::SOA(SOA::new(pick(&mut rng), pick(&mut rng), 1, 2, 3, 4, 5)),
            };
            let record = Record::from_rdata(owner, 0, data);
            match rng.random_range(0..3) {
                0 => m.answers.push(record),
                1 => m.authorities.push(record),
                _ => m.additionals.push(record),
            }
        }
        let bound = upper_len(&m).expect("every record here encodes");
        let len = encoded_len(&m);
        assert!(len <= bound, "{len} > {bound}: {m:?}");
        for record in m.answers.iter().chain(&m.authorities).chain(&m.additionals) {
            assert_eq!(record_len(record), uncompressed_len(record), "{record}");
        }
    }
}

#[test]
fn a_message_over_its_bound_is_measured_before_it_is_cut() {
    // Header and question: 34 bytes; an A record: 32 bytes uncompressed, 16 compressed.
    // 31 records: 1026 bytes uncompressed, 530 compressed; neither fits 512.
    let mut m = message("web.service.mesh.", RecordType::A, None);
    a_records(&mut m, 31);
    assert!(upper_len(&m).unwrap() > 512 && encoded_len(&m) > 512);
    assert!(fit(&mut m, Limits::new(Transport::Udp, None, 0)));
    // 29: over the bound (962), but 498 bytes compressed: not cut.
    let mut m = message("web.service.mesh.", RecordType::A, None);
    a_records(&mut m, 29);
    let len = encoded_len(&m);
    assert!(upper_len(&m).unwrap() > 512 && len <= 512, "{len}");
    assert!(!fit(&mut m, Limits::new(Transport::Udp, None, 0)));
    assert_eq!(m.answers.len(), 29);
}
