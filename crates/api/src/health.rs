//! `/v1/health/*`: node, checks/:service, service/:service, connect/:service and
//! state/:state.

use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use catalog::wire as cw;
use catalog::{topic, Status};

use crate::blocking::{self, Watch};
use crate::catalog::{Instances, ListFilter};
use crate::error::ApiError;
use crate::params::{Params, ReadOptions};
use crate::render;
use crate::Ctx;

pub async fn node(
    State(ctx): State<Ctx>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref());
    let opts = ReadOptions::parse(&ctx, &params)?;
    let list = ListFilter::parse(&params)?;
    let index_topic = topic::node(&name);
    let (meta, checks) = blocking::read(&ctx, &opts, Watch::Catalog(&index_topic), |state| {
        let rows = state.catalog.node_checks(&name).into_iter().map(cw::check);
        (state.catalog.index(&index_topic), list.keep(rows))
    })
    .await?;
    Ok(render::json_with_meta(&checks, opts.pretty, &meta))
}

pub async fn checks(
    State(ctx): State<Ctx>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref());
    let opts = ReadOptions::parse(&ctx, &params)?;
    let list = ListFilter::parse(&params)?;
    let index_topic = topic::service(&name);
    let (meta, checks) = blocking::read(&ctx, &opts, Watch::Catalog(&index_topic), |state| {
        let rows = state
            .catalog
            .service_checks(&name)
            .into_iter()
            .filter(|c| {
                state
                    .catalog
                    .node(&c.node)
                    .is_some_and(|n| list.node_meta_matches(n))
            })
            .map(cw::check);
        (state.catalog.index(&index_topic), list.keep(rows))
    })
    .await?;
    Ok(render::json_with_meta(&checks, opts.pretty, &meta))
}

pub async fn service(
    State(ctx): State<Ctx>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    service_health(ctx, name, query, false).await
}

pub async fn connect(
    State(ctx): State<Ctx>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    service_health(ctx, name, query, true).await
}

async fn service_health(
    ctx: Ctx,
    name: String,
    query: Option<String>,
    connect: bool,
) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref());
    let opts = ReadOptions::parse(&ctx, &params)?;
    let list = ListFilter::parse(&params)?;
    let passing = match params.get("passing") {
        None => false,
        Some(raw) => parse_go_bool(raw)
            .ok_or_else(|| ApiError::BadRequest("Invalid value for ?passing".into()))?,
    };
    let instances = Instances {
        name: &name,
        connect,
    };
    let index_topic = instances.topic();
    let (meta, rows) = blocking::read(&ctx, &opts, Watch::Catalog(&index_topic), |state| {
        let rows = state
            .catalog
            .health(instances.select(&state.catalog, &list))
            .into_iter()
            .filter(|h| !passing || h.status() == Status::Passing)
            .map(|h| cw::service_health(&h));
        (state.catalog.index(&index_topic), list.keep(rows))
    })
    .await?;
    Ok(render::json_with_meta(&rows, opts.pretty, &meta))
}

pub async fn state(
    State(ctx): State<Ctx>,
    Path(state_name): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref());
    let opts = ReadOptions::parse(&ctx, &params)?;
    let list = ListFilter::parse(&params)?;
    let wanted = match state_name.as_str() {
        "any" => None,
        other => Some(
            Status::parse(other)
                .ok_or_else(|| ApiError::BadRequest("Invalid check state".into()))?,
        ),
    };
    let (meta, checks) = blocking::read(&ctx, &opts, Watch::Catalog(topic::CHECKS), |state| {
        let rows = state
            .catalog
            .checks_in_state(wanted)
            .into_iter()
            .filter(|c| {
                state
                    .catalog
                    .node(&c.node)
                    .is_some_and(|n| list.node_meta_matches(n))
            })
            .map(cw::check);
        (state.catalog.index(topic::CHECKS), list.keep(rows))
    })
    .await?;
    Ok(render::json_with_meta(&checks, opts.pretty, &meta))
}

/// Go's `strconv.ParseBool`, with a bare flag meaning true.
pub(crate) fn parse_go_bool(raw: &str) -> Option<bool> {
    match raw {
        "" | "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}
