//! The proxy's listeners on real loopback sockets, in one test binary: mTLS round trips,
//! authorization, identity checks, root rotation with hot reload, failover and drain.

mod drain;
mod failover;
mod mtls;
mod rotation;
mod support;
