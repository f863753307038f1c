//! The datagram format below encryption: one tag byte, then the frame.
//!
//! Most datagrams carry a foca message verbatim (encoded by `codec`). The others are ours: the join
//! handshake (learn the identity behind an address), the Lifeguard buddy notice and its refutation, query
//! responses, which go straight to the asking node instead of through gossip, and the member-list sync:
//! whole on join, otherwise a roster of life hashes from which the puller asks only for the members it
//! does not know whole. Membership digests ride on foca's pings (see `codec`).
//!
//! Tags start at 0x10 so that a plaintext frame can never be mistaken for a sealed message (version 1).

use foca::{Incarnation, Member as FocaMember, State};
use serde::{Deserialize, Serialize};

use crate::event::QueryId;
use crate::identity::NodeIdentity;

const TAG_FOCA: u8 = 0x10;
const TAG_JOIN_PROBE: u8 = 0x11;
const TAG_JOIN_ACK: u8 = 0x12;
const TAG_SUSPECT: u8 = 0x13;
const TAG_REFUTE: u8 = 0x14;
const TAG_QUERY_RESPONSE: u8 = 0x15;
const TAG_SYNC_REQUEST: u8 = 0x16;
const TAG_SYNC: u8 = 0x17;
const TAG_ROSTER_REQUEST: u8 = 0x18;
const TAG_ROSTER: u8 = 0x19;
const TAG_WHO_IS: u8 = 0x1a;

/// A frame that is not ours.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The datagram is empty.
    #[error("empty datagram")]
    Empty,
    /// The first byte is not a known frame tag.
    #[error("unknown frame tag {0:#04x}")]
    UnknownTag(u8),
    /// The frame body does not decode.
    #[error("undecodable frame: {0}")]
    Decode(#[from] postcard::Error),
}

/// One datagram's content.
#[derive(Debug)]
pub(crate) enum Frame<'a> {
    /// A foca message.
    Foca(&'a [u8]),
    /// "Who are you?", sent by `join` to an address, and to the sender of a header naming an identity this
    /// node does not know.
    JoinProbe,
    /// The answer to a join probe: the whole identity.
    JoinAck(NodeIdentity),
    /// Buddy notice: "I suspect you", sent straight to the suspected member.
    Suspect(FocaMember<NodeIdentity>),
    /// "I am alive", the suspected member's direct answer with its bumped foca incarnation.
    Refute(FocaMember<NodeIdentity>),
    /// An answer to a query, sent to the asking node.
    QueryResponse(QueryResponseMessage),
    /// "Send me your whole member list", from a joining node.
    SyncRequest,
    /// Part of a member list, whole: the answer to a sync request or a who-is.
    Sync(Vec<FocaMember<NodeIdentity>>),
    /// "Send me your roster" (serf's push-pull, pull half): periodically, and when digests differ.
    RosterRequest,
    /// Part of a member list by life hash, in answer to a roster request.
    Roster(Vec<RosterEntry>),
    /// "Send me these members whole": the lives of a roster the receiver could not look up.
    WhoIs(Vec<LifeHash>),
}

/// One member in a roster: ten bytes or so instead of a whole identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RosterEntry {
    pub(crate) life: LifeHash,
    pub(crate) incarnation: Incarnation,
    pub(crate) state: State,
}

/// An identity's life hash on the wire (see `identity`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub(crate) struct LifeHash(#[serde(with = "fixed64")] pub(crate) u64);

/// Who is active, in a few bytes: how many, and an order-independent hash of names and incarnations.
/// Every ping carries the sender's; a mismatch makes the receiver sync with the sender.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct MembershipDigest {
    pub(crate) count: u32,
    #[serde(with = "fixed64")]
    pub(crate) hash: u64,
}

/// Serializes a hash as its eight bytes: postcard's variable-length integers would take nine or ten.
pub(crate) mod fixed64 {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub(crate) fn serialize<S: Serializer>(value: &u64, serializer: S) -> Result<S::Ok, S::Error> {
        value.to_le_bytes().serialize(serializer)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
        <[u8; 8]>::deserialize(deserializer).map(u64::from_le_bytes)
    }
}

impl MembershipDigest {
    pub(crate) fn add(&mut self, identity: &NodeIdentity) {
        // FNV-1a: the same on every node and every build, unlike std's randomly keyed hasher.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in identity
            .name
            .bytes()
            .chain(identity.incarnation.to_le_bytes())
        {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        self.count += 1;
        self.hash ^= hash;
    }
}

/// A query answer on the wire.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct QueryResponseMessage {
    pub(crate) id: QueryId,
    pub(crate) from: String,
    pub(crate) payload: Vec<u8>,
}

impl<'a> Frame<'a> {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let (tag, body) = match self {
            Frame::Foca(bytes) => {
                let mut out = Vec::with_capacity(bytes.len() + 1);
                out.push(TAG_FOCA);
                out.extend_from_slice(bytes);
                return out;
            }
            Frame::JoinProbe => (TAG_JOIN_PROBE, Vec::new()),
            Frame::JoinAck(identity) => (TAG_JOIN_ACK, to_vec(identity)),
            Frame::Suspect(member) => (TAG_SUSPECT, to_vec(member)),
            Frame::Refute(member) => (TAG_REFUTE, to_vec(member)),
            Frame::QueryResponse(response) => (TAG_QUERY_RESPONSE, to_vec(response)),
            Frame::SyncRequest => (TAG_SYNC_REQUEST, Vec::new()),
            Frame::Sync(members) => (TAG_SYNC, to_vec(members)),
            Frame::RosterRequest => (TAG_ROSTER_REQUEST, Vec::new()),
            Frame::Roster(entries) => (TAG_ROSTER, to_vec(entries)),
            Frame::WhoIs(lives) => (TAG_WHO_IS, to_vec(lives)),
        };
        let mut out = Vec::with_capacity(body.len() + 1);
        out.push(tag);
        out.extend_from_slice(&body);
        out
    }

    pub(crate) fn decode(datagram: &'a [u8]) -> Result<Self, WireError> {
        let (&tag, body) = datagram.split_first().ok_or(WireError::Empty)?;
        Ok(match tag {
            TAG_FOCA => Frame::Foca(body),
            TAG_JOIN_PROBE => Frame::JoinProbe,
            TAG_JOIN_ACK => Frame::JoinAck(postcard::from_bytes(body)?),
            TAG_SUSPECT => Frame::Suspect(postcard::from_bytes(body)?),
            TAG_REFUTE => Frame::Refute(postcard::from_bytes(body)?),
            TAG_QUERY_RESPONSE => Frame::QueryResponse(postcard::from_bytes(body)?),
            TAG_SYNC_REQUEST => Frame::SyncRequest,
            TAG_SYNC => Frame::Sync(postcard::from_bytes(body)?),
            TAG_ROSTER_REQUEST => Frame::RosterRequest,
            TAG_ROSTER => Frame::Roster(postcard::from_bytes(body)?),
            TAG_WHO_IS => Frame::WhoIs(postcard::from_bytes(body)?),
            other => return Err(WireError::UnknownTag(other)),
        })
    }
}

/// Splits a list (members, roster entries, lives) into chunks whose frames fit in `budget` bytes each.
pub(crate) fn chunks<T: Serialize>(
    items: impl IntoIterator<Item = T>,
    budget: usize,
) -> Vec<Vec<T>> {
    /// Tag byte plus the largest length prefix a chunk can need.
    const FRAME_HEADER: usize = 1 + 3;
    let mut chunks = Vec::new();
    let mut chunk = Vec::new();
    let mut used = FRAME_HEADER;
    for member in items {
        let size = postcard::to_allocvec(&member).map_or(budget, |bytes| bytes.len());
        if used + size > budget && !chunk.is_empty() {
            chunks.push(std::mem::take(&mut chunk));
            used = FRAME_HEADER;
        }
        used += size;
        chunk.push(member);
    }
    if !chunk.is_empty() {
        chunks.push(chunk);
    }
    chunks
}

fn to_vec<T: Serialize>(value: &T) -> Vec<u8> {
    postcard::to_allocvec(value).expect("frames always serialize")
}

#[cfg(test)]
mod tests;
