//! End to end: a bound server, real sockets, a fake upstream resolver.

use std::net::Ipv4Addr;
use std::time::Instant;

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::*;
use crate::handler::tests::{catalog, query};

/// Every network wait in these tests is bounded by this.
const BOUND: Duration = Duration::from_secs(10);

/// One UDP socket and a TCP listener on the same port.
fn bind_both(addr: SocketAddr) -> Result<(UdpSocket, TcpListener), DnsError> {
    let (mut udp, tcp) = bind_sockets(addr, 1)?;
    let udp = UdpSocket::from_std(udp.remove(0)).expect("inside a runtime");
    Ok((udp, tcp))
}

struct Running {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), DnsError>>,
}

impl Running {
    async fn start(f: impl FnOnce(&mut DnsConfig)) -> Running {
        let mut config = DnsConfig {
            bind: "127.0.0.1:0".parse().unwrap(),
            ..DnsConfig::default()
        };
        f(&mut config);
        let server = DnsServer::bind(config, catalog()).await.expect("binds");
        let addr = server.local_addr();
        assert_ne!(addr.port(), 0);
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(server.run(async {
            let _ = stopped.await;
        }));
        Running {
            addr,
            stop: Some(stop),
            task,
        }
    }

    async fn stop(mut self) {
        let _ = self.stop.take().expect("stopped once").send(());
        let result = tokio::time::timeout(BOUND, self.task)
            .await
            .expect("stops in time")
            .expect("task did not panic");
        result.expect("stops cleanly");
    }
}

/// Sends `m` over UDP; returns the answer and its size on the wire.
async fn udp(addr: SocketAddr, m: &Message) -> (Message, usize) {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.connect(addr).await.unwrap();
    socket.send(&m.to_vec().unwrap()).await.unwrap();
    let mut buf = vec![0u8; 65535];
    let len = tokio::time::timeout(BOUND, socket.recv(&mut buf))
        .await
        .expect("a UDP answer in time")
        .unwrap();
    (Message::from_vec(&buf[..len]).unwrap(), len)
}

/// Sends `m` over TCP (two-byte length framing); returns the answer.
async fn tcp(addr: SocketAddr, m: &Message) -> Message {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let bytes = m.to_vec().unwrap();
        stream
            .write_all(&(bytes.len() as u16).to_be_bytes())
            .await
            .unwrap();
        stream.write_all(&bytes).await.unwrap();
        let mut len = [0u8; 2];
        stream.read_exact(&mut len).await.unwrap();
        let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
        stream.read_exact(&mut buf).await.unwrap();
        Message::from_vec(&buf).unwrap()
    };
    tokio::time::timeout(BOUND, exchange)
        .await
        .expect("a TCP answer in time")
}

#[tokio::test]
async fn udp_answer_is_truncated_with_tc_and_tcp_has_everything() {
    let server = Running::start(|_| {}).await;

    let (m, len) = udp(
        server.addr,
        &query("many.service.mesh.", RecordType::A, None),
    )
    .await;
    assert!(len <= 512, "{len}");
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(
        m.metadata.truncation,
        "TC tells the stub resolver to retry over TCP"
    );
    assert!(m.metadata.authoritative);
    assert_eq!(m.answers.len(), 3);

    let m = tcp(
        server.addr,
        &query("many.service.mesh.", RecordType::A, None),
    )
    .await;
    assert!(!m.metadata.truncation);
    assert_eq!(m.answers.len(), 100);

    // SRV without EDNS: cut to 512 bytes, with only the kept targets' addresses.
    let (m, len) = udp(
        server.addr,
        &query("many.service.mesh.", RecordType::SRV, None),
    )
    .await;
    assert!(len <= 512 && m.metadata.truncation, "{len}");
    assert_eq!(m.additionals.len(), m.answers.len());
    let m = tcp(
        server.addr,
        &query("many.service.mesh.", RecordType::SRV, None),
    )
    .await;
    assert_eq!((m.answers.len(), m.additionals.len()), (100, 100));

    // EDNS 4096: all 100 A records over UDP.
    let (m, len) = udp(
        server.addr,
        &query("many.service.mesh.", RecordType::A, Some(4096)),
    )
    .await;
    assert!(!m.metadata.truncation);
    assert_eq!(m.answers.len(), 100);
    assert!(len > 512 && len <= 4096, "{len}");
    assert!(m.edns.is_some(), "an EDNS query gets an EDNS answer");

    // EDNS 1232: SRV with additionals cut to the buffer, TC set.
    let (m, len) = udp(
        server.addr,
        &query("many.service.mesh.", RecordType::SRV, Some(1232)),
    )
    .await;
    assert!(len <= 1232 && m.metadata.truncation, "{len}");
    assert!(m.answers.len() > 3 && m.answers.len() < 100);
    assert_eq!(m.additionals.len(), m.answers.len());

    // A negative answer over the wire: NXDOMAIN with the SOA.
    let (m, _) = udp(
        server.addr,
        &query("nope.service.mesh.", RecordType::A, None),
    )
    .await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert!(matches!(m.authorities[0].data, RData::SOA(_)));

    server.stop().await;
}

/// A fake upstream resolver on UDP and TCP: `example.com.` has one A record; `big.example.com.`
/// is truncated over UDP and has ten A records over TCP; anything else is NXDOMAIN.
async fn upstream() -> (SocketAddr, JoinHandle<()>) {
    let (udp, tcp) = bind_both("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = udp.local_addr().unwrap();
    let answer = |query: &Message, over_udp: bool| -> Vec<u8> {
        let mut m = Message::new(query.metadata.id, MessageType::Response, OpCode::Query);
        m.metadata.recursion_available = true;
        m.queries = query.queries.clone();
        let name = query.queries[0].name().clone();
        let a =
            |i: u8| Record::from_rdata(name.clone(), 60, RData::A(A(Ipv4Addr::new(192, 0, 2, i))));
        match name.to_ascii().as_str() {
            "example.com." => m.answers.push(a(1)),
            "big.example.com." if over_udp => m.metadata.truncation = true,
            "big.example.com." => m.answers.extend((1..=10).map(a)),
            _ => m.metadata.response_code = ResponseCode::NXDomain,
        }
        m.to_vec().unwrap()
    };
    let task = tokio::spawn(async move {
        let mut buf = vec![0u8; 65535];
        loop {
            tokio::select! {
                received = udp.recv_from(&mut buf) => {
                    let (len, from) = received.unwrap();
                    let q = Message::from_vec(&buf[..len]).unwrap();
                    udp.send_to(&answer(&q, true), from).await.unwrap();
                }
                accepted = tcp.accept() => {
                    let (mut stream, _) = accepted.unwrap();
                    let mut len = [0u8; 2];
                    stream.read_exact(&mut len).await.unwrap();
                    let mut q = vec![0u8; usize::from(u16::from_be_bytes(len))];
                    stream.read_exact(&mut q).await.unwrap();
                    let bytes = answer(&Message::from_vec(&q).unwrap(), false);
                    stream.write_all(&(bytes.len() as u16).to_be_bytes()).await.unwrap();
                    stream.write_all(&bytes).await.unwrap();
                }
            }
        }
    });
    (addr, task)
}

#[tokio::test]
async fn names_outside_the_mesh_go_to_the_recursors() {
    let (up, up_task) = upstream().await;
    // A silent recursor first: it is skipped after the timeout, then the next one answers.
    let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let timeout = Duration::from_millis(300);
    let server = Running::start(|c| {
        c.recursors = vec![silent.local_addr().unwrap(), up];
        c.recursor_timeout = timeout;
    })
    .await;

    let (m, _) = udp(server.addr, &query("example.com.", RecordType::A, None)).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(m.answers[0].to_string(), "example.com. 60 IN A 192.0.2.1");
    assert!(m.metadata.recursion_available);
    assert!(!m.metadata.authoritative);

    // Truncated over UDP upstream: asked again over TCP, and a TCP client gets everything.
    let m = tcp(server.addr, &query("big.example.com.", RecordType::A, None)).await;
    assert_eq!(m.answers.len(), 10);
    assert!(!m.metadata.truncation);
    // A UDP client without EDNS gets what fits its limits, with TC.
    let (m, _) = udp(server.addr, &query("big.example.com.", RecordType::A, None)).await;
    assert!(m.metadata.truncation);
    assert_eq!(m.answers.len(), 3);

    let (m, _) = udp(
        server.addr,
        &query("nope.example.com.", RecordType::A, None),
    )
    .await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);

    // Mesh names are still answered here.
    let (m, _) = udp(
        server.addr,
        &query("web.service.mesh.", RecordType::A, None),
    )
    .await;
    assert!(m.metadata.authoritative && m.metadata.recursion_available);

    server.stop().await;
    up_task.abort();
}

#[tokio::test]
async fn unreachable_recursors_give_servfail_within_the_timeout() {
    let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let timeout = Duration::from_millis(300);
    let server = Running::start(|c| {
        c.recursors = vec![silent.local_addr().unwrap()];
        c.recursor_timeout = timeout;
    })
    .await;
    let started = Instant::now();
    let (m, _) = udp(server.addr, &query("example.com.", RecordType::A, None)).await;
    let elapsed = started.elapsed();
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    assert!(elapsed >= timeout, "{elapsed:?}");
    assert!(elapsed < timeout + Duration::from_secs(2), "{elapsed:?}");
    server.stop().await;

    // Without recursors, names outside the mesh are refused at once.
    let server = Running::start(|_| {}).await;
    let (m, _) = udp(server.addr, &query("example.com.", RecordType::A, None)).await;
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    assert!(!m.metadata.recursion_available);
    server.stop().await;
}

#[tokio::test]
async fn serve_binds_the_given_address_and_stops_on_shutdown() {
    // Pick a port free for UDP and TCP, then hand it to `serve`, as the agent does.
    let (udp_socket, tcp_listener) = bind_both("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = udp_socket.local_addr().unwrap();
    drop((udp_socket, tcp_listener));
    let config = DnsConfig {
        bind: addr,
        ..DnsConfig::default()
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(config, catalog(), async {
        let _ = stopped.await;
    }));
    // `serve` binds before it answers: retry the first query until the server is up.
    let query = query("web.service.mesh.", RecordType::A, None);
    let answer = tokio::time::timeout(BOUND, async {
        loop {
            if let Ok(mut stream) = TcpStream::connect(addr).await {
                let bytes = query.to_vec().unwrap();
                stream
                    .write_all(&(bytes.len() as u16).to_be_bytes())
                    .await
                    .unwrap();
                stream.write_all(&bytes).await.unwrap();
                let mut len = [0u8; 2];
                stream.read_exact(&mut len).await.unwrap();
                let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
                stream.read_exact(&mut buf).await.unwrap();
                return Message::from_vec(&buf).unwrap();
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("server up in time");
    assert_eq!(answer.answers.len(), 4);
    let (m, _) = udp(addr, &query).await;
    assert_eq!(m.answers.len(), 3);
    stop.send(()).unwrap();
    tokio::time::timeout(BOUND, task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn bind_reports_errors() {
    let taken = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let config = DnsConfig {
        bind: taken.local_addr().unwrap(),
        ..DnsConfig::default()
    };
    let err = DnsServer::bind(config, catalog()).await.unwrap_err();
    assert!(
        matches!(
            err,
            DnsError::Bind {
                transport: "UDP",
                ..
            }
        ),
        "{err}"
    );
    let config = DnsConfig {
        domain: String::new(),
        bind: "127.0.0.1:0".parse().unwrap(),
        ..DnsConfig::default()
    };
    let err = DnsServer::bind(config, catalog()).await.unwrap_err();
    assert!(matches!(err, DnsError::Config(_)), "{err}");
}

#[tokio::test]
async fn every_udp_worker_answers_and_stops() {
    let server = Running::start(|c| c.udp_workers = 3).await;
    let addr = server.addr;
    // Clients on many ports, so the kernel spreads them over the three sockets.
    let clients = (0..24).map(|i| {
        tokio::spawn(async move {
            let (name, qtype) = if i % 2 == 0 {
                ("web.service.mesh.", RecordType::A)
            } else {
                ("_web._tcp.service.mesh.", RecordType::SRV)
            };
            udp(addr, &query(name, qtype, Some(1232))).await.0
        })
    });
    for client in clients {
        let m = client.await.expect("client did not panic");
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert_eq!(m.answers.len(), 4, "{m:?}");
        assert!(!m.metadata.truncation);
        if m.answers.iter().any(|r| r.record_type() == RecordType::SRV) {
            let mut targets: Vec<String> = m
                .answers
                .iter()
                .map(|r| match &r.data {
                    RData::SRV(srv) => srv.target.to_ascii(),
                    other => panic!("{other}"),
                })
                .collect();
            let mut glue: Vec<String> = m.additionals.iter().map(|r| r.name.to_ascii()).collect();
            targets.sort();
            glue.sort();
            assert_eq!(targets, glue, "each target's address, once");
        }
    }
    server.stop().await;
    // Every worker closed its socket: the port can be bound again without sharing it.
    std::net::UdpSocket::bind(addr).expect("the UDP sockets are closed");
}

#[tokio::test]
async fn dropping_a_running_server_stops_its_workers() {
    let server = DnsServer::bind(
        DnsConfig {
            bind: "127.0.0.1:0".parse().unwrap(),
            udp_workers: 2,
            ..DnsConfig::default()
        },
        catalog(),
    )
    .await
    .expect("binds");
    let addr = server.local_addr();
    let task = tokio::spawn(server.run(std::future::pending()));
    let (m, _) = udp(addr, &query("web.service.mesh.", RecordType::A, None)).await;
    assert_eq!(m.answers.len(), 3);
    task.abort();
    let _ = task.await;
    // The workers notice and close their sockets.
    tokio::time::timeout(BOUND, async {
        while std::net::UdpSocket::bind(addr).is_err() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the workers stop");
}

/// A question waiting on a recursor is a task of its own: the questions behind it on the same
/// socket are answered meanwhile.
#[tokio::test]
async fn a_waiting_question_does_not_hold_up_the_next() {
    let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let server = Running::start(|c| {
        c.recursors = vec![silent.local_addr().unwrap()];
        // Far beyond BOUND: if the first question held the socket, the second would time out.
        c.recursor_timeout = BOUND * 3;
    })
    .await;
    let waiting = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    waiting.connect(server.addr).await.unwrap();
    let outside = query("example.com.", RecordType::A, None);
    waiting.send(&outside.to_vec().unwrap()).await.unwrap();

    let (m, _) = udp(
        server.addr,
        &query("web.service.mesh.", RecordType::A, None),
    )
    .await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(!m.answers.is_empty());
    let mut buf = [0u8; 512];
    assert!(
        waiting.try_recv(&mut buf).is_err(),
        "the recursed question was answered before the one behind it"
    );
    server.stop().await;
}

/// What does not decode gets FORMERR under its own ID; what is shorter than a header, and any
/// response, gets nothing: the next answer on the socket is the next question's.
#[tokio::test]
async fn undecodable_datagrams_get_formerr_and_responses_get_nothing() {
    let server = Running::start(|_| {}).await;
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.connect(server.addr).await.unwrap();
    let mut buf = vec![0u8; 65535];
    let mut next_answer = async || {
        let len = tokio::time::timeout(BOUND, socket.recv(&mut buf))
            .await
            .expect("an answer in time")
            .unwrap();
        Message::from_vec(&buf[..len]).unwrap()
    };

    // A header claiming one question, and no question after it.
    let mut truncated = query("web.service.mesh.", RecordType::A, None)
        .to_vec()
        .unwrap();
    truncated.truncate(14);
    truncated[..2].copy_from_slice(&7u16.to_be_bytes());
    socket.send(&truncated).await.unwrap();
    let m = next_answer().await;
    assert_eq!(m.metadata.id, 7);
    assert_eq!(m.metadata.response_code, ResponseCode::FormErr);
    assert_eq!(m.metadata.message_type, MessageType::Response);

    socket.send(&[1, 2, 3]).await.unwrap();
    let mut response = query("web.service.mesh.", RecordType::A, None);
    response.metadata.message_type = MessageType::Response;
    response.metadata.id = 8;
    socket.send(&response.to_vec().unwrap()).await.unwrap();
    let asked = query("web.service.mesh.", RecordType::A, None);
    socket.send(&asked.to_vec().unwrap()).await.unwrap();
    let m = next_answer().await;
    assert_eq!(m.metadata.id, asked.metadata.id);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    server.stop().await;
}
