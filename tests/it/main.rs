//! Integration tests over real `mesh-server` processes on loopback.

mod acl;
mod catalog;
mod cli;
mod cluster;
mod config_errors;
mod connect;
mod dns;
mod durability;
mod e2e;
mod events;
mod faults;
mod gossip;
mod http_over_socket;
mod jepsen;
mod partition;
mod recovery;
mod sessions;
mod sidecar;
mod snapshot;
mod tls;
