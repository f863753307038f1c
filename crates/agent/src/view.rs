//! The agent's local, health-aware view of the catalog for the lookups it answers itself (DNS):
//! a service or node asked for once is watched from then on with a blocking query on the
//! servers, so later lookups are answered from memory, never with a server round trip each.
//! What nobody asks for during [`IDLE`] stops being watched.
//!
//! Stale by design: an answer is as fresh as the server the watch reads from (replication lag)
//! plus the time to push the change; while no server answers, the last known instances are
//! served.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use catalog::{NodeState, ServiceHealth};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::CatalogClient;

/// A watch nobody used for this long ends.
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
    last_used: Arc<Mutex<Instant>>,
}

/// The watched services; cheap to clone.
#[derive(Clone)]
pub struct HealthView {
    client: Arc<dyn CatalogClient>,
    watched: Arc<Mutex<HashMap<Key, Watched>>>,
}

impl std::fmt::Debug for HealthView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let watched = self.watched.lock().expect("view poisoned").len();
        f.debug_struct("HealthView")
            .field("watched", &watched)
            .finish()
    }
}

impl HealthView {
    pub fn new(client: Arc<dyn CatalogClient>) -> Self {
        HealthView {
            client,
            watched: Arc::default(),
        }
    }

    /// The instances of `name` (its proxies and mesh-native instances with `connect`): from
    /// memory when watched, else after starting a watch and waiting for its first answer.
    pub async fn service(&self, name: &str, connect: bool) -> Result<Instances, String> {
        let key = Key::Service {
            name: name.to_owned(),
            connect,
        };
        match self.get(key).await? {
            Answer::Instances(rows) => Ok(rows),
            Answer::Node(_) => unreachable!("a service watch reads instances"),
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
        self.watched.lock().expect("view poisoned").len()
    }

    fn watch(&self, key: Key) -> watch::Receiver<Latest> {
        let mut watched = self.watched.lock().expect("view poisoned");
        if let Some(entry) = watched.get(&key) {
            *entry.last_used.lock().expect("view poisoned") = Instant::now();
            return entry.latest.clone();
        }
        let (tx, rx) = watch::channel(None);
        let last_used = Arc::new(Mutex::new(Instant::now()));
        watched.insert(
            key.clone(),
            Watched {
                latest: rx.clone(),
                last_used: last_used.clone(),
            },
        );
        tokio::spawn(follow(
            self.client.clone(),
            Arc::downgrade(&self.watched),
            key,
            tx,
            last_used,
        ));
        rx
    }
}

/// Keeps one watched answer current until nobody asked for it during [`IDLE`].
async fn follow(
    client: Arc<dyn CatalogClient>,
    watched: std::sync::Weak<Mutex<HashMap<Key, Watched>>>,
    key: Key,
    tx: watch::Sender<Latest>,
    last_used: Arc<Mutex<Instant>>,
) {
    let mut index = 0;
    let mut backoff = RETRY_MIN;
    loop {
        // Decided under the map's lock, which a lookup holds while it marks the entry used.
        let Some(map) = watched.upgrade() else { return };
        {
            let mut map = map.lock().expect("view poisoned");
            if last_used.lock().expect("view poisoned").elapsed() >= IDLE {
                map.remove(&key);
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
