//! Bringing a server into a datacenter's raft configuration: asking who answers at an address,
//! and asking the leader to add this server.

use std::time::Duration;

use crate::message::{Identity, Request, Response};
use crate::{call, RpcError};

const IDENTIFY_TIMEOUT: Duration = Duration::from_secs(5);
/// Long enough for a new server to catch up as a learner.
pub(crate) const JOIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Who answers at `addr`.
pub async fn identify(addr: &str) -> Result<Identity, RpcError> {
    match call(addr, &Request::Identify, IDENTIFY_TIMEOUT).await? {
        Response::Identity(identity) => Ok(identity),
        _ => Err(RpcError::Unexpected {
            addr: addr.to_owned(),
        }),
    }
}

/// Asks the datacenter `via` belongs to (its leader) to add `me` as a voter.
pub async fn request_join(me: &Identity, via: &str) -> Result<(), String> {
    match call(via, &Request::Join(me.clone()), JOIN_TIMEOUT).await {
        Ok(Response::Join(result)) => result,
        Ok(_) => Err(format!("{via} answered a join with an unexpected message")),
        Err(err) => Err(err.to_string()),
    }
}

/// The server RPC port Consul uses.
pub const DEFAULT_RPC_PORT: u16 = 8300;

/// `ip`, `ip:port`, `host` or `host:port`; an address without a port gets the server RPC port.
pub fn with_default_port(addr: &str) -> String {
    if addr.parse::<std::net::SocketAddr>().is_ok() {
        return addr.to_owned();
    }
    if let Ok(ip) = addr.parse::<std::net::IpAddr>() {
        return std::net::SocketAddr::new(ip, DEFAULT_RPC_PORT).to_string();
    }
    if addr.contains(':') {
        addr.to_owned()
    } else {
        format!("{addr}:{DEFAULT_RPC_PORT}")
    }
}

#[cfg(test)]
mod tests {
    use super::with_default_port;

    #[test]
    fn addresses_get_the_rpc_port_when_they_have_none() {
        for (given, expected) in [
            ("10.0.0.2", "10.0.0.2:8300"),
            ("10.0.0.2:9300", "10.0.0.2:9300"),
            ("::1", "[::1]:8300"),
            ("[::1]:9300", "[::1]:9300"),
            ("server-1", "server-1:8300"),
            ("server-1:9300", "server-1:9300"),
        ] {
            assert_eq!(with_default_port(given), expected, "{given}");
        }
    }
}
