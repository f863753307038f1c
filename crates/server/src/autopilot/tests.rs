use std::time::{Duration, Instant};

use consensus::{AutopilotConfig, RaftServer, ServerNode};
use gossip::{Member, MemberStatus, Tags};

use super::*;

const DC: &str = "dc1";

fn raft(id: u64, voter: bool) -> RaftServer {
    RaftServer {
        raft_id: id,
        node: ServerNode::new(format!("10.0.0.{id}:8300"), format!("s{id}"), String::new()),
        leader: id == 1,
        voter,
    }
}

fn server(id: u64, status: MemberStatus, since: Instant) -> Member {
    let mut tags = Tags::new();
    tags.insert("role".into(), "consul".into());
    tags.insert("dc".into(), DC.into());
    tags.insert("port".into(), "8300".into());
    Member {
        name: format!("s{id}"),
        addr: format!("10.0.0.{id}:8301").parse().unwrap(),
        tags,
        status,
        incarnation: 1,
        status_since: since,
    }
}

struct Scene {
    now: Instant,
    config: AutopilotConfig,
}

impl Scene {
    fn new() -> Self {
        Scene {
            now: Instant::now() + Duration::from_secs(3600),
            config: AutopilotConfig::default(),
        }
    }

    /// A moment `secs` before now.
    fn ago(&self, secs: u64) -> Instant {
        self.now - Duration::from_secs(secs)
    }

    fn plan(&self, servers: &[RaftServer], members: &[Member]) -> Plan {
        plan(servers, members, &self.config, 1, DC, self.now)
    }
}

#[test]
fn a_server_failed_past_stabilization_is_removed() {
    let scene = Scene::new();
    let servers = [raft(1, true), raft(2, true), raft(3, true)];
    let alive = |id| server(id, MemberStatus::Alive, scene.ago(600));
    let just_failed = [
        alive(1),
        alive(2),
        server(3, MemberStatus::Failed, scene.ago(2)),
    ];
    assert_eq!(
        scene.plan(&servers, &just_failed),
        Plan::default(),
        "give it time"
    );
    let long_failed = [
        alive(1),
        alive(2),
        server(3, MemberStatus::Failed, scene.ago(11)),
    ];
    assert_eq!(
        scene.plan(&servers, &long_failed).remove,
        [(3, "s3".to_owned())]
    );
    let left = [
        alive(1),
        alive(2),
        server(3, MemberStatus::Left, scene.ago(0)),
    ];
    assert_eq!(
        scene.plan(&servers, &left).remove,
        [(3, "s3".to_owned())],
        "left: at once"
    );
}

#[test]
fn cleanup_off_keeps_failed_servers_but_not_left_ones() {
    let mut scene = Scene::new();
    scene.config.cleanup_dead_servers = false;
    let servers = [raft(1, true), raft(2, true), raft(3, true)];
    let alive = |id| server(id, MemberStatus::Alive, scene.ago(600));
    let failed = [
        alive(1),
        alive(2),
        server(3, MemberStatus::Failed, scene.ago(600)),
    ];
    assert!(scene.plan(&servers, &failed).remove.is_empty());
    let left = [
        alive(1),
        alive(2),
        server(3, MemberStatus::Left, scene.ago(600)),
    ];
    assert_eq!(scene.plan(&servers, &left).remove.len(), 1);
}

#[test]
fn never_half_the_voters_never_below_min_quorum_never_the_leader() {
    let mut scene = Scene::new();
    let servers: Vec<_> = (1..=5).map(|id| raft(id, true)).collect();
    let long_ago = scene.ago(600);
    let failed = |id| server(id, MemberStatus::Failed, long_ago);
    let alive = |id| server(id, MemberStatus::Alive, long_ago);

    let two_of_five = [alive(1), alive(2), alive(3), failed(4), failed(5)];
    assert_eq!(scene.plan(&servers, &two_of_five).remove.len(), 2);
    let three_of_five = [alive(1), alive(2), failed(3), failed(4), failed(5)];
    let plan = scene.plan(&servers, &three_of_five);
    assert!(plan.remove.is_empty());
    assert!(plan.kept.is_some_and(|why| why.contains("3 of 5")));

    scene.config.min_quorum = 4;
    let plan = scene.plan(&servers, &two_of_five);
    assert!(plan.remove.is_empty());
    assert!(plan.kept.is_some_and(|why| why.contains("min_quorum 4")));

    let me_failed = [
        server(1, MemberStatus::Failed, scene.ago(600)),
        alive(2),
        alive(3),
    ];
    assert!(scene.plan(&servers[..3], &me_failed).remove.is_empty());
}

#[test]
fn unknown_and_learner_servers_are_not_removed() {
    let scene = Scene::new();
    let servers = [raft(1, true), raft(2, true), raft(3, true), raft(4, false)];
    let members = [
        server(1, MemberStatus::Alive, scene.ago(600)),
        server(2, MemberStatus::Alive, scene.ago(600)),
        server(4, MemberStatus::Failed, scene.ago(600)),
    ];
    assert_eq!(
        scene.plan(&servers, &members),
        Plan::default(),
        "s3 not in gossip yet"
    );
}

#[test]
fn a_live_server_raft_does_not_know_is_added_once_stable() {
    let scene = Scene::new();
    let servers = [raft(1, true), raft(2, true)];
    let alive = |id, secs| server(id, MemberStatus::Alive, scene.ago(secs));
    let returning = [alive(1, 600), alive(2, 600), alive(3, 2)];
    assert!(
        scene.plan(&servers, &returning).add.is_empty(),
        "not stable yet"
    );
    let returning = [alive(1, 600), alive(2, 600), alive(3, 11)];
    assert_eq!(scene.plan(&servers, &returning).add, ["10.0.0.3:8300"]);

    let mut client = alive(4, 600);
    client.tags.insert("role".into(), "node".into());
    let mut elsewhere = alive(5, 600);
    elsewhere.tags.insert("dc".into(), "dc2".into());
    let failed = server(6, MemberStatus::Failed, scene.ago(600));
    let others = [alive(1, 600), alive(2, 600), client, elsewhere, failed];
    assert!(scene.plan(&servers, &others).add.is_empty());
}
