//! The hickory request handler: turns one request into one response.
//!
//! The thin IO layer: it classifies the question, does the lookups through [`Lookup`] (or asks
//! the recursors), and hands the results to the pure [`crate::answer`] and [`crate::fit`]
//! modules. The clock and the random number generator are read here and passed down.
//!
//! Service answers are kept in a [`ServiceCache`] and reused while the lookup returns the same
//! instances: a repeated question costs a hash lookup and a shuffle, and its records go to
//! hickory's encoder by reference, encoded once.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use hickory_proto::op::{
    Edns, Header, HeaderCounts, Message, MessageType, Metadata, OpCode, Query, ResponseCode,
};
use hickory_proto::rr::{Name, Record, RecordType};
use hickory_server::net::runtime::Time;
use hickory_server::net::xfer::Protocol;
use hickory_server::net::NetError;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::{MessageResponse, MessageResponseBuilder, Queries};
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, RngCore, SeedableRng};
use tracing::{debug, warn};

use crate::answer::{self, Answer, PtrTarget, Question};
use crate::cache::{self, CachedService, ServiceCache, Target};
use crate::config::{ConfigError, DnsConfig, Settings};
use crate::fit::{self, Limits, Transport};
use crate::lookup::{Lookup, LookupError};
use crate::name::{classify, MeshName, Zone};
use crate::recursor;
use crate::stats::{DnsStats, QueryKind};

/// Answers DNS requests for the mesh domains from a [`Lookup`], and forwards the rest.
#[derive(Clone)]
pub struct DnsHandler {
    settings: Arc<Settings>,
    lookup: Arc<dyn Lookup>,
    cache: Arc<ServiceCache>,
    stats: Arc<DnsStats>,
}

impl std::fmt::Debug for DnsHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsHandler")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// A response before it is sized: answered here, or by a recursor.
enum Reply {
    Local(Local),
    Recursed(Message),
}

/// An answer from the mesh's own records.
enum Local {
    Answer(Answer),
    /// A service's records, shared with the questions that follow for the same name.
    Service(Arc<CachedService>),
}

/// What answering and sizing one question needs besides its records.
#[derive(Clone, Copy)]
struct Asked<'a> {
    /// The question as asked (answers are named as asked).
    query: &'a Query,
    limits: Limits,
    transport: Transport,
    /// The SOA serial: the unix time of the question.
    serial: u32,
}

/// A response ready to be sent, sized for its transport.
pub(crate) enum Response {
    /// Built for this question alone.
    Message(Message),
    /// A service's cached records in the order drawn for this question, as they are: they fit.
    Service {
        metadata: Metadata,
        edns: Option<Edns>,
        entry: Arc<CachedService>,
        order: Vec<u32>,
    },
}

impl Response {
    /// The response as a message, with `query` as its question (for tests).
    #[cfg(test)]
    pub(crate) fn into_message(self, query: Option<&Query>) -> Message {
        match self {
            Response::Message(message) => message,
            Response::Service {
                metadata,
                edns,
                entry,
                order,
            } => {
                let mut message = Message::new(metadata.id, MessageType::Response, OpCode::Query);
                message.metadata = metadata;
                message.edns = edns;
                message.queries.extend(query.cloned());
                let records = &entry.records;
                let units = || order.iter().map(|&i| &records.units[i as usize]);
                message.answers = units()
                    .map(|u| u.answer.clone())
                    .chain(records.tail.iter().cloned())
                    .collect();
                message.additionals = units()
                    .flat_map(|u| u.additionals.iter().cloned())
                    .collect();
                message
            }
        }
    }
}

impl DnsHandler {
    /// A handler for `config` (its `bind` address aside) over `lookup`, for callers that run
    /// their own hickory server; [`crate::DnsServer`] makes one itself.
    pub fn new(config: &DnsConfig, lookup: Arc<dyn Lookup>) -> Result<DnsHandler, ConfigError> {
        Ok(DnsHandler::from_settings(Settings::new(config)?, lookup))
    }

    pub(crate) fn from_settings(settings: Settings, lookup: Arc<dyn Lookup>) -> DnsHandler {
        DnsHandler {
            settings: Arc::new(settings),
            lookup,
            cache: Arc::default(),
            stats: Arc::default(),
        }
    }

    /// What this handler has counted since it was made.
    pub fn stats(&self) -> Arc<DnsStats> {
        self.stats.clone()
    }

    /// The whole response to `request` as a message, sized for the transport it came over.
    #[cfg(test)]
    pub(crate) async fn respond<R: Rng + Send>(
        &self,
        request: &Request,
        rng: &mut R,
        serial: u32,
    ) -> Message {
        let response = self.answer(request, rng, serial).await;
        let query = request
            .request_info()
            .ok()
            .map(|info| info.query.original());
        response.into_message(query)
    }

    /// The response to `request` now: [`Self::answer`] with this thread's generator and the
    /// clock.
    pub(crate) async fn answer_now(&self, request: &Request) -> Response {
        let mut rng = question_rng();
        self.answer(request, &mut rng, serial_now()).await
    }

    /// The response to `request`, sized for the transport it came over; counted in
    /// [`DnsStats`] by the kind of question and how long answering took.
    pub(crate) async fn answer<R: Rng + Send>(
        &self,
        request: &Request,
        rng: &mut R,
        serial: u32,
    ) -> Response {
        let started = std::time::Instant::now();
        let mut kind = QueryKind::Other;
        let response = self
            .classified_answer(request, rng, serial, &mut kind)
            .await;
        let servfail = matches!(
            &response,
            Response::Message(message) if message.metadata.response_code == ResponseCode::ServFail
        );
        self.stats.record(kind, started.elapsed(), servfail);
        response
    }

    /// [`Self::answer`], telling `kind` what was asked.
    async fn classified_answer<R: Rng + Send>(
        &self,
        request: &Request,
        rng: &mut R,
        serial: u32,
        kind: &mut QueryKind,
    ) -> Response {
        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.recursion_available = !self.settings.recursors.is_empty();
        let client_payload = request.edns.as_ref().map(Edns::max_payload);
        let edns = request.edns.as_ref().map(|_| {
            let mut edns = Edns::new();
            edns.set_max_payload(fit::udp_payload(client_payload));
            edns
        });
        let only_code = |mut metadata: Metadata, edns: Option<Edns>, rcode: ResponseCode| {
            let mut message =
                Message::new(request.metadata.id, MessageType::Response, OpCode::Query);
            metadata.response_code = rcode;
            message.metadata = metadata;
            message.edns = edns;
            Response::Message(message)
        };
        if request
            .edns
            .as_ref()
            .is_some_and(|client| client.version() > 0)
        {
            return only_code(metadata, edns, ResponseCode::BADVERS);
        }
        if request.metadata.op_code != OpCode::Query {
            return only_code(metadata, edns, ResponseCode::NotImp);
        }
        let Ok(info) = request.request_info() else {
            return only_code(metadata, edns, ResponseCode::FormErr);
        };
        let query = info.query.original();
        let qtype = query.query_type();
        let transport = match request.protocol() {
            Protocol::Udp => Transport::Udp,
            _ => Transport::Tcp,
        };
        let asked = Asked {
            query,
            limits: Limits::new(transport, client_payload, self.settings.udp_answer_limit),
            transport,
            serial,
        };

        // A service question asked before, whose instances are still the ones answered then.
        let key = cache::Key::new(query.name(), qtype);
        if let Some(entry) = key.as_ref().and_then(|key| self.cache.get(key)) {
            let target = &entry.target;
            let now = self
                .lookup
                .service_now(&target.dc, &target.service, target.connect);
            if matches!(now, Some(Some(instances)) if Arc::ptr_eq(&instances, &entry.instances)) {
                *kind = QueryKind::Domain;
                metadata.authoritative = true;
                return self.service_response(metadata, edns, asked, &entry, rng);
            }
        }

        let lower = Name::from(info.query.name().clone());
        let reply = if matches!(qtype, RecordType::AXFR | RecordType::IXFR) {
            Reply::Local(Local::Answer(Answer::code(ResponseCode::NotImp)))
        } else {
            match classify(&lower, qtype, &self.settings.domains) {
                Zone::Mesh { domain, name } => {
                    *kind = QueryKind::Domain;
                    metadata.authoritative = true;
                    let question = Question {
                        settings: &self.settings,
                        name: query.name(),
                        qtype,
                        domain: &self.settings.domains[domain],
                        serial,
                    };
                    Reply::Local(self.mesh(question, domain, name, key.as_ref(), rng).await)
                }
                Zone::Reverse(addr) => {
                    *kind = QueryKind::Ptr;
                    let target = match addr {
                        Some(addr) => self.reverse(addr).await,
                        None => Ok(None),
                    };
                    match target {
                        Ok(Some(target)) => {
                            metadata.authoritative = true;
                            let answer = answer::ptr(&self.settings, query.name(), qtype, target);
                            Reply::Local(Local::Answer(answer))
                        }
                        Ok(None) if self.settings.recursors.is_empty() => {
                            Reply::Local(Local::Answer(Answer::code(ResponseCode::NXDomain)))
                        }
                        Ok(None) => self.recurse(request, rng).await,
                        Err(error) => {
                            warn!(%error, name = %lower, "DNS lookup failed");
                            Reply::Local(Local::Answer(Answer::code(ResponseCode::ServFail)))
                        }
                    }
                }
                Zone::Outside if self.settings.recursors.is_empty() => {
                    Reply::Local(Local::Answer(Answer::code(ResponseCode::Refused)))
                }
                Zone::Outside => {
                    *kind = QueryKind::Recursed;
                    self.recurse(request, rng).await
                }
            }
        };

        let (answers, authorities, additionals) = match reply {
            Reply::Local(Local::Service(entry)) => {
                return self.service_response(metadata, edns, asked, &entry, rng);
            }
            Reply::Local(Local::Answer(answer)) => {
                metadata.response_code = answer.rcode;
                (answer.answers, answer.authorities, answer.additionals)
            }
            Reply::Recursed(upstream) => {
                metadata.response_code = upstream.metadata.response_code;
                metadata.authentic_data = upstream.metadata.authentic_data;
                (upstream.answers, upstream.authorities, upstream.additionals)
            }
        };
        let mut message = Message::new(request.metadata.id, MessageType::Response, OpCode::Query);
        message.edns = edns;
        message.queries.push(query.clone());
        message.answers = answers;
        message.authorities = authorities;
        message.additionals = additionals;
        message.metadata = metadata;
        self.sized(message, asked)
    }

    /// `message` cut to fit, with TC set when something was cut (unless disabled).
    fn sized(&self, mut message: Message, asked: Asked<'_>) -> Response {
        let truncated = fit::fit(&mut message, asked.limits);
        if truncated {
            debug!(
                name = %asked.query.name(),
                qtype = %asked.query.query_type(),
                transport = ?asked.transport,
                answers = message.answers.len(),
                "DNS answer cut to fit"
            );
        }
        message.metadata.truncation = truncated && self.settings.enable_truncate;
        Response::Message(message)
    }

    /// The answer from a service's records: shuffled for this question and sent as they are
    /// when they fit, else copied into a message that is cut to fit.
    fn service_response<R: Rng>(
        &self,
        mut metadata: Metadata,
        edns: Option<Edns>,
        asked: Asked<'_>,
        entry: &Arc<CachedService>,
        rng: &mut R,
    ) -> Response {
        let (query, limits) = (asked.query, asked.limits);
        let records = &entry.records;
        let order = if records.has_answers() {
            let order = records.pick(rng);
            let answers = order.len() + records.tail.len();
            let fits = answers <= limits.max_answers
                && fit::skeleton_len([query.name()], edns.as_ref())
                    .zip(entry.records_len(&order))
                    .is_some_and(|(skeleton, records)| skeleton + records <= limits.max_bytes);
            if fits {
                metadata.response_code = ResponseCode::NoError;
                return Response::Service {
                    metadata,
                    edns,
                    entry: entry.clone(),
                    order,
                };
            }
            order
        } else {
            Vec::new()
        };
        let question = Question {
            settings: &self.settings,
            name: query.name(),
            qtype: query.query_type(),
            domain: &self.settings.domains[entry.domain],
            serial: asked.serial,
        };
        let answer = records.answer(&question, &order);
        let mut message = Message::new(metadata.id, MessageType::Response, OpCode::Query);
        metadata.response_code = answer.rcode;
        message.metadata = metadata;
        message.edns = edns;
        message.queries.push(query.clone());
        message.answers = answer.answers;
        message.authorities = answer.authorities;
        message.additionals = answer.additionals;
        self.sized(message, asked)
    }

    async fn mesh<R: Rng + Send>(
        &self,
        q: Question<'_>,
        domain: usize,
        name: MeshName,
        key: Option<&cache::Key>,
        rng: &mut R,
    ) -> Local {
        let local = self.settings.datacenter.as_str();
        let result: Result<Local, LookupError> = async {
            Ok(match name {
                MeshName::Apex => {
                    let wants_ns =
                        matches!(q.qtype, RecordType::SOA | RecordType::NS | RecordType::ANY);
                    let servers = if wants_ns {
                        // As Consul: without the server list the SOA is still answered.
                        self.lookup.servers(local).await.unwrap_or_else(|error| {
                            warn!(%error, "cannot list servers for NS records");
                            Vec::new()
                        })
                    } else {
                        Vec::new()
                    };
                    Local::Answer(q.apex(local, servers, rng))
                }
                MeshName::Service { service, tag, dc } => {
                    let target = Target {
                        dc: dc.unwrap_or_else(|| local.to_owned()),
                        service,
                        connect: false,
                    };
                    self.service(q, domain, target, tag.as_deref(), key).await?
                }
                MeshName::Connect { service, dc } => {
                    let target = Target {
                        dc: dc.unwrap_or_else(|| local.to_owned()),
                        service,
                        connect: true,
                    };
                    self.service(q, domain, target, None, key).await?
                }
                MeshName::Node { node, dc } => {
                    let dc = dc.as_deref().unwrap_or(local);
                    Local::Answer(q.node(self.lookup.node(dc, &node).await?))
                }
                MeshName::Addr { ip } => Local::Answer(q.addr(ip)),
                MeshName::Unsupported(kind) => {
                    debug!(name = %q.name, kind, "DNS name form not supported");
                    Local::Answer(q.nxdomain())
                }
                MeshName::Invalid => {
                    debug!(name = %q.name, "invalid DNS name");
                    Local::Answer(q.nxdomain())
                }
            })
        }
        .await;
        result.unwrap_or_else(|error| {
            warn!(%error, name = %q.name, "DNS lookup failed");
            Local::Answer(Answer::code(ResponseCode::ServFail))
        })
    }

    /// A service's records for question `q`: the cached ones when they were built from the
    /// instances the lookup has now, else built (and cached under `key`).
    async fn service(
        &self,
        q: Question<'_>,
        domain: usize,
        target: Target,
        tag: Option<&str>,
        key: Option<&cache::Key>,
    ) -> Result<Local, LookupError> {
        let instances = match self
            .lookup
            .service_now(&target.dc, &target.service, target.connect)
        {
            Some(instances) => instances,
            None => {
                self.lookup
                    .service(&target.dc, &target.service, target.connect)
                    .await?
            }
        };
        let Some(instances) = instances else {
            // An unknown datacenter.
            return Ok(Local::Answer(q.nxdomain()));
        };
        if let Some(entry) = key.and_then(|key| self.cache.get(key)) {
            if Arc::ptr_eq(&entry.instances, &instances) {
                return Ok(Local::Service(entry));
            }
        }
        let records = q.service_records(&target.dc, &target.service, tag, Some(&instances));
        let entry = Arc::new(CachedService::new(target, domain, instances, records));
        if let Some(key) = key {
            self.cache.insert(key, entry.clone());
        }
        Ok(Local::Service(entry))
    }

    async fn reverse(&self, addr: std::net::IpAddr) -> Result<Option<PtrTarget>, LookupError> {
        let dc = self.settings.datacenter.as_str();
        if let Some(node) = self.lookup.node_by_addr(dc, addr).await? {
            return Ok(Some(PtrTarget::Node(node)));
        }
        Ok(self
            .lookup
            .service_by_addr(dc, addr)
            .await?
            .map(PtrTarget::Service))
    }

    async fn recurse<R: Rng + Send>(&self, request: &Request, rng: &mut R) -> Reply {
        let mut recursors = self.settings.recursors.clone();
        if self.settings.recursor_random {
            recursors.shuffle(rng);
        }
        match recursor::recurse(
            request.as_slice(),
            &recursors,
            self.settings.recursor_timeout,
        )
        .await
        {
            Ok(upstream) => Reply::Recursed(upstream),
            Err(error) => {
                warn!(%error, "DNS recursion failed");
                Reply::Local(Local::Answer(Answer::code(ResponseCode::ServFail)))
            }
        }
    }
}

thread_local! {
    /// This thread's generator, seeded once from the OS. Shuffles need no cryptographic
    /// strength, and seeding from `rand::rng()` for every question cost more than the rest of
    /// answering it from the cache.
    static RNG: RefCell<SmallRng> = RefCell::new(SmallRng::from_rng(&mut rand::rng()));
}

/// A generator for one question (it is held across awaits, so it cannot borrow the thread's).
fn question_rng() -> SmallRng {
    RNG.with(|rng| SmallRng::seed_from_u64(rng.borrow_mut().next_u64()))
}

/// The current unix time as an SOA serial.
fn serial_now() -> u32 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    u32::try_from(secs).unwrap_or(u32::MAX)
}

// Written out as `async_trait` expands it, so as not to depend on the macro crate.
impl RequestHandler for DnsHandler {
    fn handle_request<'life0, 'life1, 'async_trait, R, T>(
        &'life0 self,
        request: &'life1 Request,
        mut response_handle: R,
    ) -> Pin<Box<dyn Future<Output = ResponseInfo> + Send + 'async_trait>>
    where
        R: 'async_trait + ResponseHandler,
        T: 'async_trait + Time,
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move {
            let response = self.answer_now(request).await;
            match send(request, &response, &mut response_handle).await {
                Ok(info) => info,
                Err(error) => {
                    warn!(%error, "failed to send DNS response");
                    let mut metadata = Metadata::response_from_request(&request.metadata);
                    metadata.response_code = ResponseCode::ServFail;
                    ResponseInfo::from(Header {
                        metadata,
                        counts: HeaderCounts::default(),
                    })
                }
            }
        })
    }
}

/// Sends `response` to `request` through `handle`, which has hickory encode it.
pub(crate) async fn send<R: ResponseHandler>(
    request: &Request,
    response: &Response,
    handle: &mut R,
) -> Result<ResponseInfo, NetError> {
    match response {
        Response::Message(message) => {
            let builder = MessageResponseBuilder::new(&request.queries, message.edns.as_ref());
            let response = builder.build(
                message.metadata,
                message.answers.iter(),
                message.authorities.iter(),
                std::iter::empty(),
                message.additionals.iter(),
            );
            handle.send_response(response).await
        }
        Response::Service {
            metadata,
            edns,
            entry,
            order,
        } => {
            let response =
                service_message(&request.queries, *metadata, edns.as_ref(), entry, order);
            handle.send_response(response).await
        }
    }
}

/// The response to `queries` made of `entry`'s records with the units in `order`.
pub(crate) fn service_message<'q>(
    queries: &'q Queries,
    metadata: Metadata,
    edns: Option<&'q Edns>,
    entry: &'q CachedService,
    order: &'q [u32],
) -> MessageResponse<
    'q,
    'q,
    impl Iterator<Item = &'q Record> + Send + 'q,
    impl Iterator<Item = &'q Record> + Send + 'q,
    impl Iterator<Item = &'q Record> + Send + 'q,
    impl Iterator<Item = &'q Record> + Send + 'q,
> {
    let records = &entry.records;
    let units = order.iter().map(|&i| &records.units[i as usize]);
    MessageResponseBuilder::new(queries, edns).build(
        metadata,
        units.clone().map(|u| &u.answer).chain(&records.tail),
        std::iter::empty(),
        std::iter::empty(),
        units.flat_map(|u| &u.additionals),
    )
}

#[cfg(test)]
pub(crate) mod tests;
