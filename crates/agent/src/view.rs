//! The agent's local, health-aware view of the catalog for the lookups it answers itself (DNS):
//! a service asked for once is watched from then on with a blocking query on the servers, so
//! later lookups are answered from memory, never with a server round trip each. A service
//! nobody asks for during [`IDLE`] stops being watched.
//!
//! Stale by design: an answer is as fresh as the server the watch reads from (replication lag)
//! plus the time to push the change; while no server answers, the last known instances are
//! served.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use catalog::ServiceHealth;
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

/// Instances of a service with their health, as last read, and the catalog index they had.
pub type Instances = Arc<Vec<ServiceHealth>>;

type Key = (String, bool);

struct Watched {
    latest: watch::Receiver<Option<Result<Instances, String>>>,
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
        let mut latest = self.watch(name, connect);
        let ready = |value: &Option<Result<Instances, String>>| matches!(value, Some(Ok(_)));
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

    fn watch(
        &self,
        name: &str,
        connect: bool,
    ) -> watch::Receiver<Option<Result<Instances, String>>> {
        let key = (name.to_owned(), connect);
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

/// Keeps one service's instances current until nobody asked for it during [`IDLE`].
async fn follow(
    client: Arc<dyn CatalogClient>,
    watched: std::sync::Weak<Mutex<HashMap<Key, Watched>>>,
    key: Key,
    tx: watch::Sender<Option<Result<Instances, String>>>,
    last_used: Arc<Mutex<Instant>>,
) {
    let (name, connect) = (&key.0, key.1);
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
        match client.watch_service(name, connect, index, WAIT).await {
            Ok((rows, new_index)) => {
                backoff = RETRY_MIN;
                if new_index != index {
                    index = new_index;
                    tx.send_replace(Some(Ok(Arc::new(rows))));
                }
            }
            Err(err) => {
                tracing::debug!(service = %name, %err, "catalog view: watch failed; retrying");
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
