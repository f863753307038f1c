use super::*;

fn settings(rules: &[(&str, u64)]) -> Settings {
    let config = DnsConfig {
        service_ttl: rules
            .iter()
            .map(|(k, s)| (k.to_string(), Duration::from_secs(*s)))
            .collect(),
        ..DnsConfig::default()
    };
    Settings::new(&config).expect("valid config")
}

#[test]
fn service_ttl_rules() {
    #[track_caller]
    fn check(rules: &[(&str, u64)], service: &str, expected: u32) {
        assert_eq!(
            settings(rules).service_ttl(service),
            expected,
            "{rules:?} {service}"
        );
    }
    check(&[], "web", 0);
    check(&[("*", 5)], "web", 5);
    check(&[("*", 5), ("web", 10)], "web", 10);
    check(&[("*", 5), ("web", 10)], "web2", 5);
    check(&[("*", 5), ("we*", 7), ("web*", 8)], "webapp", 8);
    check(&[("*", 5), ("we*", 7), ("web*", 8)], "wex", 7);
    check(&[("web*", 8), ("webapp", 9)], "webapp", 9);
    check(&[("db", 3)], "web", 0);
    check(&[("Web", 4)], "web", 4);
}

#[test]
fn domains_are_fully_qualified_lower_case() {
    let config = DnsConfig {
        domain: "Mesh".into(),
        alt_domain: Some("example.org.".into()),
        ..DnsConfig::default()
    };
    let settings = Settings::new(&config).expect("valid config");
    assert_eq!(settings.domains[0].to_ascii(), "mesh.");
    assert_eq!(settings.domains[1].to_ascii(), "example.org.");
    assert!(Settings::new(&DnsConfig {
        domain: ".".into(),
        ..DnsConfig::default()
    })
    .is_err());
}

#[test]
fn recursor_addresses() {
    assert_eq!(
        parse_recursor("8.8.8.8").unwrap(),
        "8.8.8.8:53".parse().unwrap()
    );
    assert_eq!(
        parse_recursor("8.8.8.8:5353").unwrap(),
        "8.8.8.8:5353".parse().unwrap()
    );
    assert_eq!(parse_recursor("::1").unwrap(), "[::1]:53".parse().unwrap());
    assert_eq!(
        parse_recursor("[::1]:54").unwrap(),
        "[::1]:54".parse().unwrap()
    );
    assert!(parse_recursor("dns.google").is_err());
}
