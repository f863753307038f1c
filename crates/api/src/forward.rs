//! A client agent's API: its own agent endpoints answered locally, everything else forwarded
//! to a server over server RPC, where the server's router answers it exactly as it would a
//! request made to it directly (blocking queries included).

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{RawQuery, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use http_body_util::BodyExt;
use serde_json::json;

use crate::agent::{acl_default_policy, default_intention_policy, CONSUL_COMPAT_VERSION};
use crate::error::ApiError;
use crate::params::Params;
use crate::{agent_routes, common_headers, render, AgentInfo, Enforcer, LocalContext, Telemetry};

/// Forwarded bodies are bounded like the server's largest (a snapshot restore).
const MAX_FORWARD_BODY: usize = 256 * 1024 * 1024;
/// A forwarded call may hold for a whole blocking query: the longest wait (10 min), its
/// jitter (1/16) and the leader hold time, with room to spare.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(11 * 60);

#[derive(Debug, Clone)]
struct ClientState {
    servers: rpc::Servers,
    info: AgentInfo,
    telemetry: Telemetry,
    acl: crate::AclSettings,
}

/// The whole `/v1` API of a client agent, each request timed. The agent's own endpoints
/// check tokens through `enforcer` (resolved by the servers, cached); what is forwarded is
/// checked by the server that answers it.
pub fn client_router(
    local: LocalContext,
    info: AgentInfo,
    servers: rpc::Servers,
    enforcer: Arc<Enforcer>,
) -> Router {
    let telemetry = local.telemetry.clone();
    let default_policy = enforcer.settings.default_policy;
    let state = ClientState {
        servers,
        info,
        telemetry: telemetry.clone(),
        acl: enforcer.settings.clone(),
    };
    let own = Router::new()
        .route("/v1/agent/self", get(client_self))
        .with_state(state.clone());
    let forwarded = Router::new().fallback(forward).with_state(state);
    agent_routes(local)
        .merge(own)
        .route_layer(axum::middleware::from_fn_with_state(
            enforcer,
            crate::authz::enforce,
        ))
        .merge(forwarded)
        .layer(axum::middleware::from_fn(crate::limits::bound_request))
        .layer(axum::middleware::from_fn_with_state(
            default_policy,
            common_headers,
        ))
        .layer(axum::middleware::from_fn_with_state(
            telemetry,
            crate::metrics::observe_http,
        ))
}

async fn client_self(
    State(state): State<ClientState>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref());
    let info = &state.info;
    let body = json!({
        "Config": {
            "Datacenter": info.datacenter,
            "PrimaryDatacenter": info.datacenter,
            "NodeName": info.node_name,
            "NodeID": info.node_id,
            "Revision": info.revision,
            "Server": false,
            "Version": CONSUL_COMPAT_VERSION,
            "BuildDate": "",
        },
        "DebugConfig": {
            "Datacenter": info.datacenter,
            "NodeName": info.node_name,
            "NodeID": info.node_id,
            "ServerMode": false,
            "HTTPPort": info.http_port,
            "GRPCPort": -1,
            "DefaultIntentionPolicy": default_intention_policy(info),
            "ACLResolverSettings": {"ACLDefaultPolicy": acl_default_policy(info)},
        },
        "Member": {
            "Name": info.node_name,
            "Addr": info.advertise_addr,
            "Port": 8301,
            "Tags": {"role": "node", "dc": info.datacenter, "id": info.node_id, "build": CONSUL_COMPAT_VERSION},
            "Status": 1,
        },
        "Stats": {
            "build": {"version": CONSUL_COMPAT_VERSION, "mesh_version": info.version},
            "consul": {"server": "false", "known_servers": state.servers.addrs().len().to_string()},
        },
        "Meta": {},
    });
    Ok(render::json(&body, params.pretty() || info.dev))
}

/// The agent's default token as a header, for a forwarded call that names no token of its
/// own: the server then decides as for a call made to it with that token, as Consul's agents
/// attach their default token to what they ask servers on a request's behalf.
fn default_token(
    state: &ClientState,
    parts: &axum::http::request::Parts,
) -> Option<(String, Vec<u8>)> {
    let query = Params::parse(parts.uri.query());
    if !state.acl.enabled || crate::authz::request_token(&parts.headers, &query).is_some() {
        return None;
    }
    let token = state.acl.tokens.default_token()?;
    Some(("x-consul-token".to_owned(), token.into_bytes()))
}

async fn forward(State(state): State<ClientState>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = match http_body_util::Limited::new(body, MAX_FORWARD_BODY)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes().to_vec(),
        Err(err) => {
            return ApiError::TooLarge(format!("Request body too large: {err}")).into_response()
        }
    };
    let request = rpc::HttpRequest {
        method: parts.method.to_string(),
        uri: parts
            .uri
            .path_and_query()
            .map_or_else(|| parts.uri.path().to_owned(), |pq| pq.to_string()),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.as_bytes().to_vec()))
            .chain(default_token(&state, &parts))
            .collect(),
        body,
    };
    let answered = state.servers.http(request, FORWARD_TIMEOUT).await;
    state.telemetry.count_client_rpc(answered.is_ok());
    match answered {
        Ok(answer) => into_response(answer),
        Err(err) => {
            tracing::warn!(%err, method = %parts.method, uri = %parts.uri, "forwarding to a server failed");
            ApiError::Internal(format!("rpc error making call: {err}")).into_response()
        }
    }
}

fn into_response(answer: rpc::HttpResponse) -> Response {
    let mut resp = Response::new(Body::from(answer.body));
    *resp.status_mut() = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::BAD_GATEWAY);
    for (name, value) in answer.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(&value),
        ) {
            resp.headers_mut().append(name, value);
        }
    }
    resp
}

/// Answers a forwarded request with a server's router (the other end of [`forward`]).
pub fn handler(router: Router) -> rpc::HttpHandler {
    std::sync::Arc::new(move |req: rpc::HttpRequest| {
        let router = router.clone();
        Box::pin(async move {
            use tower::ServiceExt;
            let mut builder = axum::http::Request::builder()
                .method(Method::from_bytes(req.method.as_bytes()).unwrap_or(Method::GET))
                .uri(req.uri);
            for (name, value) in req.headers {
                builder = builder.header(name, value);
            }
            let request = match builder.body(Body::from(req.body)) {
                Ok(request) => request,
                Err(err) => {
                    return rpc::HttpResponse {
                        status: 400,
                        headers: Vec::new(),
                        body: format!("Invalid forwarded request: {err}").into_bytes(),
                    }
                }
            };
            let resp = match router.oneshot(request).await {
                Ok(resp) => resp,
                Err(never) => match never {},
            };
            let (parts, body) = resp.into_parts();
            let body = body
                .collect()
                .await
                .map(|b| b.to_bytes().to_vec())
                .unwrap_or_default();
            rpc::HttpResponse {
                status: parts.status.as_u16(),
                headers: parts
                    .headers
                    .iter()
                    .map(|(k, v)| (k.as_str().to_owned(), v.as_bytes().to_vec()))
                    .collect(),
                body,
            }
        })
    })
}
