//! foca's codec: what headers and member updates look like on the wire.
//!
//! A member update announces one life of a node, so it carries the whole identity, tags included. A header
//! only has to say who sends and who receives, and every probe and ack has one: it names identities by
//! their life hash (eight bytes, [`NodeIdentity::life`]) wherever the receiver can look the hash up, and
//! carries a whole identity only where it may not:
//!
//! * the sender's own identity goes whole until the receiver has addressed a message to that life, which
//!   proves it has it (its member list only holds identities it received whole); joins (`Announce`, `Feed`)
//!   and `TurnUndead` always carry it whole;
//! * the destination is the receiver itself, which knows its own life; only `Announce` carries it whole,
//!   since foca accepts an announce to any life of the receiver's name. A relay that only knows the
//!   destination by hash (see below) says so, and its message proves nothing;
//! * the member an indirect probe is about travels as its life hash and address, so that a relay that
//!   has not heard of it yet can still reach it.
//!
//! Receivers record every whole identity they decode in the shared [`IdentityBook`], which the engine also
//! feeds from its own frames (joins, syncs). A header whose sender cannot be looked up is dropped and the
//! engine asks the sender who it is (a join probe, answered with its whole identity).
//!
//! Pings also carry the sender's membership digest, so that anti-entropy needs no datagrams of its own.

use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::{Buf, BufMut};
use foca::{Codec, Header, Member as FocaMember, Message, ProbeNumber};
use postcard::ser_flavors::Flavor;
use serde::{Deserialize, Serialize};

use crate::identity::NodeIdentity;
use crate::wire::{fixed64, MembershipDigest};

/// What the engine and its codec share: the identities this node can look up by life, and what the last
/// decoded header left for the engine.
#[derive(Debug)]
pub(crate) struct IdentityBook {
    local: NodeIdentity,
    known: HashMap<u64, NodeIdentity>,
    /// Lives of peers that addressed a message to our current life: headers to them name us by hash.
    knows_us: HashSet<u64>,
    /// The digest our pings carry.
    digest: MembershipDigest,
    /// The digest the last decoded ping carried.
    received_digest: Option<MembershipDigest>,
    /// The life hash of the last header sender that could not be looked up.
    unknown_sender: Option<u64>,
}

/// The book, shared by the engine and the codec foca owns.
pub(crate) type SharedBook = Arc<Mutex<IdentityBook>>;

impl IdentityBook {
    pub(crate) fn shared(local: &NodeIdentity) -> SharedBook {
        let mut book = IdentityBook {
            local: local.clone(),
            known: HashMap::new(),
            knows_us: HashSet::new(),
            digest: MembershipDigest::default(),
            received_digest: None,
            unknown_sender: None,
        };
        book.learn(local);
        Arc::new(Mutex::new(book))
    }

    /// Locks a shared book. Nothing panics while holding it, and every update leaves it consistent.
    pub(crate) fn lock(book: &SharedBook) -> MutexGuard<'_, IdentityBook> {
        book.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The local node took a new life: nobody is known to have it yet.
    pub(crate) fn set_local(&mut self, identity: &NodeIdentity) {
        if identity.life() != self.local.life() {
            self.local = identity.clone();
            self.knows_us.clear();
            self.learn(identity);
        }
    }

    /// Records a whole identity, so that headers naming it by hash can be decoded.
    pub(crate) fn learn(&mut self, identity: &NodeIdentity) {
        if identity.is_resolved() && !self.known.contains_key(&identity.life()) {
            self.known.insert(identity.life(), identity.clone());
        }
    }

    /// The whole identity behind a life hash, when this node has seen it.
    pub(crate) fn resolve(&self, life: u64) -> Option<NodeIdentity> {
        self.known.get(&life).cloned()
    }

    /// Forgets identities that `keep` rejects (members reaped or replaced), except the local one.
    pub(crate) fn retain(&mut self, keep: impl Fn(u64) -> bool) {
        let local = self.local.life();
        self.known.retain(|&life, _| life == local || keep(life));
        let known = &self.known;
        self.knows_us.retain(|life| known.contains_key(life));
    }

    pub(crate) fn set_digest(&mut self, digest: MembershipDigest) {
        self.digest = digest;
    }

    pub(crate) fn take_received_digest(&mut self) -> Option<MembershipDigest> {
        self.received_digest.take()
    }

    pub(crate) fn take_unknown_sender(&mut self) -> Option<u64> {
        self.unknown_sender.take()
    }

    #[cfg(test)]
    pub(crate) fn knows(&self, life: u64) -> bool {
        self.known.contains_key(&life)
    }
}

/// Why the codec could not decode a header or member.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CodecError {
    #[error(transparent)]
    Postcard(#[from] postcard::Error),
    /// The header names its sender by a life hash this node does not know.
    #[error("unknown sender life {0:#018x}")]
    UnknownSender(u64),
}

/// foca's codec over the shared [`IdentityBook`].
#[derive(Debug)]
pub(crate) struct WireCodec {
    book: SharedBook,
}

impl WireCodec {
    pub(crate) fn new(book: SharedBook) -> Self {
        WireCodec { book }
    }
}

/// An identity in a header.
#[derive(Debug, Serialize, Deserialize)]
enum WireId<I> {
    /// The whole identity.
    Whole(I),
    /// Its life hash.
    Life(#[serde(with = "fixed64")] u64),
    /// Its life hash and address: the member an indirect probe is about.
    Located(#[serde(with = "fixed64")] u64, SocketAddr),
}

#[derive(Debug, Serialize, Deserialize)]
enum WireMessage<I> {
    Ping(ProbeNumber, MembershipDigest),
    Ack(ProbeNumber),
    PingReq {
        target: WireId<I>,
        probe_number: ProbeNumber,
    },
    IndirectPing {
        origin: WireId<I>,
        probe_number: ProbeNumber,
    },
    IndirectAck {
        target: WireId<I>,
        probe_number: ProbeNumber,
    },
    ForwardedAck {
        origin: WireId<I>,
        probe_number: ProbeNumber,
    },
    Announce,
    Feed,
    Gossip,
    Broadcast,
    TurnUndead,
}

#[derive(Debug, Serialize, Deserialize)]
struct WireHeader<I> {
    src: WireId<I>,
    src_incarnation: u16,
    dst: WireId<I>,
    message: WireMessage<I>,
}

fn located(identity: &NodeIdentity) -> WireId<&NodeIdentity> {
    WireId::Located(identity.life(), identity.addr)
}

impl IdentityBook {
    fn encode<'a>(&self, header: &'a Header<NodeIdentity>) -> WireHeader<&'a NodeIdentity> {
        let joining = matches!(
            header.message,
            Message::Announce | Message::Feed | Message::TurnUndead
        );
        let proven =
            header.src.life() == self.local.life() && self.knows_us.contains(&header.dst.life());
        let src = if joining || !proven {
            WireId::Whole(&header.src)
        } else {
            WireId::Life(header.src.life())
        };
        let dst = if !header.dst.is_resolved() {
            located(&header.dst)
        } else if header.message == Message::Announce {
            WireId::Whole(&header.dst)
        } else {
            WireId::Life(header.dst.life())
        };
        let message = match &header.message {
            Message::Ping(number) => WireMessage::Ping(*number, self.digest),
            Message::Ack(number) => WireMessage::Ack(*number),
            Message::PingReq {
                target,
                probe_number,
            } => WireMessage::PingReq {
                target: located(target),
                probe_number: *probe_number,
            },
            Message::IndirectPing {
                origin,
                probe_number,
            } => WireMessage::IndirectPing {
                origin: located(origin),
                probe_number: *probe_number,
            },
            Message::IndirectAck {
                target,
                probe_number,
            } => WireMessage::IndirectAck {
                target: located(target),
                probe_number: *probe_number,
            },
            Message::ForwardedAck {
                origin,
                probe_number,
            } => WireMessage::ForwardedAck {
                origin: located(origin),
                probe_number: *probe_number,
            },
            Message::Announce => WireMessage::Announce,
            Message::Feed => WireMessage::Feed,
            Message::Gossip => WireMessage::Gossip,
            Message::Broadcast => WireMessage::Broadcast,
            Message::TurnUndead => WireMessage::TurnUndead,
        };
        WireHeader {
            src,
            src_incarnation: header.src_incarnation,
            dst,
            message,
        }
    }

    /// An identity that must be a real one (a header's sender).
    fn sender(&mut self, id: WireId<NodeIdentity>) -> Result<NodeIdentity, CodecError> {
        match id {
            WireId::Whole(identity) => {
                self.learn(&identity);
                Ok(identity)
            }
            WireId::Life(life) | WireId::Located(life, _) => self.resolve(life).ok_or_else(|| {
                self.unknown_sender = Some(life);
                CodecError::UnknownSender(life)
            }),
        }
    }

    /// An identity foca only compares or passes on: a stand-in when it is unknown here.
    fn other(&mut self, id: WireId<NodeIdentity>) -> NodeIdentity {
        match id {
            WireId::Whole(identity) => {
                self.learn(&identity);
                identity
            }
            WireId::Life(life) => self.resolve(life).unwrap_or_else(|| {
                NodeIdentity::unresolved(life, SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)))
            }),
            WireId::Located(life, addr) => self
                .resolve(life)
                .unwrap_or_else(|| NodeIdentity::unresolved(life, addr)),
        }
    }

    fn decode(
        &mut self,
        header: WireHeader<NodeIdentity>,
    ) -> Result<Header<NodeIdentity>, CodecError> {
        let src = self.sender(header.src)?;
        // A relay addressing us by hash and address only may not have our whole identity.
        let proves = !matches!(header.dst, WireId::Located(..));
        let dst = self.other(header.dst);
        if proves && dst.life() == self.local.life() {
            self.knows_us.insert(src.life());
        }
        let message = match header.message {
            WireMessage::Ping(number, digest) => {
                self.received_digest = Some(digest);
                Message::Ping(number)
            }
            WireMessage::Ack(number) => Message::Ack(number),
            WireMessage::PingReq {
                target,
                probe_number,
            } => Message::PingReq {
                target: self.other(target),
                probe_number,
            },
            WireMessage::IndirectPing {
                origin,
                probe_number,
            } => Message::IndirectPing {
                origin: self.other(origin),
                probe_number,
            },
            WireMessage::IndirectAck {
                target,
                probe_number,
            } => Message::IndirectAck {
                target: self.other(target),
                probe_number,
            },
            WireMessage::ForwardedAck {
                origin,
                probe_number,
            } => Message::ForwardedAck {
                origin: self.other(origin),
                probe_number,
            },
            WireMessage::Announce => Message::Announce,
            WireMessage::Feed => Message::Feed,
            WireMessage::Gossip => Message::Gossip,
            WireMessage::Broadcast => Message::Broadcast,
            WireMessage::TurnUndead => Message::TurnUndead,
        };
        Ok(Header {
            src,
            src_incarnation: header.src_incarnation,
            dst,
            message,
        })
    }
}

impl Codec<NodeIdentity> for WireCodec {
    type Error = CodecError;

    fn encode_header(
        &mut self,
        header: &Header<NodeIdentity>,
        buf: impl BufMut,
    ) -> Result<(), CodecError> {
        let book = IdentityBook::lock(&self.book);
        postcard::serialize_with_flavor(&book.encode(header), WrappedBuf(buf))?;
        Ok(())
    }

    fn decode_header(&mut self, mut buf: impl Buf) -> Result<Header<NodeIdentity>, CodecError> {
        let remaining = buf.remaining();
        // foca hands over one contiguous buffer.
        let (wire, rest) = postcard::take_from_bytes::<WireHeader<NodeIdentity>>(buf.chunk())?;
        let used = remaining - rest.len();
        buf.advance(used);
        IdentityBook::lock(&self.book).decode(wire)
    }

    fn encode_member(
        &mut self,
        member: &FocaMember<NodeIdentity>,
        buf: impl BufMut,
    ) -> Result<(), CodecError> {
        postcard::serialize_with_flavor(member, WrappedBuf(buf))?;
        Ok(())
    }

    fn decode_member(&mut self, mut buf: impl Buf) -> Result<FocaMember<NodeIdentity>, CodecError> {
        let remaining = buf.remaining();
        let (member, rest) = postcard::take_from_bytes::<FocaMember<NodeIdentity>>(buf.chunk())?;
        let used = remaining - rest.len();
        buf.advance(used);
        IdentityBook::lock(&self.book).learn(member.id());
        Ok(member)
    }
}

/// postcard output into foca's buffer, failing (as foca expects) when it is full.
struct WrappedBuf<B>(B);

impl<B: BufMut> Flavor for WrappedBuf<B> {
    type Output = ();

    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        if self.0.has_remaining_mut() {
            self.0.put_u8(data);
            Ok(())
        } else {
            Err(postcard::Error::SerializeBufferFull)
        }
    }

    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        if self.0.remaining_mut() >= data.len() {
            self.0.put_slice(data);
            Ok(())
        } else {
            Err(postcard::Error::SerializeBufferFull)
        }
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests;
