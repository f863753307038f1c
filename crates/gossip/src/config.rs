//! Gossip configuration, with LAN defaults tuned for fast failure detection.
//!
//! The defaults aim to notice a crashed (`kill -9`) agent at least three times sooner than Consul, whose
//! memberlist probes every 1 s and suspects for at least `4 * max(1, log10(n))` s (4 s up to ten members,
//! 8 s at a hundred), while raising no false alarm at 10% packet loss. Five choices get there together:
//!
//! * probes 2.5 times as often (400 ms), with a 200 ms timeout that still dwarfs LAN round trips; a
//!   crash is noticed about two probe periods after it happens, and probes are small (see `codec`);
//! * a suspicion multiplier of 1.875 probe periods instead of 4 seconds' worth, so the shortest
//!   suspicion is 0.75 s up to ten members, 1.5 s at a hundred, 2.25 s at a thousand;
//! * Lifeguard's dynamic suspicion: that minimum only applies once another member independently confirms
//!   the suspicion; a lone suspecter waits six times longer, so one slow or badly connected node cannot
//!   take a healthy member down, and random loss rarely hits two probers of the same member at once;
//! * a buddy notice: whoever suspects a member tells it directly, every probe timeout, so a live member
//!   refutes within a round trip instead of waiting for the suspicion to reach it through gossip;
//! * news of a member going down (or coming up) is pushed on at once by every member that learns it,
//!   so the whole pool knows within a few round trips of the first member that declares it.
//!
//! Measured in the simulator, a crash is seen by every member after about 1.8 s at 20 members and 2.1 s
//! at 50, against roughly 7 s and 8 s for serf in the benchmark (`docs/benchmarks.md`). Lifeguard's
//! awareness stretches this node's probe interval and timeout while it is itself slow.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroU8, NonZeroUsize};
use std::time::Duration;

use foca::PeriodicParams;

use crate::error::Error;
use crate::keyring::{self, Keyring};
use crate::member::Tags;
use crate::suspicion::SuspicionPolicy;

/// Longest accepted probe period.
const MAX_PROBE_PERIOD: Duration = Duration::from_secs(60);

/// Longest accepted interval or timeout: keeps every deadline computation far from overflowing.
const MAX_DURATION: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// Bytes a datagram adds around a foca message: the frame tag and the encryption envelope. Reserved even
/// without encryption, so that turning it on never changes what fits in a message.
pub(crate) const FRAME_OVERHEAD: usize = 1 + keyring::OVERHEAD;

/// Configuration of one gossip node.
#[derive(Clone, Debug)]
pub struct Config {
    /// Node name, unique in the pool.
    pub name: String,
    /// Address other members reach this node's gossip socket on. The driver fills in a zero port.
    pub addr: SocketAddr,
    /// Tags advertised to the pool.
    pub tags: Tags,
    /// The first life's incarnation. Must grow across restarts so that a restarted node replaces its previous
    /// life in everyone's table; the driver uses wall-clock milliseconds when this is 0.
    pub incarnation: u64,

    /// How often a random member is probed. Default 400 ms (Consul: 1 s).
    pub probe_period: Duration,
    /// How long to wait for a direct ack before asking others to probe. Default 200 ms (Consul: 500 ms);
    /// must be shorter than `probe_period`.
    pub probe_timeout: Duration,
    /// Members asked to probe indirectly when a direct probe times out. Default 3 (Consul's).
    pub indirect_probes: usize,
    /// The shortest suspicion is `suspicion_mult * max(1, log10(n)) * probe_period` for a pool of n.
    /// Default 1.875 (0.75 s up to ten members).
    pub suspicion_mult: f64,
    /// A suspicion nobody confirms lasts this many times the minimum (Lifeguard). Default 6 (Consul's).
    pub suspicion_max_mult: u32,
    /// Independent confirmations that bring a suspicion down to the minimum. Default 1 (Consul: 2, with
    /// a longer minimum); pools of fewer than `2 + confirmations` members expect fewer.
    pub suspicion_confirmations: u32,
    /// Maximum Lifeguard awareness score; timeouts stretch by up to `max + 1`. 0 disables. Default 8.
    pub awareness_max: u8,

    /// How often queued updates are gossiped. Default 200 ms (Consul's).
    pub gossip_interval: Duration,
    /// Members gossiped to per interval. Default 3 (Consul's).
    pub gossip_nodes: usize,
    /// Updates are sent `retransmit_mult * max(2, ceil(log10(n + 1)))` times. Default 4 (Consul's).
    pub retransmit_mult: u32,
    /// How often the member list is pulled from a random member (serf's push-pull), for pools of up to 32;
    /// larger pools stretch it as memberlist does. A joining node pulls the whole list at once; later
    /// pulls are rosters of life hashes (about ten bytes a member). Default 30 s.
    pub sync_interval: Duration,
    /// Every ping carries the sender's membership digest; a receiver whose own (stable) view differs
    /// sends the sender its roster, so that a member missed by gossip is learned within seconds rather
    /// than at the next periodic sync. This is the least time between two such rosters. Default 1 s.
    pub sync_backoff: Duration,
    /// Largest datagram produced or accepted. Default 1400 bytes, below common MTUs.
    pub max_packet_size: usize,

    /// How often a failed member is contacted to heal partitions. Default 10 s (serf: 30 s).
    pub reconnect_interval: Duration,
    /// Failed members are removed after this long. Default 72 h (Consul's `reconnect_timeout`).
    pub reconnect_timeout: Duration,
    /// Left members are removed after this long. Default 24 h (Consul's tombstone timeout).
    pub tombstone_timeout: Duration,
    /// How often the table is checked for members to reap. Default 15 s (serf's).
    pub reap_interval: Duration,
    /// Head start the leave intent gets before the node declares itself down. Default 1 s (serf's).
    pub leave_propagate_delay: Duration,

    /// Delay between join attempts to an address. Default 500 ms.
    pub join_retry_interval: Duration,
    /// Attempts per joined address. Default 6.
    pub join_attempts: u32,

    /// Encryption keys; when set, every datagram is sealed and every received one must open.
    pub keyring: Option<Keyring>,
}

impl Config {
    /// LAN defaults for a node `name` reachable at `addr`.
    pub fn new(name: impl Into<String>, addr: SocketAddr) -> Self {
        Config {
            name: name.into(),
            addr,
            tags: BTreeMap::new(),
            incarnation: 0,
            probe_period: Duration::from_millis(400),
            probe_timeout: Duration::from_millis(200),
            indirect_probes: 3,
            suspicion_mult: 1.875,
            suspicion_max_mult: 6,
            suspicion_confirmations: 1,
            awareness_max: 8,
            gossip_interval: Duration::from_millis(200),
            gossip_nodes: 3,
            retransmit_mult: 4,
            sync_interval: Duration::from_secs(30),
            sync_backoff: Duration::from_secs(1),
            max_packet_size: 1400,
            reconnect_interval: Duration::from_secs(10),
            reconnect_timeout: Duration::from_secs(72 * 3600),
            tombstone_timeout: Duration::from_secs(24 * 3600),
            reap_interval: Duration::from_secs(15),
            leave_propagate_delay: Duration::from_secs(1),
            join_retry_interval: Duration::from_millis(500),
            join_attempts: 6,
            keyring: None,
        }
    }

    /// Suspicion timeout for a pool of `cluster_size` members, before awareness scaling.
    pub fn suspicion_timeout(&self, cluster_size: usize) -> Duration {
        let scale = (cluster_size.max(1) as f64).log10().max(1.0);
        self.probe_period.mul_f64(self.suspicion_mult * scale)
    }

    /// Lifeguard suspicion bounds for a pool of `cluster_size` members.
    pub(crate) fn suspicion_policy(&self, cluster_size: usize) -> SuspicionPolicy {
        let min = self.suspicion_timeout(cluster_size);
        let possible = u32::try_from(cluster_size.saturating_sub(2)).unwrap_or(u32::MAX);
        SuspicionPolicy {
            min,
            max: min.saturating_mul(self.suspicion_max_mult.max(1)),
            expected_confirmations: self.suspicion_confirmations.min(possible),
        }
    }

    /// Interval between state syncs for a pool of `cluster_size` members (memberlist's `pushPullScale`).
    pub(crate) fn sync_interval_for(&self, cluster_size: usize) -> Duration {
        const SCALE_THRESHOLD: f64 = 32.0;
        let size = cluster_size as f64;
        if size <= SCALE_THRESHOLD {
            return self.sync_interval;
        }
        let multiplier = (size.log2() - SCALE_THRESHOLD.log2()).ceil() + 1.0;
        self.sync_interval.mul_f64(multiplier)
    }

    /// How many times each update is piggybacked in a pool of `cluster_size` members: memberlist's
    /// `retransmit_mult * ceil(log10(n + 1))`, but never fewer than twice the multiplier. While a pool forms
    /// in a burst, updates are queued when it is still small; four transmissions then leave a few percent of
    /// the later members uninformed until the next sync.
    pub fn max_transmissions(&self, cluster_size: usize) -> u8 {
        let rounds = ((cluster_size as f64) + 1.0).log10().ceil().max(2.0);
        (f64::from(self.retransmit_mult) * rounds).clamp(1.0, 255.0) as u8
    }

    pub(crate) fn validate(&self) -> Result<(), Error> {
        let invalid = |reason| Err(Error::InvalidConfig { reason });
        if self.probe_timeout.is_zero() || self.probe_timeout >= self.probe_period {
            return invalid("probe_timeout must be positive and shorter than probe_period");
        }
        if self.probe_period > MAX_PROBE_PERIOD {
            return invalid("probe_period must not exceed a minute");
        }
        if self.indirect_probes == 0 || self.gossip_nodes == 0 {
            return invalid("indirect_probes and gossip_nodes must be positive");
        }
        if !(self.suspicion_mult.is_finite()
            && self.suspicion_mult > 0.0
            && self.suspicion_mult <= 100.0)
        {
            return invalid("suspicion_mult must be a positive number up to 100");
        }
        if self.suspicion_max_mult > 100 || self.retransmit_mult > 60 {
            return invalid("suspicion_max_mult must not exceed 100, retransmit_mult 60");
        }
        let periods = [
            self.gossip_interval,
            self.reap_interval,
            self.reconnect_interval,
            self.join_retry_interval,
            self.sync_interval,
        ];
        if periods.iter().any(Duration::is_zero) {
            return invalid("gossip, reap, reconnect, join and sync intervals must be positive");
        }
        let all = periods.iter().chain([
            &self.reconnect_timeout,
            &self.tombstone_timeout,
            &self.leave_propagate_delay,
            &self.sync_backoff,
        ]);
        if all.into_iter().any(|duration| *duration > MAX_DURATION) {
            return invalid("intervals and timeouts must not exceed ten years");
        }
        if self.max_packet_size < 1024 || self.max_packet_size > 65_000 {
            return invalid("max_packet_size must be between 1024 and 65000 bytes");
        }
        Ok(())
    }

    /// foca's configuration for a pool of `cluster_size` members.
    pub(crate) fn foca_config(&self, cluster_size: usize) -> foca::Config {
        let size = NonZeroU32::new(u32::try_from(cluster_size).unwrap_or(u32::MAX))
            .unwrap_or(NonZeroU32::MIN);
        let mut config = foca::Config::new_lan(size);
        config.probe_period = self.probe_period;
        config.probe_rtt = self.probe_timeout;
        config.num_indirect_probes =
            NonZeroUsize::new(self.indirect_probes).unwrap_or(NonZeroUsize::MIN);
        config.max_transmissions =
            NonZeroU8::new(self.max_transmissions(cluster_size)).unwrap_or(NonZeroU8::MIN);
        config.suspect_to_down_after = self.suspicion_timeout(cluster_size);
        // foca remembers down identities so a stale life cannot come back; the table forgets them earlier.
        config.remove_down_after = Some(self.reconnect_timeout.max(self.tombstone_timeout));
        config.max_packet_size =
            NonZeroUsize::new(self.max_packet_size - FRAME_OVERHEAD).unwrap_or(NonZeroUsize::MIN);
        // Lets a member declared down learn it (and rejoin with a new incarnation) when it talks to us.
        config.notify_down_members = true;
        // The periodic sync does what foca's periodic announce would, and digests on every ping catch a
        // divergence sooner.
        config.periodic_announce = None;
        // The engine reconnects to failed members itself: foca's version would also call on members that left.
        config.periodic_announce_to_down_members = None;
        config.periodic_gossip = Some(PeriodicParams {
            frequency: self.gossip_interval,
            num_members: NonZeroUsize::new(self.gossip_nodes).unwrap_or(NonZeroUsize::MIN),
        });
        config
    }
}

#[cfg(test)]
mod tests;
