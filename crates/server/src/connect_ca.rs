//! The leader's CA duties, as Consul's leader runs them (agent/consul/leader_connect_ca.go):
//! create the CA when the datacenter has none, renew the signing intermediate once half of its
//! life has passed, and drop rotated-out roots once every leaf they signed has expired.
//!
//! Creating keys and certificates is not deterministic, so the leader computes the new CA and
//! replicates the result with [`Op::SetCa`], conditional on the CA it started from; when that
//! moved meanwhile (a leaf reservation, a configuration change) it starts over from the new one.

use std::time::{Duration, SystemTime};

use consensus::{ConsensusError, RaftNode};
use openraft::ServerState;
use tokio::sync::watch;

/// How often the leader checks the intermediate and prunes roots (Consul's
/// `IntermediateCertRenewInterval`).
const CHECK_INTERVAL: Duration = Duration::from_secs(3600);

/// Builds the CA configuration used when the datacenter first creates its CA, from the
/// agent's `connect.ca_config`. Unknown keys are ignored, as Consul ignores them.
pub fn initial_config(
    ca_config: &serde_json::Map<String, serde_json::Value>,
) -> Result<ca::CaConfig, String> {
    let provider: ca::ProviderConfig =
        serde_json::from_value(serde_json::Value::Object(ca_config.clone()))
            .map_err(|e| format!("connect.ca_config: {e}"))?;
    let config = ca::CaConfig {
        config: provider,
        ..ca::CaConfig::default()
    };
    config
        .validate()
        .map_err(|e| format!("connect.ca_config: {e}"))?;
    Ok(config)
}

/// One round of the leader's duties.
async fn maintain(node: &RaftNode, initial: &ca::CaConfig) -> Result<(), String> {
    let created = node
        .update_ca(|current| match current {
            Some(_) => Ok(None),
            None => {
                let cluster_id = uuid::Uuid::new_v4().to_string();
                ca::CaState::bootstrap(&cluster_id, initial.clone(), SystemTime::now())
                    .map(Some)
                    .map_err(|e| e.to_string())
            }
        })
        .await
        .map_err(|e| e.to_string())?;
    if created {
        tracing::info!("created the Connect CA");
    }
    node.update_ca(|current| {
        let Some(mut ca) = current else {
            return Ok(None);
        };
        let now = SystemTime::now();
        let renewed = ca.renew_intermediate(now).map_err(|e| e.to_string())?;
        let pruned = ca.prune(now);
        if renewed {
            tracing::info!(root = %ca.active_root_id, "renewed the CA's signing intermediate");
        }
        for id in &pruned {
            tracing::info!(root = %id, "removed a rotated-out CA root whose leaves have expired");
        }
        Ok((renewed || !pruned.is_empty()).then_some(ca))
    })
    .await
    .map_err(|e| e.to_string())?;
    Ok(())
}

/// While this server leads: run [`maintain`] on winning an election and every
/// [`CHECK_INTERVAL`]; after a failure, again a minute later.
pub(crate) async fn run(
    node: RaftNode,
    initial: ca::CaConfig,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut metrics = node.raft().metrics();
    loop {
        let leading = metrics.borrow_and_update().state == ServerState::Leader;
        let mut next = CHECK_INTERVAL;
        if leading {
            if let Err(err) = maintain(&node, &initial).await {
                // Losing leadership midway is not worth a warning.
                if err != ConsensusError::NoLeader.to_string() {
                    tracing::warn!(%err, "maintaining the Connect CA failed");
                }
                next = Duration::from_secs(60);
            }
        }
        tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => return,
            changed = metrics.wait_for(|m| (m.state == ServerState::Leader) != leading) => {
                if changed.is_err() { return }
            }
            () = tokio::time::sleep(next) => {}
        }
    }
}
