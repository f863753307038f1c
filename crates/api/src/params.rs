//! Query-string handling with Consul's semantics: a bare `?recurse` counts as present, the
//! common read options (`dc`, `stale`, `consistent`, `index`, `wait`, `pretty`) are parsed once,
//! and bad values get Consul's 400 texts.

use std::time::Duration;

use crate::error::ApiError;
use crate::Ctx;

/// The decoded query string, in order, keeping repeated keys.
#[derive(Debug, Default, Clone)]
pub struct Params(Vec<(String, String)>);

impl Params {
    pub fn parse(raw: Option<&str>) -> Self {
        let pairs = raw
            .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default();
        Params(pairs)
    }

    pub fn has(&self, key: &str) -> bool {
        self.0.iter().any(|(k, _)| k == key)
    }

    /// The first value of `key` (empty for a bare flag).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a repeatable `key`, in order.
    pub fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// An unsigned integer parameter; Go's `strconv.ParseUint` error text on failure.
    pub fn u64(&self, key: &str) -> Result<Option<u64>, ApiError> {
        self.get(key)
            .map(|v| {
                v.parse::<u64>().map_err(|_| {
                    ApiError::BadRequest(format!(
                        "strconv.ParseUint: parsing {v:?}: invalid syntax"
                    ))
                })
            })
            .transpose()
    }

    /// Go's `url.Values.Encode()`: sorted by key, form-encoded. Consul echoes it in errors.
    pub fn encode(&self) -> String {
        let mut sorted = self.0.clone();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        form_urlencoded::Serializer::new(String::new())
            .extend_pairs(sorted)
            .finish()
    }

    /// Consul's `conflictingFlags`: at most one of `flags` may be present.
    pub fn at_most_one_of(&self, flags: &[&str]) -> Result<(), ApiError> {
        if flags.iter().filter(|f| self.has(f)).count() > 1 {
            return Err(ApiError::BadRequest(format!(
                "Conflicting flags: {}\n",
                self.encode()
            )));
        }
        Ok(())
    }

    pub fn pretty(&self) -> bool {
        self.has("pretty")
    }

    /// The parameters that shape a read's body, in order: everything but the blocking and
    /// consistency options, which change when a body is sent, never what it says.
    pub fn shape(&self) -> String {
        const TIMING: [&str; 6] = ["index", "wait", "stale", "consistent", "cached", "dc"];
        form_urlencoded::Serializer::new(String::new())
            .extend_pairs(self.0.iter().filter(|(k, _)| !TIMING.contains(&k.as_str())))
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consistency {
    /// Default: linearizable, served by the leader after it confirms leadership.
    Default,
    Consistent,
    Stale,
}

impl Consistency {
    pub fn header_value(self) -> &'static str {
        match self {
            Consistency::Default => "leader",
            Consistency::Consistent => "consistent",
            Consistency::Stale => "stale",
        }
    }
}

/// Consul's defaults: wait 5 minutes, at most 10.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(300);
pub const MAX_WAIT: Duration = Duration::from_secs(600);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Blocking {
    pub index: u64,
    pub wait: Duration,
}

/// Options every read endpoint takes.
#[derive(Debug, Clone)]
pub struct ReadOptions {
    pub consistency: Consistency,
    pub blocking: Option<Blocking>,
    pub pretty: bool,
}

impl ReadOptions {
    pub fn parse(ctx: &Ctx, params: &Params) -> Result<Self, ApiError> {
        check_dc(ctx, params)?;
        Self::parse_query(ctx, params)
    }

    /// The query options alone, without the `?dc` check. Consul validates these on every KV
    /// request, writes included, so a malformed `?index` is refused before anything is written.
    pub fn parse_query(ctx: &Ctx, params: &Params) -> Result<Self, ApiError> {
        let stale = params.has("stale");
        let consistent = params.has("consistent");
        if stale && consistent {
            return Err(ApiError::BadRequest(
                "Cannot specify ?stale with ?consistent, conflicting semantics.".into(),
            ));
        }
        let consistency = match (stale, consistent) {
            (true, _) => Consistency::Stale,
            (_, true) => Consistency::Consistent,
            _ => Consistency::Default,
        };
        Ok(ReadOptions {
            consistency,
            blocking: Blocking::parse(params)?,
            pretty: params.pretty() || ctx.agent.dev,
        })
    }
}

impl Blocking {
    /// `?index` and `?wait`, Consul's `parseWait`: `None` unless an index above 0 is given;
    /// an empty `?wait=` or `?index=` counts as absent.
    pub fn parse(params: &Params) -> Result<Option<Blocking>, ApiError> {
        let wait = match params.get("wait") {
            None | Some("") => None,
            Some(raw) => Some(
                config::parse_go_duration(raw)
                    .map_err(|_| ApiError::BadRequest("Invalid wait time".into()))?,
            ),
        };
        let index = match params.get("index") {
            None | Some("") => 0,
            Some(raw) => raw
                .parse::<u64>()
                .map_err(|_| ApiError::BadRequest("Invalid index".into()))?,
        };
        Ok((index > 0).then(|| Blocking {
            index,
            wait: match wait {
                Some(w) if !w.is_zero() => w.min(MAX_WAIT),
                _ => DEFAULT_WAIT,
            },
        }))
    }
}

/// `?dc=` names the local datacenter or is refused with Consul's text.
pub fn check_dc(ctx: &Ctx, params: &Params) -> Result<(), ApiError> {
    match params.get("dc") {
        Some(dc) if !dc.is_empty() && dc != ctx.agent.datacenter => {
            Err(ApiError::Internal("No path to datacenter".into()))
        }
        _ => Ok(()),
    }
}
