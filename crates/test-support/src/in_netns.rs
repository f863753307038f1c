//! Reaching into a network namespace from the test process: sockets, HTTP, and any short
//! exchange (DNS, an echo), with processes started inside it by `ip netns exec`.
//!
//! A socket belongs to the namespace it was created in, whichever thread later uses it. So a
//! socket for another namespace is made by a fresh thread that `setns`es into it and ends, and
//! work that creates its own sockets (a DNS question, an application's listener) runs on a
//! dedicated thread inside the namespace with its own small runtime: no thread of the caller's
//! runtime ever changes namespace.
//!
//! Touches no namespace it is not given; `setns` needs CAP_SYS_ADMIN (root).

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use anyhow::Context as _;
use hyper::Uri;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpSocket, TcpStream};

/// Where `ip netns` keeps its named namespaces.
pub const NETNS_DIR: &str = "/var/run/netns";

/// A network namespace: this process's own, or one named by `ip netns`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Netns(Option<Arc<str>>);

impl Netns {
    /// This process's namespace: everything below then works as it would without namespaces.
    pub fn own() -> Netns {
        Netns(None)
    }

    /// The namespace `ip netns add <name>` made.
    pub fn named(name: &str) -> Netns {
        Netns(Some(name.into()))
    }

    /// Its name, unless it is this process's own.
    pub fn name(&self) -> Option<&str> {
        self.0.as_deref()
    }

    /// Its file (`/var/run/netns/<name>`), unless it is this process's own.
    pub fn path(&self) -> Option<PathBuf> {
        self.name().map(|name| Path::new(NETNS_DIR).join(name))
    }

    /// `program` to run inside it: `ip netns exec <name> <program>`, which switches namespace
    /// and execs `program` in place (so the child's PID is `program`'s), or `program` itself.
    pub fn command(&self, program: &Path) -> std::process::Command {
        match self.name() {
            Some(name) => {
                let mut cmd = std::process::Command::new("ip");
                cmd.args(["netns", "exec", name]).arg(program);
                cmd
            }
            None => std::process::Command::new(program),
        }
    }

    /// A TCP connection to `addr` as seen from inside the namespace, bounded by `limit`.
    pub async fn connect(&self, addr: SocketAddr, limit: Duration) -> std::io::Result<TcpStream> {
        let socket = match self.path() {
            Some(path) => tcp_socket_in(path).await?,
            None if addr.is_ipv4() => TcpSocket::new_v4()?,
            None => TcpSocket::new_v6()?,
        };
        let stream = tokio::time::timeout(limit, socket.connect(addr))
            .await
            .map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("connecting to {addr} took over {limit:?}"),
                )
            })??;
        stream.set_nodelay(true)?;
        Ok(stream)
    }

    /// Runs `work` (which opens its own sockets: a DNS question, an echo exchange) to its end
    /// inside the namespace, on a dedicated thread with its own runtime; in this process's
    /// namespace, simply awaits it. `work` must be bounded: dropping the returned future does
    /// not stop it.
    pub async fn run<F, Fut, T>(&self, work: F) -> anyhow::Result<T>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = anyhow::Result<T>>,
        T: Send + 'static,
    {
        let Some(path) = self.path() else {
            return work().await;
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("netns-run".into())
            .spawn(move || {
                let done = enter(&path).and_then(|()| {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()?;
                    runtime.block_on(work())
                });
                let _ = tx.send(done);
            })?;
        rx.await.context("the namespace thread died")?
    }

    /// Starts `start` (an application: listeners and the tasks serving them) on a dedicated
    /// thread inside the namespace, with its own runtime, which keeps serving until the
    /// returned [`Served`] drops. In this process's namespace too, so that both behave alike.
    pub async fn serve<F, Fut, T>(&self, start: F) -> anyhow::Result<Served<T>>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = anyhow::Result<T>>,
        T: Send + 'static,
    {
        let path = self.path();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("netns-serve".into())
            .spawn(move || {
                let runtime = path.as_deref().map_or(Ok(()), enter).and_then(|()| {
                    Ok(tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()?)
                });
                let runtime = match runtime {
                    Ok(runtime) => runtime,
                    Err(err) => {
                        let _ = tx.send(Err(err));
                        return;
                    }
                };
                runtime.block_on(async {
                    let started = start().await;
                    let ok = started.is_ok();
                    let _ = tx.send(started);
                    if ok {
                        // Serves until the `Served` drops (or is forgotten: then until exit).
                        let _ = stopped.await;
                    }
                });
                // The runtime drops here, and with it every task the application spawned.
            })?;
        let value = rx.await.context("the serving thread died")??;
        Ok(Served {
            value,
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

/// What [`Netns::serve`] started; it stops serving, and its thread ends, when this drops.
#[derive(Debug)]
pub struct Served<T> {
    value: T,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl<T> std::ops::Deref for Served<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T> Drop for Served<T> {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Switches the calling thread into the namespace at `path`.
fn enter(path: &Path) -> anyhow::Result<()> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
        .with_context(|| format!("entering {}", path.display()))
}

/// A TCP (IPv4) socket created inside the network namespace at `netns` (a `/var/run/netns/`
/// file, or `/proc/<pid>/ns/net`), by a fresh thread that switches namespace and ends.
pub async fn tcp_socket_in(netns: PathBuf) -> std::io::Result<TcpSocket> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("netns-socket".into())
        .spawn(move || {
            let made = std::fs::File::open(&netns)
                .and_then(|ns| {
                    nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)
                        .map_err(std::io::Error::from)
                })
                .map_err(|e| {
                    std::io::Error::new(e.kind(), format!("entering {}: {e}", netns.display()))
                })
                .and_then(|()| TcpSocket::new_v4());
            let _ = tx.send(made);
        })?;
    rx.await
        .map_err(|_| std::io::Error::other("the namespace thread died"))?
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Opens TCP connections for hyper, in this process's namespace or in the one at a path.
#[derive(Debug, Clone)]
pub struct Connector(Connect);

#[derive(Debug, Clone)]
enum Connect {
    Direct(HttpConnector),
    InNamespace {
        netns: Arc<PathBuf>,
        timeout: Duration,
    },
}

impl Connector {
    /// Connections in `netns` (`None`: this process's namespace), each bounded by `timeout`.
    pub fn new(netns: Option<PathBuf>, timeout: Duration) -> Connector {
        Connector(match netns {
            None => {
                let mut http = HttpConnector::new();
                http.set_nodelay(true);
                http.set_connect_timeout(Some(timeout));
                Connect::Direct(http)
            }
            Some(netns) => Connect::InNamespace {
                netns: Arc::new(netns),
                timeout,
            },
        })
    }
}

impl tower::Service<Uri> for Connector {
    type Response = TokioIo<TcpStream>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        match &mut self.0 {
            Connect::Direct(http) => http.poll_ready(cx).map_err(Into::into),
            Connect::InNamespace { .. } => Poll::Ready(Ok(())),
        }
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        match &mut self.0 {
            Connect::Direct(http) => {
                let connecting = http.call(uri);
                Box::pin(async move { connecting.await.map_err(Into::into) })
            }
            Connect::InNamespace { netns, timeout } => {
                let (netns, timeout) = (netns.clone(), *timeout);
                Box::pin(async move {
                    let addr: SocketAddr = uri
                        .authority()
                        .map(|a| a.as_str())
                        .unwrap_or_default()
                        .parse()
                        .map_err(|e| format!("{uri} has no IP:port authority: {e}"))?;
                    let socket = tcp_socket_in(netns.as_ref().clone()).await?;
                    let stream = tokio::time::timeout(timeout, socket.connect(addr))
                        .await
                        .map_err(|_| format!("connecting to {addr} took over {timeout:?}"))??;
                    stream.set_nodelay(true)?;
                    Ok(TokioIo::new(stream))
                })
            }
        }
    }
}

/// A keep-alive HTTP/1.1 client for one address inside a namespace: [`crate::Http`] for an
/// API listening on 127.0.0.1 of another namespace.
pub type NetnsHttp = crate::Http<Connector>;

impl NetnsHttp {
    /// `addr` as seen from inside `netns`.
    pub fn in_netns(netns: &Netns, addr: SocketAddr) -> NetnsHttp {
        crate::Http::with_connector(addr, Connector::new(netns.path(), Duration::from_secs(5)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `/proc/self/ns/net` is this process's own namespace: entering it changes nothing, which
    /// exercises the thread-and-setns path anywhere (setns needs CAP_SYS_ADMIN, so this only
    /// checks the outcome where it is allowed).
    #[tokio::test]
    async fn a_socket_from_this_process_namespace_connects() -> anyhow::Result<()> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        match tcp_socket_in(PathBuf::from("/proc/self/ns/net")).await {
            Ok(socket) => {
                let (connected, accepted) = tokio::join!(socket.connect(addr), listener.accept());
                assert_eq!(connected?.peer_addr()?, addr);
                accepted?;
            }
            Err(err) => assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied, "{err}"),
        }
        Ok(())
    }

    #[tokio::test]
    async fn a_namespace_that_cannot_be_entered_fails_the_work() {
        let ns = Netns::named("mesh-test-no-such-namespace");
        let ran = ns.run(|| async { Ok(()) }).await;
        assert!(ran.is_err());
        assert!(ns.serve(|| async { Ok(()) }).await.is_err());
        assert!(ns
            .connect(
                SocketAddr::from(([127, 0, 0, 1], 9)),
                Duration::from_secs(1)
            )
            .await
            .is_err());
    }

    #[tokio::test]
    async fn served_work_runs_until_dropped() -> anyhow::Result<()> {
        let served = Netns::own()
            .serve(|| async {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
                let addr = listener.local_addr()?;
                tokio::spawn(async move { while listener.accept().await.is_ok() {} });
                Ok(addr)
            })
            .await?;
        let addr = *served;
        Netns::own().connect(addr, Duration::from_secs(5)).await?;
        drop(served);
        assert!(tokio::net::TcpStream::connect(addr).await.is_err());
        Ok(())
    }

    #[test]
    fn commands_run_through_ip_netns_exec() {
        let cmd = Netns::named("lab-h0").command(Path::new("/bin/true"));
        assert_eq!(cmd.get_program(), "ip");
        let args: Vec<_> = cmd.get_args().collect();
        assert_eq!(args, ["netns", "exec", "lab-h0", "/bin/true"]);
        assert_eq!(
            Netns::own().command(Path::new("/bin/true")).get_program(),
            "/bin/true"
        );
    }
}
