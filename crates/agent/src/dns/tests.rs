use std::sync::Arc;

use catalog::{CatalogOp, HealthCheck, Registration, Service, Status};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{RData, RecordType};
use test_support::dns::{question, tcp, udp};

use super::*;
use crate::testing::MemoryCatalog;

async fn register(client: &MemoryCatalog, node: &str, addr: &str, status: Status) {
    let mut check = HealthCheck::new(node, "web-check", "web check", status);
    check.service_id = "web".into();
    let reg = Registration {
        node: crate::identity::node_record(node, "", addr, "dc1"),
        skip_node_update: false,
        service: Some(Service {
            id: "web".into(),
            service: "web".into(),
            port: 8080,
            ..Service::default()
        }),
        checks: vec![check],
    };
    client
        .apply(CatalogOp::Register(Box::new(reg)))
        .await
        .unwrap();
}

fn addresses(answer: &hickory_proto::op::Message) -> Vec<String> {
    let mut found: Vec<String> = answer
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0.to_string()),
            _ => None,
        })
        .collect();
    found.sort();
    found
}

async fn server(client: Arc<MemoryCatalog>) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    server_with(client, DnsAcl::default()).await
}

async fn server_with(
    client: Arc<MemoryCatalog>,
    acl: DnsAcl,
) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let mut config = test_config();
    config.client_addr = "127.0.0.1".parse().unwrap();
    config.ports.dns = 0;
    let server = bind(&config, client, acl)
        .await
        .unwrap()
        .expect("DNS enabled");
    let addr = server.local_addr();
    let task = tokio::spawn(async move {
        let _ = server.run(std::future::pending()).await;
    });
    (addr, task)
}

#[tokio::test]
async fn services_and_nodes_answer_from_the_view() {
    let client = Arc::new(MemoryCatalog::default());
    register(&client, "a", "10.0.0.1", Status::Passing).await;
    register(&client, "b", "10.0.0.2", Status::Critical).await;
    let (addr, task) = server(client.clone()).await;

    let answer = udp(
        addr,
        &question("web.service.mesh.", RecordType::A, None).unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(
        addresses(&answer),
        ["10.0.0.1"],
        "the critical instance is left out"
    );

    // A change reaches the next answer through the watch, not a new read.
    register(&client, "b", "10.0.0.2", Status::Passing).await;
    let mut seen = Vec::new();
    for _ in 0..200 {
        let q = question("web.service.mesh.", RecordType::A, None).unwrap();
        seen = addresses(&tcp(addr, &q).await.unwrap());
        if seen.len() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(seen, ["10.0.0.1", "10.0.0.2"]);

    let node = udp(
        addr,
        &question("a.node.mesh.", RecordType::A, None).unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(addresses(&node), ["10.0.0.1"]);
    let unknown = udp(
        addr,
        &question("nope.service.mesh.", RecordType::A, None).unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(unknown.metadata.response_code, ResponseCode::NXDomain);
    let other_dc = udp(
        addr,
        &question("web.service.dc9.mesh.", RecordType::A, None).unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(other_dc.metadata.response_code, ResponseCode::NXDomain);
    let ptr = udp(
        addr,
        &question("2.0.0.10.in-addr.arpa.", RecordType::PTR, None).unwrap(),
    )
    .await
    .unwrap();
    assert!(
        matches!(&ptr.answers[0].data, RData::PTR(name) if name.to_string() == "b.node.dc1.mesh."),
        "{ptr:?}"
    );
    task.abort();
}

#[test]
fn settings_follow_the_configuration() {
    let mut config = test_config();
    config.dns.recursors = vec!["10.0.0.53".into()];
    config.dns.recursor_strategy = config::RecursorStrategy::Random;
    let settings = settings(&config).unwrap().unwrap();
    assert_eq!(settings.bind, "127.0.0.1:8600".parse().unwrap());
    assert_eq!(settings.recursors, ["10.0.0.53:53".parse().unwrap()]);
    assert!(settings.recursor_random);
    assert!(settings.enable_truncate);
    config.ports.dns = -1;
    assert!(settings_disabled(&config));
}

/// The default configuration, as an agent without config files has it.
fn test_config() -> config::Config {
    config::load(&[], &[], &config::Overrides::default()).unwrap()
}

fn settings_disabled(config: &config::Config) -> bool {
    settings(config).unwrap().is_none()
}

/// The DNS server keeps the records it built for a service while the view's instances stay
/// the same; when the watch brings a change, the next answer has it.
#[tokio::test]
async fn an_instance_that_turns_critical_drops_out_of_the_next_answers() {
    let client = Arc::new(MemoryCatalog::default());
    register(&client, "a", "10.0.0.1", Status::Passing).await;
    register(&client, "b", "10.0.0.2", Status::Passing).await;
    let (addr, task) = server(client.clone()).await;
    let ask = |name: &str, kind: RecordType| question(name, kind, Some(1232)).unwrap();

    for _ in 0..3 {
        let answer = udp(addr, &ask("web.service.mesh.", RecordType::A))
            .await
            .unwrap();
        assert_eq!(addresses(&answer), ["10.0.0.1", "10.0.0.2"]);
        let answer = udp(addr, &ask("web.service.mesh.", RecordType::SRV))
            .await
            .unwrap();
        assert_eq!(answer.answers.len(), 2);
    }

    register(&client, "b", "10.0.0.2", Status::Critical).await;
    // The watch pushes the change; from the first answer that has it on, b is gone.
    let mut changed = false;
    for _ in 0..200 {
        let answer = udp(addr, &ask("web.service.mesh.", RecordType::A))
            .await
            .unwrap();
        if addresses(&answer) == ["10.0.0.1"] {
            changed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(changed, "the critical instance never left the answer");
    for _ in 0..3 {
        let answer = udp(addr, &ask("web.service.mesh.", RecordType::A))
            .await
            .unwrap();
        assert_eq!(addresses(&answer), ["10.0.0.1"]);
        let answer = udp(addr, &ask("web.service.mesh.", RecordType::SRV))
            .await
            .unwrap();
        assert_eq!(answer.answers.len(), 1);
        assert_eq!(
            answer.additionals[0].name.to_ascii(),
            "a.node.dc1.mesh.",
            "{answer:?}"
        );
    }
    task.abort();
}

#[tokio::test]
async fn answers_keep_what_the_dns_token_may_read() {
    let client = Arc::new(MemoryCatalog::default());
    register(&client, "a", "10.0.0.1", Status::Passing).await;
    register(&client, "b", "10.0.0.2", Status::Passing).await;
    let acl = DnsAcl::default();
    let rules = acl::Rules::parse(
        r#"
service "web" { policy = "read" }
node "a" { policy = "read" }
"#,
    )
    .unwrap();
    acl.set(Some(Arc::new(acl::Authorizer::new(
        [&rules],
        acl::DefaultPolicy::Deny,
    ))));
    let (addr, task) = server_with(client, acl.clone()).await;
    let ask = |name: &str| question(name, RecordType::A, None).unwrap();

    let web = udp(addr, &ask("web.service.mesh.")).await.unwrap();
    assert_eq!(addresses(&web), ["10.0.0.1"], "node b may not be read");
    let a = udp(addr, &ask("a.node.mesh.")).await.unwrap();
    assert_eq!(addresses(&a), ["10.0.0.1"]);
    let b = udp(addr, &ask("b.node.mesh.")).await.unwrap();
    assert_eq!(b.metadata.response_code, ResponseCode::NXDomain);

    // A token that may read nothing sees no service at all.
    acl.set(Some(Arc::new(acl::Authorizer::default_only(
        acl::DefaultPolicy::Deny,
    ))));
    let web = udp(addr, &ask("web.service.mesh.")).await.unwrap();
    assert!(addresses(&web).is_empty(), "{web:?}");
    // ACLs off: everything again.
    acl.set(None);
    let web = udp(addr, &ask("web.service.mesh.")).await.unwrap();
    assert_eq!(addresses(&web), ["10.0.0.1", "10.0.0.2"]);
    task.abort();
}
