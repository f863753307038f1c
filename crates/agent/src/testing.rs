//! Test support inside the crate: a catalog held in memory that answers like a server would,
//! blocking reads included.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use catalog::{Catalog, CatalogOp, NodeState, ServiceHealth};
use futures::future::BoxFuture;
use tokio::sync::watch;

use crate::CatalogClient;

/// The catalog a server would apply the agent's writes to, held in memory.
pub(crate) struct MemoryCatalog {
    pub(crate) catalog: Mutex<Catalog>,
    index: AtomicU64,
    /// Bumped on every write, for blocking reads.
    writes: watch::Sender<u64>,
}

impl Default for MemoryCatalog {
    fn default() -> Self {
        MemoryCatalog {
            catalog: Mutex::default(),
            index: AtomicU64::default(),
            writes: watch::Sender::new(0),
        }
    }
}

impl MemoryCatalog {
    /// A blocking read: `read` gives a value and its index; returns once the index differs
    /// from `index`, or after `wait`.
    fn watch<T: Send + 'static>(
        &self,
        wait: Duration,
        index: u64,
        read: impl Fn(&Catalog) -> (T, u64) + Send + 'static,
    ) -> BoxFuture<'_, Result<(T, u64), String>> {
        Box::pin(async move {
            let deadline = tokio::time::Instant::now() + wait;
            let mut writes = self.writes.subscribe();
            loop {
                writes.borrow_and_update();
                let (value, current) = read(&self.catalog.lock().unwrap());
                if current != index {
                    return Ok((value, current));
                }
                if tokio::time::timeout_at(deadline, writes.changed())
                    .await
                    .is_err()
                {
                    return Ok((value, current));
                }
            }
        })
    }
}

impl CatalogClient for MemoryCatalog {
    fn by_address(
        &self,
        addr: std::net::IpAddr,
    ) -> BoxFuture<'_, Result<crate::AddressOwner, String>> {
        let catalog = self.catalog.lock().unwrap();
        let (node, service) = catalog.by_address(addr);
        let found = (node.cloned(), service.map(str::to_owned));
        Box::pin(async move { Ok(found) })
    }

    fn apply(&self, op: CatalogOp) -> BoxFuture<'_, Result<(), String>> {
        let index = self.index.fetch_add(1, Ordering::SeqCst) + 1;
        let result = self
            .catalog
            .lock()
            .unwrap()
            .apply(op, index)
            .map(drop)
            .map_err(|err| err.to_string());
        self.writes.send_modify(|n| *n += 1);
        Box::pin(async move { result })
    }

    fn watch_service(
        &self,
        name: &str,
        connect: bool,
        index: u64,
        wait: Duration,
    ) -> BoxFuture<'_, Result<(Vec<ServiceHealth>, u64), String>> {
        let name = name.to_owned();
        self.watch(wait, index, move |catalog| {
            let topic = if connect {
                catalog::topic::connect(&name)
            } else {
                catalog::topic::service(&name)
            };
            let instances = if connect {
                catalog.connect_nodes(&name)
            } else {
                catalog.service_nodes(&name)
            };
            (catalog.health(instances), catalog.index(&topic).max(1))
        })
    }

    fn watch_node(
        &self,
        node: &str,
        index: u64,
        wait: Duration,
    ) -> BoxFuture<'_, Result<(NodeState, u64), String>> {
        let node = node.to_owned();
        self.watch(wait, index, move |catalog| {
            let topic = catalog::topic::node(&node);
            (catalog.node_state(&node), catalog.index(&topic).max(1))
        })
    }

    fn node_state(&self, node: &str) -> BoxFuture<'_, Result<NodeState, String>> {
        let state = self.catalog.lock().unwrap().node_state(node);
        Box::pin(async move { Ok(state) })
    }
}
