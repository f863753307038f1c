//! Closed-loop load: `c` workers, each sending one request at a time for a fixed duration.
//!
//! Everything runs on the caller's (single-threaded) tokio runtime, so the generator uses at
//! most one core and leaves the server the other.

use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use serde::Serialize;

use crate::target::{fetch, System};

/// Per-request deadline; a request that takes longer counts as an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Distinct random values written; enough that values are not trivially compressible.
const VALUE_POOL_SIZE: usize = 256;

/// A keep-alive HTTP/1 client (one connection per concurrent worker is kept in the pool).
pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

pub fn http_client() -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(300))
        .build(connector)
}

/// The operation a phase sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Op {
    Put,
    Get,
}

impl std::fmt::Display for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Op::Put => "PUT",
            Op::Get => "GET",
        })
    }
}

/// The key space and value size.
#[derive(Debug, Clone)]
pub struct Workload {
    pub keys: u64,
    pub value_size: usize,
    values: Vec<Bytes>,
}

impl Workload {
    /// `keys` keys `key-0..key-<keys-1>`, values of `value_size` random bytes from a fixed seed.
    pub fn new(keys: u64, value_size: usize) -> Self {
        let mut rng = StdRng::seed_from_u64(0x6d65_7368);
        let values = (0..VALUE_POOL_SIZE)
            .map(|_| {
                let mut v = vec![0u8; value_size];
                rng.fill(&mut v[..]);
                Bytes::from(v)
            })
            .collect();
        Self {
            keys,
            value_size,
            values,
        }
    }

    pub fn key(n: u64) -> String {
        format!("key-{n}")
    }

    fn value(&self, rng: &mut StdRng) -> &Bytes {
        &self.values[rng.random_range(0..self.values.len())]
    }
}

/// What one measured phase did.
#[derive(Debug, Clone, Default)]
pub struct PhaseOutcome {
    /// Requests that succeeded.
    pub ok: u64,
    /// Requests that failed: transport error, timeout, non-2xx or a wrong answer.
    pub errors: u64,
    /// Latency of every successful request in microseconds, ascending.
    pub latencies_us: Vec<u64>,
    /// From the first request sent to the last answer received.
    pub elapsed: Duration,
    pub first_error: Option<String>,
}

/// Sends one request and checks its answer.
async fn one_request(
    client: &HttpClient,
    system: &System,
    base_url: &str,
    op: Op,
    key: &str,
    workload: &Workload,
    rng: &mut StdRng,
) -> Result<(), String> {
    let req = match op {
        Op::Put => system.put_request(base_url, key, workload.value(rng)),
        Op::Get => system.get_request(base_url, key),
    };
    let (status, body) = match tokio::time::timeout(REQUEST_TIMEOUT, fetch(client, req)).await {
        Ok(Ok(answer)) => answer,
        Ok(Err(e)) => return Err(format!("{op} {key}: {e:#}")),
        Err(_) => return Err(format!("{op} {key}: no answer within {REQUEST_TIMEOUT:?}")),
    };
    match op {
        Op::Put => system.check_put(status, &body),
        Op::Get => system.check_get(status, &body, key, workload.value_size),
    }
}

/// One measured phase: which operation, how many workers, for how long.
#[derive(Debug, Clone, Copy)]
pub struct Phase {
    pub op: Op,
    pub concurrency: usize,
    pub duration: Duration,
    /// Makes the key sequence reproducible, so two systems in one cell see the same keys.
    pub seed: u64,
}

/// The endpoint worker `worker` sends to: the targets in turn, worker 0 to the first.
pub fn worker_target(targets: &[String], worker: usize) -> &str {
    &targets[worker % targets.len()]
}

/// Runs `phase.concurrency` workers sending `phase.op` on uniformly random keys, worker `w` to
/// `targets[w % targets.len()]`.
///
/// Workers send no new request after `phase.duration`; requests in flight then finish and count.
pub async fn run_phase(
    client: &HttpClient,
    system: &Arc<System>,
    targets: &[String],
    workload: &Arc<Workload>,
    phase: Phase,
) -> PhaseOutcome {
    assert!(!targets.is_empty(), "a phase needs at least one target");
    let Phase {
        op,
        concurrency,
        duration,
        seed,
    } = phase;
    let start = Instant::now();
    let deadline = start + duration;
    let mut workers = tokio::task::JoinSet::new();
    for w in 0..concurrency as u64 {
        let (client, system, workload) = (client.clone(), system.clone(), workload.clone());
        let base_url = worker_target(targets, w as usize).to_owned();
        let mut rng = StdRng::seed_from_u64(seed ^ w.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        workers.spawn(async move {
            let mut out = PhaseOutcome::default();
            while Instant::now() < deadline {
                let key = Workload::key(rng.random_range(0..workload.keys));
                let sent = Instant::now();
                match one_request(&client, &system, &base_url, op, &key, &workload, &mut rng).await
                {
                    Ok(()) => {
                        out.ok += 1;
                        out.latencies_us.push(sent.elapsed().as_micros() as u64);
                    }
                    Err(e) => {
                        out.errors += 1;
                        out.first_error.get_or_insert(e);
                        // A dead server refuses at once; do not spin a core on refusals.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
            out
        });
    }
    let mut total = PhaseOutcome::default();
    while let Some(joined) = workers.join_next().await {
        let out = joined.expect("load workers do not panic");
        total.ok += out.ok;
        total.errors += out.errors;
        total.latencies_us.extend(out.latencies_us);
        if total.first_error.is_none() {
            total.first_error = out.first_error;
        }
    }
    total.elapsed = start.elapsed();
    total.latencies_us.sort_unstable();
    total
}

/// Writes every key once (`concurrency` workers), printing progress to stderr.
pub async fn populate(
    client: &HttpClient,
    system: &Arc<System>,
    base_url: &str,
    workload: &Arc<Workload>,
    concurrency: usize,
) -> anyhow::Result<()> {
    const ATTEMPTS: usize = 3;
    let next = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    for w in 0..concurrency as u64 {
        let (client, system, workload) = (client.clone(), system.clone(), workload.clone());
        let (next, done) = (next.clone(), done.clone());
        let base_url = base_url.to_owned();
        let mut rng = StdRng::seed_from_u64(w);
        workers.spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= workload.keys {
                    return Ok::<(), String>(());
                }
                let key = Workload::key(n);
                let mut result = Ok(());
                for _ in 0..ATTEMPTS {
                    result = one_request(
                        &client,
                        &system,
                        &base_url,
                        Op::Put,
                        &key,
                        &workload,
                        &mut rng,
                    )
                    .await;
                    if result.is_ok() {
                        break;
                    }
                }
                result?;
                done.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    let name = system.name();
    let total = workload.keys;
    let progress = async {
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            eprint!(
                "\rpopulating {name}: {}/{total} keys",
                done.load(Ordering::Relaxed)
            );
            let _ = std::io::stderr().flush();
        }
    };
    let joined = async {
        let mut first_error = None;
        while let Some(joined) = workers.join_next().await {
            match joined {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    first_error.get_or_insert(e);
                    // One failure is enough to know the run is broken.
                    workers.abort_all();
                }
                Err(e) if e.is_cancelled() => {}
                Err(e) => panic!("populate worker failed: {e}"),
            }
        }
        first_error
    };
    let first_error = tokio::select! {
        e = joined => e,
        () = progress => unreachable!("the progress loop never ends"),
    };
    eprintln!(
        "\rpopulated {name}: {}/{total} keys of {} bytes in {:.1} s",
        done.load(Ordering::Relaxed),
        workload.value_size,
        started.elapsed().as_secs_f64()
    );
    if let Some(e) = first_error {
        bail!("populating {name} failed after {ATTEMPTS} attempts: {e}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::worker_target;

    #[test]
    fn workers_take_the_targets_in_turn() {
        let targets = ["a", "b", "c"].map(str::to_owned);
        let picked: Vec<&str> = (0..5).map(|w| worker_target(&targets, w)).collect();
        assert_eq!(picked, ["a", "b", "c", "a", "b"]);
        assert_eq!(worker_target(&targets[..1], 7), "a");
    }
}
