//! User events (`PUT /v1/event/fire/:name`, `GET /v1/event/list`), as Consul has them: an
//! event is gossiped to every agent of the datacenter; each agent keeps it only if its node
//! name matches the node filter and one of its services matches the service (and tag) filter,
//! and remembers the last [`EVENT_BUFFER`] it kept. Best effort, no total order: gossip
//! delivers each event once per agent, usually within a second.
//!
//! [`EventFilters`] and [`EventLog`] are plain data; [`UserEvents::start`] wires them to the
//! agent's gossip membership and its local services.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use catalog::Service;
use gossip::{Event, UserEvent};
use regex::Regex;
use tokio::sync::{broadcast, watch};

use crate::membership::{Membership, MembershipError};
use crate::Agent;

/// How many events an agent remembers (Consul's `userEventBuf` size).
pub const EVENT_BUFFER: usize = 256;

/// Why an event cannot be fired (400 with this text, Consul's words).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EventError {
    #[error("User event missing name")]
    MissingName,
    #[error("Cannot provide tag filter without service filter")]
    TagWithoutService,
    #[error("Invalid {field} filter: {message}")]
    InvalidFilter {
        field: &'static str,
        message: String,
    },
}

/// An event's node, service and tag filters, compiled. Empty filters match everything.
#[derive(Debug, Clone, Default)]
pub struct EventFilters {
    node: Option<Regex>,
    service: Option<Regex>,
    tag: Option<Regex>,
}

impl EventFilters {
    /// Compiles the filters of an event, refusing what Consul refuses.
    pub fn parse(node: &str, service: &str, tag: &str) -> Result<EventFilters, EventError> {
        if !tag.is_empty() && service.is_empty() {
            return Err(EventError::TagWithoutService);
        }
        let compile = |field: &'static str, pattern: &str| {
            (!pattern.is_empty())
                .then(|| Regex::new(pattern))
                .transpose()
                .map_err(|err| EventError::InvalidFilter {
                    field,
                    message: err.to_string(),
                })
        };
        Ok(EventFilters {
            node: compile("node", node)?,
            service: compile("service", service)?,
            tag: compile("tag", tag)?,
        })
    }

    /// Whether an agent named `node` running `services` should keep the event: its name
    /// matches the node filter, and (with a service filter) one of its services matches by
    /// name and, with a tag filter, by one of its tags.
    pub fn matches(&self, node: &str, services: &[Service]) -> bool {
        if self.node.as_ref().is_some_and(|re| !re.is_match(node)) {
            return false;
        }
        let Some(service) = &self.service else {
            return true;
        };
        services.iter().any(|s| {
            service.is_match(&s.service)
                && self
                    .tag
                    .as_ref()
                    .is_none_or(|tag| s.tags.iter().any(|t| tag.is_match(t)))
        })
    }
}

/// The events an agent kept, oldest first, at most [`EVENT_BUFFER`].
#[derive(Debug, Default)]
pub struct EventLog {
    events: VecDeque<UserEvent>,
}

impl EventLog {
    /// Keeps `event` unless it is already here (the same ID); drops the oldest beyond the
    /// buffer. Whether it was added.
    pub fn push(&mut self, event: UserEvent) -> bool {
        if self.events.iter().any(|e| e.id == event.id) {
            return false;
        }
        if self.events.len() == EVENT_BUFFER {
            self.events.pop_front();
        }
        self.events.push_back(event);
        true
    }

    /// The events named `name` (all with `None`), oldest first.
    pub fn list(&self, name: Option<&str>) -> Vec<UserEvent> {
        self.events
            .iter()
            .filter(|e| name.is_none_or(|n| e.name == n))
            .cloned()
            .collect()
    }
}

/// Consul's index for an event list: the newest event's UUID folded into 64 bits (the XOR of
/// its two halves), or 1 for an empty list so that watchers do not spin. Opaque, not monotonic.
pub fn list_index(events: &[UserEvent]) -> u64 {
    events.last().map_or(1, |e| id_index(&e.id))
}

/// One event's ID folded into the index a list ending with it has (Consul's `IDToIndex`): a
/// watch finds where the events it has not seen start.
pub fn id_index(id: &str) -> u64 {
    let hex: String = id.chars().filter(char::is_ascii_hexdigit).collect();
    let half = |s: &str| u64::from_str_radix(s, 16).unwrap_or_default();
    match hex.len() {
        32 => half(&hex[..16]) ^ half(&hex[16..]),
        _ => 1,
    }
}

/// The agent's user events: fires them into the pool and keeps those meant for it.
#[derive(Debug, Clone)]
pub struct UserEvents {
    log: Arc<Mutex<EventLog>>,
    changes: watch::Sender<u64>,
    membership: Membership,
}

impl UserEvents {
    /// Listens for events on `membership` and keeps those `agent`'s node and services match.
    pub fn start(membership: &Membership, agent: &Agent) -> UserEvents {
        let events = UserEvents {
            log: Arc::default(),
            changes: watch::Sender::new(0),
            membership: membership.clone(),
        };
        tokio::spawn(receive(
            events.clone(),
            membership.subscribe(),
            agent.clone(),
        ));
        events
    }

    /// Fires an event with a fresh ID; returns it as gossip carries it.
    pub async fn fire(
        &self,
        name: &str,
        payload: Vec<u8>,
        node_filter: &str,
        service_filter: &str,
        tag_filter: &str,
    ) -> Result<UserEvent, FireError> {
        if name.is_empty() {
            return Err(EventError::MissingName.into());
        }
        EventFilters::parse(node_filter, service_filter, tag_filter)?;
        let event = UserEvent {
            id: uuid::Uuid::new_v4().to_string(),
            name: name.to_owned(),
            payload,
            node_filter: node_filter.to_owned(),
            service_filter: service_filter.to_owned(),
            tag_filter: tag_filter.to_owned(),
            ltime: 0,
        };
        Ok(self.membership.fire_event(event).await?)
    }

    /// The events kept, oldest first, optionally only those named `name`.
    pub fn list(&self, name: Option<&str>) -> Vec<UserEvent> {
        self.log.lock().expect("event log poisoned").list(name)
    }

    /// Bumped whenever an event is kept.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    fn keep(&self, event: UserEvent) {
        let added = self.log.lock().expect("event log poisoned").push(event);
        if added {
            self.changes.send_modify(|n| *n += 1);
        }
    }
}

/// Why firing an event failed.
#[derive(Debug, thiserror::Error)]
pub enum FireError {
    /// The request is wrong (400).
    #[error(transparent)]
    Invalid(#[from] EventError),
    /// Gossip refused it, e.g. too large (500).
    #[error(transparent)]
    Gossip(#[from] MembershipError),
}

async fn receive(events: UserEvents, mut incoming: broadcast::Receiver<Event>, agent: Agent) {
    let node = agent.node().name;
    loop {
        let event = match incoming.recv().await {
            Ok(Event::User(event)) => event,
            Ok(_) => continue,
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::warn!(missed, "user events: fell behind the gossip event stream");
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        let filters = match EventFilters::parse(
            &event.node_filter,
            &event.service_filter,
            &event.tag_filter,
        ) {
            Ok(filters) => filters,
            Err(err) => {
                tracing::warn!(name = %event.name, %err, "dropping a user event with bad filters");
                continue;
            }
        };
        if filters.matches(&node, &agent.services()) {
            tracing::debug!(name = %event.name, id = %event.id, "user event received");
            events.keep(event);
        }
    }
}

#[cfg(test)]
mod tests;
