//! Gossip datagrams as a node receives them: `gossip::Gossip::handle_datagram` (the sans-IO
//! core: decryption, our frames, foca's messages through the codec that names members by hash),
//! followed by what the node does next (`poll_transmit`, `poll_event`, `poll_timer` and
//! `handle_timer`); and the keyring on its own (`gossip::Keyring::decrypt`, `encrypt`).
//!
//! The frame decoders (`wire::Frame::decode`, `codec::WireCodec`) are crate-private; this is the
//! public path to them.
//!
//! Input: the first byte's low bit says whether the node has a keyring; the rest is a sequence
//! of datagrams, each a big-endian `u16` length and its bytes, so that one datagram can teach
//! the node what the next one refers to. With a keyring, each datagram is sealed with the
//! node's key before it is handed over (so the fuzzer reaches the decoders behind decryption)
//! and is also decrypted as it came.
//!
//! Properties: no datagram panics the node or stops it from acting; what is sealed opens to
//! the same bytes.

#![no_main]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use gossip::keyring::NONCE_LEN;
use gossip::{Config, Gossip, Keyring};
use libfuzzer_sys::fuzz_target;

/// Consul's documentation example key (32 bytes).
const KEY: &str = "pUqJrVyVRj5jsiYEkM/tFQYfWyJIv4s3XkvDwy7Cu5s=";

/// The most timers run after the datagrams, so that one input cannot loop for long.
const MAX_TIMERS: usize = 32;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, mut rest)) = data.split_first() else {
        return;
    };
    let keyring = (selector & 1 == 1).then(|| Keyring::new(KEY).expect("the fixed key is valid"));
    let local: SocketAddr = ([10, 0, 0, 1], 8301).into();
    let peer: SocketAddr = ([10, 0, 0, 2], 8301).into();
    let mut config = Config::new("node-1", local);
    config.keyring = keyring.clone();
    let start = Instant::now();
    let mut node = Gossip::new(config, [7; 32], start).expect("the fixed config is valid");
    let mut now = start;

    let mut sequence = 0u64;
    while let [hi, lo, tail @ ..] = rest {
        let len = usize::from(u16::from_be_bytes([*hi, *lo])).min(tail.len());
        let (datagram, next) = tail.split_at(len);
        rest = next;
        now += Duration::from_millis(10);
        match &keyring {
            Some(keyring) => {
                let _ = keyring.decrypt(datagram);
                let _ = node.handle_datagram(peer, datagram, now);
                sequence += 1;
                let mut nonce = [0u8; NONCE_LEN];
                nonce[..8].copy_from_slice(&sequence.to_be_bytes());
                let sealed = keyring.encrypt(datagram, nonce);
                let opened = keyring.decrypt(&sealed).expect("a sealed datagram opens");
                assert_eq!(opened, datagram, "a sealed datagram opens to other bytes");
                let _ = node.handle_datagram(peer, &sealed, now);
            }
            None => {
                let _ = node.handle_datagram(peer, datagram, now);
            }
        }
        drain(&mut node);
    }

    // What the datagrams set in motion: probes, suspicions, syncs, reaping.
    for _ in 0..MAX_TIMERS {
        let Some((after, timer)) = node.poll_timer() else {
            break;
        };
        now += after;
        node.handle_timer(timer, now);
        drain(&mut node);
    }
    let _ = node.members();
    let _ = node.num_alive();
    let _ = node.health_score();
});

fn drain(node: &mut Gossip) {
    while node.poll_transmit().is_some() {}
    while node.poll_event().is_some() {}
}
