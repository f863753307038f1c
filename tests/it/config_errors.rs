//! Bad configuration stops the server with an error that names the file and the key.

use std::time::Duration;

use test_support::run_server_to_exit;

fn run_with_config(name: &str, contents: &str) -> anyhow::Result<(i32, String)> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join(name);
    std::fs::write(&file, contents)?;
    let file = file.to_string_lossy().into_owned();
    run_server_to_exit(
        &["-dev", "-http-port", "0", "-config-file", &file],
        Duration::from_secs(20),
    )
}

#[test]
fn unknown_key_names_file_and_key() -> anyhow::Result<()> {
    let (code, out) = run_with_config("bad.hcl", "datacenter = \"dc1\"\nportz { http = 1 }\n")?;
    assert_ne!(code, 0);
    assert!(
        out.contains("bad.hcl") && out.contains("unknown key \"portz\""),
        "{out}"
    );
    Ok(())
}

#[test]
fn bad_value_names_file_and_key() -> anyhow::Result<()> {
    let (code, out) = run_with_config("bad.json", r#"{"bootstrap_expect": "three"}"#)?;
    assert_ne!(code, 0);
    assert!(
        out.contains("bad.json") && out.contains("bootstrap_expect"),
        "{out}"
    );
    Ok(())
}

#[test]
fn malformed_file_is_a_parse_error() -> anyhow::Result<()> {
    let (code, out) = run_with_config("broken.json", "{\"datacenter\": ")?;
    assert_ne!(code, 0);
    assert!(out.contains("broken.json"), "{out}");
    Ok(())
}
