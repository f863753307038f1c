//! `mesh-server -recover`: quorum-loss recovery without hand-editing files.
//!
//! Run on one stopped survivor. It asks the other survivors (running or not, reachable over
//! server RPC) how far their logs go and refuses if any is ahead of this server, or cannot be
//! asked, because recovering from a shorter log loses writes the others have; `force` overrides.
//! Then it makes this server the sole voter of a new configuration (see
//! `raft_store::recover_as_sole_voter`). Start it normally afterwards; wipe the other survivors'
//! data directories and start them with `retry_join` pointing at it, and they join again.

use consensus::{LogPosition, ServerNode};

use crate::{advertise_addr, port, raft_id, ServerError};

/// Recovers the stopped server described by `config`; returns a report for the operator.
pub async fn recover(
    config: &config::Config,
    survivors: &[String],
    force: bool,
) -> Result<String, ServerError> {
    let data_dir = config
        .data_dir
        .as_ref()
        .ok_or_else(|| ServerError::Unsupported("recovery needs -data-dir".into()))?;
    let raft_dir = data_dir.join("raft");
    if !raft_dir.exists() {
        return Err(ServerError::RecoveryRefused(format!(
            "{} holds no raft data",
            raft_dir.display()
        )));
    }
    let ours = raft_store::log_position(&raft_dir).map_err(|e| {
        ServerError::RecoveryRefused(format!(
            "cannot open the store ({e}); is this server still running? stop it first"
        ))
    })?;
    let mut report = vec![format!(
        "this server's log ends at term {} index {}",
        ours.term, ours.index
    )];
    for survivor in survivors {
        let addr = rpc::with_default_port(survivor);
        match rpc::identify(&addr).await {
            Ok(peer) => {
                let theirs = peer.log.unwrap_or(LogPosition { term: 0, index: 0 });
                report.push(format!(
                    "survivor {} ({addr}) log ends at term {} index {}",
                    peer.node_name, theirs.term, theirs.index
                ));
                if theirs > ours && !force {
                    return Err(ServerError::RecoveryRefused(format!(
                        "survivor {} ({addr}) has more log (term {} index {}) than this server (term {} index {}): recover that server instead, or pass -recover-force to accept losing its extra entries",
                        peer.node_name, theirs.term, theirs.index, ours.term, ours.index
                    )));
                }
            }
            Err(err) if !force => {
                return Err(ServerError::RecoveryRefused(format!(
                    "cannot ask survivor {addr} how far its log goes ({err}); start it (it needs no quorum to answer), or pass -recover-force if it is gone"
                )));
            }
            Err(err) => report.push(format!(
                "survivor {addr} unreachable ({err}); ignored (-recover-force)"
            )),
        }
    }
    let id = agent::identity::node_id(config.node_id.as_deref(), data_dir).map_err(|source| {
        ServerError::DataDir {
            path: data_dir.to_path_buf(),
            source,
        }
    })?;
    let addr = format!(
        "{}:{}",
        advertise_addr(config),
        port(config.ports.server, 8300)
    );
    let node = ServerNode::new(addr.clone(), config.node_name.clone(), id.clone());
    let entry = raft_store::recover_as_sole_voter(&raft_dir, raft_id(&id), node)?;
    report.push(format!(
        "wrote a configuration with {} ({addr}) as the only voter at term {} index {}; start this server, then wipe and rejoin the others",
        config.node_name, entry.term, entry.index
    ));
    Ok(report.join("\n"))
}
