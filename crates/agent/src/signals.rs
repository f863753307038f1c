//! The agent's process signals, as Consul handles them: SIGHUP reloads the configuration,
//! SIGTERM and SIGINT stop the agent, leaving the datacenter first when the configuration says
//! so (`leave_on_terminate`, `skip_leave_on_interrupt`).

use tokio::signal::unix::{signal, SignalKind};

use crate::Agent;

/// The signal that stopped the agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    Terminate,
    Interrupt,
}

impl Stop {
    /// Whether the agent leaves the datacenter gracefully before it stops: on SIGTERM only with
    /// `leave_on_terminate`, on SIGINT unless `skip_leave_on_interrupt` (whose defaults follow
    /// the agent's role, as Consul's do).
    pub fn leaves(self, config: &config::Config) -> bool {
        self.leaves_with(config.leave_on_terminate, config.skip_leave_on_interrupt)
    }

    fn leaves_with(self, leave_on_terminate: bool, skip_leave_on_interrupt: bool) -> bool {
        match self {
            Stop::Terminate => leave_on_terminate,
            Stop::Interrupt => !skip_leave_on_interrupt,
        }
    }
}

/// Completes at the first SIGTERM or SIGINT, saying which; every SIGHUP before it reloads the
/// agent's configuration (a failed reload is logged and changes nothing).
pub async fn until_stopped(agent: &Agent) -> std::io::Result<Stop> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    loop {
        tokio::select! {
            _ = term.recv() => return Ok(Stop::Terminate),
            _ = int.recv() => return Ok(Stop::Interrupt),
            _ = hup.recv() => match agent.reload() {
                Ok(()) => tracing::info!("reloaded the configuration"),
                Err(err) => tracing::error!(%err, "reloading the configuration failed"),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_signal_reads_its_own_key() {
        // Consul's client defaults: leave on both.
        assert!(Stop::Terminate.leaves_with(true, false));
        assert!(Stop::Interrupt.leaves_with(true, false));
        // Server defaults: leave on neither.
        assert!(!Stop::Terminate.leaves_with(false, true));
        assert!(!Stop::Interrupt.leaves_with(false, true));
        // Mixed.
        assert!(Stop::Terminate.leaves_with(true, true));
        assert!(!Stop::Interrupt.leaves_with(true, true));
        assert!(Stop::Interrupt.leaves_with(false, false));
    }
}
