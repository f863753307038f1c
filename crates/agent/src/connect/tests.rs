use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::*;

const CLUSTER: &str = "11111111-2222-3333-4444-555555555555";
const DC: &str = "dc1";
const MUST_HAPPEN: Duration = Duration::from_secs(10);

/// The servers' side, held in memory: a real CA and real intentions, with blocking reads.
struct MemoryServers {
    ca: Mutex<ca::CaState>,
    intentions: Mutex<Intentions>,
    /// Bumped on every change of roots or intentions.
    changes: watch::Sender<u64>,
    next_index: AtomicU64,
    rate_limited: AtomicBool,
}

impl MemoryServers {
    fn new() -> Arc<MemoryServers> {
        let mut state = ca::CaState::bootstrap(CLUSTER, ca::CaConfig::default(), SystemTime::now())
            .expect("bootstrap");
        state.stamp_index(1);
        Arc::new(MemoryServers {
            ca: Mutex::new(state),
            intentions: Mutex::new(Intentions::new()),
            changes: watch::Sender::new(0),
            next_index: AtomicU64::new(2),
            rate_limited: AtomicBool::new(false),
        })
    }

    fn index(&self) -> u64 {
        self.next_index.fetch_add(1, Ordering::SeqCst)
    }

    fn rotate(&self) {
        let index = self.index();
        let mut ca = self.ca.lock().expect("ca");
        ca.rotate(SystemTime::now()).expect("rotate");
        ca.stamp_index(index);
        drop(ca);
        self.changes.send_modify(|n| *n += 1);
    }

    fn write(&self, op: intentions::IntentionOp) {
        let index = self.index();
        self.intentions
            .lock()
            .expect("intentions")
            .apply(&op, index)
            .expect("valid intention");
        self.changes.send_modify(|n| *n += 1);
    }

    async fn blocking<T>(
        &self,
        index: u64,
        wait: Duration,
        read: impl Fn() -> (T, u64),
    ) -> (T, u64) {
        let mut changes = self.changes.subscribe();
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let (value, at) = read();
            if at != index {
                return (value, at);
            }
            if tokio::time::timeout_at(deadline, changes.changed())
                .await
                .is_err()
            {
                return (value, at);
            }
        }
    }
}

impl ConnectClient for MemoryServers {
    fn watch_roots(
        &self,
        index: u64,
        wait: Duration,
    ) -> BoxFuture<'_, Result<(Option<ca::wire::IndexedCaRoots>, u64), String>> {
        Box::pin(async move {
            Ok(self
                .blocking(index, wait, || {
                    let ca = self.ca.lock().expect("ca");
                    (Some(ca.roots_response()), ca.roots_modify_index)
                })
                .await)
        })
    }

    fn watch_intentions(
        &self,
        index: u64,
        wait: Duration,
    ) -> BoxFuture<'_, Result<(Intentions, u64), String>> {
        Box::pin(async move {
            Ok(self
                .blocking(index, wait, || {
                    let ixns = self.intentions.lock().expect("intentions");
                    // A server never answers index 0 (it would not block).
                    (ixns.clone(), ixns.index().max(1))
                })
                .await)
        })
    }

    fn sign(
        &self,
        csr_pem: String,
        service: String,
    ) -> BoxFuture<'_, Result<(ca::Leaf, u64), SignFailure>> {
        Box::pin(async move {
            if self.rate_limited.load(Ordering::SeqCst) {
                return Err(SignFailure::RateLimited);
            }
            let index = self.index();
            let leaf = self
                .ca
                .lock()
                .expect("ca")
                .sign_leaf(&csr_pem, &service, DC, SystemTime::now())
                .map_err(|e| SignFailure::Failed(e.to_string()))?;
            Ok((leaf, index))
        })
    }
}

fn connect(servers: &Arc<MemoryServers>, default: DefaultPolicy) -> (Connect, watch::Sender<bool>) {
    let (stop, stopped) = watch::channel(false);
    (Connect::new(servers.clone(), DC, default, stopped), stop)
}

fn trusted(roots: &Roots) -> Vec<String> {
    roots
        .roots
        .roots
        .iter()
        .map(|r| r.root_cert.clone())
        .collect()
}

#[tokio::test]
async fn a_leaf_is_issued_for_a_local_key_and_chains_to_the_roots() {
    let servers = MemoryServers::new();
    let (connect, _stop) = connect(&servers, DefaultPolicy::Acl { allow: true });
    let leaf = connect.leaf("web", 0, Duration::ZERO).await.expect("leaf");
    let roots = connect.roots(0, Duration::ZERO).await.expect("roots");
    let id = ca::verify_leaf(&leaf.leaf.cert_pem, &trusted(&roots), SystemTime::now())
        .expect("the leaf chains to a root");
    assert_eq!(id.service, "web");
    assert_eq!(id.datacenter, DC);
    assert!(leaf.private_key_pem.contains("PRIVATE KEY"));
    let wire = serde_json::to_value(leaf.to_wire()).expect("json");
    assert_eq!(wire["Service"], "web");
    assert_eq!(wire["ModifyIndex"], leaf.index);
    // A second request is answered from the cache: the same leaf.
    let again = connect.leaf("web", 0, Duration::ZERO).await.expect("leaf");
    assert_eq!(again.leaf.serial, leaf.leaf.serial);
}

#[tokio::test]
async fn a_blocking_leaf_request_returns_the_leaf_issued_after_a_root_rotation() {
    let servers = MemoryServers::new();
    let (connect, _stop) = connect(&servers, DefaultPolicy::Acl { allow: true });
    let first = connect.leaf("web", 0, Duration::ZERO).await.expect("leaf");
    let waiting = {
        let connect = connect.clone();
        let index = first.index;
        tokio::spawn(async move { connect.leaf("web", index, MUST_HAPPEN).await })
    };
    servers.rotate();
    let renewed = waiting.await.expect("task").expect("leaf");
    assert_ne!(renewed.index, first.index, "a new leaf, not the timeout");
    let roots = connect.roots(0, Duration::ZERO).await.expect("roots");
    assert_eq!(renewed.leaf.root_id, roots.roots.active_root_id);
    // The old leaf still verifies against the roots (the old root is kept).
    ca::verify_leaf(&first.leaf.cert_pem, &trusted(&roots), SystemTime::now())
        .expect("old leaves stay valid");
    ca::verify_leaf(&renewed.leaf.cert_pem, &trusted(&roots), SystemTime::now())
        .expect("new leaves are valid");
}

#[tokio::test]
async fn a_blocking_request_without_news_returns_the_same_leaf_after_its_wait() {
    let servers = MemoryServers::new();
    let (connect, _stop) = connect(&servers, DefaultPolicy::Acl { allow: true });
    let first = connect.leaf("db", 0, Duration::ZERO).await.expect("leaf");
    let same = connect
        .leaf("db", first.index, Duration::from_millis(50))
        .await
        .expect("leaf");
    assert_eq!(same.index, first.index);
}

#[tokio::test]
async fn a_rate_limited_first_request_is_refused_as_such() {
    let servers = MemoryServers::new();
    servers.rate_limited.store(true, Ordering::SeqCst);
    let (connect, _stop) = connect(&servers, DefaultPolicy::Acl { allow: true });
    let refused = connect.leaf("web", 0, Duration::ZERO).await;
    assert_eq!(refused.map(|_| ()), Err(ConnectError::RateLimited));
    servers.rate_limited.store(false, Ordering::SeqCst);
    // The agent retries by itself; a later request gets the leaf.
    let deadline = tokio::time::Instant::now() + MUST_HAPPEN;
    let leaf = loop {
        match connect.leaf("web", 0, Duration::ZERO).await {
            Ok(leaf) => break leaf,
            Err(err) => assert!(tokio::time::Instant::now() < deadline, "still {err}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(leaf.leaf.service, "web");
}

#[tokio::test]
async fn authorize_follows_intention_changes_from_the_cache() {
    let servers = MemoryServers::new();
    let (connect, _stop) = connect(&servers, DefaultPolicy::Intention { allow: false });
    let trust_domain = ca::trust_domain_for(CLUSTER);
    let request = AuthorizeRequest {
        target: "db".into(),
        client_cert_uri: format!("spiffe://{trust_domain}/ns/default/dc/{DC}/svc/web"),
        ..AuthorizeRequest::default()
    };
    let denied = connect
        .authorize(&request)
        .await
        .expect("cache")
        .expect("valid");
    assert!(!denied.allowed);
    assert_eq!(denied.reason, "Default intention policy");

    let seen = connect
        .intentions(0, Duration::ZERO)
        .await
        .expect("intentions")
        .index;
    servers.write(intentions::IntentionOp::Upsert {
        source: "web".into(),
        destination: "db".into(),
        write: intentions::IntentionWrite {
            source_type: "consul".into(),
            action: "allow".into(),
            ..Default::default()
        },
    });
    connect.intentions(seen, MUST_HAPPEN).await.expect("news");
    let allowed = connect
        .authorize(&request)
        .await
        .expect("cache")
        .expect("valid");
    assert!(allowed.allowed, "{}", allowed.reason);
    assert!(allowed.reason.contains("web"), "{}", allowed.reason);

    let bad = AuthorizeRequest {
        target: String::new(),
        ..request
    };
    assert_eq!(
        connect.authorize(&bad).await.expect("cache"),
        Err(intentions::AuthorizeError::MissingTarget)
    );
}

#[test]
fn renewal_is_between_60_and_90_percent_of_the_life() {
    let (after, before) = (1_000, 1_000 + 72 * 3600);
    let life = 72.0 * 3600.0;
    let earliest = renewal_delay(after, before, after, 0.0).as_secs_f64();
    let latest = renewal_delay(after, before, after, 1.0).as_secs_f64();
    assert!((earliest - 0.6 * life).abs() < 1.0, "{earliest}");
    assert!((latest - 0.9 * life).abs() < 1.0, "{latest}");
    // Halfway through, a leaf waits for the rest of its chosen point.
    let half = after + 36 * 3600;
    assert!((renewal_delay(after, before, half, 0.0).as_secs_f64() - 0.1 * life).abs() < 1.0);
    // Past 90%: at once.
    assert_eq!(
        renewal_delay(after, before, before - 60, 0.5),
        Duration::ZERO
    );
}
