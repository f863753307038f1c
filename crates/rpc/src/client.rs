//! What client agents ask of servers over server RPC: catalog writes and reads for
//! anti-entropy, and whole HTTP API calls forwarded to a server (the client agent answers its
//! own agent endpoints and forwards the rest, like Consul's clients do over their RPC).
//!
//! [`Servers`] is the client's view of the servers: it spreads nothing, it sticks to one
//! server and fails over to the next when that one cannot be reached.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::message::{Request, Response};
use crate::transport::{call, ConnectionPool};
use crate::RpcError;

/// An HTTP request forwarded to a server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpRequest {
    pub method: String,
    /// Path and query.
    pub uri: String,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

/// A server's answer to a forwarded HTTP request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

pub use catalog::NodeState;

/// Answers forwarded HTTP requests (the server's API router).
pub type HttpHandler =
    Arc<dyn Fn(HttpRequest) -> Pin<Box<dyn Future<Output = HttpResponse> + Send>> + Send + Sync>;

/// The servers a client agent talks to, with failover.
#[derive(Debug, Clone)]
pub struct Servers {
    addrs: Arc<RwLock<Vec<String>>>,
    /// Index of the server currently preferred.
    current: Arc<AtomicUsize>,
    pool: ConnectionPool,
}

impl Servers {
    pub fn new(addrs: Vec<String>) -> Self {
        Servers {
            addrs: Arc::new(RwLock::new(addrs)),
            current: Arc::new(AtomicUsize::new(0)),
            pool: ConnectionPool::new(),
        }
    }

    /// The server RPC addresses known.
    pub fn addrs(&self) -> Vec<String> {
        self.addrs.read().expect("servers poisoned").clone()
    }

    /// Replaces the known servers (as gossip finds them come and go). The preferred one stays
    /// preferred if it is still listed.
    pub fn set(&self, mut addrs: Vec<String>) {
        addrs.sort();
        let mut current = self.addrs.write().expect("servers poisoned");
        if *current == addrs {
            return;
        }
        let preferred = current.get(self.current.load(Ordering::Relaxed)).cloned();
        let keep = preferred.and_then(|p| addrs.iter().position(|a| *a == p));
        self.current.store(keep.unwrap_or(0), Ordering::Relaxed);
        *current = addrs;
    }

    /// One request, to the preferred server or, when it cannot be reached, the next ones in
    /// turn. A request that may have reached a server before failing is retried elsewhere only
    /// when `idempotent` (a write must not be applied twice).
    pub async fn request(
        &self,
        req: &Request,
        timeout: Duration,
        idempotent: bool,
    ) -> Result<Response, RpcError> {
        let addrs = self.addrs();
        if addrs.is_empty() {
            return Err(RpcError::Remote("No known Consul servers".into()));
        }
        let start = self.current.load(Ordering::Relaxed);
        let mut last = None;
        for offset in 0..addrs.len() {
            let i = (start + offset) % addrs.len();
            let addr = &addrs[i];
            let result = if idempotent {
                self.pool.request(addr, req, timeout).await
            } else {
                call(addr, req, timeout).await
            };
            match result {
                Ok(resp) => {
                    self.current.store(i, Ordering::Relaxed);
                    return Ok(resp);
                }
                Err(err @ RpcError::Connect { .. }) => {
                    tracing::debug!(%err, "server unreachable, trying the next one");
                    last = Some(err);
                }
                Err(err) if idempotent => {
                    tracing::debug!(%err, "server failed, trying the next one");
                    last = Some(err);
                }
                Err(err) => return Err(err),
            }
        }
        Err(last.unwrap_or_else(|| RpcError::Remote("No known Consul servers".into())))
    }

    /// Forwards an HTTP request. Reads (GET) are retried on another server; other methods
    /// only when the server could not be reached at all.
    pub async fn http(
        &self,
        req: HttpRequest,
        timeout: Duration,
    ) -> Result<HttpResponse, RpcError> {
        let idempotent = req.method == "GET";
        match self
            .request(&Request::Http(req), timeout, idempotent)
            .await?
        {
            Response::Http(resp) => Ok(resp),
            _ => Err(RpcError::Remote(
                "unexpected answer to a forwarded request".into(),
            )),
        }
    }
}
