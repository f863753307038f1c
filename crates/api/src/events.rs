//! User events: `PUT /v1/event/fire/:name` gossips an event to the datacenter and
//! `GET /v1/event/list` lists the last ones this agent kept, blocking on Consul's opaque index
//! (the newest event's UUID folded into 64 bits).

use agent::events::{list_index, FireError, UserEvents};
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method};
use axum::response::Response;
use axum::Router;
use base64::Engine;
use gossip::UserEvent;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::kv::read_body;
use crate::params::{Blocking, Params};
use crate::{methods, render};

/// The largest body read; gossip refuses anything above its 512-byte event limit with a 500.
const MAX_BODY: usize = 64 * 1024;

#[derive(Debug, Clone)]
struct EventsContext {
    events: UserEvents,
    datacenter: String,
    dev: bool,
}

pub(crate) fn routes(events: UserEvents, datacenter: String, dev: bool) -> Router {
    Router::new()
        .route("/v1/event/fire/", methods(&[Method::PUT], missing_name))
        .route("/v1/event/fire/{name}", methods(&[Method::PUT], fire))
        .route("/v1/event/list", methods(&[Method::GET], list))
        .with_state(EventsContext {
            events,
            datacenter,
            dev,
        })
}

/// An event as Consul renders it: `Payload` base64, or `null` when empty.
fn event_json(event: &UserEvent) -> Value {
    let payload = (!event.payload.is_empty())
        .then(|| base64::engine::general_purpose::STANDARD.encode(&event.payload));
    json!({
        "ID": event.id,
        "Name": event.name,
        "Payload": payload,
        "NodeFilter": event.node_filter,
        "ServiceFilter": event.service_filter,
        "TagFilter": event.tag_filter,
        "Version": 1,
        "LTime": event.ltime,
    })
}

async fn missing_name() -> ApiError {
    ApiError::BadRequest("Missing name".into())
}

/// `PUT /v1/event/fire/:name?node&service&tag`, the body is the payload. Like Consul, a bad
/// filter or an event gossip cannot carry is a 500 with the reason.
async fn fire(
    State(ctx): State<EventsContext>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let params = Params::parse(q.as_deref());
    if params
        .get("dc")
        .is_some_and(|dc| !dc.is_empty() && dc != ctx.datacenter)
    {
        return Err(ApiError::Internal("No path to datacenter".into()));
    }
    let payload = read_body(&headers, body, MAX_BODY, |len| {
        format!("Request body({len} bytes) too large, max size: {MAX_BODY} bytes")
    })
    .await?;
    let filter = |key| params.get(key).unwrap_or_default();
    let event = ctx
        .events
        .fire(
            &name,
            payload.to_vec(),
            filter("node"),
            filter("service"),
            filter("tag"),
        )
        .await
        .map_err(|err| match err {
            FireError::Invalid(err) => ApiError::Internal(err.to_string()),
            FireError::Gossip(err) => ApiError::Internal(err.to_string()),
        })?;
    Ok(render::json(
        &event_json(&event),
        ctx.dev || params.pretty(),
    ))
}

/// `GET /v1/event/list?name`: the events kept, oldest first. With `?index`, waits until the
/// list's index differs from it (or `?wait` passes).
async fn list(
    State(ctx): State<EventsContext>,
    authz: crate::authz::Authz,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(q.as_deref());
    let blocking = Blocking::parse(&params)?;
    let name = params.get("name").filter(|n| !n.is_empty());
    let deadline = blocking.map(|b| tokio::time::Instant::now() + b.wait);
    let mut changes = ctx.events.changes();
    loop {
        changes.borrow_and_update();
        let mut events = ctx.events.list(name);
        // Consul filters by `event:read` on each name; the index stays the unfiltered list's.
        let index = list_index(&events);
        let filtered = authz.filter(&mut events, acl::Resource::Event, acl::Access::Read, |e| {
            &e.name
        });
        let waiting = blocking.is_some_and(|b| b.index == index);
        if let (true, Some(deadline)) = (waiting, deadline) {
            tokio::select! {
                changed = changes.changed() => if changed.is_ok() { continue },
                () = tokio::time::sleep_until(deadline) => {}
            }
        }
        let body: Vec<Value> = events.iter().map(event_json).collect();
        let mut resp = render::json(&body, ctx.dev || params.pretty());
        resp.headers_mut()
            .insert("X-Consul-Index", HeaderValue::from(index));
        authz.mark_filtered(filtered, &mut resp);
        return Ok(resp);
    }
}
