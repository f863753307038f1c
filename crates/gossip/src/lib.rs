//! SWIM membership for all agents of a datacenter (one LAN pool), built on foca.
//!
//! The core, [`Gossip`] (everything except [`driver`]), is sans-IO: no tokio, no sockets, no clock.
//! Datagrams, timers and commands go in with the current time as an argument; datagrams to send, timers to
//! schedule and [`Event`]s come out; randomness comes from a seed the owner provides. That is what lets
//! `sim` run a thousand nodes deterministically in one thread. The crate never depends on raft, the
//! catalog or HTTP: the agent maps [`Event`]s onto those.
//!
//! On top of foca's SWIM (probes, indirect probes, suspicion, piggybacked updates) the core adds what
//! Consul needs from serf:
//!
//! * a member table with serf's statuses (`alive`, `leaving`, `left`, `failed`), graceful leave through
//!   a broadcast leave intent, force-leave, reaping, and reconnecting to failed members;
//! * joining by address, a member-list sync on join, periodic syncs, and membership digests on every
//!   ping that bring a member that missed news up to date within seconds (serf's push-pull);
//! * small datagrams: headers name members by a hash of their identity once the receiver has it whole,
//!   so a probe is about thirty bytes however many tags a member has; news is pushed on at once;
//! * user events with a Lamport clock, and request/response queries;
//! * Lifeguard: local health awareness, suspicion timeouts that shrink with independent confirmations, and
//!   a direct notice to suspected members;
//! * AES-256-GCM encryption of every datagram with a rotating [`Keyring`].
//!
//! Module map: `engine` is [`Gossip`] (its submodules split commands, inbound datagrams, timers,
//! Lifeguard and anti-entropy); `member` the table; `broadcast` what rides on foca's custom broadcasts;
//! `wire` our datagram frames; `codec` how foca's messages look on the wire; `identity` what foca gossips
//! about; `suspicion`, `awareness`, `query` small state machines; [`keyring`] encryption; [`driver`] the
//! tokio task; `sim` the simulator (feature `sim`).

mod awareness;
mod broadcast;
mod codec;
mod config;
pub mod driver;
mod engine;
mod error;
mod event;
mod identity;
pub mod keyring;
mod member;
mod query;
mod runtime;
#[cfg(any(test, feature = "sim"))]
pub mod sim;
mod suspicion;
mod timer;
mod wire;

pub use crate::config::Config;
pub use crate::engine::{Gossip, Transmit};
pub use crate::error::Error;
pub use crate::event::{Event, QueryId, QueryRequest, UserEvent};
pub use crate::keyring::Keyring;
pub use crate::member::{Member, MemberStatus, Tags};
pub use crate::timer::Timer;
pub use crate::wire::WireError;

/// Largest user event accepted by [`Gossip::fire_event`]: name plus payload, in bytes (serf's
/// `UserEventSizeLimit`, which Consul keeps).
pub const USER_EVENT_SIZE_LIMIT: usize = 512;

/// Largest query accepted by [`Gossip::query`]: name plus payload, in bytes.
pub const QUERY_SIZE_LIMIT: usize = 512;

/// Largest query response payload accepted by [`Gossip::respond`], in bytes.
pub const QUERY_RESPONSE_SIZE_LIMIT: usize = 1024;

#[cfg(test)]
mod tests;
