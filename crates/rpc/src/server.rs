//! The answering side: one task per connection, one request at a time.

use std::sync::Arc;
use std::time::Duration;

use consensus::{Op, Raft, RaftNode, ServerNode};
use openraft::error::RaftError;
use openraft::raft::AppendEntriesResponse;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::client::{HttpHandler, HttpResponse, NodeState};
use crate::frame;
use crate::message::{Identity, Request, Response, SnapshotFailure};
use crate::tls::{AgentSigner, PeerRole, ServerTls, Stream};
use crate::Autopilot;

/// Serves server RPC on `listener` until `shutdown` becomes true. With `tls`, every
/// connection must complete a TLS handshake (with a client certificate when the configuration
/// asks for one) before its first frame; without, connections are plaintext.
/// What guards the listener: TLS, and the default policy of ACLs when they are on (client
/// agents' catalog writes are then checked against their tokens).
#[derive(Debug, Clone, Default)]
pub struct Guards {
    pub tls: Option<ServerTls>,
    pub acl: Option<acl::DefaultPolicy>,
}

pub async fn serve(
    listener: TcpListener,
    guards: Guards,
    node: RaftNode,
    autopilot: Autopilot,
    identity: Arc<dyn Fn() -> Identity + Send + Sync>,
    http: Option<HttpHandler>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.wait_for(|stop| *stop) => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                let node = node.clone();
                let autopilot = autopilot.clone();
                let identity = identity.clone();
                let http = http.clone();
                let shutdown = shutdown.clone();
                let guards = guards.clone();
                tokio::spawn(async move {
                    if let Err(err) = stream.set_nodelay(true) {
                        tracing::debug!(%peer, %err, "server RPC connection closed");
                        return;
                    }
                    let stream = match &guards.tls {
                        Some(tls) => match crate::tls::accept(&tls.config, stream).await {
                            Ok(stream) => stream,
                            Err(err) => {
                                // Another agent that cannot prove itself, or a stray client.
                                tracing::warn!(%peer, %err, "refused a server RPC connection");
                                return;
                            }
                        },
                        None => Stream::Plain(stream),
                    };
                    if let Err(err) = connection(
                        stream,
                        &guards,
                        &node,
                        &autopilot,
                        &*identity,
                        http.as_ref(),
                        shutdown,
                    )
                    .await
                    {
                        tracing::debug!(%peer, %err, "server RPC connection closed");
                    }
                });
            }
            Err(err) => {
                tracing::warn!(%err, "accepting a server RPC connection failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

/// Answers one connection's requests in turn until the peer closes it or the server stops.
/// A TLS client without a certificate (let through for auto_encrypt) may only ask for one.
async fn connection(
    mut stream: Stream,
    guards: &Guards,
    node: &RaftNode,
    autopilot: &Autopilot,
    identity: &(dyn Fn() -> Identity + Send + Sync),
    http: Option<&HttpHandler>,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let tls = guards.tls.as_ref();
    let role = stream.peer_role(tls.map_or("", |tls| tls.server_name.as_str()));
    let signer = tls.and_then(|tls| tls.signer.as_deref());
    loop {
        let request = tokio::select! {
            request = frame::read::<_, Request>(&mut stream) => request?,
            _ = shutdown.wait_for(|stop| *stop) => return Ok(()),
        };
        let Some(request) = request else {
            return Ok(());
        };
        if let Err(refusal) = permitted(role, &request) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                refusal,
            ));
        }
        let response = answer(request, node, autopilot, identity, http, signer, guards.acl).await;
        frame::write(&mut stream, &response).await?;
    }
}

/// What a peer of `role` may ask. Raft, forwarded writes and the operator's requests are for
/// servers; a client agent asks for what the agent runtime needs (its catalog writes, reads,
/// watches, forwarded HTTP calls, certificates, tokens); a client without a certificate only
/// for one. A client write is a catalog write, whoever sends it.
fn permitted(role: PeerRole, request: &Request) -> Result<(), &'static str> {
    if let Request::ClientWrite(op) | Request::ClientWriteAs { op, .. } = request {
        if !matches!(op, Op::Catalog(_)) {
            return Err("a client write that is not a catalog write");
        }
    }
    let for_agents = matches!(
        request,
        Request::ClientWrite(_)
            | Request::ClientWriteAs { .. }
            | Request::NodeState(_)
            | Request::WatchNode { .. }
            | Request::WatchService { .. }
            | Request::ByAddress(_)
            | Request::Http(_)
            | Request::WatchRoots { .. }
            | Request::WatchIntentions { .. }
            | Request::SignLeaf { .. }
            | Request::ResolveToken(_)
            | Request::SignAgentCert(_)
            | Request::Identify
    );
    match role {
        PeerRole::Server => Ok(()),
        PeerRole::Agent if for_agents => Ok(()),
        PeerRole::Agent => Err("a client agent asked for what only servers may"),
        PeerRole::Anonymous if matches!(request, Request::SignAgentCert(_)) => Ok(()),
        PeerRole::Anonymous => Err("a client without a certificate asked for more than one"),
    }
}

async fn answer(
    request: Request,
    node: &RaftNode,
    autopilot: &Autopilot,
    identity: &(dyn Fn() -> Identity + Send + Sync),
    http: Option<&HttpHandler>,
    signer: Option<&AgentSigner>,
    acl: Option<acl::DefaultPolicy>,
) -> Response {
    let raft: &Raft = node.raft();
    match request {
        Request::AppendEntries(rpc) => {
            let resp = raft.append_entries(rpc).await;
            if matches!(&resp, Ok(r) if !matches!(r, AppendEntriesResponse::HigherVote(_))) {
                node.note_leader_contact();
            }
            Response::AppendEntries(resp.map_err(|e| e.to_string()))
        }
        Request::Vote(rpc) => Response::Vote(raft.vote(rpc).await.map_err(|e| e.to_string())),
        Request::InstallSnapshot(rpc) => {
            Response::InstallSnapshot(raft.install_snapshot(rpc).await.map_err(|err| match err {
                RaftError::APIError(mismatch) => SnapshotFailure::Mismatch(mismatch),
                RaftError::Fatal(fatal) => SnapshotFailure::Other(fatal.to_string()),
            }))
        }
        Request::Write(op) => Response::Write(node.write_as_leader(op).await),
        Request::ReadIndex => Response::ReadIndex(node.read_index_as_leader().await),
        Request::RenewSession(id) => Response::RenewSession(node.renew_session_as_leader(&id)),
        Request::Identify => Response::Identity(Identity {
            log: node.reader().log_position().ok(),
            ..identity()
        }),
        Request::Join(joiner) => Response::Join(add_voter(node, joiner).await),
        Request::RemoveVoter(id) => Response::RemoveVoter(node.remove_voter_as_leader(id).await),
        Request::TransferLeadership(to) => {
            Response::TransferLeadership(node.transfer_leadership_as_leader(to).await)
        }
        Request::Elect => Response::Elect(node.elect_now().await),
        // Without a token, as an agent of an earlier version sends it: the anonymous one.
        Request::ClientWrite(op) => Response::ClientWrite(client_write(node, acl, "", op).await),
        Request::ClientWriteAs { token, op } => {
            Response::ClientWrite(client_write(node, acl, &token, op).await)
        }
        Request::NodeState(name) => Response::NodeState(node_state(node, &name).await),
        Request::WatchNode {
            name,
            index,
            wait_ms,
        } => {
            let wait = Duration::from_millis(wait_ms).min(MAX_WATCH);
            let (state, index) = watch_node_state(node, &name, index, wait).await;
            Response::WatchNode(state, index)
        }
        Request::ByAddress(addr) => {
            let (node, service) = by_address(node, addr);
            Response::ByAddress(node, service)
        }
        Request::WatchService {
            name,
            connect,
            index,
            wait_ms,
        } => {
            let wait = Duration::from_millis(wait_ms).min(MAX_WATCH);
            let (rows, index) = watch_service_health(node, &name, connect, index, wait).await;
            Response::WatchService(rows, index)
        }
        Request::Http(req) => Response::Http(match http {
            Some(handler) => handler(req).await,
            None => HttpResponse {
                status: 404,
                headers: Vec::new(),
                body: b"this server does not serve forwarded HTTP requests".to_vec(),
            },
        }),
        Request::WatchRoots { index, wait_ms } => {
            let wait = Duration::from_millis(wait_ms).min(MAX_WATCH);
            let (roots, index) = watch_roots(node, index, wait).await;
            Response::WatchRoots(roots, index)
        }
        Request::WatchIntentions { index, wait_ms } => {
            let wait = Duration::from_millis(wait_ms).min(MAX_WATCH);
            let (ixns, index) = watch_intentions(node, index, wait).await;
            Response::WatchIntentions(ixns, index)
        }
        Request::SignLeaf { csr_pem, service } => {
            Response::SignLeaf(node.sign_leaf(&csr_pem, &service).await)
        }
        Request::ResolveToken(secret) => {
            let datacenter = node.raft().config().cluster_name.clone();
            let now_ms = unix_ms();
            let grant = node
                .reader()
                .state()
                .acl
                .grant(&secret, now_ms, &datacenter);
            Response::ResolveToken(grant)
        }
        Request::SignAgentCert(req) => Response::SignAgentCert(match signer {
            Some(signer) => {
                let signed = signer.sign(&req);
                match &signed {
                    Ok(_) => {
                        tracing::info!(node = %req.node, "signed a client agent's certificate")
                    }
                    Err(err) => {
                        tracing::warn!(node = %req.node, %err, "refused a client agent's certificate")
                    }
                }
                signed
            }
            None => Err(
                "this server does not sign agent certificates (auto_encrypt.allow_tls is off)"
                    .to_owned(),
            ),
        }),
        Request::AutopilotHealth => Response::AutopilotHealth(if node.leader_view().is_leader {
            let config = node.reader().state().autopilot.clone();
            Ok(autopilot.health(node, &config))
        } else {
            Err("not the leader".to_owned())
        }),
    }
}

/// A client agent's catalog write, checked against `token` when ACLs are on (`acl` is their
/// default policy) as `/v1/catalog/register` and `/deregister` check it.
async fn client_write(
    node: &RaftNode,
    acl: Option<acl::DefaultPolicy>,
    token: &str,
    op: Op,
) -> Result<consensus::Written, consensus::ConsensusError> {
    if let (Some(default), Op::Catalog(catalog_op)) = (acl, &op) {
        let datacenter = node.raft().config().cluster_name.clone();
        let now_ms = unix_ms();
        let state = node.reader().state();
        let resolved = state
            .acl
            .resolve(token, now_ms, &datacenter, default)
            .map_err(|err| consensus::ConsensusError::Refused(err.to_string()))?;
        consensus::vet_catalog_op(&resolved.authorizer, &state.catalog, catalog_op).map_err(
            |missing| {
                consensus::ConsensusError::Refused(acl::permission_denied(
                    &resolved.accessor_id,
                    missing.resource,
                    Some(&missing.segment),
                    missing.access,
                ))
            },
        )?;
    }
    node.write(op).await
}

/// The wall clock in Unix milliseconds, for token expiry.
fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The catalog's view of one node, after a read barrier.
pub async fn node_state(
    node: &RaftNode,
    name: &str,
) -> Result<NodeState, consensus::ConsensusError> {
    node.linearize().await?;
    let state = node.reader().state();
    Ok(state.catalog.node_state(name))
}

/// The longest a node watch may block (Consul's longest blocking query).
pub const MAX_WATCH: Duration = Duration::from_secs(600);

/// A blocking read of `name`'s catalog state: returns once the node's index (its services and
/// checks) differs from `index`, or when `wait` has passed, with the state and its index. Read
/// from this server's state without a quorum round: an alias check follows another node's
/// health with at most replication lag, and thousands of them cost the leader nothing.
pub async fn watch_node_state(
    node: &RaftNode,
    name: &str,
    index: u64,
    wait: Duration,
) -> (NodeState, u64) {
    let topic = catalog::topic::node(name);
    watch_topic(node, &topic, index, wait, |catalog| {
        catalog.node_state(name)
    })
    .await
}

/// A blocking read of a service's instances with their health (of its proxies and
/// mesh-native instances with `connect`), like [`watch_node_state`].
pub async fn watch_service_health(
    node: &RaftNode,
    name: &str,
    connect: bool,
    index: u64,
    wait: Duration,
) -> (Vec<catalog::ServiceHealth>, u64) {
    // DNS names are case-insensitive: watch the service under the name it is registered as.
    let name = {
        let state = node.reader().state();
        state
            .catalog
            .service_name_like(name, connect)
            .unwrap_or(name)
            .to_owned()
    };
    let topic = if connect {
        catalog::topic::connect(&name)
    } else {
        catalog::topic::service(&name)
    };
    watch_topic(node, &topic, index, wait, |catalog| {
        let instances = if connect {
            catalog.connect_nodes(&name)
        } else {
            catalog.service_nodes(&name)
        };
        catalog.health(instances)
    })
    .await
}

/// [`catalog::Catalog::by_address`] on this server's state.
pub fn by_address(
    node: &RaftNode,
    addr: std::net::IpAddr,
) -> (Option<catalog::Node>, Option<String>) {
    let state = node.reader().state();
    let (node, service) = state.catalog.by_address(addr);
    (node.cloned(), service.map(str::to_owned))
}

/// Reads `read` from this server's catalog once `topic`'s index differs from `index` (or
/// `wait` passes); subscribes before reading, so a change in between is never missed.
async fn watch_topic<T>(
    node: &RaftNode,
    topic: &str,
    index: u64,
    wait: Duration,
    read: impl Fn(&catalog::Catalog) -> T,
) -> (T, u64) {
    let subscribe = || node.reader().notifier().catalog(topic);
    watch_state(node, subscribe, index, wait, |state| {
        (read(&state.catalog), state.catalog.index(topic).max(1))
    })
    .await
}

/// The loop behind every blocking read here: subscribe, read the value and its index, and
/// return once the index differs from `index` or `wait` has passed. Subscribing before
/// reading means no change in between is missed.
async fn watch_state<T>(
    node: &RaftNode,
    subscribe: impl Fn() -> consensus::Subscription,
    index: u64,
    wait: Duration,
    read: impl Fn(&consensus::State) -> (T, u64),
) -> (T, u64) {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let mut changed = subscribe();
        let (value, current) = read(&node.reader().state());
        if current != index || tokio::time::Instant::now() >= deadline {
            return (value, current);
        }
        tokio::select! {
            () = changed.changed() => {}
            () = tokio::time::sleep_until(deadline) => {}
        }
    }
}

/// A blocking read of the Connect CA roots on this server's state (none, at index 0, before
/// the CA exists): returns once their index differs from `index`, or after `wait`.
pub async fn watch_roots(
    node: &RaftNode,
    index: u64,
    wait: Duration,
) -> (Option<ca::wire::IndexedCaRoots>, u64) {
    watch_table(node, consensus::TABLE_CA, index, wait, |state| {
        let ca = state.ca.as_ref()?;
        Some((ca.roots_response(), ca.roots_modify_index))
    })
    .await
}

/// A blocking read of every intention on this server's state, like [`watch_roots`].
pub async fn watch_intentions(
    node: &RaftNode,
    index: u64,
    wait: Duration,
) -> (intentions::Intentions, u64) {
    let (ixns, index) = watch_table(node, consensus::TABLE_INTENTIONS, index, wait, |state| {
        Some((state.intentions.clone(), state.intentions.index()))
    })
    .await;
    (ixns.unwrap_or_default(), index)
}

/// Reads `read` from this server's state once the table's index (what `read` returns with
/// its value; 0 when `read` finds nothing) differs from `index` (or `wait` passes).
async fn watch_table<T>(
    node: &RaftNode,
    table: &'static str,
    index: u64,
    wait: Duration,
    read: impl Fn(&consensus::State) -> Option<(T, u64)>,
) -> (Option<T>, u64) {
    let subscribe = || node.reader().notifier().table(table);
    watch_state(node, subscribe, index, wait, |state| match read(state) {
        Some((value, at)) => (Some(value), at.max(1)),
        None => (None, 0),
    })
    .await
}

/// Adds `joiner` to the raft configuration (as a learner until it has caught up, then as a
/// voter), or asks the leader to; nothing to do if it already votes.
pub async fn add_voter(node: &RaftNode, joiner: Identity) -> Result<(), String> {
    let view = node.leader_view();
    if !view.is_leader {
        let leader = view
            .leader_addr
            .ok_or("no leader to add the server; retry")?;
        return crate::request_join(&joiner, &leader).await;
    }
    let raft = node.raft();
    let members = raft
        .metrics()
        .borrow()
        .membership_config
        .membership()
        .clone();
    if members.voter_ids().any(|id| id == joiner.raft_id) {
        return Ok(());
    }
    let new_node = ServerNode::new(
        joiner.rpc_addr.clone(),
        joiner.node_name.clone(),
        joiner.node_id.clone(),
    );
    raft.add_learner(joiner.raft_id, new_node, true)
        .await
        .map_err(|e| e.to_string())?;
    let mut voters: std::collections::BTreeSet<_> = members.voter_ids().collect();
    voters.insert(joiner.raft_id);
    raft.change_membership(voters, false)
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!(node = %joiner.node_name, addr = %joiner.rpc_addr, "server joined the raft configuration");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agents_may_ask_only_for_what_agents_need() {
        let catalog = Request::ClientWrite(Op::Catalog(catalog::CatalogOp::Deregister {
            node: "n".into(),
            service_id: None,
            check_id: None,
        }));
        let raft_write = Request::Write(Op::ReapTombstones { up_to_index: 1 });
        let acl_write = Request::ClientWrite(Op::Acl(Box::new(acl::AclOp::DeleteRole {
            id: String::new(),
        })));
        assert!(permitted(PeerRole::Agent, &catalog).is_ok());
        assert!(permitted(PeerRole::Agent, &Request::ResolveToken(String::new())).is_ok());
        assert!(permitted(PeerRole::Agent, &raft_write).is_err());
        assert!(permitted(PeerRole::Agent, &Request::Elect).is_err());
        assert!(permitted(PeerRole::Server, &raft_write).is_ok());
        // A client write is a catalog write, even from a server.
        assert!(permitted(PeerRole::Server, &acl_write).is_err());
        assert!(permitted(PeerRole::Agent, &acl_write).is_err());
        assert!(permitted(PeerRole::Anonymous, &catalog).is_err());
    }
}
