//! Member-list sync (serf's push-pull): pulled whole on join; as a roster of life hashes, pulled
//! periodically from a random member and pushed to a member whose ping carried a membership digest that
//! differs from ours, so that a member that gossip missed is learned in seconds. A roster costs about ten
//! bytes a member; the receiver asks for the few members it cannot look up (`WhoIs`) and gets them whole.

use std::collections::HashSet;
use std::iter;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use foca::{Member as FocaMember, State};

use super::Gossip;
use crate::config::FRAME_OVERHEAD;
use crate::error::Error;
use crate::identity::NodeIdentity;
use crate::member::MemberStatus;
use crate::timer::TimerKind;
use crate::wire::{chunks, Frame, LifeHash, MembershipDigest, RosterEntry};

/// How long our membership must have been stable before a digest difference makes us send our roster.
const DISAGREEMENT_SETTLE: Duration = Duration::from_millis(300);

impl Gossip {
    /// Active members and this node, summarised (cached until membership changes).
    pub(super) fn membership_digest(&mut self) -> MembershipDigest {
        if let Some(digest) = self.digest {
            return digest;
        }
        let mut digest = MembershipDigest::default();
        digest.add(&self.identity);
        for member in self.foca.iter_members() {
            digest.add(member.id());
        }
        self.digest = Some(digest);
        digest
    }

    /// A peer that pinged us sees other members than we do: send it our roster, once our own view has
    /// been stable for a while (news spreads through the pool within a few round trips, so a difference
    /// while our view is fresh is most likely news still under way). Which side is behind cannot be told
    /// from the digests (the one with more members may know a join the other missed, or have missed a
    /// failure), but the stale one gets rosters from every member it pings, and the other side's stale
    /// entries change nothing here (a member that is down stays down).
    pub(super) fn compare_digest(
        &mut self,
        from: SocketAddr,
        digest: MembershipDigest,
        now: Instant,
    ) {
        let mine = self.membership_digest();
        let settled =
            now.saturating_duration_since(self.membership_changed_at) >= DISAGREEMENT_SETTLE;
        if digest == mine || !settled || self.digest_sync_after.is_some_and(|after| now < after) {
            return;
        }
        self.digest_sync_after = Some(now + self.config.sync_backoff);
        self.send_roster(from);
    }

    /// Whether a member from a sync tells this node something: foca looks members up linearly, so applying
    /// a thousand members it already knows is the dominant cost of syncing large pools.
    pub(super) fn is_news(&self, member: &FocaMember<NodeIdentity>) -> bool {
        let id = member.id();
        let Some(known) = self.table.get(&id.name) else {
            return *id.name != *self.local.name
                || *id != self.identity
                || member.state() != State::Alive;
        };
        let same_verdict = match member.state() {
            State::Alive | State::Suspect => {
                matches!(known.status, MemberStatus::Alive | MemberStatus::Leaving)
            }
            State::Down => matches!(known.status, MemberStatus::Failed | MemberStatus::Left),
        };
        known.incarnation != id.incarnation || !same_verdict
    }

    /// Everything foca knows, this node included.
    fn member_list(&self) -> impl Iterator<Item = FocaMember<NodeIdentity>> + '_ {
        let incarnation = self.probes.foca_incarnation(self.identity.incarnation);
        let myself = FocaMember::new(self.identity.clone(), incarnation, State::Alive);
        // foca records our own previous lives as down members; a receiver that still knows such a life
        // as alive would report a failure before it learns the current one.
        let others = self
            .foca
            .iter_membership_state()
            .filter(|member| member.id().name != self.identity.name);
        iter::once(myself).chain(others.cloned())
    }

    /// Sends `members` whole, in as many frames as they need.
    fn send_whole(&mut self, to: SocketAddr, members: Vec<FocaMember<NodeIdentity>>) {
        let budget = self.config.max_packet_size - FRAME_OVERHEAD;
        for chunk in chunks(members, budget) {
            self.send_frame(to, &Frame::Sync(chunk));
        }
    }

    /// Answers a sync request (a joining node's) with the whole member list.
    pub(super) fn send_member_list(&mut self, to: SocketAddr) {
        let members = self.member_list().collect();
        self.send_whole(to, members);
    }

    /// Answers a roster request with the member list by life hash.
    pub(super) fn send_roster(&mut self, to: SocketAddr) {
        let entries: Vec<RosterEntry> = self
            .member_list()
            .map(|member| RosterEntry {
                life: LifeHash(member.id().life()),
                incarnation: member.incarnation(),
                state: member.state(),
            })
            .collect();
        let budget = self.config.max_packet_size - FRAME_OVERHEAD;
        for chunk in chunks(entries, budget) {
            self.send_frame(to, &Frame::Roster(chunk));
        }
    }

    /// Applies what a roster says that is news here, and asks for the members it names that this node
    /// cannot look up. Down members it never heard of are not worth asking for: a joining node learns
    /// those from its whole sync.
    pub(super) fn roster_received(
        &mut self,
        from: SocketAddr,
        entries: Vec<RosterEntry>,
        now: Instant,
    ) -> Result<(), Error> {
        let mut members = Vec::new();
        let mut unknown = Vec::new();
        {
            let book = self.book();
            for entry in entries {
                match book.resolve(entry.life.0) {
                    Some(identity) => {
                        members.push(FocaMember::new(identity, entry.incarnation, entry.state))
                    }
                    None if entry.state != State::Down => unknown.push(entry.life),
                    None => {}
                }
            }
        }
        if !unknown.is_empty() {
            let budget = self.config.max_packet_size - FRAME_OVERHEAD;
            for chunk in chunks(unknown, budget) {
                self.send_frame(from, &Frame::WhoIs(chunk));
            }
        }
        self.apply_synced(members, now)
    }

    /// Answers a who-is with the members it names, whole.
    pub(super) fn send_who_is(&mut self, to: SocketAddr, lives: &[LifeHash]) {
        let wanted: HashSet<u64> = lives.iter().map(|life| life.0).collect();
        let members = self
            .member_list()
            .filter(|member| wanted.contains(&member.id().life()))
            .collect();
        self.send_whole(to, members);
    }

    /// Applies members from a sync: knowledge the pool already has, so what is news here is applied
    /// without gossiping it again.
    pub(super) fn apply_synced(
        &mut self,
        members: Vec<FocaMember<NodeIdentity>>,
        now: Instant,
    ) -> Result<(), Error> {
        {
            let mut book = self.book();
            for member in &members {
                book.learn(member.id());
            }
        }
        let news: Vec<_> = members
            .into_iter()
            .filter(|member| self.is_news(member))
            .collect();
        if news.is_empty() {
            return Ok(());
        }
        self.drive(now, |foca, effects| {
            foca.apply_many(news.into_iter(), false, effects)
        })
    }

    /// Pulls the roster of a random active member (serf's periodic push-pull).
    pub(super) fn sync(&mut self) {
        if let Some(addr) = self.random_member_addr() {
            self.send_frame(addr, &Frame::RosterRequest);
        }
        let interval = self.config.sync_interval_for(self.pool_size());
        self.schedule(interval, TimerKind::Sync);
    }

    /// Hands the codec the digest the next ping carries.
    pub(super) fn refresh_ping_digest(&mut self) {
        let digest = self.membership_digest();
        self.book().set_digest(digest);
    }

    /// Lets the codec forget identities that neither foca nor the member table holds any more.
    pub(super) fn prune_identity_book(&mut self) {
        let lives: HashSet<u64> = self
            .foca
            .iter_membership_state()
            .map(|member| member.id().life())
            .chain(self.table.iter().map(|member| member.identity().life()))
            .collect();
        self.book().retain(|life| lives.contains(&life));
    }
}
