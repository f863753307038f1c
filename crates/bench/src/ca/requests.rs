//! The requests of `mesh-bench ca` and how their answers are judged: first-time leaf requests
//! (one signing each) and authorize decisions, sent by closed-loop workers on the caller's
//! single-threaded runtime; and the burst against the default CSR limit.
//!
//! Judging is separate from sending so it is tested without an agent.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, StatusCode};
use serde::Serialize;

use crate::load::HttpClient;
use crate::target::fetch;

/// Per-request deadline. The agent itself gives up on the servers after 10 s (HTTP 500).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How one answer counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    /// HTTP 429: over the servers' `CSRMaxPerSecond`.
    RateLimited,
    Error(String),
}

/// The name of the `n`th service of a phase: distinct across phases and rounds by `tag`.
pub fn service_name(tag: &str, n: u64) -> String {
    format!("{tag}-{n}")
}

/// Judges a `GET /v1/agent/connect/ca/leaf/<service>` answer: a signed leaf for `service`
/// with its private key.
pub fn check_leaf(status: StatusCode, body: &[u8], service: &str) -> Verdict {
    if status == StatusCode::TOO_MANY_REQUESTS {
        return Verdict::RateLimited;
    }
    if !status.is_success() {
        return Verdict::Error(format!(
            "leaf {service}: HTTP {status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        ));
    }
    let leaf: serde_json::Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return Verdict::Error(format!("leaf {service}: not JSON: {e}")),
    };
    let text = |key: &str| leaf[key].as_str().unwrap_or_default();
    if text("SerialNumber").is_empty()
        || !text("CertPEM").starts_with("-----BEGIN CERTIFICATE-----")
        || !text("PrivateKeyPEM").contains("PRIVATE KEY-----")
        || text("ValidBefore").is_empty()
    {
        return Verdict::Error(format!("leaf {service}: incomplete answer"));
    }
    if !text("Service").is_empty() && text("Service") != service {
        return Verdict::Error(format!("leaf {service}: issued for {:?}", text("Service")));
    }
    Verdict::Ok
}

/// The SPIFFE URI of `service` in the default namespace of dc1.
pub fn spiffe_uri(trust_domain: &str, service: &str) -> String {
    format!("spiffe://{trust_domain}/ns/default/dc/dc1/svc/{service}")
}

/// One authorize request and the decision it must get.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizeCase {
    pub body: Bytes,
    pub authorized: bool,
}

impl AuthorizeCase {
    pub fn new(trust_domain: &str, source: &str, target: &str, authorized: bool) -> Self {
        let body = serde_json::json!({
            "Target": target,
            "ClientCertURI": spiffe_uri(trust_domain, source),
        });
        AuthorizeCase {
            body: Bytes::from(body.to_string()),
            authorized,
        }
    }
}

/// Judges a `POST /v1/agent/connect/authorize` answer against the expected decision.
pub fn check_authorize(status: StatusCode, body: &[u8], authorized: bool) -> Verdict {
    if !status.is_success() {
        return Verdict::Error(format!(
            "authorize: HTTP {status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        ));
    }
    let answer: serde_json::Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return Verdict::Error(format!("authorize: not JSON: {e}")),
    };
    match answer["Authorized"].as_bool() {
        Some(got) if got == authorized => Verdict::Ok,
        Some(got) => Verdict::Error(format!(
            "authorize: Authorized {got}, expected {authorized} ({})",
            answer["Reason"]
        )),
        None => Verdict::Error("authorize: no Authorized in the answer".to_owned()),
    }
}

/// What one phase of requests did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Outcome {
    pub ok: u64,
    pub rate_limited: u64,
    pub errors: u64,
    /// Latency of every successful request in microseconds, ascending.
    #[serde(skip)]
    pub latencies_us: Vec<u64>,
    /// From the first request sent to the last answer received.
    pub elapsed_secs: f64,
    pub first_error: Option<String>,
}

impl Outcome {
    fn count(&mut self, verdict: Verdict, latency: Duration) {
        match verdict {
            Verdict::Ok => {
                self.ok += 1;
                self.latencies_us.push(latency.as_micros() as u64);
            }
            Verdict::RateLimited => self.rate_limited += 1,
            Verdict::Error(e) => {
                self.errors += 1;
                self.first_error.get_or_insert(e);
            }
        }
    }

    fn merge(&mut self, other: Outcome) {
        self.ok += other.ok;
        self.rate_limited += other.rate_limited;
        self.errors += other.errors;
        self.latencies_us.extend(other.latencies_us);
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

/// What a phase sends.
#[derive(Debug, Clone)]
pub enum Work {
    /// First-time leaf requests for services `<tag>-0`, `<tag>-1`, ...: one signing each.
    Sign { tag: String },
    /// Authorize requests, the cases in turn.
    Authorize { cases: Arc<Vec<AuthorizeCase>> },
}

async fn send(http: &HttpClient, req: Request<Full<Bytes>>) -> Result<(StatusCode, Bytes), String> {
    match tokio::time::timeout(REQUEST_TIMEOUT, fetch(http, req)).await {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(e)) => Err(format!("{e:#}")),
        Err(_) => Err(format!("no answer within {REQUEST_TIMEOUT:?}")),
    }
}

/// One request of `work`, number `n` of the phase.
async fn one(http: &HttpClient, base: &str, work: &Work, n: u64) -> Verdict {
    match work {
        Work::Sign { tag } => {
            let service = service_name(tag, n);
            let req = Request::get(format!("{base}/v1/agent/connect/ca/leaf/{service}"))
                .body(Full::new(Bytes::new()))
                .expect("a GET is built from valid parts");
            match send(http, req).await {
                Ok((status, body)) => check_leaf(status, &body, &service),
                Err(e) => Verdict::Error(format!("leaf {service}: {e}")),
            }
        }
        Work::Authorize { cases } => {
            let case = &cases[(n % cases.len() as u64) as usize];
            let req = Request::post(format!("{base}/v1/agent/connect/authorize"))
                .header("content-type", "application/json")
                .body(Full::new(case.body.clone()))
                .expect("a POST is built from valid parts");
            match send(http, req).await {
                Ok((status, body)) => check_authorize(status, &body, case.authorized),
                Err(e) => Verdict::Error(format!("authorize: {e}")),
            }
        }
    }
}

/// `concurrency` workers sending `work` to the agent at `base` for `duration` (then the
/// requests in flight finish and count), or until `limit` requests have been sent.
pub async fn run(
    http: &HttpClient,
    base: &str,
    work: Work,
    concurrency: usize,
    duration: Duration,
    limit: Option<u64>,
) -> Outcome {
    let start = Instant::now();
    let deadline = start + duration;
    let next = Arc::new(AtomicU64::new(0));
    let work = Arc::new(work);
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (http, base, work, next) = (http.clone(), base.to_owned(), work.clone(), next.clone());
        workers.spawn(async move {
            let mut out = Outcome::default();
            while Instant::now() < deadline {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if limit.is_some_and(|l| n >= l) {
                    break;
                }
                let sent = Instant::now();
                let verdict = one(&http, &base, &work, n).await;
                let failed = matches!(verdict, Verdict::Error(_));
                out.count(verdict, sent.elapsed());
                if failed {
                    // A dead agent refuses at once; do not spin a core on refusals.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            out
        });
    }
    let mut total = Outcome::default();
    while let Some(joined) = workers.join_next().await {
        total.merge(joined.expect("request workers do not panic"));
    }
    total.elapsed_secs = start.elapsed().as_secs_f64();
    total.latencies_us.sort_unstable();
    total
}

/// How long after a burst the refused services took to get their leaves: the agent retries a
/// rate-limited signing by itself after 0.5-3 s.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Drain {
    /// From the start of the burst until every service had its leaf (`None`: not in time).
    pub all_signed_secs: Option<f64>,
    /// Services still without a leaf at the end.
    pub unsigned: u64,
    /// 429 answers to the polls meanwhile (each a poll, not a signing attempt).
    pub polls_rate_limited: u64,
    pub poll_errors: u64,
    pub first_error: Option<String>,
}

/// Polls, every `every`, the leaf of each of services `<tag>-0..count` not yet seen signed
/// (`signed[n]`), until all are or `timeout` passes since `start`.
pub async fn drain(
    http: &HttpClient,
    base: &str,
    tag: &str,
    mut signed: Vec<bool>,
    start: Instant,
    every: Duration,
    timeout: Duration,
) -> Drain {
    let mut out = Drain::default();
    loop {
        let pending: Vec<u64> = (0..signed.len() as u64)
            .filter(|&n| !signed[n as usize])
            .collect();
        if pending.is_empty() {
            out.all_signed_secs = Some(start.elapsed().as_secs_f64());
            return out;
        }
        if start.elapsed() > timeout {
            out.unsigned = pending.len() as u64;
            return out;
        }
        tokio::time::sleep(every).await;
        for n in pending {
            let work = Work::Sign {
                tag: tag.to_owned(),
            };
            match one(http, base, &work, n).await {
                Verdict::Ok => signed[n as usize] = true,
                Verdict::RateLimited => out.polls_rate_limited += 1,
                Verdict::Error(e) => {
                    out.poll_errors += 1;
                    out.first_error.get_or_insert(e);
                }
            }
        }
    }
}

/// The burst: `count` first-time leaf requests, `concurrency` at a time, each answered 200 or
/// 429; which services were signed at once.
pub async fn burst(
    http: &HttpClient,
    base: &str,
    tag: &str,
    count: u64,
    concurrency: usize,
) -> (Outcome, Vec<bool>) {
    let start = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (http, base, next) = (http.clone(), base.to_owned(), next.clone());
        let work = Work::Sign {
            tag: tag.to_owned(),
        };
        workers.spawn(async move {
            let mut out = Outcome::default();
            let mut signed = Vec::new();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= count {
                    break;
                }
                let sent = Instant::now();
                let verdict = one(&http, &base, &work, n).await;
                if verdict == Verdict::Ok {
                    signed.push(n);
                }
                out.count(verdict, sent.elapsed());
            }
            (out, signed)
        });
    }
    let mut total = Outcome::default();
    let mut signed = vec![false; count as usize];
    while let Some(joined) = workers.join_next().await {
        let (out, ns) = joined.expect("request workers do not panic");
        total.merge(out);
        for n in ns {
            signed[n as usize] = true;
        }
    }
    total.elapsed_secs = start.elapsed().as_secs_f64();
    total.latencies_us.sort_unstable();
    (total, signed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEAF: &str = r#"{"SerialNumber":"1a:2b","CertPEM":"-----BEGIN CERTIFICATE-----\nMII\n-----END CERTIFICATE-----\n","PrivateKeyPEM":"-----BEGIN EC PRIVATE KEY-----\nMHc\n-----END EC PRIVATE KEY-----\n","Service":"s-1","ServiceURI":"spiffe://x.mesh/ns/default/dc/dc1/svc/s-1","ValidAfter":"2026-11-24T00:00:00Z","ValidBefore":"2026-11-27T00:00:00Z","CreateIndex":9,"ModifyIndex":9}"#;

    #[test]
    fn leaf_answers() {
        assert_eq!(
            check_leaf(StatusCode::OK, LEAF.as_bytes(), "s-1"),
            Verdict::Ok
        );
        assert!(matches!(
            check_leaf(StatusCode::OK, LEAF.as_bytes(), "s-2"),
            Verdict::Error(e) if e.contains("issued for")
        ));
        assert_eq!(
            check_leaf(StatusCode::TOO_MANY_REQUESTS, b"Rate limit reached", "s-1"),
            Verdict::RateLimited
        );
        assert!(matches!(
            check_leaf(StatusCode::INTERNAL_SERVER_ERROR, b"no answer", "s-1"),
            Verdict::Error(e) if e.contains("500") && e.contains("no answer")
        ));
        let no_key = LEAF.replace("PrivateKeyPEM", "Other");
        assert!(matches!(
            check_leaf(StatusCode::OK, no_key.as_bytes(), "s-1"),
            Verdict::Error(_)
        ));
        assert!(matches!(
            check_leaf(StatusCode::OK, b"[", "s-1"),
            Verdict::Error(_)
        ));
    }

    #[test]
    fn authorize_requests_and_answers() {
        assert_eq!(service_name("r1-c16", 7), "r1-c16-7");
        let case = AuthorizeCase::new("x.mesh", "web", "db", false);
        let body: serde_json::Value = serde_json::from_slice(&case.body).unwrap();
        assert_eq!(body["Target"], "db");
        assert_eq!(
            body["ClientCertURI"],
            "spiffe://x.mesh/ns/default/dc/dc1/svc/web"
        );
        let deny = br#"{"Authorized":false,"Reason":"Matched L4 intention: web => db (deny)"}"#;
        assert_eq!(check_authorize(StatusCode::OK, deny, false), Verdict::Ok);
        assert!(matches!(
            check_authorize(StatusCode::OK, deny, true),
            Verdict::Error(e) if e.contains("expected true")
        ));
        assert!(matches!(
            check_authorize(StatusCode::BAD_REQUEST, b"bad", true),
            Verdict::Error(_)
        ));
        assert!(matches!(
            check_authorize(StatusCode::OK, b"{}", true),
            Verdict::Error(_)
        ));
    }

    #[test]
    fn outcomes_count_and_merge() {
        let mut a = Outcome::default();
        a.count(Verdict::Ok, Duration::from_micros(5));
        a.count(Verdict::RateLimited, Duration::from_micros(1));
        let mut b = Outcome::default();
        b.count(Verdict::Error("x".into()), Duration::ZERO);
        b.count(Verdict::Ok, Duration::from_micros(3));
        a.merge(b);
        assert_eq!((a.ok, a.rate_limited, a.errors), (2, 1, 1));
        assert_eq!(a.latencies_us, [5, 3]);
        assert_eq!(a.first_error.as_deref(), Some("x"));
    }
}
