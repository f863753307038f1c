use foca::{Header, Message};

use super::*;
use crate::member::Tags;

fn identity(name: &str, last_octet: u8) -> NodeIdentity {
    let tags = Tags::from([
        ("role".to_owned(), "node".to_owned()),
        (
            "id".to_owned(),
            "0f4c2d1e-0000-4000-8000-000000000000".to_owned(),
        ),
    ]);
    NodeIdentity::new(
        name,
        SocketAddr::from(([10, 0, 0, last_octet], 8301)),
        7,
        tags,
    )
    .unwrap()
}

/// One node's side: its identity and a codec over its own book.
struct Side {
    identity: NodeIdentity,
    book: SharedBook,
    codec: WireCodec,
}

impl Side {
    fn new(name: &str, last_octet: u8) -> Self {
        let identity = identity(name, last_octet);
        let book = IdentityBook::shared(&identity);
        let codec = WireCodec::new(Arc::clone(&book));
        Side {
            identity,
            book,
            codec,
        }
    }

    fn header(&self, to: &NodeIdentity, message: Message<NodeIdentity>) -> Header<NodeIdentity> {
        Header {
            src: self.identity.clone(),
            src_incarnation: 0,
            dst: to.clone(),
            message,
        }
    }

    fn encode(&mut self, header: &Header<NodeIdentity>) -> Vec<u8> {
        let mut bytes = Vec::new();
        self.codec.encode_header(header, &mut bytes).unwrap();
        bytes
    }

    fn decode(&mut self, bytes: &[u8]) -> Result<Header<NodeIdentity>, CodecError> {
        let mut buf = bytes;
        let header = self.codec.decode_header(&mut buf)?;
        assert!(buf.is_empty(), "the whole header is consumed");
        Ok(header)
    }

    fn book(&self) -> MutexGuard<'_, IdentityBook> {
        IdentityBook::lock(&self.book)
    }
}

/// `a` pings `b`, `b` acks: returns the sizes of the ping and the ack. `a` has `b` whole (from its
/// member list); `b` need not have `a`.
fn ping_pong(a: &mut Side, b: &mut Side) -> (usize, usize) {
    a.book().learn(&b.identity);
    let ping = a.encode(&a.header(&b.identity, Message::Ping(1)));
    let received = b.decode(&ping).unwrap();
    assert_eq!(
        received.src, a.identity,
        "the sender is known whole, tags included"
    );
    assert_eq!(received.dst, b.identity);
    let ack = b.encode(&b.header(&a.identity, Message::Ack(1)));
    let received = a.decode(&ack).unwrap();
    assert_eq!(received.src, b.identity);
    assert_eq!(received.dst, a.identity);
    (ping.len(), ack.len())
}

#[test]
fn headers_name_the_sender_by_hash_once_the_receiver_has_it() {
    let (mut a, mut b) = (Side::new("a", 1), Side::new("b", 2));
    let (first_ping, first_ack) = ping_pong(&mut a, &mut b);
    // b learned a whole from the first ping and addressed its ack to a's life: a may name itself by
    // hash from now on; b knew from the ping's destination that a has b whole.
    let (ping, ack) = ping_pong(&mut a, &mut b);
    assert!(
        first_ping > 60,
        "{first_ping} bytes: the first ping carries a whole identity"
    );
    assert!(ping < 40, "{ping} bytes");
    assert!(first_ack < 40 && ack < 40, "{first_ack} and {ack} bytes");
}

#[test]
fn an_unknown_sender_is_reported_not_invented() {
    let (mut a, mut b) = (Side::new("a", 1), Side::new("b", 2));
    ping_pong(&mut a, &mut b);
    // A node that lost a's identity (a restart with the same life, say) gets a ping naming a by hash.
    let mut forgetful = Side::new("b", 2);
    let ping = a.encode(&a.header(&b.identity, Message::Ping(2)));
    assert!(matches!(
        forgetful.decode(&ping),
        Err(CodecError::UnknownSender(life)) if life == a.identity.life()
    ));
    assert_eq!(
        forgetful.book().take_unknown_sender(),
        Some(a.identity.life())
    );
    assert_eq!(forgetful.book().take_unknown_sender(), None);
    // Once it has the identity (the engine asks with a join probe), the same ping decodes.
    forgetful.book().learn(&a.identity);
    assert_eq!(forgetful.decode(&ping).unwrap().src, a.identity);
}

#[test]
fn a_new_life_is_sent_whole_again() {
    let (mut a, mut b) = (Side::new("a", 1), Side::new("b", 2));
    ping_pong(&mut a, &mut b);
    let renewed = a
        .identity
        .with_tags(Tags::from([("role".into(), "consul".into())]))
        .unwrap();
    a.identity = renewed.clone();
    let ping = a.encode(&a.header(&b.identity, Message::Ping(3)));
    let received = b.decode(&ping).unwrap();
    assert_eq!(
        received.src, renewed,
        "the new tags arrive with the first ping"
    );
    assert_eq!(
        received.src.tags.get("role").map(String::as_str),
        Some("consul")
    );
}

#[test]
fn joins_carry_whole_identities() {
    let (mut a, mut b) = (Side::new("a", 1), Side::new("b", 2));
    ping_pong(&mut a, &mut b);
    for message in [Message::Announce, Message::Feed, Message::TurnUndead] {
        let header = a.header(&b.identity, message);
        let mut fresh = Side::new("b", 2);
        let received = fresh.decode(&a.encode(&header)).unwrap();
        assert_eq!(received.src, a.identity);
    }
    // foca accepts an announce to any life of the receiver's name: the destination goes whole.
    let mut stranger = Side::new("c", 3);
    let mut fresh = Side::new("b", 2);
    let announce = stranger.header(&b.identity, Message::Announce);
    let announce = stranger.encode(&announce);
    assert_eq!(fresh.decode(&announce).unwrap().dst, b.identity);
}

#[test]
fn a_relay_reaches_a_target_it_knows_by_hash_only_and_proves_nothing() {
    let (mut a, mut b, mut c) = (Side::new("a", 1), Side::new("b", 2), Side::new("c", 3));
    ping_pong(&mut a, &mut c);
    // a asks c, which has never heard of b, to probe b.
    let request = a.encode(&a.header(
        &c.identity,
        Message::PingReq {
            target: b.identity.clone(),
            probe_number: 4,
        },
    ));
    let Message::PingReq { target, .. } = c.decode(&request).unwrap().message else {
        panic!("a ping request");
    };
    assert!(!target.is_resolved());
    assert_eq!(target.addr, b.identity.addr, "c can reach b");
    assert_eq!(target.life(), b.identity.life());
    // c's indirect ping names b by hash and address; b takes it as addressed to itself, yet it does
    // not prove that c has b whole, so b's replies to c still carry b whole.
    let indirect = c.encode(&c.header(
        &target,
        Message::IndirectPing {
            origin: a.identity.clone(),
            probe_number: 4,
        },
    ));
    let received = b.decode(&indirect).unwrap();
    assert_eq!(received.dst, b.identity);
    let reply = b.encode(&b.header(
        &c.identity,
        Message::IndirectAck {
            target: a.identity.clone(),
            probe_number: 4,
        },
    ));
    let received = c.decode(&reply).unwrap();
    assert_eq!(received.src, b.identity, "b was sent whole");
}

#[test]
fn pings_carry_the_senders_digest() {
    let (mut a, mut b) = (Side::new("a", 1), Side::new("b", 2));
    a.book().learn(&b.identity);
    let digest = MembershipDigest { count: 3, hash: 9 };
    a.book().set_digest(digest);
    let ping = a.encode(&a.header(&b.identity, Message::Ping(5)));
    b.decode(&ping).unwrap();
    assert_eq!(b.book().take_received_digest(), Some(digest));
    let ack = b.encode(&b.header(&a.identity, Message::Ack(5)));
    a.decode(&ack).unwrap();
    assert_eq!(a.book().take_received_digest(), None, "acks carry none");
}

#[test]
fn members_travel_whole_and_teach_the_book() {
    let (mut a, mut b) = (Side::new("a", 1), Side::new("b", 2));
    let c = identity("c", 3);
    let member = FocaMember::new(c.clone(), 2, foca::State::Suspect);
    let mut bytes = Vec::new();
    a.codec.encode_member(&member, &mut bytes).unwrap();
    let mut buf = &bytes[..];
    assert_eq!(b.codec.decode_member(&mut buf).unwrap(), member);
    assert!(b.book().knows(c.life()));
}

#[test]
fn pruning_forgets_all_but_what_is_kept_and_the_local_node() {
    let (mut a, mut b) = (Side::new("a", 1), Side::new("b", 2));
    ping_pong(&mut a, &mut b);
    assert!(b.book().knows(a.identity.life()));
    b.book().retain(|_| false);
    assert!(!b.book().knows(a.identity.life()));
    assert!(b.book().knows(b.identity.life()));
}
