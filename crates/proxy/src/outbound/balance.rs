//! Choosing an upstream instance, as pure state: the instance list with per-instance
//! outstanding work (connections for L4, requests in flight for L7), consecutive failures and
//! ejections. Power of two choices on outstanding work; an instance that fails
//! `consecutive_failures` times in a row (connects, or for L7 also gateway-error answers) is
//! ejected for a period that doubles with every ejection that is not followed by a success.
//!
//! No IO, no clock, no hidden randomness: time and the random source are arguments, so every
//! rule is unit-tested with a seeded generator and made-up instants.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::Rng;

#[cfg(test)]
mod tests;

/// One instance of an upstream: where to connect, and the identity it must prove
/// (`spiffe://<trust-domain>/ns/default/dc/<datacenter>/svc/<service>`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    pub addr: SocketAddr,
    pub service: String,
    pub datacenter: String,
}

impl Endpoint {
    pub fn new(addr: SocketAddr, service: &str, datacenter: &str) -> Endpoint {
        Endpoint {
            addr,
            service: service.to_owned(),
            datacenter: datacenter.to_owned(),
        }
    }
}

/// When an instance is taken out of rotation, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EjectionPolicy {
    /// Failed connects in a row that eject an instance (at least 1).
    pub consecutive_failures: u32,
    /// The first ejection's length; each further one without a success in between doubles it.
    pub base: Duration,
    /// The longest ejection.
    pub max: Duration,
}

impl Default for EjectionPolicy {
    fn default() -> Self {
        EjectionPolicy {
            consecutive_failures: 3,
            base: Duration::from_secs(5),
            max: Duration::from_secs(300),
        }
    }
}

impl EjectionPolicy {
    /// The length of the `n`th consecutive ejection (`n` ≥ 1).
    pub fn period(&self, n: u32) -> Duration {
        let factor = 2u32.saturating_pow(n.saturating_sub(1));
        self.base.saturating_mul(factor).min(self.max)
    }
}

/// What [`Balancer::failed`] did with a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Counted; the instance stays in rotation.
    Counted { consecutive: u32 },
    /// The instance was ejected until `until`.
    Ejected { until: Instant, period: Duration },
    /// The instance was already ejected (an attempt that started before), or is no longer listed.
    Ignored,
}

/// An instance's balancing state, for logs, metrics and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndpointState {
    pub outstanding: usize,
    pub consecutive_failures: u32,
    /// Ejections since the last success; the next failure after an ejection ejects again.
    pub ejections: u32,
    pub ejected_until: Option<Instant>,
}

#[derive(Debug, Clone)]
struct Slot {
    endpoint: Endpoint,
    state: EndpointState,
}

impl Slot {
    fn ejected(&self, now: Instant) -> bool {
        self.state.ejected_until.is_some_and(|until| now < until)
    }
}

/// The instances of one upstream and their balancing state.
#[derive(Debug, Clone)]
pub struct Balancer {
    policy: EjectionPolicy,
    slots: Vec<Slot>,
}

impl Balancer {
    pub fn new(policy: EjectionPolicy) -> Balancer {
        Balancer {
            policy,
            slots: Vec::new(),
        }
    }

    /// Replaces the instance list (a new answer from the health endpoint). Instances still
    /// listed keep their state, outstanding connections and ejections included; new ones start
    /// fresh; the state of the ones gone is forgotten.
    pub fn replace(&mut self, endpoints: Vec<Endpoint>) {
        let mut old = std::mem::take(&mut self.slots);
        self.slots = endpoints
            .into_iter()
            .map(|endpoint| {
                let state = old
                    .iter()
                    .position(|s| s.endpoint.addr == endpoint.addr)
                    .map(|i| old.swap_remove(i).state)
                    .unwrap_or(EndpointState {
                        outstanding: 0,
                        consecutive_failures: 0,
                        ejections: 0,
                        ejected_until: None,
                    });
                Slot { endpoint, state }
            })
            .collect();
    }

    pub fn endpoints(&self) -> impl Iterator<Item = &Endpoint> {
        self.slots.iter().map(|s| &s.endpoint)
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    pub fn state(&self, addr: SocketAddr) -> Option<EndpointState> {
        self.slot(addr).map(|s| s.state)
    }

    /// Picks an instance for one connect attempt, skipping `tried` (this connection's earlier
    /// attempts): of two random instances in rotation, the one with fewer outstanding
    /// connections. If every untried instance is ejected, they are picked from anyway (the
    /// whole upstream may be back; refusing all traffic would never find out). The pick counts
    /// as outstanding until [`Balancer::release`].
    pub fn pick(
        &mut self,
        now: Instant,
        rng: &mut impl Rng,
        tried: &[SocketAddr],
    ) -> Option<Endpoint> {
        let untried: Vec<usize> = (0..self.slots.len())
            .filter(|&i| !tried.contains(&self.slots[i].endpoint.addr))
            .collect();
        let in_rotation: Vec<usize> = untried
            .iter()
            .copied()
            .filter(|&i| !self.slots[i].ejected(now))
            .collect();
        let pool = if in_rotation.is_empty() {
            untried
        } else {
            in_rotation
        };
        let chosen = match pool.len() {
            0 => return None,
            1 => pool[0],
            n => {
                let first = rng.random_range(0..n);
                let mut second = rng.random_range(0..n - 1);
                if second >= first {
                    second += 1;
                }
                let (a, b) = (pool[first], pool[second]);
                if self.slots[b].state.outstanding < self.slots[a].state.outstanding {
                    b
                } else {
                    a
                }
            }
        };
        let slot = &mut self.slots[chosen];
        slot.state.outstanding += 1;
        Some(slot.endpoint.clone())
    }

    /// A picked attempt or its connection is over.
    pub fn release(&mut self, addr: SocketAddr) {
        if let Some(slot) = self.slot_mut(addr) {
            slot.state.outstanding = slot.state.outstanding.saturating_sub(1);
        }
    }

    /// A connect to `addr` succeeded: its failure count and ejection history are cleared.
    pub fn succeeded(&mut self, addr: SocketAddr) {
        if let Some(slot) = self.slot_mut(addr) {
            slot.state.consecutive_failures = 0;
            slot.state.ejections = 0;
            slot.state.ejected_until = None;
        }
    }

    /// A connect to `addr` failed at `now` (TCP or TLS).
    pub fn failed(&mut self, addr: SocketAddr, now: Instant) -> Failure {
        let policy = self.policy;
        let Some(slot) = self.slot_mut(addr) else {
            return Failure::Ignored;
        };
        if slot.ejected(now) {
            return Failure::Ignored;
        }
        let state = &mut slot.state;
        state.consecutive_failures += 1;
        // Back from an ejection without a success since: one failure ejects it again.
        let on_probation = state.ejections > 0;
        if !on_probation && state.consecutive_failures < policy.consecutive_failures.max(1) {
            return Failure::Counted {
                consecutive: state.consecutive_failures,
            };
        }
        state.ejections += 1;
        state.consecutive_failures = 0;
        let period = policy.period(state.ejections);
        let until = now + period;
        state.ejected_until = Some(until);
        Failure::Ejected { until, period }
    }

    fn slot(&self, addr: SocketAddr) -> Option<&Slot> {
        self.slots.iter().find(|s| s.endpoint.addr == addr)
    }

    fn slot_mut(&mut self, addr: SocketAddr) -> Option<&mut Slot> {
        self.slots.iter_mut().find(|s| s.endpoint.addr == addr)
    }
}
