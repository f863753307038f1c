use std::collections::BTreeMap;
use std::time::Duration;

use catalog::{HealthCheck, Node, Service, ServiceHealth, Weights};
use rand::rngs::StdRng;
use rand::SeedableRng;

use super::*;
use crate::config::DnsConfig;

pub(crate) fn node(name: &str, address: &str) -> Node {
    Node {
        name: name.into(),
        address: address.into(),
        datacenter: "dc1".into(),
        ..Node::default()
    }
}

pub(crate) fn instance(node_name: &str, node_addr: &str, service: &str) -> Instance {
    ServiceHealth {
        node: node(node_name, node_addr),
        service: Service {
            id: service.into(),
            service: service.into(),
            port: 8080,
            ..Service::default()
        },
        checks: Vec::new(),
    }
}

pub(crate) fn with_check(mut i: Instance, status: Status) -> Instance {
    let mut check = HealthCheck::new(&i.node.name, "c", "c", status);
    check.service_id = i.service.id.clone();
    i.checks.push(check);
    i
}

fn settings(f: impl FnOnce(&mut DnsConfig)) -> Settings {
    let mut config = DnsConfig::default();
    f(&mut config);
    Settings::new(&config).expect("valid config")
}

fn rng() -> StdRng {
    StdRng::seed_from_u64(7)
}

/// Renders records as zone-file lines, sorted, so cases compare as text.
pub(crate) fn show(records: &[Record]) -> Vec<String> {
    let mut lines: Vec<String> = records.iter().map(|r| r.to_string()).collect();
    lines.sort();
    lines
}

struct Case {
    settings: Settings,
    name: Name,
    qtype: RecordType,
}

impl Case {
    fn new(name: &str, qtype: RecordType) -> Case {
        Case {
            settings: settings(|_| {}),
            name: Name::from_ascii(name).unwrap(),
            qtype,
        }
    }

    fn with(mut self, f: impl FnOnce(&mut DnsConfig)) -> Case {
        self.settings = settings(f);
        self
    }

    fn question(&self) -> Question<'_> {
        Question {
            settings: &self.settings,
            name: &self.name,
            qtype: self.qtype,
            domain: &self.settings.domains[0],
            serial: 1_700_000_000,
        }
    }
}

const SOA: &str = "mesh. 0 IN SOA ns.mesh. hostmaster.mesh. 1700000000 3600 600 86400 0";

#[track_caller]
fn expect(
    answer: Answer,
    rcode: ResponseCode,
    answers: &[&str],
    authority: &[&str],
    additional: &[&str],
) {
    assert_eq!(answer.rcode, rcode, "{answer:?}");
    assert_eq!(show(&answer.answers), sorted(answers), "answers");
    assert_eq!(show(&answer.authorities), sorted(authority), "authority");
    assert_eq!(show(&answer.additionals), sorted(additional), "additional");
}

fn sorted(lines: &[&str]) -> Vec<String> {
    let mut lines: Vec<String> = lines.iter().map(|s| s.to_string()).collect();
    lines.sort();
    lines
}

#[test]
fn service_a_records_skip_critical_and_dedupe() {
    let case = Case::new("web.service.mesh.", RecordType::A);
    let instances = [
        instance("a", "10.0.0.1", "web"),
        with_check(instance("b", "10.0.0.2", "web"), Status::Warning),
        with_check(instance("c", "10.0.0.3", "web"), Status::Critical),
        // Same address as `a`: one record.
        instance("a2", "10.0.0.1", "web"),
        instance("v6", "2001:db8::1", "web"),
    ];
    let answer = case
        .question()
        .service("dc1", "web", None, Some(&instances[..]), &mut rng());
    expect(
        answer,
        ResponseCode::NoError,
        &[
            "web.service.mesh. 0 IN A 10.0.0.1",
            "web.service.mesh. 0 IN A 10.0.0.2",
        ],
        &[],
        &[],
    );
}

#[test]
fn only_passing_drops_warning_instances() {
    let case = Case::new("web.service.mesh.", RecordType::A).with(|c| c.only_passing = true);
    let instances = [
        instance("a", "10.0.0.1", "web"),
        with_check(instance("b", "10.0.0.2", "web"), Status::Warning),
    ];
    let answer = case
        .question()
        .service("dc1", "web", None, Some(&instances[..]), &mut rng());
    expect(
        answer,
        ResponseCode::NoError,
        &["web.service.mesh. 0 IN A 10.0.0.1"],
        &[],
        &[],
    );
}

#[test]
fn service_negative_answers() {
    let q = Case::new("web.service.mesh.", RecordType::A);
    // Unknown service or datacenter.
    expect(
        q.question().service("dc1", "web", None, None, &mut rng()),
        ResponseCode::NXDomain,
        &[],
        &[SOA],
        &[],
    );
    // Known, but every instance is critical.
    let all_critical = [with_check(
        instance("a", "10.0.0.1", "web"),
        Status::Critical,
    )];
    expect(
        q.question()
            .service("dc1", "web", None, Some(&all_critical[..]), &mut rng()),
        ResponseCode::NXDomain,
        &[],
        &[SOA],
        &[],
    );
    // Healthy, but no record of the asked type: NODATA.
    let v4 = vec![instance("a", "10.0.0.1", "web")];
    let q = Case::new("web.service.mesh.", RecordType::AAAA);
    expect(
        q.question()
            .service("dc1", "web", None, Some(&v4.clone()[..]), &mut rng()),
        ResponseCode::NoError,
        &[],
        &[SOA],
        &[],
    );
    let q = Case::new("web.service.mesh.", RecordType::MX);
    expect(
        q.question()
            .service("dc1", "web", None, Some(&v4[..]), &mut rng()),
        ResponseCode::NoError,
        &[],
        &[SOA],
        &[],
    );
}

#[test]
fn service_tags_filter_case_insensitively() {
    let mut tagged = instance("a", "10.0.0.1", "web");
    tagged.service.tags = vec!["Primary".into()];
    let untagged = instance("b", "10.0.0.2", "web");
    let q = Case::new("primary.web.service.mesh.", RecordType::A);
    let answer = q.question().service(
        "dc1",
        "web",
        Some("primary"),
        Some(&vec![tagged.clone(), untagged.clone()][..]),
        &mut rng(),
    );
    expect(
        answer,
        ResponseCode::NoError,
        &["primary.web.service.mesh. 0 IN A 10.0.0.1"],
        &[],
        &[],
    );
    let answer = q.question().service(
        "dc1",
        "web",
        Some("secondary"),
        Some(&vec![tagged, untagged][..]),
        &mut rng(),
    );
    assert_eq!(answer.rcode, ResponseCode::NXDomain);
}

#[test]
fn service_addresses_and_hostnames() {
    let mut own = instance("a", "10.0.0.1", "web");
    own.service.address = "10.1.1.1".into();
    let q = Case::new("web.service.mesh.", RecordType::ANY);
    let answer = q.question().service(
        "dc1",
        "web",
        None,
        Some(&vec![own, instance("v6", "2001:db8::1", "web")][..]),
        &mut rng(),
    );
    expect(
        answer,
        ResponseCode::NoError,
        &[
            "web.service.mesh. 0 IN A 10.1.1.1",
            "web.service.mesh. 0 IN AAAA 2001:db8::1",
        ],
        &[],
        &[],
    );
    let mut external = instance("ext", "10.0.0.9", "web");
    external.service.address = "db.example.com".into();
    let q = Case::new("web.service.mesh.", RecordType::A);
    let answer = q
        .question()
        .service("dc1", "web", None, Some(&vec![external][..]), &mut rng());
    expect(
        answer,
        ResponseCode::NoError,
        &["web.service.mesh. 0 IN CNAME db.example.com."],
        &[],
        &[],
    );
}

#[test]
fn service_ttl_and_a_record_limit() {
    let q = Case::new("web.service.mesh.", RecordType::A).with(|c| {
        c.service_ttl = BTreeMap::from([
            ("*".into(), Duration::from_secs(5)),
            ("web".into(), Duration::from_secs(10)),
        ]);
        c.a_record_limit = 2;
    });
    let instances: Vec<_> = (1..=5)
        .map(|i| instance(&format!("n{i}"), &format!("10.0.0.{i}"), "web"))
        .collect();
    let answer = q
        .question()
        .service("dc1", "web", None, Some(&instances[..]), &mut rng());
    assert_eq!(answer.answers.len(), 2);
    assert!(answer.answers.iter().all(|r| r.ttl == 10));
}

#[test]
fn srv_targets_and_additionals() {
    let q = Case::new("_web._tcp.service.mesh.", RecordType::SRV).with(|c| {
        c.service_ttl = BTreeMap::from([("*".into(), Duration::from_secs(5))]);
    });
    let mut on_node = instance("a", "10.0.0.1", "web");
    on_node.node.meta = BTreeMap::from([("rack".into(), "r1".into())]);
    on_node.service.weights = Weights {
        passing: 10,
        warning: 1,
    };
    let mut own_ip = with_check(instance("b", "10.0.0.2", "web"), Status::Warning);
    own_ip.service.address = "10.1.1.2".into();
    own_ip.service.port = 9090;
    own_ip.service.weights = Weights {
        passing: 10,
        warning: 3,
    };
    let mut hostname = instance("c", "10.0.0.3", "web");
    hostname.service.address = "db.example.com".into();
    let mut v6 = instance("d", "2001:db8::4", "web");
    v6.service.address = "2001:db8::5".into();
    let answer = q.question().service(
        "dc1",
        "web",
        None,
        Some(&vec![on_node, own_ip, hostname, v6][..]),
        &mut rng(),
    );
    expect(
        answer,
        ResponseCode::NoError,
        &[
            "_web._tcp.service.mesh. 5 IN SRV 1 10 8080 a.node.dc1.mesh.",
            "_web._tcp.service.mesh. 5 IN SRV 1 3 9090 0a010102.addr.dc1.mesh.",
            "_web._tcp.service.mesh. 5 IN SRV 1 1 8080 db.example.com.",
            "_web._tcp.service.mesh. 5 IN SRV 1 1 8080 20010db8000000000000000000000005.addr.dc1.mesh.",
        ],
        &[],
        &[
            "a.node.dc1.mesh. 5 IN A 10.0.0.1",
            "a.node.dc1.mesh. 5 IN TXT rack=r1",
            "0a010102.addr.dc1.mesh. 5 IN A 10.1.1.2",
            "20010db8000000000000000000000005.addr.dc1.mesh. 5 IN AAAA 2001:db8::5",
        ],
    );
}

#[test]
fn srv_in_another_datacenter_without_meta_txt() {
    let q = Case::new("web.service.dc2.mesh.", RecordType::SRV).with(|c| c.node_meta_txt = false);
    let mut i = instance("a", "10.0.0.1", "web");
    i.node.meta = BTreeMap::from([("rack".into(), "r1".into())]);
    // The same instance twice (same node, address and port) gives one record.
    let answer = q.question().service(
        "dc2",
        "web",
        None,
        Some(&vec![i.clone(), i][..]),
        &mut rng(),
    );
    expect(
        answer,
        ResponseCode::NoError,
        &["web.service.dc2.mesh. 0 IN SRV 1 1 8080 a.node.dc2.mesh."],
        &[],
        &["a.node.dc2.mesh. 0 IN A 10.0.0.1"],
    );
}

#[test]
fn node_records() {
    let mut n = node("foo", "10.0.0.1");
    n.meta = BTreeMap::from([
        ("rack".into(), "r1".into()),
        ("rfc1035-raw".into(), "v=spf1 -all".into()),
        ("a=b".into(), "x`y".into()),
    ]);
    let check = |qtype, rcode, answers: &[&str], authority: &[&str], additional: &[&str]| {
        let q = Case::new("foo.node.mesh.", qtype).with(|c| c.node_ttl = Duration::from_secs(30));
        expect(
            q.question().node(Some(n.clone())),
            rcode,
            answers,
            authority,
            additional,
        );
    };
    let txt = [
        "foo.node.mesh. 30 IN TXT rack=r1",
        "foo.node.mesh. 30 IN TXT v=spf1 -all",
        "foo.node.mesh. 30 IN TXT a`=b=x``y",
    ];
    check(
        RecordType::A,
        ResponseCode::NoError,
        &["foo.node.mesh. 30 IN A 10.0.0.1"],
        &[],
        &txt,
    );
    check(RecordType::TXT, ResponseCode::NoError, &txt, &[], &[]);
    let mut any = txt.to_vec();
    any.push("foo.node.mesh. 30 IN A 10.0.0.1");
    check(RecordType::ANY, ResponseCode::NoError, &any, &[], &[]);
    let soa = "mesh. 0 IN SOA ns.mesh. hostmaster.mesh. 1700000000 3600 600 86400 0";
    check(RecordType::AAAA, ResponseCode::NoError, &[], &[soa], &[]);
    check(RecordType::MX, ResponseCode::NoError, &[], &[soa], &[]);
    let q = Case::new("foo.node.mesh.", RecordType::A);
    expect(
        q.question().node(None),
        ResponseCode::NXDomain,
        &[],
        &[SOA],
        &[],
    );
    let q = Case::new("ext.node.mesh.", RecordType::A);
    expect(
        q.question().node(Some(node("ext", "host.example.com"))),
        ResponseCode::NoError,
        &["ext.node.mesh. 0 IN CNAME host.example.com."],
        &[],
        &[],
    );
    let q = Case::new("six.node.mesh.", RecordType::AAAA);
    expect(
        q.question().node(Some(node("six", "2001:db8::1"))),
        ResponseCode::NoError,
        &["six.node.mesh. 0 IN AAAA 2001:db8::1"],
        &[],
        &[],
    );
}

#[test]
fn rfc1464_quoting() {
    assert_eq!(rfc1464("key", "value"), "key=value");
    assert_eq!(rfc1464("a=b", "c=d"), "a`=b=c=d");
    assert_eq!(rfc1464("a`b", "c`d"), "a``b=c``d");
    assert_eq!(rfc1464("  k ", "v"), "` ` k` =v");
}

#[test]
fn addr_records() {
    let check = |name: &str, qtype, ip: &str, answers: &[&str], authority: &[&str]| {
        let q = Case::new(name, qtype);
        expect(
            q.question().addr(ip.parse().unwrap()),
            ResponseCode::NoError,
            answers,
            authority,
            &[],
        );
    };
    check(
        "7f000001.addr.mesh.",
        RecordType::A,
        "127.0.0.1",
        &["7f000001.addr.mesh. 0 IN A 127.0.0.1"],
        &[],
    );
    check(
        "7f000001.addr.mesh.",
        RecordType::AAAA,
        "127.0.0.1",
        &[],
        &[SOA],
    );
    let v6 = "20010db8000000000000000000000001.addr.mesh.";
    check(
        v6,
        RecordType::AAAA,
        "2001:db8::1",
        &[&format!("{v6} 0 IN AAAA 2001:db8::1")],
        &[],
    );
    check(
        v6,
        RecordType::ANY,
        "2001:db8::1",
        &[&format!("{v6} 0 IN AAAA 2001:db8::1")],
        &[],
    );
}

#[test]
fn apex_soa_and_ns() {
    let servers: Vec<Node> = (1..=5)
        .map(|i| node(&format!("s{i}"), &format!("10.0.1.{i}")))
        .collect();
    let q = Case::new("mesh.", RecordType::SOA).with(|c| {
        c.soa.refresh = 100;
        c.soa.min_ttl = 7;
    });
    let answer = q.question().apex("dc1", servers.clone(), &mut rng());
    assert_eq!(
        show(&answer.answers),
        ["mesh. 7 IN SOA ns.mesh. hostmaster.mesh. 1700000000 100 600 86400 7"]
    );
    assert_eq!(answer.authorities.len(), 3, "at most three servers");
    assert_eq!(answer.additionals.len(), 3, "glue for each");
    for (ns, glue) in answer.authorities.iter().zip(&answer.additionals) {
        let RData::NS(target) = &ns.data else {
            panic!("{ns}")
        };
        assert_eq!(&target.0, &glue.name);
        assert!(target.0.to_ascii().ends_with(".node.dc1.mesh."));
    }

    let q = Case::new("mesh.", RecordType::NS);
    let answer = q.question().apex("dc1", servers[..1].to_vec(), &mut rng());
    expect(
        answer,
        ResponseCode::NoError,
        &["mesh. 0 IN NS s1.node.dc1.mesh."],
        &[],
        &["s1.node.dc1.mesh. 0 IN A 10.0.1.1"],
    );

    let q = Case::new("mesh.", RecordType::A);
    expect(
        q.question().apex("dc1", servers, &mut rng()),
        ResponseCode::NoError,
        &[],
        &[SOA],
        &[],
    );
    let q = Case::new("mesh.", RecordType::NS);
    expect(
        q.question().apex("dc1", Vec::new(), &mut rng()),
        ResponseCode::NoError,
        &[],
        &[SOA],
        &[],
    );
}

#[test]
fn ptr_records() {
    let s = settings(|_| {});
    let name = Name::from_ascii("1.0.0.10.in-addr.arpa.").unwrap();
    let answer = ptr(
        &s,
        &name,
        RecordType::PTR,
        PtrTarget::Node(node("foo", "10.0.0.1")),
    );
    expect(
        answer,
        ResponseCode::NoError,
        &["1.0.0.10.in-addr.arpa. 0 IN PTR foo.node.dc1.mesh."],
        &[],
        &[],
    );
    let answer = ptr(&s, &name, RecordType::PTR, PtrTarget::Service("web".into()));
    expect(
        answer,
        ResponseCode::NoError,
        &["1.0.0.10.in-addr.arpa. 0 IN PTR web.service.mesh."],
        &[],
        &[],
    );
    let answer = ptr(&s, &name, RecordType::A, PtrTarget::Service("web".into()));
    expect(answer, ResponseCode::NoError, &[], &[], &[]);
}

#[test]
fn shuffle_is_per_query_and_seeded() {
    let q = Case::new("web.service.mesh.", RecordType::A);
    let instances: Vec<_> = (1..=10)
        .map(|i| instance(&format!("n{i}"), &format!("10.0.0.{i}"), "web"))
        .collect();
    let order = |seed: u64| -> Vec<String> {
        let mut rng = StdRng::seed_from_u64(seed);
        let answer =
            q.question()
                .service("dc1", "web", None, Some(&instances.clone()[..]), &mut rng);
        answer.answers.iter().map(|r| r.data.to_string()).collect()
    };
    assert_eq!(order(1), order(1), "the same seed gives the same order");
    let orders: HashSet<Vec<String>> = (0..20).map(order).collect();
    assert!(
        orders.len() > 15,
        "orders vary with the rng: {}",
        orders.len()
    );
    let mut sorted_first = order(1);
    sorted_first.sort();
    let mut all: Vec<String> = (1..=10).map(|i| format!("10.0.0.{i}")).collect();
    all.sort();
    assert_eq!(sorted_first, all, "a permutation of every instance");
}

#[test]
fn healthy_filter() {
    let instances = vec![
        instance("a", "10.0.0.1", "web"),
        with_check(instance("b", "10.0.0.2", "web"), Status::Warning),
        with_check(
            with_check(instance("c", "10.0.0.3", "web"), Status::Passing),
            Status::Critical,
        ),
    ];
    let names = |v: Vec<&Instance>| {
        v.into_iter()
            .map(|i| i.node.name.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(healthy(&instances, false)), ["a", "b"]);
    assert_eq!(names(healthy(&instances, true)), ["a"]);
}

#[test]
fn service_records_are_units_shuffled_per_question() {
    // Addresses: one unit per distinct address; the limit takes a random few of them.
    let q = Case::new("web.service.mesh.", RecordType::A).with(|c| c.a_record_limit = 2);
    let instances: Vec<_> = (1..=5)
        .map(|i| instance(&format!("n{i}"), &format!("10.0.0.{i}"), "web"))
        .chain([instance("n1-again", "10.0.0.1", "web")])
        .collect();
    let records = q
        .question()
        .service_records("dc1", "web", None, Some(&instances[..]));
    assert_eq!((records.units.len(), records.take), (5, 2));
    let picked: HashSet<Vec<u32>> = (0..30)
        .map(|seed| records.pick(&mut StdRng::seed_from_u64(seed)))
        .collect();
    assert!(picked.iter().all(|order| order.len() == 2));
    assert!(picked.len() > 10, "{picked:?}");

    // Host names: one CNAME, a different one from question to question.
    let hosts: Vec<_> = ["a.example.com", "b.example.com", "c.example.com"]
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let mut i = instance(&format!("h{i}"), "10.0.0.9", "web");
            i.service.address = (*host).into();
            i
        })
        .collect();
    let q = Case::new("web.service.mesh.", RecordType::A);
    let records = q
        .question()
        .service_records("dc1", "web", None, Some(&hosts[..]));
    let targets: HashSet<Vec<String>> = (0..30)
        .map(|seed| {
            let answer = records.answer(
                &q.question(),
                &records.pick(&mut StdRng::seed_from_u64(seed)),
            );
            show(&answer.answers)
        })
        .collect();
    assert_eq!(targets.len(), 3, "{targets:?}");
    assert!(targets.iter().all(|answers| answers.len() == 1));

    // SRV: two instances on one node share its address record, sent once whatever the order.
    let q = Case::new("web.service.mesh.", RecordType::SRV);
    let mut second = instance("a", "10.0.0.1", "web");
    second.service.port = 9090;
    let both = [instance("a", "10.0.0.1", "web"), second];
    let records = q
        .question()
        .service_records("dc1", "web", None, Some(&both[..]));
    assert_eq!(records.units.len(), 2);
    for order in [[0, 1], [1, 0]] {
        let answer = records.answer(&q.question(), &order);
        assert_eq!(answer.answers.len(), 2);
        assert_eq!(
            show(&answer.additionals),
            ["a.node.dc1.mesh. 0 IN A 10.0.0.1"]
        );
    }

    // Nothing healthy: NXDOMAIN, with the SOA built for the question.
    let critical = [with_check(
        instance("a", "10.0.0.1", "web"),
        Status::Critical,
    )];
    let records = q
        .question()
        .service_records("dc1", "web", None, Some(&critical[..]));
    assert!(records.nxdomain && !records.has_answers());
    expect(
        records.answer(&q.question(), &[]),
        ResponseCode::NXDomain,
        &[],
        &[SOA],
        &[],
    );
}
