use std::path::Path;

use super::accounting::{parse_rule_counters, rules};
use super::members::{
    all_alive, mesh_log_findings, mesh_members, serf_log_findings, serf_members, status_of,
    strip_ansi, LogFindings, MemberView, Status,
};
use super::msgpack::{self, Scalar, Value};
use super::pool::Flavor;
use super::round::GossipRun;
use super::serf_rpc::check_header;
use super::summary::{ratio, ratios, summarize};
use super::*;

/// A test-only MessagePack encoder for any value (the production side only encodes requests).
fn enc(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Nil => out.push(0xc0),
        Value::Bool(b) => out.push(if *b { 0xc3 } else { 0xc2 }),
        Value::Int(i) if (0..128).contains(i) => out.push(*i as u8),
        Value::Int(i) if (-32..0).contains(i) => out.push(*i as i8 as u8),
        Value::Int(i) if *i >= 0 => {
            out.push(0xcf);
            out.extend_from_slice(&(*i as u64).to_be_bytes());
        }
        Value::Int(i) => {
            out.push(0xd3);
            out.extend_from_slice(&(*i as i64).to_be_bytes());
        }
        Value::Float(f) => {
            out.push(0xcb);
            out.extend_from_slice(&f.to_bits().to_be_bytes());
        }
        Value::Str(s) => {
            out.push(0xdb);
            out.extend_from_slice(&(s.len() as u32).to_be_bytes());
            out.extend_from_slice(s.as_bytes());
        }
        Value::Bin(b) => {
            out.extend_from_slice(&[0xc4, b.len() as u8]);
            out.extend_from_slice(b);
        }
        Value::Array(items) => {
            out.push(0xdc);
            out.extend_from_slice(&(items.len() as u16).to_be_bytes());
            items.iter().for_each(|i| enc(i, out));
        }
        Value::Map(entries) => {
            out.push(0x80 | entries.len() as u8);
            for (k, v) in entries {
                enc(k, out);
                enc(v, out);
            }
        }
        Value::Ext(tag, data) => {
            out.extend_from_slice(&[0xc7, data.len() as u8, *tag as u8]);
            out.extend_from_slice(data);
        }
    }
}

fn s(text: &str) -> Value {
    Value::Str(text.to_owned())
}

fn map(entries: Vec<(&str, Value)>) -> Value {
    Value::Map(entries.into_iter().map(|(k, v)| (s(k), v)).collect())
}

/// A member as serf's RPC sends it (`Addr` is a `net.IP`, i.e. 16 raw bytes).
fn serf_member(name: &str, status: &str) -> Value {
    let mut addr = vec![0u8; 10];
    addr.extend_from_slice(&[0xff, 0xff, 127, 0, 2, 1]);
    map(vec![
        ("Name", s(name)),
        ("Addr", Value::Bin(addr)),
        ("Port", Value::Int(7946)),
        ("Tags", map(vec![("role", s("web"))])),
        ("Status", s(status)),
        ("ProtocolMin", Value::Int(1)),
        ("ProtocolMax", Value::Int(5)),
        ("ProtocolCur", Value::Int(2)),
        ("DelegateMin", Value::Int(2)),
        ("DelegateMax", Value::Int(5)),
        ("DelegateCur", Value::Int(4)),
    ])
}

fn view(pairs: &[(&str, Status)]) -> Vec<MemberView> {
    pairs
        .iter()
        .map(|(n, st)| MemberView {
            name: (*n).to_owned(),
            status: *st,
        })
        .collect()
}

#[test]
fn request_maps_encode_as_serf_expects() {
    let bytes = msgpack::encode_map(&[
        ("Command", Scalar::Str("members")),
        ("Seq", Scalar::Uint(300)),
    ]);
    assert_eq!(
        bytes,
        [
            &[0x82, 0xa7][..],
            b"Command",
            &[0xa7],
            b"members",
            &[0xa3],
            b"Seq",
            &[0xcd, 0x01, 0x2c],
        ]
        .concat()
    );
    let (decoded, used) = msgpack::decode(&bytes).unwrap().expect("complete");
    assert_eq!(used, bytes.len());
    assert_eq!(decoded.get("Seq").and_then(Value::as_int), Some(300));
    assert_eq!(
        decoded.get("Command").and_then(Value::as_str),
        Some("members")
    );
}

#[test]
fn every_kind_of_value_decodes_and_partial_input_waits() {
    let value = map(vec![
        ("nil", Value::Nil),
        ("t", Value::Bool(true)),
        ("neg", Value::Int(-5)),
        ("big", Value::Int(u64::MAX.into())),
        ("min", Value::Int(i64::MIN.into())),
        ("f", Value::Float(1.5)),
        ("bin", Value::Bin(vec![1, 2, 3])),
        ("ext", Value::Ext(-1, vec![9; 4])),
        ("list", Value::Array(vec![s("a"), Value::Int(1)])),
    ]);
    let mut bytes = Vec::new();
    enc(&value, &mut bytes);
    for cut in 0..bytes.len() {
        assert_eq!(
            msgpack::decode(&bytes[..cut]).unwrap(),
            None,
            "cut at {cut}"
        );
    }
    // A second value behind the first is left for the next read.
    bytes.push(0xc0);
    let (decoded, used) = msgpack::decode(&bytes).unwrap().expect("complete");
    assert_eq!(decoded, value);
    assert_eq!(used, bytes.len() - 1);
    assert!(msgpack::decode(&[0xc1]).is_err());
}

#[test]
fn serf_members_answer_parses_names_and_statuses() {
    let body = map(vec![(
        "Members",
        Value::Array(vec![
            serf_member("serf-1", "alive"),
            serf_member("serf-2", "failed"),
            serf_member("serf-3", "left"),
            serf_member("serf-4", "leaving"),
            serf_member("serf-5", "none"),
        ]),
    )]);
    let mut bytes = Vec::new();
    enc(&body, &mut bytes);
    let (decoded, _) = msgpack::decode(&bytes).unwrap().expect("complete");
    assert_eq!(
        serf_members(&decoded).unwrap(),
        view(&[
            ("serf-1", Status::Alive),
            ("serf-2", Status::Failed),
            ("serf-3", Status::Left),
            ("serf-4", Status::Leaving),
            ("serf-5", Status::Other),
        ])
    );
    assert!(serf_members(&map(vec![("Members", Value::Nil)])).is_err());
    assert!(serf_members(&map(vec![("Members", Value::Array(vec![map(vec![])]))])).is_err());
}

#[test]
fn response_headers_must_answer_the_request() {
    let header = |seq: i128, error: &str| map(vec![("Seq", Value::Int(seq)), ("Error", s(error))]);
    assert!(check_header(&header(3, ""), 3).is_ok());
    let err = check_header(&header(3, "Invalid request"), 3).unwrap_err();
    assert!(err.to_string().contains("Invalid request"), "{err}");
    assert!(check_header(&header(2, ""), 3).is_err());
    assert!(check_header(&Value::Nil, 0).is_err());
}

#[test]
fn mesh_members_answer_parses_codes() {
    let body = br#"[{"Name":"mesh-1","Addr":"127.0.1.1","Port":8301,"Tags":{"role":"consul"},"Status":1,"ProtocolMin":1},
        {"Name":"mesh-2","Addr":"127.0.1.2","Port":8301,"Tags":{},"Status":4},
        {"Name":"mesh-3","Addr":"127.0.1.3","Port":8301,"Tags":{},"Status":3},
        {"Name":"mesh-4","Addr":"127.0.1.4","Port":8301,"Tags":{},"Status":9}]"#;
    let members = mesh_members(body).unwrap();
    assert_eq!(
        members,
        view(&[
            ("mesh-1", Status::Alive),
            ("mesh-2", Status::Failed),
            ("mesh-3", Status::Left),
            ("mesh-4", Status::Other),
        ])
    );
    assert!(mesh_members(b"{}").is_err());
    assert_eq!(status_of(&members, "mesh-2"), Some(Status::Failed));
    assert_eq!(status_of(&members, "mesh-9"), None);
    assert!(all_alive(&members, ["mesh-1"].into_iter()));
    assert!(!all_alive(&members, ["mesh-1", "mesh-2"].into_iter()));
    assert!(!all_alive(&members, ["mesh-9"].into_iter()));
}

#[test]
fn mesh_logs_are_read_through_their_colours() {
    let log = "\u{1b}[2m2026-11-24T20:28:26.726143Z\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m member joined \u{1b}[3mmember\u{1b}[0m\u{1b}[2m=\u{1b}[0mmesh-3 \u{1b}[3maddr\u{1b}[0m\u{1b}[2m=\u{1b}[0m127.0.1.3:8301
\u{1b}[2m2026-11-24T20:28:35.176713Z\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m member failed \u{1b}[3mmember\u{1b}[0m\u{1b}[2m=\u{1b}[0mmesh-3 \u{1b}[3maddr\u{1b}[0m\u{1b}[2m=\u{1b}[0m127.0.1.3:8301
2026-11-24T20:28:36.000000Z  INFO declared down by the pool; rejoined node=mesh-2 incarnation=7
";
    assert_eq!(
        strip_ansi("\u{1b}[3mmember\u{1b}[0m\u{1b}[2m=\u{1b}[0mmesh-3"),
        "member=mesh-3"
    );
    assert_eq!(
        mesh_log_findings(log),
        LogFindings {
            failed: vec!["mesh-3".to_owned()],
            suspected: vec![],
            refuted: 1,
        }
    );
}

#[test]
fn serf_logs_name_failures_suspicions_and_refutations() {
    let log = "    2026/11/24 20:30:01 [INFO] serf: EventMemberJoin: serf-4 127.0.2.4
    2026/11/24 20:31:02 [INFO] memberlist: Suspect serf-3 has failed, no acks received
    2026/11/24 20:31:05 [INFO] memberlist: Marking serf-3 as failed, suspect timeout reached (2 peer confirmations)
    2026/11/24 20:31:05 [INFO] serf: EventMemberFailed: serf-3 127.0.2.3
    2026/11/24 20:31:06 [WARN] memberlist: Refuting a suspect message (from: serf-2)
";
    assert_eq!(
        serf_log_findings(log),
        LogFindings {
            failed: vec!["serf-3".to_owned()],
            suspected: vec!["serf-3".to_owned()],
            refuted: 1,
        }
    );
}

#[test]
fn iptables_counters_are_read_in_rule_order() {
    let text = "-N MESH_BENCH
-A MESH_BENCH -s 127.0.1.0/24 -p udp -c 10 1280
-A MESH_BENCH -s 127.0.1.0/24 -p tcp -m multiport --ports 8301 -c 0 0
-A MESH_BENCH -s 127.0.2.0/24 -p udp -c 3 384
-A OTHER -s 127.0.2.0/24 -p udp -c 3 999
";
    assert_eq!(
        parse_rule_counters(text, "MESH_BENCH").unwrap(),
        [(10, 1280), (0, 0), (3, 384)]
    );
    assert!(parse_rule_counters("-A MESH_BENCH -p udp", "MESH_BENCH").is_err());
}

#[test]
fn serf_pushpull_from_the_unbound_source_is_counted_too() {
    let serf = Flavor::Serf {
        bin: "/usr/bin/serf".into(),
    };
    let rules: Vec<String> = rules(&serf.accounting())
        .iter()
        .map(|r| r.join(" "))
        .collect();
    assert_eq!(
        rules,
        [
            "-s 127.0.2.0/24 -p udp",
            "! -s 127.0.2.0/24 -d 127.0.2.0/24 -p udp",
            "-s 127.0.2.0/24 -p tcp -m multiport --ports 7946",
            "! -s 127.0.2.0/24 -d 127.0.2.0/24 -p tcp -m multiport --ports 7946",
        ]
    );
}

#[test]
fn agents_live_on_their_own_loopback_addresses() {
    let mesh = Flavor::Mesh {
        server: "/bin/mesh-server".into(),
        client: "/bin/mesh-client".into(),
    };
    let serf = Flavor::Serf {
        bin: "/usr/bin/serf".into(),
    };
    let args = |f: &Flavor, i: usize| {
        let cmd = f.command(i, Path::new("/d"));
        let mut all = vec![cmd.get_program().to_string_lossy().into_owned()];
        all.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
        all.join(" ")
    };
    assert_eq!(
        args(&mesh, 0),
        "/bin/mesh-server -node mesh-1 -bind 127.0.1.1 -client 127.0.1.1 -data-dir /d \
         -http-port 8500 -serf-lan-port 8301 -server-port 8300 -raft-multiplier 1 -bootstrap"
    );
    assert_eq!(
        args(&mesh, 49),
        "/bin/mesh-client agent -node mesh-50 -bind 127.0.1.50 -client 127.0.1.50 -data-dir /d \
         -http-port 8500 -serf-lan-port 8301 -retry-join 127.0.1.1:8301"
    );
    assert_eq!(
        args(&serf, 0),
        "/usr/bin/serf agent -node serf-1 -bind 127.0.2.1:7946 -rpc-addr 127.0.2.1:7373"
    );
    assert_eq!(
        args(&serf, 2),
        "/usr/bin/serf agent -node serf-3 -bind 127.0.2.3:7946 -rpc-addr 127.0.2.3:7373 \
         -join 127.0.2.1:7946"
    );
}

fn run(round: usize, system: &str, n: usize, cpu: f64, detect: Option<f64>) -> GossipRun {
    GossipRun {
        round,
        system: system.to_owned(),
        n,
        cpu_s_per_min: Some(cpu),
        rss_mib: Some(10.0 * round as f64),
        detect_secs: detect,
        join_secs: Some(1.0),
        udp_bytes_per_agent_sec: Some(100.0),
        false_failures: round - 1,
        ..GossipRun::default()
    }
}

#[test]
fn medians_over_rounds_and_mesh_over_serf() {
    let mut failed = run(3, "mesh", 20, 9.0, None);
    failed.error = Some("timeout".to_owned());
    let runs = [
        run(1, "mesh", 20, 1.0, Some(2.0)),
        run(1, "serf", 20, 4.0, Some(8.0)),
        run(2, "mesh", 20, 3.0, Some(4.0)),
        run(2, "serf", 20, 2.0, Some(6.0)),
        failed,
        run(1, "mesh", 50, 1.0, Some(2.0)),
    ];
    let s = summarize(&runs);
    assert_eq!(
        s.iter()
            .map(|r| (r.n, r.system.as_str()))
            .collect::<Vec<_>>(),
        [(20, "mesh"), (20, "serf"), (50, "mesh")]
    );
    let mesh = &s[0];
    assert_eq!((mesh.rounds, mesh.complete), (3, 2));
    assert_eq!(mesh.cpu_s_per_min, Some(3.0));
    assert_eq!(mesh.detect_secs, Some(3.0));
    assert_eq!(mesh.rss_mib, Some(20.0));
    assert_eq!(mesh.false_failures, 3);
    let r = ratios(&s);
    assert_eq!(r.len(), 1, "N=50 has no serf row");
    assert_eq!(r[0].n, 20);
    assert_eq!(r[0].cpu, Some(1.0));
    assert_eq!(r[0].detect, Some(3.0 / 7.0));
    assert_eq!(r[0].udp, Some(1.0));
    assert_eq!(ratio(Some(1.0), Some(0.0)), None);
    assert_eq!(ratio(None, Some(1.0)), None);
    let table = summary::summary_table(&s);
    assert!(table.contains("|  20 | mesh   |"), "{table}");
    assert!(table.contains("2/3"), "{table}");
}

fn args(s: &str) -> GossipArgs {
    use clap::Parser;
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: GossipArgs,
    }
    Cli::parse_from(std::iter::once("gossip").chain(s.split_whitespace())).args
}

#[test]
fn quick_and_full_plans() {
    let full = args("").plan().unwrap();
    assert_eq!(full.sizes, [20, 50]);
    assert_eq!(
        (
            full.rounds,
            full.steady_secs,
            full.warmup_secs,
            full.sim_nodes
        ),
        (2, 60, 90, 1000)
    );
    assert_eq!(full.sim_loss, [0.0, 0.1]);
    let quick = args("--quick").plan().unwrap();
    assert_eq!(quick.sizes, [5]);
    assert_eq!(
        (quick.rounds, quick.steady_secs, quick.warmup_secs),
        (1, 5, 0)
    );
    let mixed = args("--quick --sizes 7 --rounds 3").plan().unwrap();
    assert_eq!((mixed.sizes.as_slice(), mixed.rounds), (&[7][..], 3));
    assert!(args("--sizes 2").plan().is_err());
    assert!(args("--sizes 251").plan().is_err());
    assert!(args("--sim-loss 1.0").plan().is_err());
    assert!(args("--rounds 0").plan().is_err());
}
