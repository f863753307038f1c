//! Service answers kept between questions: per question name (as asked, case included) and
//! type, the records built for the service's instances, until the [`Lookup`] hands out other
//! instances.
//!
//! A hit costs a hash of the name and one read lock; the records are shared, and only their
//! order is drawn per question. Over UDP, the response hickory encoded for an order is kept
//! too ([`CachedService::encoded`]), so a question answered in an order seen before costs a
//! copy of those bytes with its own header, not another encoding. An entry is valid while the
//! instances it was built from are the very ones the lookup returns (the same `Arc`): the
//! agent's view replaces them when its watch sees a change, so a change (an instance turning
//! critical, a new one) reaches the next answer. Names and types come from the network, so the number of entries is capped: when
//! full, the cache starts over.
//!
//! [`Lookup`]: crate::Lookup

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use hickory_proto::op::{Header, Metadata};
use hickory_proto::rr::{Name, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder, BinEncodable, BinEncoder};
use hickory_proto::ProtoError;

use crate::answer::ServiceRecords;
use crate::fit;
use crate::lookup::Instances;

/// Entries kept at most (each a few hundred bytes for a few instances).
const CAPACITY: usize = 8192;
/// Encoded responses kept per entry: every order of up to four instances, for one EDNS size.
const ENCODED_CAPACITY: usize = 24;
/// What a copied response is made in: hickory's encoder would grow anything smaller to this.
const RESPONSE_CAPACITY: usize = 512;
/// The longest name on the wire (RFC 1035), then the type.
const KEY_CAPACITY: usize = 255 + 2;

/// What a service question asks the lookup: the same for every question with the same name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    pub dc: String,
    pub service: String,
    pub connect: bool,
}

/// The records for one question name and type, and what they were built from.
#[derive(Debug)]
pub(crate) struct CachedService {
    pub target: Target,
    /// The index of the mesh domain the name is under.
    pub domain: usize,
    /// The instances the records were built from.
    pub instances: Instances,
    pub records: ServiceRecords,
    /// Per unit, an upper bound of its records' size on the wire (see [`fit::record_len`]);
    /// `None` when some record's size is not known without encoding the message.
    unit_lens: Option<Vec<usize>>,
    tail_len: Option<usize>,
    /// Responses hickory encoded from these records, by order and question.
    encoded: Mutex<Vec<Encoded>>,
}

/// One response as hickory encoded it: the units' order and the question it answered (its
/// bytes as asked, and the EDNS payload size it was answered with) pick it out.
#[derive(Debug)]
struct Encoded {
    order: Vec<u32>,
    edns_payload: Option<u16>,
    question: Box<[u8]>,
    /// The whole message, with the header of the question it was made for.
    bytes: Vec<u8>,
}

impl CachedService {
    pub fn new(
        target: Target,
        domain: usize,
        instances: Instances,
        records: ServiceRecords,
    ) -> CachedService {
        let unit_lens = records
            .units
            .iter()
            .map(|unit| {
                std::iter::once(&unit.answer)
                    .chain(&unit.additionals)
                    .map(fit::record_len)
                    .sum::<Option<usize>>()
            })
            .collect();
        let tail_len = records.tail.iter().map(fit::record_len).sum();
        CachedService {
            target,
            domain,
            instances,
            records,
            unit_lens,
            tail_len,
            encoded: Mutex::default(),
        }
    }

    /// The response with the units in `order` to a question whose section is `question` (as
    /// it came, class included) with an OPT record advertising `edns_payload`: the bytes kept
    /// from an earlier `encode` of the same, else what `encode` gives now (kept while there is
    /// room), under a header with this question's `metadata`.
    pub fn encoded(
        &self,
        order: &[u32],
        edns_payload: Option<u16>,
        question: &[u8],
        metadata: Metadata,
        encode: impl FnOnce() -> Result<Vec<u8>, ProtoError>,
    ) -> Result<Vec<u8>, ProtoError> {
        let kept = {
            let encoded = self.encoded.lock().unwrap_or_else(PoisonError::into_inner);
            encoded
                .iter()
                .find(|e| {
                    e.order == order && e.edns_payload == edns_payload && *e.question == *question
                })
                .map(|e| {
                    let mut bytes = Vec::with_capacity(e.bytes.len().max(RESPONSE_CAPACITY));
                    bytes.extend_from_slice(&e.bytes);
                    bytes
                })
        };
        let mut bytes = match kept {
            Some(bytes) => bytes,
            None => {
                let bytes = encode()?;
                let mut encoded = self.encoded.lock().unwrap_or_else(PoisonError::into_inner);
                if encoded.len() < ENCODED_CAPACITY {
                    encoded.push(Encoded {
                        order: order.to_vec(),
                        edns_payload,
                        question: question.into(),
                        bytes: bytes.clone(),
                    });
                }
                bytes
            }
        };
        restamp(&mut bytes, metadata)?;
        Ok(bytes)
    }

    /// An upper bound of the answer and additional records' size on the wire with the units in
    /// `order`; `None` when it is not known without encoding.
    pub fn records_len(&self, order: &[u32]) -> Option<usize> {
        let units = self.unit_lens.as_ref()?;
        let picked: usize = order.iter().map(|&i| units[i as usize]).sum();
        Some(picked + self.tail_len?)
    }
}

/// Writes `metadata` (ID, flags, response code) over the header of the encoded response in
/// `bytes`, keeping its section counts.
fn restamp(bytes: &mut Vec<u8>, metadata: Metadata) -> Result<(), ProtoError> {
    let counts = Header::read(&mut BinDecoder::new(bytes))?.counts;
    Header { metadata, counts }.emit(&mut BinEncoder::new(bytes))
}

/// A question's name (its labels as asked) and type, as a cache key.
pub(crate) struct Key {
    bytes: [u8; KEY_CAPACITY],
    len: usize,
}

impl Key {
    /// The key of a question; `None` for a name too long to be valid.
    pub fn new(name: &Name, qtype: RecordType) -> Option<Key> {
        let mut key = Key {
            bytes: [0; KEY_CAPACITY],
            len: 0,
        };
        for label in name.iter() {
            let len = u8::try_from(label.len()).ok()?;
            key.push(&[len])?;
            key.push(label)?;
        }
        key.push(&u16::from(qtype).to_be_bytes())?;
        Some(key)
    }

    fn push(&mut self, bytes: &[u8]) -> Option<()> {
        let end = self.len + bytes.len();
        self.bytes.get_mut(self.len..end)?.copy_from_slice(bytes);
        self.len = end;
        Some(())
    }

    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// The cached service answers of one handler, shared by every socket it serves.
#[derive(Debug, Default)]
pub(crate) struct ServiceCache {
    entries: RwLock<HashMap<Box<[u8]>, Arc<CachedService>>>,
}

impl ServiceCache {
    pub fn get(&self, key: &Key) -> Option<Arc<CachedService>> {
        let entries = self
            .entries
            .read()
            .expect("no panic while holding the cache");
        entries.get(key.as_bytes()).cloned()
    }

    /// Keeps `entry` for `key`, replacing what was there.
    pub fn insert(&self, key: &Key, entry: Arc<CachedService>) {
        let mut entries = self
            .entries
            .write()
            .expect("no panic while holding the cache");
        if entries.len() >= CAPACITY && !entries.contains_key(key.as_bytes()) {
            entries.clear();
        }
        entries.insert(key.as_bytes().into(), entry);
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.read().expect("no panic").len()
    }
}

#[cfg(test)]
mod tests;
