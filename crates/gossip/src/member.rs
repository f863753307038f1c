//! The member table: every node this one has heard of, with serf's statuses.
//!
//! foca only knows "active" and "down". The table refines "down" into `Failed` (stopped answering) and
//! `Left` (said goodbye first, or was force-left), keeps failed and left members around until they are
//! reaped, and turns every transition into at most one [`Event`].

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::broadcast::{LeaveIntent, LeaveKind};
use crate::event::Event;
use crate::identity::NodeIdentity;

/// Member tags: `role`, `dc`, `port`, `build`, `id`, ... as in serf.
pub type Tags = BTreeMap<String, String>;

/// A member's status, with serf's integer codes (what `/v1/agent/members` reports as `Status`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MemberStatus {
    /// Unknown (code 0).
    None,
    /// Answers probes (code 1).
    Alive,
    /// Announced a graceful leave that has not completed yet (code 2).
    Leaving,
    /// Left gracefully or was force-left (code 3).
    Left,
    /// Stopped answering probes (code 4).
    Failed,
}

impl MemberStatus {
    /// serf's integer code: none 0, alive 1, leaving 2, left 3, failed 4.
    pub fn code(self) -> u8 {
        match self {
            MemberStatus::None => 0,
            MemberStatus::Alive => 1,
            MemberStatus::Leaving => 2,
            MemberStatus::Left => 3,
            MemberStatus::Failed => 4,
        }
    }

    /// serf's name of the status: `alive`, `leaving`, `left`, `failed` or `none`.
    pub fn as_str(self) -> &'static str {
        match self {
            MemberStatus::None => "none",
            MemberStatus::Alive => "alive",
            MemberStatus::Leaving => "leaving",
            MemberStatus::Left => "left",
            MemberStatus::Failed => "failed",
        }
    }
}

impl fmt::Display for MemberStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A node of the pool as this node sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// Node name, unique in the pool.
    pub name: String,
    /// Gossip (UDP) address.
    pub addr: SocketAddr,
    /// Tags the node advertises.
    pub tags: Tags,
    /// Current status.
    pub status: MemberStatus,
    /// Which life of the node this is; higher replaces lower.
    pub incarnation: u64,
    /// When this node recorded the current status.
    pub status_since: Instant,
}

impl Member {
    pub(crate) fn from_identity(
        identity: &NodeIdentity,
        status: MemberStatus,
        now: Instant,
    ) -> Self {
        Member {
            name: identity.name.to_string(),
            addr: identity.addr,
            tags: (*identity.tags).clone(),
            status,
            incarnation: identity.incarnation,
            status_since: now,
        }
    }

    /// The identity this member was last seen with.
    pub(crate) fn identity(&self) -> NodeIdentity {
        NodeIdentity::from_parts(&self.name, self.addr, self.incarnation, self.tags.clone())
    }

    fn set_status(&mut self, status: MemberStatus, now: Instant) {
        if self.status != status {
            self.status = status;
            self.status_since = now;
        }
    }

    /// Adopts a newer identity; true when something an observer cares about (address, tags) changed.
    fn adopt(&mut self, identity: &NodeIdentity) -> bool {
        let changed = self.addr != identity.addr || self.tags != *identity.tags;
        self.addr = identity.addr;
        self.tags = (*identity.tags).clone();
        self.incarnation = identity.incarnation;
        changed
    }
}

/// How long failed and left members stay in the table.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ReapPolicy {
    pub(crate) reconnect_timeout: Duration,
    pub(crate) tombstone_timeout: Duration,
}

/// Remote members by name (the local node is kept by the engine).
#[derive(Debug, Default)]
pub(crate) struct MemberTable {
    members: BTreeMap<String, Member>,
}

impl MemberTable {
    pub(crate) fn get(&self, name: &str) -> Option<&Member> {
        self.members.get(name)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Member> {
        self.members.values()
    }

    pub(crate) fn count(&self, status: MemberStatus) -> usize {
        self.members.values().filter(|m| m.status == status).count()
    }

    /// foca says this identity is active.
    pub(crate) fn member_up(&mut self, identity: &NodeIdentity, now: Instant) -> Option<Event> {
        match self.members.get_mut(&*identity.name) {
            None => {
                let member = Member::from_identity(identity, MemberStatus::Alive, now);
                self.members.insert(member.name.clone(), member.clone());
                Some(Event::MemberJoin(member))
            }
            Some(member) if member.incarnation > identity.incarnation => None,
            Some(member) => match member.status {
                MemberStatus::Alive | MemberStatus::Leaving => {
                    let changed = member.adopt(identity);
                    member.set_status(MemberStatus::Alive, now);
                    changed.then(|| Event::MemberUpdate(member.clone()))
                }
                MemberStatus::None | MemberStatus::Left | MemberStatus::Failed => {
                    member.adopt(identity);
                    member.set_status(MemberStatus::Alive, now);
                    Some(Event::MemberJoin(member.clone()))
                }
            },
        }
    }

    /// foca replaced an identity by a newer life of the same node (restart, rejoin, tag change).
    pub(crate) fn member_renamed(&mut self, new: &NodeIdentity, now: Instant) -> Option<Event> {
        let member = self.members.get_mut(&*new.name)?;
        if member.incarnation >= new.incarnation {
            return None;
        }
        let changed = member.adopt(new);
        match member.status {
            MemberStatus::Alive | MemberStatus::Leaving => {
                // A graceful leave belongs to the old life; the new one is alive.
                member.set_status(MemberStatus::Alive, now);
                changed.then(|| Event::MemberUpdate(member.clone()))
            }
            // A revival is reported by the `member_up` that foca sends right after the rename.
            MemberStatus::None | MemberStatus::Left | MemberStatus::Failed => None,
        }
    }

    /// foca says this identity is down: it left if it announced so, failed otherwise.
    pub(crate) fn member_down(&mut self, identity: &NodeIdentity, now: Instant) -> Option<Event> {
        let member = self.members.get_mut(&*identity.name)?;
        if member.incarnation > identity.incarnation {
            return None;
        }
        member.adopt(identity);
        match member.status {
            MemberStatus::Leaving => {
                member.set_status(MemberStatus::Left, now);
                Some(Event::MemberLeft(member.clone()))
            }
            MemberStatus::None | MemberStatus::Alive => {
                member.set_status(MemberStatus::Failed, now);
                Some(Event::MemberFailed(member.clone()))
            }
            MemberStatus::Left | MemberStatus::Failed => None,
        }
    }

    /// A leave intent arrived (the member's own, or a force-leave by an operator somewhere).
    pub(crate) fn leave_intent(&mut self, intent: &LeaveIntent, now: Instant) -> Vec<Event> {
        let Some(member) = self.members.get_mut(&intent.name) else {
            return Vec::new();
        };
        if member.incarnation > intent.incarnation {
            return Vec::new();
        }
        let mut events = Vec::new();
        match (intent.kind, member.status) {
            (LeaveKind::Graceful, MemberStatus::Alive) => {
                member.set_status(MemberStatus::Leaving, now)
            }
            // The intent can arrive after the member was already declared down (it travels separately).
            (LeaveKind::Graceful | LeaveKind::Forced { .. }, MemberStatus::Failed) => {
                member.set_status(MemberStatus::Left, now);
                events.push(Event::MemberLeft(member.clone()));
            }
            _ => {}
        }
        let prune = matches!(intent.kind, LeaveKind::Forced { prune: true });
        if prune && member.status == MemberStatus::Left {
            if let Some(member) = self.members.remove(&intent.name) {
                events.push(Event::MemberReaped(member));
            }
        }
        events
    }

    /// Removes failed and left members whose time is up.
    pub(crate) fn reap(&mut self, now: Instant, policy: ReapPolicy) -> Vec<Event> {
        let expired = |member: &Member| {
            let timeout = match member.status {
                MemberStatus::Failed => policy.reconnect_timeout,
                MemberStatus::Left => policy.tombstone_timeout,
                MemberStatus::None | MemberStatus::Alive | MemberStatus::Leaving => return false,
            };
            now.saturating_duration_since(member.status_since) >= timeout
        };
        let names: Vec<String> = self
            .members
            .values()
            .filter(|m| expired(m))
            .map(|m| m.name.clone())
            .collect();
        names
            .into_iter()
            .filter_map(|name| self.members.remove(&name))
            .map(Event::MemberReaped)
            .collect()
    }
}

#[cfg(test)]
mod tests;
