//! Integration tests over real `mesh-server` processes on loopback.

mod cluster;
mod config_errors;
mod durability;
mod http_over_socket;
mod sessions;
mod snapshot;
