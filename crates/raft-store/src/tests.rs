use std::collections::BTreeMap;
use std::time::Duration;

use openraft::testing::{StoreBuilder, Suite};
use openraft::{Config, StorageError};
use tempfile::TempDir;

use consensus::*;

use super::*;

struct RocksBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, TempDir> for RocksBuilder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachineStore), StorageError<NodeId>> {
        let dir = TempDir::new().expect("temp dir");
        let (log, sm) = open(dir.path()).expect("open store");
        Ok((dir, log, sm))
    }
}

#[test]
fn openraft_storage_conformance_suite() {
    Suite::test_all(RocksBuilder).expect("openraft storage suite");
}

fn set(key: &str, value: &str) -> Command {
    Command {
        now_ms: 1_000,
        op: Op::Kv(kv::KvOp::Set {
            key: key.into(),
            value: value.as_bytes().to_vec(),
            flags: 0,
        }),
    }
}

/// A single-voter raft over the store in `dir`. Peers are never contacted, so the network
/// refuses every call.
async fn single_node(dir: &std::path::Path) -> (Raft, StoreReader) {
    let (log, sm) = open(dir).expect("open store");
    let reader = sm.reader();
    let config = Config {
        heartbeat_interval: 50,
        election_timeout_min: 150,
        election_timeout_max: 300,
        ..Default::default()
    };
    let raft = Raft::new(
        1,
        config.validate().expect("valid config").into(),
        NoPeers,
        log,
        sm,
    )
    .await
    .expect("raft starts");
    let members = BTreeMap::from([(1, ServerNode::new("127.0.0.1:0", "test", ""))]);
    // Initializing an already initialized node is refused; that is fine on restart.
    let _ = raft.initialize(members).await;
    raft.wait(Some(Duration::from_secs(10)))
        .state(openraft::ServerState::Leader, "leader")
        .await
        .expect("becomes leader");
    (raft, reader)
}

#[tokio::test]
async fn acknowledged_writes_survive_restart_with_same_indexes() {
    let dir = TempDir::new().expect("temp dir");
    let mut expected = Vec::new();
    {
        let (raft, reader) = single_node(dir.path()).await;
        for i in 0..50 {
            let key = format!("k/{i}");
            let resp = raft.client_write(set(&key, "v")).await.expect("write");
            assert_eq!(resp.data, Response::Bool(true));
            expected.push((key.clone(), resp.log_id.index));
            assert_eq!(
                reader.state().kv.get(&key).map(|e| e.modify_index),
                Some(resp.log_id.index)
            );
        }
        raft.shutdown().await.expect("shutdown");
    }
    let (raft, reader) = single_node(dir.path()).await;
    raft.ensure_linearizable().await.expect("leader read");
    for (key, index) in expected {
        let state = reader.state();
        let entry = state.kv.get(&key).expect("key survived restart");
        assert_eq!(
            (entry.create_index, entry.modify_index),
            (index, index),
            "{key}"
        );
    }
    raft.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn snapshot_then_restart_restores_state() {
    let dir = TempDir::new().expect("temp dir");
    {
        let (raft, _) = single_node(dir.path()).await;
        for i in 0..20 {
            raft.client_write(set(&format!("s/{i}"), "x"))
                .await
                .expect("write");
        }
        raft.trigger().snapshot().await.expect("trigger snapshot");
        let applied = raft.metrics().borrow().last_applied.expect("applied");
        raft.wait(Some(Duration::from_secs(10)))
            .snapshot(applied, "snapshot built")
            .await
            .expect("snapshot");
        raft.client_write(set("after", "y"))
            .await
            .expect("write after snapshot");
        raft.shutdown().await.expect("shutdown");
    }
    let (raft, reader) = single_node(dir.path()).await;
    raft.ensure_linearizable().await.expect("leader read");
    assert_eq!(reader.state().kv.list("s/").len(), 20);
    assert!(reader.state().kv.get("after").is_some());
    raft.shutdown().await.expect("shutdown");
}

async fn snapshot_now(raft: &Raft) {
    raft.trigger().snapshot().await.expect("trigger snapshot");
    let applied = raft.metrics().borrow().last_applied.expect("applied");
    raft.wait(Some(Duration::from_secs(10)))
        .snapshot(applied, "snapshot built")
        .await
        .expect("snapshot");
}

#[tokio::test]
async fn a_snapshot_an_older_version_kept_in_rocksdb_is_read_then_moved_to_a_file() {
    let dir = TempDir::new().expect("temp dir");
    {
        let (raft, reader) = single_node(dir.path()).await;
        for i in 0..20 {
            raft.client_write(set(&format!("s/{i}"), "x"))
                .await
                .expect("write");
        }
        snapshot_now(&raft).await;
        raft.shutdown().await.expect("shutdown");
        drop((raft, reader));
    }
    // Where an older version kept it: the `current` value of the `snapshot` column family.
    let file = crate::snapshot_file::SnapshotFile::new(dir.path());
    let meta = file
        .read_meta()
        .expect("read file")
        .expect("a snapshot file");
    let Some(crate::snapshot_file::Stored::Current(applied)) =
        file.read::<Applied>().expect("read file")
    else {
        panic!("a snapshot in the current layout");
    };
    // The first layout's data is the state as it was then.
    let encoded = postcard::to_stdvec(&crate::snapshot_file::LegacySnapshot {
        meta,
        data: postcard::to_stdvec(&crate::state_machine::to_first(&applied)).expect("encode"),
    })
    .expect("encode");
    std::fs::remove_file(dir.path().join("snapshot.bin")).expect("remove file");
    {
        let db = open_db(dir.path()).expect("open db");
        db.put_cf(db.cf_handle(cf::SNAPSHOT).unwrap(), b"current", &encoded)
            .expect("put");
    }
    {
        let (_log, sm) = open(dir.path()).expect("open store");
        assert_eq!(sm.reader().state().kv.list("s/").len(), 20, "loaded");
    }
    {
        let (raft, reader) = single_node(dir.path()).await;
        raft.client_write(set("after", "y")).await.expect("write");
        snapshot_now(&raft).await;
        raft.shutdown().await.expect("shutdown");
        drop((raft, reader));
    }
    assert!(
        file.read_meta().expect("read file").is_some(),
        "a file again"
    );
    {
        let db = open_db(dir.path()).expect("open db");
        let legacy = db.get_cf(db.cf_handle(cf::SNAPSHOT).unwrap(), b"current");
        assert_eq!(legacy.expect("get"), None, "the RocksDB copy is gone");
    }
    let (_log, sm) = open(dir.path()).expect("open store");
    let state = sm.reader();
    assert_eq!(state.state().kv.list("s/").len(), 20);
    assert!(state.state().kv.get("after").is_some());
}

#[tokio::test]
async fn a_damaged_snapshot_file_fails_the_open() {
    let dir = TempDir::new().expect("temp dir");
    {
        let (raft, reader) = single_node(dir.path()).await;
        raft.client_write(set("k", "v")).await.expect("write");
        snapshot_now(&raft).await;
        raft.shutdown().await.expect("shutdown");
        drop((raft, reader));
    }
    let path = dir.path().join("snapshot.bin");
    let mut bytes = std::fs::read(&path).expect("read");
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&path, bytes).expect("write");
    let err = open(dir.path()).expect_err("refused");
    assert!(matches!(err, StoreError::SnapshotFile(_)), "{err}");
}

#[tokio::test]
async fn notifier_wakes_only_matching_topics() {
    let notifier = Notifier::new();
    let mut web = notifier.prefix("web/");
    let mut db_key = notifier.key("db/conf");
    let mut sessions = notifier.sessions();
    assert_eq!(notifier.watched_topics(), 3);

    notifier.publish(&[Topic::Key("web/a".into())]);
    tokio::time::timeout(Duration::from_secs(1), web.changed())
        .await
        .expect("web wakes");
    let quiet = tokio::time::timeout(Duration::from_millis(50), db_key.changed()).await;
    assert!(quiet.is_err(), "db/conf must not wake for web/a");
    let quiet = tokio::time::timeout(Duration::from_millis(50), sessions.changed()).await;
    assert!(quiet.is_err(), "sessions must not wake for a key");

    notifier.publish(&[Topic::Key("db/conf".into())]);
    tokio::time::timeout(Duration::from_secs(1), db_key.changed())
        .await
        .expect("db wakes");

    notifier.publish(&[Topic::Sessions]);
    tokio::time::timeout(Duration::from_secs(1), sessions.changed())
        .await
        .expect("sessions wake");

    // The empty prefix watches the whole store.
    let mut all = notifier.prefix("");
    notifier.publish(&[Topic::Key("x".into())]);
    tokio::time::timeout(Duration::from_secs(1), all.changed())
        .await
        .expect("root prefix wakes");

    drop((web, db_key, sessions, all));
    assert_eq!(
        notifier.watched_topics(),
        0,
        "dropped subscriptions unregister"
    );
}

#[tokio::test]
async fn a_change_between_subscribe_and_wait_is_not_lost() {
    let notifier = Notifier::new();
    let mut sub = notifier.key("k");
    notifier.publish(&[Topic::Key("k".into())]);
    tokio::time::timeout(Duration::from_secs(1), sub.changed())
        .await
        .expect("not lost");
}

#[tokio::test]
async fn concurrent_writes_share_raft_entries() {
    let dir = TempDir::new().expect("temp dir");
    let (raft, reader) = single_node(dir.path()).await;
    let node = RaftNode::new(raft.clone(), reader.clone());
    let before = reader.last_applied_index();

    let mut ops: Vec<Op> = (0..200)
        .map(|i| set(&format!("batch/{i}"), "v").op)
        .collect();
    // One op in the middle that the state refuses: only it fails.
    ops.insert(
        100,
        Op::Kv(kv::KvOp::Acquire {
            key: "locked".into(),
            value: Vec::new(),
            flags: 0,
            session: "no-such-session".into(),
        }),
    );
    let results = futures::future::join_all(ops.into_iter().map(|op| node.write(op))).await;

    let rejected: Vec<_> = results
        .iter()
        .filter(|r| {
            matches!(
                r,
                Ok(Written {
                    response: Response::Rejected(_),
                    ..
                })
            )
        })
        .collect();
    assert_eq!(rejected.len(), 1, "only the bad acquire is refused");
    assert_eq!(
        results
            .iter()
            .filter(|r| matches!(
                r,
                Ok(Written {
                    response: Response::Bool(true),
                    ..
                })
            ))
            .count(),
        200
    );
    let entries = reader.last_applied_index() - before;
    assert!(
        entries < 201,
        "201 writes took {entries} raft entries: no group commit"
    );
    for i in 0..200 {
        assert!(reader.state().kv.get(&format!("batch/{i}")).is_some());
    }
    raft.shutdown().await.expect("shutdown");
}

fn command(op: Op) -> Command {
    Command {
        now_ms: 1_700_000_000_000,
        op,
    }
}

fn allow(source: &str, destination: &str) -> Op {
    Op::Intention(Box::new(intentions::IntentionOp::Upsert {
        source: source.into(),
        destination: destination.into(),
        write: intentions::IntentionWrite {
            source_type: "consul".into(),
            action: "allow".into(),
            ..Default::default()
        },
    }))
}

#[tokio::test]
async fn the_ca_and_intentions_are_replicated_state_that_survives_a_snapshot() {
    let dir = TempDir::new().expect("temp dir");
    let start = std::time::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let ca = ca::CaState::bootstrap(
        "11111111-2222-3333-4444-555555555555",
        ca::CaConfig::default(),
        start,
    )
    .expect("bootstrap");
    let first_serial;
    {
        let (raft, reader) = single_node(dir.path()).await;
        let mut ca_topic = reader.notifier().table(TABLE_CA);
        let mut ixn_topic = reader.notifier().table(TABLE_INTENTIONS);
        let set = |base| Op::SetCa {
            ca: Box::new(ca.clone()),
            base,
        };
        let done = raft
            .client_write(command(set(CaBase::default())))
            .await
            .expect("write");
        assert_eq!(done.data, Response::Bool(true));
        ca_topic.changed().await;
        // A second writer that also saw "no CA" loses.
        let again = raft
            .client_write(command(set(CaBase::default())))
            .await
            .expect("write");
        assert_eq!(again.data, Response::Bool(false));
        let index = reader.state().ca.as_ref().expect("ca").index();
        assert_eq!(index, done.log_id.index, "the CA carries its raft index");

        let reserve = || command(Op::ReserveLeaf { ttl: None });
        let Response::Leaf(a) = raft.client_write(reserve()).await.expect("write").data else {
            panic!("a reservation");
        };
        let Response::Leaf(b) = raft.client_write(reserve()).await.expect("write").data else {
            panic!("a reservation");
        };
        assert_eq!(b.serial, a.serial + 1);
        first_serial = a.serial;
        // A CA computed before the reservations would reuse their serials: refused.
        let stale = CaBase {
            index,
            next_serial: ca.next_serial,
        };
        let refused = raft.client_write(command(set(stale))).await.expect("write");
        assert_eq!(refused.data, Response::Bool(false));

        let written = raft
            .client_write(command(allow("web", "db")))
            .await
            .expect("write");
        assert_eq!(written.data, Response::Intention(Ok(None)));
        ixn_topic.changed().await;
        snapshot_now(&raft).await;
        raft.shutdown().await.expect("shutdown");
    }
    let (raft, reader) = single_node(dir.path()).await;
    raft.ensure_linearizable().await.expect("leader read");
    let state = reader.state();
    let restored = state.ca.as_ref().expect("the CA survives");
    assert_eq!(restored.roots, {
        let mut roots = ca.roots.clone();
        for root in &mut roots {
            root.leaves_valid_until = restored.roots[0].leaves_valid_until;
            root.create_index = restored.roots[0].create_index;
            root.modify_index = restored.roots[0].modify_index;
        }
        roots
    });
    assert_eq!(restored.next_serial, first_serial + 2);
    assert_eq!(
        state
            .intentions
            .get_exact("web", "db")
            .expect("kept")
            .source_name,
        "web"
    );
    drop(state);
    raft.shutdown().await.expect("shutdown");
}

fn config_entry(body: &str, cas: Option<u64>) -> Op {
    let entry = Box::new(config_entries::wire::decode(body.as_bytes()).expect("a valid body"));
    Op::ConfigEntry(Box::new(config_entries::ConfigEntryOp::Upsert {
        entry,
        cas,
    }))
}

#[tokio::test]
async fn config_entries_are_replicated_state_that_survives_a_snapshot() {
    let dir = TempDir::new().expect("temp dir");
    let web = r#"{"Kind":"service-defaults","Name":"web","Protocol":"http","Meta":{"team":"a"}}"#;
    let (created, modified);
    {
        let (raft, reader) = single_node(dir.path()).await;
        let mut topic = reader.notifier().table(TABLE_CONFIG_ENTRIES);
        let first = raft
            .client_write(command(config_entry(web, Some(0))))
            .await
            .expect("write");
        assert_eq!(first.data, Response::ConfigEntry(Ok(true)));
        topic.changed().await;
        created = first.log_id.index;
        // A second create-only write loses, and changes nothing.
        let again = raft
            .client_write(command(config_entry(web, Some(0))))
            .await
            .expect("write");
        assert_eq!(again.data, Response::ConfigEntry(Ok(false)));
        assert_eq!(reader.state().config_entries.index(), created);
        let global = r#"{"Kind":"proxy-defaults","Config":{"protocol":"grpc"}}"#;
        let second = raft
            .client_write(command(config_entry(global, None)))
            .await
            .expect("write");
        modified = second.log_id.index;
        // Refused by validation: an answer, not a failed write.
        let bad = raft
            .client_write(command(config_entry(
                r#"{"Kind":"proxy-defaults","Name":"x"}"#,
                None,
            )))
            .await
            .expect("write");
        assert!(matches!(
            bad.data,
            Response::ConfigEntry(Err(config_entries::ConfigEntryError::Invalid(_)))
        ));
        snapshot_now(&raft).await;
        raft.shutdown().await.expect("shutdown");
    }
    let (raft, reader) = single_node(dir.path()).await;
    raft.ensure_linearizable().await.expect("leader read");
    let state = reader.state();
    let entries = &state.config_entries;
    let web = entries
        .get(config_entries::Kind::ServiceDefaults, "web")
        .expect("survives");
    assert_eq!((web.create_index, web.modify_index), (created, created));
    assert_eq!(web.protocol, config_entries::Protocol::Http);
    assert_eq!(web.meta.get("team").map(String::as_str), Some("a"));
    assert_eq!(entries.protocol_of("db"), config_entries::Protocol::Grpc);
    assert_eq!(entries.index(), modified);
    drop(state);
    raft.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn a_snapshot_file_of_the_previous_layout_loads_and_is_rewritten() {
    let dir = TempDir::new().expect("temp dir");
    {
        let (raft, reader) = single_node(dir.path()).await;
        for i in 0..5 {
            raft.client_write(set(&format!("p/{i}"), "x"))
                .await
                .expect("write");
        }
        raft.client_write(command(allow("web", "db")))
            .await
            .expect("write");
        snapshot_now(&raft).await;
        raft.shutdown().await.expect("shutdown");
        drop((raft, reader));
    }
    // The snapshot as the version before ACLs wrote it, under the `MESHSNP3` magic.
    let file = crate::snapshot_file::SnapshotFile::new(dir.path());
    let meta = file.read_meta().expect("read").expect("a snapshot");
    let Some(crate::snapshot_file::Stored::Current(applied)) =
        file.read::<Applied>().expect("read")
    else {
        panic!("a snapshot in the current layout");
    };
    let previous = crate::state_machine::to_previous(&applied);
    file.write(&meta, |out| {
        postcard::to_io(&previous, out)
            .map(|_| ())
            .map_err(std::io::Error::other)
    })
    .expect("write")
    .finish()
    .expect("durable");
    crate::snapshot_file::mark_as_previous(&file.path(), 1).expect("mark");
    assert_eq!(&std::fs::read(file.path()).expect("read")[..8], b"MESHSNP3");
    {
        let (_log, sm) = open(dir.path()).expect("the previous layout opens");
        let reader = sm.reader();
        let state = reader.state();
        assert_eq!(state.kv.list("p/").len(), 5);
        assert!(state.intentions.get_exact("web", "db").is_ok());
        assert!(!state.acl.initialized());
    }
    assert_eq!(
        &std::fs::read(file.path()).expect("read")[..8],
        b"MESHSNP4",
        "rewritten in the current layout"
    );
    // And as the first layout's version wrote it, under `MESHSNP2`: without config entries.
    let Some(crate::snapshot_file::Stored::Current(applied)) =
        file.read::<Applied>().expect("read")
    else {
        panic!("a snapshot in the current layout");
    };
    let first = crate::state_machine::to_first(&applied);
    file.write(&meta, |out| {
        postcard::to_io(&first, out)
            .map(|_| ())
            .map_err(std::io::Error::other)
    })
    .expect("write")
    .finish()
    .expect("durable");
    crate::snapshot_file::mark_as_previous(&file.path(), 2).expect("mark");
    assert_eq!(&std::fs::read(file.path()).expect("read")[..8], b"MESHSNP2");
    {
        let (_log, sm) = open(dir.path()).expect("the first layout opens");
        let reader = sm.reader();
        let state = reader.state();
        assert_eq!(state.kv.list("p/").len(), 5);
        assert!(state.config_entries.is_empty());
    }
    let (raft, reader) = single_node(dir.path()).await;
    let written = raft
        .client_write(command(config_entry(
            r#"{"Kind":"service-defaults","Name":"web"}"#,
            None,
        )))
        .await
        .expect("write");
    assert_eq!(written.data, Response::ConfigEntry(Ok(true)));
    assert_eq!(reader.state().kv.list("p/").len(), 5);
    raft.shutdown().await.expect("shutdown");
}

#[test]
fn commands_keep_their_postcard_numbers() {
    // Log entries written by earlier versions are read with these numbers: a variant moved
    // or inserted above another would make old entries mean something else.
    let number = |op: &Op| postcard::to_stdvec(op).expect("encode")[0];
    let cases = [
        (Op::ReapTombstones { up_to_index: 1 }, 5),
        (Op::RestoreV1(Box::default()), 7),
        (Op::ReserveLeaf { ttl: None }, 9),
        (allow("a", "b"), 10),
        (Op::Batch(Vec::new()), 11),
        (config_entry(r#"{"Kind":"proxy-defaults"}"#, None), 12),
        (Op::RestoreV2(Box::default()), 13),
        (
            Op::Acl(Box::new(acl::AclOp::DeleteRole { id: String::new() })),
            14,
        ),
        (Op::Restore(Box::default()), 15),
    ];
    for (op, expected) in cases {
        assert_eq!(number(&op), expected, "{op:?}");
    }
    let response = postcard::to_stdvec(&Response::ConfigEntry(Ok(true))).expect("encode");
    assert_eq!(response[0], 7);
    let response = postcard::to_stdvec(&Response::Acl(Ok(acl::AclApplied::Done))).expect("encode");
    assert_eq!(response[0], 8);
}

#[tokio::test]
async fn a_restore_entry_of_the_previous_layout_still_applies() {
    let dir = TempDir::new().expect("temp dir");
    let (raft, reader) = single_node(dir.path()).await;
    raft.client_write(command(config_entry(
        r#"{"Kind":"service-defaults","Name":"gone"}"#,
        None,
    )))
    .await
    .expect("write");
    let mut old = StateV1::default();
    old.kv
        .apply(
            kv::KvOp::Set {
                key: "restored".into(),
                value: b"v".to_vec(),
                flags: 0,
            },
            1,
            1_000,
        )
        .expect("set");
    // As an entry of the previous version's log reads back.
    let bytes = postcard::to_stdvec(&Op::RestoreV1(Box::new(old))).expect("encode");
    let op: Op = postcard::from_bytes(&bytes).expect("decode");
    raft.client_write(command(op)).await.expect("write");
    let state = reader.state();
    assert!(state.kv.get("restored").is_some());
    assert!(
        state.config_entries.is_empty(),
        "the whole state was replaced"
    );
    drop(state);
    raft.shutdown().await.expect("shutdown");
}

/// Every file under `dir`, read whole.
fn files_under(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else if let Ok(bytes) = std::fs::read(&path) {
            out.push((path, bytes));
        }
    }
    out
}

fn holds_a_private_key(bytes: &[u8]) -> bool {
    bytes
        .windows(b"PRIVATE KEY".len())
        .any(|w| w == b"PRIVATE KEY")
}

/// Creates the CA through `node` the way the leader does.
async fn create_ca(node: &RaftNode) {
    let created = node
        .update_ca(|current| match current {
            Some(_) => Ok(None),
            None => ca::CaState::bootstrap(
                "11111111-2222-3333-4444-555555555555",
                ca::CaConfig::default(),
                std::time::SystemTime::now(),
            )
            .map(Some)
            .map_err(|e| e.to_string()),
        })
        .await
        .expect("CA written");
    assert!(created);
}

#[tokio::test]
async fn with_a_data_key_no_ca_private_key_reaches_the_log_snapshots_or_archives_in_plaintext() {
    let dir = TempDir::new().expect("temp dir");
    let keys = std::sync::Arc::new(ca::seal::DataKeys::new(vec![[7; 32]]).expect("a key"));
    {
        let (raft, reader) = single_node(dir.path()).await;
        let node = RaftNode::new(raft.clone(), reader.clone()).with_data_keys(Some(keys.clone()));
        create_ca(&node).await;
        let sealed = |reader: &StoreReader| {
            let state = reader.state();
            let ca = state.ca.as_ref().expect("a CA");
            let json = serde_json::to_string(ca).expect("json");
            !holds_a_private_key(json.as_bytes()) && !ca.needs_sealing(&keys)
        };
        assert!(sealed(&reader), "the replicated CA's keys are sealed");

        // Leaves are signed with the sealed intermediate.
        let (trust_domain, roots) = {
            let state = reader.state();
            let ca = state.ca.as_ref().expect("a CA");
            (ca.trust_domain.clone(), ca.trusted_roots())
        };
        let datacenter = raft.config().cluster_name.clone();
        let (_, csr) =
            ca::generate_key_and_csr(&trust_domain, &datacenter, "web", &[]).expect("csr");
        let (leaf, _) = node.sign_leaf(&csr, "web").await.expect("signed");
        ca::verify_leaf(&leaf.cert_pem, &roots, std::time::SystemTime::now()).expect("verifies");

        // A change that needs the old root's key (cross-signing) gets it opened, and its result
        // is sealed again.
        let rotated = node
            .update_ca(|current| {
                let mut ca = current.expect("a CA");
                ca.rotate(std::time::SystemTime::now())
                    .map_err(|e| e.to_string())?;
                Ok(Some(ca))
            })
            .await
            .expect("rotated");
        assert!(rotated);
        assert!(sealed(&reader), "still sealed after a rotation");

        // A snapshot archive (`/v1/snapshot`) holds the sealed keys only.
        let state = reader.state();
        let meta = ArchiveMeta {
            version: ARCHIVE_VERSION,
            index: 1,
            term: 1,
            datacenter: datacenter.clone(),
        };
        let archive = pack(&meta, &state).expect("packed");
        drop(state);
        let (_, unpacked) = unpack(&archive).expect("unpacked");
        let encoded = postcard::to_stdvec(&unpacked).expect("encoded");
        assert!(!holds_a_private_key(&encoded));
        assert_eq!(unpacked.ca.as_ref().map(|ca| ca.roots.len()), Some(2));

        snapshot_now(&raft).await;
        raft.shutdown().await.expect("shutdown");
    }
    // The raft log, RocksDB's files and the snapshot file beside them.
    let files = files_under(dir.path());
    assert!(!files.is_empty());
    for (path, bytes) in &files {
        assert!(
            !holds_a_private_key(bytes),
            "{} holds a plaintext private key",
            path.display()
        );
    }
}

#[tokio::test]
async fn without_a_data_key_the_ca_keys_are_stored_as_pem() {
    // The control for the test above: the same scan finds PEM keys when nothing seals them.
    let dir = TempDir::new().expect("temp dir");
    {
        let (raft, reader) = single_node(dir.path()).await;
        let node = RaftNode::new(raft.clone(), reader);
        create_ca(&node).await;
        raft.shutdown().await.expect("shutdown");
    }
    assert!(files_under(dir.path())
        .iter()
        .any(|(_, bytes)| holds_a_private_key(bytes)));
}
