use serde_json::json;

use super::*;

/// A sidecar registration as our agent (and Consul's) answers `/v1/agent/service/:id`.
fn registration() -> Value {
    json!({
        "Kind": "connect-proxy",
        "ID": "web-sidecar-proxy",
        "Service": "web-sidecar-proxy",
        "Address": "127.0.0.5",
        "Port": 21000,
        "Proxy": {
            "DestinationServiceName": "web",
            "DestinationServiceID": "web",
            "LocalServiceAddress": "127.0.0.1",
            "LocalServicePort": 8080,
            "Config": {"protocol": "http"},
            "Upstreams": [
                {"DestinationName": "db", "Datacenter": "", "LocalBindPort": 9191},
                {"DestinationName": "cache", "LocalBindAddress": "127.0.0.9", "LocalBindPort": 9192,
                 "Config": {"protocol": "tcp"}}
            ]
        }
    })
}

#[test]
fn a_registration_becomes_listeners() {
    let config = proxy_config(&registration()).unwrap();
    assert_eq!(
        config,
        ProxyConfig {
            proxy_id: "web-sidecar-proxy".into(),
            service: "web".into(),
            inbound: Some(InboundSpec {
                bind: "127.0.0.5:21000".parse().unwrap(),
                app: "127.0.0.1:8080".parse().unwrap(),
                protocol: Some(Protocol::Http),
            }),
            upstreams: vec![
                UpstreamSpec {
                    destination: "db".into(),
                    datacenter: String::new(),
                    bind: "127.0.0.1:9191".parse().unwrap(),
                    protocol: None,
                },
                UpstreamSpec {
                    destination: "cache".into(),
                    datacenter: String::new(),
                    bind: "127.0.0.9:9192".parse().unwrap(),
                    protocol: Some(Protocol::Tcp),
                },
            ],
            metrics_addr: None,
        }
    );
}

#[test]
fn proxy_config_keys_override_the_registration() {
    let mut reg = registration();
    reg["Proxy"]["Config"] = json!({
        "bind_address": "0.0.0.0",
        "bind_port": 20000,
        "envoy_prometheus_bind_addr": "127.0.0.1:9102"
    });
    let config = proxy_config(&reg).unwrap();
    let inbound = config.inbound.unwrap();
    assert_eq!(inbound.bind, "0.0.0.0:20000".parse().unwrap());
    assert_eq!(inbound.protocol, None);
    assert_eq!(config.metrics_addr, Some("127.0.0.1:9102".parse().unwrap()));

    reg["Address"] = json!("");
    reg["Proxy"]["Config"] = json!({"prometheus_bind_addr": ":9103"});
    let config = proxy_config(&reg).unwrap();
    assert_eq!(
        config.inbound.unwrap().bind,
        "0.0.0.0:21000".parse().unwrap()
    );
    assert_eq!(config.metrics_addr, Some("0.0.0.0:9103".parse().unwrap()));
}

#[test]
fn bad_registrations_are_refused_with_the_reason() {
    type Change = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(Change, ConfigError)> = vec![
        (
            Box::new(|r| r["Kind"] = json!("")),
            ConfigError::NotAProxy("web-sidecar-proxy".into(), String::new()),
        ),
        (
            Box::new(|r| r["Proxy"]["LocalServicePort"] = json!(0)),
            ConfigError::Missing("Proxy.LocalServicePort"),
        ),
        (
            Box::new(|r| r["Proxy"]["Config"]["protocol"] = json!("udp")),
            ConfigError::Protocol("udp".into()),
        ),
        (
            Box::new(|r| r["Address"] = json!("web.example")),
            ConfigError::BadAddress {
                what: "Address",
                value: "web.example".into(),
            },
        ),
        (
            Box::new(|r| {
                r["Proxy"]["Upstreams"][1]["LocalBindAddress"] = json!("127.0.0.1");
                r["Proxy"]["Upstreams"][1]["LocalBindPort"] = json!(9191);
            }),
            ConfigError::DuplicateBind(
                "db".into(),
                "cache".into(),
                "127.0.0.1:9191".parse().unwrap(),
            ),
        ),
        (
            Box::new(|r| r["Proxy"]["Upstreams"][0]["LocalBindPort"] = json!(70000)),
            ConfigError::BadPort {
                what: "LocalBindPort",
                value: 70000,
            },
        ),
    ];
    for (change, expected) in cases {
        let mut reg = registration();
        change(&mut reg);
        assert_eq!(proxy_config(&reg), Err(expected));
    }
}

#[test]
fn the_sidecar_of_a_service_is_found_by_its_destination_id() {
    let services = json!({
        "web": {"ID": "web", "Kind": ""},
        "web-sidecar-proxy": registration(),
        "api-sidecar-proxy": {"ID": "api-sidecar-proxy", "Kind": "connect-proxy",
                              "Proxy": {"DestinationServiceID": "api"}},
    });
    assert_eq!(sidecar_for(&services, "web").unwrap(), "web-sidecar-proxy");
    assert_eq!(
        sidecar_for(&services, "db"),
        Err(ConfigError::NoSidecar("db".into()))
    );
    let mut two = services.clone();
    two["web-extra"] = json!({"ID": "web-extra", "Kind": "connect-proxy",
                              "Proxy": {"DestinationServiceID": "web"}});
    assert_eq!(
        sidecar_for(&two, "web"),
        Err(ConfigError::ManySidecars(
            "web".into(),
            "web-extra, web-sidecar-proxy".into()
        ))
    );
}

#[test]
fn instances_carry_the_identity_they_must_prove() {
    let entries = json!([
        {"Node": {"Address": "127.0.0.7", "Datacenter": "dc1"},
         "Service": {"Kind": "connect-proxy", "Service": "db-sidecar-proxy", "Address": "",
                     "Port": 21001, "Proxy": {"DestinationServiceName": "db"}}},
        {"Node": {"Address": "127.0.0.8", "Datacenter": "dc2"},
         "Service": {"Kind": "", "Service": "db", "Address": "127.0.0.9", "Port": 5432,
                     "Connect": {"Native": true}}},
        {"Node": {"Address": "db3.example", "Datacenter": "dc1"},
         "Service": {"Service": "db", "Address": "", "Port": 5432}},
    ]);
    assert_eq!(
        instances(&entries).unwrap(),
        vec![
            Endpoint::new("127.0.0.7:21001".parse().unwrap(), "db", "dc1"),
            Endpoint::new("127.0.0.9:5432".parse().unwrap(), "db", "dc2"),
        ]
    );
    assert!(instances(&json!({})).is_err());
}

#[test]
fn roots_and_leaf_come_from_consuls_fields() {
    let body = json!({"TrustDomain": "abc.mesh", "Roots": [
        {"RootCert": "PEM1", "Active": true}, {"RootCert": "PEM2", "Active": false}]});
    assert_eq!(
        roots(&body).unwrap(),
        (
            "abc.mesh".to_owned(),
            vec!["PEM1".to_owned(), "PEM2".to_owned()]
        )
    );
    assert!(roots(&json!({"Roots": []})).is_err());
    assert_eq!(
        leaf(&json!({"CertPEM": "C", "PrivateKeyPEM": "K"})).unwrap(),
        ("C", "K")
    );
    assert!(leaf(&json!({"CertPEM": "C"})).is_err());
}

#[test]
fn addresses_take_a_bare_port() {
    assert_eq!(
        socket_addr("x", "9102").unwrap(),
        "0.0.0.0:9102".parse().unwrap()
    );
    assert!(socket_addr("x", "localhost:9102").is_err());
}

#[test]
fn ad_hoc_flags_become_a_configuration() {
    let config = ad_hoc(
        "web",
        Some("127.0.0.5:21000".parse().unwrap()),
        Some("127.0.0.1:8080".parse().unwrap()),
        &["db:9191".into(), "cache:9192".into()],
        Some(Protocol::Tcp),
    )
    .unwrap();
    assert_eq!(config.service, "web");
    assert_eq!(
        config.inbound.unwrap().app,
        "127.0.0.1:8080".parse().unwrap()
    );
    let binds: Vec<_> = config
        .upstreams
        .iter()
        .map(|u| u.bind.to_string())
        .collect();
    assert_eq!(binds, ["127.0.0.1:9191", "127.0.0.1:9192"]);

    let only_upstreams = ad_hoc("web", None, None, &["db:9191".into()], None).unwrap();
    assert_eq!(only_upstreams.inbound, None);

    for bad in ["db", "db:", ":9191", "db:0", "db:port"] {
        assert_eq!(
            ad_hoc("web", None, None, &[bad.into()], None),
            Err(ConfigError::AdHocUpstream(bad.into()))
        );
    }
    assert_eq!(
        ad_hoc("web", Some("127.0.0.1:1".parse().unwrap()), None, &[], None),
        Err(ConfigError::AdHocApp)
    );
}

#[test]
fn registration_then_service_defaults_then_proxy_defaults_decide_the_protocol() {
    let mut central = Central::default();
    assert_eq!(central.protocol("db", None), Protocol::Tcp);
    central
        .set_service_defaults(&json!([
            {"Kind": "service-defaults", "Name": "db", "Protocol": "http"},
            {"Kind": "service-defaults", "Name": "cache", "Protocol": ""},
            {"Kind": "service-defaults", "Name": "odd", "Protocol": "udp"}
        ]))
        .unwrap();
    central
        .set_proxy_defaults(&json!([
            {"Kind": "proxy-defaults", "Name": "global", "Config": {"protocol": "http2"}}
        ]))
        .unwrap();
    assert_eq!(central.protocol("db", None), Protocol::Http);
    assert_eq!(central.protocol("db", Some(Protocol::Tcp)), Protocol::Tcp);
    assert_eq!(central.protocol("cache", None), Protocol::Http2);
    assert_eq!(central.protocol("odd", None), Protocol::Http2);
    central.set_proxy_defaults(&json!([])).unwrap();
    assert_eq!(central.protocol("cache", None), Protocol::Tcp);
    assert!(central.set_service_defaults(&json!({})).is_err());
}
