//! The agent's local, health-aware view of the catalog for the lookups it answers itself (DNS):
//! a service or node asked for once is watched from then on with a blocking query on the
//! servers, so later lookups are answered from memory, never with a server round trip each.
//! What nobody asks for during [`IDLE`] stops being watched.
//!
//! Stale by design: an answer is as fresh as the server the watch reads from (replication lag)
//! plus the time to push the change; while no server answers, the last known instances are
//! served.
//!
//! A lookup of something watched is a read lock, a map lookup by `&str` and an `Arc` clone:
//! no allocation and no write to shared memory, so lookups from several threads do not contend.
//! The instances stay the same `Arc` until the watch reads a change, which lets DNS keep what
//! it built from them. The watches run on the runtime the view was made on, whatever runtime
//! asks.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use catalog::{NodeState, ServiceHealth};
use tokio::runtime::Handle;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::CatalogClient;

/// A watch nobody used for this long ends (noticed at its next read, within [`WAIT`]).
pub const IDLE: Duration = Duration::from_secs(300);
/// How long one blocking read waits on the servers.
const WAIT: Duration = Duration::from_secs(60);
/// How long a first lookup waits for the servers.
const FIRST_ANSWER: Duration = Duration::from_secs(5);
/// Back-off between failed reads.
const RETRY_MIN: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(15);

/// Instances of a service with their health, as last read.
pub type Instances = Arc<Vec<ServiceHealth>>;

/// What is watched.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    /// A service's instances, or with `connect` its proxies and mesh-native instances.
    Service { name: String, connect: bool },
    /// A node with its services and checks.
    Node(String),
}

/// What a watch last read.
#[derive(Debug, Clone)]
enum Answer {
    Instances(Instances),
    Node(Arc<NodeState>),
}

type Latest = Option<Result<Answer, String>>;

struct Watched {
    latest: watch::Receiver<Latest>,
    /// Set by lookups, cleared by the watch when it checks for idleness.
    used: Arc<AtomicBool>,
}

impl Watched {
    fn mark_used(&self) {
        // Read first: a set flag stays in every core's cache instead of bouncing between them.
        if !self.used.load(Ordering::Relaxed) {
            self.used.store(true, Ordering::Relaxed);
        }
    }
}

/// The watches, by kind, so that a lookup by `&str` needs no key of its own.
#[derive(Default)]
struct Watches {
    services: HashMap<String, Watched>,
    connect: HashMap<String, Watched>,
    nodes: HashMap<String, Watched>,
}

impl Watches {
    fn of(&self, kind: Kind) -> &HashMap<String, Watched> {
        match kind {
            Kind::Service => &self.services,
            Kind::Connect => &self.connect,
            Kind::Node => &self.nodes,
        }
    }

    fn of_mut(&mut self, kind: Kind) -> &mut HashMap<String, Watched> {
        match kind {
            Kind::Service => &mut self.services,
            Kind::Connect => &mut self.connect,
            Kind::Node => &mut self.nodes,
        }
    }

    fn len(&self) -> usize {
        self.services.len() + self.connect.len() + self.nodes.len()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Service,
    Connect,
    Node,
}

impl Key {
    fn kind_and_name(&self) -> (Kind, &str) {
        match self {
            Key::Service {
                name,
                connect: false,
            } => (Kind::Service, name),
            Key::Service {
                name,
                connect: true,
            } => (Kind::Connect, name),
            Key::Node(name) => (Kind::Node, name),
        }
    }
}

fn service_kind(connect: bool) -> Kind {
    if connect {
        Kind::Connect
    } else {
        Kind::Service
    }
}

/// The watched services; cheap to clone.
#[derive(Clone)]
pub struct HealthView {
    client: Arc<dyn CatalogClient>,
    /// Where the watches run.
    runtime: Handle,
    watched: Arc<RwLock<Watches>>,
}

impl std::fmt::Debug for HealthView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealthView")
            .field("watched", &self.watched())
            .finish()
    }
}

impl HealthView {
    /// A view whose watches run on the current tokio runtime.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn new(client: Arc<dyn CatalogClient>) -> Self {
        HealthView {
            client,
            runtime: Handle::current(),
            watched: Arc::default(),
        }
    }

    /// The instances of `name` (its proxies and mesh-native instances with `connect`): from
    /// memory when watched, else after starting a watch and waiting for its first answer.
    pub async fn service(&self, name: &str, connect: bool) -> Result<Instances, String> {
        if let Some(rows) = self.service_now(name, connect) {
            return Ok(rows);
        }
        let key = Key::Service {
            name: name.to_owned(),
            connect,
        };
        match self.get(key).await? {
            Answer::Instances(rows) => Ok(rows),
            Answer::Node(_) => unreachable!("a service watch reads instances"),
        }
    }

    /// The instances of `name` when they are watched and have been read: what
    /// [`HealthView::service`] answers, without waiting; `None` otherwise.
    pub fn service_now(&self, name: &str, connect: bool) -> Option<Instances> {
        let watched = self.watched.read().expect("view poisoned");
        let entry = watched.of(service_kind(connect)).get(name)?;
        entry.mark_used();
        let latest = entry.latest.borrow();
        match &*latest {
            Some(Ok(Answer::Instances(rows))) => Some(rows.clone()),
            _ => None,
        }
    }

    /// A node with its services and checks (no node: unknown), like [`HealthView::service`].
    pub async fn node(&self, name: &str) -> Result<Arc<NodeState>, String> {
        match self.get(Key::Node(name.to_owned())).await? {
            Answer::Node(state) => Ok(state),
            Answer::Instances(_) => unreachable!("a node watch reads a node"),
        }
    }

    async fn get(&self, key: Key) -> Result<Answer, String> {
        let mut latest = self.watch(key);
        let ready = |value: &Latest| matches!(value, Some(Ok(_)));
        let waited = tokio::time::timeout(FIRST_ANSWER, latest.wait_for(ready))
            .await
            .ok()
            .and_then(Result::ok)
            .map(|value| value.clone());
        // Without a success in time: the last failure, if any.
        let answered = waited.unwrap_or_else(|| latest.borrow().clone());
        answered.unwrap_or_else(|| Err("no answer from the servers yet".into()))
    }

    /// How many services are watched now.
    pub fn watched(&self) -> usize {
        self.watched.read().expect("view poisoned").len()
    }

    fn watch(&self, key: Key) -> watch::Receiver<Latest> {
        let (kind, name) = key.kind_and_name();
        if let Some(entry) = self
            .watched
            .read()
            .expect("view poisoned")
            .of(kind)
            .get(name)
        {
            entry.mark_used();
            return entry.latest.clone();
        }
        let mut watched = self.watched.write().expect("view poisoned");
        // Someone may have started it meanwhile.
        if let Some(entry) = watched.of(kind).get(name) {
            entry.mark_used();
            return entry.latest.clone();
        }
        let (tx, rx) = watch::channel(None);
        let used = Arc::new(AtomicBool::new(true));
        watched.of_mut(kind).insert(
            name.to_owned(),
            Watched {
                latest: rx.clone(),
                used: used.clone(),
            },
        );
        self.runtime.spawn(follow(
            self.client.clone(),
            Arc::downgrade(&self.watched),
            key,
            tx,
            used,
        ));
        rx
    }
}

/// Keeps one watched answer current until nobody asked for it during [`IDLE`].
async fn follow(
    client: Arc<dyn CatalogClient>,
    watched: Weak<RwLock<Watches>>,
    key: Key,
    tx: watch::Sender<Latest>,
    used: Arc<AtomicBool>,
) {
    let mut index = 0;
    let mut backoff = RETRY_MIN;
    let mut last_used = Instant::now();
    loop {
        // Decided under the write lock: a lookup marks the entry used under the read lock, so
        // it either marked it before this check or finds it gone and starts a new watch.
        let Some(map) = watched.upgrade() else { return };
        {
            let mut map = map.write().expect("view poisoned");
            if used.swap(false, Ordering::Relaxed) {
                last_used = Instant::now();
            }
            if last_used.elapsed() >= IDLE {
                let (kind, name) = key.kind_and_name();
                map.of_mut(kind).remove(name);
                return;
            }
        }
        drop(map);
        let read = match &key {
            Key::Service { name, connect } => client
                .watch_service(name, *connect, index, WAIT)
                .await
                .map(|(rows, index)| (Answer::Instances(Arc::new(rows)), index)),
            Key::Node(name) => client
                .watch_node(name, index, WAIT)
                .await
                .map(|(state, index)| (Answer::Node(Arc::new(state)), index)),
        };
        match read {
            Ok((answer, new_index)) => {
                backoff = RETRY_MIN;
                if new_index != index {
                    index = new_index;
                    tx.send_replace(Some(Ok(answer)));
                }
            }
            Err(err) => {
                tracing::debug!(?key, %err, "catalog view: watch failed; retrying");
                // Keep serving the last instances known; report the error only if there are none.
                tx.send_if_modified(|value| match value {
                    Some(Ok(_)) => false,
                    _ => {
                        *value = Some(Err(err.clone()));
                        true
                    }
                });
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(RETRY_MAX);
            }
        }
    }
}

#[cfg(test)]
mod tests;
