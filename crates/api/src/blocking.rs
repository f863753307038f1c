//! Reads with Consul's consistency modes and blocking-query semantics.
//!
//! A blocking read subscribes to the exact topic its result depends on before it reads, then
//! waits for that topic to move or for its deadline. It returns as soon as the result's index
//! differs from the client's: larger means news, smaller means the state was reset (a restore)
//! and the client must start over. Unlike Consul, unrelated writes never wake it.

use std::time::Duration;

use consensus::{State, Subscription};
use rand::Rng;

use crate::error::ApiError;
use crate::params::{Consistency, ReadOptions};
use crate::render::QueryMeta;
use crate::Ctx;

/// What a query's result depends on.
#[derive(Debug, Clone)]
pub enum Watch<'a> {
    Key(&'a str),
    Prefix(&'a str),
    Sessions,
    /// A catalog index (see [`catalog::topic`]).
    Catalog(&'a str),
    /// A whole table ([`consensus::TABLE_CA`], [`consensus::TABLE_INTENTIONS`],
    /// [`consensus::TABLE_CONFIG_ENTRIES`]).
    Table(&'static str),
}

impl Watch<'_> {
    fn subscribe(&self, ctx: &Ctx) -> Subscription {
        let notifier = ctx.node.reader().notifier();
        match self {
            Watch::Key(k) => notifier.key(k),
            Watch::Prefix(p) => notifier.prefix(p),
            Watch::Sessions => notifier.sessions(),
            Watch::Catalog(topic) => notifier.catalog(topic),
            Watch::Table(table) => notifier.table(table),
        }
    }
}

/// Makes a read of the local state as fresh as the consistency mode promises.
pub async fn barrier(ctx: &Ctx, consistency: Consistency) -> Result<(), ApiError> {
    match consistency {
        Consistency::Stale => Ok(()),
        Consistency::Default | Consistency::Consistent => Ok(ctx.node.linearize().await?),
    }
}

/// Metadata for a read answered now.
pub fn meta(ctx: &Ctx, index: u64, consistency: Consistency) -> QueryMeta {
    let view = ctx.node.leader_view();
    QueryMeta {
        index,
        known_leader: view.leader_addr.is_some(),
        last_contact_ms: view.last_contact_ms,
        consistency,
    }
}

/// Runs `eval` against the state under `opts`, blocking when asked. `eval` returns the
/// result's index and the result.
pub async fn read<T>(
    ctx: &Ctx,
    opts: &ReadOptions,
    watch: Watch<'_>,
    eval: impl Fn(&State) -> (u64, T),
) -> Result<(QueryMeta, T), ApiError> {
    // Counted until this read returns or its client goes away (the future is dropped).
    let _in_flight = opts.blocking.map(|_| ctx.telemetry.blocking().enter());
    let mut subscription = opts.blocking.map(|_| watch.subscribe(ctx));
    let deadline = opts.blocking.map(|b| {
        // Consul spreads waiters out with up to wait/16 of jitter so they do not return together.
        let jitter_cap = (b.wait.as_millis() as u64 / 16).max(1);
        let jitter = Duration::from_millis(rand::rng().random_range(0..jitter_cap));
        tokio::time::Instant::now() + b.wait + jitter
    });
    barrier(ctx, opts.consistency).await?;
    loop {
        let (index, value) = eval(&ctx.node.reader().state());
        let index = index.max(1);
        let (Some(blocking), Some(sub), Some(deadline)) =
            (opts.blocking, subscription.as_mut(), deadline)
        else {
            return Ok((meta(ctx, index, opts.consistency), value));
        };
        if index != blocking.index {
            return Ok((meta(ctx, index, opts.consistency), value));
        }
        tokio::select! {
            () = sub.changed() => {}
            () = tokio::time::sleep_until(deadline) => {
                return Ok((meta(ctx, index, opts.consistency), value));
            }
        }
        if opts.consistency == Consistency::Consistent {
            barrier(ctx, opts.consistency).await?;
        }
    }
}
