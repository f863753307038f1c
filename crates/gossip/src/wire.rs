//! The datagram format below encryption: one tag byte, then the frame.
//!
//! Most datagrams carry a foca message verbatim. The others are ours: the join handshake (learn the name
//! behind an address), the Lifeguard buddy notice and its refutation, query responses, which go straight
//! to the asking node instead of through gossip, and the member-list sync with its digest.
//!
//! Tags start at 0x10 so that a plaintext frame can never be mistaken for a sealed message (version 1).

use foca::Member as FocaMember;
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
const TAG_DIGEST: u8 = 0x18;

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
    /// "Who are you?", sent by `join` to an address.
    JoinProbe,
    /// The answer to a join probe: the identity to announce to.
    JoinAck(NodeIdentity),
    /// Buddy notice: "I suspect you", sent straight to the suspected member.
    Suspect(FocaMember<NodeIdentity>),
    /// "I am alive", the suspected member's direct answer with its bumped foca incarnation.
    Refute(FocaMember<NodeIdentity>),
    /// An answer to a query, sent to the asking node.
    QueryResponse(QueryResponseMessage),
    /// "Send me your member list" (serf's push-pull, pull half).
    SyncRequest,
    /// Part of a member list, in answer to a sync request.
    Sync(Vec<FocaMember<NodeIdentity>>),
    /// A summary of the sender's active members; a mismatch makes the receiver sync with the sender.
    Digest(MembershipDigest),
}

/// Who is active, in a few bytes: how many, and an order-independent hash of names and incarnations.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct MembershipDigest {
    pub(crate) count: u32,
    pub(crate) hash: u64,
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
            Frame::Digest(digest) => (TAG_DIGEST, to_vec(digest)),
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
            TAG_DIGEST => Frame::Digest(postcard::from_bytes(body)?),
            other => return Err(WireError::UnknownTag(other)),
        })
    }
}

/// Splits a member list into `Sync` frames whose bodies fit in `budget` bytes each.
pub(crate) fn sync_chunks(
    members: impl IntoIterator<Item = FocaMember<NodeIdentity>>,
    budget: usize,
) -> Vec<Vec<FocaMember<NodeIdentity>>> {
    /// Tag byte plus the largest length prefix a chunk can need.
    const FRAME_HEADER: usize = 1 + 3;
    let mut chunks = Vec::new();
    let mut chunk = Vec::new();
    let mut used = FRAME_HEADER;
    for member in members {
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
