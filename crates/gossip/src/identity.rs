//! The identity foca gossips about: who a node is in one life.
//!
//! The node name is what makes two identities "the same node": foca's `Identity::Addr` is a 64-bit hash of
//! it, computed once per identity, because foca compares addresses in linear scans of its member list on
//! every update it applies, and comparing names (behind `Arc`s that would be cloned per comparison) made
//! that scan dominate large pools. Two names would have to collide on 64 bits (odds about n²/2⁶⁵) to be
//! mistaken for one node; the key never leaves the process.
//!
//! The incarnation separates lives of that node: `renew()` (auto-rejoin after being declared down) and tag
//! changes bump it, and the higher incarnation wins the conflict, so the newest life replaces older ones.
//!
//! The life hash covers everything an identity says (name, address, incarnation, tags): it is how message
//! headers name an identity once the receiver knows it whole (see `codec`), eight bytes instead of a name
//! and a hundred bytes of tags.

use std::net::SocketAddr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::member::Tags;

/// Longest node name, in bytes.
pub(crate) const MAX_NAME_LEN: usize = 128;

/// Largest encoded identity. A foca header carries up to two whole identities (an announce does), and a
/// datagram must still have room for a maximal user event next to them (see
/// `wire::tests::largest_broadcast_fits_next_to_largest_header`).
pub(crate) const MAX_IDENTITY_LEN: usize = 300;

/// One life of one node: name, gossip address, incarnation and tags.
///
/// Name and tags are behind `Arc`s because foca clones identities for every message it builds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "WireIdentity", into = "WireIdentity")]
pub(crate) struct NodeIdentity {
    pub(crate) name: Arc<str>,
    pub(crate) addr: SocketAddr,
    pub(crate) incarnation: u64,
    pub(crate) tags: Arc<Tags>,
    /// Hash of `name`, foca's `Addr`.
    key: u64,
    /// Hash of name, address, incarnation and tags: what headers call this identity.
    life: u64,
}

/// The identity as it travels: everything but the derived key.
#[derive(Serialize, Deserialize)]
struct WireIdentity {
    name: Arc<str>,
    addr: SocketAddr,
    incarnation: u64,
    tags: Arc<Tags>,
}

impl From<WireIdentity> for NodeIdentity {
    fn from(wire: WireIdentity) -> Self {
        NodeIdentity {
            key: name_key(&wire.name),
            life: life_hash(&wire),
            name: wire.name,
            addr: wire.addr,
            incarnation: wire.incarnation,
            tags: wire.tags,
        }
    }
}

impl From<NodeIdentity> for WireIdentity {
    fn from(identity: NodeIdentity) -> Self {
        WireIdentity {
            name: identity.name,
            addr: identity.addr,
            incarnation: identity.incarnation,
            tags: identity.tags,
        }
    }
}

/// FNV-1a of the name, finished with splitmix64's mixer so that similar names spread over all 64 bits.
fn name_key(name: &str) -> u64 {
    let mut hash = Fnv::default();
    hash.write(name.as_bytes());
    hash.finish()
}

/// The hash of a whole identity. Every field is length-prefixed, tagged or fixed-size, so two different
/// identities never feed the hasher the same bytes.
fn life_hash(identity: &WireIdentity) -> u64 {
    let mut hash = Fnv::default();
    hash.write_str(&identity.name);
    match identity.addr {
        SocketAddr::V4(addr) => {
            hash.write(&[4]);
            hash.write(&addr.ip().octets());
        }
        SocketAddr::V6(addr) => {
            hash.write(&[6]);
            hash.write(&addr.ip().octets());
        }
    }
    hash.write(&identity.addr.port().to_le_bytes());
    hash.write(&identity.incarnation.to_le_bytes());
    for (key, value) in identity.tags.iter() {
        hash.write_str(key);
        hash.write_str(value);
    }
    hash.finish()
}

/// FNV-1a: the same on every node and every build, unlike std's randomly keyed hasher.
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 ^= u64::from(byte);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn write_str(&mut self, text: &str) {
        self.write(&(text.len() as u64).to_le_bytes());
        self.write(text.as_bytes());
    }

    /// splitmix64's finalizer, so that similar inputs spread over all 64 bits.
    fn finish(&self) -> u64 {
        let mut hash = self.0;
        hash ^= hash >> 30;
        hash = hash.wrapping_mul(0xbf58_476d_1ce4_e5b9);
        hash ^= hash >> 27;
        hash = hash.wrapping_mul(0x94d0_49bb_1331_11eb);
        hash ^ (hash >> 31)
    }
}

impl NodeIdentity {
    /// Builds an identity after checking that it fits the wire budget.
    pub(crate) fn new(
        name: &str,
        addr: SocketAddr,
        incarnation: u64,
        tags: Tags,
    ) -> Result<Self, Error> {
        if name.is_empty() || name.len() > MAX_NAME_LEN {
            return Err(Error::InvalidName {
                name: name.to_owned(),
                limit: MAX_NAME_LEN,
            });
        }
        let identity = NodeIdentity::from(WireIdentity {
            name: name.into(),
            addr,
            incarnation,
            tags: Arc::new(tags),
        });
        let size = identity.encoded_len();
        if size > MAX_IDENTITY_LEN {
            return Err(Error::IdentityTooLarge {
                size,
                limit: MAX_IDENTITY_LEN,
            });
        }
        Ok(identity)
    }

    /// The next life of this node with other tags.
    pub(crate) fn with_tags(&self, tags: Tags) -> Result<Self, Error> {
        NodeIdentity::new(&self.name, self.addr, self.incarnation + 1, tags)
    }

    /// The identity a member table entry describes.
    pub(crate) fn from_parts(name: &str, addr: SocketAddr, incarnation: u64, tags: Tags) -> Self {
        NodeIdentity::from(WireIdentity {
            name: name.into(),
            addr,
            incarnation,
            tags: Arc::new(tags),
        })
    }

    /// An identity a header named by its life hash only, which this node does not know. It stands in
    /// for the real one where foca only passes an identity on (the target of an indirect probe) or
    /// compares it with its own (a message's destination); it is never a member.
    pub(crate) fn unresolved(life: u64, addr: SocketAddr) -> Self {
        NodeIdentity {
            name: Arc::from(""),
            addr,
            incarnation: 0,
            tags: Arc::default(),
            key: life,
            life,
        }
    }

    /// False for [`NodeIdentity::unresolved`] stand-ins.
    pub(crate) fn is_resolved(&self) -> bool {
        !self.name.is_empty()
    }

    /// The hash of the whole identity, by which message headers name it.
    pub(crate) fn life(&self) -> u64 {
        self.life
    }

    pub(crate) fn encoded_len(&self) -> usize {
        postcard::to_allocvec(self).map_or(usize::MAX, |bytes| bytes.len())
    }
}

impl foca::Identity for NodeIdentity {
    type Addr = u64;

    fn renew(&self) -> Option<Self> {
        Some(NodeIdentity::from(WireIdentity {
            name: Arc::clone(&self.name),
            addr: self.addr,
            incarnation: self.incarnation + 1,
            tags: Arc::clone(&self.tags),
        }))
    }

    fn addr(&self) -> u64 {
        self.key
    }

    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        // Higher incarnation is the newer life. Equal incarnations with different contents mean two nodes
        // claim the same name; address and tags break the tie so every member picks the same winner.
        (self.incarnation, self.addr, &*self.tags)
            > (adversary.incarnation, adversary.addr, &*adversary.tags)
    }
}

#[cfg(test)]
mod tests;
