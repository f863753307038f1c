use super::*;

fn run(
    round: usize,
    system: &str,
    op: Op,
    c: usize,
    ops_per_sec: f64,
    cpu: Option<f64>,
) -> CellRun {
    CellRun {
        round,
        system: system.to_owned(),
        op,
        concurrency: c,
        ok_ops: 100,
        errors: round as u64,
        elapsed_secs: 1.0,
        ops_per_sec,
        p50_ms: Some(1.0),
        p99_ms: Some(2.0 * round as f64),
        cpu_ticks: 1,
        cpu_us_per_op: cpu,
        rss_mib: 10.0,
        first_error: None,
        targets: vec!["http://127.0.0.1:1".to_owned()],
        nodes: vec![node("bench", true, cpu)],
    }
}

fn node(name: &str, leader: bool, cpu: Option<f64>) -> NodeRun {
    NodeRun {
        name: name.to_owned(),
        leader,
        cpu_ticks: 1,
        cpu_us_per_op: cpu,
        rss_mib: 10.0,
    }
}

#[test]
fn node_positions_take_medians_and_only_clusters_get_a_table() {
    let mut runs = Vec::new();
    for (round, leader_cpu) in [(1, 30.0), (2, 10.0), (3, 20.0)] {
        let mut r = run(round, "mesh", Op::Put, 1, 100.0, Some(leader_cpu + 2.0));
        r.nodes = vec![
            node("bench-2", true, Some(leader_cpu)),
            node("bench-1", false, Some(1.0)),
            node("bench-3", false, Some(round as f64)),
        ];
        r.nodes[2].rss_mib = 100.0 * round as f64;
        runs.push(r);
    }
    let s = summarize(&runs);
    assert_eq!(s.len(), 1);
    assert_eq!(
        s[0].nodes,
        vec![
            NodeSummary {
                cpu_us_per_op: Some(20.0),
                rss_mib: Some(10.0)
            },
            NodeSummary {
                cpu_us_per_op: Some(1.0),
                rss_mib: Some(10.0)
            },
            NodeSummary {
                cpu_us_per_op: Some(2.0),
                rss_mib: Some(200.0)
            },
        ]
    );
    let table = node_table(&s).expect("a cluster row gets a table");
    assert!(
        table.contains(" 20.0 / 1.0 / 2.0 |") && table.contains(" 10.0 / 10.0 / 200.0 |"),
        "{table}"
    );

    let single = summarize(&[run(1, "mesh", Op::Get, 1, 1.0, Some(1.0))]);
    assert_eq!(single[0].nodes.len(), 1);
    assert_eq!(node_table(&single), None);
}

#[test]
fn summary_takes_medians_and_sums_errors() {
    let runs = vec![
        run(1, "mesh", Op::Put, 16, 100.0, Some(50.0)),
        run(1, "etcd", Op::Put, 16, 200.0, Some(100.0)),
        run(2, "mesh", Op::Put, 16, 300.0, Some(40.0)),
        run(2, "etcd", Op::Put, 16, 100.0, Some(80.0)),
        run(3, "mesh", Op::Put, 16, 200.0, None),
        run(3, "etcd", Op::Put, 16, 150.0, Some(90.0)),
    ];
    let s = summarize(&runs);
    assert_eq!(s.len(), 2);
    assert_eq!(
        (s[0].system.as_str(), s[1].system.as_str()),
        ("mesh", "etcd")
    );
    assert_eq!(s[0].ops_per_sec, Some(200.0));
    assert_eq!(
        s[0].cpu_us_per_op,
        Some(45.0),
        "rounds without a value are left out"
    );
    assert_eq!(s[0].p99_ms, Some(4.0));
    assert_eq!(s[0].errors, 6);
    assert_eq!(s[1].cpu_us_per_op, Some(90.0));

    let r = ratios(&s, "mesh", "etcd");
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].cpu_per_op, Some(0.5));
    assert_eq!(r[0].throughput, Some(200.0 / 150.0));
    assert!(ratios(&s[..1], "mesh", "etcd").is_empty());
}

#[test]
fn table_is_padded_markdown() {
    let t = markdown_table(
        &[("op", Align::Left), ("ops/s", Align::Right)],
        &[
            vec!["PUT".into(), "12345".into()],
            vec!["GET".into(), "7".into()],
        ],
    );
    let expected = "\
| op  | ops/s |
|:----|------:|
| PUT | 12345 |
| GET |     7 |
";
    assert_eq!(t, expected);
}

#[test]
fn summary_table_formats_numbers_and_missing_values() {
    let mut row = summarize(&[run(1, "etcd", Op::Get, 64, 1234.56, None)]);
    row[0].p50_ms = Some(0.12345);
    let t = summary_table(&row);
    let lines: Vec<&str> = t.lines().collect();
    assert_eq!(lines.len(), 3);
    assert!(
        lines[0].starts_with("| op  | concurrency | system | CPU µs/op |"),
        "{}",
        lines[0]
    );
    assert_eq!(
        lines[2],
        "| GET |          64 | etcd   |       n/a |    10.0 |  1235 |  0.123 |  2.000 |      1 |"
    );
}

#[test]
fn numbers() {
    assert_eq!(fmt_num(Some(1.26), 1), "1.3");
    assert_eq!(fmt_num(Some(f64::NAN), 1), "n/a");
    assert_eq!(fmt_num(None, 3), "n/a");
}
