//! The hickory request handler: turns one request into one response.
//!
//! The thin IO layer: it classifies the question, does the lookups through [`Lookup`] (or asks
//! the recursors), and hands the results to the pure [`crate::answer`] and [`crate::fit`]
//! modules. The clock and the random number generator are read here and passed down.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use hickory_proto::op::{
    Edns, Header, HeaderCounts, Message, MessageType, Metadata, OpCode, ResponseCode,
};
use hickory_proto::rr::{Name, RecordType};
use hickory_server::net::runtime::Time;
use hickory_server::net::xfer::Protocol;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use tracing::{debug, warn};

use crate::answer::{self, Answer, PtrTarget, Question};
use crate::config::{ConfigError, DnsConfig, Settings};
use crate::fit::{self, Limits, Transport};
use crate::lookup::{Lookup, LookupError};
use crate::name::{classify, MeshName, Zone};
use crate::recursor;

/// Answers DNS requests for the mesh domains from a [`Lookup`], and forwards the rest.
#[derive(Clone)]
pub struct DnsHandler {
    settings: Arc<Settings>,
    lookup: Arc<dyn Lookup>,
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
    Local(Answer),
    Recursed(Message),
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
        }
    }

    /// The whole response to `request`, sized for the transport it came over.
    pub(crate) async fn respond<R: Rng + Send>(
        &self,
        request: &Request,
        rng: &mut R,
        serial: u32,
    ) -> Message {
        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.recursion_available = !self.settings.recursors.is_empty();
        let mut message = Message::new(request.metadata.id, MessageType::Response, OpCode::Query);
        let client_payload = request.edns.as_ref().map(Edns::max_payload);
        if let Some(client) = &request.edns {
            let mut edns = Edns::new();
            edns.set_max_payload(fit::udp_payload(Some(client.max_payload())));
            message.edns = Some(edns);
            if client.version() > 0 {
                metadata.response_code = ResponseCode::BADVERS;
                message.metadata = metadata;
                return message;
            }
        }
        if request.metadata.op_code != OpCode::Query {
            metadata.response_code = ResponseCode::NotImp;
            message.metadata = metadata;
            return message;
        }
        let Ok(info) = request.request_info() else {
            metadata.response_code = ResponseCode::FormErr;
            message.metadata = metadata;
            return message;
        };
        let query = info.query.original().clone();
        let lower = Name::from(info.query.name().clone());
        let qtype = info.query.query_type();
        let transport = match request.protocol() {
            Protocol::Udp => Transport::Udp,
            _ => Transport::Tcp,
        };
        message.queries.push(query.clone());

        let reply = if matches!(qtype, RecordType::AXFR | RecordType::IXFR) {
            Reply::Local(Answer::code(ResponseCode::NotImp))
        } else {
            match classify(&lower, qtype, &self.settings.domains) {
                Zone::Mesh { domain, name } => {
                    metadata.authoritative = true;
                    let question = Question {
                        settings: &self.settings,
                        name: query.name(),
                        qtype,
                        domain: &self.settings.domains[domain],
                        serial,
                    };
                    Reply::Local(self.mesh(question, name, rng).await)
                }
                Zone::Reverse(addr) => {
                    let target = match addr {
                        Some(addr) => self.reverse(addr).await,
                        None => Ok(None),
                    };
                    match target {
                        Ok(Some(target)) => {
                            metadata.authoritative = true;
                            Reply::Local(answer::ptr(&self.settings, query.name(), qtype, target))
                        }
                        Ok(None) if self.settings.recursors.is_empty() => {
                            Reply::Local(Answer::code(ResponseCode::NXDomain))
                        }
                        Ok(None) => self.recurse(request, rng).await,
                        Err(error) => {
                            warn!(%error, name = %lower, "DNS lookup failed");
                            Reply::Local(Answer::code(ResponseCode::ServFail))
                        }
                    }
                }
                Zone::Outside if self.settings.recursors.is_empty() => {
                    Reply::Local(Answer::code(ResponseCode::Refused))
                }
                Zone::Outside => self.recurse(request, rng).await,
            }
        };

        match reply {
            Reply::Local(answer) => {
                metadata.response_code = answer.rcode;
                message.answers = answer.answers;
                message.authorities = answer.authorities;
                message.additionals = answer.additionals;
            }
            Reply::Recursed(upstream) => {
                metadata.response_code = upstream.metadata.response_code;
                metadata.authentic_data = upstream.metadata.authentic_data;
                message.answers = upstream.answers;
                message.authorities = upstream.authorities;
                message.additionals = upstream.additionals;
            }
        }
        message.metadata = metadata;
        let limits = Limits::new(transport, client_payload, self.settings.udp_answer_limit);
        let truncated = fit::fit(&mut message, limits);
        if truncated {
            debug!(name = %lower, %qtype, ?transport, answers = message.answers.len(), "DNS answer cut to fit");
        }
        message.metadata.truncation = truncated && self.settings.enable_truncate;
        message
    }

    async fn mesh<R: Rng + Send>(&self, q: Question<'_>, name: MeshName, rng: &mut R) -> Answer {
        let local = self.settings.datacenter.as_str();
        let result: Result<Answer, LookupError> = async {
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
                    q.apex(local, servers, rng)
                }
                MeshName::Service { service, tag, dc } => {
                    let dc = dc.as_deref().unwrap_or(local);
                    let instances = self.lookup.service(dc, &service, false).await?;
                    let instances = instances.as_deref().map(Vec::as_slice);
                    q.service(dc, &service, tag.as_deref(), instances, rng)
                }
                MeshName::Connect { service, dc } => {
                    let dc = dc.as_deref().unwrap_or(local);
                    let instances = self.lookup.service(dc, &service, true).await?;
                    let instances = instances.as_deref().map(Vec::as_slice);
                    q.service(dc, &service, None, instances, rng)
                }
                MeshName::Node { node, dc } => {
                    let dc = dc.as_deref().unwrap_or(local);
                    q.node(self.lookup.node(dc, &node).await?)
                }
                MeshName::Addr { ip } => q.addr(ip),
                MeshName::Unsupported(kind) => {
                    debug!(name = %q.name, kind, "DNS name form not supported");
                    q.nxdomain()
                }
                MeshName::Invalid => {
                    debug!(name = %q.name, "invalid DNS name");
                    q.nxdomain()
                }
            })
        }
        .await;
        result.unwrap_or_else(|error| {
            warn!(%error, name = %q.name, "DNS lookup failed");
            Answer::code(ResponseCode::ServFail)
        })
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
                Reply::Local(Answer::code(ResponseCode::ServFail))
            }
        }
    }
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
            let mut rng = SmallRng::from_rng(&mut rand::rng());
            let message = self.respond(request, &mut rng, serial_now()).await;
            let builder = MessageResponseBuilder::new(&request.queries, message.edns.as_ref());
            let response = builder.build(
                message.metadata,
                message.answers.iter(),
                message.authorities.iter(),
                std::iter::empty(),
                message.additionals.iter(),
            );
            match response_handle.send_response(response).await {
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

#[cfg(test)]
pub(crate) mod tests;
