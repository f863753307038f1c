//! Graceful shutdown. Whoever decides to stop holds the [`Trigger`]; every listener holds a
//! [`Watch`]. On the signal a listener stops accepting (its socket is closed, so new connections
//! are refused), lets established connections finish for a grace period, then cuts the rest.
//! Dropping the trigger signals too, so a listener never outlives its owner's intent.

use tokio::sync::watch;

/// Starts a drain: [`Trigger::drain`] signals every [`Watch`] cloned from the one returned.
pub fn channel() -> (Trigger, Watch) {
    let (tx, rx) = watch::channel(false);
    (Trigger(tx), Watch(rx))
}

/// The sending side of [`channel`].
#[derive(Debug)]
pub struct Trigger(watch::Sender<bool>);

impl Trigger {
    /// Tells every listener to stop accepting and drain.
    pub fn drain(self) {
        // Nobody listening any more is fine: there is nothing left to drain.
        let _ = self.0.send(true);
    }
}

/// The listening side of [`channel`]; clone it for every listener.
#[derive(Debug, Clone)]
pub struct Watch(watch::Receiver<bool>);

impl Watch {
    /// Completes once the drain was triggered (or the trigger dropped).
    pub async fn signaled(&self) {
        let mut rx = self.0.clone();
        // An error means the trigger was dropped: treated as a signal.
        let _ = rx.wait_for(|drain| *drain).await;
    }
}

/// How a listener's drain ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Drained {
    /// Connections still open when the grace period ran out, and therefore cut.
    pub cut: usize,
}
