//! `watch -type key|keyprefix|services|nodes|service|checks|event [HANDLER...]`: Consul's
//! watches. Blocking queries follow the view; each time its index and its content change, the
//! handler runs with the view's JSON on stdin and `CONSUL_INDEX` set (an `event` watch hands
//! over only the events it has not seen). Without a handler the view is printed once. A failed handler ends the watch with status 1; failed queries are retried
//! with Consul's backoff.

use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::Duration;

use hyper::body::Bytes;
use hyper::{Method, StatusCode};
use serde_json::Value;
use tokio::io::AsyncWriteExt;

use super::http::Api;
use super::text::{go_json, go_json_line};
use super::{child_command, encode_path, exit_with, fail, percent_encode, HttpArgs};

/// Consul's watch retry: `5s × failures²`, at most 3 minutes.
const RETRY_BASE: Duration = Duration::from_secs(5);
const RETRY_MAX: Duration = Duration::from_secs(180);

#[derive(Debug, clap::Args)]
pub struct WatchArgs {
    #[command(flatten)]
    http: HttpArgs,
    /// key, keyprefix, services, nodes, service, checks or event.
    #[arg(long = "type", default_value = "")]
    watch_type: String,
    /// The key (`key` watches).
    #[arg(long, default_value = "")]
    key: String,
    /// The key prefix (`keyprefix` watches).
    #[arg(long, default_value = "")]
    prefix: String,
    /// The service (`service` watches; optional for `checks`).
    #[arg(long, default_value = "")]
    service: String,
    /// Only instances with this tag (`service` watches).
    #[arg(long, default_value = "")]
    tag: String,
    /// Only instances passing their checks (`service` watches; `true|false`).
    #[arg(long, default_value = "")]
    passingonly: String,
    /// Only checks in this state (`checks` watches).
    #[arg(long, default_value = "")]
    state: String,
    /// Only events with this name (`event` watches).
    #[arg(long, default_value = "")]
    name: String,
    /// Run the handler through `$SHELL -c` (`-shell=false` to run it directly).
    #[arg(
        long,
        action = clap::ArgAction::Set,
        num_args = 0..=1,
        require_equals = true,
        default_value_t = true,
        default_missing_value = "true"
    )]
    shell: bool,
    /// HANDLER...: run on each change with the JSON on stdin.
    #[arg(num_args = 0..)]
    handler: Vec<String>,
}

/// What a watch follows: the path of its blocking query, and how an answer becomes the
/// handler's data.
#[derive(Debug, PartialEq, Eq)]
struct View {
    path: String,
    shape: Shape,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// The endpoint's answer as it is.
    Whole,
    /// A `key` watch hands over the pair itself, not the list the endpoint answers.
    Single,
    /// An `event` watch hands over the events after the one the last index names.
    NewEvents,
}

impl Shape {
    /// Whether the answers' index only grows. An event list's index folds the last event's
    /// ID, a random UUID, so a smaller one says nothing about a restore.
    fn ordered_index(self) -> bool {
        self != Shape::NewEvents
    }
}

impl View {
    /// The handler's data from an answer; `seen` is the index of the previous answer.
    fn data(&self, status: StatusCode, body: &[u8], seen: u64) -> anyhow::Result<Value> {
        if status == StatusCode::NOT_FOUND {
            return Ok(Value::Null);
        }
        let value: Value = serde_json::from_slice(body)?;
        Ok(match self.shape {
            Shape::Whole => value,
            Shape::Single => value.get(0).cloned().unwrap_or(Value::Null),
            Shape::NewEvents => Value::Array(new_events(value, seen)),
        })
    }
}

/// The events after the one whose ID folds into `seen` (all of them when none does, as on the
/// first answer), as Consul's event watch prunes its list.
fn new_events(list: Value, seen: u64) -> Vec<Value> {
    let Value::Array(mut events) = list else {
        return Vec::new();
    };
    let id_index = |event: &Value| agent::events::id_index(event["ID"].as_str().unwrap_or(""));
    if let Some(last_seen) = events.iter().position(|e| id_index(e) == seen) {
        events.drain(..=last_seen);
    }
    events
}

/// The watch `args` describe, checked as Consul's `watch.Parse` checks it.
fn view(args: &WatchArgs) -> Result<View, String> {
    let given: BTreeSet<&str> = [
        ("key", &args.key),
        ("prefix", &args.prefix),
        ("service", &args.service),
        ("tag", &args.tag),
        ("passingonly", &args.passingonly),
        ("state", &args.state),
        ("name", &args.name),
    ]
    .into_iter()
    .filter(|(_, value)| !value.is_empty())
    .map(|(name, _)| name)
    .collect();
    let allowed: &[&str] = match args.watch_type.as_str() {
        "" => return Err("Watch type must be specified".to_owned()),
        "key" => &["key"],
        "keyprefix" => &["prefix"],
        "services" | "nodes" => &[],
        "service" => &["service", "tag", "passingonly"],
        "checks" => &["service", "state"],
        "event" => &["name"],
        other => return Err(format!("Unsupported watch type: {other}")),
    };
    let invalid: Vec<&str> = given
        .iter()
        .copied()
        .filter(|p| !allowed.contains(p))
        .collect();
    if !invalid.is_empty() {
        return Err(format!("Invalid parameters: [{}]", invalid.join(" ")));
    }
    let plain = |path: String| View {
        path,
        shape: Shape::Whole,
    };
    Ok(match args.watch_type.as_str() {
        "key" if args.key.is_empty() => return Err("Must specify a single key to watch".into()),
        "key" => View {
            path: format!("/v1/kv/{}?", encode_path(&args.key)),
            shape: Shape::Single,
        },
        "event" => View {
            path: match args.name.as_str() {
                "" => "/v1/event/list?".to_owned(),
                name => format!("/v1/event/list?name={}&", percent_encode(name)),
            },
            shape: Shape::NewEvents,
        },
        "keyprefix" if args.prefix.is_empty() => {
            return Err("Must specify a single prefix to watch".into())
        }
        "keyprefix" => plain(format!("/v1/kv/{}?recurse&", encode_path(&args.prefix))),
        "services" => plain("/v1/catalog/services?".into()),
        "nodes" => plain("/v1/catalog/nodes?".into()),
        "service" if args.service.is_empty() => {
            return Err("Must specify a single service to watch".into())
        }
        "service" => {
            let mut path = format!("/v1/health/service/{}?", encode_path(&args.service));
            if !args.tag.is_empty() {
                path.push_str(&format!("tag={}&", percent_encode(&args.tag)));
            }
            match args.passingonly.as_str() {
                "" | "false" | "0" | "f" | "F" | "FALSE" | "False" => {}
                "true" | "1" | "t" | "T" | "TRUE" | "True" => path.push_str("passing=1&"),
                other => {
                    return Err(format!(
                        "Failed to parse passingonly flag: invalid syntax: {other:?}"
                    ))
                }
            }
            plain(path)
        }
        _ if !args.service.is_empty() && !args.state.is_empty() => {
            return Err("Cannot specify service and state".into())
        }
        _ if !args.service.is_empty() => {
            plain(format!("/v1/health/checks/{}?", encode_path(&args.service)))
        }
        _ => {
            let state = if args.state.is_empty() {
                "any"
            } else {
                &args.state
            };
            plain(format!("/v1/health/state/{}?", encode_path(state)))
        }
    })
}

pub async fn run(args: WatchArgs) -> anyhow::Result<()> {
    let view = view(&args).map_err(fail)?;
    let api = args.http.api()?;
    api.get_json("/v1/agent/self")
        .await
        .map_err(|err| fail(format!("Error querying Consul agent: {err:#}")))?;
    tokio::select! {
        result = follow(&api, &view, &args) => result,
        () = interrupted() => Ok(()),
    }
}

/// Resolves at SIGINT or SIGTERM, on which Consul's watch exits 0.
async fn interrupted() {
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

/// What a watch remembers between answers.
#[derive(Debug)]
struct Plan {
    ordered: bool,
    index: Option<u64>,
    last: Option<Value>,
}

impl Plan {
    /// `ordered`: whether a smaller index means the server's state went back.
    fn new(ordered: bool) -> Self {
        Self {
            ordered,
            index: None,
            last: None,
        }
    }

    /// Takes an answer at `index`; the data to hand over if the view changed (always the
    /// first time), as Consul's watch plan decides.
    fn next(&mut self, index: u64, data: Value) -> Option<Value> {
        let old = self.index;
        if old == Some(index) {
            return None;
        }
        // An index that went backwards (a restored snapshot, a new leader) starts over.
        self.index = Some(if self.ordered && old.is_some_and(|old| index < old) {
            0
        } else {
            index
        });
        if old.is_some() && self.last.as_ref() == Some(&data) {
            return None;
        }
        self.last = Some(data.clone());
        Some(data)
    }

    fn wait_index(&self) -> u64 {
        self.index.unwrap_or(0)
    }
}

async fn follow(api: &Api, view: &View, args: &WatchArgs) -> anyhow::Result<()> {
    let mut plan = Plan::new(view.shape.ordered_index());
    let mut failures: u32 = 0;
    loop {
        let path = format!("{}index={}", view.path, plan.wait_index());
        let answer = async {
            let reply = api.send(Method::GET, &path, Bytes::new()).await?;
            let index = reply.index.unwrap_or(0);
            let status = reply.status;
            let body = if status == StatusCode::NOT_FOUND {
                reply.body
            } else {
                reply.ok()?
            };
            anyhow::Ok((index, view.data(status, &body, plan.wait_index())?))
        }
        .await;
        let (index, data) = match answer {
            Ok(answer) => {
                failures = 0;
                answer
            }
            Err(err) => {
                failures += 1;
                let retry = RETRY_BASE
                    .saturating_mul(failures.saturating_mul(failures))
                    .min(RETRY_MAX);
                eprintln!(
                    "Watch (type: {}) errored: {err:#}, retry in {retry:?}",
                    args.watch_type
                );
                tokio::time::sleep(retry).await;
                continue;
            }
        };
        let Some(data) = plan.next(index, data) else {
            continue;
        };
        if args.handler.is_empty() {
            println!("{}", go_json(&data, "    "));
            return Ok(());
        }
        if let Err(err) = handle(&args.handler, args.shell, index, &data).await {
            eprintln!("Error executing handler: {err:#}");
            return Err(exit_with(1));
        }
    }
}

/// Runs the handler with `data` on its stdin and `CONSUL_INDEX` set; an error unless it
/// exits 0.
async fn handle(handler: &[String], shell: bool, index: u64, data: &Value) -> anyhow::Result<()> {
    let mut command = child_command(handler, shell)?;
    command
        .env("CONSUL_INDEX", index.to_string())
        .stdin(Stdio::piped());
    let mut child = command.spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        // A handler that does not read its input is fine.
        let _ = stdin.write_all(go_json_line(data).as_bytes()).await;
    }
    let status = child.wait().await?;
    match status.code() {
        Some(0) => Ok(()),
        // Go's wording, as Consul reports it.
        Some(code) => anyhow::bail!("exit status {code}"),
        None => anyhow::bail!("{status}"),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn args(watch_type: &str, set: &[(&str, &str)]) -> WatchArgs {
        let get = |name: &str| {
            set.iter()
                .find(|(k, _)| *k == name)
                .map_or(String::new(), |(_, v)| (*v).to_owned())
        };
        WatchArgs {
            http: HttpArgs::default(),
            watch_type: watch_type.into(),
            key: get("key"),
            prefix: get("prefix"),
            service: get("service"),
            tag: get("tag"),
            passingonly: get("passingonly"),
            state: get("state"),
            name: get("name"),
            shell: true,
            handler: Vec::new(),
        }
    }

    #[test]
    fn watch_types_become_blocking_queries() {
        let path = |t: &str, set: &[(&str, &str)]| view(&args(t, set)).map(|v| v.path);
        assert_eq!(
            view(&args("key", &[("key", "a/b c")])),
            Ok(View {
                path: "/v1/kv/a/b%20c?".into(),
                shape: Shape::Single,
            })
        );
        assert_eq!(
            path("keyprefix", &[("prefix", "a/")]),
            Ok("/v1/kv/a/?recurse&".into())
        );
        assert_eq!(path("services", &[]), Ok("/v1/catalog/services?".into()));
        assert_eq!(
            path(
                "service",
                &[("service", "web"), ("tag", "v1"), ("passingonly", "true")]
            ),
            Ok("/v1/health/service/web?tag=v1&passing=1&".into())
        );
        assert_eq!(path("checks", &[]), Ok("/v1/health/state/any?".into()));
        assert_eq!(
            path("checks", &[("service", "web")]),
            Ok("/v1/health/checks/web?".into())
        );
        assert_eq!(path("", &[]), Err("Watch type must be specified".into()));
        assert_eq!(
            path("key", &[]),
            Err("Must specify a single key to watch".into())
        );
        assert_eq!(
            path("services", &[("key", "x")]),
            Err("Invalid parameters: [key]".into())
        );
        assert_eq!(path("event", &[]), Ok("/v1/event/list?".into()));
        assert_eq!(
            path("event", &[("name", "deploy web")]),
            Ok("/v1/event/list?name=deploy%20web&".into())
        );
        assert_eq!(
            path("event", &[("key", "x")]),
            Err("Invalid parameters: [key]".into())
        );
        assert_eq!(
            path("connect_roots", &[]),
            Err("Unsupported watch type: connect_roots".into())
        );
        assert_eq!(
            path("checks", &[("service", "web"), ("state", "passing")]),
            Err("Cannot specify service and state".into())
        );
    }

    #[test]
    fn handlers_run_when_index_and_content_change() {
        let mut plan = Plan::new(true);
        assert_eq!(plan.next(5, json!(null)), Some(json!(null)));
        // The same index: a blocking query that timed out.
        assert_eq!(plan.next(5, json!(null)), None);
        // A new index with the same content: another key changed.
        assert_eq!(plan.next(6, json!(null)), None);
        assert_eq!(plan.next(7, json!({"Key": "a"})), Some(json!({"Key": "a"})));
        // Backwards: the next query does not block.
        assert_eq!(plan.next(3, json!({"Key": "b"})), Some(json!({"Key": "b"})));
        assert_eq!(plan.wait_index(), 0);
    }

    #[test]
    fn event_indexes_are_not_ordered() {
        // Each event list's index hashes its last event's ID: a smaller one is a new event,
        // and waiting from 0 would hand every event over again.
        let mut plan = Plan::new(Shape::NewEvents.ordered_index());
        assert_eq!(plan.next(9, json!([1])), Some(json!([1])));
        assert_eq!(plan.next(4, json!([2])), Some(json!([2])));
        assert_eq!(plan.wait_index(), 4);
    }

    #[test]
    fn key_watches_hand_over_the_pair() {
        let key = View {
            path: String::new(),
            shape: Shape::Single,
        };
        assert_eq!(
            key.data(StatusCode::OK, br#"[{"Key":"a"}]"#, 0).unwrap(),
            json!({"Key": "a"})
        );
        assert_eq!(
            key.data(StatusCode::NOT_FOUND, b"", 0).unwrap(),
            Value::Null
        );
    }

    #[test]
    fn event_watches_hand_over_only_the_events_after_the_last_index() {
        let events = View {
            path: String::new(),
            shape: Shape::NewEvents,
        };
        let (a, b, c) = (
            "00000000-0000-0000-0000-00000000000a",
            "00000000-0000-0000-0000-00000000000b",
            "00000000-0000-0000-0000-00000000000c",
        );
        let body = serde_json::to_vec(&json!([{"ID": a}, {"ID": b}, {"ID": c}])).unwrap();
        let ids = |seen: u64| {
            let data = events.data(StatusCode::OK, &body, seen).unwrap();
            data.as_array()
                .unwrap()
                .iter()
                .map(|e| e["ID"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        };
        // The first answer (and one whose last-seen event rolled out of the buffer): all.
        assert_eq!(ids(0), [a, b, c]);
        assert_eq!(ids(0xdead), [a, b, c]);
        // After the answer that ended with `a`: `b` and `c`; after `c`: nothing new.
        assert_eq!(ids(agent::events::id_index(a)), [b, c]);
        assert_eq!(ids(agent::events::id_index(c)), Vec::<String>::new());
    }
}
