//! `/v1/connect/intentions*`: the Connect intentions as Consul CE serves them. Name-based
//! (`exact`) and legacy ID-based writes, the list, `match` and `check`.
//!
//! Every check a request goes through is Consul's, in Consul's order: the HTTP handler's
//! (enterprise query parameters, required parameters, name forms, body decoding) here, the
//! RPC's and the state store's in the `intentions` crate, which a leader runs before proposing
//! so that a refused write never costs a raft entry. Reads block on the intentions table.
//!
//! Only the default namespace and partition exist. Where Consul CE would silently drop a
//! namespace or partition named in a query (`team/web` written as `web`), it is refused here
//! with the text Consul uses for the same refusal elsewhere: quietly widening an intention to
//! another service is not a compatibility worth keeping.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use consensus::TABLE_INTENTIONS;
use go_text::quote as go_quote;
use intentions::wire::{self as iw, IntentionName};
use intentions::{IntentionError, IntentionOp, IntentionWrite, Intentions, MatchBy};
use serde_json::{json, Value};

use crate::authz::Authz;
use crate::blocking::{self, Watch};
use crate::catalog::ListFilter;
use crate::error::ApiError;
use crate::kv::read_body;
use crate::params::{check_dc, Params, ReadOptions};
use crate::render;
use crate::Ctx;

/// An intention body is a few hundred bytes; L7 rules make it a few kilobytes.
const MAX_BODY: usize = 4 * 1024 * 1024;

/// `GET /v1/connect/intentions` (list) and `POST /v1/connect/intentions` (legacy create).
pub async fn root(
    State(ctx): State<Ctx>,
    authz: Authz,
    method: Method,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref());
    if method == Method::POST {
        create(&ctx, &authz, &params, &headers, body).await
    } else {
        list(&ctx, &authz, &params, &headers).await
    }
}

async fn list(
    ctx: &Ctx,
    authz: &Authz,
    params: &Params,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let opts = ReadOptions::parse_query(ctx, params)?;
    reject_enterprise_meta(params, headers)?;
    check_dc(ctx, params)?;
    let filter = ListFilter::parse(params)?;
    let (meta, (body, filtered)) = read(ctx, &opts, |ixns| {
        let mut rows: Vec<Value> = ixns.list().into_iter().map(iw::intention_json).collect();
        let filtered = readable_only(authz, &mut rows);
        (filter.keep(rows.into_iter()), filtered)
    })
    .await?;
    let mut resp = render::json_with_meta(&body, opts.pretty, &meta);
    authz.mark_filtered(filtered, &mut resp);
    Ok(resp)
}

/// Keeps the intentions (as JSON) whose destination the token may `intention:read`; says
/// whether any was dropped.
fn readable_only(authz: &Authz, rows: &mut Vec<Value>) -> bool {
    authz.filter(rows, acl::Resource::Intention, acl::Access::Read, |row| {
        row["DestinationName"].as_str().unwrap_or_default()
    })
}

/// `intention:<access>` on the destination of intention `id`; an unknown ID passes, to be
/// answered as before.
fn require_on_intention(
    ctx: &Ctx,
    authz: &Authz,
    id: &str,
    access: acl::Access,
) -> Result<(), ApiError> {
    let destination = {
        let state = ctx.node.reader().state();
        state
            .intentions
            .get(id)
            .ok()
            .map(|ixn| iw::intention_json(ixn)["DestinationName"].clone())
    };
    match destination.as_ref().and_then(Value::as_str) {
        Some(name) => authz.require(acl::Resource::Intention, name, access),
        None => Ok(()),
    }
}

/// Consul's reply to a legacy create or update.
fn id_reply(id: &str, pretty: bool) -> Response {
    render::json(&json!({ "ID": id }), pretty)
}

async fn create(
    ctx: &Ctx,
    authz: &Authz,
    params: &Params,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    reject_enterprise_meta(params, headers)?;
    let body = read_body(headers, body, MAX_BODY, too_large).await?;
    // Unlike every other intention write, Consul answers a create's decode error with a 500.
    let write: IntentionWrite = iw::decode(&body)
        .map_err(|e| ApiError::Internal(format!("Failed to decode request body: {e}")))?;
    authz.require(
        acl::Resource::Intention,
        &write.destination_name,
        acl::Access::Write,
    )?;
    let op = IntentionOp::Create {
        id: new_id(ctx),
        now: go_time_now(),
        write,
    };
    let id = apply(ctx, op).await?.unwrap_or_default();
    Ok(id_reply(&id, params.pretty()))
}

/// `GET|PUT|DELETE /v1/connect/intentions/exact?source=&destination=`.
pub async fn exact(
    State(ctx): State<Ctx>,
    method: Method,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref());
    reject_enterprise_meta(&params, &headers)?;
    match method {
        Method::PUT => put_exact(&ctx, &params, &headers, body).await,
        Method::DELETE => delete_exact(&ctx, &params).await,
        _ => get_exact(&ctx, &params).await,
    }
}

async fn get_exact(ctx: &Ctx, params: &Params) -> Result<Response, ApiError> {
    let opts = ReadOptions::parse_query(ctx, params)?;
    // A read accepts empty names (and finds nothing); writes refuse them.
    let source = required(params, "source", false)?;
    let destination = required(params, "destination", false)?;
    let src = component("source", source, true)?;
    let dst = component("destination", destination, false)?;
    check_dc(ctx, params)?;
    for (field, ns) in [
        ("SourceNS", &src.namespace),
        ("DestinationNS", &dst.namespace),
    ] {
        if !is_default(ns) {
            return Err(ApiError::Internal(format!(
                "Invalid {field} {}: {NAMESPACES}",
                go_quote(ns)
            )));
        }
    }
    reject_partitions(&src, &dst)?;
    // No intention has a peer as its source here.
    let peered = !src.peer.is_empty();
    read_one(ctx, &opts, |ixns| {
        if peered {
            return Err(IntentionError::NotFound);
        }
        ixns.get_exact(&src.name, &dst.name).map(iw::intention_json)
    })
    .await
}

async fn put_exact(
    ctx: &Ctx,
    params: &Params,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let (src, dst) = exact_names(params)?;
    let body = read_body(headers, body, MAX_BODY, too_large).await?;
    let write: IntentionWrite = iw::decode(&body).map_err(decode_failed)?;
    reject_write_tenancy(&src, &dst)?;
    // The names come from the query; any in the body are ignored, as in Consul.
    let op = IntentionOp::Upsert {
        source: src.name,
        destination: dst.name,
        write,
    };
    apply(ctx, op).await?;
    Ok(render::json(&true, params.pretty()))
}

async fn delete_exact(ctx: &Ctx, params: &Params) -> Result<Response, ApiError> {
    let (src, dst) = exact_names(params)?;
    reject_write_tenancy(&src, &dst)?;
    // Consul's pre-flight: deleting what does not exist succeeds without a raft write. Only
    // the leader's state is fresh enough to say so.
    let missing = ctx.node.leader_view().is_leader
        && ctx
            .node
            .reader()
            .state()
            .intentions
            .get_exact(&src.name, &dst.name)
            .is_err();
    if !missing {
        let op = IntentionOp::DeleteExact {
            source: src.name,
            destination: dst.name,
        };
        apply(ctx, op).await?;
    }
    Ok(render::json(&true, params.pretty()))
}

/// `GET /v1/connect/intentions/match?by=source|destination&name=…` (`name` repeatable).
pub async fn matching(
    State(ctx): State<Ctx>,
    authz: Authz,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref());
    let opts = ReadOptions::parse_query(&ctx, &params)?;
    reject_enterprise_meta(&params, &headers)?;
    let by: Vec<&str> = params.all("by").collect();
    let [by] = by.as_slice() else {
        return Err(missing("by"));
    };
    let by = MatchBy::parse(by).ok_or_else(|| {
        ApiError::Internal("'by' parameter must be one of 'source' or 'destination'".into())
    })?;
    let names: Vec<&str> = params.all("name").collect();
    if names.is_empty() {
        return Err(missing("name"));
    }
    let entries = names
        .iter()
        .map(|raw| {
            iw::parse_name(raw, false)
                .map(|parsed| (*raw, parsed))
                .map_err(|e| ApiError::Internal(format!("name {} is invalid: {e}", go_quote(raw))))
        })
        .collect::<Result<Vec<_>, _>>()?;
    check_dc(&ctx, &params)?;
    for (_, entry) in &entries {
        if !is_default(&entry.namespace) {
            return Err(ApiError::Internal(format!(
                "Invalid match entry namespace {}: {NAMESPACES}",
                go_quote(&entry.namespace)
            )));
        }
        if !is_default(&entry.partition) {
            return Err(ApiError::Internal(format!(
                "Invalid match entry partition {}: {PARTITIONS}",
                go_quote(&entry.partition)
            )));
        }
    }
    let (meta, body) = read(&ctx, &opts, |ixns| {
        // Go marshals a map with its keys sorted; a name asked twice is answered once.
        let answer: BTreeMap<&str, Value> = entries
            .iter()
            .map(|(raw, entry)| {
                let mut rows = match iw::intentions_json(ixns.matching(by, &entry.name)) {
                    Value::Array(rows) => rows,
                    other => vec![other],
                };
                readable_only(&authz, &mut rows);
                (*raw, Value::Array(rows))
            })
            .collect();
        json!(answer)
    })
    .await?;
    Ok(render::json_with_meta(&body, opts.pretty, &meta))
}

/// `GET /v1/connect/intentions/check?source=&destination=[&source-type=consul]`: whether a
/// connection would be allowed. L7 intentions deny; no match is the default policy.
pub async fn check(
    State(ctx): State<Ctx>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref());
    let opts = ReadOptions::parse_query(&ctx, &params)?;
    reject_enterprise_meta(&params, &headers)?;
    let source_type = params.get("source-type").unwrap_or(CONSUL_SOURCE);
    let source = required(&params, "source", false)?;
    let destination = required(&params, "destination", false)?;
    // Only a Consul source has Consul's name forms; another type is refused below, after the
    // namespaces, as Consul's RPC does.
    let src = if source_type == CONSUL_SOURCE {
        component("source", source, false)?
    } else {
        IntentionName {
            name: source.to_owned(),
            ..IntentionName::default()
        }
    };
    let dst = component("destination", destination, false)?;
    check_dc(&ctx, &params)?;
    for (what, ns) in [("source", &src.namespace), ("destination", &dst.namespace)] {
        if !is_default(ns) {
            return Err(ApiError::Internal(format!(
                "Invalid {what} namespace {}: {NAMESPACES}",
                go_quote(ns)
            )));
        }
    }
    reject_partitions(&src, &dst)?;
    if source_type != CONSUL_SOURCE {
        return Err(ApiError::Internal(format!(
            "unsupported SourceType: {}",
            go_quote(source_type)
        )));
    }
    // Consul answers from the server's state without blocking and without query metadata.
    blocking::barrier(&ctx, opts.consistency).await?;
    let allowed = ctx.node.reader().state().intentions.check(
        &src.name,
        &dst.name,
        ctx.agent.intention_default.allows(),
    );
    Ok(render::json(&json!({ "Allowed": allowed }), opts.pretty))
}

/// `GET|PUT|DELETE /v1/connect/intentions/:id` (legacy, ID-based).
pub async fn by_id(
    State(ctx): State<Ctx>,
    authz: Authz,
    method: Method,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref());
    let access = if method == Method::GET {
        acl::Access::Read
    } else {
        acl::Access::Write
    };
    require_on_intention(&ctx, &authz, &id, access)?;
    match method {
        Method::PUT => {
            reject_enterprise_meta(&params, &headers)?;
            let body = read_body(&headers, body, MAX_BODY, too_large).await?;
            let write: IntentionWrite = iw::decode(&body).map_err(decode_failed)?;
            authz.require(
                acl::Resource::Intention,
                &write.destination_name,
                acl::Access::Write,
            )?;
            let op = IntentionOp::Update {
                id: id.clone(),
                now: go_time_now(),
                write,
            };
            let id = apply(&ctx, op).await?.unwrap_or(id);
            Ok(id_reply(&id, params.pretty()))
        }
        Method::DELETE => {
            apply(&ctx, IntentionOp::Delete { id }).await?;
            Ok(render::json(&true, params.pretty()))
        }
        _ => {
            let opts = ReadOptions::parse(&ctx, &params)?;
            read_one(&ctx, &opts, |ixns| ixns.get(&id).map(iw::intention_json)).await
        }
    }
}

// ---- reads -----------------------------------------------------------------------------------

/// A read of the intentions, blocking on the intentions table.
async fn read<T>(
    ctx: &Ctx,
    opts: &ReadOptions,
    eval: impl Fn(&Intentions) -> T,
) -> Result<(render::QueryMeta, T), ApiError> {
    blocking::read(ctx, opts, Watch::Table(TABLE_INTENTIONS), |state| {
        (state.intentions.index(), eval(&state.intentions))
    })
    .await
}

/// A read of one intention. A lookup that fails answers at once, blocking or not: Consul's
/// blocking query returns any error other than its own sentinels immediately.
async fn read_one(
    ctx: &Ctx,
    opts: &ReadOptions,
    lookup: impl Fn(&Intentions) -> Result<Value, IntentionError>,
) -> Result<Response, ApiError> {
    let now = ReadOptions {
        blocking: None,
        ..opts.clone()
    };
    let (mut meta, mut found) = read(ctx, &now, &lookup).await?;
    if let (Ok(_), Some(blocking)) = (&found, opts.blocking) {
        if meta.index == blocking.index {
            (meta, found) = read(ctx, opts, &lookup).await?;
        }
    }
    let intention = found.map_err(refused)?;
    Ok(render::json_with_meta(&intention, opts.pretty, &meta))
}

// ---- writes ----------------------------------------------------------------------------------

/// Proposes an intention write and returns the ID Consul answers a legacy write with. The
/// leader checks the write against its state first; a follower's state may be behind, so it
/// forwards and lets the state machine refuse.
async fn apply(ctx: &Ctx, op: IntentionOp) -> Result<Option<String>, ApiError> {
    if ctx.node.leader_view().is_leader {
        let valid = ctx.node.reader().state().intentions.validate(&op);
        valid.map_err(refused)?;
    }
    let written = ctx
        .node
        .write(consensus::Op::Intention(Box::new(op)))
        .await?;
    match written.response {
        consensus::Response::Intention(Ok(id)) => Ok(id),
        consensus::Response::Intention(Err(err)) => Err(refused(err)),
        other => Err(ApiError::Internal(format!(
            "unexpected write result: {other:?}"
        ))),
    }
}

/// A new legacy ID, unused (Consul's `GenerateUUID` with its uniqueness check).
fn new_id(ctx: &Ctx) -> String {
    let state = ctx.node.reader().state();
    loop {
        let id = uuid::Uuid::new_v4().to_string();
        if !state.intentions.contains_id(&id) {
            return id;
        }
    }
}

/// Now as Go marshals a `time.Time` in UTC: RFC 3339 with nanoseconds, trailing zeros cut
/// (`2024-05-01T10:11:12.1234Z`, or no fraction at all).
fn go_time_now() -> String {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    go_time(since.as_secs(), since.subsec_nanos())
}

fn go_time(secs: u64, nanos: u32) -> String {
    let stamp = crate::wire::rfc3339_from_unix_ms(secs.saturating_mul(1000));
    // `YYYY-MM-DDTHH:MM:SS`, without the milliseconds and the zone.
    let seconds = stamp.split('.').next().unwrap_or(&stamp);
    if nanos == 0 {
        return format!("{seconds}Z");
    }
    let fraction = format!("{nanos:09}");
    format!("{seconds}.{}Z", fraction.trim_end_matches('0'))
}

// ---- request checks ----------------------------------------------------------------------------

const CONSUL_SOURCE: &str = "consul";
const NAMESPACES: &str = "Namespaces is a Consul Enterprise feature";
const PARTITIONS: &str = "Partitions is a Consul Enterprise feature";

/// Consul CE's `parseEntMeta`: any namespace or partition in the request is refused, even
/// `default`.
pub(crate) fn reject_enterprise_meta(params: &Params, headers: &HeaderMap) -> Result<(), ApiError> {
    let header = |name: &str| headers.get(name).is_some_and(|v| !v.as_bytes().is_empty());
    let query = |name: &str| params.get(name).is_some_and(|v| !v.is_empty());
    let refusal = if header("X-Consul-Namespace") {
        r#"Invalid header: "X-Consul-Namespace" - Namespaces are a Consul Enterprise feature"#
    } else if query("ns") {
        r#"Invalid query parameter: "ns" - Namespaces are a Consul Enterprise feature"#
    } else if header("X-Consul-Partition") {
        r#"Invalid header: "X-Consul-Partition" - Partitions are a Consul Enterprise feature"#
    } else if query("partition") {
        r#"Invalid query parameter: "partition" - Partitions are a Consul Enterprise feature"#
    } else {
        return Ok(());
    };
    Err(ApiError::BadRequest(refusal.into()))
}

fn missing(name: &str) -> ApiError {
    ApiError::Internal(format!("required query parameter '{name}' not set"))
}

/// A parameter that must be given exactly once (and, for writes, not be empty).
fn required<'a>(params: &'a Params, name: &'a str, non_empty: bool) -> Result<&'a str, ApiError> {
    let values: Vec<&str> = params.all(name).collect();
    match values.as_slice() {
        [value] if !(non_empty && value.is_empty()) => Ok(*value),
        _ => Err(missing(name)),
    }
}

/// A `source`/`destination` value split into its parts, with Consul's error text.
fn component(what: &str, value: &str, allow_peer: bool) -> Result<IntentionName, ApiError> {
    iw::parse_name(value, allow_peer)
        .map_err(|e| ApiError::Internal(format!("{what} {} is invalid: {e}", go_quote(value))))
}

/// The names of an exact write (Consul's `parseIntentionQueryExact`).
fn exact_names(params: &Params) -> Result<(IntentionName, IntentionName), ApiError> {
    let source = required(params, "source", true)?;
    let destination = required(params, "destination", true)?;
    let src = component("source", source, false)?;
    let dst = component("destination", destination, false)?;
    Ok((src, dst))
}

fn is_default(tenancy: &str) -> bool {
    tenancy.is_empty() || tenancy.eq_ignore_ascii_case(intentions::DEFAULT_NAMESPACE)
}

fn reject_partitions(src: &IntentionName, dst: &IntentionName) -> Result<(), ApiError> {
    for (what, partition) in [("source", &src.partition), ("destination", &dst.partition)] {
        if !is_default(partition) {
            return Err(ApiError::Internal(format!(
                "Invalid {what} partition {}: {PARTITIONS}",
                go_quote(partition)
            )));
        }
    }
    Ok(())
}

/// The tenancy of an exact write, refused in the order (and with the texts) of Consul's
/// `validateEnterpriseIntention`.
fn reject_write_tenancy(src: &IntentionName, dst: &IntentionName) -> Result<(), ApiError> {
    for (what, name) in [("source", src), ("destination", dst)] {
        if !is_default(&name.partition) {
            return Err(ApiError::Internal(format!(
                "Invalid {what} partition {}: {PARTITIONS}",
                go_quote(&name.partition)
            )));
        }
        if !is_default(&name.namespace) {
            return Err(ApiError::Internal(format!(
                "Invalid {what} namespace {}: {NAMESPACES}",
                go_quote(&name.namespace)
            )));
        }
    }
    Ok(())
}

/// An intentions error as Consul answers it.
fn refused(err: IntentionError) -> ApiError {
    let text = err.to_string();
    match err.http_status() {
        400 => ApiError::BadRequest(text),
        404 => ApiError::NotFound(text),
        _ => ApiError::Internal(text),
    }
}

fn decode_failed(err: iw::DecodeError) -> ApiError {
    ApiError::BadRequest(format!("Request decode failed: {err}"))
}

fn too_large(len: u64) -> String {
    format!("Request body({len} bytes) too large, max size: {MAX_BODY} bytes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_time_trims_the_fraction_like_go() {
        assert_eq!(go_time(0, 0), "1970-01-01T00:00:00Z");
        assert_eq!(
            go_time(1_700_000_000, 120_000_000),
            "2023-11-14T22:13:20.12Z"
        );
        assert_eq!(go_time(1_700_000_000, 7), "2023-11-14T22:13:20.000000007Z");
    }

    #[test]
    fn go_quote_escapes_like_strconv_quote() {
        assert_eq!(go_quote("web"), r#""web""#);
        assert_eq!(go_quote("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(go_quote("a\tb\u{1}"), r#""a\tb\x01""#);
        assert_eq!(go_quote("dé"), "\"dé\"");
    }
}
