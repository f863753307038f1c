use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use super::*;

fn key(byte: u8) -> String {
    STANDARD.encode([byte; DATA_KEY_LEN])
}

fn ring(bytes: &[u8]) -> DataKeys {
    DataKeys::new(bytes.iter().map(|b| [*b; DATA_KEY_LEN]).collect()).expect("valid keys")
}

const PEM: &str = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMG\n-----END PRIVATE KEY-----\n";

#[test]
fn a_sealed_text_opens_to_what_was_sealed_and_names_its_key() {
    let keys = ring(&[1]);
    let sealed = seal(&keys, PEM).expect("seals");
    assert!(is_sealed(&sealed));
    assert!(!sealed.contains("PRIVATE KEY"));
    assert!(sealed.starts_with(&format!("mesh-sealed:v1:{}:", keys.active_id())));
    assert_eq!(sealed_with(&sealed), Some(keys.active_id()));
    assert_eq!(keys.active_id().len(), 8);
    assert_eq!(unseal(&keys, &sealed).expect("opens"), PEM);
    // Fresh nonces: sealing twice gives two texts.
    assert_ne!(seal(&keys, PEM).expect("seals"), sealed);
    assert!(!is_sealed(PEM));
    assert_eq!(sealed_with(PEM), None);
    assert_eq!(unseal(&keys, PEM), Err(SealError::NotSealed));
}

#[test]
fn the_key_id_is_the_start_of_the_keys_sha256() {
    // SHA-256 of 32 zero bytes: 66687aadf862bd77...
    assert_eq!(ring(&[0]).active_id(), "66687aad");
}

#[test]
fn a_wrong_key_with_the_same_id_fails_the_tag() {
    let sealed = seal(&ring(&[1]), PEM).expect("seals");
    let id = sealed_with(&sealed).expect("sealed").to_owned();
    // Pretend another key carries that id: the tag does not verify.
    let other = ring(&[2]);
    let forged = sealed.replacen(&id, other.active_id(), 1);
    assert_eq!(
        unseal(&other, &forged),
        Err(SealError::Tag {
            id: other.active_id().to_owned()
        })
    );
}

#[test]
fn an_altered_ciphertext_does_not_open() {
    let keys = ring(&[1]);
    let sealed = seal(&keys, PEM).expect("seals");
    let (head, body) = sealed.rsplit_once(':').expect("sealed form");
    let mut bytes = STANDARD.decode(body).expect("base64");
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    let altered = format!("{head}:{}", STANDARD.encode(&bytes));
    let err = unseal(&keys, &altered).expect_err("tampered");
    assert_eq!(
        err,
        SealError::Tag {
            id: keys.active_id().to_owned()
        }
    );
    assert!(err.to_string().contains(keys.active_id()), "{err}");
    let truncated = format!("{head}:{}", STANDARD.encode(&bytes[..10]));
    assert!(matches!(
        unseal(&keys, &truncated),
        Err(SealError::Corrupt(_))
    ));
    assert!(matches!(
        unseal(&keys, &format!("{head}:not base64!")),
        Err(SealError::Corrupt(_))
    ));
}

#[test]
fn a_text_sealed_by_a_key_not_in_the_keyring_names_the_ids() {
    let old = ring(&[1]);
    let sealed = seal(&old, PEM).expect("seals");
    let new = ring(&[2]);
    let err = unseal(&new, &sealed).expect_err("unknown key");
    assert_eq!(
        err,
        SealError::UnknownKey {
            id: old.active_id().to_owned(),
            known: new.active_id().to_owned()
        }
    );
    let text = err.to_string();
    assert!(text.contains(old.active_id()) && text.contains(new.active_id()));
}

#[test]
fn after_a_rotation_texts_sealed_by_the_old_key_still_open() {
    let old = ring(&[1]);
    let sealed = seal(&old, PEM).expect("seals");
    let rotated = ring(&[2, 1]);
    assert_ne!(rotated.active_id(), old.active_id());
    assert_eq!(unseal(&rotated, &sealed).expect("opens"), PEM);
    let resealed = seal(&rotated, PEM).expect("seals");
    assert_eq!(sealed_with(&resealed), Some(rotated.active_id()));
    assert_eq!(rotated.ids(), vec![rotated.active_id(), old.active_id()]);
}

#[test]
fn a_key_file_lists_keys_one_per_line_first_active() {
    let text = format!("# data keys\n\n  {}  \n# old\n{}\n", key(2), key(1));
    let keys = DataKeys::parse(&text).expect("parses");
    assert_eq!(keys.ids(), ring(&[2, 1]).ids());
    let env = DataKeys::parse_list(&format!("{}, {}", key(2), key(1))).expect("parses");
    assert_eq!(env.ids(), keys.ids());
    // Debug shows ids, never keys.
    let debug = format!("{keys:?}");
    assert!(
        debug.contains(keys.active_id()) && !debug.contains(&key(2)),
        "{debug}"
    );
}

#[test]
fn bad_key_files_name_the_line_and_never_the_key() {
    let short = STANDARD.encode([7u8; 16]);
    let cases = [
        ("".to_owned(), KeysError::Empty),
        ("# only a comment\n\n".to_owned(), KeysError::Empty),
        (
            format!("{}\nnot base64!\n", key(1)),
            KeysError::NotBase64 {
                place: "line 2".into(),
            },
        ),
        (
            format!("# c\n{short}\n"),
            KeysError::WrongLength {
                place: "line 2".into(),
                len: 16,
            },
        ),
        (
            format!("{}\n{}\n", key(1), key(1)),
            KeysError::Duplicate {
                place: "line 2".into(),
                id: ring(&[1]).active_id().to_owned(),
            },
        ),
    ];
    for (text, want) in cases {
        let err = DataKeys::parse(&text).expect_err(&text);
        assert_eq!(err, want, "{text:?}");
        assert!(!err.to_string().contains(&short) && !err.to_string().contains(&key(1)));
    }
    assert_eq!(
        DataKeys::parse_list(&format!("{},{short}", key(1))).expect_err("short"),
        KeysError::WrongLength {
            place: "entry 2".into(),
            len: 16
        }
    );
    assert!(matches!(DataKeys::parse_list(" , "), Err(KeysError::Empty)));
}
