use std::io::Write;

use super::*;

const KEY_A: &str = "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=";
const KEY_B: &str = "QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI=";

fn key_file(text: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().expect("temp file");
    file.write_all(text.as_bytes()).expect("written");
    file
}

#[test]
fn the_key_file_wins_over_the_environment() {
    let file = key_file(&format!("# active first\n{KEY_B}\n{KEY_A}\n"));
    let keys = load_data_keys(Some(file.path()), Some(KEY_A))
        .expect("loaded")
        .expect("keys");
    let env = load_data_keys(None, Some(&format!("{KEY_B},{KEY_A}")))
        .expect("loaded")
        .expect("keys");
    assert_eq!(keys.ids(), env.ids());
    assert_eq!(keys.ids().len(), 2);
}

#[test]
fn no_file_and_no_variable_means_no_keys() {
    assert!(load_data_keys(None, None).expect("loaded").is_none());
    assert!(load_data_keys(None, Some("  ")).expect("loaded").is_none());
}

#[test]
fn an_unreadable_or_invalid_key_source_fails_with_where_and_why() {
    let missing = Path::new("/nonexistent/mesh/data.key");
    let err = load_data_keys(Some(missing), Some(KEY_A)).expect_err("missing file");
    assert!(
        err.to_string()
            .starts_with("reading the data key file /nonexistent/mesh/data.key: "),
        "{err}"
    );
    let file = key_file(&format!("{KEY_A}\nc2hvcnQ=\n"));
    let err = load_data_keys(Some(file.path()), None).expect_err("short key");
    let text = err.to_string();
    assert!(text.contains("line 2: decodes to 5 bytes"), "{text}");
    assert!(!text.contains(KEY_A), "{text}");
    let err = load_data_keys(None, Some("not base64!")).expect_err("bad variable");
    assert_eq!(err.to_string(), "MESH_DATA_KEY: entry 1: not valid base64");
}
