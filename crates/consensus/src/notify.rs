//! Change notification for blocking queries.
//!
//! A blocking query subscribes to exactly what its result depends on (a key, a key prefix, the
//! sessions table) before it reads, and waits for that topic to move. Writes wake only the
//! subscribers of the topics they touched, so a watcher of `web/` never wakes for a write to
//! `db/`. Topics nobody watches cost nothing: the registry holds only live subscriptions.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

/// Something a write can change.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Topic {
    /// One KV key; wakes the watchers of the key and of every prefix of it.
    Key(String),
    /// The sessions table.
    Sessions,
    /// A catalog index: `service.<name>`, `connect.<name>`, `node.<name>`, or a table
    /// (`nodes`, `services`, `checks`). See [`catalog::topic`].
    Catalog(String),
    /// A whole table outside KV and the catalog ([`crate::TABLE_CA`], [`crate::TABLE_INTENTIONS`],
    /// [`crate::TABLE_CONFIG_ENTRIES`]).
    Table(&'static str),
}

/// What a subscription watches: a kind and a name (empty for the sessions table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Key = 0,
    Prefix = 1,
    Sessions = 2,
    Catalog = 3,
    Table = 4,
}

#[derive(Debug, Default)]
struct Registry {
    /// One map per `Kind`, name -> sender.
    by_kind: [HashMap<String, watch::Sender<()>>; 5],
}

impl Registry {
    fn map(&mut self, kind: Kind) -> &mut HashMap<String, watch::Sender<()>> {
        &mut self.by_kind[kind as usize]
    }

    fn get(&self, kind: Kind, name: &str) -> Option<&watch::Sender<()>> {
        self.by_kind[kind as usize].get(name)
    }
}

/// Wakes blocking queries when the topics they watch change.
#[derive(Debug, Clone, Default)]
pub struct Notifier {
    registry: Arc<Mutex<Registry>>,
    /// A sequence count of whole-state replacements: odd while one is under way, even between
    /// them. A cache keyed by index uses it to tell a restored state from the one it saw at
    /// the same index.
    generation: Arc<AtomicU64>,
}

/// A live interest in one topic. Dropping it unregisters the topic when nobody else watches it.
#[derive(Debug)]
pub struct Subscription {
    rx: watch::Receiver<()>,
    kind: Kind,
    name: String,
    registry: Arc<Mutex<Registry>>,
}

impl Subscription {
    /// Completes at the first change after the subscription was made (or after the previous
    /// `changed` returned). Subscribe, then read, then wait: no change can slip in between.
    pub async fn changed(&mut self) {
        // An error means the sender was dropped, which only happens when every subscription of
        // the topic is gone, and this one is alive; treat it as a change anyway.
        let _ = self.rx.changed().await;
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut reg = self.registry.lock().expect("notifier registry poisoned");
        // Our own receiver is still counted here.
        let map = reg.map(self.kind);
        if map
            .get(&self.name)
            .is_some_and(|tx| tx.receiver_count() <= 1)
        {
            map.remove(&self.name);
        }
    }
}

impl Notifier {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn key(&self, key: &str) -> Subscription {
        self.subscribe(Kind::Key, key)
    }

    pub fn prefix(&self, prefix: &str) -> Subscription {
        self.subscribe(Kind::Prefix, prefix)
    }

    pub fn sessions(&self) -> Subscription {
        self.subscribe(Kind::Sessions, "")
    }

    /// A catalog index (see [`catalog::topic`]).
    pub fn catalog(&self, topic: &str) -> Subscription {
        self.subscribe(Kind::Catalog, topic)
    }

    /// A whole table ([`crate::TABLE_CA`], [`crate::TABLE_INTENTIONS`],
    /// [`crate::TABLE_CONFIG_ENTRIES`]).
    pub fn table(&self, table: &str) -> Subscription {
        self.subscribe(Kind::Table, table)
    }

    fn subscribe(&self, kind: Kind, name: &str) -> Subscription {
        let mut reg = self.registry.lock().expect("notifier registry poisoned");
        let rx = reg
            .map(kind)
            .entry(name.to_owned())
            .or_insert_with(|| watch::channel(()).0)
            .subscribe();
        drop(reg);
        Subscription {
            rx,
            kind,
            name: name.to_owned(),
            registry: self.registry.clone(),
        }
    }

    /// Wakes the subscribers of each topic.
    pub fn publish(&self, topics: &[Topic]) {
        if topics.is_empty() {
            return;
        }
        let reg = self.registry.lock().expect("notifier registry poisoned");
        for topic in topics {
            match topic {
                Topic::Key(key) => {
                    if let Some(tx) = reg.get(Kind::Key, key) {
                        tx.send_replace(());
                    }
                    if reg.by_kind[Kind::Prefix as usize].is_empty() {
                        continue;
                    }
                    let boundaries = key.char_indices().map(|(i, _)| i).chain([key.len()]);
                    for end in boundaries {
                        if let Some(tx) = reg.get(Kind::Prefix, &key[..end]) {
                            tx.send_replace(());
                        }
                    }
                }
                Topic::Sessions => {
                    if let Some(tx) = reg.get(Kind::Sessions, "") {
                        tx.send_replace(());
                    }
                }
                Topic::Catalog(name) => {
                    if let Some(tx) = reg.get(Kind::Catalog, name) {
                        tx.send_replace(());
                    }
                }
                Topic::Table(name) => {
                    if let Some(tx) = reg.get(Kind::Table, name) {
                        tx.send_replace(());
                    }
                }
            }
        }
    }

    /// Marks the start of a whole-state replacement; call it while holding the state's write
    /// lock, and [`Notifier::publish_all`] once the lock is released.
    pub fn begin_replace(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// Wakes every subscriber: the whole state was replaced (snapshot install or restore).
    pub fn publish_all(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        let reg = self.registry.lock().expect("notifier registry poisoned");
        for tx in reg.by_kind.iter().flat_map(HashMap::values) {
            tx.send_replace(());
        }
    }

    /// The replacement sequence count: a read of the state is known to come from one stable
    /// state when this is even and the same before and after it.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Number of distinct topics with live subscribers (for metrics and tests).
    pub fn watched_topics(&self) -> usize {
        let reg = self.registry.lock().expect("notifier registry poisoned");
        reg.by_kind.iter().map(HashMap::len).sum()
    }
}
