use super::*;
use crate::testing::l4;

fn check(source: &str, destination: &str, expected: u32) {
    let (sns, sname) = source.split_once('/').expect("ns/name");
    let (dns, dname) = destination.split_once('/').expect("ns/name");
    assert_eq!(
        precedence(sns, sname, dns, dname),
        expected,
        "{source} => {destination}"
    );
}

#[test]
fn consul_table() {
    check("default/web", "default/db", 9);
    check("default/*", "default/db", 8);
    check("*/*", "default/db", 7);
    check("default/web", "default/*", 6);
    check("default/*", "default/*", 5);
    check("*/*", "default/*", 4);
    check("default/web", "*/*", 3);
    check("default/*", "*/*", 2);
    check("*/*", "*/*", 1);
    // Namespaces other than the source's do not change anything: only wildcards count.
    check("other/web", "default/db", 9);
    check("other/*", "team/*", 5);
}

#[test]
fn sorted_by_precedence_then_names() {
    let mut list = [
        l4("*", "*", "allow"),
        l4("web", "*", "deny"),
        l4("*", "db", "allow"),
        l4("web", "db", "deny"),
        l4("api", "db", "allow"),
        l4("web", "api", "allow"),
        l4("api", "*", "allow"),
    ];
    list.sort_by(precedence_order);
    let got: Vec<(String, String, u32)> = list
        .iter()
        .map(|i| {
            (
                i.source_name.clone(),
                i.destination_name.clone(),
                i.precedence,
            )
        })
        .collect();
    let want = [
        ("api", "db", 9),
        ("web", "api", 9),
        ("web", "db", 9),
        ("*", "db", 8),
        ("api", "*", 6),
        ("web", "*", 6),
        ("*", "*", 5),
    ];
    let want: Vec<(String, String, u32)> = want
        .iter()
        .map(|(s, d, p)| (s.to_string(), d.to_string(), *p))
        .collect();
    assert_eq!(got, want);
}
