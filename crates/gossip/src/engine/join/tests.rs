use super::*;
use crate::member::Tags;

#[test]
fn retries_until_connected_or_out_of_attempts() {
    let addr: SocketAddr = "10.0.0.2:8301".parse().unwrap();
    let seed = NodeIdentity::new("seed", addr, 1, Tags::new()).unwrap();
    let mut joins = Joins::default();
    joins.start(addr, 3);
    assert_eq!(joins.retry(addr, |_| false), Retry::Probe);
    assert!(joins.ack(addr, seed.clone()));
    assert!(joins.answered(addr));
    assert_eq!(joins.retry(addr, |_| false), Retry::Announce(seed.clone()));
    assert_eq!(joins.retry(addr, |_| false), Retry::Done, "out of attempts");
    assert!(!joins.ack(addr, seed), "no join in progress any more");
    assert!(joins.answered(addr), "the answer is remembered");
}

#[test]
fn connecting_ends_the_join() {
    let addr: SocketAddr = "10.0.0.2:8301".parse().unwrap();
    let seed = NodeIdentity::new("seed", addr, 1, Tags::new()).unwrap();
    let mut joins = Joins::default();
    joins.start(addr, 10);
    joins.ack(addr, seed);
    assert_eq!(joins.retry(addr, |_| true), Retry::Done);
}
