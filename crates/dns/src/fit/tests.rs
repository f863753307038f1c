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
