//! Sizing a response for its transport, and cutting it to fit.
//!
//! Pure. UDP without EDNS gets 512 bytes and at most `udp_answer_limit` answers (as Consul);
//! UDP with EDNS gets the advertised buffer size; TCP gets 64 KiB. When answers are cut, the
//! additional records that belonged to the cut answers go with them, so what remains is
//! consistent, and the caller sets TC (which Consul does not do by default).
//!
//! Sizing does not encode: the size of each record without name compression is an upper bound
//! of what it takes in the message, so a response whose bound fits is sent as it is, encoded
//! once, by hickory. Only a response whose bound is over the limit is encoded here to learn
//! its real size, and cut if that is over too.

use std::collections::HashSet;

use hickory_proto::op::{Edns, Message};
use hickory_proto::rr::{Name, RData, Record};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder, NameEncoding};

/// The largest UDP payload we honour from an EDNS client (Consul's cap).
pub(crate) const MAX_EDNS_PAYLOAD: u16 = u16::MAX - 68;
/// The classic DNS limit for UDP without EDNS (RFC 1035 section 4.2.1).
pub(crate) const MIN_PAYLOAD: u16 = 512;
/// Consul's ceiling on `udp_answer_limit`.
const MAX_UDP_ANSWER_LIMIT: usize = 8;

/// The transport a question came over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    Udp,
    Tcp,
}

/// How big a response may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    pub max_bytes: usize,
    pub max_answers: usize,
}

impl Limits {
    /// The limits for a response over `transport` to a client that advertised `edns_payload`
    /// (`None`: no EDNS).
    pub fn new(transport: Transport, edns_payload: Option<u16>, udp_answer_limit: usize) -> Limits {
        match transport {
            Transport::Tcp => Limits {
                max_bytes: usize::from(u16::MAX),
                max_answers: usize::MAX,
            },
            Transport::Udp => {
                let max_bytes = udp_payload(edns_payload);
                let max_answers = if max_bytes == MIN_PAYLOAD && udp_answer_limit > 0 {
                    udp_answer_limit.min(MAX_UDP_ANSWER_LIMIT)
                } else {
                    usize::MAX
                };
                Limits {
                    max_bytes: usize::from(max_bytes),
                    max_answers,
                }
            }
        }
    }
}

/// The UDP payload size a client may receive: 512 without EDNS, else what it advertised,
/// within [512, [`MAX_EDNS_PAYLOAD`]].
pub(crate) fn udp_payload(edns_payload: Option<u16>) -> u16 {
    edns_payload.map_or(MIN_PAYLOAD, |p| p.clamp(MIN_PAYLOAD, MAX_EDNS_PAYLOAD))
}

/// Cuts `message` to `limits`: first to `max_answers` answers, then to as many answers as
/// fit in `max_bytes` with the additional records they refer to. Returns whether anything was
/// cut. If not even the authority section fits, it and the additional section are dropped.
pub(crate) fn fit(message: &mut Message, limits: Limits) -> bool {
    let total = message.answers.len();
    if total <= limits.max_answers && upper_len(message).is_some_and(|len| len <= limits.max_bytes)
    {
        return false;
    }
    if total <= limits.max_answers && encoded_len(message) <= limits.max_bytes {
        return false;
    }
    let answers = std::mem::take(&mut message.answers);
    let additionals = std::mem::take(&mut message.additionals);
    let set = |message: &mut Message, n: usize| {
        message.answers = answers[..n].to_vec();
        message.additionals = referenced(&additionals, &message.answers, &message.authorities);
    };
    let fits = |message: &Message| encoded_len(message) <= limits.max_bytes;

    // The largest n <= max_answers whose message fits: size grows with n.
    let (mut low, mut high) = (0, total.min(limits.max_answers));
    set(message, high);
    if !fits(message) {
        while low < high {
            let mid = (low + high).div_ceil(2);
            set(message, mid);
            if fits(message) {
                low = mid;
            } else {
                high = mid - 1;
            }
        }
        set(message, low);
    }
    if !fits(message) {
        message.authorities.clear();
        message.additionals.clear();
    }
    true
}

/// The additional records whose names the kept records point at (SRV and NS targets,
/// CNAME targets) or own (node metadata).
fn referenced(additionals: &[Record], answers: &[Record], authorities: &[Record]) -> Vec<Record> {
    let mut names: HashSet<&Name> = HashSet::new();
    for record in answers.iter().chain(authorities) {
        names.insert(&record.name);
        match &record.data {
            RData::SRV(srv) => {
                names.insert(&srv.target);
            }
            RData::NS(ns) => {
                names.insert(&ns.0);
            }
            RData::CNAME(cname) => {
                names.insert(&cname.0);
            }
            _ => {}
        }
    }
    additionals
        .iter()
        .filter(|r| names.contains(&r.name))
        .cloned()
        .collect()
}

/// The size of a DNS header.
const HEADER_LEN: usize = 12;
/// An OPT record without options: root name, type, class (the payload size), TTL (flags) and
/// an empty RDATA length.
const OPT_LEN: usize = 11;

/// An upper bound of the message's size on the wire: its size without name compression. `None`
/// when a record's size is not known without encoding it and it does not encode alone.
pub(crate) fn upper_len(message: &Message) -> Option<usize> {
    let mut len = skeleton_len(
        message.queries.iter().map(|q| q.name()),
        message.edns.as_ref(),
    )?;
    for record in message
        .answers
        .iter()
        .chain(&message.authorities)
        .chain(&message.additionals)
    {
        len += record_len(record)?;
    }
    Some(len)
}

/// The size of a response with no records, at most: header, questions (named `names`) and the
/// OPT record. `None` when the OPT record carries options.
pub(crate) fn skeleton_len<'a>(
    names: impl IntoIterator<Item = &'a Name>,
    edns: Option<&Edns>,
) -> Option<usize> {
    let questions: usize = names.into_iter().map(|name| name_len(name) + 4).sum();
    let opt = match edns {
        None => 0,
        Some(edns) if edns.options().options.is_empty() => OPT_LEN,
        Some(_) => return None,
    };
    Some(HEADER_LEN + questions + opt)
}

/// A record's size on the wire without name compression: an upper bound of its size in any
/// message. `None` when it cannot be encoded alone (it cannot be sent either).
pub(crate) fn record_len(record: &Record) -> Option<usize> {
    // Owner name, then type, class, TTL and RDATA length.
    let fixed = name_len(&record.name) + 10;
    let rdata = match &record.data {
        RData::A(_) => 4,
        RData::AAAA(_) => 16,
        RData::SRV(srv) => 6 + name_len(&srv.target),
        RData::CNAME(name) => name_len(&name.0),
        RData::NS(name) => name_len(&name.0),
        RData::PTR(name) => name_len(&name.0),
        _ => return uncompressed_len(record),
    };
    Some(fixed + rdata)
}

/// A name's size on the wire, uncompressed: each label with its length byte, then the root.
fn name_len(name: &Name) -> usize {
    name.iter().map(|label| label.len() + 1).sum::<usize>() + 1
}

/// The record encoded alone with no name compression.
fn uncompressed_len(record: &Record) -> Option<usize> {
    let mut bytes = Vec::with_capacity(128);
    let mut encoder = BinEncoder::new(&mut bytes);
    encoder.set_name_encoding(NameEncoding::Uncompressed);
    record.emit(&mut encoder).ok()?;
    Some(bytes.len())
}

/// The message's size on the wire (with name compression, as it will be sent).
pub(crate) fn encoded_len(message: &Message) -> usize {
    message.to_vec().map_or(usize::MAX, |bytes| bytes.len())
}

#[cfg(test)]
mod tests;
