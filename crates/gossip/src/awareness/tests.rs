use super::*;

#[test]
fn score_is_bounded_and_scales_timeouts() {
    let mut awareness = Awareness::new(2);
    awareness.lower();
    assert_eq!(awareness.score(), 0);
    for _ in 0..5 {
        awareness.raise();
    }
    assert_eq!(awareness.score(), 2);
    assert_eq!(
        awareness.scale(Duration::from_millis(100)),
        Duration::from_millis(300)
    );
    assert_eq!(
        Awareness::new(0).scale(Duration::from_millis(100)),
        Duration::from_millis(100)
    );
}

#[test]
fn only_the_pending_ping_counts_once() {
    let mut watch = ProbeWatch::default();
    watch.ping_sent("b".into(), 4);
    assert!(!watch.ack_received("c", 4));
    assert!(!watch.ack_received("b", 3));
    assert!(watch.ack_received("b", 4));
    assert!(!watch.ack_received("b", 4));
}

#[test]
fn refutation_is_a_growing_incarnation_of_the_same_identity() {
    let mut watch = ProbeWatch::default();
    assert!(!watch.incarnation_sent(1, 0));
    assert!(!watch.incarnation_sent(1, 0));
    assert!(watch.incarnation_sent(1, 1));
    assert!(
        !watch.incarnation_sent(2, 0),
        "a new identity restarts at zero"
    );
    assert_eq!(watch.foca_incarnation(2), 0);
    assert_eq!(watch.foca_incarnation(1), 0);
}
