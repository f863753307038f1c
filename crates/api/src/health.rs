//! `/v1/health/*`: node, checks/:service, service/:service, connect/:service and
//! state/:state.

use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use catalog::wire as cw;
use catalog::{topic, Status};

use crate::authz::Authz;
use crate::catalog::{CatalogRead, Instances};
use crate::error::ApiError;
use crate::params::Params;
use crate::Ctx;

pub async fn node(
    State(ctx): State<Ctx>,
    authz: Authz,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref());
    let read = CatalogRead::parse(&ctx, &params, "health/node", authz)?;
    read.run(&ctx, &topic::node(&name), |catalog, list| {
        let rows = catalog
            .node_checks(&name)
            .into_iter()
            .filter(|c| list.check_readable(c))
            .map(cw::check);
        list.keep(rows)
    })
    .await
}

pub async fn checks(
    State(ctx): State<Ctx>,
    authz: Authz,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref());
    let read = CatalogRead::parse(&ctx, &params, "health/checks", authz)?;
    read.run(&ctx, &topic::service(&name), |catalog, list| {
        let rows = catalog
            .service_checks(&name)
            .into_iter()
            .filter(|c| list.check_node_matches(catalog, c) && list.check_readable(c))
            .map(cw::check);
        list.keep(rows)
    })
    .await
}

pub async fn service(
    State(ctx): State<Ctx>,
    authz: Authz,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    service_health(ctx, authz, name, query, false).await
}

pub async fn connect(
    State(ctx): State<Ctx>,
    authz: Authz,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    service_health(ctx, authz, name, query, true).await
}

async fn service_health(
    ctx: Ctx,
    authz: Authz,
    name: String,
    query: Option<String>,
    connect: bool,
) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref());
    let read = CatalogRead::parse(&ctx, &params, "health/service", authz)?;
    let passing = match params.get("passing") {
        None => false,
        Some(raw) => parse_go_bool(raw)
            .ok_or_else(|| ApiError::BadRequest("Invalid value for ?passing".into()))?,
    };
    let instances = Instances {
        name: &name,
        connect,
    };
    read.run(&ctx, &instances.topic(), |catalog, list| {
        let rows = catalog
            .health(instances.select(catalog, list))
            .into_iter()
            .filter(|h| !passing || h.status() == Status::Passing)
            .map(|h| cw::service_health(&h));
        list.keep(rows)
    })
    .await
}

pub async fn state(
    State(ctx): State<Ctx>,
    authz: Authz,
    Path(state_name): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref());
    let read = CatalogRead::parse(&ctx, &params, &format!("health/state/{state_name}"), authz)?;
    let wanted = match state_name.as_str() {
        "any" => None,
        other => Some(
            Status::parse(other)
                .ok_or_else(|| ApiError::BadRequest("Invalid check state".into()))?,
        ),
    };
    read.run(&ctx, topic::CHECKS, |catalog, list| {
        let rows = catalog
            .checks_in_state(wanted)
            .into_iter()
            .filter(|c| list.check_node_matches(catalog, c) && list.check_readable(c))
            .map(cw::check);
        list.keep(rows)
    })
    .await
}

/// Go's `strconv.ParseBool`, with a bare flag meaning true.
pub(crate) fn parse_go_bool(raw: &str) -> Option<bool> {
    match raw {
        "" | "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}
