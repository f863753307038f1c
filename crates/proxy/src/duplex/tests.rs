use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::duplex;
use crate::metrics::Counter;

/// client <-> (a | duplex | b) <-> server, over in-memory pipes smaller than what is sent.
#[tokio::test]
async fn copies_both_ways_and_propagates_half_close() {
    let (mut client, mut a) = tokio::io::duplex(64);
    let (mut b, mut server) = tokio::io::duplex(64);
    let (a_to_b, b_to_a) = (Counter::default(), Counter::default());
    // More than one buffer's worth, to exercise partial reads and writes.
    let request: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();

    let proxy = async {
        duplex(&mut a, &mut b, &a_to_b, &b_to_a)
            .await
            .expect("no IO error on pipes");
    };
    let client_side = async {
        client.write_all(&request).await.expect("write request");
        client.shutdown().await.expect("half-close the client");
        let mut answer = Vec::new();
        client
            .read_to_end(&mut answer)
            .await
            .expect("client reads to EOF");
        answer
    };
    let server_side = async {
        let mut received = Vec::new();
        server
            .read_to_end(&mut received)
            .await
            .expect("server reads to EOF");
        // The server answers after the client half-closed.
        server.write_all(b"answer").await.expect("write answer");
        server.shutdown().await.expect("close the server");
        received
    };
    let ((), answer, received) = tokio::join!(proxy, client_side, server_side);
    assert!(received == request, "the request arrived altered");
    assert_eq!(answer, b"answer");
    assert_eq!(a_to_b.get(), 20_000);
    assert_eq!(b_to_a.get(), 6);
}
