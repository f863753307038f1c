//! Load generation and process measurement for `cargo xtask bench`.
//!
//! The `mesh-bench` binary starts the systems under test (ours and a peer such as etcd or
//! serf) as child processes, drives them from one single-threaded tokio runtime so the generator leaves the
//! server a core, and measures each server's CPU time per operation and RSS from `/proc`, as
//! `docs/architecture.md` and the design brief ask ("Measuring speed on these machines").
//!
//! This crate is a tool: it is never a dependency of the product binaries, and the product
//! crates never depend on it. It talks to the systems only over their public HTTP APIs.

pub mod ca;
pub mod catalog;
pub mod child;
pub mod dns;
pub mod gossip;
pub mod kv;
pub mod load;
pub mod machine;
pub mod proc;
pub mod procfs;
pub mod proxy;
pub mod report;
pub mod stats;
pub mod target;
pub mod watch;
