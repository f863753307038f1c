//! A node's service instances or checks, ordered by their own ID.
//!
//! A `BTreeMap<String, Service>` allocates a whole leaf, eleven keys and eleven values (~6 KiB
//! for services, ~4 KiB for checks), for a node's first entry, and most nodes hold one or two:
//! that was nine tenths of a server's heap. Here each record is boxed and the sorted vector
//! holds only pointers, and the ID is not stored a second time as a key.
//!
//! Serialized exactly as the `BTreeMap<String, T>` it replaces (a map from ID to record, in ID
//! order), so snapshots written before and after read the same.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::model::{HealthCheck, Service};

/// A record with an ID of its own.
pub(crate) trait Keyed {
    fn key(&self) -> &str;
}

impl Keyed for Service {
    fn key(&self) -> &str {
        &self.id
    }
}

impl Keyed for HealthCheck {
    fn key(&self) -> &str {
        &self.check_id
    }
}

/// Records sorted by ID, at most one per ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ById<T> {
    items: Vec<Box<T>>,
}

impl<T> Default for ById<T> {
    fn default() -> Self {
        Self { items: Vec::new() }
    }
}

impl<T: Keyed> ById<T> {
    fn position(&self, key: &str) -> Result<usize, usize> {
        self.items.binary_search_by(|item| item.key().cmp(key))
    }

    pub(crate) fn get(&self, key: &str) -> Option<&T> {
        self.position(key).ok().map(|i| &*self.items[i])
    }

    pub(crate) fn contains_key(&self, key: &str) -> bool {
        self.position(key).is_ok()
    }

    /// Adds `item` under its ID, returning the record it replaced.
    pub(crate) fn insert(&mut self, item: T) -> Option<T> {
        match self.position(item.key()) {
            Ok(i) => Some(*std::mem::replace(&mut self.items[i], Box::new(item))),
            Err(i) => {
                self.items.insert(i, Box::new(item));
                None
            }
        }
    }

    pub(crate) fn remove(&mut self, key: &str) -> Option<T> {
        let i = self.position(key).ok()?;
        let item = *self.items.remove(i);
        self.shrink();
        Some(item)
    }

    /// Keeps the records for which `keep` is true.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&T) -> bool) {
        self.items.retain(|item| keep(item));
        self.shrink();
    }

    /// The records in ID order.
    pub(crate) fn values(&self) -> impl Iterator<Item = &T> {
        self.items.iter().map(|item| &**item)
    }

    /// The records in ID order, to change anything but their IDs (the order would break).
    pub(crate) fn values_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.items.iter_mut().map(|item| &mut **item)
    }

    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Gives back room left by removals, so a node that once had many records and now has few
    /// does not keep the pointers' space.
    fn shrink(&mut self) {
        if self.items.capacity() > 2 * self.items.len() + 4 {
            self.items.shrink_to_fit();
        }
    }
}

impl<T: Keyed + Serialize> Serialize for ById<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.items.iter().map(|item| (item.key(), &**item)))
    }
}

impl<'de, T: Keyed + Deserialize<'de>> Deserialize<'de> for ById<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(ByIdVisitor(PhantomData))
    }
}

struct ByIdVisitor<T>(PhantomData<T>);

impl<'de, T: Keyed + Deserialize<'de>> Visitor<'de> for ByIdVisitor<T> {
    type Value = ById<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map from ID to record")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ById<T>, A::Error> {
        // The key is the record's own ID, which the record carries: it is read (binary formats
        // cannot skip a value without knowing its type) and dropped.
        let mut out = ById {
            items: Vec::with_capacity(map.size_hint().unwrap_or(0).min(1024)),
        };
        while let Some((_, item)) = map.next_entry::<String, T>()? {
            out.insert(item);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::Status;

    fn check(id: &str) -> HealthCheck {
        HealthCheck::new("n1", id, id, Status::Passing)
    }

    fn ids(checks: &ById<HealthCheck>) -> Vec<&str> {
        checks.values().map(|c| c.check_id.as_str()).collect()
    }

    #[test]
    fn keeps_one_record_per_id_in_id_order() {
        let mut checks = ById::default();
        assert!(checks.is_empty());
        for id in ["b", "c", "a"] {
            assert_eq!(checks.insert(check(id)), None);
        }
        assert_eq!(ids(&checks), ["a", "b", "c"]);
        let mut newer = check("b");
        newer.output = "newer".into();
        assert_eq!(checks.insert(newer), Some(check("b")));
        assert_eq!(checks.len(), 3);
        assert_eq!(checks.get("b").map(|c| c.output.as_str()), Some("newer"));
        assert!(checks.contains_key("c"));
        assert!(!checks.contains_key("d"));
        assert_eq!(checks.get("d"), None);

        assert_eq!(checks.remove("a"), Some(check("a")));
        assert_eq!(checks.remove("a"), None);
        checks.retain(|c| c.check_id != "c");
        assert_eq!(ids(&checks), ["b"]);
        for c in checks.values_mut() {
            c.notes = "changed".into();
        }
        assert_eq!(checks.get("b").map(|c| c.notes.as_str()), Some("changed"));
    }

    #[test]
    fn removals_give_back_room() {
        let mut checks = ById::default();
        for i in 0..100 {
            checks.insert(check(&format!("{i:03}")));
        }
        checks.retain(|c| c.check_id == "050");
        assert!(checks.items.capacity() <= 6, "{}", checks.items.capacity());
        assert_eq!(ids(&checks), ["050"]);
    }

    #[test]
    fn encodes_exactly_as_the_map_it_replaced() {
        let mut map = BTreeMap::new();
        let mut by_id = ById::default();
        for id in ["web", "api", "db"] {
            map.insert(id.to_owned(), check(id));
            by_id.insert(check(id));
        }
        let old = postcard::to_stdvec(&map).unwrap();
        assert_eq!(postcard::to_stdvec(&by_id).unwrap(), old);
        let decoded: ById<HealthCheck> = postcard::from_bytes(&old).unwrap();
        assert_eq!(decoded, by_id);
        let back: BTreeMap<String, HealthCheck> =
            postcard::from_bytes(&postcard::to_stdvec(&decoded).unwrap()).unwrap();
        assert_eq!(back, map);

        let empty: ById<HealthCheck> = postcard::from_bytes(
            &postcard::to_stdvec(&BTreeMap::<String, HealthCheck>::new()).unwrap(),
        )
        .unwrap();
        assert!(empty.is_empty());
    }
}
