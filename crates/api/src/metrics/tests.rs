use super::*;

fn latency(count: u64, sum_us: u64, min_us: u64, max_us: u64) -> Latency {
    Latency {
        count,
        sum_us,
        min_us,
        max_us,
    }
}

/// A gauge, a labelled counter family and a timer, as `collect` would leave them (sorted).
fn snapshot() -> Snapshot {
    Snapshot {
        gauges: vec![Gauge {
            name: "consul.state.nodes",
            help: "Nodes in the catalog.",
            labels: Vec::new(),
            value: 3.0,
        }],
        counters: vec![
            Counter {
                name: "consul.raft.apply",
                help: "Writes committed.",
                labels: Vec::new(),
                count: 0,
            },
            Counter {
                name: "consul.serf.member.join",
                help: "Joins seen.",
                labels: vec![("pool", "lan".into())],
                count: 4,
            },
        ],
        samples: vec![
            Sample {
                name: "consul.api.http",
                help: "HTTP API requests (ms).",
                labels: vec![("method", "GET".into()), ("path", "v1.kv._".into())],
                latency: latency(2, 3_000, 500, 2_500),
            },
            Sample {
                name: "consul.api.http",
                help: "HTTP API requests (ms).",
                labels: vec![("method", "PUT".into()), ("path", "v1.kv._".into())],
                latency: latency(1, 1_250, 1_250, 1_250),
            },
        ],
    }
}

#[test]
fn json_has_consuls_shape() {
    let body = render_json(
        &snapshot(),
        "2017-08-08 02:55:10 +0000 UTC",
        Duration::from_secs(10),
    );
    assert_eq!(
        body,
        json!({
            "Timestamp": "2017-08-08 02:55:10 +0000 UTC",
            "Gauges": [{"Name": "consul.state.nodes", "Value": 3.0, "Labels": {}}],
            "Points": [],
            "Counters": [
                {"Name": "consul.raft.apply", "Count": 0, "Rate": 0.0, "Sum": 0.0,
                 "Min": 0.0, "Max": 0.0, "Mean": 0.0, "Stddev": 0.0, "Labels": {}},
                {"Name": "consul.serf.member.join", "Count": 4, "Rate": 0.4, "Sum": 4.0,
                 "Min": 1.0, "Max": 1.0, "Mean": 1.0, "Stddev": 0.0, "Labels": {"pool": "lan"}},
            ],
            "Samples": [
                {"Name": "consul.api.http", "Count": 2, "Rate": 0.3, "Sum": 3.0,
                 "Min": 0.5, "Max": 2.5, "Mean": 1.5, "Stddev": 0.0,
                 "Labels": {"method": "GET", "path": "v1.kv._"}},
                {"Name": "consul.api.http", "Count": 1, "Rate": 0.125, "Sum": 1.25,
                 "Min": 1.25, "Max": 1.25, "Mean": 1.25, "Stddev": 0.0,
                 "Labels": {"method": "PUT", "path": "v1.kv._"}},
            ],
        })
    );
}

#[test]
fn prometheus_text_groups_families_and_renders_timers_as_summaries() {
    assert_eq!(
        render_prometheus(&snapshot()),
        "# HELP consul_state_nodes Nodes in the catalog.\n\
         # TYPE consul_state_nodes gauge\n\
         consul_state_nodes 3\n\
         # HELP consul_raft_apply Writes committed.\n\
         # TYPE consul_raft_apply counter\n\
         consul_raft_apply 0\n\
         # HELP consul_serf_member_join Joins seen.\n\
         # TYPE consul_serf_member_join counter\n\
         consul_serf_member_join{pool=\"lan\"} 4\n\
         # HELP consul_api_http HTTP API requests (ms).\n\
         # TYPE consul_api_http summary\n\
         consul_api_http_sum{method=\"GET\",path=\"v1.kv._\"} 3\n\
         consul_api_http_count{method=\"GET\",path=\"v1.kv._\"} 2\n\
         consul_api_http_sum{method=\"PUT\",path=\"v1.kv._\"} 1.25\n\
         consul_api_http_count{method=\"PUT\",path=\"v1.kv._\"} 1\n\
         # HELP consul_api_http_max Largest consul.api.http since the agent started (ms).\n\
         # TYPE consul_api_http_max gauge\n\
         consul_api_http_max{method=\"GET\",path=\"v1.kv._\"} 2.5\n\
         consul_api_http_max{method=\"PUT\",path=\"v1.kv._\"} 1.25\n"
    );
}

#[test]
fn prometheus_names_and_label_values_are_escaped() {
    for (name, expected) in [
        ("consul.raft.commitTime", "consul_raft_commitTime"),
        (
            "consul.catalog.service.query-tag",
            "consul_catalog_service_query_tag",
        ),
        ("mesh:odd name", "mesh:odd_name"),
    ] {
        assert_eq!(prometheus_name(name), expected, "{name}");
    }
    assert_eq!(
        prometheus_labels(&vec![("path", "a\"b\\c\nd".into())]),
        r#"{path="a\"b\\c\nd"}"#
    );
}

#[test]
fn path_labels_name_routes_not_requests() {
    let pattern = |p| Route::Pattern(p).label();
    let unmatched = |p| Route::of_unmatched(p).label();
    for (got, expected) in [
        (pattern("/v1/kv/{*key}"), "v1.kv._"),
        (pattern("/v1/kv/"), "v1.kv"),
        (pattern("/v1/agent/service/{id}"), "v1.agent.service._"),
        (pattern("/v1/catalog/services"), "v1.catalog.services"),
        (unmatched("/v1/kv/some/key"), "v1.kv._"),
        (unmatched("/v1/catalog/services"), "v1.catalog._"),
        (unmatched("/v1/status"), "v1.status"),
        (unmatched("/v1/status/"), "v1.status"),
        (unmatched("/v2/kv/x"), "other"),
        (unmatched("/v1/%2e%2e/x"), "other"),
        (unmatched("/"), "other"),
    ] {
        assert_eq!(got, expected);
    }
}

#[test]
fn route_timers_keep_label_sets_apart_and_overflow_into_other() {
    let timers = RouteTimers::new();
    let kv = Route::Pattern("/v1/kv/{*key}");
    timers.record("GET", &kv, Duration::from_micros(100));
    timers.record("GET", &kv, Duration::from_micros(300));
    timers.record("PUT", &kv, Duration::from_micros(200));
    let mut seen = timers.read();
    seen.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    assert_eq!(
        seen,
        [
            ("GET".into(), "v1.kv._".into(), latency(2, 400, 100, 300)),
            ("PUT".into(), "v1.kv._".into(), latency(1, 200, 200, 200)),
        ]
    );

    let patterns: Vec<String> = (0..ROUTE_SLOTS + 10).map(|i| format!("/r{i}")).collect();
    let timers = RouteTimers::new();
    for pattern in &patterns {
        timers.record("GET", &Route::Pattern(pattern), Duration::from_micros(1));
    }
    let seen = timers.read();
    assert_eq!(seen.len(), ROUTE_SLOTS + 1);
    let other = seen.iter().find(|(m, p, _)| m == "other" && p == "other");
    assert_eq!(other.map(|(_, _, l)| l.count), Some(10));
}

#[test]
fn blocking_queries_are_counted_while_in_flight() {
    let blocking = BlockingQueries::default();
    let first = blocking.enter();
    let second = blocking.enter();
    assert_eq!((blocking.in_flight(), blocking.started()), (2, 2));
    drop(first);
    assert_eq!(blocking.in_flight(), 1);
    drop(second);
    assert_eq!((blocking.in_flight(), blocking.started()), (0, 2));
}

#[test]
fn timestamps_are_gos_time_string() {
    assert_eq!(go_time(1_502_160_910_123), "2017-08-08 02:55:10 +0000 UTC");
}
