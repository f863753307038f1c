//! The addresses of `bench proxy` (all in 127.0.6.0/24, every process on its own) and a
//! started system: where the application connects, and the proxy processes to measure.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use anyhow::bail;
use clap::ValueEnum;
use serde::Serialize;

use super::traffic;
use crate::child::Proc;

const fn addr(last: u8, port: u16) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(127, 0, 6, last), port))
}

/// The application (the bench process's backend).
pub const BACKEND: SocketAddr = addr(20, 8080);
/// The mesh-server in `-dev` mode that the sidecars ask for their configuration.
pub const MESH_SERVER_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 6, 10);
/// `echo`'s sidecar: its public (mTLS) listener.
pub const ECHO_SIDECAR: SocketAddr = addr(21, 21000);
/// `load`'s sidecar: its public listener (unused) and its upstream listener for `echo`, where
/// the load generator connects.
pub const LOAD_SIDECAR: SocketAddr = addr(22, 21000);
pub const LOAD_UPSTREAM: SocketAddr = addr(23, 9191);
/// `load`'s registered address; nothing listens there.
pub const LOAD_APP: SocketAddr = addr(24, 8080);
/// HAProxy A (plain TCP in, TLS out) and HAProxy B (TLS in, plain TCP to the backend).
pub const HAPROXY_CLIENT_SIDE: SocketAddr = addr(31, 9191);
pub const HAPROXY_SERVER_SIDE: SocketAddr = addr(32, 21000);

/// How long a started pair may take to forward its first request.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
const READY_POLL: Duration = Duration::from_millis(100);

/// The systems compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum System {
    /// The load generator connects to the backend.
    Direct,
    /// Two `mesh-sidecar`s, mTLS between them.
    Mesh,
    /// Two HAProxy processes, TLS 1.3 with client certificates between them.
    Haproxy,
}

impl std::fmt::Display for System {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            System::Direct => "direct",
            System::Mesh => "mesh",
            System::Haproxy => "haproxy",
        })
    }
}

/// A started system. Its processes are killed by PID when it drops, before its directory goes.
#[derive(Debug)]
pub struct Pair {
    pub system: System,
    /// Where the application connects.
    pub entry: SocketAddr,
    /// The client-side proxy, then the server-side one; none for [`System::Direct`].
    pub proxies: Vec<Proc>,
    /// The agent the sidecars were configured by, measured alongside.
    pub agent_pid: Option<u32>,
    /// The configuration and logs; removed after the processes are gone.
    pub _dir: Option<tempfile::TempDir>,
}

impl Pair {
    pub fn direct() -> Pair {
        Pair {
            system: System::Direct,
            entry: BACKEND,
            proxies: Vec::new(),
            agent_pid: None,
            _dir: None,
        }
    }

    pub fn ensure_running(&mut self) -> anyhow::Result<()> {
        self.proxies.iter_mut().try_for_each(Proc::ensure_running)
    }

    /// Polls until one request through the pair is answered, either proxy exits, or
    /// [`READY_TIMEOUT`] passes.
    pub async fn wait_ready(&mut self) -> anyhow::Result<Duration> {
        let started = Instant::now();
        loop {
            self.ensure_running()?;
            let last = match traffic::connect_and_request(self.entry).await {
                Ok(_) => return Ok(started.elapsed()),
                Err(e) => e,
            };
            if started.elapsed() > READY_TIMEOUT {
                let tails: Vec<String> = self
                    .proxies
                    .iter()
                    .map(|p| format!("{} (pid {}) log tail:\n{}", p.name, p.pid, p.log_tail(20)))
                    .collect();
                bail!(
                    "no request through {} was answered within {READY_TIMEOUT:?} (last: {last})\n{}",
                    self.entry,
                    tails.join("\n")
                );
            }
            tokio::time::sleep(READY_POLL).await;
        }
    }
}
