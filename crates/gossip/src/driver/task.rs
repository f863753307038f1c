//! The task behind a [`super::GossipHandle`]: socket in, timers, commands, socket out.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::time::{sleep_until, Instant};

use super::{QueryResponse, View};
use crate::{Error, Event, Gossip, Keyring, QueryId, Tags, Timer, UserEvent};

/// Largest datagram read; anything above the configured packet size is rejected by the core anyway.
const RECEIVE_BUFFER: usize = 65_536;

/// A source whose datagrams fail to decrypt is logged at most once per this interval.
const DECRYPT_LOG_INTERVAL: Duration = Duration::from_secs(60);

/// Sources remembered for rate-limiting decrypt warnings.
const DECRYPT_LOG_SOURCES: usize = 4096;

/// How long `leave` waits beyond the leave propagation delay.
const LEAVE_GRACE: Duration = Duration::from_secs(2);

/// What a handle asks of the task.
pub(super) enum Command {
    HealthScore(oneshot::Sender<u8>),
    Join {
        addrs: Vec<SocketAddr>,
        reply: oneshot::Sender<Result<usize, Error>>,
    },
    Leave(oneshot::Sender<Result<(), Error>>),
    ForceLeave {
        name: String,
        prune: bool,
        reply: oneshot::Sender<Result<(), Error>>,
    },
    SetTags {
        tags: Tags,
        reply: oneshot::Sender<Result<(), Error>>,
    },
    FireEvent {
        event: UserEvent,
        reply: oneshot::Sender<Result<UserEvent, Error>>,
    },
    Query {
        name: String,
        payload: Vec<u8>,
        timeout: Duration,
        /// Answer as soon as this many responses are in.
        expected: usize,
        reply: oneshot::Sender<Result<oneshot::Receiver<Vec<QueryResponse>>, Error>>,
    },
    Respond {
        id: QueryId,
        payload: Vec<u8>,
        reply: oneshot::Sender<Result<(), Error>>,
    },
    Keyring {
        op: KeyringOp,
        reply: oneshot::Sender<Result<Vec<String>, Error>>,
    },
}

/// A keyring operation on the local node.
pub(super) enum KeyringOp {
    List,
    Install(String),
    Use(String),
    Remove(String),
}

struct Scheduled {
    at: Instant,
    seq: u64,
    timer: Timer,
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

struct PendingJoin {
    addrs: Vec<SocketAddr>,
    deadline: Instant,
    reply: oneshot::Sender<Result<usize, Error>>,
}

struct PendingLeave {
    deadline: Instant,
    reply: oneshot::Sender<Result<(), Error>>,
}

struct PendingQuery {
    responses: Vec<QueryResponse>,
    expected: usize,
    reply: oneshot::Sender<Vec<QueryResponse>>,
}

/// How the task talks to its handles.
pub(super) struct Channels {
    pub(super) commands: mpsc::Receiver<Command>,
    pub(super) events: broadcast::Sender<Event>,
    pub(super) view: watch::Sender<Arc<View>>,
    pub(super) changes: watch::Sender<u64>,
}

pub(super) struct Task {
    socket: UdpSocket,
    gossip: Gossip,
    commands: mpsc::Receiver<Command>,
    events: broadcast::Sender<Event>,
    view: watch::Sender<Arc<View>>,
    changes: watch::Sender<u64>,
    /// Something the view shows may have changed since it was last published.
    view_stale: bool,
    timers: BinaryHeap<Scheduled>,
    seq: u64,
    joins: Vec<PendingJoin>,
    leaves: Vec<PendingLeave>,
    queries: HashMap<QueryId, PendingQuery>,
    decrypt_warnings: HashMap<SocketAddr, Instant>,
}

impl Task {
    pub(super) fn new(socket: UdpSocket, gossip: Gossip, channels: Channels) -> Self {
        Task {
            socket,
            gossip,
            commands: channels.commands,
            events: channels.events,
            view: channels.view,
            changes: channels.changes,
            view_stale: false,
            timers: BinaryHeap::new(),
            seq: 0,
            joins: Vec::new(),
            leaves: Vec::new(),
            queries: HashMap::new(),
            decrypt_warnings: HashMap::new(),
        }
    }

    /// Runs until every handle is dropped (or the task is aborted).
    pub(super) async fn run(mut self) {
        let mut buffer = vec![0u8; RECEIVE_BUFFER];
        self.flush().await;
        loop {
            let wake_at = self.next_wakeup();
            tokio::select! {
                received = self.socket.recv_from(&mut buffer) => match received {
                    Ok((len, from)) => self.datagram(from, &buffer[..len]),
                    Err(error) => tracing::debug!(%error, "gossip receive"),
                },
                () = sleep_until(wake_at) => self.fire_due_timers(),
                command = self.commands.recv() => match command {
                    Some(command) => {
                        // Tags, leaves and keyring changes show in the view without an event.
                        self.view_stale = true;
                        self.command(command);
                    }
                    None => break,
                },
            }
            self.flush().await;
            self.publish_view();
            self.settle_waiters();
        }
        tracing::debug!(node = %self.gossip.name(), "gossip task stopped");
    }

    fn next_wakeup(&self) -> Instant {
        let far = Instant::now() + Duration::from_secs(3600);
        let timer = self.timers.peek().map_or(far, |scheduled| scheduled.at);
        let join = self
            .joins
            .iter()
            .map(|join| join.deadline)
            .min()
            .unwrap_or(far);
        let leave = self
            .leaves
            .iter()
            .map(|leave| leave.deadline)
            .min()
            .unwrap_or(far);
        timer.min(join).min(leave)
    }

    fn fire_due_timers(&mut self) {
        let now = Instant::now();
        while self
            .timers
            .peek()
            .is_some_and(|scheduled| scheduled.at <= now)
        {
            let scheduled = self.timers.pop().expect("peeked");
            self.gossip.handle_timer(scheduled.timer, now.into_std());
        }
    }

    fn datagram(&mut self, from: SocketAddr, datagram: &[u8]) {
        let now = Instant::now();
        match self.gossip.handle_datagram(from, datagram, now.into_std()) {
            Ok(()) => {}
            Err(error) if error.is_encryption_mismatch() => {
                self.warn_undecryptable(from, &error, now)
            }
            Err(error) => tracing::debug!(%from, %error, "dropped gossip datagram"),
        }
    }

    /// One warning per source per minute: a node with the wrong key keeps sending, the log must not flood.
    fn warn_undecryptable(&mut self, from: SocketAddr, error: &Error, now: Instant) {
        let recently = self
            .decrypt_warnings
            .get(&from)
            .is_some_and(|last| now.duration_since(*last) < DECRYPT_LOG_INTERVAL);
        if recently {
            return;
        }
        if self.decrypt_warnings.len() >= DECRYPT_LOG_SOURCES {
            self.decrypt_warnings
                .retain(|_, last| now.duration_since(*last) < DECRYPT_LOG_INTERVAL);
        }
        self.decrypt_warnings.insert(from, now);
        tracing::warn!(
            %from,
            %error,
            "dropping gossip datagrams that fail to decrypt; is the gossip key the same everywhere?"
        );
    }

    fn command(&mut self, command: Command) {
        let now = Instant::now();
        let std_now = now.into_std();
        let gossip = &mut self.gossip;
        match command {
            Command::HealthScore(reply) => answer(reply, gossip.health_score()),
            Command::Join { addrs, reply } => self.start_join(addrs, reply, now),
            Command::Leave(reply) => match gossip.leave(std_now) {
                Ok(()) => {
                    let deadline = now + gossip.config().leave_propagate_delay + LEAVE_GRACE;
                    self.leaves.push(PendingLeave { deadline, reply });
                }
                Err(error) => answer(reply, Err(error)),
            },
            Command::ForceLeave { name, prune, reply } => {
                answer(reply, gossip.force_leave(&name, prune, std_now))
            }
            Command::SetTags { tags, reply } => answer(reply, gossip.set_tags(tags, std_now)),
            Command::FireEvent { event, reply } => answer(reply, gossip.fire_event(event, std_now)),
            Command::Query {
                name,
                payload,
                timeout,
                expected,
                reply,
            } => match gossip.query(&name, payload, timeout, std_now) {
                Ok(id) => {
                    let (done, responses) = oneshot::channel();
                    self.queries.insert(
                        id,
                        PendingQuery {
                            responses: Vec::new(),
                            expected,
                            reply: done,
                        },
                    );
                    answer(reply, Ok(responses));
                }
                Err(error) => answer(reply, Err(error)),
            },
            Command::Respond { id, payload, reply } => {
                answer(reply, gossip.respond(id, payload, std_now))
            }
            Command::Keyring { op, reply } => answer(reply, keyring_op(gossip, op)),
        }
    }

    fn start_join(
        &mut self,
        addrs: Vec<SocketAddr>,
        reply: oneshot::Sender<Result<usize, Error>>,
        now: Instant,
    ) {
        for addr in &addrs {
            if let Err(error) = self.gossip.join(*addr) {
                answer(reply, Err(error));
                return;
            }
        }
        let deadline = now + self.gossip.join_timeout();
        self.joins.push(PendingJoin {
            addrs,
            deadline,
            reply,
        });
    }

    /// Sends what the core produced, schedules its timers, publishes its events.
    async fn flush(&mut self) {
        loop {
            let mut progress = false;
            while let Some(transmit) = self.gossip.poll_transmit() {
                progress = true;
                if let Err(error) = self.socket.send_to(&transmit.payload, transmit.to).await {
                    tracing::debug!(to = %transmit.to, %error, "gossip send");
                }
            }
            let now = Instant::now();
            while let Some((after, timer)) = self.gossip.poll_timer() {
                progress = true;
                self.seq += 1;
                self.timers.push(Scheduled {
                    at: now + after,
                    seq: self.seq,
                    timer,
                });
            }
            while let Some(event) = self.gossip.poll_event() {
                progress = true;
                self.publish(event);
            }
            if !progress {
                return;
            }
        }
    }

    fn publish(&mut self, event: Event) {
        log_event(&event);
        match &event {
            Event::MemberJoin(_)
            | Event::MemberUpdate(_)
            | Event::MemberFailed(_)
            | Event::MemberLeft(_)
            | Event::MemberReaped(_) => self.view_stale = true,
            Event::QueryResponse { id, from, payload } => {
                if let Some(query) = self.queries.get_mut(id) {
                    query.responses.push(QueryResponse {
                        from: from.clone(),
                        payload: payload.clone(),
                    });
                    if query.responses.len() >= query.expected {
                        if let Some(query) = self.queries.remove(id) {
                            answer(query.reply, query.responses);
                        }
                    }
                }
            }
            Event::QueryDone { id } => {
                if let Some(query) = self.queries.remove(id) {
                    answer(query.reply, query.responses);
                }
            }
            _ => {}
        }
        // No subscriber is fine: events are also there for whoever subscribes later.
        let _ = self.events.send(event);
    }

    /// Republishes the member list when it may have changed. A change of the local node can come without
    /// an event (a completed leave, a rejoin under a new incarnation), so that is compared every time.
    fn publish_view(&mut self) {
        let local_changed = self.view.borrow().local != *self.gossip.local_member();
        if !(self.view_stale || local_changed) {
            return;
        }
        self.view_stale = false;
        let view = View::of(&self.gossip);
        let changed = local_changed || {
            let current = self.view.borrow();
            current.members != view.members || current.keyring != view.keyring
        };
        if changed {
            self.view.send_replace(Arc::new(view));
            self.changes.send_modify(|version| *version += 1);
        }
    }

    /// Answers joins and leaves that are complete or out of time.
    fn settle_waiters(&mut self) {
        let now = Instant::now();
        let gossip = &self.gossip;
        let (done, waiting): (Vec<_>, Vec<_>) = self.joins.drain(..).partition(|join| {
            join.deadline <= now || join.addrs.iter().all(|addr| gossip.join_answered(*addr))
        });
        self.joins = waiting;
        for join in done {
            let answered = join
                .addrs
                .iter()
                .filter(|addr| gossip.join_answered(**addr))
                .count();
            answer(join.reply, Ok(answered));
        }

        let left = self.gossip.has_left();
        let (done, waiting): (Vec<_>, Vec<_>) = self
            .leaves
            .drain(..)
            .partition(|leave| left || leave.deadline <= now);
        self.leaves = waiting;
        for leave in done {
            if !left {
                tracing::warn!(node = %self.gossip.name(), "leave did not complete in time");
            }
            answer(leave.reply, Ok(()));
        }
    }
}

fn keyring_op(gossip: &mut Gossip, op: KeyringOp) -> Result<Vec<String>, Error> {
    let keyring: &mut Keyring = gossip.keyring_mut().ok_or(Error::EncryptionDisabled)?;
    match op {
        KeyringOp::List => {}
        KeyringOp::Install(key) => keyring.install(&key)?,
        KeyringOp::Use(key) => keyring.use_key(&key)?,
        KeyringOp::Remove(key) => keyring.remove(&key)?,
    }
    Ok(keyring.list())
}

fn log_event(event: &Event) {
    match event {
        Event::MemberJoin(member) => {
            tracing::info!(member = %member.name, addr = %member.addr, "member joined")
        }
        Event::MemberUpdate(member) => {
            tracing::info!(member = %member.name, addr = %member.addr, "member updated")
        }
        Event::MemberFailed(member) => {
            tracing::info!(member = %member.name, addr = %member.addr, "member failed")
        }
        Event::MemberLeft(member) => {
            tracing::info!(member = %member.name, addr = %member.addr, "member left")
        }
        Event::MemberReaped(member) => tracing::info!(member = %member.name, "member reaped"),
        Event::User(event) => {
            tracing::debug!(name = %event.name, ltime = event.ltime, "user event")
        }
        Event::Query(query) => tracing::debug!(name = %query.name, from = %query.from, "query"),
        Event::QueryResponse { .. } | Event::QueryDone { .. } => {}
    }
}

/// Replies to a handle; a handle that stopped waiting is not an error.
fn answer<T>(reply: oneshot::Sender<T>, value: T) {
    let _ = reply.send(value);
}
