//! gRPC probe tests: encoding helpers, and calls against a local h2c/TLS health server.

use super::*;
use crate::checks::testsupport::{
    closed_tcp_port, grpc_tls_server, h2c_server, http_server, silent_server, within,
};
use catalog::Status;

fn probe(target: String) -> GrpcProbe {
    GrpcProbe {
        target,
        ..GrpcProbe::default()
    }
}

async fn run(p: &GrpcProbe) -> Outcome {
    within(check(p, Duration::from_secs(10))).await
}

#[test]
fn request_encoding() {
    assert_eq!(encode_request(""), Vec::<u8>::new());
    assert_eq!(encode_request("web"), vec![0x0a, 3, b'w', b'e', b'b']);
    let long = "x".repeat(300);
    let encoded = encode_request(&long);
    assert_eq!(&encoded[..3], &[0x0a, 0xac, 0x02]);
    assert_eq!(encoded.len(), 303);
    assert_eq!(&frame(b"ab")[..], &[0, 0, 0, 0, 2, b'a', b'b']);
}

#[test]
fn response_decoding() {
    assert_eq!(decode_response(&[0, 0, 0, 0, 2, 0x08, 1]).unwrap(), 1);
    // Empty message: the default status (UNKNOWN).
    assert_eq!(decode_response(&[0, 0, 0, 0, 0]).unwrap(), 0);
    // Unknown fields of every wire type are skipped.
    let message = [
        0x10, 0x05, // field 2 varint
        0x19, 1, 2, 3, 4, 5, 6, 7, 8, // field 3 fixed64
        0x22, 0x02, b'h', b'i', // field 4 bytes
        0x2d, 1, 2, 3, 4, // field 5 fixed32
        0x08, 0x02, // field 1 = NOT_SERVING
    ];
    let mut framed = vec![0, 0, 0, 0, message.len() as u8];
    framed.extend_from_slice(&message);
    assert_eq!(decode_response(&framed).unwrap(), 2);
    assert!(decode_response(&[]).is_err());
    assert!(decode_response(&[1, 0, 0, 0, 0]).is_err());
    assert!(decode_response(&[0, 0, 0, 0, 3, 0x08]).is_err());
    assert!(decode_response(&[0, 0, 0, 0, 1, 0x08]).is_err());
    assert!(decode_response(&[0, 0, 0, 0, 2, 0x0b, 0]).is_err());
}

#[test]
fn names_and_messages() {
    assert_eq!(serving_status_name(3), "SERVICE_UNKNOWN");
    assert_eq!(serving_status_name(9), "9");
    assert_eq!(Code(12).name(), "Unimplemented");
    assert_eq!(Code(40).name(), "Code(40)");
    assert_eq!(
        percent_decode(b"unknown%20service%zz%"),
        "unknown service%zz%"
    );
}

#[tokio::test]
async fn serving_is_passing() {
    let addr = h2c_server().await;
    let target = addr.to_string();
    assert_eq!(
        run(&probe(target.clone())).await,
        Outcome::passing(format!("gRPC check {target}: success"))
    );
    let target = format!("{addr}/up");
    assert_eq!(
        run(&probe(target.clone())).await,
        Outcome::passing(format!("gRPC check {target}: success"))
    );
}

#[tokio::test]
async fn other_serving_statuses_are_critical() {
    let addr = h2c_server().await;
    for (service, name) in [
        ("down", "NOT_SERVING"),
        ("other", "SERVICE_UNKNOWN"),
        ("odd", "7"),
    ] {
        let target = format!("{addr}/{service}");
        assert_eq!(
            run(&probe(target.clone())).await,
            Outcome::critical(format!("gRPC {target} serving status: {name}"))
        );
    }
}

#[tokio::test]
async fn rpc_errors_are_critical() {
    let addr = h2c_server().await;
    assert_eq!(
        run(&probe(format!("{addr}/missing"))).await,
        Outcome::critical("rpc error: code = NotFound desc = unknown service")
    );
    assert_eq!(
        run(&probe(format!("{addr}/silent"))).await,
        Outcome::critical(
            "rpc error: code = Internal desc = cardinality violation: received no response message from non-streaming RPC"
        )
    );
    assert_eq!(
        run(&probe(format!("{addr}/fail-http"))).await,
        Outcome::critical(
            "rpc error: code = Unavailable desc = unexpected HTTP status code received from server: 503 (Service Unavailable)"
        )
    );
}

#[tokio::test]
async fn tls_with_skip_verify_is_passing() {
    let addr = grpc_tls_server().await;
    let target = format!("{addr}/up");
    let out = run(&GrpcProbe {
        use_tls: true,
        tls_skip_verify: true,
        tls_server_name: "localhost".into(),
        ..probe(target.clone())
    })
    .await;
    assert_eq!(
        out,
        Outcome::passing(format!("gRPC check {target}: success"))
    );
}

#[tokio::test]
async fn untrusted_certificate_is_critical() {
    let addr = grpc_tls_server().await;
    let out = run(&GrpcProbe {
        use_tls: true,
        ..probe(addr.to_string())
    })
    .await;
    assert_eq!(out.status, Status::Critical);
    assert!(
        out.output.starts_with(
            "rpc error: code = Unavailable desc = connection error: desc = \"transport: authentication handshake failed: tls: "
        ),
        "{}",
        out.output
    );
}

#[tokio::test]
async fn refused_connection_is_critical() {
    let addr = closed_tcp_port().await;
    assert_eq!(
        run(&probe(addr.clone())).await,
        Outcome::critical(format!(
            "rpc error: code = Unavailable desc = connection error: desc = \"transport: Error while dialing: dial tcp {addr}: connect: connection refused\""
        ))
    );
}

#[tokio::test]
async fn non_grpc_servers_are_critical() {
    // An HTTP/1.1 server does not speak the HTTP/2 preface.
    let addr = http_server().await;
    let out = run(&probe(addr.to_string())).await;
    assert_eq!(out.status, Status::Critical);
    assert!(
        out.output.starts_with("rpc error: code = "),
        "{}",
        out.output
    );
}

#[tokio::test]
async fn timeout_is_critical() {
    let addr = silent_server().await;
    let out = within(check(&probe(addr.to_string()), Duration::from_millis(300))).await;
    assert_eq!(
        out,
        Outcome::critical("rpc error: code = DeadlineExceeded desc = context deadline exceeded")
    );
}
