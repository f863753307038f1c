//! [`Gossip`], the sans-IO core: foca plus the member table, leave handling, user events, queries,
//! awareness, joins and encryption.
//!
//! Every entry point takes `now`; every effect is queued for the owner to drain with `poll_transmit`,
//! `poll_timer` and `poll_event`. Calls into foca go through [`Gossip::drive`], which turns what foca
//! produced (notifications, messages, timers, received broadcasts) into the engine's state and queues.

mod anti_entropy;
mod commands;
mod inbound;
mod join;
mod lifeguard;
mod timers;

use std::collections::VecDeque;
use std::fmt;
use std::net::SocketAddr;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, RngExt, SeedableRng};

use crate::awareness::{Awareness, ProbeWatch};
use crate::broadcast::{BroadcastFilter, BroadcastItem};
use crate::codec::{IdentityBook, SharedBook, WireCodec};
use crate::config::Config;
use crate::error::Error;
use crate::event::{Event, QueryRequest};
use crate::identity::NodeIdentity;
use crate::keyring::{Keyring, NONCE_LEN};
use crate::member::{Member, MemberStatus, MemberTable};
use crate::query::Queries;
use crate::runtime::{Effects, Note};
use crate::suspicion::Suspicions;
use crate::timer::{Timer, TimerKind};
use crate::wire::{Frame, MembershipDigest};

use self::join::Joins;

type Foca = foca::Foca<NodeIdentity, WireCodec, StdRng, BroadcastFilter>;

/// Most bytes a user event's id and three filters may take, so that a maximal event still fits in one
/// datagram next to a maximal header (checked by a test in `wire`).
pub(crate) const EVENT_EXTRAS_LIMIT: usize = 192;

/// A datagram to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// Destination gossip address.
    pub to: SocketAddr,
    /// The datagram, already encrypted when a keyring is configured.
    pub payload: Vec<u8>,
}

/// One member of the gossip pool, as a state machine. See the crate documentation.
pub struct Gossip {
    config: Config,
    foca: Foca,
    inbox: mpsc::Receiver<BroadcastItem>,
    rng: StdRng,
    identity: NodeIdentity,
    /// Whole identities by life hash, shared with foca's codec.
    book: SharedBook,
    local: Member,
    table: MemberTable,
    awareness: Awareness,
    probes: ProbeWatch,
    suspicions: Suspicions,
    /// Lamport clock of user events: the ltime the next fired event gets.
    event_clock: u64,
    queries: Queries,
    joins: Joins,
    /// No digest-triggered roster before this time (see `Config::sync_backoff`).
    digest_sync_after: Option<Instant>,
    /// Digest of the active members, until membership changes.
    digest: Option<MembershipDigest>,
    /// When the active members last changed here.
    membership_changed_at: Instant,
    /// Pool size foca's configuration was last computed for.
    sized_for: usize,
    /// A member came up or went down since the last push of updates (see `spread_news`).
    news: bool,
    effects: Effects,
    transmits: VecDeque<Transmit>,
    timers: VecDeque<(Duration, Timer)>,
    events: VecDeque<Event>,
}

impl fmt::Debug for Gossip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gossip")
            .field("name", &self.local.name)
            .field("incarnation", &self.identity.incarnation)
            .field("status", &self.local.status)
            .field("members", &self.table.iter().count())
            .finish_non_exhaustive()
    }
}

impl Gossip {
    /// A node that knows only itself. `seed` feeds every random choice, including encryption nonces: the
    /// driver draws it from the OS; only simulations may reuse seeds.
    pub fn new(config: Config, seed: [u8; 32], now: Instant) -> Result<Self, Error> {
        config.validate()?;
        let identity = NodeIdentity::new(
            &config.name,
            config.addr,
            config.incarnation,
            config.tags.clone(),
        )?;
        let mut rng = StdRng::from_seed(seed);
        let (filter, inbox) = BroadcastFilter::new();
        let book = IdentityBook::shared(&identity);
        let foca = Foca::with_custom_broadcast(
            identity.clone(),
            config.foca_config(1),
            StdRng::from_rng(&mut rng),
            WireCodec::new(Arc::clone(&book)),
            filter,
        );
        let mut gossip = Gossip {
            local: Member::from_identity(&identity, MemberStatus::Alive, now),
            awareness: Awareness::new(config.awareness_max),
            config,
            foca,
            inbox,
            rng,
            identity,
            book,
            table: MemberTable::default(),
            probes: ProbeWatch::default(),
            suspicions: Suspicions::default(),
            event_clock: 0,
            queries: Queries::default(),
            joins: Joins::default(),
            digest_sync_after: None,
            digest: None,
            membership_changed_at: now,
            sized_for: 1,
            news: false,
            effects: Effects::default(),
            transmits: VecDeque::new(),
            timers: VecDeque::new(),
            events: VecDeque::new(),
        };
        gossip.schedule(gossip.config.reap_interval, TimerKind::Reap);
        gossip.schedule(gossip.config.reconnect_interval, TimerKind::Reconnect);
        gossip.schedule(gossip.config.gossip_interval, TimerKind::BroadcastTick);
        gossip.schedule(gossip.config.sync_interval, TimerKind::Sync);
        Ok(gossip)
    }

    /// The configuration this node runs with (its keyring as of now).
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// How long a join keeps trying an address: `join_attempts` times `join_retry_interval`.
    pub fn join_timeout(&self) -> Duration {
        self.config
            .join_retry_interval
            .saturating_mul(self.config.join_attempts.max(1))
    }

    /// The local node's name.
    pub fn name(&self) -> &str {
        &self.local.name
    }

    /// The local node as a member (status `Alive`, `Leaving` or `Left`).
    pub fn local_member(&self) -> &Member {
        &self.local
    }

    /// Every known member, the local node included, sorted by name.
    pub fn members(&self) -> Vec<Member> {
        let mut members: Vec<Member> = self.table.iter().cloned().collect();
        members.push(self.local.clone());
        members.sort_by(|a, b| a.name.cmp(&b.name));
        members
    }

    /// One member by name, the local node included.
    pub fn member(&self, name: &str) -> Option<&Member> {
        if name == self.local.name {
            Some(&self.local)
        } else {
            self.table.get(name)
        }
    }

    /// How many members are alive, the local node included.
    pub fn num_alive(&self) -> usize {
        self.table.count(MemberStatus::Alive)
            + usize::from(self.local.status == MemberStatus::Alive)
    }

    /// The Lifeguard awareness score: 0 when healthy, up to `awareness_max` when this node seems slow.
    pub fn health_score(&self) -> u8 {
        self.awareness.score()
    }

    /// True once a graceful leave has completed; the node then ignores all input.
    pub fn has_left(&self) -> bool {
        self.local.status == MemberStatus::Left
    }

    /// The keyring, when encryption is enabled.
    pub fn keyring(&self) -> Option<&Keyring> {
        self.config.keyring.as_ref()
    }

    /// The keyring for install/use/remove, when encryption is enabled. Changes apply to the next datagram.
    pub fn keyring_mut(&mut self) -> Option<&mut Keyring> {
        self.config.keyring.as_mut()
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next timer to schedule: hand it back to [`Gossip::handle_timer`] after the delay.
    pub fn poll_timer(&mut self) -> Option<(Duration, Timer)> {
        self.timers.pop_front()
    }

    /// The next event for the owner.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    fn ensure_active(&self) -> Result<(), Error> {
        match self.local.status {
            MemberStatus::Alive => Ok(()),
            _ => Err(Error::Left),
        }
    }

    fn set_local_status(&mut self, status: MemberStatus, now: Instant) {
        if self.local.status != status {
            self.local.status = status;
            self.local.status_since = now;
        }
    }

    fn adopt_identity(&mut self, identity: NodeIdentity, now: Instant) {
        self.membership_changed(now);
        self.book().set_local(&identity);
        let status = self.local.status;
        self.local = Member::from_identity(&identity, status, now);
        self.identity = identity;
    }

    fn membership_changed(&mut self, now: Instant) {
        self.digest = None;
        self.membership_changed_at = now;
    }

    fn book(&self) -> std::sync::MutexGuard<'_, IdentityBook> {
        IdentityBook::lock(&self.book)
    }

    fn schedule(&mut self, after: Duration, kind: TimerKind) {
        self.timers.push_back((after, Timer(kind)));
    }

    /// Queues a custom broadcast; it is delivered locally and pushed to a few members at once.
    fn broadcast(&mut self, item: BroadcastItem, now: Instant) -> Result<(), Error> {
        self.foca.add_broadcast(&item.encode())?;
        self.absorb_inbox(now);
        Ok(())
    }

    /// A random active member's address.
    fn random_member_addr(&mut self) -> Option<SocketAddr> {
        let active = self.foca.num_members();
        if active == 0 {
            return None;
        }
        let pick = self.rng.random_range(0..active);
        self.foca
            .iter_members()
            .nth(pick)
            .map(|member| member.id().addr)
    }

    fn send_frame(&mut self, to: SocketAddr, frame: &Frame<'_>) {
        let plaintext = frame.encode();
        let payload = match &self.config.keyring {
            Some(keyring) => {
                let mut nonce = [0u8; NONCE_LEN];
                self.rng.fill_bytes(&mut nonce);
                keyring.encrypt(&plaintext, nonce)
            }
            None => plaintext,
        };
        self.transmits.push_back(Transmit { to, payload });
    }

    /// Runs one foca call and absorbs everything it produced.
    fn drive<F>(&mut self, now: Instant, call: F) -> Result<(), Error>
    where
        F: FnOnce(&mut Foca, &mut Effects) -> Result<(), foca::Error>,
    {
        let mut effects = std::mem::take(&mut self.effects);
        let result = call(&mut self.foca, &mut effects);
        self.absorb(&mut effects, now);
        // Drained by `absorb`; kept for its allocations.
        self.effects = effects;
        result.map_err(Error::from)
    }

    fn absorb(&mut self, effects: &mut Effects, now: Instant) {
        let mut suspected = Vec::new();
        for note in effects.notes.drain(..) {
            if let Note::ProbeFailed(id) = &note {
                suspected.push(id.clone());
            }
            self.apply_note(note, now);
        }
        for (to, bytes) in effects.sends.drain(..) {
            self.send_frame(to.addr, &Frame::Foca(&bytes));
        }
        for (after, timer) in effects.timers.drain(..) {
            match timer {
                foca::Timer::ChangeSuspectToDown { .. } => self.raise_suspicion(timer, now),
                _ => {
                    let after = self.scale_foca_timer(&timer, after);
                    self.schedule(after, TimerKind::Foca(timer));
                }
            }
        }
        for id in suspected {
            self.notify_suspect(&id);
        }
        self.absorb_inbox(now);
        self.fit_to_cluster_size();
    }

    fn apply_note(&mut self, note: Note, now: Instant) {
        if matches!(
            note,
            Note::Up(_) | Note::Down(_) | Note::Renamed(_) | Note::Rejoined(_)
        ) {
            self.membership_changed(now);
        }
        if matches!(note, Note::Up(_) | Note::Down(_)) {
            self.news = true;
        }
        let event = match note {
            Note::Up(id) => self.table.member_up(&id, now),
            Note::Down(id) => self.table.member_down(&id, now),
            Note::Renamed(id) => self.table.member_renamed(&id, now),
            Note::Rejoined(id) => {
                let incarnation = id.incarnation;
                tracing::info!(node = %id.name, incarnation, "declared down by the pool; rejoined");
                self.adopt_identity(id, now);
                None
            }
            Note::Defunct => {
                if self.local.status == MemberStatus::Alive {
                    tracing::warn!(node = %self.local.name, "the pool declared this node down and it cannot rejoin");
                }
                None
            }
            Note::PingSent { to, probe_number } => {
                self.probes.ping_sent(to, probe_number);
                None
            }
            Note::AckReceived { from, probe_number } => {
                if self.probes.ack_received(&from, probe_number) {
                    self.awareness.lower();
                }
                None
            }
            Note::IncarnationSent { identity, foca } => {
                if self.probes.incarnation_sent(identity, foca) {
                    self.awareness.raise();
                }
                None
            }
            Note::ProbeFailed(_) => {
                self.awareness.raise();
                None
            }
        };
        if let Some(event) = event {
            tracing::debug!(node = %self.local.name, ?event, "member event");
            self.events.push_back(event);
        }
    }

    /// Delivers the broadcasts foca accepted since the last call, then pushes them on.
    fn absorb_inbox(&mut self, now: Instant) {
        let items: Vec<BroadcastItem> = self.inbox.try_iter().collect();
        if items.is_empty() {
            return;
        }
        for item in items {
            self.deliver(item, now);
        }
        if let Err(error) = self.drive(now, |foca, effects| foca.broadcast(effects)) {
            tracing::debug!(%error, "broadcast failed");
        }
    }

    fn deliver(&mut self, item: BroadcastItem, now: Instant) {
        match item {
            BroadcastItem::UserEvent(event) => {
                self.event_clock = self.event_clock.max(event.ltime + 1);
                self.events.push_back(Event::User(event));
            }
            BroadcastItem::Query(query) => {
                let timeout = Duration::from_millis(query.timeout_ms);
                self.queries.received(
                    query.id,
                    query.origin.clone(),
                    query.origin_addr,
                    timeout,
                    now,
                );
                self.events.push_back(Event::Query(QueryRequest {
                    id: query.id,
                    name: query.name,
                    payload: query.payload,
                    from: query.origin,
                }));
            }
            // Our own goodbye, or a force-leave of this node while it is alive: nothing to record.
            BroadcastItem::Leave(intent) if intent.name == self.local.name => {}
            BroadcastItem::Leave(intent) => {
                let events = self.table.leave_intent(&intent, now);
                self.events.extend(events);
            }
            BroadcastItem::Suspicion(confirmation) => self.confirm_suspicion(confirmation, now),
        }
    }

    /// Pushes fresh membership news (a member up or down) to a few members at once instead of waiting for
    /// the next gossip round: each member that learns it does the same, so news reaches a pool in a few
    /// network round trips rather than a few gossip intervals. The updates count these sends among their
    /// `max_transmissions`, so this adds datagrams only when something changed.
    fn spread_news(&mut self, now: Instant) {
        if !std::mem::take(&mut self.news) || self.foca.updates_backlog() == 0 {
            return;
        }
        if let Err(error) = self.drive(now, |foca, effects| foca.gossip(effects)) {
            tracing::debug!(%error, "spreading news");
        }
    }

    /// Active members, this node included.
    fn pool_size(&self) -> usize {
        self.foca.num_members() + 1
    }

    /// Keeps foca's retransmission count in line with the pool size (it grows with its log). Suspicion
    /// timeouts are computed from the pool size when needed (see `lifeguard`).
    fn fit_to_cluster_size(&mut self) {
        let size = self.pool_size();
        if self.config.max_transmissions(size) == self.config.max_transmissions(self.sized_for) {
            return;
        }
        match self.foca.set_config(self.config.foca_config(size)) {
            Ok(()) => self.sized_for = size,
            Err(error) => tracing::debug!(%error, "foca refused the resized configuration"),
        }
    }
}

#[cfg(test)]
mod tests;
