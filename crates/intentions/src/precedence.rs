//! Intention precedence (Consul's `UpdatePrecedence` / `computeIntentionPrecedence`) and the
//! order Consul lists and matches intentions in (`IntentionPrecedenceSorter`).
//!
//! | source \ destination | `ns/name` | `ns/*` | `*/*` |
//! |----------------------|-----------|--------|-------|
//! | `ns/name`            | 9         | 6      | 3     |
//! | `ns/*`               | 8         | 5      | 2     |
//! | `*/*`                | 7         | 4      | 1     |
//!
//! With only the default namespace the values in use are 9, 8, 6 and 5.

use std::cmp::Ordering;

use crate::model::{Intention, WILDCARD};

/// The precedence of an intention from `source_ns/source_name` to
/// `destination_ns/destination_name`: higher applies first.
pub fn precedence(
    source_ns: &str,
    source_name: &str,
    destination_ns: &str,
    destination_name: &str,
) -> u32 {
    let max = match count_exact(destination_ns, destination_name) {
        2 => 9,
        1 => 6,
        _ => 3,
    };
    max - (2 - count_exact(source_ns, source_name))
}

/// How many of namespace and name are exact; a wildcard namespace implies a wildcard name.
fn count_exact(ns: &str, name: &str) -> u32 {
    if ns == WILDCARD {
        0
    } else if name == WILDCARD {
        1
    } else {
        2
    }
}

/// Highest precedence first; ties broken on (SourceNS, SourceName, DestinationNS,
/// DestinationName) in byte order, so the order is total and deterministic.
pub fn precedence_order(a: &Intention, b: &Intention) -> Ordering {
    b.precedence
        .cmp(&a.precedence)
        .then_with(|| a.source_ns.cmp(&b.source_ns))
        .then_with(|| a.source_name.cmp(&b.source_name))
        .then_with(|| a.destination_ns.cmp(&b.destination_ns))
        .then_with(|| a.destination_name.cmp(&b.destination_name))
}

#[cfg(test)]
mod tests;
