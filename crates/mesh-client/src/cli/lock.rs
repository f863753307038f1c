//! `lock PREFIX CHILD...`: runs a child command while holding a lock or a semaphore slot in
//! the KV store, as Consul's `lock` does with its API client. Both start a session with a 15s
//! TTL (renewed while held), watch what they hold so that losing it stops the child (SIGTERM,
//! then SIGKILL after a grace period), and afterwards give it up, delete the coordination key
//! if no one else holds it, and destroy the session. They differ only in the [`Strategy`]:
//!
//! - `-n 1` (a lock): `PREFIX/.lock` acquired with Consul's lock flag value.
//! - `-n N`, N > 1 (a semaphore): a contender key `PREFIX/<session>` acquired with the session
//!   (which deletes its keys when it ends), and `PREFIX/.lock` holding the JSON
//!   `{"Limit": N, "Holders": {"<session>": true}}`, both flagged with Consul's semaphore flag
//!   value; holders join and leave by check-and-set, and a holder whose contender key has no
//!   live session counts as gone.
//!
//! Unlike Consul (which exits 0, or 2 with `-child-exit-code`), the child's exit status is
//! this command's.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use anyhow::anyhow;
use base64::Engine;
use hyper::body::Bytes;
use hyper::{Method, StatusCode};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{json, Value};
use tokio::time::Instant;

use super::http::Api;
use super::{child_command, encode_path, exit_with, fail, go_duration, percent_encode, HttpArgs};

/// Consul's `api.LockFlagValue`: marks a key as a lock, so a semaphore or a plain key at the
/// same path is a conflict rather than a lock.
const LOCK_FLAG: u64 = 0x2ddc_cbc0_58a5_0c18;
/// Consul's `api.SemaphoreFlagValue`: marks the keys of a semaphore, so a lock or a plain key
/// at the same path is a conflict rather than a semaphore.
const SEMAPHORE_FLAG: u64 = 0xe0f6_9a2b_aa41_4de0;
/// Consul's `DefaultLockSessionTTL` and `DefaultSemaphoreSessionTTL`.
const SESSION_TTL: Duration = Duration::from_secs(15);
/// Consul's `DefaultLockWaitTime` and `DefaultSemaphoreWaitTime`: how long each blocking look
/// at the keys waits.
const LOCK_WAIT: Duration = Duration::from_secs(15);
/// Consul's `DefaultLockRetryTime`: the wait when a lock-delay refused the acquisition.
const LOCK_RETRY: Duration = Duration::from_secs(5);
/// Consul's `lockKillGracePeriod`: between the child's SIGTERM and its SIGKILL.
const KILL_GRACE: Duration = Duration::from_secs(5);
/// Consul's `defaultMonitorRetryTime`.
const MONITOR_RETRY_WAIT: Duration = Duration::from_secs(1);

#[derive(Debug, clap::Args)]
pub struct LockArgs {
    #[command(flatten)]
    http: HttpArgs,
    /// Accepted for Consul's scripts; the child's exit status is always passed on.
    #[arg(long = "child-exit-code")]
    child_exit_code: bool,
    /// How many may hold the lock at once; above 1 it is a semaphore, and every contender
    /// at the prefix must use the same number.
    #[arg(short = 'n', default_value_t = 1)]
    limit: i64,
    /// How many errors watching the lock to ride out, 1s apart, before giving it up.
    #[arg(long = "monitor-retry", default_value_t = 3)]
    monitor_retry: u32,
    /// The session's name (default: one naming the child and the prefix).
    #[arg(long, default_value = "")]
    name: String,
    /// Give the child this command's stdin.
    #[arg(long = "pass-stdin")]
    pass_stdin: bool,
    /// Run the child through `$SHELL -c` (`-shell=false` to run it directly).
    #[arg(
        long,
        action = clap::ArgAction::Set,
        num_args = 0..=1,
        require_equals = true,
        default_value_t = true,
        default_missing_value = "true"
    )]
    shell: bool,
    /// Give up acquiring the lock after this long (`10s`); 0 waits for ever.
    #[arg(long, value_parser = go_duration, default_value = "0s")]
    timeout: Duration,
    /// Say what happens.
    #[arg(long)]
    verbose: bool,
    /// PREFIX CHILD...
    #[arg(num_args = 0..)]
    args: Vec<String>,
}

pub async fn run(args: LockArgs) -> anyhow::Result<()> {
    if args.limit <= 0 {
        return Err(fail("Lock holder limit must be positive"));
    }
    let [prefix, child @ ..] = args.args.as_slice() else {
        return Err(fail("Key prefix and child command must be specified"));
    };
    if child.is_empty() {
        return Err(fail("Key prefix and child command must be specified"));
    }
    let prefix = prefix.trim_start_matches('/');
    let name = if args.name.is_empty() {
        format!("Consul lock for '{}' at '{prefix}'", child.join(" "))
    } else {
        args.name.clone()
    };
    let api = args.http.api()?;
    api.get_json("/v1/agent/self")
        .await
        .map_err(|err| fail(format!("Error querying Consul agent: {err:#}")))?;
    let say = |text: &str| {
        if args.verbose {
            println!("{text}");
        }
    };
    let strategy = if args.limit == 1 {
        let lock = Lock {
            key: join(prefix, ".lock"),
        };
        say(&format!("Setting up lock at path: {}", lock.key));
        Strategy::Lock(lock)
    } else {
        if prefix.is_empty() {
            return Err(fail("Lock setup failed: missing prefix"));
        }
        say(&format!(
            "Setting up semaphore (limit {}) at prefix: {prefix}",
            args.limit
        ));
        Strategy::Semaphore(Semaphore {
            prefix: prefix.to_owned(),
            key: join(prefix, ".lock"),
            limit: args.limit,
        })
    };
    say("Attempting lock acquisition");
    let session = create_session(&api, &name, strategy.session_behavior())
        .await
        .map_err(|err| {
            fail(format!(
                "Lock acquisition failed: failed to create session: {err:#}"
            ))
        })?;
    let deadline = (!args.timeout.is_zero()).then(|| Instant::now() + args.timeout);
    let acquired = tokio::select! {
        acquired = strategy.acquire(&api, &session, deadline) => acquired,
        () = shutdown() => Ok(None),
    };
    let index = match acquired {
        Ok(Some(index)) => index,
        Ok(None) => {
            destroy_session(&api, &session).await;
            return Err(fail(
                "Shutdown triggered or timeout during lock acquisition",
            ));
        }
        Err(err) => {
            destroy_session(&api, &session).await;
            return Err(fail(format!("Lock acquisition failed: {err:#}")));
        }
    };

    say("Starting handler");
    let mut command = child_command(child, args.shell)?;
    command.env("CONSUL_LOCK_HELD", "true");
    if !args.pass_stdin {
        command.stdin(std::process::Stdio::null());
    }
    // The child's exit status, or why it could not start.
    let status: Result<i32, String> = match command.spawn() {
        Err(err) => Err(err.to_string()),
        Ok(mut child) => {
            let ended = tokio::select! {
                status = child.wait() => Some(status),
                () = strategy.monitor(&api, &session, index, args.monitor_retry) => {
                    say("Lock lost, killing child");
                    None
                }
                () = keep_alive(&api, &session) => {
                    say("Session lost, killing child");
                    None
                }
                () = shutdown() => {
                    say("Shutdown triggered, killing child");
                    None
                }
            };
            Ok(match ended {
                Some(status) => {
                    say("Child terminated, releasing lock");
                    status.map_or(1, exit_code)
                }
                None => stop(&mut child, args.verbose).await,
            })
        }
    };

    let released = strategy.release(&api, &session).await;
    let cleaned = strategy.cleanup(&api).await;
    destroy_session(&api, &session).await;
    let code = status.map_err(|err| fail(format!("Error starting handler: {err}")))?;
    released.map_err(|err| fail(format!("Lock release failed: {err:#}")))?;
    match cleaned {
        Ok(true) => say("Cleanup succeeded"),
        Ok(false) => say("Cleanup aborted, lock in use"),
        Err(err) => return Err(fail(format!("Lock cleanup failed: {err:#}"))),
    }
    if code == 0 {
        Ok(())
    } else {
        Err(exit_with(code))
    }
}

/// What the command holds while the child runs: the one flow of [`run`] with two ways to
/// acquire, watch, release and clean up, as Consul's command switches between its API
/// client's `Lock` and `Semaphore`.
enum Strategy {
    Lock(Lock),
    Semaphore(Semaphore),
}

impl Strategy {
    /// The session's behaviour when it ends: a lock's key is released (and cleaned up by
    /// whoever comes next), a semaphore's contender key deleted.
    fn session_behavior(&self) -> &'static str {
        match self {
            Strategy::Lock(_) => "release",
            Strategy::Semaphore(_) => "delete",
        }
    }

    /// Acquires for `session`, waiting until `deadline` (for ever without one); the index to
    /// watch from, or `None` at the deadline.
    async fn acquire(
        &self,
        api: &Api,
        session: &str,
        deadline: Option<Instant>,
    ) -> anyhow::Result<Option<u64>> {
        match self {
            Strategy::Lock(lock) => lock.acquire(api, session, deadline).await,
            Strategy::Semaphore(semaphore) => semaphore.acquire(api, session, deadline).await,
        }
    }

    /// Resolves when `session` no longer holds, or watching failed more than `retries` times
    /// in a row.
    async fn monitor(&self, api: &Api, session: &str, index: u64, retries: u32) {
        match self {
            Strategy::Lock(lock) => {
                watch(index, retries, |index| lock.still_held(api, session, index)).await;
            }
            Strategy::Semaphore(semaphore) => {
                watch(index, retries, |index| {
                    semaphore.still_held(api, session, index)
                })
                .await;
            }
        }
    }

    async fn release(&self, api: &Api, session: &str) -> anyhow::Result<()> {
        match self {
            Strategy::Lock(lock) => lock.release(api, session).await,
            Strategy::Semaphore(semaphore) => semaphore.release(api, session).await,
        }
    }

    /// Deletes the coordination key unless someone holds it, as Consul's `Destroy`; whether
    /// it was deleted (or already gone).
    async fn cleanup(&self, api: &Api) -> anyhow::Result<bool> {
        match self {
            Strategy::Lock(lock) => lock.cleanup(api).await,
            Strategy::Semaphore(semaphore) => semaphore.cleanup(api).await,
        }
    }
}

/// Go's `path.Join(prefix, name)` for a clean `name`: `PREFIX/name`, or `name` alone.
fn join(prefix: &str, name: &str) -> String {
    let prefix = prefix.trim_end_matches('/');
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}/{name}")
    }
}

/// A shell's exit status: the code, or 128 + the signal that ended it.
fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|signal| 128 + signal))
        .unwrap_or(1)
}

/// Resolves at SIGINT or SIGTERM.
async fn shutdown() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut interrupt), Ok(mut terminate)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
    }
}

async fn create_session(api: &Api, name: &str, behavior: &str) -> anyhow::Result<String> {
    let body = json!({
        "Name": name,
        "TTL": format!("{}s", SESSION_TTL.as_secs()),
        "Behavior": behavior,
    });
    let answer = api
        .put_json(Method::PUT, "/v1/session/create", &body)
        .await?;
    let answer: Value = serde_json::from_slice(&answer)?;
    answer["ID"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("the agent answered no session ID: {answer}"))
}

async fn destroy_session(api: &Api, session: &str) {
    let path = format!("/v1/session/destroy/{}", encode_path(session));
    if let Err(err) = api.call(Method::PUT, &path, Bytes::new()).await {
        eprintln!("Warning, could not destroy the lock session: {err:#}");
    }
}

/// A KV entry as the API answers it, reduced to what locks and semaphores read.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Entry {
    key: String,
    #[serde(default)]
    flags: u64,
    /// The holding session; empty if none.
    #[serde(default, deserialize_with = "null_as_default")]
    session: String,
    /// Base64, as on the wire; `None` for no value.
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    modify_index: u64,
}

fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// A (blocking, from `index`) read of `key`, or with `recurse` of every key under it: the
/// entries (none if absent) and the index to block on next.
async fn read(
    api: &Api,
    key: &str,
    recurse: bool,
    consistent: bool,
    index: u64,
    wait: Duration,
) -> anyhow::Result<(Vec<Entry>, u64)> {
    let mut path = format!(
        "/v1/kv/{}?index={index}&wait={}ms",
        encode_path(key),
        wait.as_millis().max(1)
    );
    if recurse {
        path.push_str("&recurse");
    }
    if consistent {
        path.push_str("&consistent");
    }
    let reply = api.send(Method::GET, &path, Bytes::new()).await?;
    let next = reply.index.unwrap_or(0);
    if reply.status == StatusCode::NOT_FOUND {
        return Ok((Vec::new(), next));
    }
    let body = reply.ok()?;
    Ok((serde_json::from_slice(&body)?, next))
}

/// The lock key as it is now (`None` if absent) and the index to block on next.
async fn look(
    api: &Api,
    key: &str,
    consistent: bool,
    index: u64,
) -> anyhow::Result<(Option<Entry>, u64)> {
    let (entries, next) = read(api, key, false, consistent, index, LOCK_WAIT).await?;
    Ok((entries.into_iter().next(), next))
}

/// Whether a KV write or delete answered `true`.
fn answered_true(answer: &[u8]) -> anyhow::Result<bool> {
    Ok(serde_json::from_slice::<Value>(answer)? == json!(true))
}

/// Calls `still_held(index)` until it says the hold is gone (`Ok(None)`) or it failed more
/// than `retries` times in a row, `MONITOR_RETRY_WAIT` apart; `Ok(Some(next))` blocks the
/// next look on `next`.
async fn watch<F, Fut>(mut index: u64, retries: u32, mut still_held: F)
where
    F: FnMut(u64) -> Fut,
    Fut: Future<Output = anyhow::Result<Option<u64>>>,
{
    let mut left = retries;
    loop {
        match still_held(index).await {
            Ok(Some(next)) => {
                index = if next < index { 0 } else { next };
                left = retries;
            }
            Ok(None) => return,
            Err(_) if left > 0 => {
                left -= 1;
                index = 0;
                tokio::time::sleep(MONITOR_RETRY_WAIT).await;
            }
            Err(_) => return,
        }
    }
}

/// Consul's lock: one holder, the session on `PREFIX/.lock`.
struct Lock {
    key: String,
}

impl Lock {
    async fn acquire(
        &self,
        api: &Api,
        session: &str,
        deadline: Option<Instant>,
    ) -> anyhow::Result<Option<u64>> {
        let remaining = || deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let mut index = 0;
        loop {
            let wait = remaining().map_or(LOCK_WAIT, |r| r.min(LOCK_WAIT));
            if remaining().is_some_and(|r| r.is_zero()) {
                return Ok(None);
            }
            let (entries, next) = read(api, &self.key, false, false, index, wait).await?;
            index = next;
            if let Some(pair) = entries.first() {
                if pair.flags != LOCK_FLAG {
                    anyhow::bail!("Existing key does not match lock use");
                }
                if pair.session == session {
                    return Ok(Some(index));
                }
                if !pair.session.is_empty() {
                    // Held by another: block until the key changes.
                    continue;
                }
            }
            let path = format!(
                "/v1/kv/{}?acquire={}&flags={LOCK_FLAG}",
                encode_path(&self.key),
                percent_encode(session)
            );
            let answer = api.call(Method::PUT, &path, Bytes::new()).await?;
            if answered_true(&answer)? {
                let (_, index) = look(api, &self.key, false, 0).await?;
                return Ok(Some(index));
            }
            // Refused though free: a lock-delay is in effect; try again after a pause.
            let pause = remaining().map_or(LOCK_RETRY, |r| r.min(LOCK_RETRY));
            tokio::time::sleep(pause).await;
            index = 0;
        }
    }

    /// One look at the key: the next index while `session` holds it, `None` once the key is
    /// gone or held by another.
    async fn still_held(
        &self,
        api: &Api,
        session: &str,
        index: u64,
    ) -> anyhow::Result<Option<u64>> {
        let (pair, next) = look(api, &self.key, true, index).await?;
        Ok(pair.filter(|pair| pair.session == session).map(|_| next))
    }

    /// Gives the lock up, as Consul's `Lock.Unlock`: only if `session` still holds it.
    async fn release(&self, api: &Api, session: &str) -> anyhow::Result<()> {
        let (pair, _) = look(api, &self.key, false, 0).await?;
        if pair.map(|pair| pair.session).as_deref() != Some(session) {
            anyhow::bail!("Lock not held");
        }
        let path = format!(
            "/v1/kv/{}?release={}&flags={LOCK_FLAG}",
            encode_path(&self.key),
            percent_encode(session)
        );
        api.call(Method::PUT, &path, Bytes::new()).await?;
        Ok(())
    }

    async fn cleanup(&self, api: &Api) -> anyhow::Result<bool> {
        let (pair, _) = look(api, &self.key, false, 0).await?;
        let Some(pair) = pair else {
            return Ok(true);
        };
        if pair.flags != LOCK_FLAG {
            anyhow::bail!("Existing key does not match lock use");
        }
        if !pair.session.is_empty() {
            return Ok(false);
        }
        let path = format!(
            "/v1/kv/{}?cas={}",
            encode_path(&self.key),
            pair.modify_index
        );
        let answer = api.call(Method::DELETE, &path, Bytes::new()).await?;
        answered_true(&answer)
    }
}

/// Consul's semaphore: up to `limit` holders, listed in `PREFIX/.lock`, each with a
/// contender key `PREFIX/<session>` that lives as long as its session.
struct Semaphore {
    prefix: String,
    /// `PREFIX/.lock`.
    key: String,
    limit: i64,
}

/// The JSON in a semaphore's `.lock` key, as Consul's API client writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Holders {
    /// The limit every contender must agree on.
    #[serde(rename = "Limit", alias = "limit", default)]
    limit: i64,
    /// The holding sessions (a set: Consul writes `true` for each).
    #[serde(
        rename = "Holders",
        alias = "holders",
        default,
        deserialize_with = "null_as_default"
    )]
    holders: BTreeMap<String, bool>,
}

impl Holders {
    /// The holders in `pair` (the `.lock` entry, if any), or none at `limit` for a missing
    /// key or value, as Consul's `decodeLock`.
    fn decode(pair: Option<&Entry>, limit: i64) -> anyhow::Result<Holders> {
        let Some(value) = pair.and_then(|pair| pair.value.as_deref()) else {
            return Ok(Holders {
                limit,
                holders: BTreeMap::new(),
            });
        };
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(value)
            .map_err(|err| anyhow!("lock decoding failed: {err}"))?;
        serde_json::from_slice(&bytes).map_err(|err| anyhow!("lock decoding failed: {err}"))
    }

    fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a map of strings to booleans serializes")
    }

    /// Drops the holders that hold no key under the prefix (their session is gone), as
    /// Consul's `pruneDeadHolders`.
    fn prune(&mut self, entries: &[Entry]) {
        self.holders.retain(|holder, _| {
            entries
                .iter()
                .any(|entry| !entry.session.is_empty() && entry.session == *holder)
        });
    }
}

/// What a contender does after reading the prefix.
#[derive(Debug, PartialEq)]
enum Turn {
    /// Every slot is taken: block until the prefix changes.
    Wait,
    /// Write these holders (with us among them) to `.lock` if its index is still `cas`.
    Enter { holders: Holders, cas: u64 },
}

impl Semaphore {
    /// The `.lock` entry among `entries`.
    fn find_lock<'a>(&self, entries: &'a [Entry]) -> Option<&'a Entry> {
        entries.iter().find(|entry| entry.key == self.key)
    }

    /// Whether `session` may take a slot, given everything under the prefix: Consul's checks
    /// (the flag, the agreed limit) and then room after pruning dead holders.
    fn turn(&self, entries: &[Entry], session: &str) -> anyhow::Result<Turn> {
        let pair = self.find_lock(entries);
        if pair.is_some_and(|pair| pair.flags != SEMAPHORE_FLAG) {
            anyhow::bail!("Existing key does not match semaphore use");
        }
        let mut holders = Holders::decode(pair, self.limit)?;
        if holders.limit != self.limit {
            anyhow::bail!(
                "semaphore limit conflict (lock: {}, local: {})",
                holders.limit,
                self.limit
            );
        }
        holders.prune(entries);
        if holders.holders.len() as i64 >= holders.limit {
            return Ok(Turn::Wait);
        }
        holders.holders.insert(session.to_owned(), true);
        let cas = pair.map_or(0, |pair| pair.modify_index);
        Ok(Turn::Enter { holders, cas })
    }

    /// Everything under the prefix (as Consul's `KV.List`), from `index`.
    async fn list(
        &self,
        api: &Api,
        consistent: bool,
        index: u64,
        wait: Duration,
    ) -> anyhow::Result<(Vec<Entry>, u64)> {
        read(api, &self.prefix, true, consistent, index, wait).await
    }

    /// Writes `holders` to `.lock` if its index is still `cas` (0: if it is absent); whether
    /// it was written.
    async fn swap(&self, api: &Api, holders: &Holders, cas: u64) -> anyhow::Result<bool> {
        let path = format!(
            "/v1/kv/{}?flags={SEMAPHORE_FLAG}&cas={cas}",
            encode_path(&self.key)
        );
        let answer = api
            .call(Method::PUT, &path, Bytes::from(holders.encode()))
            .await
            .map_err(|err| anyhow!("failed to update lock: {err:#}"))?;
        answered_true(&answer)
    }

    async fn acquire(
        &self,
        api: &Api,
        session: &str,
        deadline: Option<Instant>,
    ) -> anyhow::Result<Option<u64>> {
        let contender = join(&self.prefix, session);
        let path = format!(
            "/v1/kv/{}?flags={SEMAPHORE_FLAG}&acquire={}",
            encode_path(&contender),
            percent_encode(session)
        );
        let answer = api
            .call(Method::PUT, &path, Bytes::new())
            .await
            .map_err(|err| anyhow!("failed to make contender entry: {err:#}"))?;
        if !answered_true(&answer)? {
            // Consul formats its nil error here.
            anyhow::bail!("failed to make contender entry: <nil>");
        }
        let remaining = || deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let mut index = 0;
        loop {
            if remaining().is_some_and(|r| r.is_zero()) {
                return Ok(None);
            }
            let wait = remaining().map_or(LOCK_WAIT, |r| r.min(LOCK_WAIT));
            let (entries, next) = self
                .list(api, false, index, wait)
                .await
                .map_err(|err| anyhow!("failed to read prefix: {err:#}"))?;
            match self.turn(&entries, session)? {
                Turn::Wait => index = next,
                Turn::Enter { holders, cas } => {
                    if self.swap(api, &holders, cas).await? {
                        // Watch from a fresh read, as Consul's monitor does.
                        return Ok(Some(0));
                    }
                    // Another contender changed `.lock` first: look again.
                }
            }
        }
    }

    /// One look at the prefix: the next index while `session` is a live holder, `None` once
    /// it is not (the key gone, its value unreadable, or we were pruned or removed).
    async fn still_held(
        &self,
        api: &Api,
        session: &str,
        index: u64,
    ) -> anyhow::Result<Option<u64>> {
        let (entries, next) = self.list(api, true, index, LOCK_WAIT).await?;
        let Ok(mut holders) = Holders::decode(self.find_lock(&entries), self.limit) else {
            return Ok(None);
        };
        holders.prune(&entries);
        Ok(holders.holders.contains_key(session).then_some(next))
    }

    /// Gives the slot up, as Consul's `Semaphore.Release`: leaves the holders (retrying
    /// when another changed them first) and deletes the contender key.
    async fn release(&self, api: &Api, session: &str) -> anyhow::Result<()> {
        loop {
            let (pair, _) = look(api, &self.key, false, 0).await?;
            let mut holders = Holders::decode(pair.as_ref(), self.limit)?;
            if holders.holders.remove(session).is_none() {
                break;
            }
            let cas = pair.map_or(0, |pair| pair.modify_index);
            if self.swap(api, &holders, cas).await? {
                break;
            }
        }
        let path = format!("/v1/kv/{}", encode_path(&join(&self.prefix, session)));
        api.call(Method::DELETE, &path, Bytes::new()).await?;
        Ok(())
    }

    async fn cleanup(&self, api: &Api) -> anyhow::Result<bool> {
        let (entries, _) = self
            .list(api, false, 0, LOCK_WAIT)
            .await
            .map_err(|err| anyhow!("failed to read prefix: {err:#}"))?;
        let Some(pair) = self.find_lock(&entries) else {
            return Ok(true);
        };
        if pair.flags != SEMAPHORE_FLAG {
            anyhow::bail!("Existing key does not match semaphore use");
        }
        let mut holders = Holders::decode(Some(pair), self.limit)?;
        holders.prune(&entries);
        if !holders.holders.is_empty() {
            return Ok(false);
        }
        let path = format!(
            "/v1/kv/{}?cas={}",
            encode_path(&self.key),
            pair.modify_index
        );
        let answer = api
            .call(Method::DELETE, &path, Bytes::new())
            .await
            .map_err(|err| anyhow!("failed to remove semaphore: {err:#}"))?;
        answered_true(&answer)
    }
}

/// Renews the session every half TTL; resolves when it is gone or could not be renewed for
/// a whole TTL.
async fn keep_alive(api: &Api, session: &str) {
    let path = format!("/v1/session/renew/{}", encode_path(session));
    let mut renewed = Instant::now();
    let mut pause = SESSION_TTL / 2;
    loop {
        tokio::time::sleep(pause).await;
        match api.send(Method::PUT, &path, Bytes::new()).await {
            Ok(reply) if reply.status == StatusCode::NOT_FOUND => return,
            Ok(reply) if reply.status.is_success() => {
                renewed = Instant::now();
                pause = SESSION_TTL / 2;
            }
            _ if renewed.elapsed() >= SESSION_TTL => return,
            _ => pause = Duration::from_secs(1),
        }
    }
}

/// SIGTERM, then SIGKILL if the child is still running after the grace period.
async fn stop(child: &mut tokio::process::Child, verbose: bool) -> i32 {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    let Some(pid) = child.id() else {
        return child.wait().await.map_or(1, exit_code);
    };
    if verbose {
        println!("Terminating child pid {pid}");
    }
    let pid = Pid::from_raw(pid as i32);
    if let Err(err) = kill(pid, Signal::SIGTERM) {
        eprintln!("Failed to terminate {pid}: {err}");
    }
    if let Ok(status) = tokio::time::timeout(KILL_GRACE, child.wait()).await {
        return status.map_or(1, exit_code);
    }
    if verbose {
        println!("Child did not exit after grace period of {KILL_GRACE:?}");
        println!("Killing child pid {pid}");
    }
    if let Err(err) = kill(pid, Signal::SIGKILL) {
        eprintln!("Failed to kill {pid}: {err}");
    }
    child.wait().await.map_or(1, exit_code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_join_like_go_paths() {
        assert_eq!(join("service/web", ".lock"), "service/web/.lock");
        assert_eq!(join("service/web/", ".lock"), "service/web/.lock");
        assert_eq!(join("", ".lock"), ".lock");
        assert_eq!(join("pool", "5f1c"), "pool/5f1c");
    }

    #[test]
    fn the_flags_are_consuls() {
        assert_eq!(LOCK_FLAG, 3_304_740_253_564_472_344);
        assert_eq!(SEMAPHORE_FLAG, 16_210_313_421_097_356_768);
    }

    fn holders(limit: i64, sessions: &[&str]) -> Holders {
        Holders {
            limit,
            holders: sessions.iter().map(|s| (s.to_string(), true)).collect(),
        }
    }

    fn encoded(json: &str) -> Option<String> {
        Some(base64::engine::general_purpose::STANDARD.encode(json))
    }

    fn lock_entry(flags: u64, json: &str, modify_index: u64) -> Entry {
        Entry {
            key: "pool/.lock".into(),
            flags,
            value: encoded(json),
            modify_index,
            ..Entry::default()
        }
    }

    fn contender(session: &str) -> Entry {
        Entry {
            key: format!("pool/{session}"),
            flags: SEMAPHORE_FLAG,
            session: session.into(),
            modify_index: 5,
            ..Entry::default()
        }
    }

    #[test]
    fn the_lock_json_is_consuls() {
        assert_eq!(
            String::from_utf8(holders(2, &["b", "a"]).encode()).unwrap(),
            r#"{"Limit":2,"Holders":{"a":true,"b":true}}"#
        );
        assert_eq!(
            String::from_utf8(holders(3, &[]).encode()).unwrap(),
            r#"{"Limit":3,"Holders":{}}"#
        );
    }

    #[test]
    fn the_lock_json_decodes_as_go_would() {
        let check = |json: &str, expected: Holders| {
            let pair = lock_entry(SEMAPHORE_FLAG, json, 7);
            assert_eq!(Holders::decode(Some(&pair), 9).unwrap(), expected, "{json}");
        };
        check(r#"{"Limit":2,"Holders":{"a":true}}"#, holders(2, &["a"]));
        check(r#"{"Limit":2,"Holders":null}"#, holders(2, &[]));
        check(r#"{"Limit":2}"#, holders(2, &[]));
        check(r#"{"Holders":{"a":true}}"#, holders(0, &["a"]));
        check(
            r#"{"limit":4,"holders":{"a":true},"Other":1}"#,
            holders(4, &["a"]),
        );
        // A missing key or value is an empty semaphore at our limit.
        assert_eq!(Holders::decode(None, 9).unwrap(), holders(9, &[]));
        let empty = Entry {
            value: None,
            ..lock_entry(SEMAPHORE_FLAG, "", 7)
        };
        assert_eq!(Holders::decode(Some(&empty), 9).unwrap(), holders(9, &[]));
        let garbage = lock_entry(SEMAPHORE_FLAG, "not json", 7);
        let err = Holders::decode(Some(&garbage), 9).unwrap_err().to_string();
        assert!(err.starts_with("lock decoding failed: "), "{err}");
    }

    #[test]
    fn holders_without_a_live_contender_key_are_pruned() {
        let mut lock = holders(3, &["alive", "dead", "unlocked"]);
        let unlocked = Entry {
            session: String::new(),
            ..contender("unlocked")
        };
        lock.prune(&[contender("alive"), unlocked, contender("other")]);
        assert_eq!(lock, holders(3, &["alive"]));
    }

    fn semaphore(limit: i64) -> Semaphore {
        Semaphore {
            prefix: "pool".into(),
            key: "pool/.lock".into(),
            limit,
        }
    }

    /// What contender `me` at limit `limit` does after reading `entries`: its turn, or the
    /// error's text.
    fn check(limit: i64, entries: &[Entry], expected: Result<Turn, &str>) {
        let got = semaphore(limit)
            .turn(entries, "me")
            .map_err(|err| err.to_string());
        assert_eq!(got, expected.map_err(str::to_owned), "{entries:?}");
    }

    #[test]
    fn a_contender_enters_only_where_there_is_room() {
        let lock = |json: &str| lock_entry(SEMAPHORE_FLAG, json, 42);
        let enter = |sessions: &[&str], cas| {
            Ok(Turn::Enter {
                holders: holders(2, sessions),
                cas,
            })
        };
        // No .lock yet: create it (cas=0).
        check(2, &[contender("me")], enter(&["me"], 0));
        check(
            2,
            &[
                lock(r#"{"Limit":2,"Holders":{"a":true}}"#),
                contender("a"),
                contender("me"),
            ],
            enter(&["a", "me"], 42),
        );
        check(
            2,
            &[
                lock(r#"{"Limit":2,"Holders":{"a":true,"b":true}}"#),
                contender("a"),
                contender("b"),
            ],
            Ok(Turn::Wait),
        );
        // A holder whose session is gone frees its slot.
        check(
            2,
            &[
                lock(r#"{"Limit":2,"Holders":{"a":true,"b":true}}"#),
                contender("a"),
                contender("me"),
            ],
            enter(&["a", "me"], 42),
        );
    }

    #[test]
    fn a_contender_refuses_what_is_not_its_semaphore() {
        let live = [
            lock_entry(SEMAPHORE_FLAG, r#"{"Limit":2,"Holders":{"a":true}}"#, 42),
            contender("a"),
        ];
        check(
            3,
            &live,
            Err("semaphore limit conflict (lock: 2, local: 3)"),
        );
        check(
            2,
            &[lock_entry(LOCK_FLAG, "", 42)],
            Err("Existing key does not match semaphore use"),
        );
        check(
            2,
            &[lock_entry(SEMAPHORE_FLAG, "[", 42)],
            Err("lock decoding failed: EOF while parsing a list at line 1 column 1"),
        );
    }
}
