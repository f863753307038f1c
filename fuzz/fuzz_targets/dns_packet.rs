//! Arbitrary bytes as a DNS request, the way the agent's DNS server reads it: hickory-proto's
//! message decoder, then `hickory_server::server::Request::from_bytes` and the mesh handler
//! (`dns::DnsHandler`, hickory's `RequestHandler`) over an in-memory catalog
//! (`dns::memory::MemoryLookup`). The handler runs Consul's name parsing, the answers and the
//! sizing for the transport; no recursors are configured, so nothing leaves the process.
//!
//! The first byte picks the transport (its low bit: UDP or TCP); the rest is the message.
//!
//! Properties: every response encodes and decodes again, answers the request's ID, and over UDP
//! a response to one question fits the payload the client can take (512 bytes without EDNS).

#![no_main]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, LazyLock, Mutex};

use catalog::{HealthCheck, Proxy, Status};
use dns::memory::{instance, node, MemoryLookup};
use dns::{DnsConfig, DnsHandler};
use hickory_proto::op::{Message, MessageType};
use hickory_proto::serialize::binary::BinEncoder;
use hickory_server::net::runtime::TokioTime;
use hickory_server::net::xfer::Protocol;
use hickory_server::net::NetError;
use hickory_server::proto::rr::Record;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponse;
use libfuzzer_sys::fuzz_target;

struct Fixture {
    runtime: tokio::runtime::Runtime,
    handler: DnsHandler,
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a current-thread runtime starts");
    let config = DnsConfig {
        alt_domain: Some("consul.".into()),
        a_record_limit: 0,
        ..DnsConfig::default()
    };
    let handler = DnsHandler::new(&config, Arc::new(catalog())).expect("the fixed config is valid");
    Fixture { runtime, handler }
});

/// dc1: `web` on five nodes (one tagged `v1`, one critical, one with an IPv6 address), `many` on
/// 60 nodes (answers that must be cut to fit), a sidecar for `web`, a node with metadata, a
/// server; dc2: `db` with a service address.
fn catalog() -> MemoryLookup {
    let lookup = MemoryLookup::new();
    for i in 1..=5 {
        let address = if i == 4 {
            "2001:db8::4".to_owned()
        } else {
            format!("10.0.0.{i}")
        };
        let mut web = instance(node(&format!("web-{i}"), &address, "dc1"), "web", 80);
        if i == 1 {
            web.service.tags = vec!["v1".into()];
        }
        if i == 5 {
            web.checks.push(HealthCheck::new(
                &web.node.name,
                "serfHealth",
                "Serf",
                Status::Critical,
            ));
        }
        lookup.add_instance(web);
    }
    for i in 0..60u16 {
        let address = format!("10.1.0.{}", i + 1);
        lookup.add_instance(instance(
            node(&format!("many-{i}"), &address, "dc1"),
            "many",
            8000,
        ));
    }
    let mut proxy = instance(node("web-1", "10.0.0.1", "dc1"), "web-sidecar-proxy", 21000);
    proxy.service.kind = "connect-proxy".into();
    proxy.service.proxy = Some(Proxy {
        destination_service_name: "web".into(),
        ..Proxy::default()
    });
    lookup.add_instance(proxy);
    let mut foo = node("foo.bar", "10.0.2.1", "dc1");
    foo.meta = BTreeMap::from([("rack".into(), "r1".into())]);
    lookup.add_node(foo);
    lookup.add_server(node("s1", "10.0.3.1", "dc1"));
    let mut db = instance(node("db-1", "10.2.0.1", "dc2"), "db", 5432);
    db.service.address = "10.2.0.100".into();
    lookup.add_instance(db);
    lookup
}

/// Keeps the encoded response instead of sending it, encoded as hickory's own response handle
/// encodes it: at most the EDNS payload (512 bytes without EDNS) over UDP, 65535 over TCP.
/// `None` when the response did not fit, which hickory would answer with SERVFAIL.
#[derive(Clone)]
struct Capture {
    protocol: Protocol,
    sent: Arc<Mutex<Option<Option<Vec<u8>>>>>,
}

#[async_trait::async_trait]
impl ResponseHandler for Capture {
    async fn send_response<'a>(
        &mut self,
        response: MessageResponse<
            '_,
            'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
        >,
    ) -> Result<ResponseInfo, NetError> {
        let max_size = match self.protocol {
            Protocol::Udp => response.edns().map_or(512, |edns| edns.max_payload()),
            _ => u16::MAX,
        };
        let mut bytes = Vec::with_capacity(512);
        let mut encoder = BinEncoder::new(&mut bytes);
        encoder.set_max_size(max_size);
        let result = response.destructive_emit(&mut encoder);
        let mut sent = self.sent.lock().expect("one request at a time");
        match result {
            Ok(info) => {
                *sent = Some(Some(bytes));
                Ok(info)
            }
            Err(error) => {
                *sent = Some(None);
                Err(error.into())
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, packet)) = data.split_first() else {
        return;
    };

    // hickory's own decoder, and its encoder on what it decoded.
    if let Ok(message) = Message::from_vec(packet) {
        if let Ok(bytes) = message.to_vec() {
            let _ = Message::from_vec(&bytes);
        }
    }

    let protocol = if selector & 1 == 0 {
        Protocol::Udp
    } else {
        Protocol::Tcp
    };
    let src: SocketAddr = ([127, 0, 0, 1], 5353).into();
    let Ok(request) = Request::from_bytes(packet.to_vec(), src, protocol) else {
        return;
    };
    let fixture = &*FIXTURE;
    let capture = Capture {
        protocol,
        sent: Arc::default(),
    };
    fixture.runtime.block_on(
        fixture
            .handler
            .handle_request::<Capture, TokioTime>(&request, capture.clone()),
    );
    let sent = capture.sent.lock().expect("the request is done").take();
    let Some(encoded) = sent else {
        panic!("no response to a request that decoded");
    };
    let questions = request.queries.queries().len();
    let Some(bytes) = encoded else {
        // Several questions are echoed back whole, which mesh does not size; one must fit.
        assert!(
            questions != 1,
            "the response to one question does not fit its transport ({protocol:?}): \
             hickory would answer SERVFAIL"
        );
        return;
    };
    let response = Message::from_vec(&bytes)
        .unwrap_or_else(|e| panic!("the response does not decode: {e}: {bytes:02x?}"));
    assert_eq!(response.metadata.id, request.metadata.id, "response ID");
    assert_eq!(response.metadata.message_type, MessageType::Response);
});
