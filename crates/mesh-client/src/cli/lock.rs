//! `lock PREFIX CHILD...`: runs a child command while holding a lock in the KV store, as
//! Consul's `lock` does with its API client's lock: a session with a 15s TTL (renewed while
//! held), `PREFIX/.lock` acquired with Consul's lock flag value, the key watched so that a
//! lost lock stops the child (SIGTERM, then SIGKILL after a grace period), and afterwards the
//! lock released, the key deleted if no one else holds it, and the session destroyed.
//!
//! Unlike Consul (which exits 0, or 2 with `-child-exit-code`), the child's exit status is
//! this command's.

use std::time::Duration;

use hyper::body::Bytes;
use hyper::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::time::Instant;

use super::http::Api;
use super::{child_command, encode_path, exit_with, fail, go_duration, HttpArgs};

/// Consul's `api.LockFlagValue`: marks a key as a lock, so a semaphore or a plain key at the
/// same path is a conflict rather than a lock.
const LOCK_FLAG: u64 = 0x2ddc_cbc0_58a5_0c18;
/// Consul's `DefaultLockSessionTTL`.
const SESSION_TTL: Duration = Duration::from_secs(15);
/// Consul's `DefaultLockWaitTime`: how long each blocking look at the key waits.
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
    /// How many may hold the lock at once; only 1 (a lock, not a semaphore) is supported.
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
    if args.limit > 1 {
        return Err(fail(
            "Lock setup failed: semaphores (-n greater than 1) are not supported",
        ));
    }
    let [prefix, child @ ..] = args.args.as_slice() else {
        return Err(fail("Key prefix and child command must be specified"));
    };
    if child.is_empty() {
        return Err(fail("Key prefix and child command must be specified"));
    }
    let prefix = prefix.trim_start_matches('/');
    let key = lock_key(prefix);
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
    say(&format!("Setting up lock at path: {key}"));
    say("Attempting lock acquisition");
    let session = create_session(&api, &name).await.map_err(|err| {
        fail(format!(
            "Lock acquisition failed: failed to create session: {err:#}"
        ))
    })?;
    let deadline = (!args.timeout.is_zero()).then(|| Instant::now() + args.timeout);
    let acquired = tokio::select! {
        acquired = acquire(&api, &key, &session, deadline) => acquired,
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
                () = monitor(&api, &key, &session, index, args.monitor_retry) => {
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

    let released = release(&api, &key, &session).await;
    let cleaned = cleanup(&api, &key).await;
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

/// `PREFIX/.lock`, as Go's `path.Join(prefix, ".lock")`.
fn lock_key(prefix: &str) -> String {
    let prefix = prefix.trim_end_matches('/');
    if prefix.is_empty() {
        ".lock".to_owned()
    } else {
        format!("{prefix}/.lock")
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

async fn create_session(api: &Api, name: &str) -> anyhow::Result<String> {
    let body = json!({"Name": name, "TTL": format!("{}s", SESSION_TTL.as_secs())});
    let answer = api
        .put_json(Method::PUT, "/v1/session/create", &body)
        .await?;
    let answer: Value = serde_json::from_slice(&answer)?;
    answer["ID"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("the agent answered no session ID: {answer}"))
}

async fn destroy_session(api: &Api, session: &str) {
    let path = format!("/v1/session/destroy/{}", encode_path(session));
    if let Err(err) = api.call(Method::PUT, &path, Bytes::new()).await {
        eprintln!("Warning, could not destroy the lock session: {err:#}");
    }
}

/// The lock key as it is now (`None` if absent) and the index to block on next.
async fn look(
    api: &Api,
    key: &str,
    index: u64,
    wait: Duration,
) -> anyhow::Result<(Option<Value>, u64)> {
    let path = format!(
        "/v1/kv/{}?index={index}&wait={}ms",
        encode_path(key),
        wait.as_millis().max(1)
    );
    let reply = api.send(Method::GET, &path, Bytes::new()).await?;
    let next = reply.index.unwrap_or(0);
    if reply.status == StatusCode::NOT_FOUND {
        return Ok((None, next));
    }
    let body = reply.ok()?;
    let pairs: Value = serde_json::from_slice(&body)?;
    Ok((pairs.get(0).cloned(), next))
}

/// Acquires the lock for `session`, waiting until `deadline` (for ever without one); the
/// index of the acquired key, or `None` at the deadline.
async fn acquire(
    api: &Api,
    key: &str,
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
        let (pair, next) = look(api, key, index, wait).await?;
        index = next;
        if let Some(pair) = &pair {
            if pair["Flags"].as_u64() != Some(LOCK_FLAG) {
                anyhow::bail!("Existing key does not match lock use");
            }
            let holder = pair["Session"].as_str().unwrap_or_default();
            if holder == session {
                return Ok(Some(index));
            }
            if !holder.is_empty() {
                // Held by another: block until the key changes.
                continue;
            }
        }
        let path = format!(
            "/v1/kv/{}?acquire={}&flags={LOCK_FLAG}",
            encode_path(key),
            super::percent_encode(session)
        );
        let answer = api.call(Method::PUT, &path, Bytes::new()).await?;
        if serde_json::from_slice::<Value>(&answer)? == json!(true) {
            let (_, index) = look(api, key, 0, LOCK_WAIT).await?;
            return Ok(Some(index));
        }
        // Refused though free: a lock-delay is in effect; try again after a pause.
        let pause = remaining().map_or(LOCK_RETRY, |r| r.min(LOCK_RETRY));
        tokio::time::sleep(pause).await;
        index = 0;
    }
}

/// Resolves when the lock is no longer `session`'s: the key is gone or held by another, or
/// watching it failed more than `retries` times.
async fn monitor(api: &Api, key: &str, session: &str, mut index: u64, mut retries: u32) {
    loop {
        match look(api, key, index, LOCK_WAIT).await {
            Ok((Some(pair), next)) if pair["Session"].as_str() == Some(session) => {
                index = if next < index { 0 } else { next };
            }
            Ok(_) => return,
            Err(_) if retries > 0 => {
                retries -= 1;
                tokio::time::sleep(MONITOR_RETRY_WAIT).await;
            }
            Err(_) => return,
        }
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

/// Gives the lock up, as Consul's `Lock.Unlock`: only if `session` still holds it.
async fn release(api: &Api, key: &str, session: &str) -> anyhow::Result<()> {
    let (pair, _) = look(api, key, 0, LOCK_WAIT).await?;
    if pair.as_ref().and_then(|p| p["Session"].as_str()) != Some(session) {
        anyhow::bail!("Lock not held");
    }
    let path = format!(
        "/v1/kv/{}?release={}&flags={LOCK_FLAG}",
        encode_path(key),
        super::percent_encode(session)
    );
    api.call(Method::PUT, &path, Bytes::new()).await?;
    Ok(())
}

/// Deletes the lock key unless someone holds it, as Consul's `Lock.Destroy`; whether it was
/// deleted (or already gone).
async fn cleanup(api: &Api, key: &str) -> anyhow::Result<bool> {
    let (pair, _) = look(api, key, 0, LOCK_WAIT).await?;
    let Some(pair) = pair else {
        return Ok(true);
    };
    if pair["Flags"].as_u64() != Some(LOCK_FLAG) {
        anyhow::bail!("Existing key does not match lock use");
    }
    if pair["Session"].as_str().is_some_and(|s| !s.is_empty()) {
        return Ok(false);
    }
    let index = pair["ModifyIndex"].as_u64().unwrap_or_default();
    let path = format!("/v1/kv/{}?cas={index}", encode_path(key));
    let answer = api.call(Method::DELETE, &path, Bytes::new()).await?;
    Ok(serde_json::from_slice::<Value>(&answer)? == json!(true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_keys_join_like_go_paths() {
        assert_eq!(lock_key("service/web"), "service/web/.lock");
        assert_eq!(lock_key("service/web/"), "service/web/.lock");
        assert_eq!(lock_key(""), ".lock");
    }

    #[test]
    fn the_lock_flag_is_consuls() {
        assert_eq!(LOCK_FLAG, 3_304_740_253_564_472_344);
    }
}
