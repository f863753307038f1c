//! `/v1/agent/metrics`: what the agent measures about itself, as Consul's JSON or, with
//! `?format=prometheus`, as Prometheus text; and the [`Telemetry`] it is gathered from.
//!
//! Measurements are plain relaxed atomics kept where things happen: HTTP requests and blocking
//! queries here, commits and role changes in `raft-store`, DNS questions in `dns`, gossip
//! events in `agent::membership`. One [`Telemetry`] per agent, shared by its routers, holds or
//! points at them; a request reads them all into one [`Snapshot`] and renders it. Nothing is
//! aggregated in the background and no lock is taken on a measured path.
//!
//! Unlike Consul, which reports its last 10-second interval, values count from the agent's
//! start: counters and timers only grow, and `Rate` is per second of uptime. Durations are in
//! milliseconds, as Consul reports them. Names are Consul's where Consul has the metric:
//!
//! | name | kind | where |
//! |---|---|---|
//! | `consul.api.http` {method, path} | timer | every HTTP request (`path` is the route, `v1.kv._`) |
//! | `consul.rpc.queries_blocking`, `consul.rpc.query` | gauge, counter | blocking reads in flight, started (servers) |
//! | `consul.client.rpc`, `.failed` | counter | calls a client agent made to servers |
//! | `consul.raft.commitTime`, `consul.raft.apply` | timer, counter | the leader's proposals, writes committed |
//! | `consul.raft.state.{leader,candidate,follower}` | counter | role changes |
//! | `consul.server.isLeader`, `consul.raft.{applied,last}_index` | gauge | raft metrics |
//! | `consul.state.{nodes,services,service_instances,kv_entries}` | gauge | the replicated state |
//! | `consul.dns.{domain,ptr}_query` | timer | DNS questions |
//! | `consul.serf.member.{join,update,failed,left}`, `consul.serf.events` | counter | gossip events |
//! | `consul.agent.services`, `consul.agent.checks[.passing/.warning/.critical]` | gauge | the local agent |
//!
//! and `mesh.*` where Consul has none: `mesh.agent.uptime` (seconds), `mesh.agent.in_sync`,
//! `mesh.agent.monitors` (clients streaming logs),
//! `mesh.gossip.members.{alive,failed,left}`, `mesh.serf.member.reaped`,
//! `mesh.serf.events_missed`, `mesh.raft.{term,last_contact}`, `mesh.raft.leader.changes`,
//! `mesh.raft.commit_failures`, `mesh.state.sessions`, `mesh.state.checks` {status},
//! `mesh.dns.recursed` (timer), `mesh.dns.other_query`, `mesh.dns.servfail`, and
//! `mesh.rpc.forwarded_http` {method, path} (a server's time answering calls client agents
//! forwarded). Prometheus names replace `.` with `_`; counters keep Consul's names (no
//! `_total`, so Consul dashboards work); timers are summaries (`_sum`, `_count`) with their
//! largest value as a gauge, `<name>_max`.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use timer::Timer;

use axum::extract::{MatchedPath, RawQuery, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use catalog::Status;
use serde_json::{json, Map, Value};

use crate::error::ApiError;
use crate::params::Params;
use crate::{methods, render};

/// Label sets one route family keeps apart; later ones share an `other` entry.
const ROUTE_SLOTS: usize = 256;

/// What an agent measures about itself; cheap to clone, one per agent.
#[derive(Debug, Clone)]
pub struct Telemetry {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    started: Instant,
    http: RouteTimers,
    forwarded: RouteTimers,
    blocking: BlockingQueries,
    client_rpc: AtomicU64,
    client_rpc_failed: AtomicU64,
    raft: OnceLock<RaftGauges>,
    dns: OnceLock<Arc<dns::DnsStats>>,
    logs: OnceLock<config::cli::LogStream>,
}

/// Reads a server's raft gauges into a snapshot. Type-erased so that a client agent, which never
/// attaches one, links none of the server's store (openraft, RocksDB) through [`Telemetry`].
struct RaftGauges(Box<dyn Fn(&mut Snapshot) + Send + Sync>);

impl std::fmt::Debug for RaftGauges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RaftGauges")
    }
}

impl Default for Telemetry {
    fn default() -> Self {
        Self::new()
    }
}

impl Telemetry {
    pub fn new() -> Self {
        Telemetry {
            inner: Arc::new(Inner {
                started: Instant::now(),
                http: RouteTimers::new(),
                forwarded: RouteTimers::new(),
                blocking: BlockingQueries::default(),
                client_rpc: AtomicU64::new(0),
                client_rpc_failed: AtomicU64::new(0),
                raft: OnceLock::new(),
                dns: OnceLock::new(),
                logs: OnceLock::new(),
            }),
        }
    }

    /// A server's raft member: its metrics, commit times and the replicated state's sizes.
    /// The first one attached is kept.
    pub fn attach_raft(&self, node: consensus::RaftNode) {
        let _ = self.inner.raft.set(RaftGauges(Box::new(move |s| {
            raft(s, &node);
            state_sizes(s, &node);
        })));
    }

    /// The DNS interface's counters. The first one attached is kept.
    pub fn attach_dns(&self, stats: Arc<dns::DnsStats>) {
        let _ = self.inner.dns.set(stats);
    }

    /// The process's log lines, for `/v1/agent/monitor`. The first one attached is kept.
    pub fn attach_logs(&self, logs: config::cli::LogStream) {
        let _ = self.inner.logs.set(logs);
    }

    /// A client agent's call to a server finished (`consul.client.rpc`, `.failed`).
    pub fn count_client_rpc(&self, ok: bool) {
        self.inner.client_rpc.fetch_add(1, Relaxed);
        if !ok {
            self.inner.client_rpc_failed.fetch_add(1, Relaxed);
        }
    }

    pub(crate) fn blocking(&self) -> &BlockingQueries {
        &self.inner.blocking
    }

    pub(crate) fn logs(&self) -> Option<&config::cli::LogStream> {
        self.inner.logs.get()
    }
}

/// Times `consul.api.http`: every request the agent's HTTP API answers.
pub(crate) async fn observe_http(
    State(telemetry): State<Telemetry>,
    req: Request,
    next: Next,
) -> Response {
    timed(&telemetry.inner.http, req, next).await
}

/// Times `mesh.rpc.forwarded_http`: calls client agents forwarded to this server.
pub(crate) async fn observe_forwarded(
    State(telemetry): State<Telemetry>,
    req: Request,
    next: Next,
) -> Response {
    timed(&telemetry.inner.forwarded, req, next).await
}

async fn timed(timers: &RouteTimers, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(req.method());
    let matched = req.extensions().get::<MatchedPath>().cloned();
    let unmatched = matched.is_none().then(|| req.uri().path().to_owned());
    let resp = next.run(req).await;
    let route = match (&matched, &unmatched) {
        (Some(pattern), _) => Route::Pattern(pattern.as_str()),
        (None, Some(path)) => Route::of_unmatched(path),
        (None, None) => Route::Unknown,
    };
    timers.record(method, &route, started.elapsed());
    resp
}

/// Consul's `method` label; anything unusual is `OTHER`, so labels stay few.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::PUT => "PUT",
        Method::POST => "POST",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "OTHER",
    }
}

/// Which route a request took, as cheaply as it can be told apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Route<'a> {
    /// The router's pattern, `/v1/kv/{*key}`.
    Pattern(&'a str),
    /// No pattern (a client agent forwards it, or nothing answers it): `/v1/<area>/...`.
    Area {
        area: &'a str,
        deeper: bool,
    },
    Unknown,
}

impl<'a> Route<'a> {
    fn of_unmatched(path: &'a str) -> Route<'a> {
        let mut segments = path.trim_start_matches('/').split('/');
        let (Some("v1"), Some(area)) = (segments.next(), segments.next()) else {
            return Route::Unknown;
        };
        let plain = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
        if area.is_empty() || area.len() > 32 || !area.chars().all(plain) {
            return Route::Unknown;
        }
        Route::Area {
            area,
            deeper: segments.any(|s| !s.is_empty()),
        }
    }

    fn owned(self) -> OwnedRoute {
        match self {
            Route::Pattern(p) => OwnedRoute::Pattern(p.to_owned()),
            Route::Area { area, deeper } => OwnedRoute::Area(area.to_owned(), deeper),
            Route::Unknown => OwnedRoute::Unknown,
        }
    }

    /// Consul's `path` label: the route with `.` for `/` and `_` for each parameter
    /// (`v1.kv._`, `v1.agent.service._`).
    fn label(self) -> String {
        match self {
            Route::Pattern(pattern) => pattern
                .split('/')
                .filter(|s| !s.is_empty())
                .map(|s| if s.starts_with('{') { "_" } else { s })
                .collect::<Vec<_>>()
                .join("."),
            Route::Area { area, deeper } => {
                format!("v1.{area}{}", if deeper { "._" } else { "" })
            }
            Route::Unknown => "other".into(),
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum OwnedRoute {
    Pattern(String),
    Area(String, bool),
    Unknown,
}

impl OwnedRoute {
    fn borrowed(&self) -> Route<'_> {
        match self {
            OwnedRoute::Pattern(p) => Route::Pattern(p),
            OwnedRoute::Area(area, deeper) => Route::Area {
                area,
                deeper: *deeper,
            },
            OwnedRoute::Unknown => Route::Unknown,
        }
    }
}

/// Timers by (method, route) in a fixed table: a label set takes a free slot the first time
/// it is seen (a `OnceLock`, no lock), so recording never blocks and the table never grows.
#[derive(Debug)]
struct RouteTimers {
    slots: Box<[RouteSlot]>,
    /// Label sets that found no free slot.
    overflow: Timer,
}

#[derive(Debug, Default)]
struct RouteSlot {
    key: OnceLock<(&'static str, OwnedRoute)>,
    timer: Timer,
}

impl RouteTimers {
    fn new() -> Self {
        RouteTimers {
            slots: (0..ROUTE_SLOTS).map(|_| RouteSlot::default()).collect(),
            overflow: Timer::default(),
        }
    }

    fn record(&self, method: &'static str, route: &Route<'_>, elapsed: Duration) {
        let mut hasher = DefaultHasher::new();
        (method, route).hash(&mut hasher);
        let start = hasher.finish() as usize;
        for i in 0..self.slots.len() {
            let slot = &self.slots[(start + i) % self.slots.len()];
            let key = match slot.key.get() {
                Some(key) => key,
                // Free: take it, unless another request just took it for another route.
                None => slot.key.get_or_init(|| (method, route.owned())),
            };
            if key.0 == method && key.1.borrowed() == *route {
                slot.timer.record(elapsed);
                return;
            }
        }
        self.overflow.record(elapsed);
    }

    /// `(method, path label, timer)` for every label set seen.
    fn read(&self) -> Vec<(String, String, Latency)> {
        let mut out: Vec<_> = self
            .slots
            .iter()
            .filter_map(|slot| {
                let (method, route) = slot.key.get()?;
                Some((
                    (*method).to_owned(),
                    route.borrowed().label(),
                    slot.timer.read(),
                ))
            })
            .collect();
        let overflow = self.overflow.read();
        if overflow.count > 0 {
            out.push(("other".into(), "other".into(), overflow));
        }
        out
    }
}

/// Blocking reads in flight (`consul.rpc.queries_blocking`) and started (`consul.rpc.query`).
#[derive(Debug, Default)]
pub(crate) struct BlockingQueries {
    in_flight: AtomicI64,
    started: AtomicU64,
}

impl BlockingQueries {
    /// Counts a blocking read until the guard is dropped (answered, failed, or abandoned by
    /// its client).
    pub(crate) fn enter(&self) -> InFlight<'_> {
        self.started.fetch_add(1, Relaxed);
        self.in_flight.fetch_add(1, Relaxed);
        InFlight(&self.in_flight)
    }

    pub(crate) fn in_flight(&self) -> i64 {
        self.in_flight.load(Relaxed)
    }

    fn started(&self) -> u64 {
        self.started.load(Relaxed)
    }
}

/// One blocking read in flight.
#[derive(Debug)]
pub(crate) struct InFlight<'a>(&'a AtomicI64);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

/// A duration's count, sum, min and max, in microseconds: what every timer reads as.
pub(crate) type Latency = timer::Timing;

type Labels = Vec<(&'static str, String)>;

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Gauge {
    pub(crate) name: &'static str,
    pub(crate) help: &'static str,
    pub(crate) labels: Labels,
    pub(crate) value: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Counter {
    pub(crate) name: &'static str,
    pub(crate) help: &'static str,
    pub(crate) labels: Labels,
    pub(crate) count: u64,
}

/// A timer: how many, and how long in total, at least and at most.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Sample {
    pub(crate) name: &'static str,
    pub(crate) help: &'static str,
    pub(crate) labels: Labels,
    pub(crate) latency: Latency,
}

/// Everything `/v1/agent/metrics` reports, read at one moment.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct Snapshot {
    pub(crate) gauges: Vec<Gauge>,
    pub(crate) counters: Vec<Counter>,
    pub(crate) samples: Vec<Sample>,
}

impl Snapshot {
    fn gauge(&mut self, name: &'static str, help: &'static str, value: f64) {
        self.gauges.push(Gauge {
            name,
            help,
            labels: Vec::new(),
            value,
        });
    }

    fn counter(&mut self, name: &'static str, help: &'static str, count: u64) {
        self.counters.push(Counter {
            name,
            help,
            labels: Vec::new(),
            count,
        });
    }

    fn sample(&mut self, name: &'static str, help: &'static str, latency: Latency) {
        self.samples.push(Sample {
            name,
            help,
            labels: Vec::new(),
            latency,
        });
    }

    /// Sorted by name and labels, so a family's entries are together and output is stable.
    fn sort(&mut self) {
        self.gauges
            .sort_by(|a, b| (a.name, &a.labels).cmp(&(b.name, &b.labels)));
        self.counters
            .sort_by(|a, b| (a.name, &a.labels).cmp(&(b.name, &b.labels)));
        self.samples
            .sort_by(|a, b| (a.name, &a.labels).cmp(&(b.name, &b.labels)));
    }
}

/// The local agent, for its own gauges (absent from a router without one, as in tests).
#[derive(Debug, Clone)]
pub(crate) struct LocalAgent {
    pub(crate) agent: agent::Agent,
    pub(crate) membership: agent::membership::Membership,
}

/// Reads every measurement into one snapshot.
pub(crate) fn collect(telemetry: &Telemetry, local: Option<&LocalAgent>) -> Snapshot {
    let t = &telemetry.inner;
    let mut s = Snapshot::default();
    s.gauge(
        "mesh.agent.uptime",
        "Seconds since the agent started.",
        t.started.elapsed().as_secs_f64(),
    );
    for (method, path, latency) in t.http.read() {
        s.samples.push(Sample {
            name: "consul.api.http",
            help: "HTTP API requests answered, by method and route (ms).",
            labels: vec![("method", method), ("path", path)],
            latency,
        });
    }
    for (method, path, latency) in t.forwarded.read() {
        s.samples.push(Sample {
            name: "mesh.rpc.forwarded_http",
            help: "API calls client agents forwarded to this server, by method and route (ms).",
            labels: vec![("method", method), ("path", path)],
            latency,
        });
    }
    match t.raft.get() {
        Some(RaftGauges(raft_gauges)) => {
            s.gauge(
                "consul.rpc.queries_blocking",
                "Blocking queries this server is answering.",
                t.blocking.in_flight() as f64,
            );
            s.counter(
                "consul.rpc.query",
                "Blocking queries this server started answering.",
                t.blocking.started(),
            );
            raft_gauges(&mut s);
        }
        None => {
            s.counter(
                "consul.client.rpc",
                "Calls this client agent made to servers.",
                t.client_rpc.load(Relaxed),
            );
            s.counter(
                "consul.client.rpc.failed",
                "Calls this client agent made to servers that failed.",
                t.client_rpc_failed.load(Relaxed),
            );
        }
    }
    if let Some(dns) = t.dns.get() {
        dns_stats(&mut s, &dns.read());
    }
    if let Some(logs) = t.logs.get() {
        s.gauge(
            "mesh.agent.monitors",
            "Clients streaming this agent's logs (/v1/agent/monitor).",
            logs.readers() as f64,
        );
    }
    if let Some(local) = local {
        local_agent(&mut s, local);
    }
    s.sort();
    s
}

fn raft(s: &mut Snapshot, node: &consensus::RaftNode) {
    let view = node.leader_view();
    let stats = node.stats();
    s.gauge(
        "consul.server.isLeader",
        "1 while this server is the raft leader.",
        f64::from(u8::from(view.is_leader)),
    );
    s.gauge(
        "consul.raft.applied_index",
        "Last raft index applied to this server's state.",
        stats.applied_index as f64,
    );
    s.gauge(
        "consul.raft.last_index",
        "Last raft index in this server's log.",
        stats.last_log_index as f64,
    );
    s.gauge(
        "mesh.raft.term",
        "This server's raft term.",
        stats.term as f64,
    );
    s.gauge(
        "mesh.raft.last_contact",
        "Milliseconds since the leader heard from a quorum (leader) or this server heard from the leader.",
        view.last_contact_ms as f64,
    );
    s.sample(
        "consul.raft.commitTime",
        "Time from proposing a raft entry to its commit and apply on the leader (ms).",
        stats.commit_time,
    );
    s.counter(
        "consul.raft.apply",
        "Writes committed through this server while it led.",
        stats.applied_ops,
    );
    s.counter(
        "mesh.raft.commit_failures",
        "Proposals that failed or timed out on this server.",
        stats.commit_failures,
    );
    s.counter(
        "consul.raft.state.leader",
        "Times this server became the raft leader.",
        stats.became_leader,
    );
    s.counter(
        "consul.raft.state.candidate",
        "Times this server started an election.",
        stats.became_candidate,
    );
    s.counter(
        "consul.raft.state.follower",
        "Times this server became a follower.",
        stats.became_follower,
    );
    s.counter(
        "mesh.raft.leader.changes",
        "Times the leader this server knows changed to another server.",
        stats.leader_changes,
    );
}

/// The replicated state's sizes: one pass over the catalog under the state's read lock.
fn state_sizes(s: &mut Snapshot, node: &consensus::RaftNode) {
    let (nodes, services, instances, kv, sessions, checks) = {
        let state = node.reader().state();
        let catalog = &state.catalog;
        let mut names = HashSet::new();
        let mut instances = 0usize;
        for (_, service) in catalog.service_instances() {
            names.insert(service.service.as_str());
            instances += 1;
        }
        let mut checks = [0usize; 3];
        for check in catalog.checks_in_state(None) {
            checks[status_slot(check.status)] += 1;
        }
        (
            catalog.nodes().count(),
            names.len(),
            instances,
            state.kv.len(),
            state.kv.sessions().len(),
            checks,
        )
    };
    s.gauge("consul.state.nodes", "Nodes in the catalog.", nodes as f64);
    s.gauge(
        "consul.state.services",
        "Distinct service names in the catalog.",
        services as f64,
    );
    s.gauge(
        "consul.state.service_instances",
        "Service instances in the catalog.",
        instances as f64,
    );
    s.gauge(
        "consul.state.kv_entries",
        "Keys in the KV store.",
        kv as f64,
    );
    s.gauge("mesh.state.sessions", "Sessions.", sessions as f64);
    for status in [Status::Passing, Status::Warning, Status::Critical] {
        s.gauges.push(Gauge {
            name: "mesh.state.checks",
            help: "Health checks in the catalog, by status.",
            labels: vec![("status", status.as_str().to_owned())],
            value: checks[status_slot(status)] as f64,
        });
    }
}

fn status_slot(status: Status) -> usize {
    match status {
        Status::Passing => 0,
        Status::Warning => 1,
        Status::Critical => 2,
    }
}

fn dns_stats(s: &mut Snapshot, dns: &dns::DnsCounts) {
    s.sample(
        "consul.dns.domain_query",
        "DNS questions for names in the mesh domains (ms).",
        dns.domain_query,
    );
    s.sample(
        "consul.dns.ptr_query",
        "Reverse DNS lookups (ms).",
        dns.ptr_query,
    );
    s.sample(
        "mesh.dns.recursed",
        "DNS questions forwarded to a recursor (ms).",
        dns.recursed,
    );
    s.counter(
        "mesh.dns.other_query",
        "DNS requests refused or not answered (outside the domains without a recursor, malformed).",
        dns.other,
    );
    s.counter(
        "mesh.dns.servfail",
        "DNS answers with SERVFAIL.",
        dns.servfail,
    );
}

fn local_agent(s: &mut Snapshot, local: &LocalAgent) {
    let checks = local.agent.checks();
    let count = |status: Status| checks.iter().filter(|c| c.status == status).count() as f64;
    s.gauge(
        "consul.agent.services",
        "Services registered with this agent.",
        local.agent.services().len() as f64,
    );
    s.gauge(
        "consul.agent.checks",
        "Checks registered with this agent.",
        checks.len() as f64,
    );
    s.gauge(
        "consul.agent.checks.passing",
        "This agent's passing checks.",
        count(Status::Passing),
    );
    s.gauge(
        "consul.agent.checks.warning",
        "This agent's warning checks.",
        count(Status::Warning),
    );
    s.gauge(
        "consul.agent.checks.critical",
        "This agent's critical checks.",
        count(Status::Critical),
    );
    s.gauge(
        "mesh.agent.in_sync",
        "1 when the catalog holds what this agent registered.",
        f64::from(u8::from(local.agent.in_sync())),
    );
    let members = local.membership.members();
    let members_in =
        |status: gossip::MemberStatus| members.iter().filter(|m| m.status == status).count() as f64;
    s.gauge(
        "mesh.gossip.members.alive",
        "Alive members of the gossip pool, as this agent sees them.",
        members_in(gossip::MemberStatus::Alive),
    );
    s.gauge(
        "mesh.gossip.members.failed",
        "Failed members of the gossip pool, as this agent sees them.",
        members_in(gossip::MemberStatus::Failed),
    );
    s.gauge(
        "mesh.gossip.members.left",
        "Members that left the gossip pool, as this agent sees them.",
        members_in(gossip::MemberStatus::Left),
    );
    let gossip = local.membership.stats();
    s.counter(
        "consul.serf.member.join",
        "Members this agent saw become alive.",
        gossip.joined,
    );
    s.counter(
        "consul.serf.member.update",
        "Members this agent saw change address or tags.",
        gossip.updated,
    );
    s.counter(
        "consul.serf.member.failed",
        "Members this agent saw fail.",
        gossip.failed,
    );
    s.counter(
        "consul.serf.member.left",
        "Members this agent saw leave.",
        gossip.left,
    );
    s.counter(
        "mesh.serf.member.reaped",
        "Failed or left members this agent removed from its member list.",
        gossip.reaped,
    );
    s.counter(
        "consul.serf.events",
        "User events this agent received.",
        gossip.user_events,
    );
    s.counter(
        "mesh.serf.events_missed",
        "Gossip events the counters above missed by falling behind.",
        gossip.missed,
    );
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

fn labels_json(labels: &Labels) -> Value {
    Value::Object(
        labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Value::String(v.clone())))
            .collect::<Map<_, _>>(),
    )
}

/// Consul's JSON shape. `timestamp` is Go's `time.String()` form; rates are per second of
/// `uptime`.
pub(crate) fn render_json(s: &Snapshot, timestamp: &str, uptime: Duration) -> Value {
    let secs = uptime.as_secs_f64().max(1.0);
    let gauges: Vec<Value> = s
        .gauges
        .iter()
        .map(|g| json!({"Name": g.name, "Value": g.value, "Labels": labels_json(&g.labels)}))
        .collect();
    let counters: Vec<Value> = s
        .counters
        .iter()
        .map(|c| {
            // Each increment is 1: the sum is the count and every value was 1.
            let one = if c.count > 0 { 1.0 } else { 0.0 };
            json!({
                "Name": c.name,
                "Count": c.count,
                "Rate": c.count as f64 / secs,
                "Sum": c.count as f64,
                "Min": one,
                "Max": one,
                "Mean": one,
                "Stddev": 0.0,
                "Labels": labels_json(&c.labels),
            })
        })
        .collect();
    let samples: Vec<Value> = s
        .samples
        .iter()
        .map(|x| {
            let l = x.latency;
            let mean = if l.count > 0 {
                ms(l.sum_us) / l.count as f64
            } else {
                0.0
            };
            json!({
                "Name": x.name,
                "Count": l.count,
                "Rate": ms(l.sum_us) / secs,
                "Sum": ms(l.sum_us),
                "Min": ms(l.min_us),
                "Max": ms(l.max_us),
                "Mean": mean,
                "Stddev": 0.0,
                "Labels": labels_json(&x.labels),
            })
        })
        .collect();
    json!({
        "Timestamp": timestamp,
        "Gauges": gauges,
        "Points": [],
        "Counters": counters,
        "Samples": samples,
    })
}

/// A Prometheus metric name: anything but letters, digits, `_` and `:` becomes `_`.
fn prometheus_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn prometheus_labels(labels: &Labels) -> String {
    if labels.is_empty() {
        return String::new();
    }
    let pairs: Vec<String> = labels
        .iter()
        .map(|(k, v)| {
            let v = v
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n");
            format!("{k}=\"{v}\"")
        })
        .collect();
    format!("{{{}}}", pairs.join(","))
}

/// Writes one family: HELP and TYPE once, then a line per entry.
fn family<T>(
    out: &mut String,
    entries: &[T],
    name_of: impl Fn(&T) -> &'static str,
    kind: &str,
    help: impl Fn(&T) -> String,
    lines: impl Fn(&mut String, &str, &T),
) {
    let mut i = 0;
    while i < entries.len() {
        let name = name_of(&entries[i]);
        let prom = prometheus_name(name);
        out.push_str(&format!("# HELP {prom} {}\n", help(&entries[i])));
        out.push_str(&format!("# TYPE {prom} {kind}\n"));
        while i < entries.len() && name_of(&entries[i]) == name {
            lines(out, &prom, &entries[i]);
            i += 1;
        }
    }
}

/// Prometheus' text exposition format (0.0.4) of the same snapshot.
pub(crate) fn render_prometheus(s: &Snapshot) -> String {
    let mut out = String::new();
    family(
        &mut out,
        &s.gauges,
        |g| g.name,
        "gauge",
        |g| g.help.to_owned(),
        |out, prom, g| {
            out.push_str(&format!(
                "{prom}{} {}\n",
                prometheus_labels(&g.labels),
                g.value
            ))
        },
    );
    family(
        &mut out,
        &s.counters,
        |c| c.name,
        "counter",
        |c| c.help.to_owned(),
        |out, prom, c| {
            out.push_str(&format!(
                "{prom}{} {}\n",
                prometheus_labels(&c.labels),
                c.count
            ))
        },
    );
    family(
        &mut out,
        &s.samples,
        |x| x.name,
        "summary",
        |x| x.help.to_owned(),
        |out, prom, x| {
            let labels = prometheus_labels(&x.labels);
            out.push_str(&format!("{prom}_sum{labels} {}\n", ms(x.latency.sum_us)));
            out.push_str(&format!("{prom}_count{labels} {}\n", x.latency.count));
        },
    );
    // The largest value of each timer, as its own gauge family (a summary has no max).
    let mut i = 0;
    while i < s.samples.len() {
        let name = s.samples[i].name;
        let prom = format!("{}_max", prometheus_name(name));
        out.push_str(&format!(
            "# HELP {prom} Largest {name} since the agent started (ms).\n# TYPE {prom} gauge\n"
        ));
        while i < s.samples.len() && s.samples[i].name == name {
            let x = &s.samples[i];
            out.push_str(&format!(
                "{prom}{} {}\n",
                prometheus_labels(&x.labels),
                ms(x.latency.max_us)
            ));
            i += 1;
        }
    }
    out
}

/// Go's `time.Time.String()` of a Unix time in UTC: `2017-08-08 02:55:10 +0000 UTC`.
fn go_time(unix_ms: u64) -> String {
    let rfc3339 = crate::wire::rfc3339_from_unix_ms(unix_ms);
    format!("{} {} +0000 UTC", &rfc3339[..10], &rfc3339[11..19])
}

/// What the telemetry endpoints share.
#[derive(Debug)]
pub(crate) struct Observed {
    pub(crate) telemetry: Telemetry,
    pub(crate) local: Option<LocalAgent>,
    /// `?format=prometheus` is on (`telemetry.prometheus_retention_time`).
    pub(crate) prometheus: bool,
    pub(crate) dev: bool,
}

/// `/v1/agent/metrics` and `/v1/agent/monitor`.
pub(crate) fn routes(observed: Observed) -> Router {
    let get = &[Method::GET];
    Router::new()
        .route("/v1/agent/metrics", methods(get, metrics))
        .route("/v1/agent/monitor", methods(get, crate::monitor::monitor))
        .with_state(Arc::new(observed))
}

/// `GET /v1/agent/metrics`: Consul's JSON metrics shape, or with `?format=prometheus`
/// Prometheus' text format when `telemetry.prometheus_retention_time` is set (otherwise
/// Consul's 415).
async fn metrics(
    State(observed): State<Arc<Observed>>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(q.as_deref());
    let prometheus = params.get("format") == Some("prometheus");
    if prometheus && !observed.prometheus {
        return Ok((
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            [(header::CONTENT_TYPE, "text/plain")],
            "Prometheus is not enabled since its retention time is not positive",
        )
            .into_response());
    }
    let snapshot = collect(&observed.telemetry, observed.local.as_ref());
    if prometheus {
        return Ok((
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            render_prometheus(&snapshot),
        )
            .into_response());
    }
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let uptime = observed.telemetry.inner.started.elapsed();
    let body = render_json(&snapshot, &go_time(now_ms), uptime);
    Ok(render::json(&body, observed.dev || params.pretty()))
}

#[cfg(test)]
mod tests;
