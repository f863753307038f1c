//! `GET /v1/agent/monitor?loglevel=&logjson`: the agent's log lines as they happen, one per
//! line of a chunked response, until the client goes away.
//!
//! Lines come from the process's [`config::cli::LogStream`]. A reader that falls more than the
//! stream's backlog behind misses lines rather than slowing the agent, and is told how many it
//! missed in a `WARN` line of its own. A client that disconnects is noticed when the next line
//! cannot be written.

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use config::cli::{LogRecord, Monitored};
use tracing::Level;

use crate::error::ApiError;
use crate::metrics::Observed;
use crate::params::Params;

pub(crate) async fn monitor(
    State(observed): State<Arc<Observed>>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(q.as_deref());
    let level = match params.get("loglevel") {
        None | Some("") => Level::INFO,
        Some(raw) => config::cli::parse_monitor_level(raw)
            .ok_or_else(|| ApiError::BadRequest(format!("Unknown log level: {raw}")))?,
    };
    let json = params.has("logjson");
    let Some(logs) = observed.telemetry.logs() else {
        return Err(ApiError::Internal(
            "log streaming is not available: this process did not set up logging".into(),
        ));
    };
    let subscription = logs.subscribe(level);
    let lines = futures::stream::unfold(subscription, move |mut subscription| async move {
        let line = match subscription.next().await? {
            Monitored::Line(record) => render(&record, json),
            Monitored::Missed(missed) => render(&missed_notice(missed), json),
        };
        Some((Ok::<_, Infallible>(Bytes::from(line)), subscription))
    });
    Ok((
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        Body::from_stream(lines),
    )
        .into_response())
}

fn render(record: &LogRecord, json: bool) -> String {
    let mut line = if json { record.json() } else { record.text() };
    line.push('\n');
    line
}

/// The line a reader gets in place of the lines it missed.
fn missed_notice(missed: u64) -> LogRecord {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    LogRecord {
        timestamp: crate::wire::rfc3339_from_unix_ms(now_ms),
        level: Level::WARN,
        target: "monitor",
        message: format!("dropped {missed} log lines: this reader fell behind"),
        fields: Vec::new(),
    }
}
