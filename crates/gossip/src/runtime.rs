//! foca's side of the engine: collects what one foca call wants done, for the engine to act on.

use std::sync::Arc;
use std::time::Duration;

use foca::{Message, Notification, Runtime, Timer};

use crate::identity::NodeIdentity;

/// A foca notification, reduced to what the engine uses.
#[derive(Debug)]
pub(crate) enum Note {
    Up(NodeIdentity),
    Down(NodeIdentity),
    Renamed(NodeIdentity),
    Rejoined(NodeIdentity),
    Defunct,
    PingSent { to: Arc<str>, probe_number: u8 },
    IncarnationSent { identity: u64, foca: u16 },
    AckReceived { from: Arc<str>, probe_number: u8 },
    ProbeFailed(NodeIdentity),
}

/// Everything one call into foca produced, in order.
#[derive(Debug, Default)]
pub(crate) struct Effects {
    pub(crate) sends: Vec<(NodeIdentity, Vec<u8>)>,
    pub(crate) timers: Vec<(Duration, Timer<NodeIdentity>)>,
    pub(crate) notes: Vec<Note>,
}

impl Runtime<NodeIdentity> for Effects {
    fn notify(&mut self, notification: Notification<'_, NodeIdentity>) {
        let note = match notification {
            Notification::MemberUp(id) => Note::Up(id.clone()),
            Notification::MemberDown(id) => Note::Down(id.clone()),
            Notification::Rename(_, new) => Note::Renamed(new.clone()),
            Notification::Rejoin(id) => Note::Rejoined(id.clone()),
            Notification::Defunct => Note::Defunct,
            Notification::DataSent(header) => {
                self.notes.push(Note::IncarnationSent {
                    identity: header.src.incarnation,
                    foca: header.src_incarnation,
                });
                match header.message {
                    Message::Ping(probe_number) => Note::PingSent {
                        to: Arc::clone(&header.dst.name),
                        probe_number,
                    },
                    _ => return,
                }
            }
            Notification::DataReceived(header) => match header.message {
                Message::Ack(probe_number) => Note::AckReceived {
                    from: Arc::clone(&header.src.name),
                    probe_number,
                },
                _ => return,
            },
            Notification::ProbeFailed(_, id) => Note::ProbeFailed(id.clone()),
            Notification::Active | Notification::Idle => return,
        };
        self.notes.push(note);
    }

    fn send_to(&mut self, to: NodeIdentity, data: &[u8]) {
        self.sends.push((to, data.to_vec()));
    }

    fn submit_after(&mut self, event: Timer<NodeIdentity>, after: Duration) {
        self.timers.push((after, event));
    }
}
