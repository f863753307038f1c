//! The calling side: openraft's network over server RPC, and forwarding to the leader.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use consensus::ServerNode;
use consensus::{ConsensusError, Forward, NodeId, Op, TypeConfig, Written};
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use tokio::net::TcpStream;

use crate::message::{Request, Response, SnapshotFailure};
use crate::tls::Stream;
use crate::{frame, RpcError};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Forwarded writes wait for a raft commit on the leader, which may be holding for an election.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(15);

/// Opens a server RPC connection: TLS when the process installed a dialer
/// ([`crate::tls::install_dialer`]), else plaintext TCP.
pub async fn connect(addr: &str) -> Result<Stream, RpcError> {
    let connect = TcpStream::connect(addr);
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, connect)
        .await
        .map_err(|_| RpcError::Connect {
            addr: addr.to_owned(),
            source: std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"),
        })?
        .map_err(|source| RpcError::Connect {
            addr: addr.to_owned(),
            source,
        })?;
    stream
        .set_nodelay(true)
        .map_err(|source| RpcError::Connect {
            addr: addr.to_owned(),
            source,
        })?;
    match crate::tls::dialer() {
        // Nothing was sent when the handshake fails, so it counts as not connecting.
        Some(dialer) => dialer
            .handshake(stream)
            .await
            .map_err(|source| RpcError::Connect {
                addr: addr.to_owned(),
                source,
            }),
        None => Ok(Stream::Plain(stream)),
    }
}

async fn exchange(
    stream: &mut Stream,
    addr: &str,
    req: &Request,
    timeout: Duration,
) -> Result<Response, RpcError> {
    let io = |source| RpcError::Io {
        addr: addr.to_owned(),
        source,
    };
    let round_trip = async {
        frame::write(stream, req).await.map_err(io)?;
        frame::read::<_, Response>(stream)
            .await
            .map_err(io)?
            .ok_or_else(|| io(std::io::Error::from(std::io::ErrorKind::UnexpectedEof)))
    };
    tokio::time::timeout(timeout, round_trip)
        .await
        .map_err(|_| {
            io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "no answer in time",
            ))
        })?
}

/// One request on a fresh connection.
pub async fn call(addr: &str, req: &Request, timeout: Duration) -> Result<Response, RpcError> {
    let mut stream = connect(addr).await?;
    exchange(&mut stream, addr, req, timeout).await
}

/// Most idle connections kept per peer address.
const MAX_IDLE_PER_PEER: usize = 16;

/// Idle server RPC connections by peer address. openraft creates a network client for every
/// leadership confirmation (each linearizable read), so connections are taken from and given
/// back to this pool instead of being opened per request.
#[derive(Debug, Clone, Default)]
pub struct ConnectionPool {
    idle: Arc<Mutex<HashMap<String, Vec<Stream>>>>,
    /// When each peer last answered a request, for autopilot's health view.
    answered: Arc<Mutex<HashMap<String, std::time::Instant>>>,
}

impl ConnectionPool {
    pub fn new() -> Self {
        Self::default()
    }

    /// An idle connection to `addr` if one is kept (and whether it was), else a new one.
    async fn take(&self, addr: &str) -> Result<(Stream, bool), RpcError> {
        let pooled = self
            .idle
            .lock()
            .expect("connection pool poisoned")
            .get_mut(addr)
            .and_then(Vec::pop);
        match pooled {
            Some(stream) => Ok((stream, true)),
            None => connect(addr).await.map(|s| (s, false)),
        }
    }

    fn give_back(&self, addr: &str, stream: Stream) {
        let mut idle = self.idle.lock().expect("connection pool poisoned");
        let conns = idle.entry(addr.to_owned()).or_default();
        if conns.len() < MAX_IDLE_PER_PEER {
            conns.push(stream);
        }
    }

    /// One idempotent request over a pooled connection; a pooled connection that turns out to
    /// be dead (the peer restarted) is replaced by a fresh one once.
    pub async fn request(
        &self,
        addr: &str,
        req: &Request,
        timeout: Duration,
    ) -> Result<Response, RpcError> {
        let (mut stream, pooled) = self.take(addr).await?;
        let resp = match exchange(&mut stream, addr, req, timeout).await {
            Err(_) if pooled => {
                stream = connect(addr).await?;
                exchange(&mut stream, addr, req, timeout).await?
            }
            other => other?,
        };
        self.give_back(addr, stream);
        self.answered
            .lock()
            .expect("connection pool poisoned")
            .insert(addr.to_owned(), std::time::Instant::now());
        Ok(resp)
    }

    /// How long ago `addr` last answered a request through this pool.
    pub fn since_last_answer(&self, addr: &str) -> Option<Duration> {
        self.answered
            .lock()
            .expect("connection pool poisoned")
            .get(addr)
            .map(std::time::Instant::elapsed)
    }
}

/// openraft's network factory over server RPC.
#[derive(Debug, Clone, Default)]
pub struct RaftTransport {
    pool: ConnectionPool,
}

impl RaftTransport {
    pub fn new(pool: ConnectionPool) -> Self {
        RaftTransport { pool }
    }
}

impl RaftNetworkFactory<TypeConfig> for RaftTransport {
    type Network = RaftPeer;

    async fn new_client(&mut self, target: NodeId, node: &ServerNode) -> RaftPeer {
        RaftPeer {
            target,
            addr: node.addr.clone(),
            pool: self.pool.clone(),
        }
    }
}

/// The raft RPC client for one peer; connections come from and return to the pool.
#[derive(Debug)]
pub struct RaftPeer {
    target: NodeId,
    addr: String,
    pool: ConnectionPool,
}

impl RaftPeer {
    async fn send<E: std::error::Error>(
        &mut self,
        req: Request,
        option: &RPCOption,
    ) -> Result<Response, RPCError<NodeId, ServerNode, E>> {
        // Raft RPCs are safe to resend, so the pool's one retry on a dead connection is fine.
        match self.pool.request(&self.addr, &req, option.hard_ttl()).await {
            Ok(resp) => Ok(resp),
            Err(err @ RpcError::Connect { .. }) => {
                Err(RPCError::Unreachable(Unreachable::new(&err)))
            }
            Err(err) => Err(RPCError::Network(NetworkError::new(&err))),
        }
    }

    fn remote<E: std::error::Error>(
        &self,
        err: E,
    ) -> RPCError<NodeId, ServerNode, RaftError<NodeId, E>> {
        RPCError::RemoteError(RemoteError::new(self.target, RaftError::APIError(err)))
    }

    fn failed<E: std::error::Error>(&self, why: String) -> RPCError<NodeId, ServerNode, E> {
        RPCError::Network(NetworkError::new(&RpcError::Remote(format!(
            "{}: {why}",
            self.addr
        ))))
    }

    fn unexpected<E: std::error::Error>(&self) -> RPCError<NodeId, ServerNode, E> {
        RPCError::Network(NetworkError::new(&RpcError::Unexpected {
            addr: self.addr.clone(),
        }))
    }
}

impl RaftNetwork<TypeConfig> for RaftPeer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, ServerNode, RaftError<NodeId>>>
    {
        match self.send(Request::AppendEntries(rpc), &option).await? {
            Response::AppendEntries(Ok(resp)) => Ok(resp),
            Response::AppendEntries(Err(why)) => Err(self.failed(why)),
            _ => Err(self.unexpected()),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, ServerNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        match self.send(Request::InstallSnapshot(rpc), &option).await? {
            Response::InstallSnapshot(Ok(resp)) => Ok(resp),
            Response::InstallSnapshot(Err(SnapshotFailure::Mismatch(err))) => Err(self.remote(err)),
            Response::InstallSnapshot(Err(SnapshotFailure::Other(why))) => Err(self.failed(why)),
            _ => Err(self.unexpected()),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, ServerNode, RaftError<NodeId>>> {
        match self.send(Request::Vote(rpc), &option).await? {
            Response::Vote(Ok(resp)) => Ok(resp),
            Response::Vote(Err(why)) => Err(self.failed(why)),
            _ => Err(self.unexpected()),
        }
    }
}

/// Forwards client writes and read barriers from a follower to the leader.
#[derive(Debug, Clone, Default)]
pub struct Forwarder {
    pool: ConnectionPool,
}

impl Forwarder {
    pub fn new(pool: ConnectionPool) -> Self {
        Forwarder { pool }
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

fn unreachable_leader(err: RpcError) -> ConsensusError {
    // The caller retries until its hold time is up, then reports Consul's "No cluster leader".
    tracing::debug!(%err, "forwarding to the leader failed");
    ConsensusError::NoLeader
}

impl Forward for Forwarder {
    fn write(&self, leader: String, op: Op) -> BoxFuture<Result<Written, ConsensusError>> {
        Box::pin(async move {
            // Not connected: the write was never sent, so it is safe to retry.
            let mut stream = connect(&leader).await.map_err(unreachable_leader)?;
            // Sent: from here on a failure leaves the outcome unknown, and retrying could apply
            // the write twice (a retried cas would then answer false for its own success).
            match exchange(&mut stream, &leader, &Request::Write(op), FORWARD_TIMEOUT).await {
                Ok(Response::Write(result)) => result,
                Ok(_) => Err(ConsensusError::Unknown(format!(
                    "{leader} answered with an unexpected message"
                ))),
                Err(err) => Err(ConsensusError::Unknown(err.to_string())),
            }
        })
    }

    fn read_index(&self, leader: String) -> BoxFuture<Result<u64, ConsensusError>> {
        let pool = self.pool.clone();
        Box::pin(async move {
            match pool
                .request(&leader, &Request::ReadIndex, FORWARD_TIMEOUT)
                .await
            {
                Ok(Response::ReadIndex(result)) => result,
                Ok(_) => Err(unreachable_leader(RpcError::Unexpected { addr: leader })),
                Err(err) => Err(unreachable_leader(err)),
            }
        })
    }

    fn remove_voter(&self, leader: String, id: NodeId) -> BoxFuture<Result<(), ConsensusError>> {
        let pool = self.pool.clone();
        Box::pin(async move {
            match pool
                .request(&leader, &Request::RemoveVoter(id), FORWARD_TIMEOUT)
                .await
            {
                Ok(Response::RemoveVoter(result)) => result,
                Ok(_) => Err(unreachable_leader(RpcError::Unexpected { addr: leader })),
                Err(err) => Err(unreachable_leader(err)),
            }
        })
    }

    fn transfer_leadership(
        &self,
        leader: String,
        to: Option<NodeId>,
    ) -> BoxFuture<Result<NodeId, ConsensusError>> {
        let pool = self.pool.clone();
        Box::pin(async move {
            match pool
                .request(&leader, &Request::TransferLeadership(to), FORWARD_TIMEOUT)
                .await
            {
                Ok(Response::TransferLeadership(result)) => result,
                Ok(_) => Err(unreachable_leader(RpcError::Unexpected { addr: leader })),
                Err(err) => Err(unreachable_leader(err)),
            }
        })
    }

    fn elect(&self, addr: String) -> BoxFuture<Result<(), ConsensusError>> {
        let pool = self.pool.clone();
        Box::pin(async move {
            match pool.request(&addr, &Request::Elect, FORWARD_TIMEOUT).await {
                Ok(Response::Elect(result)) => result,
                Ok(_) => Err(ConsensusError::Refused(format!(
                    "{addr} answered with an unexpected message"
                ))),
                Err(err) => Err(ConsensusError::Refused(format!(
                    "asking {addr} to stand for election: {err}"
                ))),
            }
        })
    }

    fn renew_session(&self, leader: String, id: String) -> BoxFuture<Result<bool, ConsensusError>> {
        let pool = self.pool.clone();
        Box::pin(async move {
            match pool
                .request(&leader, &Request::RenewSession(id), FORWARD_TIMEOUT)
                .await
            {
                Ok(Response::RenewSession(result)) => result,
                Ok(_) => Err(unreachable_leader(RpcError::Unexpected { addr: leader })),
                Err(err) => Err(unreachable_leader(err)),
            }
        })
    }
}
