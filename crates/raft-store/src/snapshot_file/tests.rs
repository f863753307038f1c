use super::*;

impl SnapshotState for Vec<String> {
    type Previous = Vec<String>;
}

/// A state that gained a field since the previous layout.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Grown {
    items: Vec<String>,
    added: u32,
}

impl From<Vec<String>> for Grown {
    fn from(items: Vec<String>) -> Grown {
        Grown { items, added: 0 }
    }
}

impl SnapshotState for Grown {
    type Previous = Vec<String>;
}

fn meta(id: &str) -> Meta {
    Meta {
        snapshot_id: id.to_owned(),
        ..Meta::default()
    }
}

fn write(file: &SnapshotFile, id: &str, state: &Vec<String>) {
    file.write(&meta(id), |out| {
        postcard::to_io(state, out).map(|_| ()).map_err(invalid)
    })
    .expect("write")
    .finish()
    .expect("durable");
}

fn read(file: &SnapshotFile) -> Option<(String, Vec<String>)> {
    match file.read::<Vec<String>>().expect("read") {
        None => None,
        Some(Stored::Current(state)) => {
            let meta = file.read_meta().expect("meta").expect("a snapshot");
            Some((meta.snapshot_id, state))
        }
        Some(Stored::Legacy(_) | Stored::Previous(..)) => panic!("written in the current layout"),
    }
}

#[test]
fn reads_back_what_it_wrote_and_the_last_write_wins() {
    let dir = tempfile::TempDir::new().unwrap();
    let file = SnapshotFile::new(dir.path());
    assert!(read(&file).is_none());
    let first = vec!["a".to_owned(), "b".repeat(100_000)];
    write(&file, "first", &first);
    assert_eq!(read(&file), Some(("first".to_owned(), first)));
    write(&file, "second", &Vec::new());
    assert_eq!(read(&file), Some(("second".to_owned(), Vec::new())));
    assert!(!dir.path().join(TEMPORARY).exists());
}

#[test]
fn an_item_larger_than_the_scratch_space_is_decoded_from_memory() {
    let dir = tempfile::TempDir::new().unwrap();
    let file = SnapshotFile::new(dir.path());
    let big = vec!["x".repeat(SCRATCH + 1), "after".to_owned()];
    write(&file, "big", &big);
    assert_eq!(read(&file), Some(("big".to_owned(), big)));
}

#[test]
fn a_damaged_file_is_an_error_not_a_snapshot() {
    let dir = tempfile::TempDir::new().unwrap();
    let file = SnapshotFile::new(dir.path());
    write(&file, "s", &vec!["some state".to_owned()]);
    let path = file.path();
    let mut bytes = fs::read(&path).unwrap();
    bytes[20] ^= 1;
    fs::write(&path, &bytes).unwrap();
    let err = file.read::<Vec<String>>().err().expect("refused");
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    fs::write(&path, b"short").unwrap();
    let err = file.read::<Vec<String>>().err().expect("refused");
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
}

#[test]
fn a_leftover_temporary_file_is_ignored_and_replaced() {
    let dir = tempfile::TempDir::new().unwrap();
    let file = SnapshotFile::new(dir.path());
    write(&file, "whole", &vec!["w".to_owned()]);
    // A crash while writing the next one.
    fs::write(dir.path().join(TEMPORARY), b"half a snap").unwrap();
    assert_eq!(read(&file).map(|(id, _)| id).as_deref(), Some("whole"));
    write(&file, "next", &vec!["n".to_owned()]);
    assert_eq!(read(&file).map(|(id, _)| id).as_deref(), Some("next"));
}

#[test]
fn a_received_file_is_checked_then_becomes_the_snapshot() {
    let sender_dir = tempfile::TempDir::new().unwrap();
    let sender = SnapshotFile::new(sender_dir.path());
    let state = vec!["sent".to_owned()];
    write(&sender, "from-leader", &state);
    let dir = tempfile::TempDir::new().unwrap();
    let file = SnapshotFile::new(dir.path());
    // Received in chunks, as openraft writes them.
    let bytes = fs::read(sender.path()).unwrap();
    let received = file.receiving().unwrap();
    let mut out = fs::OpenOptions::new().write(true).open(&received).unwrap();
    for chunk in bytes.chunks(7) {
        out.write_all(chunk).unwrap();
    }
    drop(out);
    let (meta, got) = file.install_received::<Vec<String>>().unwrap();
    assert_eq!((meta.snapshot_id.as_str(), &got), ("from-leader", &state));
    assert_eq!(read(&file), Some(("from-leader".to_owned(), state)));
    // A damaged transfer is refused and the current snapshot stays.
    let received = file.receiving().unwrap();
    let mut damaged = bytes.clone();
    damaged[15] ^= 0xff;
    fs::write(&received, damaged).unwrap();
    assert!(file.install_received::<Vec<String>>().is_err());
    assert_eq!(
        read(&file).map(|(id, _)| id).as_deref(),
        Some("from-leader")
    );
}

#[test]
fn a_file_of_the_first_layout_is_read_as_legacy() {
    let dir = tempfile::TempDir::new().unwrap();
    let file = SnapshotFile::new(dir.path());
    let legacy = LegacySnapshot {
        meta: meta("old"),
        data: postcard::to_stdvec(&vec!["kept".to_owned()]).unwrap(),
    };
    let mut bytes = postcard::to_stdvec(&legacy).unwrap();
    let digest = Sha256::digest(&bytes);
    bytes.extend_from_slice(&digest);
    fs::write(file.path(), bytes).unwrap();
    match file.read::<Vec<String>>().unwrap() {
        Some(Stored::Legacy(found)) => {
            assert_eq!(found.meta.snapshot_id, "old");
            assert_eq!(found.data, legacy.data);
        }
        _ => panic!("a legacy snapshot"),
    }
}

#[test]
fn a_file_of_the_previous_magic_is_converted() {
    let dir = tempfile::TempDir::new().unwrap();
    let file = SnapshotFile::new(dir.path());
    write(&file, "old", &vec!["kept".to_owned()]);
    mark_as_previous(&file.path(), 1).unwrap();
    let expected = Grown {
        items: vec!["kept".to_owned()],
        added: 0,
    };
    match file.read::<Grown>().unwrap() {
        Some(Stored::Previous(meta, state)) => {
            assert_eq!(meta.snapshot_id, "old");
            assert_eq!(state, expected);
        }
        _ => panic!("a snapshot of the previous layout"),
    }
    assert_eq!(file.read_meta().unwrap().unwrap().snapshot_id, "old");
    // A leader of the previous version sends such a file.
    let receiving = dir.path().join("sent.bin");
    fs::copy(file.path(), &receiving).unwrap();
    fs::rename(&receiving, file.receiving().unwrap()).unwrap();
    let (meta, state) = file.install_received::<Grown>().unwrap();
    assert_eq!((meta.snapshot_id.as_str(), state), ("old", expected));
    // Any other magic is not a snapshot.
    let mut bytes = fs::read(file.path()).unwrap();
    bytes[7] = b'9';
    fs::write(file.path(), bytes).unwrap();
    assert_eq!(
        file.read::<Grown>().err().expect("refused").kind(),
        io::ErrorKind::InvalidData
    );
}
