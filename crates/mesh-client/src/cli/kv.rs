//! `kv get|put|delete|export|import`: Consul's KV commands over `/v1/kv` and, for imports,
//! `/v1/txn` in batches.

use std::io::Write;

use base64::Engine;
use clap::Subcommand;
use hyper::body::Bytes;
use hyper::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};

use super::http::Api;
use super::text::{go_json, tabwriter};
use super::{encode_path, fail, percent_encode, read_data, HttpArgs, OrFail, Progress};

/// Imports of more keys than this report their progress on stderr.
const LARGE_IMPORT: usize = 1000;
/// Operations per import transaction (Consul's older limit, which every version accepts).
const TXN_OPS: usize = 64;
/// Bytes of keys and encoded values per import transaction, well under `txn_max_req_len`.
const TXN_BYTES: usize = 384 * 1024;

#[derive(Debug, Subcommand)]
pub enum KvCommand {
    /// Retrieves or lists data from the KV store.
    Get(GetArgs),
    /// Sets or updates data in the KV store.
    Put(PutArgs),
    /// Removes data from the KV store.
    Delete(DeleteArgs),
    /// Exports a tree from the KV store as JSON.
    Export(ExportArgs),
    /// Imports a tree stored as JSON to the KV store.
    Import(ImportArgs),
}

#[derive(Debug, clap::Args)]
pub struct GetArgs {
    #[command(flatten)]
    http: HttpArgs,
    /// Base64 encode the value.
    #[arg(long)]
    base64: bool,
    /// Every field of the pair, not just its value.
    #[arg(long)]
    detailed: bool,
    /// List the keys under the prefix, not their values.
    #[arg(long)]
    keys: bool,
    /// Every pair under the prefix.
    #[arg(long)]
    recurse: bool,
    /// With `-keys`: list keys up to this separator only.
    #[arg(long, default_value = "/")]
    separator: String,
    /// KEY_OR_PREFIX
    #[arg(num_args = 0..)]
    args: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct PutArgs {
    #[command(flatten)]
    http: HttpArgs,
    /// Check-and-set: write only if the key's ModifyIndex is `-modify-index`.
    #[arg(long)]
    cas: bool,
    /// An unsigned integer stored with the pair.
    #[arg(long, default_value_t = 0)]
    flags: u64,
    /// The data is base64 encoded.
    #[arg(long)]
    base64: bool,
    #[arg(long = "modify-index", default_value_t = 0)]
    modify_index: u64,
    /// The session for `-acquire` and `-release`.
    #[arg(long, default_value = "")]
    session: String,
    /// Acquire the lock on the key for `-session`.
    #[arg(long)]
    acquire: bool,
    /// Release the lock `-session` holds on the key.
    #[arg(long)]
    release: bool,
    /// KEY [DATA]: DATA is the value, `@file` for a file's contents, `-` for stdin.
    #[arg(num_args = 0..)]
    args: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct DeleteArgs {
    #[command(flatten)]
    http: HttpArgs,
    /// Check-and-set: delete only if the key's ModifyIndex is `-modify-index`.
    #[arg(long)]
    cas: bool,
    #[arg(long = "modify-index", default_value_t = 0)]
    modify_index: u64,
    /// Delete every key under the prefix.
    #[arg(long)]
    recurse: bool,
    /// KEY_OR_PREFIX
    #[arg(num_args = 0..)]
    args: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    #[command(flatten)]
    http: HttpArgs,
    /// PREFIX
    #[arg(num_args = 0..)]
    args: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    #[command(flatten)]
    http: HttpArgs,
    /// DATA: the JSON of `kv export`, `@file` for a file's, `-` for stdin.
    #[arg(num_args = 0..)]
    args: Vec<String>,
}

pub async fn run(command: KvCommand) -> anyhow::Result<()> {
    match command {
        KvCommand::Get(args) => get(args).await,
        KvCommand::Put(args) => put(args).await,
        KvCommand::Delete(args) => delete(args).await,
        KvCommand::Export(args) => export(args).await,
        KvCommand::Import(args) => import(args).await,
    }
}

/// The optional single KEY_OR_PREFIX, without a leading `/` (keys never start with one).
fn key_or_prefix(args: &[String]) -> anyhow::Result<String> {
    match args {
        [] => Ok(String::new()),
        [key] => Ok(key.strip_prefix('/').unwrap_or(key).to_owned()),
        _ => Err(fail(format!(
            "Too many arguments (expected 1, got {})",
            args.len()
        ))),
    }
}

fn decode_value(pair: &Value) -> Vec<u8> {
    pair["Value"]
        .as_str()
        .and_then(|v| base64::engine::general_purpose::STANDARD.decode(v).ok())
        .unwrap_or_default()
}

fn encode_base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The pairs under `prefix`; none if there are none.
async fn list(api: &Api, prefix: &str) -> anyhow::Result<Vec<Value>> {
    let reply = api
        .send(
            Method::GET,
            &format!("/v1/kv/{}?recurse", encode_path(prefix)),
            Bytes::new(),
        )
        .await?;
    if reply.status == StatusCode::NOT_FOUND {
        return Ok(Vec::new());
    }
    let body = reply.ok()?;
    let pairs: Value = serde_json::from_slice(&body)?;
    Ok(pairs.as_array().cloned().unwrap_or_default())
}

async fn get(args: GetArgs) -> anyhow::Result<()> {
    let key = key_or_prefix(&args.args)?;
    if key.is_empty() && !(args.recurse || args.keys) {
        return Err(fail("Error! Missing KEY argument"));
    }
    let api = args.http.api()?;
    let mut out = std::io::stdout().lock();
    if args.keys {
        let path = format!(
            "/v1/kv/{}?keys&separator={}",
            encode_path(&key),
            percent_encode(&args.separator)
        );
        let keys = async {
            let reply = api.send(Method::GET, &path, Bytes::new()).await?;
            if reply.status == StatusCode::NOT_FOUND {
                return Ok(Value::Null);
            }
            let body = reply.ok()?;
            Ok(serde_json::from_slice(&body)?)
        }
        .await
        .or_fail("Error querying Consul agent")?;
        for key in keys.as_array().into_iter().flatten() {
            writeln!(out, "{}", key.as_str().unwrap_or_default())?;
        }
        return Ok(());
    }
    if args.recurse {
        let pairs = list(&api, &key)
            .await
            .or_fail("Error querying Consul agent")?;
        for (i, pair) in pairs.iter().enumerate() {
            if args.detailed {
                writeln!(out, "{}", detailed(pair, args.base64))?;
                if i + 1 < pairs.len() {
                    writeln!(out)?;
                }
            } else {
                out.write_all(&line(pair, args.base64))?;
            }
        }
        return Ok(());
    }
    let reply = api
        .send(
            Method::GET,
            &format!("/v1/kv/{}", encode_path(&key)),
            Bytes::new(),
        )
        .await
        .or_fail("Error querying Consul agent")?;
    if reply.status == StatusCode::NOT_FOUND {
        return Err(fail(format!("Error! No key exists at: {key}")));
    }
    let pairs: Value = async { Ok(serde_json::from_slice(&reply.ok()?)?) }
        .await
        .or_fail("Error querying Consul agent")?;
    let Some(pair) = pairs.get(0) else {
        return Err(fail(format!("Error! No key exists at: {key}")));
    };
    if args.detailed {
        writeln!(out, "{}", detailed(pair, args.base64))?;
    } else {
        out.write_all(&decode_value(pair))?;
        writeln!(out)?;
    }
    Ok(())
}

/// `key:value` as `kv get -recurse` prints a pair (the value as raw bytes).
fn line(pair: &Value, base64: bool) -> Vec<u8> {
    let mut out = pair["Key"].as_str().unwrap_or_default().as_bytes().to_vec();
    out.push(b':');
    let value = decode_value(pair);
    if base64 {
        out.extend(encode_base64(&value).into_bytes());
    } else {
        out.extend(value);
    }
    out.push(b'\n');
    out
}

/// `kv get -detailed`: every field of the pair, aligned as Go's tabwriter does.
fn detailed(pair: &Value, base64: bool) -> String {
    let number = |field: &str| pair[field].as_u64().unwrap_or_default();
    let session = pair["Session"]
        .as_str()
        .filter(|s| !s.is_empty())
        .unwrap_or("-");
    let value = decode_value(pair);
    let value = if base64 {
        encode_base64(&value)
    } else {
        String::from_utf8_lossy(&value).into_owned()
    };
    tabwriter(
        &format!(
            "CreateIndex\t{}\nFlags\t{}\nKey\t{}\nLockIndex\t{}\nModifyIndex\t{}\nSession\t{session}\nValue\t{value}",
            number("CreateIndex"),
            number("Flags"),
            pair["Key"].as_str().unwrap_or_default(),
            number("LockIndex"),
            number("ModifyIndex"),
        ),
        0,
        6,
    )
}

async fn put(args: PutArgs) -> anyhow::Result<()> {
    let (key, data) = match args.args.as_slice() {
        [] => return Err(fail("Error! Missing KEY argument")),
        [key] => (key.clone(), Vec::new()),
        [key, data] if data.is_empty() => (key.clone(), Vec::new()),
        [key, data] => (
            key.clone(),
            read_data(data).map_err(|err| fail(format!("Error! {err}")))?,
        ),
        more => {
            return Err(fail(format!(
                "Error! Too many arguments (expected 1 or 2, got {})",
                more.len()
            )))
        }
    };
    let data = if args.base64 {
        let text = String::from_utf8_lossy(&data);
        base64::engine::general_purpose::STANDARD
            .decode(text.trim_end())
            .map_err(|err| fail(format!("Error! Cannot base 64 decode data: {err}")))?
    } else {
        data
    };
    if (args.release || args.acquire) && args.session.is_empty() {
        return Err(fail(
            "Error! Missing -session (required with -acquire and -release)",
        ));
    }
    if args.cas && args.modify_index == 0 {
        return Err(fail("Must specify -modify-index with -cas!"));
    }
    let api = args.http.api()?;
    let mut query = Vec::new();
    if args.flags != 0 {
        query.push(format!("flags={}", args.flags));
    }
    let operation = if args.cas {
        query.push(format!("cas={}", args.modify_index));
        "cas"
    } else if args.acquire {
        query.push(format!("acquire={}", percent_encode(&args.session)));
        "acquire"
    } else if args.release {
        query.push(format!("release={}", percent_encode(&args.session)));
        "release"
    } else {
        "put"
    };
    let path = with_query(&format!("/v1/kv/{}", encode_path(&key)), &query);
    let written = async {
        let body = api.call(Method::PUT, &path, Bytes::from(data)).await?;
        anyhow::Ok(serde_json::from_slice::<Value>(&body)? == json!(true))
    }
    .await;
    match (operation, written) {
        ("cas", Err(err)) => Err(fail(format!("Error! Did not write to {key}: {err:#}"))),
        ("cas", Ok(false)) => Err(fail(format!("Error! Did not write to {key}: CAS failed"))),
        ("acquire", Ok(false)) => Err(fail("Error! Did not acquire lock")),
        ("release", Ok(false)) => Err(fail("Error! Did not release lock")),
        (_, Err(err)) => Err(fail(format!("Error! Failed writing data: {err:#}"))),
        ("acquire", Ok(true)) => {
            println!("Success! Lock acquired on: {key}");
            Ok(())
        }
        ("release", Ok(true)) => {
            println!("Success! Lock released on: {key}");
            Ok(())
        }
        // A plain put answers `true` unless a lock-delay or similar refused it; Consul's
        // command does not look.
        _ => {
            println!("Success! Data written to: {key}");
            Ok(())
        }
    }
}

fn with_query(path: &str, query: &[String]) -> String {
    if query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", query.join("&"))
    }
}

async fn delete(args: DeleteArgs) -> anyhow::Result<()> {
    let key = key_or_prefix(&args.args)?;
    if key.is_empty() && !args.recurse {
        return Err(fail("Error! Missing KEY argument"));
    }
    if args.cas && args.modify_index == 0 {
        return Err(fail(
            "Cannot delete a key that does not exist. Provide a -modify-index greater than than 0.",
        ));
    }
    if args.modify_index != 0 && !args.cas {
        return Err(fail("Cannot specify -modify-index without -cas!"));
    }
    if args.recurse && args.cas {
        return Err(fail("Cannot specify both -cas and -recurse!"));
    }
    let api = args.http.api()?;
    let path = format!("/v1/kv/{}", encode_path(&key));
    if args.recurse {
        api.call(Method::DELETE, &format!("{path}?recurse"), Bytes::new())
            .await
            .map_err(|err| fail(format!("Error! Did not delete prefix {key}: {err:#}")))?;
        println!("Success! Deleted keys with prefix: {key}");
        return Ok(());
    }
    if args.cas {
        let deleted = async {
            let body = api
                .call(
                    Method::DELETE,
                    &format!("{path}?cas={}", args.modify_index),
                    Bytes::new(),
                )
                .await?;
            anyhow::Ok(serde_json::from_slice::<Value>(&body)? == json!(true))
        }
        .await
        .map_err(|err| fail(format!("Error! Did not delete key {key}: {err:#}")))?;
        if !deleted {
            return Err(fail(format!("Error! Did not delete key {key}: CAS failed")));
        }
    } else {
        api.call(Method::DELETE, &path, Bytes::new())
            .await
            .map_err(|err| fail(format!("Error deleting key {key}: {err:#}")))?;
    }
    println!("Success! Deleted key: {key}");
    Ok(())
}

async fn export(args: ExportArgs) -> anyhow::Result<()> {
    let prefix = key_or_prefix(&args.args)?;
    let api = args.http.api()?;
    let pairs = list(&api, &prefix)
        .await
        .or_fail("Error querying Consul agent")?;
    println!("{}", export_json(&pairs));
    Ok(())
}

/// `kv export`'s JSON: `[{key, flags, value}]` with the value in base64, tab-indented.
fn export_json(pairs: &[Value]) -> String {
    let entries: Vec<Value> = pairs
        .iter()
        .map(|pair| {
            json!({
                "key": pair["Key"].as_str().unwrap_or_default(),
                "flags": pair["Flags"].as_u64().unwrap_or_default(),
                "value": pair["Value"].as_str().unwrap_or_default(),
            })
        })
        .collect();
    go_json(&Value::Array(entries), "\t")
}

/// One pair of `kv export`'s JSON.
#[derive(Debug, Deserialize)]
struct Entry {
    #[serde(default)]
    key: String,
    #[serde(default)]
    flags: u64,
    #[serde(default)]
    value: String,
}

/// An entry ready to write.
#[derive(Debug)]
struct Pair {
    key: String,
    flags: u64,
    value: Vec<u8>,
}

impl Pair {
    /// What it adds to a transaction's body.
    fn txn_size(&self) -> usize {
        self.key.len() + self.value.len().div_ceil(3) * 4 + 64
    }
}

async fn import(args: ImportArgs) -> anyhow::Result<()> {
    let data = match args.args.as_slice() {
        [] => return Err(fail("Error! Missing DATA argument")),
        [data] if data.is_empty() => return Err(fail("Error! Empty DATA argument")),
        [data] => read_data(data).map_err(|err| fail(format!("Error! {err}")))?,
        more => {
            return Err(fail(format!(
                "Error! Too many arguments (expected 1, got {})",
                more.len()
            )))
        }
    };
    let api = args.http.api()?;
    let entries: Vec<Entry> = serde_json::from_slice(&data)
        .map_err(|err| fail(format!("Cannot unmarshal data: {err}")))?;
    let pairs = entries
        .into_iter()
        .map(|entry| {
            let value = base64::engine::general_purpose::STANDARD
                .decode(&entry.value)
                .map_err(|err| {
                    fail(format!(
                        "Error base 64 decoding value for key {}: {err}",
                        entry.key
                    ))
                })?;
            Ok(Pair {
                key: entry.key,
                flags: entry.flags,
                value,
            })
        })
        .collect::<anyhow::Result<Vec<Pair>>>()?;
    let total = pairs.len();
    let mut progress = (total > LARGE_IMPORT).then(|| {
        Progress::new(
            "Importing keys",
            Some(total as u64),
            (total / 10) as u64,
            |n| n.to_string(),
        )
    });
    let mut done = 0;
    let mut out = std::io::stdout().lock();
    for batch in batches(&pairs) {
        let batch = &pairs[batch];
        write_batch(&api, batch).await?;
        for pair in batch {
            writeln!(out, "Imported: {}", pair.key)?;
        }
        done += batch.len();
        if let Some(progress) = &mut progress {
            progress.update(done as u64);
        }
    }
    if let Some(progress) = &mut progress {
        progress.finish(done as u64);
    }
    Ok(())
}

/// Consecutive runs of `pairs` that fit one transaction each; a pair too large for any
/// transaction is a run of its own.
fn batches(pairs: &[Pair]) -> Vec<std::ops::Range<usize>> {
    let mut runs = Vec::new();
    let mut start = 0;
    let mut size = 0;
    for (i, pair) in pairs.iter().enumerate() {
        let full = i - start == TXN_OPS || size + pair.txn_size() > TXN_BYTES;
        if i > start && full {
            runs.push(start..i);
            start = i;
            size = 0;
        }
        size += pair.txn_size();
    }
    if start < pairs.len() {
        runs.push(start..pairs.len());
    }
    runs
}

/// Writes a run of pairs: one transaction, or plain puts for a single pair or when the
/// agent refuses the transaction as too large.
async fn write_batch(api: &Api, batch: &[Pair]) -> anyhow::Result<()> {
    let failed = |pair: &Pair, why: String| {
        fail(format!(
            "Error! Failed writing data for key {}: {why}",
            pair.key
        ))
    };
    if batch.len() > 1 {
        let ops: Vec<Value> = batch
            .iter()
            .map(|pair| {
                json!({"KV": {
                    "Verb": "set",
                    "Key": pair.key,
                    "Value": encode_base64(&pair.value),
                    "Flags": pair.flags,
                }})
            })
            .collect();
        let reply = api
            .send(
                Method::PUT,
                "/v1/txn",
                Bytes::from(Value::Array(ops).to_string()),
            )
            .await
            .map_err(|err| failed(&batch[0], format!("{err:#}")))?;
        if reply.status.is_success() {
            return Ok(());
        }
        if reply.status == StatusCode::CONFLICT {
            let errors = reply.json().unwrap_or_default();
            let first = &errors["Errors"][0];
            let index = first["OpIndex"].as_u64().unwrap_or_default() as usize;
            let what = first["What"].as_str().unwrap_or("transaction rolled back");
            return Err(failed(
                batch.get(index).unwrap_or(&batch[0]),
                what.to_owned(),
            ));
        }
        if reply.status != StatusCode::PAYLOAD_TOO_LARGE {
            let err = reply.ok().unwrap_err();
            return Err(failed(&batch[0], format!("{err:#}")));
        }
    }
    for pair in batch {
        let mut path = format!("/v1/kv/{}", encode_path(&pair.key));
        if pair.flags != 0 {
            path.push_str(&format!("?flags={}", pair.flags));
        }
        api.call(Method::PUT, &path, Bytes::from(pair.value.clone()))
            .await
            .map_err(|err| failed(pair, format!("{err:#}")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(key: &str, flags: u64, value: &str, session: Option<&str>) -> Value {
        json!({
            "Key": key, "Flags": flags, "Value": encode_base64(value.as_bytes()),
            "CreateIndex": 5, "ModifyIndex": 7, "LockIndex": 1, "Session": session,
        })
    }

    #[test]
    fn detailed_pairs_line_up_like_consuls() {
        assert_eq!(
            detailed(&pair("foo", 42, "bar", None), false),
            "CreateIndex      5\n\
             Flags            42\n\
             Key              foo\n\
             LockIndex        1\n\
             ModifyIndex      7\n\
             Session          -\n\
             Value            bar"
        );
        let held = detailed(&pair("foo", 0, "bar", Some("abc")), true);
        assert!(held.contains("\nSession          abc\n"), "{held}");
        assert!(held.ends_with("\nValue            YmFy"), "{held}");
    }

    #[test]
    fn recursive_lines_are_key_colon_value() {
        assert_eq!(line(&pair("a/b", 0, "v 1", None), false), b"a/b:v 1\n");
        assert_eq!(line(&pair("a/b", 0, "v", None), true), b"a/b:dg==\n");
        assert_eq!(
            line(&json!({"Key": "empty", "Value": null}), false),
            b"empty:\n"
        );
    }

    #[test]
    fn exports_are_consuls_json() {
        let pairs = [pair("a", 0, "x", None), pair("b/c", 3, "", None)];
        assert_eq!(
            export_json(&pairs),
            "[\n\t{\n\t\t\"key\": \"a\",\n\t\t\"flags\": 0,\n\t\t\"value\": \"eA==\"\n\t},\n\
             \t{\n\t\t\"key\": \"b/c\",\n\t\t\"flags\": 3,\n\t\t\"value\": \"\"\n\t}\n]"
        );
        assert_eq!(export_json(&[]), "[]");
        // What export writes, import reads.
        let entries: Vec<Entry> = serde_json::from_str(&export_json(&pairs)).unwrap();
        assert_eq!(entries[1].key, "b/c");
        assert_eq!(entries[1].flags, 3);
    }

    #[test]
    fn imports_are_batched_by_count_and_size() {
        let small = |i: usize| Pair {
            key: format!("k{i}"),
            flags: 0,
            value: vec![b'x'; 10],
        };
        let pairs: Vec<Pair> = (0..130).map(small).collect();
        assert_eq!(batches(&pairs), vec![0..64, 64..128, 128..130]);
        let big = Pair {
            key: "big".into(),
            flags: 0,
            value: vec![0; TXN_BYTES],
        };
        let pairs = vec![small(0), big, small(1), small(2)];
        assert_eq!(batches(&pairs), vec![0..1, 1..2, 2..4]);
        assert!(batches(&[]).is_empty());
    }
}
