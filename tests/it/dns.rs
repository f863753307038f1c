//! DNS on real agents: a client agent answers `*.service.mesh` and `*.node.mesh` from its own
//! view of the catalog, drops instances whose checks fail, and cuts large UDP answers with TC
//! set so resolvers retry over TCP and see every instance.

use std::net::Ipv4Addr;
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, RecordType};
use serde_json::json;
use test_support::dns::{question, tcp, udp};
use test_support::{wait_until, ServerProcess};

const SOON: Duration = Duration::from_secs(20);

fn addresses(answer: &Message) -> Vec<String> {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_answer_dns_with_healthy_instances_and_truncate_right() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut server = ServerProcess::new(
        Ipv4Addr::new(127, 0, 0, 90),
        &dir.path().join("server"),
        vec!["-bootstrap".into()],
    )?;
    server.spawn()?;
    server.wait_for_leader().await?;
    let mut client = ServerProcess::client(
        Ipv4Addr::new(127, 0, 0, 91),
        &dir.path().join("client"),
        &[server.gossip_addr()],
    )?;
    client.spawn()?;
    client.wait_for_leader().await?;
    let http = server.http();

    // Twenty instances of web on twenty nodes, each with a TTL-style check we drive.
    for i in 1..=20 {
        let body = json!({
            "Node": format!("web-{i}"),
            "Address": format!("10.1.0.{i}"),
            "Service": {"Service": "web", "Port": 8080},
            "Check": {"CheckID": "web-ok", "Name": "web ok", "ServiceID": "web", "Status": "passing"},
        });
        let reply = http.put("/v1/catalog/register", body.to_string()).await?;
        assert_eq!(reply.body, "true", "{reply:?}");
    }
    let dns = client.dns_addr();
    let web = |edns| question("web.service.mesh.", RecordType::A, edns);

    // Over TCP every healthy instance; over UDP without EDNS at most three, with TC set.
    let all = tcp(dns, &web(None)?).await?;
    assert_eq!(all.metadata.response_code, ResponseCode::NoError);
    assert_eq!(addresses(&all).len(), 20);
    let cut = udp(dns, &web(None)?).await?;
    assert!(cut.metadata.truncation, "a cut UDP answer sets TC: {cut:?}");
    assert!(addresses(&cut).len() <= 3);
    let roomy = udp(dns, &web(Some(4096))?).await?;
    assert_eq!(addresses(&roomy).len(), 20, "EDNS 4096 fits them all");
    assert!(!roomy.metadata.truncation);

    // A failing check takes the instance out of the answers.
    let body = json!({
        "Node": "web-7", "Address": "10.1.0.7",
        "Check": {"CheckID": "web-ok", "Name": "web ok", "ServiceID": "web", "Status": "critical"},
    });
    http.put("/v1/catalog/register", body.to_string()).await?;
    wait_until("web-7 out of DNS", SOON, || async {
        tcp(dns, &web(None).expect("question"))
            .await
            .is_ok_and(|answer| {
                let found = addresses(&answer);
                found.len() == 19 && !found.contains(&"10.1.0.7".to_owned())
            })
    })
    .await?;

    // Nodes, SRV with their targets, and names that do not exist.
    let node = udp(dns, &question("web-3.node.mesh.", RecordType::A, None)?).await?;
    assert_eq!(addresses(&node), ["10.1.0.3"]);
    let srv = tcp(
        dns,
        &question("_web._tcp.service.mesh.", RecordType::SRV, None)?,
    )
    .await?;
    assert_eq!(srv.answers.len(), 19);
    assert!(srv.additionals.len() >= 19, "targets' addresses come along");
    let missing = udp(dns, &question("db.service.mesh.", RecordType::A, None)?).await?;
    assert_eq!(missing.metadata.response_code, ResponseCode::NXDomain);
    assert!(
        !missing.authorities.is_empty(),
        "SOA in the authority section"
    );
    // No recursors configured: other names are refused.
    let outside = udp(dns, &question("example.com.", RecordType::A, None)?).await?;
    assert_eq!(outside.metadata.response_code, ResponseCode::Refused);
    Ok(())
}
