//! Whole-pool behaviour in the simulator. Times are simulated; bounds are generous on purpose: these tests
//! check correctness, the numbers they print are for people.

use std::collections::BTreeSet;

use super::*;
use crate::keyring::{self, Keyring};
use crate::{MemberStatus, UserEvent};

/// `n` nodes that all joined through node 0 and see each other alive.
fn formed(n: usize, seed: u64, adjust: impl Fn(&mut Config)) -> Sim {
    let mut sim = Sim::new(seed);
    sim.add_nodes(n, adjust);
    for index in 1..n {
        sim.join(index, 0);
    }
    let took = sim.run_until(Duration::from_secs(60), Sim::converged);
    assert!(took.is_some(), "{n} nodes did not converge");
    sim
}

fn status_everywhere(sim: &Sim, observers: &[usize], name: &str) -> BTreeSet<Option<MemberStatus>> {
    observers
        .iter()
        .map(|&i| sim.gossip(i).member(name).map(|member| member.status))
        .collect()
}

fn all_see(sim: &Sim, observers: &[usize], name: &str, status: MemberStatus) -> bool {
    status_everywhere(sim, observers, name) == BTreeSet::from([Some(status)])
}

fn user_event(id: &str, name: &str) -> UserEvent {
    UserEvent {
        id: id.to_owned(),
        name: name.to_owned(),
        payload: b"payload".to_vec(),
        node_filter: String::new(),
        service_filter: String::new(),
        tag_filter: String::new(),
        ltime: 0,
    }
}

fn key(byte: u8) -> String {
    keyring::encode_key(&[byte; keyring::KEY_LEN])
}

#[test]
fn a_hundred_nodes_join_through_one_seed_and_detect_a_crash() {
    let report = run_scenario(100, 0.0, 7);
    eprintln!("N=100: {report:?}");
    let dissemination = report.dissemination_time.expect("the pool formed");
    let detection = report
        .detection_time
        .expect("the crash was detected everywhere");
    assert!(dissemination < Duration::from_secs(60), "{dissemination:?}");
    assert!(detection < Duration::from_secs(15), "{detection:?}");
    assert_eq!(report.false_failures, 0);
}

#[test]
fn ten_percent_loss_causes_no_false_failures() {
    let mut sim = Sim::new(11);
    sim.set_loss(0.10);
    sim.add_nodes(100, |_| {});
    for index in 1..100 {
        sim.join(index, 0);
    }
    let formed = sim.run_until(Duration::from_secs(120), Sim::converged);
    eprintln!("N=100 at 10% loss: formed in {formed:?}");
    assert!(formed.is_some());
    sim.run_for(Duration::from_secs(120));
    assert_eq!(sim.failures(), &[], "false failures at 10% loss");
    assert!(sim.converged());
    eprintln!(
        "N=100 at 10% loss: {:.0} bytes per node per second over {:?}",
        sim.bytes_sent() as f64 / 100.0 / sim.now().as_secs_f64(),
        sim.now()
    );
}

/// Once members know each other, headers name them by a hash and digests ride on pings: a quiet pool
/// sends its probes and acks (about thirty and twenty bytes) and a small roster now and then. Before,
/// every header carried two whole identities and a digest went out every second: about 830 bytes.
#[test]
fn a_quiet_pool_sends_little_more_than_its_probes() {
    let mut sim = formed(20, 18, |_| {});
    // Long enough for every node to have probed every other (19 members at 400 ms each).
    sim.run_for(Duration::from_secs(30));
    let before = sim.bytes_sent();
    let window = Duration::from_secs(120);
    sim.run_for(window);
    let per_node = (sim.bytes_sent() - before) as f64 / 20.0 / window.as_secs_f64();
    eprintln!("N=20, quiet: {per_node:.0} bytes per node per second");
    assert!(per_node < 180.0, "{per_node:.0} bytes per node per second");
    assert_eq!(sim.failures(), &[]);
}

#[test]
fn a_crash_is_detected_at_ten_percent_loss_too() {
    let mut sim = formed(30, 12, |_| {});
    sim.set_loss(0.10);
    sim.run_for(Duration::from_secs(5));
    sim.crash(7);
    let observers = sim.live_nodes();
    let took = sim.run_until(Duration::from_secs(30), |sim| {
        all_see(sim, &observers, "node-7", MemberStatus::Failed)
    });
    eprintln!("N=30 at 10% loss: crash detected everywhere in {took:?}");
    assert!(took.is_some());
    assert!(sim
        .failures()
        .iter()
        .all(|failure| failure.member == "node-7"));
}

#[test]
fn graceful_leave_is_left_everywhere_not_failed() {
    let mut sim = formed(10, 2, |_| {});
    let now = sim.instant();
    sim.act(4, |gossip, _| gossip.leave(now)).unwrap();
    let observers: Vec<usize> = (0..10).filter(|&i| i != 4).collect();
    let took = sim.run_until(Duration::from_secs(10), |sim| {
        all_see(sim, &observers, "node-4", MemberStatus::Left)
    });
    assert!(
        took.is_some(),
        "{:?}",
        status_everywhere(&sim, &observers, "node-4")
    );
    assert!(sim.gossip(4).has_left());
    assert_eq!(sim.failures(), &[], "a graceful leave is never a failure");
    // The node stays quiet and left.
    sim.run_for(Duration::from_secs(10));
    assert!(all_see(&sim, &observers, "node-4", MemberStatus::Left));
}

#[test]
fn force_leave_marks_a_failed_member_left_and_prune_removes_it() {
    let mut sim = formed(8, 3, |_| {});
    sim.crash(5);
    sim.crash(6);
    let observers = sim.live_nodes();
    let failed = |sim: &Sim| {
        all_see(sim, &observers, "node-5", MemberStatus::Failed)
            && all_see(sim, &observers, "node-6", MemberStatus::Failed)
    };
    assert!(sim.run_until(Duration::from_secs(20), failed).is_some());

    let now = sim.instant();
    sim.act(1, |gossip, _| gossip.force_leave("node-5", false, now))
        .unwrap();
    let left = |sim: &Sim| all_see(sim, &observers, "node-5", MemberStatus::Left);
    assert!(sim.run_until(Duration::from_secs(10), left).is_some());

    let now = sim.instant();
    sim.act(2, |gossip, _| gossip.force_leave("node-6", true, now))
        .unwrap();
    let pruned = |sim: &Sim| status_everywhere(sim, &observers, "node-6") == BTreeSet::from([None]);
    assert!(sim.run_until(Duration::from_secs(10), pruned).is_some());

    let now = sim.instant();
    let unknown = sim.act(0, |gossip, _| gossip.force_leave("node-99", false, now));
    assert!(matches!(unknown, Err(Error::UnknownMember(name)) if name == "node-99"));
}

#[test]
fn failed_and_left_members_are_reaped_after_their_timeouts() {
    let mut sim = formed(6, 4, |config| {
        config.reconnect_timeout = Duration::from_secs(60);
        config.tombstone_timeout = Duration::from_secs(30);
        config.reap_interval = Duration::from_secs(1);
    });
    sim.record_events(true);
    let now = sim.instant();
    sim.act(4, |gossip, _| gossip.leave(now)).unwrap();
    sim.crash(5);
    let observers = vec![0, 1, 2, 3];
    let settled = |sim: &Sim| {
        all_see(sim, &observers, "node-4", MemberStatus::Left)
            && all_see(sim, &observers, "node-5", MemberStatus::Failed)
    };
    assert!(sim.run_until(Duration::from_secs(20), settled).is_some());
    let settled_at = sim.now();

    let left_gone =
        |sim: &Sim| status_everywhere(sim, &observers, "node-4") == BTreeSet::from([None]);
    let took = sim
        .run_until(Duration::from_secs(60), left_gone)
        .expect("left member reaped");
    assert!(
        took + Duration::from_secs(3) >= Duration::from_secs(30),
        "reaped too early: {took:?}"
    );
    assert!(
        all_see(&sim, &observers, "node-5", MemberStatus::Failed),
        "failed members are kept longer"
    );

    let failed_gone =
        |sim: &Sim| status_everywhere(sim, &observers, "node-5") == BTreeSet::from([None]);
    assert!(sim
        .run_until(Duration::from_secs(60), failed_gone)
        .is_some());
    assert!(sim.now() - settled_at >= Duration::from_secs(55));

    let reaped: BTreeSet<&str> = sim
        .node(0)
        .events
        .iter()
        .filter_map(|(_, event)| match event {
            Event::MemberReaped(member) => Some(member.name.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(reaped, BTreeSet::from(["node-4", "node-5"]));
}

#[test]
fn tag_updates_reach_everyone_without_a_failure() {
    let mut sim = formed(20, 5, |_| {});
    sim.record_events(true);
    let mut tags = sim.gossip(3).local_member().tags.clone();
    tags.insert("role".into(), "consul".into());
    tags.insert("port".into(), "8300".into());
    let now = sim.instant();
    sim.act(3, |gossip, _| gossip.set_tags(tags.clone(), now))
        .unwrap();
    let everyone: Vec<usize> = (0..20).collect();
    let updated = |sim: &Sim| {
        everyone.iter().all(|&i| {
            sim.gossip(i)
                .member("node-3")
                .is_some_and(|m| m.tags == tags && m.status == MemberStatus::Alive)
        })
    };
    let took = sim.run_until(Duration::from_secs(10), updated);
    eprintln!("tag update reached 20 nodes in {took:?}");
    assert!(took.is_some());
    assert_eq!(sim.failures(), &[]);
    let updates = sim
        .node(0)
        .events
        .iter()
        .filter(|(_, e)| matches!(e, Event::MemberUpdate(m) if m.name == "node-3"));
    assert_eq!(updates.count(), 1);
}

#[test]
fn user_events_reach_every_member_once_with_increasing_ltime() {
    let mut sim = formed(30, 6, |_| {});
    sim.record_events(true);
    let mut fired = Vec::new();
    for (round, sender) in [0, 17, 29, 5].into_iter().enumerate() {
        let now = sim.instant();
        let event = user_event(&format!("event-{round}"), "deploy");
        fired.push(
            sim.act(sender, |gossip, _| gossip.fire_event(event, now))
                .unwrap(),
        );
        let id = format!("event-{round}");
        let delivered = |sim: &Sim| {
            (0..30).all(|i| {
                sim.node(i)
                    .events
                    .iter()
                    .any(|(_, e)| matches!(e, Event::User(u) if u.id == id))
            })
        };
        let took = sim.run_until(Duration::from_secs(10), delivered);
        eprintln!("user event from node {sender} reached 30 nodes in {took:?}");
        assert!(took.is_some());
    }
    sim.run_for(Duration::from_secs(5));
    let ltimes: Vec<u64> = fired.iter().map(|event| event.ltime).collect();
    assert!(
        ltimes.windows(2).all(|pair| pair[0] < pair[1]),
        "{ltimes:?}"
    );
    for i in 0..30 {
        let received: Vec<&UserEvent> = sim
            .node(i)
            .events
            .iter()
            .filter_map(|(_, e)| match e {
                Event::User(event) => Some(event),
                _ => None,
            })
            .collect();
        assert_eq!(received.len(), fired.len(), "node {i} got {received:?}");
        for event in &fired {
            assert!(received.contains(&event));
        }
    }
}

#[test]
fn queries_collect_one_response_per_member_then_finish() {
    let mut sim = formed(15, 8, |_| {});
    sim.record_events(true);
    sim.set_query_responder(Box::new(|index, query| {
        (query.name == "ping").then(|| format!("pong from {index}").into_bytes())
    }));
    let now = sim.instant();
    let id = sim
        .act(3, |gossip, _| {
            gossip.query("ping", b"?".to_vec(), Duration::from_secs(3), now)
        })
        .unwrap();
    sim.run_for(Duration::from_secs(4));
    let responders: BTreeSet<&str> = sim
        .node(3)
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::QueryResponse { id: got, from, .. } if *got == id => Some(from.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(responders.len(), 15, "{responders:?}");
    let done = sim
        .node(3)
        .events
        .iter()
        .filter(|(_, e)| *e == Event::QueryDone { id })
        .count();
    assert_eq!(done, 1);
    let asked = (0..15).filter(|&i| {
        sim.node(i)
            .events
            .iter()
            .any(|(_, e)| matches!(e, Event::Query(q) if q.id == id))
    });
    assert_eq!(asked.count(), 15);
}

#[test]
fn a_pause_shorter_than_the_suspicion_is_not_a_failure() {
    let mut sim = formed(10, 9, |_| {});
    let minimum = Config::new("x", node_addr(0)).suspicion_timeout(10);
    sim.pause(6);
    sim.run_for(minimum.mul_f64(0.8));
    sim.resume(6);
    sim.run_for(Duration::from_secs(10));
    assert_eq!(sim.failures(), &[]);
    assert!(sim.converged());
}

#[test]
fn a_long_pause_is_a_failure_and_the_node_rejoins_after() {
    let mut sim = formed(10, 10, |_| {});
    sim.pause(6);
    let observers: Vec<usize> = (0..10).filter(|&i| i != 6).collect();
    assert!(sim
        .run_until(Duration::from_secs(30), |sim| all_see(
            sim,
            &observers,
            "node-6",
            MemberStatus::Failed
        ))
        .is_some());
    sim.resume(6);
    let back = sim.run_until(Duration::from_secs(30), Sim::converged);
    eprintln!("paused node rejoined in {back:?}");
    assert!(back.is_some());
    assert!(
        sim.gossip(6).local_member().incarnation > 0,
        "it rejoined with a new incarnation"
    );
}

/// A node whose every outgoing datagram takes 1.5 s (longer than the suspicion minimum at this size) fails
/// its probes and suspects healthy members. With Lifeguard (awareness and confirmation-based suspicion) no
/// healthy member is declared failed; without it, the slow node accuses them.
#[test]
fn a_slow_node_does_not_take_healthy_members_down() {
    let run = |lifeguard: bool| {
        let mut sim = formed(10, 13, |config| {
            if !lifeguard {
                config.awareness_max = 0;
                config.suspicion_max_mult = 1;
            }
        });
        sim.set_outbound_delay(9, Duration::from_millis(1500));
        sim.run_for(Duration::from_secs(60));
        let healthy_failures = sim
            .failures()
            .iter()
            .filter(|failure| failure.member != "node-9")
            .count();
        (healthy_failures, sim.gossip(9).health_score())
    };
    let (with, score) = run(true);
    let (without, _) = run(false);
    eprintln!(
        "slow node: {with} false failures with Lifeguard (its score {score}), {without} without"
    );
    assert_eq!(with, 0);
    assert!(score > 0, "the slow node noticed it is slow");
    assert!(without > 0, "the scenario must be hard enough to matter");
}

#[test]
fn a_healed_partition_merges() {
    let mut sim = formed(10, 14, |config| {
        config.reconnect_interval = Duration::from_secs(2)
    });
    sim.partition(&[&[0, 1, 2, 3, 4]]);
    let split = |sim: &Sim| {
        (0..5).all(|i| {
            (5..10).all(|j| {
                sim.gossip(i)
                    .member(&format!("node-{j}"))
                    .is_some_and(|m| m.status == MemberStatus::Failed)
            })
        })
    };
    assert!(sim.run_until(Duration::from_secs(30), split).is_some());
    sim.heal();
    let merged = sim.run_until(Duration::from_secs(60), Sim::converged);
    eprintln!("partition merged in {merged:?} after healing");
    assert!(merged.is_some());
}

#[test]
fn a_restarted_node_reclaims_its_name() {
    let mut sim = formed(5, 15, |_| {});
    sim.crash(2);
    let observers = vec![0, 1, 3, 4];
    assert!(sim
        .run_until(Duration::from_secs(20), |sim| all_see(
            sim,
            &observers,
            "node-2",
            MemberStatus::Failed
        ))
        .is_some());
    let mut config = node_config(2);
    config.addr = node_addr(7);
    config.incarnation = 1_000;
    let restarted = sim.add_node(config);
    sim.join(restarted, 0);
    let back = |sim: &Sim| {
        observers.iter().all(|&i| {
            sim.gossip(i)
                .member("node-2")
                .is_some_and(|m| m.status == MemberStatus::Alive && m.addr == node_addr(7))
        })
    };
    assert!(sim.run_until(Duration::from_secs(20), back).is_some());
}

#[test]
fn nodes_sharing_a_key_interoperate_and_datagrams_stay_small() {
    let mut sim = formed(12, 16, |config| {
        // Different primaries, one shared key: everyone can read everyone.
        let keys = if config.name.ends_with('1') {
            [key(1), key(2)]
        } else {
            [key(2), key(1)]
        };
        config.keyring = Some(Keyring::from_keys(&keys).unwrap());
    });
    sim.run_for(Duration::from_secs(5));
    assert!(sim.converged());
    assert!(sim.max_datagram() <= 1400, "{} bytes", sim.max_datagram());
    assert!((0..12).all(|i| sim.node(i).errors.is_empty()));
}

#[test]
fn a_node_with_the_wrong_key_cannot_join() {
    let mut sim = formed(4, 17, |config| {
        config.keyring = Some(Keyring::new(&key(1)).unwrap())
    });
    let mut stranger = node_config(4);
    stranger.keyring = Some(Keyring::new(&key(9)).unwrap());
    let stranger = sim.add_node(stranger);
    let mut plain = node_config(5);
    plain.keyring = None;
    let plain = sim.add_node(plain);
    sim.join(stranger, 0);
    sim.join(plain, 0);
    sim.run_for(Duration::from_secs(10));
    assert_eq!(
        sim.node(stranger).alive_count(),
        1,
        "the stranger sees nobody"
    );
    assert_eq!(sim.node(plain).alive_count(), 1);
    assert!(sim.gossip(0).member("node-4").is_none() && sim.gossip(0).member("node-5").is_none());
    let seed_errors = &sim.node(0).errors;
    assert!(seed_errors
        .iter()
        .any(|(_, e)| matches!(e, Error::Keyring(keyring::Error::NoKeyDecrypts))));
    assert!(seed_errors
        .iter()
        .any(|(_, e)| matches!(e, Error::Unencrypted)));
    assert!(seed_errors
        .iter()
        .any(|(_, e)| e.to_string() == "No installed keys could decrypt the message"));
}

/// Rotation the way Consul does it, through queries: install the new key everywhere, make it primary
/// everywhere, remove the old one everywhere. No step may partition the pool.
#[test]
fn key_rotation_through_queries_never_partitions() {
    let mut sim = formed(12, 18, |config| {
        config.keyring = Some(Keyring::new(&key(1)).unwrap())
    });
    sim.record_events(true);
    let steps: [(&str, String); 3] = [("install", key(2)), ("use", key(2)), ("remove", key(1))];
    for (operation, key) in steps {
        let name = format!("_keyring-{operation}");
        let now = sim.instant();
        let id = sim
            .act(0, |gossip, _| {
                gossip.query(&name, key.clone().into_bytes(), Duration::from_secs(3), now)
            })
            .unwrap();
        // Every node applies the operation when the query reaches it, then answers.
        sim.run_until(Duration::from_secs(5), |sim| {
            (0..12).all(|i| {
                sim.node(i)
                    .events
                    .iter()
                    .any(|(_, e)| matches!(e, Event::Query(q) if q.id == id))
            })
        })
        .expect("the query reached everyone");
        for i in 0..12 {
            let now = sim.instant();
            sim.act(i, |gossip, _| {
                let keyring = gossip.keyring_mut().expect("encryption is on");
                match operation {
                    "install" => keyring.install(&key),
                    "use" => keyring.use_key(&key),
                    _ => keyring.remove(&key),
                }
                .expect("keyring operation");
                gossip.respond(id, b"ok".to_vec(), now)
            })
            .expect("respond");
            // Nodes change one at a time, with gossip in between.
            sim.run_for(Duration::from_millis(100));
        }
        sim.run_for(Duration::from_secs(3));
        let responses = sim
            .node(0)
            .events
            .iter()
            .filter(|(_, e)| matches!(e, Event::QueryResponse { id: got, .. } if *got == id));
        assert_eq!(responses.count(), 12, "every node acknowledged {operation}");
        assert_eq!(sim.failures(), &[], "{operation} partitioned the pool");
        assert!(
            (0..12).all(|i| sim.node(i).errors.is_empty()),
            "{operation} made datagrams undecryptable"
        );
    }
    assert!((0..12).all(|i| sim.gossip(i).keyring().unwrap().list() == [key(2)]));
    assert!(sim.converged());
}
