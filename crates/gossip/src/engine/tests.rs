use std::time::Instant;

use super::*;
use crate::event::UserEvent;
use crate::keyring::NONCE_LEN;

fn node(name: &str, port: u16) -> Gossip {
    let config = Config::new(name, SocketAddr::from(([10, 0, 0, 1], port)));
    Gossip::new(config, [7; 32], Instant::now()).unwrap()
}

fn event(name: &str, payload_len: usize) -> UserEvent {
    UserEvent {
        id: "0f4c2d1e-0000-4000-8000-000000000000".into(),
        name: name.into(),
        payload: vec![b'x'; payload_len],
        node_filter: String::new(),
        service_filter: String::new(),
        tag_filter: String::new(),
        ltime: 0,
    }
}

#[test]
fn event_size_limit_counts_name_and_payload() {
    let mut gossip = node("a", 1);
    let now = Instant::now();
    gossip.fire_event(event("deploy", 512 - 6), now).unwrap();
    let err = gossip
        .fire_event(event("deploy", 512 - 5), now)
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::EventTooLarge {
                size: 513,
                limit: 512
            }
        ),
        "{err}"
    );
}

#[test]
fn fired_events_are_delivered_locally_with_increasing_ltime() {
    let mut gossip = node("a", 1);
    let now = Instant::now();
    let first = gossip.fire_event(event("a", 1), now).unwrap();
    let mut second = event("b", 1);
    second.id = "another".into();
    let second = gossip.fire_event(second, now).unwrap();
    assert!(second.ltime > first.ltime);
    let delivered: Vec<u64> = std::iter::from_fn(|| gossip.poll_event())
        .filter_map(|event| match event {
            Event::User(event) => Some(event.ltime),
            _ => None,
        })
        .collect();
    assert_eq!(delivered, [first.ltime, second.ltime]);
}

#[test]
fn a_lone_node_answers_its_own_query() {
    let mut gossip = node("a", 1);
    let now = Instant::now();
    let id = gossip
        .query("ping", b"?".to_vec(), Duration::from_secs(1), now)
        .unwrap();
    let request = std::iter::from_fn(|| gossip.poll_event())
        .find_map(|event| match event {
            Event::Query(request) => Some(request),
            _ => None,
        })
        .unwrap();
    assert_eq!((request.id, request.from.as_str()), (id, "a"));
    gossip.respond(id, b"pong".to_vec(), now).unwrap();
    assert!(matches!(
        gossip.respond(id, b"again".to_vec(), now),
        Err(Error::UnknownQuery(_))
    ));
    assert_eq!(
        gossip.poll_event(),
        Some(Event::QueryResponse {
            id,
            from: "a".into(),
            payload: b"pong".to_vec()
        })
    );
}

#[test]
fn encryption_mismatches_are_typed_errors() {
    let key = crate::keyring::encode_key(&[1; 32]);
    let mut config = Config::new("a", SocketAddr::from(([10, 0, 0, 1], 1)));
    config.keyring = Some(Keyring::new(&key).unwrap());
    let mut encrypted = Gossip::new(config, [1; 32], Instant::now()).unwrap();
    let mut plain = node("b", 2);
    let from = SocketAddr::from(([10, 0, 0, 2], 2));
    let now = Instant::now();

    let probe = Frame::JoinProbe.encode();
    assert!(matches!(
        encrypted.handle_datagram(from, &probe, now),
        Err(Error::Unencrypted)
    ));

    let sealed = Keyring::new(&key).unwrap().encrypt(&probe, [0; NONCE_LEN]);
    assert!(matches!(
        plain.handle_datagram(from, &sealed, now),
        Err(Error::UnexpectedEncryption)
    ));

    let wrong = Keyring::new(&crate::keyring::encode_key(&[2; 32]))
        .unwrap()
        .encrypt(&probe, [0; NONCE_LEN]);
    let err = encrypted.handle_datagram(from, &wrong, now).unwrap_err();
    assert_eq!(
        err.to_string(),
        "No installed keys could decrypt the message"
    );
    assert!(err.is_encryption_mismatch());
}

#[test]
fn garbage_is_rejected_without_effects() {
    let mut gossip = node("a", 1);
    let from = SocketAddr::from(([10, 0, 0, 2], 2));
    let now = Instant::now();
    assert!(matches!(
        gossip.handle_datagram(from, &[], now),
        Err(Error::Malformed(_))
    ));
    assert!(matches!(
        gossip.handle_datagram(from, &[0x99, 1, 2], now),
        Err(Error::Malformed(_))
    ));
    assert!(gossip.handle_datagram(from, &[0x10, 1, 2, 3], now).is_err());
    assert!(gossip.poll_transmit().is_none());
}

#[test]
fn force_leave_of_unknown_or_self_is_an_error() {
    let mut gossip = node("a", 1);
    let now = Instant::now();
    assert!(matches!(
        gossip.force_leave("nobody", false, now),
        Err(Error::UnknownMember(_))
    ));
    assert!(matches!(
        gossip.force_leave("a", false, now),
        Err(Error::ForceLeaveSelf)
    ));
}

#[test]
fn a_lone_node_leaves_at_once_and_then_ignores_everything() {
    let mut gossip = node("a", 1);
    let now = Instant::now();
    gossip.leave(now).unwrap();
    assert_eq!(gossip.local_member().status, MemberStatus::Leaving);
    let finish = std::iter::from_fn(|| gossip.poll_timer())
        .find(|(_, timer)| timer.name() == "finish-leave")
        .unwrap();
    assert_eq!(finish.0, Duration::ZERO);
    gossip.handle_timer(finish.1, now);
    assert!(gossip.has_left());
    assert!(matches!(
        gossip.fire_event(event("x", 1), now),
        Err(Error::Left)
    ));
}
