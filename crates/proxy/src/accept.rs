//! The accept loop both listeners share: one task per connection, tracked so that a drain can
//! wait for them and cut what is left after the grace period.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use crate::drain::{Drained, Watch};

/// Pause after an accept error that is not about one connection (out of file descriptors), so
/// the loop does not spin while the condition lasts.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

pub(crate) async fn accept_loop<H, F>(
    listener: TcpListener,
    drain: Watch,
    grace: Duration,
    mut handle: H,
) -> Drained
where
    H: FnMut(TcpStream, SocketAddr) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    let mut connections = JoinSet::new();
    let signaled = drain.signaled();
    tokio::pin!(signaled);
    loop {
        tokio::select! {
            biased;
            () = &mut signaled => break,
            Some(done) = connections.join_next(), if !connections.is_empty() => {
                if let Err(e) = done {
                    if e.is_panic() {
                        warn!(error = %e, "a connection task panicked");
                    }
                }
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    connections.spawn(handle(stream, peer));
                }
                Err(e) if is_per_connection(&e) => debug!(error = %e, "accept failed"),
                Err(e) => {
                    warn!(error = %e, "accept failed; pausing");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                }
            },
        }
    }
    let addr = listener.local_addr().ok();
    drop(listener);
    if !connections.is_empty() {
        info!(
            ?addr,
            open = connections.len(),
            ?grace,
            "draining connections"
        );
    }
    let finished = tokio::time::timeout(grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    let cut = connections.len();
    if finished.is_err() && cut > 0 {
        warn!(
            ?addr,
            cut, "grace period over; closing the remaining connections"
        );
    }
    connections.shutdown().await;
    Drained { cut }
}

fn is_per_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}
