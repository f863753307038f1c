//! What an agent says about the pool, in one shape for both systems: mesh's
//! `GET /v1/agent/members` JSON, serf's RPC `members` answer, and the failure lines of both
//! agents' logs.
//!
//! Pure: text and values in, member views out.

use anyhow::{bail, Context as _};
use serde::Deserialize;

use super::msgpack::Value;

/// A member's status as the agent reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Alive,
    Leaving,
    Left,
    Failed,
    /// Anything else (serf's `none`, a code mesh does not send).
    Other,
}

impl Status {
    /// serf's integer code, as mesh reports it: 1 alive, 2 leaving, 3 left, 4 failed.
    pub fn from_code(code: u64) -> Self {
        match code {
            1 => Status::Alive,
            2 => Status::Leaving,
            3 => Status::Left,
            4 => Status::Failed,
            _ => Status::Other,
        }
    }

    /// serf's name of the status.
    pub fn from_name(name: &str) -> Self {
        match name {
            "alive" => Status::Alive,
            "leaving" => Status::Leaving,
            "left" => Status::Left,
            "failed" => Status::Failed,
            _ => Status::Other,
        }
    }
}

/// One member in one agent's view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberView {
    pub name: String,
    pub status: Status,
}

/// Parses mesh's `GET /v1/agent/members` answer.
pub fn mesh_members(body: &[u8]) -> anyhow::Result<Vec<MemberView>> {
    #[derive(Deserialize)]
    struct Member {
        #[serde(rename = "Name")]
        name: String,
        #[serde(rename = "Status")]
        status: u64,
    }
    let members: Vec<Member> =
        serde_json::from_slice(body).context("/v1/agent/members is not a JSON member list")?;
    Ok(members
        .into_iter()
        .map(|m| MemberView {
            name: m.name,
            status: Status::from_code(m.status),
        })
        .collect())
}

/// Parses the body of serf's RPC `members` answer: `{Members: [{Name, Addr, Port, Tags,
/// Status, ...}]}`.
pub fn serf_members(body: &Value) -> anyhow::Result<Vec<MemberView>> {
    let Some(Value::Array(members)) = body.get("Members") else {
        bail!("serf members answer has no Members array: {body:?}");
    };
    members
        .iter()
        .map(|m| {
            let name = m.get("Name").and_then(Value::as_str);
            let status = m.get("Status").and_then(Value::as_str);
            match (name, status) {
                (Some(name), Some(status)) => Ok(MemberView {
                    name: name.to_owned(),
                    status: Status::from_name(status),
                }),
                _ => bail!("serf member without Name or Status: {m:?}"),
            }
        })
        .collect()
}

/// Whether `view` lists every one of `names` alive.
pub fn all_alive<'a>(view: &[MemberView], mut names: impl Iterator<Item = &'a str>) -> bool {
    names.all(|name| {
        view.iter()
            .any(|m| m.name == name && m.status == Status::Alive)
    })
}

/// The status `view` gives `name`, if it lists it.
pub fn status_of(view: &[MemberView], name: &str) -> Option<Status> {
    view.iter().find(|m| m.name == name).map(|m| m.status)
}

/// What an agent's log says happened to other members.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogFindings {
    /// Members this agent declared failed, once per declaration.
    pub failed: Vec<String>,
    /// Members this agent suspected (serf logs these at INFO; mesh only at DEBUG, so none).
    pub suspected: Vec<String>,
    /// Times the pool declared this agent itself down and it refuted or rejoined.
    pub refuted: usize,
}

/// Removes terminal colour sequences (`ESC [ ... letter`): mesh's logger colours its output
/// even into a file.
pub fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Reads a mesh agent's log: `INFO member failed member=NAME addr=...` and
/// `INFO declared down by the pool; rejoined node=...`.
pub fn mesh_log_findings(log: &str) -> LogFindings {
    let mut found = LogFindings::default();
    for line in log.lines().map(strip_ansi) {
        if line.contains(" member failed ") || line.ends_with(" member failed") {
            if let Some(name) = field(&line, "member") {
                found.failed.push(name.to_owned());
            }
        } else if line.contains("declared down by the pool") {
            found.refuted += 1;
        }
    }
    found
}

/// Reads a serf agent's log: `[INFO] serf: EventMemberFailed: NAME ADDR`,
/// `[INFO] memberlist: Suspect NAME has failed, no acks received` and
/// `[WARN] memberlist: Refuting a suspect message (from: ...)` (or a dead message).
pub fn serf_log_findings(log: &str) -> LogFindings {
    let mut found = LogFindings::default();
    for line in log.lines() {
        if let Some(rest) = after(line, "serf: EventMemberFailed: ") {
            if let Some(name) = rest.split_whitespace().next() {
                found.failed.push(name.to_owned());
            }
        } else if let Some(rest) = after(line, "memberlist: Suspect ") {
            if let Some(name) = rest.strip_suffix(" has failed, no acks received") {
                found.suspected.push(name.trim().to_owned());
            }
        } else if line.contains("memberlist: Refuting a ") {
            found.refuted += 1;
        }
    }
    found
}

fn after<'a>(line: &'a str, marker: &str) -> Option<&'a str> {
    line.find(marker).map(|i| &line[i + marker.len()..])
}

/// The value of `key=value` in a tracing log line (unquoted, up to the next space).
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|word| word.strip_prefix(key)?.strip_prefix('='))
        .map(|v| v.trim_matches('"'))
}
