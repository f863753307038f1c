use foca::{Codec, Header, Message, State};

use super::*;
use crate::broadcast::{BroadcastItem, QueryMessage};
use crate::codec::{IdentityBook, WireCodec};
use crate::config::Config;
use crate::engine::EVENT_EXTRAS_LIMIT;
use crate::event::UserEvent;
use crate::identity::{MAX_IDENTITY_LEN, MAX_NAME_LEN};
use crate::member::Tags;
use crate::{QUERY_SIZE_LIMIT, USER_EVENT_SIZE_LIMIT};

/// An identity as large as the limit allows, with an IPv6 address.
fn largest_identity(fill: char) -> NodeIdentity {
    let name: String = std::iter::repeat_n(fill, MAX_NAME_LEN).collect();
    let addr = "[fd00::1:2:3:4]:65535".parse().unwrap();
    let mut identity = NodeIdentity::new(&name, addr, u64::MAX, Tags::new()).unwrap();
    let mut value = String::new();
    loop {
        value.push('v');
        let tags = Tags::from([("k".to_owned(), value.clone())]);
        let candidate =
            NodeIdentity::from_parts(&identity.name, identity.addr, identity.incarnation, tags);
        if candidate.encoded_len() > MAX_IDENTITY_LEN {
            return identity;
        }
        identity = candidate;
    }
}

#[test]
fn frames_round_trip() {
    let identity = largest_identity('a');
    let member = FocaMember::new(identity.clone(), 3, State::Suspect);
    let response = QueryResponseMessage {
        id: QueryId(9),
        from: "a".into(),
        payload: b"ok".to_vec(),
    };
    let frames = [
        Frame::Foca(b"raw"),
        Frame::JoinProbe,
        Frame::JoinAck(identity),
        Frame::Suspect(member.clone()),
        Frame::Refute(member),
        Frame::QueryResponse(response),
        Frame::SyncRequest,
        Frame::RosterRequest,
        Frame::Roster(vec![RosterEntry {
            life: LifeHash(u64::MAX),
            incarnation: 3,
            state: State::Suspect,
        }]),
        Frame::WhoIs(vec![LifeHash(1), LifeHash(u64::MAX)]),
        Frame::Sync(vec![FocaMember::new(largest_identity('c'), 1, State::Down)]),
    ];
    for frame in frames {
        let bytes = frame.encode();
        let decoded = Frame::decode(&bytes).unwrap();
        assert_eq!(format!("{frame:?}"), format!("{decoded:?}"));
    }
    assert!(matches!(Frame::decode(&[]), Err(WireError::Empty)));
    assert!(matches!(Frame::decode(&[1]), Err(WireError::UnknownTag(1))));
}

/// The size limits are chosen so that a maximal user event or query fits in one broadcast message next to
/// the largest header, two maximal identities (only an announce has that, and it carries no broadcasts);
/// otherwise foca would keep it queued forever.
#[test]
fn largest_broadcast_fits_next_to_largest_header() {
    let src = largest_identity('a');
    let header = Header {
        src: src.clone(),
        src_incarnation: u16::MAX,
        dst: largest_identity('b'),
        message: Message::Announce,
    };
    let mut codec = WireCodec::new(IdentityBook::shared(&src));
    let mut encoded = Vec::new();
    codec.encode_header(&header, &mut encoded).unwrap();
    let header_len = encoded.len();
    let event = BroadcastItem::UserEvent(UserEvent {
        id: "i".repeat(EVENT_EXTRAS_LIMIT),
        name: "n".repeat(USER_EVENT_SIZE_LIMIT / 2),
        payload: vec![0xff; USER_EVENT_SIZE_LIMIT / 2],
        node_filter: String::new(),
        service_filter: String::new(),
        tag_filter: String::new(),
        ltime: u64::MAX,
    });
    let query = BroadcastItem::Query(QueryMessage {
        id: QueryId(u64::MAX),
        name: "n".repeat(QUERY_SIZE_LIMIT / 2),
        payload: vec![0xff; QUERY_SIZE_LIMIT / 2],
        origin: "o".repeat(MAX_NAME_LEN),
        origin_addr: "[fd00::1:2:3:4]:65535".parse().unwrap(),
        timeout_ms: u64::MAX,
    });
    let budget = Config::new("n", "10.0.0.1:1".parse().unwrap())
        .foca_config(1000)
        .max_packet_size
        .get();
    for item in [event, query] {
        let length_prefix = 2;
        let total = header_len + length_prefix + item.encode().len();
        assert!(total <= budget, "{total} bytes do not fit in {budget}");
    }
}

#[test]
fn chunks_fit_the_budget() {
    let members: Vec<_> = (0..20)
        .map(|i| FocaMember::new(largest_identity(char::from(b'a' + i)), 0, State::Alive))
        .collect();
    let budget = 1370;
    let chunks = chunks(members.clone(), budget);
    assert!(chunks.len() > 1);
    assert_eq!(chunks.iter().map(Vec::len).sum::<usize>(), members.len());
    for chunk in chunks {
        assert!(Frame::Sync(chunk).encode().len() <= budget);
    }
}

#[test]
fn digests_ignore_order_and_see_incarnations() {
    let addr = "10.0.0.1:1".parse().unwrap();
    let a = NodeIdentity::new("a", addr, 1, Tags::new()).unwrap();
    let b = NodeIdentity::new("b", addr, 1, Tags::new()).unwrap();
    let (mut ab, mut ba) = (MembershipDigest::default(), MembershipDigest::default());
    ab.add(&a);
    ab.add(&b);
    ba.add(&b);
    ba.add(&a);
    assert_eq!(ab, ba);
    let mut renewed = MembershipDigest::default();
    renewed.add(&a);
    renewed.add(&NodeIdentity::new("b", addr, 2, Tags::new()).unwrap());
    assert_ne!(ab, renewed);
}

#[test]
fn a_roster_costs_about_ten_bytes_a_member() {
    let entries: Vec<RosterEntry> = (0..200u64)
        .map(|i| RosterEntry {
            life: LifeHash(i.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
            incarnation: 1,
            state: State::Alive,
        })
        .collect();
    let chunked = chunks(entries, 1370);
    assert_eq!(chunked.len(), 2);
    let bytes: usize = chunked
        .into_iter()
        .map(|chunk| Frame::Roster(chunk).encode().len())
        .sum();
    assert!(bytes <= 200 * 10 + 2 * 4, "{bytes} bytes");
}
