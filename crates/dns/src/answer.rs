//! Building answers from what the catalog view returned: records, response codes, the SOA for
//! negative answers, health filtering and shuffling.
//!
//! Pure: the caller does the lookups and passes their results in, with the SOA serial (the
//! unix time) and the random number generator. Nothing here knows about sockets or sizes;
//! [`crate::fit`] sizes the result for its transport.

use std::collections::HashSet;
use std::net::IpAddr;

use catalog::{Node, Status};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{A, AAAA, CNAME, NS, PTR, SOA, SRV, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use rand::seq::SliceRandom;
use rand::Rng;

use crate::config::Settings;
use crate::lookup::Instance;
use crate::name::encode_addr;

/// A response's code and sections, before it is sized for its transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Answer {
    pub rcode: ResponseCode,
    pub answers: Vec<Record>,
    pub authorities: Vec<Record>,
    pub additionals: Vec<Record>,
}

impl Answer {
    /// A response with only a code (SERVFAIL, REFUSED, NOTIMP, ...).
    pub fn code(rcode: ResponseCode) -> Answer {
        Answer {
            rcode,
            answers: Vec::new(),
            authorities: Vec::new(),
            additionals: Vec::new(),
        }
    }
}

/// The records that answer one service question (a name and a type) for one set of instances,
/// before they are shuffled: built once while the instances stay the same, and picked in a
/// fresh random order for every question ([`ServiceRecords::pick`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ServiceRecords {
    /// No instance passed the health and tag filters: NXDOMAIN.
    pub nxdomain: bool,
    /// The alternatives shuffled per question: one address record, one SRV record with its
    /// target's additional records, or one CNAME.
    pub units: Vec<Unit>,
    /// How many of the shuffled units answer: all, at most `a_record_limit` addresses, or one
    /// CNAME.
    pub take: usize,
    /// Answers after the units, in this order: the nodes' TXT records (ANY and TXT questions).
    pub tail: Vec<Record>,
}

/// One answer record with the additional records that come with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unit {
    pub answer: Record,
    pub additionals: Vec<Record>,
}

impl Unit {
    fn new(answer: Record) -> Unit {
        Unit {
            answer,
            additionals: Vec::new(),
        }
    }
}

impl ServiceRecords {
    /// The units that answer one question, in a random order: a shuffle of all of them, cut to
    /// [`ServiceRecords::take`].
    pub fn pick<R: Rng + ?Sized>(&self, rng: &mut R) -> Vec<u32> {
        let count = u32::try_from(self.units.len()).expect("fewer than 2^32 records");
        let mut order: Vec<u32> = (0..count).collect();
        order.shuffle(rng);
        order.truncate(self.take);
        order
    }

    /// Whether a question gets any answer record (else NODATA, with the SOA).
    pub fn has_answers(&self) -> bool {
        !self.nxdomain && (self.take > 0 || !self.tail.is_empty())
    }

    /// The answer to question `q` with the units in `order` (from [`ServiceRecords::pick`]).
    pub fn answer(&self, q: &Question<'_>, order: &[u32]) -> Answer {
        if self.nxdomain {
            return q.nxdomain();
        }
        let units = || order.iter().map(|&i| &self.units[i as usize]);
        let answers = units()
            .map(|u| u.answer.clone())
            .chain(self.tail.iter().cloned())
            .collect();
        let additionals = units()
            .flat_map(|u| u.additionals.iter().cloned())
            .collect();
        q.finish(answers, additionals)
    }
}

/// One question under a mesh domain, with what every answer to it needs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Question<'a> {
    pub settings: &'a Settings,
    /// The question's name, in lower case.
    pub name: &'a Name,
    pub qtype: RecordType,
    /// The mesh domain the name is under: answers name records in it.
    pub domain: &'a Name,
    /// The SOA serial: the unix time of the question.
    pub serial: u32,
}

impl Question<'_> {
    /// The zone's SOA record, in the question's domain; its TTL is the SOA minimum.
    pub fn soa(&self) -> Record {
        let soa = &self.settings.soa;
        let label = |l: &str| {
            self.domain
                .prepend_label(l)
                .expect("a short label fits below any domain that is valid")
        };
        let rdata = SOA::new(
            label("ns"),
            label("hostmaster"),
            self.serial,
            clamp_i32(soa.refresh),
            clamp_i32(soa.retry),
            clamp_i32(soa.expire),
            soa.min_ttl,
        );
        Record::from_rdata(self.domain.clone(), soa.min_ttl, RData::SOA(rdata))
    }

    /// NXDOMAIN, with the SOA in the authority section.
    pub fn nxdomain(&self) -> Answer {
        Answer {
            rcode: ResponseCode::NXDomain,
            authorities: vec![self.soa()],
            ..Answer::code(ResponseCode::NoError)
        }
    }

    /// NOERROR with the given records; with no answers it is NODATA, with the SOA in the
    /// authority section.
    fn finish(&self, answers: Vec<Record>, additionals: Vec<Record>) -> Answer {
        let authorities = if answers.is_empty() {
            vec![self.soa()]
        } else {
            Vec::new()
        };
        Answer {
            rcode: ResponseCode::NoError,
            answers,
            authorities,
            additionals,
        }
    }

    fn wants(&self, rtype: RecordType) -> bool {
        self.qtype == rtype || self.qtype == RecordType::ANY
    }

    /// The apex of a mesh domain: SOA and NS (up to three shuffled servers, with glue).
    pub fn apex<R: Rng + ?Sized>(&self, dc: &str, mut servers: Vec<Node>, rng: &mut R) -> Answer {
        servers.shuffle(rng);
        let ttl = self.settings.node_ttl;
        let mut ns = Vec::new();
        let mut glue = Vec::new();
        for server in &servers {
            let dc = if server.datacenter.is_empty() {
                dc
            } else {
                &server.datacenter
            };
            let Some(target) = node_name(&server.name, dc, self.domain) else {
                continue;
            };
            let Ok(ip) = server.address.parse::<IpAddr>() else {
                continue;
            };
            glue.push(address(target.clone(), ttl, ip));
            ns.push(Record::from_rdata(
                self.domain.clone(),
                ttl,
                RData::NS(NS(target)),
            ));
            if ns.len() == 3 {
                break;
            }
        }
        match self.qtype {
            RecordType::SOA => Answer {
                rcode: ResponseCode::NoError,
                answers: vec![self.soa()],
                authorities: ns,
                additionals: glue,
            },
            RecordType::NS if !ns.is_empty() => self.finish(ns, glue),
            RecordType::ANY => {
                let mut answers = vec![self.soa()];
                answers.extend(ns);
                self.finish(answers, glue)
            }
            _ => self.finish(Vec::new(), Vec::new()),
        }
    }

    /// `[tag.]<service>.service` and `<service>.connect`: one A/AAAA per healthy instance, or
    /// SRV records with their targets' addresses in the additional section, in a random order.
    #[cfg(test)]
    pub fn service<R: Rng + ?Sized>(
        &self,
        dc: &str,
        service: &str,
        tag: Option<&str>,
        instances: Option<&[Instance]>,
        rng: &mut R,
    ) -> Answer {
        let records = self.service_records(dc, service, tag, instances);
        records.answer(self, &records.pick(rng))
    }

    /// The records of every answer to this question while the service's instances stay the
    /// same: built once, then shuffled per question ([`ServiceRecords::pick`]).
    pub fn service_records(
        &self,
        dc: &str,
        service: &str,
        tag: Option<&str>,
        instances: Option<&[Instance]>,
    ) -> ServiceRecords {
        let mut instances = healthy(instances.unwrap_or_default(), self.settings.only_passing);
        if let Some(tag) = tag {
            instances.retain(|i| i.service.tags.iter().any(|t| t.eq_ignore_ascii_case(tag)));
        }
        if instances.is_empty() {
            return ServiceRecords {
                nxdomain: true,
                ..ServiceRecords::default()
            };
        }
        let ttl = self.settings.service_ttl(service);
        if self.qtype == RecordType::SRV {
            self.service_srv(dc, &instances, ttl)
        } else {
            self.service_addresses(&instances, ttl)
        }
    }

    fn service_addresses(&self, instances: &[&Instance], ttl: u32) -> ServiceRecords {
        let limit = match self.settings.a_record_limit {
            0 => usize::MAX,
            n => n,
        };
        let mut units = Vec::new();
        let mut seen = HashSet::new();
        let mut cnames: Vec<Name> = Vec::new();
        let mut txt = Vec::new();
        for instance in instances {
            let addr = instance_address(instance);
            match addr.parse::<IpAddr>() {
                Ok(ip) => {
                    let wanted = match ip {
                        IpAddr::V4(_) => self.wants(RecordType::A),
                        IpAddr::V6(_) => self.wants(RecordType::AAAA),
                    };
                    if wanted && seen.insert(ip) {
                        units.push(Unit::new(address(self.name.clone(), ttl, ip)));
                    }
                }
                Err(_) => {
                    if let Some(target) = hostname(addr) {
                        if !cnames.contains(&target) {
                            cnames.push(target);
                        }
                    }
                }
            }
            if self.wants(RecordType::TXT) {
                for record in meta_txt(self.name, &instance.node, ttl) {
                    if !txt.contains(&record) {
                        txt.push(record);
                    }
                }
            }
        }
        // A name with a CNAME has no other records: only answer with one (of the instances'
        // host names, at random) when the instances give nothing else.
        if units.is_empty() && txt.is_empty() && !cnames.is_empty() {
            let units = cnames
                .into_iter()
                .map(|target| {
                    Unit::new(Record::from_rdata(
                        self.name.clone(),
                        ttl,
                        RData::CNAME(CNAME(target)),
                    ))
                })
                .collect();
            return ServiceRecords {
                nxdomain: false,
                units,
                take: 1,
                tail: Vec::new(),
            };
        }
        ServiceRecords {
            nxdomain: false,
            take: units.len().min(limit),
            units,
            tail: txt,
        }
    }

    fn service_srv(&self, dc: &str, instances: &[&Instance], ttl: u32) -> ServiceRecords {
        let mut units: Vec<Unit> = Vec::new();
        let mut seen = HashSet::new();
        // Each additional record is sent once, with the first unit that needs it.
        let mut sent: Vec<Record> = Vec::new();
        for instance in instances {
            let (node, service) = (&instance.node, &instance.service);
            if !seen.insert((&node.name, &service.address, service.port)) {
                continue;
            }
            let mut extra = Vec::new();
            let target = if service.address.is_empty() {
                match node.address.parse::<IpAddr>() {
                    Ok(ip) => {
                        let Some(target) = node_name(&node.name, dc, self.domain) else {
                            continue;
                        };
                        extra.push(address(target.clone(), ttl, ip));
                        if self.settings.node_meta_txt {
                            extra.extend(meta_txt(&target, node, ttl));
                        }
                        target
                    }
                    Err(_) => match hostname(&node.address) {
                        Some(target) => target,
                        None => continue,
                    },
                }
            } else {
                match service.address.parse::<IpAddr>() {
                    Ok(ip) => {
                        let Some(target) = addr_name(ip, dc, self.domain) else {
                            continue;
                        };
                        extra.push(address(target.clone(), ttl, ip));
                        target
                    }
                    Err(_) => match hostname(&service.address) {
                        Some(target) => target,
                        None => continue,
                    },
                }
            };
            let srv = SRV::new(1, weight(instance), service.port, target);
            let mut unit = Unit::new(Record::from_rdata(self.name.clone(), ttl, RData::SRV(srv)));
            for record in extra {
                if !sent.contains(&record) {
                    sent.push(record.clone());
                    unit.additionals.push(record);
                }
            }
            units.push(unit);
        }
        ServiceRecords {
            nxdomain: false,
            take: units.len(),
            units,
            tail: Vec::new(),
        }
    }

    /// `<node>.node`: the node's address, and its metadata as TXT records.
    pub fn node(&self, node: Option<Node>) -> Answer {
        let Some(node) = node else {
            return self.nxdomain();
        };
        let ttl = self.settings.node_ttl;
        let mut answers = Vec::new();
        let mut additionals = Vec::new();
        match node.address.parse::<IpAddr>() {
            Ok(ip @ IpAddr::V4(_)) if self.wants(RecordType::A) => {
                answers.push(address(self.name.clone(), ttl, ip));
            }
            Ok(ip @ IpAddr::V6(_)) if self.wants(RecordType::AAAA) => {
                answers.push(address(self.name.clone(), ttl, ip));
            }
            Ok(_) => {}
            Err(_) if self.qtype != RecordType::TXT => {
                if let Some(target) = hostname(&node.address) {
                    answers.push(Record::from_rdata(
                        self.name.clone(),
                        ttl,
                        RData::CNAME(CNAME(target)),
                    ));
                }
            }
            Err(_) => {}
        }
        let meta = meta_txt(self.name, &node, ttl);
        if self.wants(RecordType::TXT) {
            answers.extend(meta);
        } else if self.settings.node_meta_txt && !answers.is_empty() {
            additionals.extend(meta);
        }
        self.finish(answers, additionals)
    }

    /// `<hex>.addr`: the address spelled in the name.
    pub fn addr(&self, ip: IpAddr) -> Answer {
        let wanted = match ip {
            IpAddr::V4(_) => self.wants(RecordType::A),
            IpAddr::V6(_) => self.wants(RecordType::AAAA),
        };
        let answers = if wanted {
            vec![address(self.name.clone(), self.settings.node_ttl, ip)]
        } else {
            Vec::new()
        };
        self.finish(answers, Vec::new())
    }
}

/// What a reverse name points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PtrTarget {
    /// A node with that address: `<node>.node.<dc>.<domain>`.
    Node(Node),
    /// A service with an instance at that address: `<service>.service.<domain>`.
    Service(String),
}

/// The answer to a reverse name that matched a node or a service; names are in the primary
/// domain. Only PTR and ANY questions get the record.
pub(crate) fn ptr(
    settings: &Settings,
    name: &Name,
    qtype: RecordType,
    target: PtrTarget,
) -> Answer {
    let domain = settings.primary_domain();
    let target = match target {
        PtrTarget::Node(node) => node_name(&node.name, &settings.datacenter, domain),
        PtrTarget::Service(service) => labels(&service)
            .and_then(|n| n.append_label("service").ok())
            .and_then(|n| n.append_domain(domain).ok()),
    };
    let mut answer = Answer::code(ResponseCode::NoError);
    if let Some(target) = target {
        if qtype == RecordType::PTR || qtype == RecordType::ANY {
            answer.answers.push(Record::from_rdata(
                name.clone(),
                settings.node_ttl,
                RData::PTR(PTR(target)),
            ));
        }
    }
    answer
}

/// Drops instances with any critical check, and with `only_passing` any that is not passing.
pub(crate) fn healthy(instances: &[Instance], only_passing: bool) -> Vec<&Instance> {
    instances
        .iter()
        .filter(|i| {
            i.checks.iter().all(|c| match c.status {
                Status::Passing => true,
                Status::Warning => !only_passing,
                Status::Critical => false,
            })
        })
        .collect()
}

/// The SRV weight: `Weights.Passing` or `Weights.Warning` by the instance's aggregate status.
fn weight(instance: &Instance) -> u16 {
    let weights = instance.service.weights;
    let weight = match instance.status() {
        Status::Passing => weights.passing,
        Status::Warning => weights.warning,
        Status::Critical => 0,
    };
    u16::try_from(weight).unwrap_or(u16::MAX)
}

/// The address an instance is reached at: its own, else its node's.
fn instance_address(instance: &Instance) -> &str {
    if instance.service.address.is_empty() {
        &instance.node.address
    } else {
        &instance.service.address
    }
}

fn address(name: Name, ttl: u32, ip: IpAddr) -> Record {
    let rdata = match ip {
        IpAddr::V4(v4) => RData::A(A(v4)),
        IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
    };
    Record::from_rdata(name, ttl, rdata)
}

/// A name from dotted text, each part one label, not yet under any domain.
fn labels(text: &str) -> Option<Name> {
    Name::from_labels(text.split('.').map(str::as_bytes)).ok()
}

/// `<node>.node.<dc>.<domain>`.
fn node_name(node: &str, dc: &str, domain: &Name) -> Option<Name> {
    labels(node)?
        .append_label("node")
        .ok()?
        .append_label(dc.as_bytes())
        .ok()?
        .append_domain(domain)
        .ok()
}

/// `<hex>.addr.<dc>.<domain>`.
fn addr_name(ip: IpAddr, dc: &str, domain: &Name) -> Option<Name> {
    labels(&encode_addr(ip))?
        .append_label("addr")
        .ok()?
        .append_label(dc.as_bytes())
        .ok()?
        .append_domain(domain)
        .ok()
}

/// A host name used as an address (an external service), fully qualified.
fn hostname(host: &str) -> Option<Name> {
    let host = host.trim_end_matches('.');
    if host.is_empty() {
        return None;
    }
    Name::from_ascii(format!("{host}.")).ok()
}

/// A node's metadata as TXT records (RFC 1464 `key=value`; keys starting with `rfc1035-` give
/// the bare value), in key order.
fn meta_txt(name: &Name, node: &Node, ttl: u32) -> Vec<Record> {
    node.meta
        .iter()
        .map(|(key, value)| {
            let text = if key.to_ascii_lowercase().starts_with("rfc1035-") {
                value.clone()
            } else {
                rfc1464(key, value)
            };
            Record::from_rdata(name.clone(), ttl, RData::TXT(TXT::new(vec![text])))
        })
        .collect()
}

/// RFC 1464: in the key, backquote, `=` and leading and trailing spaces are quoted with a
/// backquote; in the value, only backquotes.
pub(crate) fn rfc1464(key: &str, value: &str) -> String {
    let escaped = key.replace('`', "``").replace('=', "`=");
    let body = escaped.trim_matches(' ');
    let leading = escaped.len() - escaped.trim_start_matches(' ').len();
    let trailing = if body.is_empty() {
        0
    } else {
        escaped.len() - escaped.trim_end_matches(' ').len()
    };
    format!(
        "{}{}{}={}",
        "` ".repeat(leading),
        body,
        "` ".repeat(trailing),
        value.replace('`', "``")
    )
}

fn clamp_i32(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests;
