//! One UDP socket's datagram loop: each question is decoded by hickory, answered by the
//! [`RequestHandler`], encoded by hickory and sent from the same loop.
//!
//! hickory-server's own UDP loop spawns a task per datagram and routes every answer through a
//! channel to a task that owns the socket; on a worker thread of its own that machinery cost
//! more per question than answering from the cache (`docs/benchmarks.md`, DNS). Here the
//! datagrams that have arrived are read in a batch, each question whose answer is ready (the
//! cache, the agent's view) is answered in place, with no task, channel or wake-up, and the
//! batch's answers are then sent together, so a busy client reads them in bursts too. A
//! service's records in an order answered before go out as the bytes hickory encoded then
//! ([`crate::cache::CachedService::encoded`]). A question that has to wait (a watch's
//! first answer, a PTR lookup, a recursor) becomes a task on this thread and sends its answer
//! when it has one, so it never holds up the questions behind it.
//! Decoding, the checks hickory makes before answering (a sane source address, no responses,
//! FORMERR for what does not decode) and encoding are hickory's, as on TCP.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Waker};

use hickory_proto::op::{Edns, Header, HeaderCounts, MessageType, Metadata, OpCode, ResponseCode};
use hickory_proto::rr::Record;
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder, BinEncodable, BinEncoder};
use hickory_proto::ProtoError;
use hickory_server::net::xfer::Protocol;
use hickory_server::net::NetError;
use hickory_server::server::{Request, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::{MessageResponse, MessageResponseBuilder, Queries};
use tokio::net::UdpSocket;
use tokio::task::JoinSet;
use tracing::{debug, warn};

use crate::handler::{self, DnsHandler, Response};

/// The largest datagram read (hickory's receive size): a question is far smaller.
const MAX_DATAGRAM: usize = 4096;
/// The most datagrams read before answering them.
const BATCH: usize = 64;
/// The size of a response without EDNS (RFC 1035 section 4.2.1).
const CLASSIC_PAYLOAD: u16 = 512;

/// Answers the questions that arrive on `socket`; returns only when it fails for good.
pub(crate) async fn serve(socket: UdpSocket, handler: DnsHandler) -> io::Error {
    let socket = Arc::new(socket);
    let outbox = Arc::new(Mutex::new(Outbox::default()));
    let mut waiting = JoinSet::new();
    let mut datagram = vec![0u8; MAX_DATAGRAM];
    let mut received = Vec::with_capacity(BATCH);
    let mut sending = Vec::with_capacity(BATCH);
    loop {
        if let Err(error) = socket.readable().await {
            return error;
        }
        while received.len() < BATCH {
            match socket.try_recv_from(&mut datagram) {
                Ok((len, src)) => received.push((datagram[..len].to_vec(), src)),
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                Err(error) if unrecoverable(&error) => return error,
                Err(error) => {
                    warn!(%error, "receiving a DNS question over UDP failed");
                    break;
                }
            }
        }
        // Nothing else runs on this thread until the batch is sent, so every answer given in
        // place lands in the outbox, and only those.
        lock(&outbox).collecting = true;
        for (bytes, src) in received.drain(..) {
            if let Err(why) = answerable(src) {
                debug!(%src, why, "DNS question dropped");
                continue;
            }
            let reply = UdpReply {
                socket: socket.clone(),
                dst: src,
                outbox: outbox.clone(),
            };
            let Some(question) = question(bytes, src, reply, &handler) else {
                continue;
            };
            let mut question = Box::pin(question);
            // Ready at once when answered from memory; otherwise it waits as a task of its own.
            if question
                .as_mut()
                .poll(&mut Context::from_waker(Waker::noop()))
                .is_pending()
            {
                waiting.spawn(question);
            }
        }
        {
            let mut outbox = lock(&outbox);
            outbox.collecting = false;
            std::mem::swap(&mut outbox.answers, &mut sending);
        }
        for (bytes, dst) in sending.drain(..) {
            if let Err(error) = send(&socket, &bytes, dst).await {
                debug!(%dst, %error, "sending a DNS answer over UDP failed");
            }
        }
        while waiting.try_join_next().is_some() {}
    }
}

/// Answering one datagram from `src`, or `None` when it gets no answer at all.
fn question(
    datagram: Vec<u8>,
    src: SocketAddr,
    reply: UdpReply,
    handler: &DnsHandler,
) -> Option<impl Future<Output = ()> + Send + 'static> {
    // Shorter than a header: not DNS, and nothing to answer to.
    let header = Header::read(&mut BinDecoder::new(&datagram)).ok()?;
    let request = Request::from_bytes(datagram, src, Protocol::Udp);
    let handler = handler.clone();
    Some(async move {
        let mut reply = reply;
        match request {
            Ok(request) if request.metadata.message_type == MessageType::Response => {
                // Never answer an answer: it could be a reflection.
            }
            Ok(request) => {
                if let Err(error) = answer(&handler, &request, &mut reply).await {
                    warn!(%src, %error, "failed to send a DNS response");
                }
            }
            Err(error) => {
                debug!(%src, %error, "DNS question does not decode");
                // hickory answers FORMERR without the question, which did not decode.
                let Ok(queries) = Queries::read(&mut BinDecoder::new(&[]), 0) else {
                    return;
                };
                let response = MessageResponseBuilder::new(&queries, None)
                    .error_msg(&header.metadata, ResponseCode::FormErr);
                if let Err(error) = reply.send_response(response).await {
                    warn!(%error, "failed to send a DNS FORMERR");
                }
            }
        }
    })
}

/// Answers `request` through `reply`: a service's records as kept encoded for their order,
/// anything else encoded by hickory now.
async fn answer(
    handler: &DnsHandler,
    request: &Request,
    reply: &mut UdpReply,
) -> Result<(), NetError> {
    let response = handler.answer_now(request).await;
    let Response::Service {
        metadata,
        edns,
        entry,
        order,
    } = &response
    else {
        return handler::send(request, &response, reply).await.map(drop);
    };
    let encoded = entry.encoded(
        order,
        edns.as_ref().map(Edns::max_payload),
        request.queries.as_bytes(),
        *metadata,
        || {
            let message =
                handler::service_message(&request.queries, *metadata, edns.as_ref(), entry, order);
            UdpReply::encode(message).map(|(_, bytes)| bytes)
        },
    );
    let bytes = match encoded {
        Ok(bytes) => bytes,
        Err(error) => servfail(metadata.id, &error)?,
    };
    Ok(reply.deliver(bytes).await?)
}

/// Whether an answer may be sent to `src` (hickory's check: not port 0, not an unspecified or
/// broadcast address).
fn answerable(src: SocketAddr) -> Result<(), &'static str> {
    if src.port() == 0 {
        return Err("source port 0");
    }
    match src {
        SocketAddr::V4(v4) if v4.ip().is_unspecified() || v4.ip().is_broadcast() => {
            Err("unspecified or broadcast source")
        }
        SocketAddr::V6(v6) if v6.ip().is_unspecified() => Err("unspecified source"),
        _ => Ok(()),
    }
}

/// Errors after which the socket serves no more (hickory's list).
fn unrecoverable(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::NotConnected | io::ErrorKind::ConnectionAborted
    )
}

/// The answers of the batch being answered, sent once it is.
#[derive(Default)]
struct Outbox {
    /// Whether a batch is being answered in place.
    collecting: bool,
    answers: Vec<(Vec<u8>, SocketAddr)>,
}

/// Only this thread takes the lock, so it is never contended; a panic while holding it (none
/// can happen) would leave nothing half-done.
fn lock(outbox: &Mutex<Outbox>) -> std::sync::MutexGuard<'_, Outbox> {
    outbox
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Sends `bytes` to `dst`: at once when the socket can take it, else once it can.
async fn send(socket: &UdpSocket, bytes: &[u8], dst: SocketAddr) -> io::Result<()> {
    match socket.try_send_to(bytes, dst) {
        Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
            socket.send_to(bytes, dst).await.map(drop)
        }
        sent => sent.map(drop),
    }
}

/// Where one question's answer goes: encoded by hickory, then into the batch's outbox when it
/// was answered in place, or straight onto the socket when it had to wait.
#[derive(Clone)]
struct UdpReply {
    socket: Arc<UdpSocket>,
    dst: SocketAddr,
    outbox: Arc<Mutex<Outbox>>,
}

impl UdpReply {
    /// `response` on the wire, within the client's UDP payload size.
    fn encode<'a>(
        response: MessageResponse<
            '_,
            'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
        >,
    ) -> Result<(ResponseInfo, Vec<u8>), ProtoError> {
        let max = response
            .edns()
            .map_or(CLASSIC_PAYLOAD, |edns| edns.max_payload());
        let mut bytes = Vec::with_capacity(usize::from(max).min(1232));
        let mut encoder = BinEncoder::new(&mut bytes);
        encoder.set_max_size(max);
        let info = response.destructive_emit(&mut encoder)?;
        Ok((info, bytes))
    }

    /// Sends an encoded answer: into the outbox while a batch is answered in place, else
    /// straight onto the socket.
    async fn deliver(&self, bytes: Vec<u8>) -> io::Result<()> {
        let unsent = {
            let mut outbox = lock(&self.outbox);
            if outbox.collecting {
                outbox.answers.push((bytes, self.dst));
                None
            } else {
                Some(bytes)
            }
        };
        match unsent {
            Some(bytes) => send(&self.socket, &bytes, self.dst).await,
            None => Ok(()),
        }
    }
}

/// A header-only SERVFAIL for the question with `id`, in place of a response that did not
/// encode.
fn servfail(id: u16, error: &ProtoError) -> Result<Vec<u8>, ProtoError> {
    warn!(%error, "a DNS response did not encode; answering SERVFAIL");
    let mut metadata = Metadata::new(id, MessageType::Response, OpCode::Query);
    metadata.response_code = ResponseCode::ServFail;
    let header = Header {
        metadata,
        counts: HeaderCounts::default(),
    };
    let mut bytes = Vec::with_capacity(CLASSIC_PAYLOAD.into());
    header.emit(&mut BinEncoder::new(&mut bytes))?;
    Ok(bytes)
}

// Written out as `async_trait` expands it, so as not to depend on the macro crate.
impl ResponseHandler for UdpReply {
    fn send_response<'a, 'life0, 'life1, 'async_trait>(
        &'life0 mut self,
        response: MessageResponse<
            'life1,
            'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
        >,
    ) -> Pin<Box<dyn Future<Output = Result<ResponseInfo, NetError>> + Send + 'async_trait>>
    where
        'a: 'async_trait,
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        // Encoded before the future is made, so only the sending is deferred. A response that
        // does not encode becomes a header-only SERVFAIL, as hickory's own sender does.
        let id = response.metadata().id;
        let encoded = Self::encode(response).or_else(|error| {
            let bytes = servfail(id, &error)?;
            let header = Header::read(&mut BinDecoder::new(&bytes))?;
            Ok::<_, ProtoError>((ResponseInfo::from(header), bytes))
        });
        Box::pin(async move {
            let (info, bytes) = encoded?;
            self.deliver(bytes).await?;
            Ok(info)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handler::tests::{catalog, handler, query};
    use hickory_proto::op::Message;
    use hickory_proto::rr::RecordType;

    fn request(message: &Message) -> Request {
        let src = "127.0.0.1:5353".parse().unwrap();
        Request::from_bytes(message.to_vec().unwrap(), src, Protocol::Udp).unwrap()
    }

    /// What hickory encodes for `request` with `entry`'s units in `order`.
    fn fresh(
        request: &Request,
        metadata: Metadata,
        edns: Option<&Edns>,
        entry: &crate::cache::CachedService,
        order: &[u32],
    ) -> Vec<u8> {
        let message = handler::service_message(&request.queries, metadata, edns, entry, order);
        UdpReply::encode(message).unwrap().1
    }

    /// A kept encoding serves another question with the same section, under that question's
    /// ID and flags, byte for byte what hickory would encode for it; a question asked
    /// otherwise (here in other letters) gets an encoding of its own.
    #[tokio::test]
    async fn kept_encodings_are_what_hickory_would_send() {
        let h = handler(|_| {}, catalog());
        for (name, qtype, edns) in [
            ("_web._tcp.service.mesh.", RecordType::SRV, Some(1232)),
            ("web.service.mesh.", RecordType::A, Some(4096)),
            ("_web._v1.service.mesh.", RecordType::SRV, None),
        ] {
            let first = request(&query(name, qtype, edns));
            let mut other = query(name, qtype, edns);
            other.metadata.id = 7;
            other.metadata.recursion_desired = false;
            other.metadata.checking_disabled = true;
            let other = request(&other);

            let Response::Service {
                metadata,
                edns,
                entry,
                order,
            } = h.answer_now(&first).await
            else {
                panic!("{name}: a service response");
            };
            let payload = edns.as_ref().map(Edns::max_payload);
            let kept = entry.encoded(&order, payload, first.queries.as_bytes(), metadata, || {
                Ok(fresh(&first, metadata, edns.as_ref(), &entry, &order))
            });
            assert_eq!(
                kept.unwrap(),
                fresh(&first, metadata, edns.as_ref(), &entry, &order)
            );

            let Response::Service {
                metadata: other_metadata,
                ..
            } = h.answer_now(&other).await
            else {
                panic!("{name}: a service response");
            };
            assert_ne!(other_metadata, metadata);
            let reused = entry.encoded(
                &order,
                payload,
                other.queries.as_bytes(),
                other_metadata,
                || Err("encoded again".into()),
            );
            assert_eq!(
                reused.unwrap(),
                fresh(&other, other_metadata, edns.as_ref(), &entry, &order),
                "{name}"
            );

            let upper = request(&query(&name.to_uppercase(), qtype, None));
            let mut encoded_again = false;
            let _ = entry.encoded(&order, payload, upper.queries.as_bytes(), metadata, || {
                encoded_again = true;
                Ok(Vec::new())
            });
            assert!(encoded_again, "{name}");
        }
    }

    #[test]
    fn answers_go_only_to_addresses_that_can_take_them() {
        assert!(answerable("127.0.0.1:5353".parse().unwrap()).is_ok());
        assert!(answerable("[::1]:5353".parse().unwrap()).is_ok());
        for bad in ["127.0.0.1:0", "0.0.0.0:53", "255.255.255.255:53", "[::]:53"] {
            assert!(answerable(bad.parse().unwrap()).is_err(), "{bad}");
        }
    }
}
