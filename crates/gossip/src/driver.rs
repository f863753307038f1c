//! The thin IO layer: one tokio task owns the UDP socket, the timers and a [`Gossip`]; a cloneable
//! [`GossipHandle`] talks to it through a channel, and reads the member list from a snapshot the task
//! republishes whenever it changes (so HTTP handlers never wait on the task).
//!
//! This is the only module that touches sockets, the clock and OS randomness. Everything it decides is
//! delegated to the core; it only moves bytes, schedules timers, logs, and waits for answers.

mod task;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::net::UdpSocket;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::AbortHandle;

use crate::{Config, Error, Event, Gossip, Keyring, Member, QueryId, Tags, UserEvent};

use self::task::{Command, KeyringOp, Task};

/// How many events a slow subscriber may fall behind before it misses some.
const EVENT_BACKLOG: usize = 1024;

/// How many commands may wait for the task.
const COMMAND_BACKLOG: usize = 64;

/// One member's answer to a query made through [`GossipHandle::query`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryResponse {
    /// The answering node.
    pub from: String,
    /// Its answer.
    pub payload: Vec<u8>,
}

/// What the task last published: the member list, the local node and the keyring.
#[derive(Clone, Debug)]
pub(crate) struct View {
    members: Vec<Member>,
    local: Member,
    keyring: Option<Keyring>,
}

impl View {
    pub(crate) fn of(gossip: &Gossip) -> Self {
        View {
            members: gossip.members(),
            local: gossip.local_member().clone(),
            keyring: gossip.keyring().cloned(),
        }
    }
}

/// A cloneable handle on a running gossip task. The task stops when every handle is dropped, or at once
/// with [`GossipHandle::abort`].
#[derive(Clone, Debug)]
pub struct GossipHandle {
    commands: mpsc::Sender<Command>,
    events: broadcast::Sender<Event>,
    view: watch::Receiver<Arc<View>>,
    changes: watch::Receiver<u64>,
    task: AbortHandle,
    name: String,
    local_addr: SocketAddr,
}

/// Binds the gossip socket on `bind`, starts the task, and returns a handle on it.
///
/// A zero port in `config.addr` is replaced by the bound port, an unspecified address by the bound one;
/// an incarnation of 0 is replaced by the wall clock in milliseconds so that a restarted node wins over
/// its previous life.
pub async fn spawn(mut config: Config, bind: SocketAddr) -> Result<GossipHandle, Error> {
    let socket = UdpSocket::bind(bind).await?;
    let bound = socket.local_addr()?;
    if config.addr.port() == 0 {
        config.addr.set_port(bound.port());
    }
    if config.addr.ip().is_unspecified() {
        if bound.ip().is_unspecified() {
            return Err(Error::InvalidConfig {
                reason: "an advertised gossip address is required when binding to an unspecified address",
            });
        }
        config.addr.set_ip(bound.ip());
    }
    if config.incarnation == 0 {
        config.incarnation = wall_clock_millis();
    }
    let name = config.name.clone();
    let local_addr = config.addr;
    let gossip = Gossip::new(
        config,
        rand::random(),
        tokio::time::Instant::now().into_std(),
    )?;
    let (commands, inbox) = mpsc::channel(COMMAND_BACKLOG);
    let (events, _) = broadcast::channel(EVENT_BACKLOG);
    let (view_sender, view) = watch::channel(Arc::new(View::of(&gossip)));
    let (changes_sender, changes) = watch::channel(0);
    let channels = task::Channels {
        commands: inbox,
        events: events.clone(),
        view: view_sender,
        changes: changes_sender,
    };
    let running = tokio::spawn(Task::new(socket, gossip, channels).run());
    tracing::info!(node = %name, addr = %local_addr, "gossip started");
    Ok(GossipHandle {
        commands,
        events,
        view,
        changes,
        task: running.abort_handle(),
        name,
        local_addr,
    })
}

/// A fresh gossip encryption key in base64, from OS randomness (`consul keygen`).
pub fn generate_key() -> String {
    crate::keyring::encode_key(&rand::random())
}

fn wall_clock_millis() -> u64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX)
}

impl GossipHandle {
    /// The local node's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The address other members reach this node on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Every event from now on. A subscriber that falls more than 1024 events behind loses the oldest.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// A counter bumped whenever the member list (or the local node, or the keyring) changes.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changes.clone()
    }

    /// Every known member, this node included, sorted by name (the latest snapshot).
    pub fn members(&self) -> Vec<Member> {
        self.view.borrow().members.clone()
    }

    /// The local node as a member (the latest snapshot).
    pub fn local(&self) -> Member {
        self.view.borrow().local.clone()
    }

    /// The keyring as of the latest change, for persisting it (`None` without encryption).
    pub fn keyring(&self) -> Option<Keyring> {
        self.view.borrow().keyring.clone()
    }

    /// Stops the task at once, without a goodbye: to the others this node has crashed.
    pub fn abort(&self) {
        self.task.abort();
    }

    /// The Lifeguard health score (0 is healthy).
    pub async fn health_score(&self) -> Result<u8, Error> {
        self.ask(Command::HealthScore).await
    }

    /// Joins through every address; returns how many answered within the join timeout (0 when none
    /// did: wording Consul's "failed to join" is the caller's job).
    pub async fn join(&self, addrs: Vec<SocketAddr>) -> Result<usize, Error> {
        self.ask(|reply| Command::Join { addrs, reply }).await?
    }

    /// Leaves gracefully; returns once the leave has had time to spread (a few probe periods at most).
    pub async fn leave(&self) -> Result<(), Error> {
        self.ask(Command::Leave).await?
    }

    /// Marks a failed member left everywhere; `prune` removes it from every table.
    pub async fn force_leave(&self, name: &str, prune: bool) -> Result<(), Error> {
        let name = name.to_owned();
        self.ask(|reply| Command::ForceLeave { name, prune, reply })
            .await?
    }

    /// Replaces the local tags.
    pub async fn set_tags(&self, tags: Tags) -> Result<(), Error> {
        self.ask(|reply| Command::SetTags { tags, reply }).await?
    }

    /// Fires a user event; returns it with its Lamport time.
    pub async fn fire_event(&self, event: UserEvent) -> Result<UserEvent, Error> {
        self.ask(|reply| Command::FireEvent { event, reply })
            .await?
    }

    /// Asks every member and collects the answers that arrive within `timeout`.
    pub async fn query(
        &self,
        name: &str,
        payload: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<QueryResponse>, Error> {
        self.query_until(name, payload, timeout, usize::MAX).await
    }

    /// Like [`GossipHandle::query`], but returns as soon as `expected` answers have arrived
    /// (for instance one from every live member), without waiting out the timeout.
    pub async fn query_until(
        &self,
        name: &str,
        payload: Vec<u8>,
        timeout: Duration,
        expected: usize,
    ) -> Result<Vec<QueryResponse>, Error> {
        let (reply, answers) = oneshot::channel();
        let name = name.to_owned();
        self.send(Command::Query {
            name,
            payload,
            timeout,
            expected,
            reply,
        })
        .await?;
        let started = answers.await.map_err(|_| Error::Stopped)?;
        started?.await.map_err(|_| Error::Stopped)
    }

    /// Answers a query received as [`Event::Query`].
    pub async fn respond(&self, id: QueryId, payload: Vec<u8>) -> Result<(), Error> {
        self.ask(|reply| Command::Respond { id, payload, reply })
            .await?
    }

    /// Installed gossip keys, primary first.
    pub async fn keyring_list(&self) -> Result<Vec<String>, Error> {
        self.keyring_op(KeyringOp::List).await
    }

    /// Installs a key; returns the keys after the change.
    pub async fn keyring_install(&self, key: &str) -> Result<Vec<String>, Error> {
        self.keyring_op(KeyringOp::Install(key.to_owned())).await
    }

    /// Makes an installed key primary; returns the keys after the change.
    pub async fn keyring_use(&self, key: &str) -> Result<Vec<String>, Error> {
        self.keyring_op(KeyringOp::Use(key.to_owned())).await
    }

    /// Removes a key other than the primary; returns the keys after the change.
    pub async fn keyring_remove(&self, key: &str) -> Result<Vec<String>, Error> {
        self.keyring_op(KeyringOp::Remove(key.to_owned())).await
    }

    async fn keyring_op(&self, op: KeyringOp) -> Result<Vec<String>, Error> {
        self.ask(|reply| Command::Keyring { op, reply }).await?
    }

    async fn ask<T>(
        &self,
        command: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, Error> {
        let (reply, answer) = oneshot::channel();
        self.send(command(reply)).await?;
        answer.await.map_err(|_| Error::Stopped)
    }

    async fn send(&self, command: Command) -> Result<(), Error> {
        self.commands
            .send(command)
            .await
            .map_err(|_| Error::Stopped)
    }
}

#[cfg(test)]
mod tests;
