use std::net::Ipv4Addr;

use hickory_proto::rr::rdata::{A, SRV};
use hickory_proto::rr::{RData, Record};

use super::*;
use crate::answer::Unit;

fn name(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

fn key(s: &str, qtype: RecordType) -> Key {
    Key::new(&name(s), qtype).expect("a valid name")
}

fn entry(records: ServiceRecords) -> Arc<CachedService> {
    let target = Target {
        dc: "dc1".into(),
        service: "web".into(),
        connect: false,
    };
    Arc::new(CachedService::new(target, 0, Arc::default(), records))
}

#[test]
fn keys_keep_the_case_and_the_type() {
    let cache = ServiceCache::default();
    let first = entry(ServiceRecords::default());
    cache.insert(&key("web.service.mesh.", RecordType::A), first.clone());
    let found = cache.get(&key("web.service.mesh.", RecordType::A));
    assert!(found.is_some_and(|found| Arc::ptr_eq(&found, &first)));
    // Answers are named as asked: another spelling is another entry.
    assert!(cache
        .get(&key("WEB.service.mesh.", RecordType::A))
        .is_none());
    assert!(cache
        .get(&key("web.service.mesh.", RecordType::SRV))
        .is_none());
    // Labels are length-prefixed: moving a dot makes another key.
    assert!(cache
        .get(&key("we.bservice.mesh.", RecordType::A))
        .is_none());
    // Inserting again replaces.
    let second = entry(ServiceRecords::default());
    cache.insert(&key("web.service.mesh.", RecordType::A), second.clone());
    let found = cache.get(&key("web.service.mesh.", RecordType::A));
    assert!(found.is_some_and(|found| Arc::ptr_eq(&found, &second)));
    assert_eq!(cache.len(), 1);
}

#[test]
fn a_full_cache_starts_over() {
    let cache = ServiceCache::default();
    for i in 0..CAPACITY {
        cache.insert(
            &key(&format!("s{i}.service.mesh."), RecordType::A),
            entry(ServiceRecords::default()),
        );
    }
    assert_eq!(cache.len(), CAPACITY);
    // Replacing an entry keeps the others.
    cache.insert(
        &key("s0.service.mesh.", RecordType::A),
        entry(ServiceRecords::default()),
    );
    assert_eq!(cache.len(), CAPACITY);
    cache.insert(
        &key("one-more.service.mesh.", RecordType::A),
        entry(ServiceRecords::default()),
    );
    assert_eq!(cache.len(), 1);
    assert!(cache
        .get(&key("one-more.service.mesh.", RecordType::A))
        .is_some());
}

#[test]
fn records_len_adds_the_picked_units_and_the_tail() {
    let a = |i: u8| {
        Record::from_rdata(
            name("web.service.mesh."),
            0,
            RData::A(A(Ipv4Addr::new(10, 0, 0, i))),
        )
    };
    let srv = Record::from_rdata(
        name("web.service.mesh."),
        0,
        RData::SRV(SRV::new(1, 1, 80, name("n1.node.dc1.mesh."))),
    );
    let records = ServiceRecords {
        nxdomain: false,
        units: vec![
            Unit {
                answer: a(1),
                additionals: Vec::new(),
            },
            Unit {
                answer: srv.clone(),
                additionals: vec![Record::from_rdata(
                    name("n1.node.dc1.mesh."),
                    0,
                    RData::A(A(Ipv4Addr::new(10, 0, 0, 1))),
                )],
            },
        ],
        take: 2,
        tail: vec![a(9)],
    };
    let entry = entry(records);
    // "web.service.mesh." is 18 bytes uncompressed; an A record adds 10 + 4.
    let a_len = 18 + 14;
    // The SRV record: 10 + 6 + 18 ("n1.node.dc1.mesh."), its target's A: 18 + 14.
    let srv_len = 18 + 16 + 18 + 32;
    assert_eq!(entry.records_len(&[]), Some(a_len));
    assert_eq!(entry.records_len(&[0]), Some(2 * a_len));
    assert_eq!(entry.records_len(&[1, 0]), Some(2 * a_len + srv_len));
}
