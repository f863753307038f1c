use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::SeedableRng;

use super::*;

fn key(byte: u8) -> String {
    encode_key(&[byte; KEY_LEN])
}

#[test]
fn bad_keys_name_the_problem() {
    let err = Keyring::new("not base64!").unwrap_err();
    assert!(err.to_string().contains("not valid base64"), "{err}");

    let short = BASE64.encode([0u8; 16]);
    let err = Keyring::new(&short).unwrap_err();
    assert_eq!(err, Error::InvalidKeyLength { len: 16 });
    assert_eq!(
        err.to_string(),
        "invalid gossip encryption key: it must decode to 32 bytes, got 16"
    );
}

#[test]
fn install_use_remove_follow_consul() {
    let mut keyring = Keyring::new(&key(1)).unwrap();
    keyring.install(&key(2)).unwrap();
    keyring.install(&key(2)).unwrap();
    assert_eq!(keyring.list(), [key(1), key(2)]);

    assert_eq!(keyring.use_key(&key(3)), Err(Error::KeyNotInstalled));
    assert_eq!(
        keyring.remove(&key(1)).unwrap_err().to_string(),
        "Removing the primary key is not allowed"
    );

    keyring.use_key(&key(2)).unwrap();
    assert_eq!(keyring.list(), [key(2), key(1)], "primary first");
    keyring.remove(&key(1)).unwrap();
    assert_eq!(keyring.list(), [key(2)]);
    assert_eq!(keyring.primary(), key(2));
}

#[test]
fn removing_a_key_before_the_primary_keeps_the_primary() {
    let mut keyring = Keyring::from_keys(&[key(1), key(2), key(3)]).unwrap();
    keyring.use_key(&key(3)).unwrap();
    keyring.remove(&key(1)).unwrap();
    assert_eq!(keyring.primary(), key(3));
}

#[test]
fn file_format_is_a_json_array_primary_first() {
    let mut keyring = Keyring::from_keys(&[key(1), key(2)]).unwrap();
    keyring.use_key(&key(2)).unwrap();
    let json = keyring.to_file_json();
    assert_eq!(json, format!("[\"{}\",\"{}\"]", key(2), key(1)));
    assert_eq!(
        Keyring::from_file_json(&json).unwrap(),
        Keyring::from_keys(&[key(2), key(1)]).unwrap()
    );
    assert_eq!(Keyring::from_file_json("[]"), Err(Error::EmptyKeyring));
    assert!(matches!(
        Keyring::from_file_json("{"),
        Err(Error::InvalidFile { .. })
    ));
}

#[test]
fn any_installed_key_decrypts_and_others_do_not() {
    let sender = Keyring::from_keys(&[key(2), key(1)]).unwrap();
    let receiver = Keyring::from_keys(&[key(1), key(2)]).unwrap();
    let stranger = Keyring::new(&key(9)).unwrap();

    let sealed = sender.encrypt(b"hello", [7; NONCE_LEN]);
    assert_eq!(sealed.len(), OVERHEAD + 5);
    assert_eq!(receiver.decrypt(&sealed).unwrap(), b"hello");

    let err = stranger.decrypt(&sealed).unwrap_err();
    assert_eq!(err, Error::NoKeyDecrypts);
    assert_eq!(
        err.to_string(),
        "No installed keys could decrypt the message"
    );
    assert_eq!(receiver.decrypt(b"plain text"), Err(Error::NoKeyDecrypts));
}

#[test]
fn generated_keys_are_valid_and_distinct() {
    let mut rng = StdRng::seed_from_u64(1);
    let first = generate(&mut rng);
    let second = generate(&mut rng);
    assert_ne!(first, second);
    Keyring::new(&first).unwrap();
}

proptest! {
    #[test]
    fn tampering_is_detected(payload in proptest::collection::vec(any::<u8>(), 0..200), flip in 0usize..300) {
        let keyring = Keyring::new(&key(4)).unwrap();
        let mut sealed = keyring.encrypt(&payload, [3; NONCE_LEN]);
        let at = flip % sealed.len();
        sealed[at] ^= 0x01;
        prop_assert_eq!(keyring.decrypt(&sealed), Err(Error::NoKeyDecrypts));
    }
}
