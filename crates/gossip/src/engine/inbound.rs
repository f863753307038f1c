//! Datagrams in: decryption, frame dispatch, and our own frames (join handshake, buddy notices, answers).

use std::borrow::Cow;
use std::iter;
use std::net::SocketAddr;
use std::time::Instant;

use foca::{Member as FocaMember, State};

use super::Gossip;
use crate::error::Error;
use crate::event::Event;
use crate::identity::NodeIdentity;
use crate::keyring;
use crate::wire::{Frame, QueryResponseMessage};

impl Gossip {
    /// Handles one received datagram. Errors describe a datagram that was dropped; the node is unaffected.
    pub fn handle_datagram(
        &mut self,
        from: SocketAddr,
        datagram: &[u8],
        now: Instant,
    ) -> Result<(), Error> {
        if self.has_left() {
            return Ok(());
        }
        let plaintext = self.open(datagram)?;
        let result = self.handle_frame(from, Frame::decode(&plaintext)?, now);
        self.spread_news(now);
        result
    }

    fn handle_frame(
        &mut self,
        from: SocketAddr,
        frame: Frame<'_>,
        now: Instant,
    ) -> Result<(), Error> {
        match frame {
            Frame::Foca(message) => {
                let result = self.drive(now, |foca, effects| foca.handle_data(message, effects));
                let (digest, unknown_sender) = {
                    let mut book = self.book();
                    (book.take_received_digest(), book.take_unknown_sender())
                };
                if unknown_sender.is_some() {
                    // The sender named itself by a life this node never saw whole: ask for it.
                    self.send_frame(from, &Frame::JoinProbe);
                }
                if let Some(digest) = digest {
                    self.compare_digest(from, digest, now);
                }
                result
            }
            Frame::JoinProbe => {
                let identity = Frame::JoinAck(self.identity.clone());
                self.send_frame(from, &identity);
                Ok(())
            }
            Frame::JoinAck(seed) => self.join_acked(from, seed, now),
            Frame::Suspect(suspicion) => self.suspected(from, suspicion, now),
            Frame::Refute(member) => self.refuted(member, now),
            Frame::QueryResponse(response) => {
                self.query_answered(response);
                Ok(())
            }
            Frame::SyncRequest => {
                self.send_member_list(from);
                Ok(())
            }
            Frame::Sync(members) => self.apply_synced(members, now),
            Frame::RosterRequest => {
                self.send_roster(from);
                Ok(())
            }
            Frame::Roster(entries) => self.roster_received(from, entries, now),
            Frame::WhoIs(lives) => {
                self.send_who_is(from, &lives);
                Ok(())
            }
        }
    }

    fn open<'a>(&self, datagram: &'a [u8]) -> Result<Cow<'a, [u8]>, Error> {
        let sealed = datagram.first() == Some(&keyring::VERSION);
        match (&self.config.keyring, sealed) {
            (Some(keyring), true) => Ok(Cow::Owned(keyring.decrypt(datagram)?)),
            (Some(_), false) => Err(Error::Unencrypted),
            (None, true) => Err(Error::UnexpectedEncryption),
            (None, false) => Ok(Cow::Borrowed(datagram)),
        }
    }

    fn join_acked(
        &mut self,
        from: SocketAddr,
        seed: NodeIdentity,
        now: Instant,
    ) -> Result<(), Error> {
        self.book().learn(&seed);
        if *seed.name == *self.local.name || !self.joins.ack(from, seed.clone()) {
            return Ok(());
        }
        // Announcing makes the seed learn us; pulling its member list makes us learn everyone at once.
        self.send_frame(from, &Frame::SyncRequest);
        self.drive(now, |foca, effects| foca.announce(seed, effects))
    }

    /// Someone suspects us: let foca refute (it bumps its incarnation), then answer the suspecter directly.
    fn suspected(
        &mut self,
        from: SocketAddr,
        suspicion: FocaMember<NodeIdentity>,
        now: Instant,
    ) -> Result<(), Error> {
        self.book().learn(suspicion.id());
        if *suspicion.id() != self.identity || suspicion.state() != State::Suspect {
            return Ok(());
        }
        self.drive(now, |foca, effects| {
            foca.apply_many(iter::once(suspicion), true, effects)
        })?;
        let incarnation = self.probes.foca_incarnation(self.identity.incarnation);
        let alive = FocaMember::new(self.identity.clone(), incarnation, State::Alive);
        self.send_frame(from, &Frame::Refute(alive));
        Ok(())
    }

    fn refuted(&mut self, member: FocaMember<NodeIdentity>, now: Instant) -> Result<(), Error> {
        if member.state() != State::Alive || *member.id().name == *self.local.name {
            return Ok(());
        }
        self.book().learn(member.id());
        self.drive(now, |foca, effects| {
            foca.apply_many(iter::once(member), true, effects)
        })
    }

    fn query_answered(&mut self, response: QueryResponseMessage) {
        if self.queries.accept_response(response.id, &response.from) {
            self.events.push_back(Event::QueryResponse {
                id: response.id,
                from: response.from,
                payload: response.payload,
            });
        }
    }
}
