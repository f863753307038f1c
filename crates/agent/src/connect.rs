//! Connect on the agent: the CA roots, the leaf certificates of local services and the
//! intentions, cached on the node and kept current by blocking reads on the servers, so that
//! `/v1/agent/connect/*` (and the sidecar behind them) never need a server round trip per
//! request.
//!
//! - **Roots** and **intentions** are each one long-lived watch, started by the first request
//!   that needs them.
//! - **Leaves**: the first request for a service starts a task that generates a private key
//!   (it never leaves this node), sends a CSR to the servers, caches the signed leaf, and
//!   renews it at a random point between 60% and 90% of its life, at once after the active root
//!   changes. A blocking request returns when a new leaf replaces the one it has seen.
//!
//! Stale by design, like DNS: what is served is as fresh as the server the watch reads from;
//! while no server answers, the last roots, leaves and intentions are kept.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::future::BoxFuture;
use intentions::{AuthorizeRequest, Decision, DefaultPolicy, Intentions};
use rand::Rng;
use tokio::sync::watch;

#[cfg(test)]
mod tests;

/// How long one blocking read of roots or intentions waits on the servers.
const WAIT: Duration = Duration::from_secs(300);
/// How long a first request waits for the servers before it fails.
pub const FIRST_ANSWER: Duration = Duration::from_secs(10);
/// Back-off between failed reads or signings.
const RETRY_MIN: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(30);

/// The servers, as Connect on the agent needs them. The binaries implement it: a server's own
/// agent reads its replicated state, a client agent asks a server over server RPC.
pub trait ConnectClient: Send + Sync + 'static {
    /// The CA roots (none before a leader created the CA), once their index differs from
    /// `index` (or after `wait`), with that index: a blocking query, possibly stale.
    fn watch_roots(
        &self,
        index: u64,
        wait: Duration,
    ) -> BoxFuture<'_, Result<(Option<ca::wire::IndexedCaRoots>, u64), String>>;
    /// Every intention, once their index differs from `index` (or after `wait`).
    fn watch_intentions(
        &self,
        index: u64,
        wait: Duration,
    ) -> BoxFuture<'_, Result<(Intentions, u64), String>>;
    /// Has the servers sign a CSR for `service`; returns the leaf and its raft index.
    fn sign(
        &self,
        csr_pem: String,
        service: String,
    ) -> BoxFuture<'_, Result<(ca::Leaf, u64), SignFailure>>;
}

/// Why the servers did not sign.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignFailure {
    /// Over the servers' `CSRMaxPerSecond`; try again shortly.
    #[error("{}", ca::RetryAfter::MESSAGE)]
    RateLimited,
    #[error("{0}")]
    Failed(String),
}

/// Why a Connect request could not be answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectError {
    /// The servers refused to sign for now (HTTP 429).
    #[error("{}", ca::RetryAfter::MESSAGE)]
    RateLimited,
    /// Nothing was learned from the servers in time, or they failed (HTTP 500).
    #[error("{0}")]
    Unavailable(String),
}

/// The roots as last read, with their index.
#[derive(Debug, Clone, PartialEq)]
pub struct Roots {
    pub roots: ca::wire::IndexedCaRoots,
    pub index: u64,
}

/// A leaf this agent holds for a local service, with the key it generated.
#[derive(Debug, Clone, PartialEq)]
pub struct CachedLeaf {
    pub leaf: ca::Leaf,
    pub private_key_pem: String,
    /// The raft index of the leaf's issuance.
    pub index: u64,
}

impl CachedLeaf {
    /// `/v1/agent/connect/ca/leaf/:service`'s body.
    pub fn to_wire(&self) -> ca::wire::IssuedCert {
        self.leaf.to_issued_cert(&self.private_key_pem, self.index)
    }
}

/// The intentions as last read, with their index.
#[derive(Debug, Clone)]
pub struct IntentionsAt {
    pub intentions: Arc<Intentions>,
    pub index: u64,
}

type Slot<T> = watch::Sender<Option<Result<T, ConnectError>>>;

/// Connect's cache on one agent; cheap to clone.
#[derive(Clone)]
pub struct Connect {
    inner: Arc<Inner>,
}

struct Inner {
    client: Arc<dyn ConnectClient>,
    datacenter: String,
    default: DefaultPolicy,
    roots: Slot<Arc<Roots>>,
    intentions: Slot<IntentionsAt>,
    leaves: Mutex<HashMap<String, Slot<Arc<CachedLeaf>>>>,
    started: Mutex<Started>,
    shutdown: watch::Receiver<bool>,
}

#[derive(Default)]
struct Started {
    roots: bool,
    intentions: bool,
}

impl std::fmt::Debug for Connect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connect")
            .field("datacenter", &self.inner.datacenter)
            .finish_non_exhaustive()
    }
}

impl Connect {
    /// A cache for the agent of `datacenter`; its tasks stop when `shutdown` turns true.
    pub fn new(
        client: Arc<dyn ConnectClient>,
        datacenter: &str,
        default: DefaultPolicy,
        shutdown: watch::Receiver<bool>,
    ) -> Connect {
        Connect {
            inner: Arc::new(Inner {
                client,
                datacenter: datacenter.to_owned(),
                default,
                roots: watch::channel(None).0,
                intentions: watch::channel(None).0,
                leaves: Mutex::new(HashMap::new()),
                started: Mutex::new(Started::default()),
                shutdown,
            }),
        }
    }

    /// The roots, once their index differs from `index` (0: at once) or after `wait`.
    pub async fn roots(&self, index: u64, wait: Duration) -> Result<Arc<Roots>, ConnectError> {
        self.start_roots();
        let rx = self.inner.roots.subscribe();
        newer(rx, wait, |roots: &Arc<Roots>| roots.index != index).await
    }

    /// The leaf of local service `service`, once its index differs from `index` (0: at once)
    /// or after `wait`. The first request for a service starts keeping its leaf.
    pub async fn leaf(
        &self,
        service: &str,
        index: u64,
        wait: Duration,
    ) -> Result<Arc<CachedLeaf>, ConnectError> {
        let rx = {
            let mut leaves = self.inner.leaves.lock().expect("leaves poisoned");
            match leaves.get(service) {
                Some(slot) => slot.subscribe(),
                None => {
                    let slot = watch::channel(None).0;
                    let rx = slot.subscribe();
                    leaves.insert(service.to_owned(), slot.clone());
                    self.start_roots();
                    tokio::spawn(keep_leaf(self.inner.clone(), service.to_owned(), slot));
                    rx
                }
            }
        };
        let leaf = newer(rx, wait, |leaf: &Arc<CachedLeaf>| leaf.index != index).await;
        // No leaf because there are no roots to sign under: say why.
        match (&leaf, &*self.inner.roots.borrow()) {
            (Err(_), Some(Err(roots_failed))) => Err(roots_failed.clone()),
            _ => leaf,
        }
    }

    /// The intentions, once their index differs from `index` (0: at once) or after `wait`.
    pub async fn intentions(
        &self,
        index: u64,
        wait: Duration,
    ) -> Result<IntentionsAt, ConnectError> {
        self.start_intentions();
        let rx = self.inner.intentions.subscribe();
        newer(rx, wait, |at: &IntentionsAt| at.index != index).await
    }

    /// `POST /v1/agent/connect/authorize`, decided from the cached intentions. `Ok(Err(_))`
    /// is a request Consul refuses with a 400.
    pub async fn authorize(
        &self,
        request: &AuthorizeRequest,
    ) -> Result<Result<Decision, intentions::AuthorizeError>, ConnectError> {
        // Consul checks the request before it looks at intentions.
        if let Err(err) = request.client() {
            return Ok(Err(err));
        }
        let at = self.intentions(0, Duration::ZERO).await?;
        Ok(at.intentions.authorize_request(request, self.inner.default))
    }

    /// What intentions decide when none matches.
    pub fn default_policy(&self) -> DefaultPolicy {
        self.inner.default
    }

    fn start_roots(&self) {
        let mut started = self.inner.started.lock().expect("started poisoned");
        if !std::mem::replace(&mut started.roots, true) {
            tokio::spawn(watch_roots(self.inner.clone()));
        }
    }

    fn start_intentions(&self) {
        let mut started = self.inner.started.lock().expect("started poisoned");
        if !std::mem::replace(&mut started.intentions, true) {
            tokio::spawn(watch_intentions(self.inner.clone()));
        }
    }
}

/// Waits for a value that `is_news` accepts, for at most `wait` once a value exists and
/// [`FIRST_ANSWER`] before that (a failure other than rate limiting may be passing, as while a
/// new leader creates the CA). After `wait` the current value is returned as it is.
async fn newer<T: Clone>(
    mut rx: watch::Receiver<Option<Result<T, ConnectError>>>,
    wait: Duration,
    is_news: impl Fn(&T) -> bool,
) -> Result<T, ConnectError> {
    let settled = |v: &Option<Result<T, ConnectError>>| {
        matches!(v, Some(Ok(_)) | Some(Err(ConnectError::RateLimited)))
    };
    let _ = tokio::time::timeout(FIRST_ANSWER, rx.wait_for(settled)).await;
    if rx.borrow().is_none() {
        return Err(ConnectError::Unavailable(
            "no answer from the servers yet".into(),
        ));
    }
    let deadline = tokio::time::Instant::now() + wait;
    let news = |v: &Option<Result<T, ConnectError>>| match v {
        Some(Ok(value)) => is_news(value),
        _ => true,
    };
    let _ = tokio::time::timeout_at(deadline, rx.wait_for(news)).await;
    let current = rx.borrow().clone();
    current.unwrap_or_else(|| Err(ConnectError::Unavailable("no answer yet".into())))
}

/// The next back-off after `current` (doubling, capped).
fn backoff(current: Duration) -> Duration {
    (current * 2).clamp(RETRY_MIN, RETRY_MAX)
}

/// Sleeps for `delay`; false when the agent is shutting down.
async fn pause(inner: &Inner, delay: Duration) -> bool {
    let mut shutdown = inner.shutdown.clone();
    tokio::select! {
        () = tokio::time::sleep(delay) => true,
        _ = shutdown.wait_for(|stop| *stop) => false,
    }
}

/// Publishes a failure only while nothing good is known: stale beats absent.
fn publish_failure<T>(slot: &Slot<T>, err: ConnectError) {
    slot.send_if_modified(|current| match current {
        Some(Ok(_)) => false,
        _ => {
            *current = Some(Err(err));
            true
        }
    });
}

async fn watch_roots(inner: Arc<Inner>) {
    let mut index = 0;
    let mut retry = RETRY_MIN;
    // The first read does not block, so that a datacenter without a CA is reported at once;
    // later reads at index 0 block until the CA is created.
    let mut wait = Duration::ZERO;
    loop {
        let read = {
            let mut shutdown = inner.shutdown.clone();
            tokio::select! {
                read = inner.client.watch_roots(index, wait) => read,
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
        };
        match read {
            Ok((Some(roots), at)) => {
                retry = RETRY_MIN;
                index = at;
                wait = WAIT;
                inner.roots.send_if_modified(|current| {
                    let same = matches!(current, Some(Ok(r)) if r.index == at && r.roots == roots);
                    if !same {
                        *current = Some(Ok(Arc::new(Roots { roots, index: at })));
                    }
                    !same
                });
            }
            Ok((None, _)) => {
                // No CA yet (Connect is off, or a new leader is creating it): wait for it.
                index = 0;
                wait = WAIT;
                publish_failure(
                    &inner.roots,
                    ConnectError::Unavailable("CA is not initialized yet".into()),
                );
            }
            Err(err) => {
                tracing::debug!(%err, "reading the CA roots failed");
                publish_failure(&inner.roots, ConnectError::Unavailable(err));
                if !pause(&inner, retry).await {
                    return;
                }
                retry = backoff(retry);
            }
        }
    }
}

async fn watch_intentions(inner: Arc<Inner>) {
    let mut index = 0;
    let mut retry = RETRY_MIN;
    loop {
        let read = {
            let mut shutdown = inner.shutdown.clone();
            tokio::select! {
                read = inner.client.watch_intentions(index, WAIT) => read,
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
        };
        match read {
            Ok((intentions, at)) => {
                retry = RETRY_MIN;
                index = at;
                inner.intentions.send_if_modified(|current| {
                    let same = matches!(current, Some(Ok(c)) if c.index == at);
                    if !same {
                        *current = Some(Ok(IntentionsAt {
                            intentions: Arc::new(intentions),
                            index: at,
                        }));
                    }
                    !same
                });
            }
            Err(err) => {
                tracing::debug!(%err, "reading the intentions failed");
                publish_failure(&inner.intentions, ConnectError::Unavailable(err));
                if !pause(&inner, retry).await {
                    return;
                }
                retry = backoff(retry);
            }
        }
    }
}

/// What intentions decide when none matches: `default_intention_policy` when configured,
/// else the ACL default policy (allow while ACLs are off).
pub fn default_policy(config: &config::Config) -> DefaultPolicy {
    match config.default_intention_policy {
        Some(policy) => DefaultPolicy::Intention {
            allow: policy == config::IntentionPolicy::Allow,
        },
        // The ACL default policy decides; with ACLs off, everything is allowed.
        None => DefaultPolicy::Acl {
            allow: !(config.acl.enabled && config.acl.default_deny),
        },
    }
}

/// How long to wait before renewing a leaf valid from `valid_after` to `valid_before` (unix
/// seconds) at `now`: until a point between 60% and 90% of its life chosen by `fraction`
/// (in 0..1), and not at all once 90% has passed (Consul's `calculateSoftExpiry`).
pub fn renewal_delay(valid_after: u64, valid_before: u64, now: u64, fraction: f64) -> Duration {
    let life = valid_before.saturating_sub(valid_after) as f64;
    let at = valid_after as f64 + life * (0.6 + 0.3 * fraction.clamp(0.0, 1.0));
    let hard = valid_after as f64 + life * 0.9;
    let target = at.min(hard);
    Duration::from_secs_f64((target - now as f64).max(0.0))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Generates a key and a CSR for `service` and has the servers sign it.
async fn issue(
    inner: &Inner,
    service: &str,
    trust_domain: &str,
) -> Result<CachedLeaf, SignFailure> {
    let (private_key_pem, csr) =
        ca::generate_key_and_csr(trust_domain, &inner.datacenter, service, &[])
            .map_err(|e| SignFailure::Failed(e.to_string()))?;
    let (leaf, index) = inner.client.sign(csr, service.to_owned()).await?;
    Ok(CachedLeaf {
        leaf,
        private_key_pem,
        index,
    })
}

/// Keeps `service`'s leaf in `slot` until the agent stops.
async fn keep_leaf(inner: Arc<Inner>, service: String, slot: Slot<Arc<CachedLeaf>>) {
    let mut roots = inner.roots.subscribe();
    let mut shutdown = inner.shutdown.clone();
    let mut retry = RETRY_MIN;
    loop {
        let current_roots = tokio::select! {
            seen = roots.wait_for(|r| matches!(r, Some(Ok(_)))) => match seen {
                Ok(r) => match r.as_ref() {
                    Some(Ok(roots)) => roots.clone(),
                    _ => continue,
                },
                Err(_) => return,
            },
            _ = shutdown.wait_for(|stop| *stop) => return,
        };
        let active_root = current_roots.roots.active_root_id.clone();
        match issue(&inner, &service, &current_roots.roots.trust_domain).await {
            Ok(leaf) => {
                retry = RETRY_MIN;
                let delay = renewal_delay(
                    leaf.leaf.valid_after,
                    leaf.leaf.valid_before,
                    unix_now(),
                    rand::rng().random::<f64>(),
                );
                tracing::debug!(%service, serial = %leaf.leaf.serial_number, renew_in = ?delay, "new leaf certificate");
                slot.send_replace(Some(Ok(Arc::new(leaf))));
                let root_changed = roots.wait_for(
                    |r| matches!(r, Some(Ok(now)) if now.roots.active_root_id != active_root),
                );
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    changed = root_changed => if changed.is_err() { return },
                    _ = shutdown.wait_for(|stop| *stop) => return,
                }
            }
            Err(failure) => {
                let (err, delay) = match failure {
                    // Spread retries so rate-limited agents do not come back together.
                    SignFailure::RateLimited => (
                        ConnectError::RateLimited,
                        Duration::from_millis(rand::rng().random_range(500..3000)),
                    ),
                    SignFailure::Failed(text) => {
                        tracing::warn!(%service, err = %text, "getting a leaf certificate failed");
                        (ConnectError::Unavailable(text), retry)
                    }
                };
                publish_failure(&slot, err);
                retry = backoff(retry);
                if !pause(&inner, delay).await {
                    return;
                }
            }
        }
    }
}
