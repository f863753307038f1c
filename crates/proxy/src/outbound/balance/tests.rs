use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::SeedableRng;

use super::{Balancer, EjectionPolicy, Endpoint, Failure};

fn addr(n: u8) -> SocketAddr {
    SocketAddr::from(([127, 0, 5, n], 21000))
}

fn endpoints(ns: &[u8]) -> Vec<Endpoint> {
    ns.iter()
        .map(|&n| Endpoint::new(addr(n), "db", "dc1"))
        .collect()
}

fn policy() -> EjectionPolicy {
    EjectionPolicy {
        consecutive_failures: 3,
        base: Duration::from_secs(5),
        max: Duration::from_secs(60),
    }
}

fn balancer(ns: &[u8]) -> Balancer {
    let mut b = Balancer::new(policy());
    b.replace(endpoints(ns));
    b
}

fn rng() -> StdRng {
    StdRng::seed_from_u64(7)
}

fn outstanding(b: &Balancer, n: u8) -> usize {
    b.state(addr(n)).expect("listed").outstanding
}

#[test]
fn two_instances_share_connections_evenly() {
    let (mut b, mut rng, now) = (balancer(&[1, 2]), rng(), Instant::now());
    for _ in 0..20 {
        b.pick(now, &mut rng, &[]).expect("an instance");
        assert!(outstanding(&b, 1).abs_diff(outstanding(&b, 2)) <= 1);
    }
    for _ in 0..10 {
        b.release(addr(1));
    }
    // Released connections make instance 1 the less loaded one until it catches up.
    for _ in 0..10 {
        assert_eq!(
            b.pick(now, &mut rng, &[]).expect("an instance").addr,
            addr(1)
        );
    }
}

#[test]
fn the_most_loaded_of_three_is_never_picked() {
    let (mut b, mut rng, now) = (balancer(&[1, 2, 3]), rng(), Instant::now());
    for _ in 0..100 {
        let picked = b
            .pick(now, &mut rng, &[addr(2), addr(3)])
            .expect("instance 1");
        assert_eq!(picked.addr, addr(1));
    }
    // Two distinct candidates are compared, so instance 1 (100 outstanding) always loses.
    for _ in 0..100 {
        assert_ne!(
            b.pick(now, &mut rng, &[]).expect("an instance").addr,
            addr(1)
        );
    }
    assert_eq!(outstanding(&b, 2) + outstanding(&b, 3), 100);
}

#[test]
fn tried_instances_are_skipped() {
    let (mut b, mut rng, now) = (balancer(&[1, 2]), rng(), Instant::now());
    for _ in 0..10 {
        assert_eq!(
            b.pick(now, &mut rng, &[addr(1)]).map(|e| e.addr),
            Some(addr(2))
        );
    }
    assert_eq!(b.pick(now, &mut rng, &[addr(1), addr(2)]), None);
    assert_eq!(Balancer::new(policy()).pick(now, &mut rng, &[]), None);
}

#[test]
fn consecutive_failures_eject_for_the_base_period() {
    let (mut b, mut rng, t0) = (balancer(&[1, 2]), rng(), Instant::now());
    assert_eq!(b.failed(addr(1), t0), Failure::Counted { consecutive: 1 });
    assert_eq!(b.failed(addr(1), t0), Failure::Counted { consecutive: 2 });
    let until = t0 + Duration::from_secs(5);
    assert_eq!(
        b.failed(addr(1), t0),
        Failure::Ejected {
            until,
            period: Duration::from_secs(5)
        }
    );
    for _ in 0..20 {
        assert_eq!(b.pick(t0, &mut rng, &[]).expect("instance 2").addr, addr(2));
    }
    let just_before = until - Duration::from_millis(1);
    assert_eq!(b.pick(just_before, &mut rng, &[]).expect("2").addr, addr(2));
    // Back in rotation when the period is over (and the less loaded one by far).
    assert_eq!(b.pick(until, &mut rng, &[]).expect("1").addr, addr(1));
}

#[test]
fn a_success_resets_the_failure_count() {
    let (mut b, t0) = (balancer(&[1]), Instant::now());
    b.failed(addr(1), t0);
    b.failed(addr(1), t0);
    b.succeeded(addr(1));
    assert_eq!(b.failed(addr(1), t0), Failure::Counted { consecutive: 1 });
    assert_eq!(b.failed(addr(1), t0), Failure::Counted { consecutive: 2 });
}

#[test]
fn ejections_without_a_success_in_between_double_up_to_the_maximum() {
    let (mut b, mut t) = (balancer(&[1, 2]), Instant::now());
    for _ in 0..2 {
        b.failed(addr(1), t);
    }
    let mut periods = Vec::new();
    for _ in 0..6 {
        match b.failed(addr(1), t) {
            Failure::Ejected { until, period } => {
                periods.push(period.as_secs());
                t = until;
            }
            other => panic!("expected an ejection, got {other:?}"),
        }
    }
    // After the first ejection, one failure on return is enough.
    assert_eq!(periods, [5, 10, 20, 40, 60, 60]);

    // A success clears the history: the next ejection is the base period again.
    b.succeeded(addr(1));
    assert_eq!(b.state(addr(1)).expect("listed").ejections, 0);
    for _ in 0..2 {
        b.failed(addr(1), t);
    }
    assert!(matches!(
        b.failed(addr(1), t),
        Failure::Ejected { period, .. } if period == Duration::from_secs(5)
    ));
}

#[test]
fn failures_of_an_ejected_instance_do_not_extend_its_ejection() {
    let (mut b, t0) = (balancer(&[1, 2]), Instant::now());
    for _ in 0..3 {
        b.failed(addr(1), t0);
    }
    let ejected_until = b.state(addr(1)).expect("listed").ejected_until;
    let later = t0 + Duration::from_secs(1);
    assert_eq!(b.failed(addr(1), later), Failure::Ignored);
    let state = b.state(addr(1)).expect("listed");
    assert_eq!(state.ejected_until, ejected_until);
    assert_eq!(state.ejections, 1);
}

#[test]
fn when_every_instance_is_ejected_they_are_still_tried() {
    let (mut b, mut rng, t0) = (balancer(&[1, 2]), rng(), Instant::now());
    for n in [1, 2] {
        for _ in 0..3 {
            b.failed(addr(n), t0);
        }
    }
    assert!(b.pick(t0, &mut rng, &[]).is_some());
    assert_eq!(
        b.pick(t0, &mut rng, &[addr(1)]).map(|e| e.addr),
        Some(addr(2))
    );
    assert_eq!(b.pick(t0, &mut rng, &[addr(1), addr(2)]), None);
}

#[test]
fn replacing_the_list_keeps_the_state_of_instances_still_listed() {
    let (mut b, mut rng, t0) = (balancer(&[1, 2]), rng(), Instant::now());
    b.pick(t0, &mut rng, &[addr(2)]).expect("1");
    for _ in 0..3 {
        b.failed(addr(1), t0);
    }
    let before = b.state(addr(1)).expect("listed");

    b.replace(endpoints(&[3, 1]));
    assert_eq!(b.state(addr(1)), Some(before));
    assert_eq!(b.state(addr(2)), None);
    assert_eq!(outstanding(&b, 3), 0);
    let listed: Vec<SocketAddr> = b.endpoints().map(|e| e.addr).collect();
    assert_eq!(listed, [addr(3), addr(1)]);

    // What is reported about an instance no longer listed is ignored.
    b.release(addr(2));
    assert_eq!(b.failed(addr(2), t0), Failure::Ignored);
    b.release(addr(1));
    assert_eq!(outstanding(&b, 1), 0);
}
