use super::*;

fn mesh() -> System {
    System::Mesh {
        server_bin: PathBuf::from("mesh-server"),
    }
}

fn etcd() -> System {
    System::Etcd {
        etcd_bin: PathBuf::from("etcd"),
    }
}

#[test]
fn mesh_put_and_get_shapes() {
    let put = mesh().put_request(
        "http://127.0.0.1:1",
        "key-7",
        &Bytes::from_static(b"\x00\xff"),
    );
    assert_eq!(put.method(), Method::PUT);
    assert_eq!(put.uri(), "http://127.0.0.1:1/v1/kv/bench/key-7");
    assert_eq!(mesh().check_put(StatusCode::OK, b"true\n"), Ok(()));
    assert!(mesh().check_put(StatusCode::OK, b"false").is_err());
    assert!(mesh()
        .check_put(StatusCode::INTERNAL_SERVER_ERROR, b"true")
        .is_err());

    let get = mesh().get_request("http://127.0.0.1:1", "key-7");
    assert_eq!(get.uri(), "http://127.0.0.1:1/v1/kv/bench/key-7");
    let ok = br#"[{"LockIndex":0,"Key":"bench/key-7","Flags":0,"Value":"AP8=","CreateIndex":5,"ModifyIndex":9}]"#;
    assert_eq!(mesh().check_get(StatusCode::OK, ok, "key-7", 2), Ok(()));
    assert!(mesh().check_get(StatusCode::OK, ok, "key-7", 3).is_err());
    assert!(mesh().check_get(StatusCode::OK, ok, "key-8", 2).is_err());
    assert!(mesh().check_get(StatusCode::OK, b"[]", "key-7", 2).is_err());
    assert!(mesh()
        .check_get(StatusCode::NOT_FOUND, b"", "key-7", 2)
        .is_err());
}

#[test]
fn etcd_put_and_get_shapes() {
    let put = etcd().put_request(
        "http://127.0.0.1:1",
        "key-7",
        &Bytes::from_static(b"\x00\xff"),
    );
    assert_eq!(put.method(), Method::POST);
    assert_eq!(put.uri(), "http://127.0.0.1:1/v3/kv/put");
    let header = br#"{"header":{"cluster_id":"1","member_id":"2","revision":"3","raft_term":"2"}}"#;
    assert_eq!(etcd().check_put(StatusCode::OK, header), Ok(()));
    assert!(etcd()
        .check_put(StatusCode::OK, br#"{"error":"x"}"#)
        .is_err());

    // "YmVuY2gva2V5LTc=" is base64 of "bench/key-7".
    let ok = br#"{"header":{"revision":"3"},"kvs":[{"key":"YmVuY2gva2V5LTc=","create_revision":"2","mod_revision":"3","version":"2","value":"AP8="}],"count":"1"}"#;
    assert_eq!(etcd().check_get(StatusCode::OK, ok, "key-7", 2), Ok(()));
    assert!(etcd().check_get(StatusCode::OK, ok, "key-70", 2).is_err());
    assert!(etcd()
        .check_get(
            StatusCode::OK,
            br#"{"header":{"revision":"3"}}"#,
            "key-7",
            2
        )
        .is_err());
}

#[test]
fn readiness_checks() {
    assert_eq!(
        check_mesh_leader(StatusCode::OK, br#""127.0.0.1:8300""#),
        Ok(())
    );
    assert!(check_mesh_leader(StatusCode::OK, br#""""#).is_err());
    assert!(check_mesh_leader(StatusCode::SERVICE_UNAVAILABLE, br#""x""#).is_err());
    assert_eq!(
        check_etcd_health(StatusCode::OK, br#"{"health":"true"}"#),
        Ok(())
    );
    assert!(check_etcd_health(StatusCode::OK, br#"{"health":"false"}"#).is_err());
}

#[test]
fn free_ports_are_distinct() {
    let ports = free_ports::<3>().unwrap();
    assert!(ports[0] != ports[1] && ports[1] != ports[2] && ports[0] != ports[2]);
}

fn spec(n: u8, api_port: u16, peer_port: u16) -> NodeSpec {
    NodeSpec {
        name: format!("bench-{n}"),
        ip: Ipv4Addr::new(127, 0, 0, 40 + n),
        api_port,
        peer_port,
        dns_port: 9000 + u16::from(n),
    }
}

#[test]
fn topology_from_cluster_arg() {
    assert_eq!(Topology::from_cluster_arg(None).unwrap(), Topology::Single);
    assert_eq!(
        Topology::from_cluster_arg(Some(3)).unwrap(),
        Topology::Cluster(3)
    );
    assert_eq!(Topology::Cluster(3).nodes(), 3);
    assert_eq!(Topology::Single.nodes(), 1);
    assert!(Topology::from_cluster_arg(Some(1)).is_err());
    assert!(Topology::from_cluster_arg(Some(MAX_CLUSTER + 1)).is_err());
}

#[test]
fn cluster_nodes_get_their_own_loopback_addresses() {
    assert_eq!(node_ip(Topology::Single, 41, 0), Ipv4Addr::LOCALHOST);
    assert_eq!(
        node_ip(Topology::Cluster(3), mesh().first_host(), 2),
        Ipv4Addr::new(127, 0, 0, 43)
    );
    assert_eq!(
        node_ip(Topology::Cluster(3), etcd().first_host(), 0),
        Ipv4Addr::new(127, 0, 0, 51)
    );
    // The largest cluster of one system stays below the other system's first address.
    assert!(mesh().first_host() as usize + MAX_CLUSTER <= etcd().first_host() as usize);
}

#[test]
fn mesh_cluster_args_join_every_other_server() {
    let all = [
        spec(1, 8501, 8301),
        spec(2, 8502, 8302),
        spec(3, 8503, 8303),
    ];
    let args = mesh_args(&all[1], &all);
    let pairs: Vec<(&str, &str)> = args
        .iter()
        .zip(args.iter().skip(1))
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    for want in [
        ("--node", "bench-2"),
        ("--bind", "127.0.0.42"),
        ("--client", "127.0.0.42"),
        ("--http-port", "8502"),
        ("--server-port", "8302"),
        ("--bootstrap-expect", "3"),
    ] {
        assert!(pairs.contains(&want), "{want:?} missing from {args:?}");
    }
    let joins: Vec<&str> = pairs
        .iter()
        .filter(|(flag, _)| *flag == "--retry-join")
        .map(|(_, addr)| *addr)
        .collect();
    assert_eq!(joins, ["127.0.0.41", "127.0.0.43"]);
    assert!(!args.iter().any(|a| a == "--bootstrap"));

    let single = mesh_args(&all[0], &all[..1]);
    assert!(single.iter().any(|a| a == "--bootstrap"));
    assert!(!single
        .iter()
        .any(|a| a == "--retry-join" || a == "--bootstrap-expect"));
}

#[test]
fn etcd_cluster_args_name_every_member() {
    let all = [spec(1, 2379, 2380), spec(2, 2381, 2382)];
    let args = etcd_args(&all[1], &all);
    let value = |flag: &str| {
        let i = args.iter().position(|a| a == flag).expect(flag);
        args[i + 1].clone()
    };
    assert_eq!(
        value("--initial-cluster"),
        "bench-1=http://127.0.0.41:2380,bench-2=http://127.0.0.42:2382"
    );
    assert_eq!(value("--listen-client-urls"), "http://127.0.0.42:2381");
    assert_eq!(
        value("--initial-advertise-peer-urls"),
        "http://127.0.0.42:2382"
    );
    assert_eq!(value("--initial-cluster-state"), "new");
    let single = etcd_args(&all[0], &all[..1]);
    assert!(!single.iter().any(|a| a == "--initial-cluster-state"));
}

#[test]
fn mesh_leader_is_the_node_everyone_names() {
    let peers = ["127.0.0.41:8300", "127.0.0.42:8300", "127.0.0.43:8300"];
    let answers = |s: [&str; 3]| s.map(str::to_owned).to_vec();
    let all_43 = answers(["127.0.0.43:8300"; 3]);
    assert_eq!(mesh_leader_index(&all_43, &peers), Ok(2));
    assert!(mesh_leader_index(&answers(["", "", ""]), &peers).is_err());
    let split = answers(["127.0.0.43:8300", "127.0.0.41:8300", "127.0.0.43:8300"]);
    assert!(mesh_leader_index(&split, &peers).is_err());
    let stranger = answers(["127.0.0.9:8300"; 3]);
    assert!(mesh_leader_index(&stranger, &peers).is_err());
}

#[test]
fn etcd_leader_from_maintenance_status() {
    let body = br#"{"header":{"cluster_id":"111142393593563306","member_id":"15539191507453071631","revision":"1","raft_term":"2"},"version":"3.4.23","dbSize":"20480","leader":"15539191507453071631","raftIndex":"9"}"#;
    let leader = parse_etcd_status(body).unwrap();
    assert_eq!(
        leader,
        EtcdStatus {
            member_id: 15_539_191_507_453_071_631,
            leader: 15_539_191_507_453_071_631
        }
    );
    let no_leader = parse_etcd_status(br#"{"header":{"member_id":"7"}}"#).unwrap();
    assert_eq!(no_leader.leader, 0);
    assert!(parse_etcd_status(br#"{"header":{"member_id":"x"}}"#).is_err());

    let follower = |id| EtcdStatus {
        member_id: id,
        leader: leader.leader,
    };
    assert_eq!(
        etcd_leader_index(&[follower(1), leader.clone(), follower(2)]),
        Ok(1)
    );
    assert!(etcd_leader_index(&[no_leader.clone(), leader.clone()]).is_err());
    assert!(etcd_leader_index(&[
        leader.clone(),
        follower(1),
        EtcdStatus {
            member_id: 3,
            leader: 3
        }
    ])
    .is_err());
    assert!(etcd_leader_index(&[follower(1), follower(2)]).is_err());
}

#[test]
fn spreading_starts_after_the_leader() {
    let nodes = ["a", "b", "c"];
    assert_eq!(
        rotate_after(&nodes, 0).copied().collect::<Vec<_>>(),
        ["b", "c", "a"]
    );
    assert_eq!(
        rotate_after(&nodes, 2).copied().collect::<Vec<_>>(),
        ["a", "b", "c"]
    );
    assert_eq!(
        rotate_after(&nodes[..1], 0).copied().collect::<Vec<_>>(),
        ["a"]
    );
}

#[test]
fn free_ports_on_another_loopback_address() {
    let ip = Ipv4Addr::new(127, 0, 0, 41);
    let ports = free_ports_on::<2>(ip).unwrap();
    assert_ne!(ports[0], ports[1]);
    TcpListener::bind((ip, ports[0])).unwrap();
}

#[test]
fn samples_sum_over_nodes() {
    let s = |name: &str, cpu, rss| NodeSample {
        name: name.to_owned(),
        leader: false,
        usage: ProcessSample {
            cpu_ticks: cpu,
            rss_kib: rss,
        },
    };
    assert_eq!(
        sum_samples(&[s("a", 1, 10), s("b", 2, 20), s("c", 3, 30)]),
        ProcessSample {
            cpu_ticks: 6,
            rss_kib: 60
        }
    );
}
