//! The sidecar's Prometheus endpoint: `GET /metrics` in the text exposition format (0.0.4),
//! rendered on each scrape from the listeners' counters and the authorizer's denials.
//!
//! Every series carries `service` (the service the sidecar fronts); upstream series add
//! `upstream`, denials add `source`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use proxy::metrics::{HistogramSnapshot, HttpCounts};
use proxy::{InboundMetrics, OutboundMetrics};
use tokio::net::TcpListener;
use tracing::debug;

use crate::authorize::IntentionsAuthorizer;
use crate::config::UpstreamSpec;

/// What a scrape reads: the current listeners' counters.
#[derive(Debug)]
pub struct Stats {
    service: String,
    authz: IntentionsAuthorizer,
    inbound: Mutex<Option<Arc<InboundMetrics>>>,
    upstreams: Mutex<Vec<Upstream>>,
}

#[derive(Debug)]
struct Upstream {
    destination: String,
    bind: SocketAddr,
    metrics: Arc<OutboundMetrics>,
}

impl Stats {
    pub(crate) fn new(service: &str, authz: IntentionsAuthorizer) -> Stats {
        Stats {
            service: service.to_owned(),
            authz,
            inbound: Mutex::default(),
            upstreams: Mutex::default(),
        }
    }

    pub(crate) fn set_inbound(&self, metrics: Arc<InboundMetrics>) {
        *self.inbound.lock().unwrap_or_else(PoisonError::into_inner) = Some(metrics);
    }

    pub(crate) fn add_upstream(&self, spec: &UpstreamSpec, metrics: Arc<OutboundMetrics>) {
        let mut upstreams = self
            .upstreams
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        upstreams.retain(|u| u.bind != spec.bind);
        upstreams.push(Upstream {
            destination: spec.destination.clone(),
            bind: spec.bind,
            metrics,
        });
    }

    pub(crate) fn remove_upstream(&self, bind: &SocketAddr) {
        self.upstreams
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|u| &u.bind != bind);
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut out = Exposition::default();
        let service = [("service", self.service.as_str())];
        let inbound = self
            .inbound
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(inbound) = inbound {
            let c = inbound.snapshot();
            let counters = [
                ("mesh_sidecar_inbound_connections_total", "Connections accepted on the public listener.", c.accepted),
                ("mesh_sidecar_inbound_tls_handshake_failures_total", "Inbound mTLS handshakes that failed (no, untrusted or foreign client certificate, timeout).", c.handshake_failures),
                ("mesh_sidecar_inbound_authorized_total", "Inbound connections allowed by intentions.", c.authorized),
                ("mesh_sidecar_inbound_denied_total", "Inbound connections or requests denied by intentions.", c.denied),
                ("mesh_sidecar_inbound_app_connect_failures_total", "Allowed inbound connections for which the local application could not be reached.", c.app_connect_failures),
            ];
            for (name, help, value) in counters {
                out.sample(name, help, Kind::Counter, &service, value);
            }
            out.sample(
                "mesh_sidecar_inbound_active_connections",
                "Inbound connections being proxied now.",
                Kind::Gauge,
                &service,
                c.active,
            );
            let bytes = "mesh_sidecar_inbound_bytes_total";
            let help =
                "Bytes through the public listener: received from peers (rx) and sent back (tx).";
            out.sample(
                bytes,
                help,
                Kind::Counter,
                &[service[0], ("direction", "rx")],
                c.bytes_in,
            );
            out.sample(
                bytes,
                help,
                Kind::Counter,
                &[service[0], ("direction", "tx")],
                c.bytes_out,
            );
            http(&mut out, &[service[0], ("direction", "inbound")], &c.http);
        }
        for (source, count) in self.authz.denials() {
            out.sample(
                "mesh_sidecar_authorization_denials_total",
                "Inbound connections or requests denied by intentions, by source service.",
                Kind::Counter,
                &[service[0], ("source", source.as_str())],
                count,
            );
        }
        let upstreams: Vec<(String, Arc<OutboundMetrics>)> = self
            .upstreams
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|u| (u.destination.clone(), u.metrics.clone()))
            .collect();
        for (destination, metrics) in upstreams {
            let c = metrics.snapshot();
            let labels = [service[0], ("upstream", destination.as_str())];
            let counters = [
                (
                    "mesh_sidecar_upstream_connections_total",
                    "Connections accepted from the application for the upstream.",
                    c.accepted,
                ),
                (
                    "mesh_sidecar_upstream_established_total",
                    "Upstream connections established to a verified instance.",
                    c.established,
                ),
                (
                    "mesh_sidecar_upstream_failed_total",
                    "Application connections given up on: no instance, or every attempt failed.",
                    c.failed,
                ),
                (
                    "mesh_sidecar_upstream_connect_failures_total",
                    "Upstream connect attempts whose TCP connect failed or timed out.",
                    c.connect_failures,
                ),
                (
                    "mesh_sidecar_upstream_tls_handshake_failures_total",
                    "Upstream mTLS handshakes that failed, a wrong server identity included.",
                    c.handshake_failures,
                ),
                (
                    "mesh_sidecar_upstream_ejections_total",
                    "Times an upstream instance was ejected after repeated failures.",
                    c.ejections,
                ),
            ];
            for (name, help, value) in counters {
                out.sample(name, help, Kind::Counter, &labels, value);
            }
            out.sample(
                "mesh_sidecar_upstream_active_connections",
                "Upstream connections being proxied now.",
                Kind::Gauge,
                &labels,
                c.active,
            );
            let bytes = "mesh_sidecar_upstream_bytes_total";
            let help = "Bytes through an upstream listener: sent to instances (tx) and received back (rx).";
            out.sample(
                bytes,
                help,
                Kind::Counter,
                &[labels[0], labels[1], ("direction", "tx")],
                c.bytes_out,
            );
            out.sample(
                bytes,
                help,
                Kind::Counter,
                &[labels[0], labels[1], ("direction", "rx")],
                c.bytes_in,
            );
            out.histogram(
                "mesh_sidecar_upstream_connect_duration_seconds",
                "Time to connect to an upstream instance: TCP connect and mTLS handshake.",
                &labels,
                &c.connect_latency,
            );
            let retries = [
                (
                    "mesh_sidecar_upstream_retries_total",
                    "HTTP requests retried on another instance.",
                    c.retries,
                ),
                (
                    "mesh_sidecar_upstream_retry_budget_exhausted_total",
                    "HTTP retries not made because the retry budget was spent.",
                    c.retry_budget_exhausted,
                ),
            ];
            for (name, help, value) in retries {
                out.sample(name, help, Kind::Counter, &labels, value);
            }
            http(
                &mut out,
                &[labels[0], labels[1], ("direction", "upstream")],
                &c.http,
            );
        }
        out.finish()
    }
}

/// HTTP series of one side (L7 listeners only; nothing while no request was seen).
fn http(out: &mut Exposition, labels: &[(&str, &str)], c: &HttpCounts) {
    if c.requests == 0 {
        return;
    }
    out.sample(
        "mesh_sidecar_http_requests_total",
        "HTTP requests received.",
        Kind::Counter,
        labels,
        c.requests,
    );
    out.sample(
        "mesh_sidecar_http_active_requests",
        "HTTP requests in flight.",
        Kind::Gauge,
        labels,
        c.active,
    );
    for (code, count) in &c.statuses {
        let code = code.to_string();
        let mut with_code = labels.to_vec();
        with_code.push(("code", &code));
        out.sample(
            "mesh_sidecar_http_responses_total",
            "HTTP responses by status code, the proxy's own (403, 503, 504) included.",
            Kind::Counter,
            &with_code,
            *count,
        );
    }
    out.histogram(
        "mesh_sidecar_http_request_duration_seconds",
        "HTTP request duration, from the request received to the response's end.",
        labels,
        &c.duration,
    );
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// Samples grouped by family, each family with one `# HELP` and `# TYPE` line.
#[derive(Default)]
struct Exposition {
    families: BTreeMap<&'static str, (String, Vec<String>)>,
}

impl Exposition {
    fn sample(
        &mut self,
        name: &'static str,
        help: &str,
        kind: Kind,
        labels: &[(&str, &str)],
        value: u64,
    ) {
        let line = series(name, "", labels, None) + &format!(" {value}");
        self.family(name, help, kind).push(line);
    }

    /// A histogram from a snapshot in milliseconds, exposed in seconds.
    fn histogram(
        &mut self,
        name: &'static str,
        help: &str,
        labels: &[(&str, &str)],
        h: &HistogramSnapshot,
    ) {
        let mut lines = Vec::with_capacity(h.buckets.len() + 3);
        for (le_ms, count) in &h.buckets {
            let le = format!("{}", le_ms / 1000.0);
            lines.push(series(name, "_bucket", labels, Some(&le)) + &format!(" {count}"));
        }
        let count = h.count;
        lines.push(series(name, "_bucket", labels, Some("+Inf")) + &format!(" {count}"));
        let sum = h.sum_ms / 1000.0;
        lines.push(series(name, "_sum", labels, None) + &format!(" {sum}"));
        lines.push(series(name, "_count", labels, None) + &format!(" {count}"));
        self.family(name, help, Kind::Histogram).extend(lines);
    }

    fn family(&mut self, name: &'static str, help: &str, kind: Kind) -> &mut Vec<String> {
        let kind = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        };
        &mut self
            .families
            .entry(name)
            .or_insert_with(|| {
                (
                    format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"),
                    Vec::new(),
                )
            })
            .1
    }

    fn finish(self) -> String {
        let mut out = String::new();
        for (header, lines) in self.families.into_values() {
            out.push_str(&header);
            for line in lines {
                out.push_str(&line);
                out.push('\n');
            }
        }
        out
    }
}

/// `name<suffix>{labels[,le="…"]}`.
fn series(name: &str, suffix: &str, labels: &[(&str, &str)], le: Option<&str>) -> String {
    let mut line = format!("{name}{suffix}");
    let all = labels.iter().copied().chain(le.map(|le| ("le", le)));
    for (i, (key, value)) in all.enumerate() {
        line.push(if i == 0 { '{' } else { ',' });
        let _ = write!(line, "{key}=\"{}\"", escape(value));
    }
    if line.ends_with('"') {
        line.push('}');
    }
    line
}

/// A label value as the exposition format quotes it.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Serves `GET /metrics` on `listener` until the task is aborted.
pub(crate) async fn serve(listener: TcpListener, stats: Arc<Stats>) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let stats = stats.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let stats = stats.clone();
                async move { Ok::<_, std::convert::Infallible>(answer(&request, &stats)) }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service)
                .await
            {
                debug!(error = %e, "metrics connection ended with an error");
            }
        });
    }
}

fn answer(request: &Request<Incoming>, stats: &Stats) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match (request.method(), request.uri().path()) {
        (&Method::GET, "/metrics") => (
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            stats.render(),
        ),
        (_, "/metrics") => (
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            String::new(),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            "404 page not found\n".to_owned(),
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(value) = content_type.parse() {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_have_one_header_and_quoted_labels() {
        let mut out = Exposition::default();
        out.sample(
            "a_total",
            "A things.",
            Kind::Counter,
            &[("source", "w\"eb")],
            1,
        );
        out.sample(
            "a_total",
            "A things.",
            Kind::Counter,
            &[("source", "api")],
            2,
        );
        out.sample("b", "B now.", Kind::Gauge, &[], 3);
        assert_eq!(
            out.finish(),
            "# HELP a_total A things.\n# TYPE a_total counter\n\
             a_total{source=\"w\\\"eb\"} 1\na_total{source=\"api\"} 2\n\
             # HELP b B now.\n# TYPE b gauge\nb 3\n"
        );
    }

    #[test]
    fn histograms_are_exposed_in_seconds() {
        let mut out = Exposition::default();
        let h = HistogramSnapshot {
            buckets: vec![(0.5, 1), (1.0, 3)],
            count: 4,
            sum_ms: 2500.0,
        };
        out.histogram("d_seconds", "D.", &[("upstream", "db")], &h);
        assert_eq!(
            out.finish(),
            "# HELP d_seconds D.\n# TYPE d_seconds histogram\n\
             d_seconds_bucket{upstream=\"db\",le=\"0.0005\"} 1\n\
             d_seconds_bucket{upstream=\"db\",le=\"0.001\"} 3\n\
             d_seconds_bucket{upstream=\"db\",le=\"+Inf\"} 4\n\
             d_seconds_sum{upstream=\"db\"} 2.5\nd_seconds_count{upstream=\"db\"} 4\n"
        );
    }

    #[test]
    fn a_sidecar_without_listeners_renders_nothing_but_denials() {
        let authz = IntentionsAuthorizer::new("db");
        let stats = Stats::new("db", authz);
        assert_eq!(stats.render(), "");
    }
}
