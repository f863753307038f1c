//! Where the datacenter runs, and how the run reaches into it.
//!
//! Namespaces (the default): one network namespace per host of a [`Lab`] (`server-1`..
//! `server-3`, `client-1`..`client-3`, on 192.0.2.10–.15 behind one bridge), each agent
//! gossiping and serving RPC on its host's address, with its HTTP API (8500) and DNS (8600) on
//! 127.0.0.1 inside the namespace, as on a machine of its own. db's application and sidecar
//! run on client-1, web's (and its upstream listener for db, 127.0.0.1:9191) on client-2:
//! the applications and the sidecars' public listeners (port 21000) on their host's address.
//!
//! Loopback (`--loopback`, or where namespaces cannot be made): 127.0.9.0/24 of this
//! namespace, servers on `.1`–`.3`, client agents on `.11`–`.13`, db's application on `.21`
//! and its sidecar on `.22`, web's application on `.23`, its sidecar on `.24` and its
//! upstream listener on `.25`, all on free ports.
//!
//! Either way the run reaches every socket through an [`Endpoint`]: an address as seen from
//! inside a namespace (this process's own, on loopback).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use hickory_proto::op::Message;
use test_support::in_netns::{Netns, NetnsHttp};
use test_support::netns::{Lab, NsServer, HTTP_PORT};
use test_support::sidecar::{echo_once, SidecarProcess};
use test_support::{free_port_on, ServerProcess};

use crate::checks::{CLIENTS, SERVERS};

/// The hosts, in the lab's order: host `i` is on 192.0.2.`10+i`.
const HOSTS: [&str; 6] = [
    "server-1", "server-2", "server-3", "client-1", "client-2", "client-3",
];
/// Inside the namespaces, each host has its own ports: the same everywhere.
const SIDECAR_PORT: u16 = 21000;
const UPSTREAM_PORT: u16 = 9191;
const METRICS_PORT: u16 = 9102;

/// The two networks the story runs on.
#[derive(Debug)]
pub(crate) enum Layout {
    Namespaces(Lab),
    Loopback,
}

fn loopback(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 9, n)
}

/// An address as seen from inside a namespace.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    pub(crate) netns: Netns,
    pub(crate) addr: SocketAddr,
}

impl Endpoint {
    pub(crate) fn http(&self) -> NetnsHttp {
        NetnsHttp::in_netns(&self.netns, self.addr)
    }

    /// One exchange with an echo path (`test_support::sidecar::echo_once`) from inside the
    /// namespace: the name of the application that answered.
    pub(crate) async fn echo_once(&self, line: &str) -> anyhow::Result<String> {
        let (addr, line) = (self.addr, line.to_owned());
        self.netns
            .run(move || async move { echo_once(addr, &line).await })
            .await
    }

    /// One DNS question over UDP, from inside the namespace.
    pub(crate) async fn dns_udp(&self, query: Message) -> anyhow::Result<Message> {
        let addr = self.addr;
        self.netns
            .run(move || async move { test_support::dns::udp(addr, &query).await })
            .await
    }

    /// One DNS question over TCP, from inside the namespace.
    pub(crate) async fn dns_tcp(&self, query: Message) -> anyhow::Result<Message> {
        let addr = self.addr;
        self.netns
            .run(move || async move { test_support::dns::tcp(addr, &query).await })
            .await
    }
}

/// Where one application runs: on a client agent's host, with its sidecar.
#[derive(Debug, Clone)]
pub(crate) struct AppHost {
    pub(crate) netns: Netns,
    /// The address the application listens on and is registered at.
    pub(crate) ip: Ipv4Addr,
    /// Its sidecar's public listener.
    pub(crate) public: SocketAddr,
}

impl Layout {
    /// Network namespaces when they can be made here, else loopback with one line saying why.
    pub(crate) fn choose(loopback: bool) -> anyhow::Result<Layout> {
        if loopback {
            return Ok(Layout::Loopback);
        }
        match Lab::with_hosts(&HOSTS) {
            Ok(lab) => Ok(Layout::Namespaces(lab)),
            Err(err) => match err.downcast_ref::<test_support::netns::Unavailable>() {
                Some(why) => {
                    println!(
                        "network namespaces unavailable ({why}): running on 127.0.9.0/24 of \
                         this host instead"
                    );
                    Ok(Layout::Loopback)
                }
                None => Err(err.context("creating the network namespaces")),
            },
        }
    }

    /// One line for the run's header.
    pub(crate) fn describe(&self) -> String {
        match self {
            Layout::Namespaces(lab) => format!(
                "a network namespace per host ({} ... {}) on 192.0.2.0/24",
                lab.host(0),
                lab.host(HOSTS.len() - 1)
            ),
            Layout::Loopback => "processes on 127.0.9.0/24".to_owned(),
        }
    }

    /// Server `n` (0-based), not started yet, named `server-<n+1>`.
    pub(crate) fn server(&self, n: usize, work: &Path) -> anyhow::Result<Agent> {
        let name = SERVERS[n];
        let mut agent = match self {
            Layout::Namespaces(lab) => {
                Agent::Namespace(NsServer::new(lab, host(name), &work.join(name), Vec::new()))
            }
            Layout::Loopback => Agent::Loopback(ServerProcess::new(
                loopback(1 + n as u8),
                &work.join(name),
                Vec::new(),
            )?),
        };
        agent.set_node_name(name);
        Ok(agent)
    }

    /// Client agent `n` (0-based), joining through `join`, not started yet.
    pub(crate) fn client(&self, n: usize, work: &Path, join: &[String]) -> anyhow::Result<Agent> {
        let name = CLIENTS[n];
        let mut agent = match self {
            Layout::Namespaces(lab) => {
                Agent::Namespace(NsServer::client(lab, host(name), &work.join(name), join))
            }
            Layout::Loopback => Agent::Loopback(ServerProcess::client(
                loopback(11 + n as u8),
                &work.join(name),
                join,
            )?),
        };
        agent.set_node_name(name);
        Ok(agent)
    }

    /// Where db's (`first = 21`) or web's (`first = 23`) application runs: on client-1 or
    /// client-2 respectively.
    pub(crate) fn app(&self, client: usize, first: u8) -> anyhow::Result<AppHost> {
        match self {
            Layout::Namespaces(lab) => {
                let i = host(CLIENTS[client]);
                Ok(AppHost {
                    netns: Netns::named(lab.host(i)),
                    ip: Lab::host_ip(i),
                    public: SocketAddr::from((Lab::host_ip(i), SIDECAR_PORT)),
                })
            }
            Layout::Loopback => Ok(AppHost {
                netns: Netns::own(),
                ip: loopback(first),
                public: SocketAddr::from((loopback(first + 1), free_port_on(loopback(first + 1))?)),
            }),
        }
    }

    /// web's upstream listener for db, on `web`'s host.
    pub(crate) fn upstream(&self, web: &AppHost) -> anyhow::Result<Endpoint> {
        let addr = match self {
            Layout::Namespaces(_) => SocketAddr::from((Ipv4Addr::LOCALHOST, UPSTREAM_PORT)),
            Layout::Loopback => SocketAddr::from((loopback(25), free_port_on(loopback(25))?)),
        };
        Ok(Endpoint {
            netns: web.netns.clone(),
            addr,
        })
    }

    /// Starts `mesh-sidecar -sidecar-for <service>` on `app`'s host, against `agent`.
    pub(crate) fn sidecar(
        &self,
        service: &str,
        app: &AppHost,
        agent: &Agent,
        work: &Path,
    ) -> anyhow::Result<Sidecar> {
        match (self, app.netns.name()) {
            (Layout::Namespaces(_), Some(namespace)) => {
                let local = |port| SocketAddr::from((Ipv4Addr::LOCALHOST, port));
                let process = SidecarProcess::sidecar_for_in(
                    Netns::named(namespace),
                    service,
                    &local(HTTP_PORT).to_string(),
                    local(METRICS_PORT),
                    work,
                )?;
                let metrics = Endpoint {
                    netns: process.netns().clone(),
                    addr: process.metrics,
                };
                Ok(Sidecar {
                    _process: process,
                    metrics,
                })
            }
            _ => {
                let std::net::IpAddr::V4(ip) = app.public.ip() else {
                    anyhow::bail!("{service}'s sidecar is not on IPv4: {}", app.public);
                };
                let process =
                    SidecarProcess::sidecar_for(service, &agent.cli_addr().http, ip, work)?;
                let metrics = Endpoint {
                    netns: Netns::own(),
                    addr: process.metrics,
                };
                Ok(Sidecar {
                    _process: process,
                    metrics,
                })
            }
        }
    }
}

/// The lab's index of host `name`.
fn host(name: &str) -> usize {
    HOSTS
        .iter()
        .position(|h| *h == name)
        .expect("every server and client is one of HOSTS")
}

/// A `mesh-server` or `mesh-client agent`, in its namespace or on loopback.
#[derive(Debug)]
pub(crate) enum Agent {
    Loopback(ServerProcess),
    Namespace(NsServer),
}

/// How `mesh-client` reaches an agent: from inside its namespace, at `-http-addr <http>`.
#[derive(Debug, Clone)]
pub(crate) struct CliAddr {
    pub(crate) netns: Netns,
    pub(crate) http: String,
}

impl Agent {
    fn set_node_name(&mut self, name: &str) {
        match self {
            Agent::Loopback(p) => p.set_node_name(name),
            Agent::Namespace(p) => p.set_node_name(name),
        }
    }

    pub(crate) fn push_args(&mut self, args: &[&str]) {
        match self {
            Agent::Loopback(p) => p.push_args(args.iter().copied()),
            Agent::Namespace(p) => p.push_args(args.iter().copied()),
        }
    }

    pub(crate) fn spawn(&mut self) -> anyhow::Result<()> {
        match self {
            Agent::Loopback(p) => p.spawn(),
            Agent::Namespace(p) => p.spawn(),
        }
    }

    /// SIGKILL, by PID.
    pub(crate) fn kill9(&mut self) -> anyhow::Result<()> {
        match self {
            Agent::Loopback(p) => p.kill9(),
            Agent::Namespace(p) => p.kill9(),
        }
    }

    pub(crate) fn has_exited(&mut self) -> anyhow::Result<bool> {
        match self {
            Agent::Loopback(p) => p.has_exited(),
            Agent::Namespace(p) => p.has_exited(),
        }
    }

    pub(crate) fn rpc_addr(&self) -> String {
        match self {
            Agent::Loopback(p) => p.rpc_addr(),
            Agent::Namespace(p) => p.rpc_addr(),
        }
    }

    pub(crate) fn gossip_addr(&self) -> String {
        match self {
            Agent::Loopback(p) => p.gossip_addr(),
            Agent::Namespace(p) => p.gossip_addr(),
        }
    }

    /// Its HTTP API, from this process.
    pub(crate) fn http(&self) -> NetnsHttp {
        match self {
            Agent::Loopback(p) => NetnsHttp::in_netns(&Netns::own(), addr(&p.http_addr())),
            Agent::Namespace(p) => p.api(),
        }
    }

    pub(crate) fn cli_addr(&self) -> CliAddr {
        match self {
            Agent::Loopback(p) => CliAddr {
                netns: Netns::own(),
                http: p.http_addr(),
            },
            Agent::Namespace(p) => CliAddr {
                netns: p.netns(),
                http: p.http_addr(),
            },
        }
    }

    /// Where it answers DNS (UDP and TCP).
    pub(crate) fn dns(&self) -> Endpoint {
        match self {
            Agent::Loopback(p) => Endpoint {
                netns: Netns::own(),
                addr: p.dns_addr(),
            },
            Agent::Namespace(p) => Endpoint {
                netns: p.netns(),
                addr: p.dns_addr(),
            },
        }
    }
}

/// `ip:port` as the process types print it.
fn addr(text: &str) -> SocketAddr {
    text.parse()
        .expect("test_support prints socket addresses as ip:port")
}

/// A sidecar process, killed by PID when dropped, and where its metrics are.
#[derive(Debug)]
pub(crate) struct Sidecar {
    /// Held only to be killed when dropped.
    _process: SidecarProcess,
    metrics: Endpoint,
}

impl Sidecar {
    /// The value of one sample of `/metrics` (`name{labels}` as printed), if present.
    pub(crate) async fn metric(&self, series: &str) -> Option<u64> {
        let reply =
            tokio::time::timeout(Duration::from_secs(10), self.metrics.http().get("/metrics"))
                .await
                .ok()?
                .ok()?;
        reply
            .body
            .lines()
            .filter(|line| !line.starts_with('#'))
            .find_map(|line| {
                let (name, value) = line.rsplit_once(' ')?;
                (name == series).then(|| value.parse().ok())?
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_keeps_the_127_0_9_plan() -> anyhow::Result<()> {
        let layout = Layout::Loopback;
        let (db, web) = (layout.app(0, 21)?, layout.app(1, 23)?);
        assert_eq!((db.ip, db.public.ip()), (loopback(21), loopback(22).into()));
        assert_eq!(
            (web.ip, web.public.ip()),
            (loopback(23), loopback(24).into())
        );
        let upstream = layout.upstream(&web)?;
        assert_eq!(upstream.addr.ip(), loopback(25));
        assert_eq!(upstream.netns, Netns::own());
        Ok(())
    }

    #[test]
    fn every_agent_has_a_host() {
        for name in SERVERS.iter().chain(&CLIENTS) {
            assert_eq!(HOSTS[host(name)], *name);
        }
    }
}
