//! A deterministic simulated network for [`Gossip`] nodes: one thread, a simulated clock, a seeded RNG.
//!
//! Links lose datagrams with a probability and deliver them after a latency plus jitter; a node can get
//! extra outbound delay (a slow node), be partitioned away, paused (`SIGSTOP`: input and timers wait until it
//! resumes) or crashed (gone for good). Built for tests and, behind the `sim` feature, for `crates/bench`,
//! which calls [`run_scenario`] with a thousand nodes.

mod scenario;

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use crate::{Config, Error, Event, Gossip, QueryRequest, Tags, Timer};

pub use self::scenario::{run_scenario, SimReport};

/// How often `run_until` evaluates its condition, in simulated time.
const CHECK_EVERY: Duration = Duration::from_millis(10);

/// Most errors kept per node.
const MAX_ERRORS: usize = 1000;

/// The gossip address of simulated node `index`.
pub fn node_addr(index: usize) -> SocketAddr {
    let ip = Ipv4Addr::from(0x0A00_0001_u32 + u32::try_from(index).expect("fewer than 2^32 nodes"));
    SocketAddr::new(ip.into(), 8301)
}

/// Default configuration of simulated node `index`: name `node-<index>`, tags like a Consul client's
/// (with a 36-character node id).
pub fn node_config(index: usize) -> Config {
    let mut config = Config::new(format!("node-{index}"), node_addr(index));
    config.tags = Tags::from([
        ("role".to_owned(), "node".to_owned()),
        ("dc".to_owned(), "dc1".to_owned()),
        ("build".to_owned(), "0.1.0".to_owned()),
        (
            "id".to_owned(),
            format!("{index:08x}-0000-4000-8000-{index:012x}"),
        ),
    ]);
    config
}

/// Whether a node processes input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeState {
    /// Processes datagrams and timers.
    Running,
    /// Input and timers are held until it resumes.
    Paused,
    /// Gone: input and timers are dropped.
    Crashed,
}

/// A member failure observed by some node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// Simulated time of the observation.
    pub at: Duration,
    /// Index of the observing node.
    pub observer: usize,
    /// Name of the member declared failed.
    pub member: String,
}

/// One simulated node.
#[derive(Debug)]
pub struct SimNode {
    /// The node itself.
    pub gossip: Gossip,
    /// Whether it runs.
    pub state: NodeState,
    /// Every event, when the simulation records them.
    pub events: Vec<(Duration, Event)>,
    /// Errors from `handle_datagram` (the first thousand).
    pub errors: Vec<(Duration, Error)>,
    /// Bytes this node sent.
    pub bytes_sent: u64,
    /// Who this node believes alive, by node index (kept from events, for cheap convergence checks).
    alive: Vec<bool>,
    alive_count: usize,
    held: Vec<Scheduled>,
}

impl SimNode {
    /// How many members this node sees alive, itself included.
    pub fn alive_count(&self) -> usize {
        self.alive_count
    }

    fn set_alive(&mut self, index: usize, alive: bool) {
        if self.alive.len() <= index {
            self.alive.resize(index + 1, false);
        }
        if self.alive[index] != alive {
            self.alive[index] = alive;
            if alive {
                self.alive_count += 1;
            } else {
                self.alive_count -= 1;
            }
        }
    }
}

/// What arrives at a node.
#[derive(Debug)]
enum Delivery {
    Datagram { from: SocketAddr, payload: Vec<u8> },
    Timer(Timer),
}

#[derive(Debug)]
struct Scheduled {
    at: Duration,
    seq: u64,
    node: usize,
    delivery: Delivery,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Scheduled {}

impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Scheduled {
    /// Reversed so that `BinaryHeap` pops the earliest first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// Link behaviour.
#[derive(Debug)]
struct Network {
    loss: f64,
    latency: Duration,
    jitter: Duration,
    outbound_delay: HashMap<usize, Duration>,
    /// Partition group of each node; nodes in different groups cannot talk. Empty when healed.
    groups: Vec<u32>,
}

/// Answers queries on behalf of simulated nodes: `(node index, query) -> response`.
pub type QueryResponder = Box<dyn FnMut(usize, &QueryRequest) -> Option<Vec<u8>>>;

/// The simulated world.
pub struct Sim {
    start: Instant,
    now: Duration,
    nodes: Vec<SimNode>,
    by_addr: HashMap<SocketAddr, usize>,
    by_name: HashMap<String, usize>,
    queue: BinaryHeap<Scheduled>,
    seq: u64,
    rng: StdRng,
    network: Network,
    record_events: bool,
    responder: Option<QueryResponder>,
    failures: Vec<Failure>,
    max_datagram: usize,
}

impl fmt::Debug for Sim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sim")
            .field("now", &self.now)
            .field("nodes", &self.nodes.len())
            .field("queued", &self.queue.len())
            .finish_non_exhaustive()
    }
}

impl Sim {
    /// An empty world; `seed` drives loss, jitter and every node's randomness.
    pub fn new(seed: u64) -> Self {
        Sim {
            start: Instant::now(),
            now: Duration::ZERO,
            nodes: Vec::new(),
            by_addr: HashMap::new(),
            by_name: HashMap::new(),
            queue: BinaryHeap::new(),
            seq: 0,
            rng: StdRng::seed_from_u64(seed),
            network: Network {
                loss: 0.0,
                latency: Duration::from_micros(500),
                jitter: Duration::from_micros(500),
                outbound_delay: HashMap::new(),
                groups: Vec::new(),
            },
            record_events: false,
            responder: None,
            failures: Vec::new(),
            max_datagram: 0,
        }
    }

    /// Keeps every event of every node in [`SimNode::events`] (off by default: large pools make many).
    pub fn record_events(&mut self, record: bool) {
        self.record_events = record;
    }

    /// Lets simulated nodes answer queries.
    pub fn set_query_responder(&mut self, responder: QueryResponder) {
        self.responder = Some(responder);
    }

    /// Probability that any datagram is lost.
    pub fn set_loss(&mut self, loss: f64) {
        self.network.loss = loss;
    }

    /// Extra delay on everything node `index` sends (a slow or congested node).
    pub fn set_outbound_delay(&mut self, index: usize, delay: Duration) {
        self.network.outbound_delay.insert(index, delay);
    }

    /// Splits the nodes into groups that cannot talk to each other; unlisted nodes form one more group.
    pub fn partition(&mut self, groups: &[&[usize]]) {
        let rest = u32::try_from(groups.len()).expect("few groups");
        self.network.groups = vec![rest; self.nodes.len()];
        for (group, members) in groups.iter().enumerate() {
            for &index in *members {
                self.network.groups[index] = u32::try_from(group).expect("few groups");
            }
        }
    }

    /// Removes the partition.
    pub fn heal(&mut self) {
        self.network.groups.clear();
    }

    /// Adds a node; returns its index.
    pub fn add_node(&mut self, config: Config) -> usize {
        let index = self.nodes.len();
        let mut seed = [0u8; 32];
        self.rng.fill(&mut seed);
        let addr = config.addr;
        let name = config.name.clone();
        let gossip =
            Gossip::new(config, seed, self.instant()).expect("valid simulated node configuration");
        self.nodes.push(SimNode {
            gossip,
            state: NodeState::Running,
            events: Vec::new(),
            errors: Vec::new(),
            bytes_sent: 0,
            alive: Vec::new(),
            alive_count: 1,
            held: Vec::new(),
        });
        self.by_addr.insert(addr, index);
        self.by_name.insert(name, index);
        self.flush(index);
        index
    }

    /// Adds `count` nodes with [`node_config`], adjusted by `adjust`.
    pub fn add_nodes(&mut self, count: usize, adjust: impl Fn(&mut Config)) -> Vec<usize> {
        (0..count)
            .map(|_| {
                let mut config = node_config(self.nodes.len());
                adjust(&mut config);
                self.add_node(config)
            })
            .collect()
    }

    /// Runs `action` on node `index` at the current time, then routes what it produced.
    pub fn act<R>(&mut self, index: usize, action: impl FnOnce(&mut Gossip, Instant) -> R) -> R {
        let now = self.instant();
        let result = action(&mut self.nodes[index].gossip, now);
        self.flush(index);
        result
    }

    /// Node `index` joins through node `seed`.
    pub fn join(&mut self, index: usize, seed: usize) {
        let addr = self.nodes[seed].gossip.local_member().addr;
        self.act(index, |gossip, _| gossip.join(addr))
            .expect("a running node can join");
    }

    /// Stops node `index` for good (`kill -9`).
    pub fn crash(&mut self, index: usize) {
        self.nodes[index].state = NodeState::Crashed;
        self.nodes[index].held.clear();
    }

    /// Freezes node `index` (`SIGSTOP`): what arrives waits.
    pub fn pause(&mut self, index: usize) {
        self.nodes[index].state = NodeState::Paused;
    }

    /// Thaws node `index`: held datagrams and timers are processed now, in arrival order.
    pub fn resume(&mut self, index: usize) {
        let node = &mut self.nodes[index];
        node.state = NodeState::Running;
        let mut held = std::mem::take(&mut node.held);
        held.sort_by(|a, b| b.cmp(a));
        for entry in held {
            let at = self.now;
            self.push(at, index, entry.delivery);
        }
    }

    /// Simulated time since the start.
    pub fn now(&self) -> Duration {
        self.now
    }

    /// The current simulated time as an `Instant`.
    pub fn instant(&self) -> Instant {
        self.start + self.now
    }

    /// Node `index`.
    pub fn node(&self, index: usize) -> &SimNode {
        &self.nodes[index]
    }

    /// Node `index`'s gossip state.
    pub fn gossip(&self, index: usize) -> &Gossip {
        &self.nodes[index].gossip
    }

    /// Number of nodes, crashed ones included.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True when there are no nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Indexes of the nodes that are not crashed.
    pub fn live_nodes(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].state != NodeState::Crashed)
            .collect()
    }

    /// Every failure any node observed so far.
    pub fn failures(&self) -> &[Failure] {
        &self.failures
    }

    /// Largest datagram sent so far, in bytes.
    pub fn max_datagram(&self) -> usize {
        self.max_datagram
    }

    /// Total bytes sent by all nodes.
    pub fn bytes_sent(&self) -> u64 {
        self.nodes.iter().map(|node| node.bytes_sent).sum()
    }

    /// Runs for `duration` of simulated time.
    pub fn run_for(&mut self, duration: Duration) {
        let end = self.now + duration;
        self.run_to(end);
    }

    /// Runs until `done` holds (checked every 10 ms of simulated time) or `limit` has passed; returns the
    /// simulated time it took.
    pub fn run_until(
        &mut self,
        limit: Duration,
        mut done: impl FnMut(&Sim) -> bool,
    ) -> Option<Duration> {
        let started = self.now;
        let end = self.now + limit;
        loop {
            if done(self) {
                return Some(self.now - started);
            }
            if self.now >= end {
                return None;
            }
            let next = (self.now + CHECK_EVERY).min(end);
            self.run_to(next);
        }
    }

    /// True when every running node sees every running node alive, and nothing else.
    pub fn converged(&self) -> bool {
        let running: Vec<usize> = self.live_nodes();
        running.iter().all(|&i| {
            let node = &self.nodes[i];
            node.alive_count == running.len()
                && running
                    .iter()
                    .all(|&j| i == j || node.alive.get(j) == Some(&true))
        })
    }

    fn run_to(&mut self, end: Duration) {
        while let Some(next) = self.queue.peek() {
            if next.at > end {
                break;
            }
            let entry = self.queue.pop().expect("peeked");
            self.now = entry.at;
            self.dispatch(entry);
        }
        self.now = end;
    }

    fn dispatch(&mut self, entry: Scheduled) {
        let index = entry.node;
        match self.nodes[index].state {
            NodeState::Crashed => return,
            NodeState::Paused => {
                self.nodes[index].held.push(entry);
                return;
            }
            NodeState::Running => {}
        }
        let now = self.instant();
        let node = &mut self.nodes[index];
        match entry.delivery {
            Delivery::Datagram { from, payload } => {
                if let Err(error) = node.gossip.handle_datagram(from, &payload, now) {
                    if node.errors.len() < MAX_ERRORS {
                        node.errors.push((self.now, error));
                    }
                }
            }
            Delivery::Timer(timer) => node.gossip.handle_timer(timer, now),
        }
        self.flush(index);
    }

    /// Routes everything node `index` produced: datagrams onto links, timers into the queue, events into logs.
    fn flush(&mut self, index: usize) {
        loop {
            let mut progress = false;
            while let Some(transmit) = self.nodes[index].gossip.poll_transmit() {
                progress = true;
                self.send(index, transmit.to, transmit.payload);
            }
            while let Some((after, timer)) = self.nodes[index].gossip.poll_timer() {
                progress = true;
                let at = self.now + after;
                self.push(at, index, Delivery::Timer(timer));
            }
            while let Some(event) = self.nodes[index].gossip.poll_event() {
                progress = true;
                self.observe(index, event);
            }
            if !progress {
                return;
            }
        }
    }

    fn send(&mut self, from: usize, to: SocketAddr, payload: Vec<u8>) {
        self.max_datagram = self.max_datagram.max(payload.len());
        self.nodes[from].bytes_sent += payload.len() as u64;
        let Some(&target) = self.by_addr.get(&to) else {
            return;
        };
        let groups = &self.network.groups;
        if !groups.is_empty() && groups.get(from) != groups.get(target) {
            return;
        }
        if self.network.loss > 0.0 && self.rng.random_bool(self.network.loss) {
            return;
        }
        let jitter = self.network.jitter.mul_f64(self.rng.random::<f64>());
        let extra = self
            .network
            .outbound_delay
            .get(&from)
            .copied()
            .unwrap_or_default();
        let at = self.now + self.network.latency + jitter + extra;
        let from_addr = self.nodes[from].gossip.local_member().addr;
        self.push(
            at,
            target,
            Delivery::Datagram {
                from: from_addr,
                payload,
            },
        );
    }

    fn push(&mut self, at: Duration, node: usize, delivery: Delivery) {
        self.seq += 1;
        self.queue.push(Scheduled {
            at,
            seq: self.seq,
            node,
            delivery,
        });
    }

    fn observe(&mut self, index: usize, event: Event) {
        match &event {
            Event::MemberJoin(member) => self.set_alive(index, &member.name, true),
            Event::MemberFailed(member) => {
                self.failures.push(Failure {
                    at: self.now,
                    observer: index,
                    member: member.name.clone(),
                });
                self.set_alive(index, &member.name, false);
            }
            Event::MemberLeft(member) | Event::MemberReaped(member) => {
                self.set_alive(index, &member.name, false)
            }
            Event::Query(query) => {
                if let Some(responder) = self.responder.as_mut() {
                    if let Some(response) = responder(index, query) {
                        let now = self.instant();
                        // The query may have expired already; that is the responder's loss.
                        let _ = self.nodes[index].gossip.respond(query.id, response, now);
                    }
                }
            }
            _ => {}
        }
        if self.record_events {
            self.nodes[index].events.push((self.now, event));
        }
    }

    fn set_alive(&mut self, observer: usize, name: &str, alive: bool) {
        if let Some(&subject) = self.by_name.get(name) {
            self.nodes[observer].set_alive(subject, alive);
        }
    }

    /// The index of the node named `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }
}

#[cfg(test)]
mod tests;
