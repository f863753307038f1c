//! The read-only catalog view that DNS answers from, implemented by the agent.
//!
//! This crate never talks to servers itself: the agent decides how a lookup is served (stale
//! reads, caching, forwarding to another datacenter) and this trait is the whole contract.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;

use catalog::Node;

/// One service instance with its node and every check that bears on its health (the node's
/// checks and the instance's own): what DNS needs to answer and filter by health.
pub type Instance = catalog::ServiceHealth;

/// A service's instances, shared: the agent hands out what it holds without copying it.
pub type Instances = std::sync::Arc<Vec<Instance>>;

/// The future a [`Lookup`] returns.
pub type LookupFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, LookupError>> + Send + 'a>>;

/// Why a lookup could not be answered. DNS answers SERVFAIL; "not found" is `Ok(None)`.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    /// No server could be reached, or it did not answer in time.
    #[error("catalog unavailable: {0}")]
    Unavailable(String),
    /// Anything else that kept the lookup from being answered.
    #[error("lookup failed: {0}")]
    Failed(String),
}

/// What DNS reads from the catalog.
///
/// Names and datacenters arrive in lower case (DNS is case-insensitive); implementations match
/// service and node names case-insensitively, as Consul's catalog does. `dc` is always set: the
/// local datacenter when the question named none. Health filtering, tag filtering, shuffling and limits are done
/// by the caller: return every registered instance.
pub trait Lookup: Send + Sync + 'static {
    /// Every instance of `service` in `dc`, whatever its health or tags. With `connect`, the
    /// instances that accept mesh traffic for `service` instead: its sidecar proxies
    /// (`Kind = connect-proxy` with that destination) and its mesh-native instances.
    /// `Ok(None)` when `dc` is unknown; an unknown service may be `Ok(None)` or `Ok(Some([]))`.
    fn service<'a>(
        &'a self,
        dc: &'a str,
        service: &'a str,
        connect: bool,
    ) -> LookupFuture<'a, Option<Instances>>;

    /// What [`Lookup::service`] would answer, when it can be had at once, without waiting or
    /// failing (a service the implementation already holds); `None` when [`Lookup::service`]
    /// must be asked. Answering the same instances (the same `Arc`) for as long as they have
    /// not changed lets DNS reuse the records it built from them. By default: `None`.
    fn service_now(&self, dc: &str, service: &str, connect: bool) -> Option<Option<Instances>> {
        let _ = (dc, service, connect);
        None
    }

    /// The node named `node` in `dc`; `Ok(None)` when the node or the datacenter is unknown.
    fn node<'a>(&'a self, dc: &'a str, node: &'a str) -> LookupFuture<'a, Option<Node>>;

    /// The server nodes of `dc` that are alive (for NS and SOA answers), in any order.
    fn servers<'a>(&'a self, dc: &'a str) -> LookupFuture<'a, Vec<Node>>;

    /// The node of `dc` whose address is `addr`, for PTR questions.
    fn node_by_addr<'a>(&'a self, dc: &'a str, addr: IpAddr) -> LookupFuture<'a, Option<Node>>;

    /// The name of a service of `dc` with an instance whose own address is `addr`, for PTR
    /// questions that match no node.
    fn service_by_addr<'a>(&'a self, dc: &'a str, addr: IpAddr)
        -> LookupFuture<'a, Option<String>>;
}
