//! What the owner asks of the node: join, leave, force-leave, new tags, user events and queries.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::RngExt;

use super::{Gossip, EVENT_EXTRAS_LIMIT};
use crate::broadcast::{BroadcastItem, LeaveIntent, LeaveKind, QueryMessage};
use crate::error::Error;
use crate::event::{Event, QueryId, UserEvent};
use crate::member::{MemberStatus, Tags};
use crate::query::MAX_QUERY_TIMEOUT;
use crate::timer::TimerKind;
use crate::wire::{Frame, QueryResponseMessage};
use crate::{QUERY_RESPONSE_SIZE_LIMIT, QUERY_SIZE_LIMIT, USER_EVENT_SIZE_LIMIT};

impl Gossip {
    /// Starts joining the pool that the node at `addr` belongs to; retried until it connects or the
    /// attempts run out. [`Gossip::join_answered`] tells whether `addr` has answered.
    pub fn join(&mut self, addr: SocketAddr) -> Result<(), Error> {
        self.ensure_active()?;
        if addr == self.identity.addr {
            return Ok(());
        }
        self.joins.start(addr, self.config.join_attempts);
        self.send_frame(addr, &Frame::JoinProbe);
        self.schedule(self.config.join_retry_interval, TimerKind::JoinRetry(addr));
        Ok(())
    }

    /// True when the node at `addr` answered a join since the last `join(addr)`.
    pub fn join_answered(&self, addr: SocketAddr) -> bool {
        self.joins.answered(addr)
    }

    /// Leaves gracefully: the leave intent is broadcast now, and after `leave_propagate_delay` foca
    /// declares this node down, so members record it as `Left`. Wait for [`Gossip::has_left`].
    pub fn leave(&mut self, now: Instant) -> Result<(), Error> {
        if self.local.status != MemberStatus::Alive {
            return Ok(());
        }
        self.set_local_status(MemberStatus::Leaving, now);
        let intent = LeaveIntent {
            name: self.local.name.clone(),
            incarnation: self.identity.incarnation,
            kind: LeaveKind::Graceful,
        };
        self.broadcast(BroadcastItem::Leave(intent), now)?;
        let head_start = if self.foca.num_members() == 0 {
            Duration::ZERO
        } else {
            self.config.leave_propagate_delay
        };
        self.schedule(head_start, TimerKind::FinishLeave);
        Ok(())
    }

    /// Marks a failed member `Left` everywhere (serf's force-leave); `prune` removes it from every table.
    /// A member that is alive is left alone, as in Consul.
    pub fn force_leave(&mut self, name: &str, prune: bool, now: Instant) -> Result<(), Error> {
        self.ensure_active()?;
        if name == self.local.name {
            return Err(Error::ForceLeaveSelf);
        }
        let member = self
            .table
            .get(name)
            .ok_or_else(|| Error::UnknownMember(name.to_owned()))?;
        let intent = LeaveIntent {
            name: member.name.clone(),
            incarnation: member.incarnation,
            kind: LeaveKind::Forced { prune },
        };
        self.broadcast(BroadcastItem::Leave(intent), now)
    }

    /// Replaces the local tags; the node takes a new incarnation so that everyone learns them.
    pub fn set_tags(&mut self, tags: Tags, now: Instant) -> Result<(), Error> {
        self.ensure_active()?;
        let renewed = self.identity.with_tags(tags)?;
        self.drive(now, |foca, effects| {
            foca.change_identity(renewed.clone(), effects)
        })?;
        self.adopt_identity(renewed, now);
        Ok(())
    }

    /// Fires a user event to every member, this one included; returns it with its Lamport time.
    pub fn fire_event(&mut self, mut event: UserEvent, now: Instant) -> Result<UserEvent, Error> {
        self.ensure_active()?;
        let size = event.name.len() + event.payload.len();
        if size > USER_EVENT_SIZE_LIMIT {
            return Err(Error::EventTooLarge {
                size,
                limit: USER_EVENT_SIZE_LIMIT,
            });
        }
        let extras = event.id.len()
            + event.node_filter.len()
            + event.service_filter.len()
            + event.tag_filter.len();
        if extras > EVENT_EXTRAS_LIMIT {
            return Err(Error::EventFiltersTooLarge {
                size: extras,
                limit: EVENT_EXTRAS_LIMIT,
            });
        }
        event.ltime = self.event_clock;
        self.event_clock += 1;
        self.broadcast(BroadcastItem::UserEvent(event.clone()), now)?;
        Ok(event)
    }

    /// Asks every member, this one included; answers arrive as [`Event::QueryResponse`] until
    /// [`Event::QueryDone`] after `timeout` (at most an hour).
    pub fn query(
        &mut self,
        name: &str,
        payload: Vec<u8>,
        timeout: Duration,
        now: Instant,
    ) -> Result<QueryId, Error> {
        self.ensure_active()?;
        let size = name.len() + payload.len();
        if size > QUERY_SIZE_LIMIT {
            return Err(Error::QueryTooLarge {
                size,
                limit: QUERY_SIZE_LIMIT,
            });
        }
        let timeout = timeout.min(MAX_QUERY_TIMEOUT);
        let id = QueryId(self.rng.random());
        self.queries.start(id);
        self.schedule(timeout, TimerKind::QueryDeadline(id));
        let message = QueryMessage {
            id,
            name: name.to_owned(),
            payload,
            origin: self.local.name.clone(),
            origin_addr: self.identity.addr,
            timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
        };
        self.broadcast(BroadcastItem::Query(message), now)?;
        Ok(id)
    }

    /// Answers a query received as [`Event::Query`]; at most once per query, before its timeout.
    pub fn respond(&mut self, id: QueryId, payload: Vec<u8>, now: Instant) -> Result<(), Error> {
        if payload.len() > QUERY_RESPONSE_SIZE_LIMIT {
            return Err(Error::ResponseTooLarge {
                size: payload.len(),
                limit: QUERY_RESPONSE_SIZE_LIMIT,
            });
        }
        let asker = self
            .queries
            .take_asker(id, now)
            .ok_or(Error::UnknownQuery(id))?;
        if asker.name == self.local.name {
            let from = self.local.name.clone();
            if self.queries.accept_response(id, &from) {
                self.events
                    .push_back(Event::QueryResponse { id, from, payload });
            }
        } else {
            let response = QueryResponseMessage {
                id,
                from: self.local.name.clone(),
                payload,
            };
            self.send_frame(asker.addr, &Frame::QueryResponse(response));
        }
        Ok(())
    }
}
