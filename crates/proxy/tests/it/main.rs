//! The proxy's listeners on real loopback sockets, in one test binary: mTLS round trips,
//! authorization, identity checks, root rotation with hot reload, failover and drain, and
//! HTTP (L7) proxying.

mod drain;
mod failover;
mod l7;
mod mtls;
mod rotation;
mod support;
