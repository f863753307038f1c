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

    let odd = BASE64.encode([0u8; 20]);
    let err = Keyring::new(&odd).unwrap_err();
    assert_eq!(err, Error::InvalidKeyLength { len: 20 });
    assert_eq!(
        err.to_string(),
        "invalid gossip encryption key: it must decode to 16, 24 or 32 bytes, got 20"
    );
}

#[test]
fn aes_128_and_192_keys_work_and_are_told_apart() {
    let k16 = BASE64.encode([7u8; 16]);
    let k24 = BASE64.encode([7u8; 24]);
    let k32 = key(7);
    let nonce = [3u8; NONCE_LEN];
    for k in [&k16, &k24, &k32] {
        let keyring = Keyring::new(k).unwrap();
        let sealed = keyring.encrypt(b"ping", nonce);
        assert_eq!(sealed.len(), OVERHEAD + 4);
        assert_eq!(keyring.decrypt(&sealed).unwrap(), b"ping");
    }
    // A message sealed under the 16-byte key opens only where that key is installed.
    let sealed = Keyring::new(&k16).unwrap().encrypt(b"ping", nonce);
    let mut others = Keyring::new(&k32).unwrap();
    others.install(&k24).unwrap();
    assert_eq!(others.decrypt(&sealed), Err(Error::NoKeyDecrypts));
    others.install(&k16).unwrap();
    assert_eq!(others.decrypt(&sealed).unwrap(), b"ping");
    assert_eq!(others.list(), [k32, k24, k16]);
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
