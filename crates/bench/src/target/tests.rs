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
