use super::*;

fn config() -> Config {
    Config::new("n1", "10.0.0.1:8301".parse().unwrap())
}

#[test]
fn suspicion_scales_with_log_of_cluster_size() {
    let config = config();
    assert_eq!(config.suspicion_timeout(1), Duration::from_millis(750));
    assert_eq!(config.suspicion_timeout(10), Duration::from_millis(750));
    assert_eq!(config.suspicion_timeout(100), Duration::from_millis(1500));
    assert_eq!(config.suspicion_timeout(1000), Duration::from_millis(2250));
}

#[test]
fn lifeguard_suspicion_bounds() {
    let policy = config().suspicion_policy(100);
    assert_eq!(
        (policy.min, policy.max),
        (Duration::from_millis(1500), Duration::from_secs(9))
    );
    assert_eq!(policy.expected_confirmations, 1);
    assert_eq!(config().suspicion_policy(2).expected_confirmations, 0);
}

#[test]
fn sync_interval_scales_like_memberlist() {
    let config = config();
    assert_eq!(config.sync_interval_for(32), Duration::from_secs(30));
    assert_eq!(config.sync_interval_for(64), Duration::from_secs(60));
    assert_eq!(config.sync_interval_for(1000), Duration::from_secs(180));
}

#[test]
fn retransmissions_follow_memberlist_with_a_floor() {
    let config = config();
    assert_eq!(config.max_transmissions(1), 8);
    assert_eq!(config.max_transmissions(10), 8);
    assert_eq!(config.max_transmissions(100), 12);
    assert_eq!(config.max_transmissions(1000), 16);
}

#[test]
fn defaults_are_valid_and_bad_timeouts_are_not() {
    config().validate().unwrap();
    let mut bad = config();
    bad.probe_timeout = bad.probe_period;
    assert!(matches!(bad.validate(), Err(Error::InvalidConfig { .. })));
}

#[test]
fn foca_packets_leave_room_for_the_envelope() {
    let foca = config().foca_config(10);
    assert_eq!(foca.max_packet_size.get() + FRAME_OVERHEAD, 1400);
    assert_eq!(foca.probe_period, Duration::from_millis(400));
}
