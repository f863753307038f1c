//! Member-list sync (serf's push-pull): pulled on join and periodically, and pushed or pulled whenever a
//! peer's membership digest differs from ours, so that a member that gossip missed is learned in seconds.

use std::iter;
use std::net::SocketAddr;
use std::time::Instant;

use foca::{Member as FocaMember, State};

use super::Gossip;
use crate::config::FRAME_OVERHEAD;
use crate::identity::NodeIdentity;
use crate::member::MemberStatus;
use crate::timer::TimerKind;
use crate::wire::{sync_chunks, Frame, MembershipDigest};

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

    /// A peer sees other members than we do: send our list if it may miss some, pull its list if we may.
    pub(super) fn compare_digest(
        &mut self,
        from: SocketAddr,
        digest: MembershipDigest,
        now: Instant,
    ) {
        let mine = self.membership_digest();
        if digest == mine || self.digest_sync_after.is_some_and(|after| now < after) {
            return;
        }
        self.digest_sync_after = Some(now + self.config.digest_interval.saturating_mul(5));
        if mine.count >= digest.count {
            self.send_member_list(from);
        }
        if mine.count <= digest.count {
            self.send_frame(from, &Frame::SyncRequest);
        }
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

    /// Answers a sync request with everything foca knows, this node included.
    pub(super) fn send_member_list(&mut self, to: SocketAddr) {
        let incarnation = self.probes.foca_incarnation(self.identity.incarnation);
        let myself = FocaMember::new(self.identity.clone(), incarnation, State::Alive);
        // foca records our own previous lives as down members; a receiver that still knows such a life
        // as alive would report a failure before it learns the current one.
        let others = self
            .foca
            .iter_membership_state()
            .filter(|member| member.id().name != self.identity.name);
        let members = iter::once(myself).chain(others.cloned());
        let budget = self.config.max_packet_size - FRAME_OVERHEAD;
        for chunk in sync_chunks(members, budget) {
            self.send_frame(to, &Frame::Sync(chunk));
        }
    }

    /// Pulls the member list from a random active member (serf's periodic push-pull).
    pub(super) fn sync(&mut self) {
        if let Some(addr) = self.random_member_addr() {
            self.send_frame(addr, &Frame::SyncRequest);
        }
        let interval = self.config.sync_interval_for(self.pool_size());
        self.schedule(interval, TimerKind::Sync);
    }

    /// Sends our membership digest to a random active member.
    pub(super) fn send_digest(&mut self) {
        if let Some(addr) = self.random_member_addr() {
            let digest = self.membership_digest();
            self.send_frame(addr, &Frame::Digest(digest));
        }
        self.schedule(self.config.digest_interval, TimerKind::Digest);
    }
}
