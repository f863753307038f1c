//! Table-driven tests for the filter language: parsing, error messages, every operator on
//! every JSON type, precedence, selectors, array walking and realistic Consul filters.

use super::{Filter, FilterError};
use proptest::prelude::*;
use serde_json::{json, Value};

const PREFIX: &str = "Failed to create boolean expression evaluator: ";

/// A `/v1/catalog/service/:name` element (ServiceNode).
fn service_node() -> Value {
    json!({
        "ID": "2b3f5c3e-0000-0000-0000-000000000001",
        "Node": "node-1",
        "Address": "10.0.0.1",
        "Datacenter": "dc1",
        "TaggedAddresses": { "lan": "10.0.0.1", "wan": "198.51.100.1" },
        "NodeMeta": { "rack": "r1", "zone": "" },
        "ServiceKind": "",
        "ServiceID": "web-1",
        "ServiceName": "web",
        "ServiceTags": ["primary", "v1"],
        "ServiceAddress": "",
        "ServiceMeta": { "version": "v1.2.3", "k-x": "dashed", "owner": "team-a" },
        "ServicePort": 8080,
        "ServiceWeights": { "Passing": 1, "Warning": 1 },
        "ServiceEnableTagOverride": false,
        "ServiceProxy": { "Upstreams": [] },
        "CreateIndex": 10,
        "ModifyIndex": 12
    })
}

/// A `/v1/health/service/:name` element (CheckServiceNode) with one passing and one
/// critical check.
fn check_service_node() -> Value {
    json!({
        "Node": {
            "ID": "2b3f5c3e-0000-0000-0000-000000000001",
            "Node": "node-1",
            "Address": "10.0.0.1",
            "Datacenter": "dc1",
            "Meta": { "rack": "r1" }
        },
        "Service": {
            "ID": "web-1",
            "Service": "web",
            "Tags": ["primary", "v1"],
            "Meta": { "env": "prod", "version": "v1.2.3" },
            "Port": 8080,
            "Weights": { "Passing": 1, "Warning": 1 }
        },
        "Checks": [
            {
                "Node": "node-1",
                "CheckID": "serfHealth",
                "Name": "Serf Health Status",
                "Status": "passing",
                "ServiceID": "",
                "ServiceTags": []
            },
            {
                "Node": "node-1",
                "CheckID": "service:web-1",
                "Name": "web HTTP",
                "Status": "critical",
                "ServiceID": "web-1",
                "ServiceTags": ["primary", "v1"]
            }
        ]
    })
}

/// A CheckServiceNode whose checks all pass.
fn healthy_check_service_node() -> Value {
    let mut value = check_service_node();
    value["Checks"][1]["Status"] = json!("passing");
    value
}

/// A CheckServiceNode with no checks at all.
fn unchecked_service_node() -> Value {
    let mut value = check_service_node();
    value["Checks"] = json!([]);
    value
}

/// A `/v1/catalog/nodes` element (Node) with nil meta.
fn bare_node() -> Value {
    json!({
        "ID": "",
        "Node": "node-2",
        "Address": "10.0.0.2",
        "Datacenter": "dc1",
        "TaggedAddresses": null,
        "Meta": null
    })
}

/// One object with a field of every JSON type.
fn scalars() -> Value {
    json!({
        "Str": "hello world",
        "Empty": "",
        "Int": 42,
        "Neg": -7,
        "Big": u64::MAX,
        "Float": 1.5,
        "True": true,
        "False": false,
        "Null": null,
        "List": ["a", "b c", "42"],
        "Nums": [1, 2, 3],
        "Mixed": ["x", 5, true, null, [1]],
        "NoItems": [],
        "Map": { "k": "v", "k-x": "dash", "n": 1 },
        "NoKeys": {},
        "Nested": { "Inner": { "Leaf": "deep" } }
    })
}

fn parse(expr: &str) -> Filter {
    match Filter::parse(expr) {
        Ok(filter) => filter,
        Err(err) => panic!("{expr:?} failed to parse: {err}"),
    }
}

fn parse_err(expr: &str) -> FilterError {
    match Filter::parse(expr) {
        Ok(filter) => panic!("{expr:?} parsed unexpectedly: {filter:?}"),
        Err(err) => err,
    }
}

/// Asserts each `(expression, expected)` pair against `value`.
fn check_table(value: &Value, cases: &[(&str, bool)]) {
    for (expr, want) in cases {
        assert_eq!(parse(expr).matches(value), *want, "{expr:?} on {value}");
    }
}

#[test]
fn malformed_expressions_are_rejected() {
    let cases: &[(&str, &str)] = &[
        ("", "empty expression"),
        ("   \n\t", "empty expression"),
        (
            "Port",
            "line 1, column 5: expected an operator, found end of input",
        ),
        (
            "Port ==",
            "line 1, column 8: expected a value, found end of input",
        ),
        (
            "Port == ",
            "line 1, column 9: expected a value, found end of input",
        ),
        (
            "== 5",
            "line 1, column 1: expected an expression, found \"==\"",
        ),
        ("Port 80", "expected an operator, found \"80\""),
        (
            "Port == 80 foo",
            "line 1, column 12: expected \"and\", \"or\" or end of input",
        ),
        (
            "Port == 80 and",
            "line 1, column 15: expected an expression, found end of input",
        ),
        // `or` is a valid field name, so the second one starts a match expression.
        (
            "Port == 80 or or",
            "line 1, column 17: expected an operator, found end of input",
        ),
        (
            "(Port == 80",
            "line 1, column 12: expected \"and\", \"or\" or \")\"",
        ),
        (
            "((Port == 80)",
            "expected \"and\", \"or\" or \")\", found end of input",
        ),
        (
            "Port == 80)",
            "line 1, column 11: expected \"and\", \"or\" or end of input, found \")\"",
        ),
        (
            "()",
            "line 1, column 2: expected an expression, found \")\"",
        ),
        ("not", "line 1, column 4:"),
        ("Tags contains", "line 1, column 14: expected a value"),
        (
            "Tags is",
            "expected \"empty\" or \"not\", found end of input",
        ),
        ("Tags is not", "expected \"empty\", found end of input"),
        (
            "Tags is full",
            "expected \"empty\" or \"not\", found \"full\"",
        ),
        (
            "Tags not foo",
            "expected \"contains\", \"matches\" or \"in\", found \"foo\"",
        ),
        (
            "\"x\" in",
            "line 1, column 7: expected a selector, found end of input",
        ),
        (
            "\"x\" in 5",
            "line 1, column 8: expected a selector, found \"5\"",
        ),
        (
            "\"x\" Tags",
            "expected \"in\" or \"not in\", found \"Tags\"",
        ),
        (
            "Service. == x",
            "line 1, column 9: expected a field name, found whitespace",
        ),
        ("Meta[k] == x", "line 1, column 6: invalid index"),
        (
            "Meta[\"k\" == x",
            "line 1, column 10: unclosed index expression",
        ),
        (
            "Name == \"abc",
            "line 1, column 9: unterminated string literal",
        ),
        (
            "Name == `abc",
            "line 1, column 9: unterminated string literal",
        ),
        (
            "Name == \"a\\qb\"",
            "line 1, column 11: invalid escape sequence",
        ),
        (
            "Name == \"a\\x4\"",
            "invalid escape sequence in string literal: malformed numeric escape",
        ),
        ("Name == \"a\nb\"", "newline in string literal"),
        ("Name == \"\\xff\"", "not valid UTF-8"),
        ("Port == 80x", "line 1, column 9: invalid number literal"),
        ("Port == 1.2.3", "invalid number literal"),
        ("Port == 08", "invalid number literal"),
        (
            "Name matches \"a(\"",
            "line 1, column 14: invalid regular expression \"a(\"",
        ),
        ("Name matches `[z-a]`", "invalid regular expression"),
        (
            "Name == x andy == 2",
            "expected \"and\", \"or\" or end of input, found \"andy\"",
        ),
        ("NAME == x AND Port == 1", "found \"AND\""),
        (
            "Name == x\n  or",
            "line 2, column 5: expected an expression",
        ),
        (
            "Nöme == x",
            "line 1, column 2: expected an operator, found \"öme\"",
        ),
        (
            "Name == é",
            "line 1, column 9: expected a value, found \"é\"",
        ),
    ];
    for (expr, want) in cases {
        let msg = parse_err(expr).to_string();
        assert!(msg.starts_with(PREFIX), "{expr:?}: {msg}");
        assert!(
            msg.contains(want),
            "{expr:?}: got {msg:?}, want it to contain {want:?}"
        );
    }
}

#[test]
fn error_display_is_exact() {
    let err = parse_err("Service.Port == ");
    assert_eq!(
        err.to_string(),
        "Failed to create boolean expression evaluator: \
         line 1, column 17: expected a value, found end of input"
    );
}

#[test]
fn nesting_is_bounded() {
    for expr in [
        format!("{}a == 1{}", "(".repeat(10_000), ")".repeat(10_000)),
        format!("{}a == 1", "not ".repeat(10_000)),
        "(".repeat(100_000),
    ] {
        let msg = parse_err(&expr).to_string();
        assert!(msg.contains("nested too deeply"), "{msg}");
    }
    let ok = format!("{}True == true{}", "(".repeat(60), ")".repeat(60));
    assert!(parse(&ok).matches(&scalars()));
}

#[test]
fn long_flat_chains_parse_and_evaluate() {
    let expr = vec!["Int == 1"; 20_000].join(" or ") + " or Int == 42";
    assert!(parse(&expr).matches(&scalars()));
    let expr = vec!["Int == 42"; 20_000].join(" and ");
    assert!(parse(&expr).matches(&scalars()));
}

#[test]
fn accepted_syntax() {
    let value = scalars();
    let cases: &[(&str, bool)] = &[
        // Whitespace is optional around == and != and around parentheses.
        ("Int==42", true),
        ("Int!=42", false),
        ("(Int == 42)and(Str == \"hello world\")", true),
        ("not(Int == 1)", true),
        ("\t Int \n==\r\n 42 ", true),
        ("(((Int == 42)))", true),
        ("( Int == 42 )", true),
        // Values: strings with escapes, raw strings, numbers and bare words.
        ("Str == \"hello world\"", true),
        ("Str == `hello world`", true),
        ("Str == \"hello\\x20world\"", true),
        ("Str == \"hello\\u0020world\"", true),
        ("Str == \"hello\\040world\"", true),
        ("Map.k == v", true),
        ("Map.k == \"v\"", true),
        ("Nested.Inner.Leaf == deep", true),
        ("Neg == -7", true),
        ("Float == 1.5", true),
        // A bare dotted word is a value standing for its own text.
        ("Str != hello.world", true),
        // Keywords may be field names after the first segment.
        ("Map.not is empty", true),
    ];
    check_table(&value, cases);
}

#[test]
fn string_escapes_decode_like_go() {
    let value = json!({ "S": "tab\there \"quoted\" back\\slash \u{e9} \u{1F600}" });
    check_table(
        &value,
        &[
            (
                r#"S == "tab\there \"quoted\" back\\slash \u00e9 \U0001F600""#,
                true,
            ),
            ("S == `tab\there \"quoted\" back\\slash é 😀`", true),
            (r#"S contains "\"quoted\"""#, true),
            (r#"S contains `\\`"#, false),
            (r#"S contains `\`"#, true),
        ],
    );
}

#[test]
fn equality_on_each_type() {
    check_table(
        &scalars(),
        &[
            // strings: exact text
            ("Str == \"hello world\"", true),
            ("Str == \"Hello World\"", false),
            ("Str != \"hello\"", true),
            ("Empty == \"\"", true),
            // integers: the literal is parsed as a number
            ("Int == 42", true),
            ("Int == \"42\"", true),
            ("Int == \"0x2a\"", true),
            ("Int == \"0x2A\"", true),
            ("Int == 43", false),
            ("Int != 43", true),
            ("Int == 42.0", false),
            ("Int == forty", false),
            ("Int != forty", true),
            ("Neg == -7", true),
            ("Big == 18446744073709551615", true),
            // floats
            ("Float == 1.5", true),
            ("Float == \"1.50\"", true),
            ("Float == 1", false),
            ("Float != abc", true),
            // bools: Go ParseBool spellings
            ("True == true", true),
            ("True == True", true),
            ("True == 1", true),
            ("True == t", true),
            ("True == false", false),
            ("True != false", true),
            ("False == false", true),
            ("False == 0", true),
            ("True == yes", false),
            ("True != yes", true),
            // null behaves as missing
            ("Null == \"\"", false),
            ("Null != \"\"", true),
            // arrays and objects have no equality: false either way
            ("List == a", false),
            ("List != a", false),
            ("Map == k", false),
            ("Map != k", false),
        ],
    );
}

#[test]
fn in_and_contains_on_each_type() {
    check_table(
        &scalars(),
        &[
            // strings: substring
            ("Str contains \"lo wo\"", true),
            ("\"lo wo\" in Str", true),
            ("Str contains xyz", false),
            ("Str not contains xyz", true),
            ("xyz not in Str", true),
            ("Str contains \"\"", true),
            // arrays: element membership, coerced per element
            ("List contains a", true),
            ("List contains \"b c\"", true),
            ("List contains b", false),
            ("\"b c\" in List", true),
            ("b not in List", true),
            ("List contains 42", true),
            ("Nums contains 2", true),
            ("2 in Nums", true),
            ("Nums contains \"0x2\"", true),
            ("Nums contains 4", false),
            ("Nums not contains 4", true),
            ("Nums contains two", false),
            ("Mixed contains x", true),
            ("Mixed contains 5", true),
            ("Mixed contains true", true),
            ("Mixed contains 1", true),
            ("Mixed contains y", false),
            ("NoItems contains a", false),
            ("NoItems not contains a", true),
            // objects: key membership
            ("Map contains k", true),
            ("\"k-x\" in Map", true),
            ("v in Map", false),
            ("v not in Map", true),
            ("NoKeys contains k", false),
            // numbers and bools cannot contain anything: false either way
            ("Int contains 4", false),
            ("Int not contains 4", false),
            ("True contains t", false),
            // null behaves as missing
            ("Null contains a", false),
            ("Null not contains a", true),
        ],
    );
}

#[test]
fn emptiness_on_each_type() {
    check_table(
        &scalars(),
        &[
            ("Empty is empty", true),
            ("Str is empty", false),
            ("Str is not empty", true),
            ("NoItems is empty", true),
            ("List is empty", false),
            ("List is not empty", true),
            ("NoKeys is empty", true),
            ("Map is not empty", true),
            ("Null is empty", true),
            ("Null is not empty", false),
            ("Int is empty", false),
            ("Int is not empty", false),
            ("True is empty", false),
        ],
    );
}

#[test]
fn regex_matching() {
    check_table(
        &scalars(),
        &[
            ("Str matches \"^hello\"", true),
            ("Str matches `wor`", true),
            ("Str matches \"^world\"", false),
            ("Str not matches \"^world\"", true),
            ("Str matches \"^h.*d$\"", true),
            ("Empty matches \"^$\"", true),
            ("Map.k matches v", true),
            ("Int matches 4", false),
            ("Int not matches 4", false),
            ("List matches a", false),
            ("Null matches a", false),
            ("Null not matches a", true),
            ("Missing matches a", false),
            ("Missing not matches a", true),
        ],
    );
}

#[test]
fn missing_keys_behave_as_empty() {
    check_table(
        &scalars(),
        &[
            ("Missing == x", false),
            ("Missing != x", true),
            ("Missing is empty", true),
            ("Missing is not empty", false),
            ("x in Missing", false),
            ("x not in Missing", true),
            ("Missing contains x", false),
            ("Map.missing == x", false),
            ("Map.missing != x", true),
            ("Map[\"missing\"] is empty", true),
            ("Missing.Deeper.Still == x", false),
            ("Missing.Deeper.Still != x", true),
            // Selecting into a scalar is false whatever the operator.
            ("Str.Field == x", false),
            ("Str.Field != x", false),
            ("Int.Field is empty", false),
        ],
    );
}

#[test]
fn indexed_selectors() {
    check_table(
        &service_node(),
        &[
            ("ServiceMeta[\"k-x\"] == dashed", true),
            ("ServiceMeta[`k-x`] == dashed", true),
            ("ServiceMeta[ \"k-x\" ] == dashed", true),
            ("ServiceMeta[\"version\"] == \"v1.2.3\"", true),
            ("ServiceMeta.version == \"v1.2.3\"", true),
            ("TaggedAddresses[\"wan\"] == \"198.51.100.1\"", true),
            ("ServiceWeights[\"Passing\"] == 1", true),
            ("ServiceMeta[\"nope\"] != x", true),
            ("\"k-x\" in ServiceMeta", true),
            ("ServiceMeta[\"k-x\"] contains dash", true),
        ],
    );
}

#[test]
fn precedence_and_grouping() {
    // T is true, F is false; each case pins down one binding.
    let value = json!({ "T": true, "F": false });
    check_table(
        &value,
        &[
            // and binds tighter than or
            ("T == true or F == true and F == true", true),
            ("(T == true or F == true) and F == true", false),
            ("F == true and F == true or T == true", true),
            ("F == true and (F == true or T == true)", false),
            // not binds tighter than and / or
            ("not F == true and F == true", false),
            ("not (F == true and F == true)", true),
            ("not T == true or T == true", true),
            ("not (T == true or T == true)", false),
            // double negation
            ("not not T == true", true),
            ("not not not T == true", false),
            // chains
            ("F == true or F == true or T == true", true),
            ("T == true and T == true and F == true", false),
            (
                "T == true and not F == true and (F == true or T == true)",
                true,
            ),
        ],
    );
}

#[test]
fn selectors_walk_arrays_with_any_semantics() {
    let unhealthy = check_service_node();
    let healthy = healthy_check_service_node();
    let unchecked = unchecked_service_node();
    let cases: &[(&str, [bool; 3])] = &[
        // [one critical check, all passing, no checks]
        ("Checks.Status == passing", [true, true, false]),
        ("Checks.Status == critical", [true, false, false]),
        ("Checks.Status != passing", [true, false, false]),
        ("not Checks.Status == passing", [false, false, true]),
        ("not Checks.Status != passing", [false, true, true]),
        ("Checks.Status is empty", [false, false, false]),
        ("Checks.Status is not empty", [true, true, false]),
        ("Checks.CheckID matches \"^service:\"", [true, true, false]),
        ("Checks.ServiceTags contains primary", [true, true, false]),
        ("Checks.ServiceTags is empty", [true, true, false]),
        ("Checks.Missing == x", [false, false, false]),
        ("Checks.Missing != x", [true, true, false]),
        ("Checks is empty", [false, false, true]),
        ("Checks is not empty", [true, true, false]),
        ("Service.Tags.Nope == x", [false, false, false]),
    ];
    for (expr, want) in cases {
        let filter = parse(expr);
        let got = [&unhealthy, &healthy, &unchecked].map(|v| filter.matches(v));
        assert_eq!(got, *want, "{expr:?}");
    }
}

#[test]
fn nested_arrays_are_walked_too() {
    let value =
        json!({ "Groups": [ { "Items": [ { "Id": "a" } ] }, { "Items": [ [ { "Id": "b" } ] ] } ] });
    check_table(
        &value,
        &[
            ("Groups.Items.Id == a", true),
            ("Groups.Items.Id == b", true),
            ("Groups.Items.Id == c", false),
            ("Groups.Items.Id != a", true),
        ],
    );
}

#[test]
fn realistic_service_node_filters() {
    check_table(
        &service_node(),
        &[
            ("ServiceName == web", true),
            ("ServiceName == web and ServicePort == 8080", true),
            ("ServiceTags contains primary", true),
            ("primary in ServiceTags", true),
            ("secondary in ServiceTags", false),
            ("ServiceMeta[\"version\"] matches \"^v1\\\\.\"", true),
            ("ServiceMeta[\"version\"] matches `^v2\\.`", false),
            ("NodeMeta.rack is not empty", true),
            ("NodeMeta.zone is not empty", false),
            ("NodeMeta.zone is empty", true),
            ("NodeMeta.missing is empty", true),
            ("ServiceAddress is empty", true),
            ("ServiceEnableTagOverride == false", true),
            ("ServiceProxy.Upstreams is empty", true),
            (
                "Datacenter == dc1 and (ServiceTags contains v2 or ServicePort != 80)",
                true,
            ),
            ("Node != \"node-1\"", false),
            ("ModifyIndex == 12", true),
        ],
    );
}

#[test]
fn realistic_check_service_node_filters() {
    check_table(
        &check_service_node(),
        &[
            (
                "Service.Tags contains \"primary\" and Service.Meta.env == \"prod\"",
                true,
            ),
            (
                "Service.Tags contains \"primary\" and Service.Meta.env == \"staging\"",
                false,
            ),
            ("Checks.Status != \"passing\"", true),
            ("Service.Meta[\"version\"] matches \"^v1\\\\.\"", true),
            ("Node.Meta.rack is not empty", true),
            ("Node.Node == \"node-1\" and Service.Port == 8080", true),
            (
                "Service.Service == web and not Checks.Status == critical",
                false,
            ),
            ("Service.Weights.Passing == 1", true),
        ],
    );
    check_table(
        &healthy_check_service_node(),
        &[("Checks.Status != \"passing\"", false)],
    );
}

#[test]
fn realistic_health_check_and_node_filters() {
    let check = json!({
        "Node": "node-1",
        "CheckID": "service:web-1",
        "Name": "web HTTP",
        "Status": "critical",
        "Notes": "",
        "Output": "HTTP GET http://10.0.0.1:8080/health: 503",
        "ServiceID": "web-1",
        "ServiceName": "web",
        "ServiceTags": ["primary"],
        "Type": "http",
        "Definition": {},
        "CreateIndex": 20,
        "ModifyIndex": 25
    });
    check_table(
        &check,
        &[
            ("Status == critical", true),
            ("Status != passing and ServiceName == web", true),
            ("Output contains 503", true),
            ("Notes is empty", true),
            ("http in Type", true),
            ("ServiceTags contains primary", true),
            ("Definition is empty", true),
        ],
    );
    check_table(
        &bare_node(),
        &[
            ("Meta.rack is not empty", false),
            ("Meta.rack is empty", true),
            ("Meta.rack != r1", true),
            ("Meta is empty", true),
            ("TaggedAddresses.lan == \"10.0.0.2\"", false),
            ("Address matches \"^10\\\\.0\\\\.\"", true),
        ],
    );
}

#[test]
fn filter_is_reusable_and_cloneable() {
    let filter = parse("ServiceTags contains primary");
    let copy = filter.clone();
    let mut other = service_node();
    other["ServiceTags"] = json!(["secondary"]);
    let kept: Vec<bool> = [service_node(), other, bare_node()]
        .iter()
        .map(|v| copy.matches(v))
        .collect();
    assert_eq!(kept, [true, false, false]);
    assert!(format!("{filter:?}").contains("ServiceTags"));
}

/// Builds a random filter expression over the fields of [`scalars`].
fn arb_expr() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("Int == 42".to_owned()),
        Just("Str contains lo".to_owned()),
        Just("List is empty".to_owned()),
        Just("Missing != x".to_owned()),
        Just("True == false".to_owned()),
        Just("a in List".to_owned()),
    ];
    leaf.prop_recursive(4, 24, 3, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) and ({b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) or ({b})")),
            inner.prop_map(|a| format!("not ({a})")),
        ]
    })
}

proptest! {
    #[test]
    fn parse_never_panics(src in "[a-zA-Z0-9_ .()\\[\\]\"`\\\\=!<>-]{0,40}") {
        let _ = Filter::parse(&src);
    }

    #[test]
    fn parse_never_panics_on_any_unicode(src in "\\PC{0,40}") {
        if let Err(err) = Filter::parse(&src) {
            prop_assert!(err.to_string().starts_with(PREFIX));
        }
    }

    #[test]
    fn not_negates_and_de_morgan_holds(a in arb_expr(), b in arb_expr()) {
        let value = scalars();
        let eval = |e: &str| parse(e).matches(&value);
        prop_assert_eq!(eval(&format!("not ({a})")), !eval(&a));
        prop_assert_eq!(
            eval(&format!("not (({a}) and ({b}))")),
            eval(&format!("(not ({a})) or (not ({b}))"))
        );
    }
}
