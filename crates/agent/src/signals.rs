//! The agent's process signals, as Consul handles them: SIGHUP reloads the configuration,
//! SIGTERM and SIGINT stop the agent.

use tokio::signal::unix::{signal, SignalKind};

use crate::Agent;

/// Completes at the first SIGTERM or SIGINT; every SIGHUP before it reloads the agent's
/// configuration (a failed reload is logged and changes nothing).
pub async fn until_stopped(agent: &Agent) -> std::io::Result<()> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    loop {
        tokio::select! {
            _ = term.recv() => return Ok(()),
            _ = int.recv() => return Ok(()),
            _ = hup.recv() => match agent.reload() {
                Ok(()) => tracing::info!("reloaded the configuration"),
                Err(err) => tracing::error!(%err, "reloading the configuration failed"),
            },
        }
    }
}
