//! Counting the gossip traffic of each pool with iptables: a dedicated chain, jumped to from
//! `OUTPUT` for loopback packets, with one counting rule (no target) per pool and protocol.
//!
//! Every packet between two agents leaves through `lo` once, so `OUTPUT` sees it once; the
//! counters include IP and UDP/TCP headers. The chain is removed when the [`Accounting`] drops,
//! also on error or panic, and a chain left behind by a killed run is removed before a new one
//! is made.

use std::net::Ipv4Addr;
use std::process::{Command, Output};

use anyhow::{bail, Context as _};

/// Counting rules per pool: UDP from the pool's addresses, UDP to them from elsewhere, and the
/// same two for TCP on the gossip port. "From elsewhere" matters for TCP: a serf agent dials its
/// push-pull connections without binding the source, so they leave from 127.0.0.1.
pub const RULES_PER_POOL: usize = 4;

/// The arguments after `-A CHAIN` of `pool`'s counting rules (no target: count and go on).
pub fn rules(pool: &Pool) -> [Vec<String>; RULES_PER_POOL] {
    let subnet = format!("{}/{}", pool.subnet, pool.prefix);
    let port = pool.gossip_port.to_string();
    let words = |s: &str| -> Vec<String> {
        s.split_whitespace()
            .map(|w| match w {
                "SUBNET" => subnet.clone(),
                "PORT" => port.clone(),
                other => other.to_owned(),
            })
            .collect()
    };
    [
        words("-s SUBNET -p udp"),
        words("! -s SUBNET -d SUBNET -p udp"),
        words("-s SUBNET -p tcp -m multiport --ports PORT"),
        words("! -s SUBNET -d SUBNET -p tcp -m multiport --ports PORT"),
    ]
}

/// The chain this benchmark owns.
pub const CHAIN: &str = "MESH_BENCH";
const IPTABLES: &str = crate::machine::IPTABLES_BIN;
/// Most `-D OUTPUT` attempts when removing the jump (there is one unless a run was killed
/// between inserting two).
const MAX_JUMPS: usize = 8;

/// One pool's traffic to count: every UDP datagram from or to `subnet`, and TCP from or to it on
/// `gossip_port` (serf's push-pull runs over TCP; mesh's over UDP).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool {
    pub subnet: Ipv4Addr,
    pub prefix: u8,
    pub gossip_port: u16,
}

/// Counters of one pool.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bytes {
    pub udp: u64,
    pub udp_packets: u64,
    pub tcp: u64,
}

/// The installed chain; removed on drop.
#[derive(Debug)]
pub struct Accounting {
    pools: Vec<Pool>,
}

impl Accounting {
    /// Creates the chain with [`RULES_PER_POOL`] rules per pool, in `pools` order.
    pub fn install(pools: &[Pool]) -> anyhow::Result<Self> {
        if iptables(&["-n", "-L", CHAIN]).is_ok() {
            eprintln!("note: removing iptables chain {CHAIN} left behind by an earlier run");
            remove_chain();
        }
        iptables(&["-N", CHAIN])?;
        // From here on, dropping `installed` removes whatever was added.
        let installed = Accounting {
            pools: pools.to_vec(),
        };
        iptables(&["-I", "OUTPUT", "1", "-o", "lo", "-j", CHAIN])?;
        for pool in pools {
            for rule in rules(pool) {
                let mut args = vec!["-A", CHAIN];
                args.extend(rule.iter().map(String::as_str));
                iptables(&args)?;
            }
        }
        Ok(installed)
    }

    /// The counters of `pool` now.
    pub fn read(&self, pool: Pool) -> anyhow::Result<Bytes> {
        let index = self
            .pools
            .iter()
            .position(|p| *p == pool)
            .context("this pool is not counted")?;
        let out = iptables(&["-v", "-S", CHAIN])?;
        let counters = parse_rule_counters(&String::from_utf8_lossy(&out.stdout), CHAIN)?;
        let first = RULES_PER_POOL * index;
        match counters.get(first..first + RULES_PER_POOL) {
            Some(&[udp_from, udp_to, tcp_from, tcp_to]) => Ok(Bytes {
                udp: udp_from.1 + udp_to.1,
                udp_packets: udp_from.0 + udp_to.0,
                tcp: tcp_from.1 + tcp_to.1,
            }),
            _ => bail!(
                "iptables chain {CHAIN} has {} rules, expected {}",
                counters.len(),
                RULES_PER_POOL * self.pools.len()
            ),
        }
    }
}

impl Drop for Accounting {
    fn drop(&mut self) {
        remove_chain();
    }
}

/// Removes the jump and the chain, whatever state they are in; failures are reported, not
/// returned (this runs from `Drop`).
fn remove_chain() {
    for _ in 0..MAX_JUMPS {
        if iptables(&["-D", "OUTPUT", "-o", "lo", "-j", CHAIN]).is_err() {
            break;
        }
    }
    let flushed = iptables(&["-F", CHAIN]);
    if let Err(e) = flushed.and_then(|_| iptables(&["-X", CHAIN])) {
        eprintln!("warning: could not remove iptables chain {CHAIN}: {e:#}");
    }
}

fn iptables(args: &[&str]) -> anyhow::Result<Output> {
    let out = Command::new(IPTABLES)
        .arg("-w")
        .args(args)
        .output()
        .with_context(|| format!("running {IPTABLES}"))?;
    if !out.status.success() {
        bail!(
            "`{IPTABLES} -w {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out)
}

/// The (packets, bytes) counters, in rule order, of `iptables -v -S CHAIN` output:
/// `-A CHAIN -s 127.0.1.0/24 -p udp -c PACKETS BYTES`.
pub fn parse_rule_counters(text: &str, chain: &str) -> anyhow::Result<Vec<(u64, u64)>> {
    let prefix = format!("-A {chain} ");
    text.lines()
        .filter(|l| l.starts_with(&prefix))
        .map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            let at = words
                .iter()
                .position(|w| *w == "-c")
                .with_context(|| format!("no counters in {line:?}"))?;
            let counter = |i: usize| -> anyhow::Result<u64> {
                let word = words
                    .get(at + i)
                    .with_context(|| format!("no counters in {line:?}"))?;
                word.parse()
                    .with_context(|| format!("counter {word:?} in {line:?}"))
            };
            Ok((counter(1)?, counter(2)?))
        })
        .collect()
}
