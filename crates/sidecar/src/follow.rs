//! Following one agent resource with blocking reads for as long as the task lives: every new
//! version is handed to `apply`; failures are logged and retried with backoff, keeping the
//! last good configuration in force meanwhile.

use tracing::{debug, warn};

use crate::agent_api::{backoff, AgentApi, Answer, Version};

/// How often an answer without an index or hash is read again.
const POLL: std::time::Duration = std::time::Duration::from_secs(10);

/// Reads `path` at once, then blocks on it from `since` forever. `apply` gets each answer
/// whose version differs from the one before; its error is logged and the answer skipped.
pub(crate) async fn follow<F>(agent: AgentApi, path: String, since: Version, mut apply: F)
where
    F: FnMut(Answer) -> Result<(), String>,
{
    let mut since = since;
    let mut failures = 0u32;
    loop {
        match agent.watch(&path, &since).await {
            Ok(answer) => {
                failures = 0;
                if answer.version == since && since != Version::None {
                    continue;
                }
                let version = answer.version.clone();
                match apply(answer) {
                    Ok(()) => debug!(%path, ?version, "applied"),
                    Err(e) => warn!(%path, error = %e, "ignoring an answer the sidecar cannot use"),
                }
                if version == Version::None {
                    // Nothing to block on (not a blocking endpoint): poll instead of spinning.
                    tokio::time::sleep(POLL).await;
                }
                since = version;
            }
            Err(e) => {
                // A restarted agent starts its indexes over; so does this read after a failure.
                since = Version::None;
                warn!(%path, error = %e, attempt = failures, "reading from the agent failed; retrying");
                pause(failures).await;
                failures = failures.saturating_add(1);
            }
        }
    }
}

async fn pause(attempt: u32) {
    tokio::time::sleep(backoff(attempt, rand::random::<f64>())).await;
}
